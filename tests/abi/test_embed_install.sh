#!/bin/bash
# examples/embed.c builds against the installed library with pkg-config and
# no other include path, links the shared library (so it can use only what
# libmdht.so exports), and runs: twice, the second time from the state the
# first saved (mdht_node_save / mdht_node_saved_id / mdht_node_load).
#
#   test_embed_install.sh BUILD_DIR SOURCE_DIR [EXTRA_CFLAGS...]
#
# EXTRA_CFLAGS: the sanitizer flags of an MDHT_SANITIZE build, whose
# library needs its runtime in the program too.
set -eu
build=$1 src=$(cd "$2" && pwd)
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pcdir=$(dirname "$(find "$tmp/prefix" -name mdht.pc | head -1)")
[ -f "$pcdir/mdht.pc" ] || fail "no mdht.pc installed"
# Only the public header is installed.
headers=$(cd "$tmp/prefix/include" && find . -type f | sort | tr '\n' ' ')
[ "$headers" = "./mdht.h " ] || fail "installed headers: $headers"

flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs mdht) ||
  fail "pkg-config does not know mdht"
echo "pkg-config: $flags"
case "$flags" in
*"$src"* | *src/core*) fail "pkg-config points into the source tree: $flags" ;;
esac
# The .pc file follows the install prefix, not the configured one.
case "$flags" in
*"-I$tmp/prefix/"*) ;;
*) fail "include path is not the install's: $flags" ;;
esac

cp "$src/examples/embed.c" "$tmp/embed.c" # no neighbouring header to find
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Wpedantic -Werror "$@" -o "$tmp/embed" \
  "$tmp/embed.c" $flags || fail "embed.c does not build against the install"
libdir=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=libdir mdht)
ldd "$tmp/embed" | grep -q "libmdht.so" ||
  fail "embed did not link the shared library"

# Offline and short, on loopback: a second node B to learn of, then our
# node twice, the second time from the state the first run saved.
LD_LIBRARY_PATH=$libdir timeout 20 "$tmp/embed" -t 4 127.0.0.94 0 \
  >"$tmp/out.b" 2>&1 &
b=$!
trap 'kill $b 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do
  baddr=$(sed -n 's/^listening on \([^ ]*\) id .*/\1/p' "$tmp/out.b" \
    2>/dev/null || true)
  [ -n "$baddr" ] && break
  sleep 0.1
done
[ -n "$baddr" ] || fail "node B did not start: $(cat "$tmp/out.b")"
run() {
  local n=$1
  shift
  LD_LIBRARY_PATH=$libdir timeout 20 "$tmp/embed" -t 1 -s "$tmp/state" \
    127.0.0.93 0 "$@" >"$tmp/out.$n" 2>&1 || {
    cat "$tmp/out.$n"
    fail "embed run $n failed"
  }
  cat "$tmp/out.$n"
}
run 1 "$baddr"
grep -q "node_added .* $baddr\$" "$tmp/out.1" || fail "run 1 never added B"
ldd_lib=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/embed" | awk '/libmdht/ {print $3}')
case "$ldd_lib" in
"$tmp"/*) ;;
*) fail "embed runs with $ldd_lib, not the installed library" ;;
esac
[ -s "$tmp/state" ] || fail "no state saved"
run 2 # no bootstrap: B can only come from the saved state
wait $b || true
id1=$(sed -n 's/^listening on .* id \([0-9a-f]*\)$/\1/p' "$tmp/out.1")
id2=$(sed -n 's/^listening on .* id \([0-9a-f]*\)$/\1/p' "$tmp/out.2")
[ -n "$id1" ] && [ "$id1" = "$id2" ] || fail "id not kept: '$id1' '$id2'"
grep -q "state_loaded" "$tmp/out.2" || fail "second run loaded no state"
grep -q "node_added .* $baddr\$" "$tmp/out.2" ||
  fail "second run did not restore B into its routing table"
echo "figure: embed built with only pkg-config's flags; id $id1 and the routing entry $baddr kept across mdht_node_save / mdht_node_load"
