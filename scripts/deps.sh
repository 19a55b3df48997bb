#!/usr/bin/env bash
# Installs what building and testing mdht needs on Debian 12, when it is
# missing. As root it runs apt-get; otherwise it prints the exact line to run.
set -euo pipefail

pkgs=(cmake make gcc clang pkg-config libcmocka-dev nettle-dev libsodium-dev libmicrohttpd-dev libclang-rt-14-dev
      python3 python3-libtorrent python3-prometheus-client python3-nacl nodejs npm iproute2
      libsystemd-dev systemd man-db)
# What each package provides, so that a machine that already has the tool
# (installed some other way) is not asked to install it again.
have() {
  case "$1" in
    cmake|make|gcc|clang|python3) command -v "$1" >/dev/null 2>&1 ;;
    nodejs) command -v node >/dev/null 2>&1 ;;
    npm) command -v npm >/dev/null 2>&1 ;;
    pkg-config) command -v pkg-config >/dev/null 2>&1 ;;
    iproute2) command -v ip >/dev/null 2>&1 ;;
    systemd) command -v systemd-analyze >/dev/null 2>&1 ;;
    man-db) command -v man >/dev/null 2>&1 ;; # systemd-analyze verify opens Documentation=man:
    *) dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" ;;
  esac
}

missing=()
for p in "${pkgs[@]}"; do
  have "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

line="apt-get install -y ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "mdht: missing packages; run as root: apt-get update && $line" >&2
  exit 1
fi
echo "mdht: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
