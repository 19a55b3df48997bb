#!/usr/bin/env bash
# contrib/mdht.service, checked with systemd's own tools:
#
# 1. `systemd-analyze verify` prints nothing and exits 0. verify checks
#    that ExecStart's binary exists and that the Documentation= man page
#    opens, so it runs on a temporary copy whose ExecStart names the built
#    binary (not /usr/bin/mdht, absent here) with MANPATH pointing at
#    docs/mdht.1. The same copy with an unknown directive must NOT verify
#    clean: the check can fail.
# 2. `systemd-analyze security --offline=true` rates the unit's exposure
#    at most 1.5 (README gives the figure): sandboxing dropped from the
#    unit shows here.
# 3. ExecStart's flags are the binary's: the command line, with %S, %t
#    and /etc/mdht/mdht.conf pointing into a temporary directory (and
#    loopback flags appended), starts a node that listens, creates its
#    control socket, and saves its state on SIGTERM, exit 0. (The
#    notifications themselves: test_notify.py.)
#
# systemd-analyze missing is a failure (scripts/deps.sh installs it), never
# a skip.
#
# usage: test_service.sh path/to/mdht
set -u

MDHT=${1:?usage: test_service.sh path/to/mdht}
MDHT=$(cd "$(dirname "$MDHT")" && pwd)/$(basename "$MDHT")
SRC=$(cd "$(dirname "$0")/../.." && pwd)
UNIT=$SRC/contrib/mdht.service
TMP=$(mktemp -d)
PID=
failures=0
checks=0

cleanup() {
  [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
ok() { checks=$((checks + 1)); }

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "FAIL: systemd-analyze not found (Debian package systemd; run scripts/deps.sh)" >&2
  exit 1
fi

# 1. verify, clean.
mkdir -p "$TMP/man/man1" "$TMP/unit"
cp "$SRC/docs/mdht.1" "$TMP/man/man1/mdht.1"
sed "s|^ExecStart=/usr/bin/mdht |ExecStart=$MDHT |" "$UNIT" >"$TMP/unit/mdht.service"
grep -q "^ExecStart=$MDHT run " "$TMP/unit/mdht.service" || fail "ExecStart not substituted"
out=$(MANPATH="$TMP/man" systemd-analyze verify "$TMP/unit/mdht.service" 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then ok; else fail "verify: rc $rc: $out"; fi
# ... and it notices a bad unit.
sed 's/^\[Service\]$/[Service]\nFrobnicate=yes/' "$TMP/unit/mdht.service" >"$TMP/unit/bad.service"
out=$(MANPATH="$TMP/man" systemd-analyze verify "$TMP/unit/bad.service" 2>&1)
case $out in
  *Frobnicate*) ok ;;
  *) fail "verify did not notice Frobnicate=: $out" ;;
esac

# 2. the exposure score.
out=$(systemd-analyze security --offline=true "$UNIT" 2>&1)
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for mdht.service: \([0-9.]*\).*/\1/p')
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 1.5) }'; then
  ok
else
  fail "exposure score '$score' (want <= 1.5): $out"
fi
# The unit keeps the sandboxing the README promises.
for d in Type=notify DynamicUser=yes StateDirectory=mdht RuntimeDirectory=mdht \
  WatchdogSec= Restart=on-failure ProtectSystem=strict ProtectHome=yes \
  PrivateTmp=yes PrivateDevices=yes NoNewPrivileges=yes \
  "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" \
  SystemCallFilter=@system-service "CapabilityBoundingSet=\$" \
  MemoryDenyWriteExecute=yes LockPersonality=yes RestrictNamespaces=yes \
  RestrictRealtime=yes ProtectKernelTunables=yes ProtectKernelModules=yes \
  ProtectKernelLogs=yes ProtectControlGroups=yes ProtectClock=yes \
  ProtectHostname=yes ProtectProc=invisible ProcSubset=pid \
  SystemCallArchitectures=native UMask=0077; do
  if grep -q "^$d" "$UNIT"; then ok; else fail "unit lacks $d"; fi
done

# 3. ExecStart's command line, run for real (on loopback, no bootstrap).
cmd=$(sed -n 's/^ExecStart=//p' "$UNIT")
mkdir -p "$TMP/state" "$TMP/run/mdht" "$TMP/etc"
cp "$SRC/contrib/mdht.conf" "$TMP/etc/mdht.conf"
cmd=${cmd//%S/$TMP/state}
cmd=${cmd//%t/$TMP/run}
cmd=${cmd//\/etc\/mdht\//$TMP/etc/}
cmd=${cmd/\/usr\/bin\/mdht/$MDHT}
# shellcheck disable=SC2086  # the unit's words, split as systemd does
$cmd --bind 127.0.111.40 --port 0 --no-bootstrap 2>"$TMP/err" &
PID=$!
for _ in $(seq 50); do
  grep -q "listening on 127.0.111.40:" "$TMP/err" && break
  sleep 0.1
done
if grep -q "listening on 127.0.111.40:" "$TMP/err" && [ -S "$TMP/run/mdht/mdht.sock" ]; then
  ok
else
  fail "the unit's command line did not start: $(cat "$TMP/err")"
fi
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
if [ $rc -eq 0 ] && [ -f "$TMP/state/private/mdht/state" ]; then ok; else
  fail "after SIGTERM: rc $rc, state file missing? $(cat "$TMP/err")"
fi

echo "exposure score $score; $checks checks, $failures failures"
[ $failures -eq 0 ]
