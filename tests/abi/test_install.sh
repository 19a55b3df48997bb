#!/bin/bash
# `cmake --install` (what `make install` runs) with DESTDIR into a
# temporary directory installs the service files of contrib/:
#
# 1. prefix /usr: the unit in /usr/lib/systemd/system with ExecStart
#    naming /usr/bin/mdht and --config /etc/mdht/mdht.conf, the config in
#    /etc/mdht and /usr/share/doc/mdht, the completion in
#    /usr/share/bash-completion/completions/mdht, the man page; the
#    installed unit verifies clean (systemd-analyze verify, on a copy
#    whose ExecStart names the installed binary under DESTDIR, since
#    /usr/bin/mdht is not there outside it) and the installed completion
#    completes;
# 2. an install again keeps an edited /etc/mdht/mdht.conf;
# 3. the configured prefix (/usr/local here): the unit names
#    /usr/local/bin/mdht and /usr/local/etc/mdht/mdht.conf.
#
#   test_install.sh BUILD_DIR SOURCE_DIR
set -eu
build=$1 src=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (Debian package systemd)"

d=$tmp/usr-root
DESTDIR=$d cmake --install "$build" --prefix /usr >/dev/null
for f in usr/bin/mdht usr/lib/systemd/system/mdht.service etc/mdht/mdht.conf \
  usr/share/doc/mdht/mdht.conf usr/share/bash-completion/completions/mdht \
  usr/share/man/man1/mdht.1; do
  [ -f "$d/$f" ] || fail "not installed: /$f"
done
unit=$d/usr/lib/systemd/system/mdht.service
grep -qx 'ExecStart=/usr/bin/mdht run --config /etc/mdht/mdht.conf --state %S/private/mdht --control %t/mdht/mdht.sock' "$unit" ||
  fail "installed ExecStart: $(grep ExecStart= "$unit")"
cmp -s "$d/etc/mdht/mdht.conf" "$src/contrib/mdht.conf" || fail "config differs"
cmp -s "$d/usr/share/bash-completion/completions/mdht" "$src/contrib/mdht.bash-completion" ||
  fail "completion differs"

sed "s|^ExecStart=/usr/bin/mdht |ExecStart=$d/usr/bin/mdht |" "$unit" >"$tmp/mdht.service"
out=$(MANPATH=$d/usr/share/man systemd-analyze verify "$tmp/mdht.service" 2>&1) ||
  fail "verify of the installed unit: $out"
[ -z "$out" ] || fail "verify of the installed unit says: $out"

got=$(bash -c 'source "$1"; COMP_WORDS=(mdht ru); COMP_CWORD=1; _mdht; echo "${COMPREPLY[*]}"' \
  _ "$d/usr/share/bash-completion/completions/mdht")
[ "$got" = run ] || fail "installed completion: 'mdht ru<TAB>' gives '$got'"

# 2. An edited config survives another install.
echo "port = 7000" >>"$d/etc/mdht/mdht.conf"
DESTDIR=$d cmake --install "$build" --prefix /usr >/dev/null
tail -1 "$d/etc/mdht/mdht.conf" | grep -qx "port = 7000" ||
  fail "an install overwrote the edited /etc/mdht/mdht.conf"

# 3. The configured prefix.
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
d=$tmp/conf-root
DESTDIR=$d cmake --install "$build" >/dev/null
etc=$prefix/etc
[ "$prefix" = /usr ] && etc=/etc
grep -qx "ExecStart=$prefix/bin/mdht run --config $etc/mdht/mdht.conf --state %S/private/mdht --control %t/mdht/mdht.sock" \
  "$d$prefix/lib/systemd/system/mdht.service" ||
  fail "prefix $prefix: $(grep ExecStart= "$d$prefix/lib/systemd/system/mdht.service")"
[ -f "$d$etc/mdht/mdht.conf" ] || fail "prefix $prefix: no $etc/mdht/mdht.conf"
echo "installed with DESTDIR: /usr/lib/systemd/system/mdht.service (verifies clean)," \
  "/etc/mdht/mdht.conf (kept when edited), /usr/share/bash-completion/completions/mdht;" \
  "prefix $prefix: ExecStart=$prefix/bin/mdht"
