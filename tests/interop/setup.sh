#!/usr/bin/env bash
# Installs the reference DHT implementations the interop tests run against,
# when they are missing:
#   - libtorrent's Python binding (Debian package python3-libtorrent), which
#     must be importable by Debian's own interpreter /usr/bin/python3,
#     with PyNaCl (python3-nacl: lt_node.py derives BEP 44 public keys);
#   - node.js + npm, then bittorrent-dht from tests/interop/package-lock.json
#     (npm ci into tests/interop/node_modules).
# Installs with apt only when running as root; otherwise prints the exact
# command to run and exits non-zero. Never skips: a missing reference is a
# failure, said in one line on stderr.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LT_PY=/usr/bin/python3
APT_PKGS=()

die() {
  echo "interop setup: $*" >&2
  exit 1
}

have_libtorrent() {
  [ -x "$LT_PY" ] && "$LT_PY" -c 'import libtorrent, nacl.signing' >/dev/null 2>&1
}

have_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1
}

have_libtorrent || APT_PKGS+=(python3 python3-libtorrent python3-nacl)
have_node || APT_PKGS+=(nodejs npm)

if [ ${#APT_PKGS[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    die "missing ${APT_PKGS[*]}; install them with: sudo apt-get install -y ${APT_PKGS[*]}"
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "missing ${APT_PKGS[*]} and no apt-get on this machine to install them"
  echo "interop setup: apt-get install -y ${APT_PKGS[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq "${APT_PKGS[@]}" >&2 ||
    die "apt-get install -y ${APT_PKGS[*]} failed"
fi

have_libtorrent ||
  die "$LT_PY cannot import libtorrent and nacl even after installing python3-libtorrent python3-nacl"
have_node || die "node and npm are still missing after installing nodejs npm"

# bittorrent-dht, exactly as pinned by the lockfile. npm ci wipes and
# reinstalls node_modules, so run it only when the installed tree is not the
# locked one (npm records the installed tree in node_modules/.package-lock.json).
want_ver="$(node -e "const l=require('$HERE/package-lock.json');console.log(l.packages['node_modules/bittorrent-dht'].version)")" ||
  die "cannot read bittorrent-dht's version from $HERE/package-lock.json"
have_ver="$(node -e "try{console.log(require('$HERE/node_modules/bittorrent-dht/package.json').version)}catch(e){}" 2>/dev/null || true)"
if [ "$have_ver" != "$want_ver" ] ||
   ! cmp -s <(node -e "const l=require('$HERE/package-lock.json');console.log(JSON.stringify(Object.keys(l.packages).filter(k=>k).sort()))") \
             <(node -e "try{const l=require('$HERE/node_modules/.package-lock.json');console.log(JSON.stringify(Object.keys(l.packages).filter(k=>k).sort()))}catch(e){}" 2>/dev/null); then
  echo "interop setup: npm ci --prefix $HERE (bittorrent-dht $want_ver)" >&2
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
    die "npm ci in $HERE failed (network? registry?); bittorrent-dht $want_ver is required"
fi
(cd "$HERE" && node --input-type=module -e "import 'bittorrent-dht'") >/dev/null 2>&1 ||
  die "bittorrent-dht does not load from $HERE/node_modules"

echo "interop setup: libtorrent $("$LT_PY" -c 'import libtorrent; print(libtorrent.__version__)'), bittorrent-dht $want_ver, node $(node --version)" >&2
