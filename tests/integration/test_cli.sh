#!/usr/bin/env bash
# The command-line contract of `mdht` (DESIGN.md): every usage error is
# exactly one line on stderr and exit status 2; `mdht run` says where it
# listens and exits 0 on SIGTERM, 130 on SIGINT (as a shell reports Ctrl-C).
#
# usage: test_cli.sh path/to/mdht
#
# Nodes here bind to 127.0.0.x with --port 0 and never use the default
# (public) bootstrap routers: there is no internet in CI, and tests must not
# talk to the public DHT anyway.
set -u

# Hermetic: no node of the developer's on the default control socket
# answers here, and the nodes started here do not take it.
unset XDG_RUNTIME_DIR MDHT_CONTROL

MDHT=${1:?usage: test_cli.sh path/to/mdht}
MDHT=$(cd "$(dirname "$MDHT")" && pwd)/$(basename "$MDHT")
TMP=$(mktemp -d)
PIDS=()
failures=0
checks=0

cleanup() {
  for p in "${PIDS[@]}"; do
    kill -KILL "$p" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# bad ARGS...: exit status 2, exactly one line on stderr, starting "mdht: ".
# For `run`, safe settings come last: if a case were wrongly accepted, the
# node it starts stays on loopback and contacts nobody (the parser stops at
# the first error, so they never hide the one under test).
bad() {
  local rc lines
  local args=("$@")
  checks=$((checks + 1))
  if [ "${1:-}" = run ]; then
    args+=(--no-bootstrap --bind 127.0.0.1 --port 0)
  fi
  timeout 10 "$MDHT" "${args[@]}" >"$TMP/out" 2>"$TMP/err" </dev/null
  rc=$?
  lines=$(wc -l <"$TMP/err")
  if [ "$rc" -ne 2 ]; then
    fail "mdht $* -> exit $rc, want 2 (stderr: $(head -c 300 "$TMP/err"))"
  elif [ "$lines" -ne 1 ]; then
    fail "mdht $* -> $lines lines on stderr, want 1: $(head -c 300 "$TMP/err")"
  elif ! grep -q '^mdht: ' "$TMP/err"; then
    fail "mdht $* -> stderr does not start with 'mdht: ': $(cat "$TMP/err")"
  fi
}

# good ARGS...: exit status 0 and something on stdout.
good() {
  local rc
  checks=$((checks + 1))
  timeout 10 "$MDHT" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
  rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "mdht $* -> exit $rc, want 0 (stderr: $(head -c 300 "$TMP/err"))"
  elif [ ! -s "$TMP/out" ]; then
    fail "mdht $* -> nothing on stdout"
  fi
}

# start NAME ARGS...: runs `mdht run ARGS` in the background, logging to
# $TMP/NAME.log; sets PID and ADDR (from the "listening" line).
start() {
  local name=$1
  shift
  "$MDHT" run --no-state "$@" 2>"$TMP/$name.log" </dev/null &
  PID=$!
  PIDS+=("$PID")
  ADDR=
  for _ in $(seq 100); do
    ADDR=$(grep -o 'listening on [^ ]*' "$TMP/$name.log" | head -n 1 |
      cut -d' ' -f3)
    [ -n "$ADDR" ] && break
    # JSON: {"event":"listening","addr":"..."}
    ADDR=$(grep -o '"event":"listening","addr":"[^"]*"' "$TMP/$name.log" |
      head -n 1 | sed 's/.*"addr":"\([^"]*\)"/\1/')
    [ -n "$ADDR" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
}

# stop SIGNAL: signals $PID and checks it exits 0 within 10 s.
stop() {
  local rc
  kill -"$1" "$PID"
  for _ in $(seq 100); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$PID" 2>/dev/null; then
    fail "mdht run did not stop on SIG$1"
    kill -KILL "$PID"
  fi
  wait "$PID"
  rc=$?
  local want=0
  [ "$1" = INT ] && want=130
  [ "$rc" -eq "$want" ] || fail "mdht run exited $rc on SIG$1, want $want"
}

# wait_for FILE PATTERN SECONDS
wait_for() {
  for _ in $(seq $(($3 * 10))); do
    grep -q -- "$2" "$1" && return 0
    sleep 0.1
  done
  return 1
}

# ------------------------------------------------------------ usage errors

bad
bad frobnicate
bad --frobnicate
bad run --frobnicate
bad run -x
bad run extra-argument
bad run --port
bad run --port ''
bad run --port abc
bad run --port 65536
bad run --port 99999999999999999999999
bad run --port -1
bad run --port ' 1'
bad run --port 1x
bad run --port=
bad run --bind
bad run --bind not-an-ip
bad run --bind 127.0.0.1:6881
bad run --bind 300.1.1.1
bad run --id
bad run --id xyz
bad run --id 0123456789abcdef0123456789abcdef0123456
bad run --id 0123456789abcdef0123456789abcdef012345678
bad run --id 0123456789abcdef0123456789abcdef0123456g
bad run --bootstrap
bad run --bootstrap 127.0.0.1
bad run --bootstrap 127.0.0.1:0
bad run --bootstrap 127.0.0.1:65536
bad run --bootstrap 127.0.0.1:x
bad run --bootstrap ::1:6881
bad run --bootstrap :6881
bad run --no-bootstrap --bootstrap 127.0.0.1:6881
bad run --no-bootstrap=yes
bad run --log-level
bad run --log-level verbose
bad run --log-level INFO
bad run --log-format
bad run --log-format xml
bad run --k 0
bad run --k 17
bad run --alpha x
bad run --max-txns 70000
bad run --max-peers-total x
bad run --max-peers-total -1
bad run --peer-ttl 0
bad run --query-timeout -5
bad run --query-soft-timeout 6000 --query-timeout 5000
bad run --rate-limit 4294967296
bad run --client-version XYZ
bad run --read-only=1
bad run --port --no-bootstrap
bad help frobnicate
# commands that need an argument or --control
for cmd in get-peers announce find-node ping stats save; do
  bad "$cmd"
done
bad sim --nodes 0
bad sim --loss 2
bad sim --frobnicate
bad testnet --nodes 0
bad testnet --nodes x

# ---------------------------------------------------------- informational

good --version
grep -q '^mdht [0-9][0-9.]*$' "$TMP/out" || fail "--version: $(cat "$TMP/out")"
good --help
good help
good help run
good run --help
grep -q -- '--no-bootstrap' "$TMP/out" || fail "run --help lists no options"

# ------------------------------------------------------------------- run

# Port 0: the kernel picks, and the listening line shows the real port.
checks=$((checks + 1))
start a --bind 127.0.0.1 --port 0 --no-bootstrap
case "$ADDR" in
127.0.0.1:0 | "") fail "no usable listening line: $(cat "$TMP/a.log")" ;;
127.0.0.1:*) ;;
*) fail "listening on $ADDR, want 127.0.0.1:PORT" ;;
esac
grep -q "listening on $ADDR id=[0-9a-f]\{40\}\$" "$TMP/a.log" ||
  fail "listening line lacks the id: $(head -n 1 "$TMP/a.log")"
A_PID=$PID
A_ADDR=$ADDR

# The same port again: a runtime error, one line, exit 2.
checks=$((checks + 1))
timeout 10 "$MDHT" run --no-state --bind 127.0.0.1 --port "${A_ADDR##*:}" \
  --no-bootstrap >/dev/null 2>"$TMP/err" </dev/null
rc=$?
[ "$rc" -eq 2 ] || fail "bind to a port in use: exit $rc, want 2"
[ "$(wc -l <"$TMP/err")" -eq 1 ] ||
  fail "bind to a port in use: want one line: $(cat "$TMP/err")"

# A second node joins through the first; both see each other. JSON logs.
checks=$((checks + 1))
start b --bind 127.0.0.2 --port 0 --bootstrap "$A_ADDR" --log-format json \
  --log-level debug --id 0123456789abcdef0123456789abcdef01234567
B_PID=$PID
B_ADDR=$ADDR
head -n 1 "$TMP/b.log" | grep -q \
  '^{"ts":"[0-9T:.-]*Z","level":"info","event":"listening","addr":"127.0.0.2:[1-9][0-9]*","id":"0123456789abcdef0123456789abcdef01234567"}$' ||
  fail "JSON listening line: $(head -n 1 "$TMP/b.log")"
wait_for "$TMP/a.log" "node_added id=0123456789abcdef0123456789abcdef01234567 addr=$B_ADDR" 10 ||
  fail "node A never added node B: $(cat "$TMP/a.log")"
wait_for "$TMP/b.log" '"event":"node_added"' 10 ||
  fail "node B never added node A: $(cat "$TMP/b.log")"
if command -v python3 >/dev/null; then
  python3 -c '
import json, sys
for n, line in enumerate(open(sys.argv[1]), 1):
    obj = json.loads(line)
    assert {"ts", "level", "event"} <= obj.keys(), (n, line)
' "$TMP/b.log" || fail "node B's log is not JSON lines"
fi

PID=$B_PID
stop TERM
PID=$A_PID
stop INT
grep -q 'SIGINT received' "$TMP/a.log" || fail "no shutdown line on SIGINT"

# A name that does not resolve is one warning, never fatal.
checks=$((checks + 1))
start c --bind 127.0.0.3 --port 0 --bootstrap no-such-host.invalid:6881 \
  --bootstrap "127.0.0.3:1"
if [ -z "$ADDR" ]; then
  fail "an unresolvable bootstrap name stopped the node: $(cat "$TMP/c.log")"
else
  wait_for "$TMP/c.log" "no-such-host.invalid" 30 ||
    fail "no warning for an unresolvable name: $(cat "$TMP/c.log")"
  [ "$(grep -c 'no-such-host.invalid' "$TMP/c.log")" -eq 1 ] ||
    fail "want one warning line: $(cat "$TMP/c.log")"
  grep -q ' warn  bootstrap no-such-host.invalid:6881' "$TMP/c.log" ||
    fail "warning not at warn level: $(cat "$TMP/c.log")"
  stop TERM
fi

echo "test_cli: $checks checks, $failures failed"
[ "$failures" -eq 0 ]
