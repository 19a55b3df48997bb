#!/usr/bin/env bash
# Runs every libFuzzer target built in $1, starting from its committed
# corpus (new inputs go to a scratch copy, not the repo), and prints per
# target the executions, the time taken and the dates.
#
#   scripts/fuzz.sh build-fuzz [SECONDS]     each target for SECONDS (15)
#   FUZZ_RUNS=10000000 scripts/fuzz.sh build-fuzz
#                                            each target for that many
#                                            executions, however long
# Settings (environment):
#   FUZZ_RUNS     executions per target; overrides SECONDS
#   FUZZ_JOBS     parallel processes per target (default 1); with FUZZ_RUNS
#                 each runs FUZZ_RUNS/FUZZ_JOBS executions on the shared
#                 scratch corpus (libFuzzer -jobs/-workers)
#   FUZZ_TARGETS  names to run, e.g. "node state" (default: all)
#   FUZZ_MAX_LEN  longest input (default 65536); a long campaign of a
#                 target whose cost grows with the input (state) runs
#                 more executions with a shorter one
#   FUZZ_OUT      where crash reproducers go (default: the current
#                 directory); a finding stops the script with status 1
set -euo pipefail
dir=$1
secs=${2:-15}
runs=${FUZZ_RUNS:-}
jobs=${FUZZ_JOBS:-1}
out=${FUZZ_OUT:-$PWD}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

wanted() {
  [ -z "${FUZZ_TARGETS:-}" ] && return 0
  for t in $FUZZ_TARGETS; do [ "$t" = "$1" ] && return 0; done
  return 1
}

for bin in "$dir"/fuzz_*; do
  [ -x "$bin" ] || continue
  bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
  name=$(basename "$bin")
  wanted "${name#fuzz_}" || continue
  corpus="$root/tests/fuzz/corpus/${name#fuzz_}"
  work=$(mktemp -d)
  mkdir "$work/corpus"
  cp -r "$corpus"/. "$work/corpus"/ 2>/dev/null || true
  args=(-max_len="${FUZZ_MAX_LEN:-65536}" -print_final_stats=1 -artifact_prefix="$out/$name-")
  if [ -n "$runs" ]; then
    args+=(-runs=$((runs / jobs)))
    what="$runs executions"
  else
    args+=(-max_total_time="$secs")
    what="${secs}s"
  fi
  start=$(date -u +%FT%TZ)
  t0=$(date +%s.%N)
  echo "fuzz: $name for $what ($jobs job(s)), started $start"
  if [ "$jobs" -gt 1 ]; then
    # -jobs writes one fuzz-N.log per job in the current directory.
    ok=1
    (cd "$work" && "$bin" -jobs="$jobs" -workers="$jobs" "${args[@]}" \
      corpus >/dev/null 2>"$work/main.log") || ok=0
    cat "$work"/fuzz-*.log >"$work/all.log" 2>/dev/null || true
  else
    ok=1
    "$bin" "${args[@]}" "$work/corpus" 2>"$work/all.log" || ok=0
  fi
  t1=$(date +%s.%N)
  if [ "$ok" = 0 ] || grep -q -E '^==[0-9]+==ERROR|deadly signal|SUMMARY: ' "$work/all.log"; then
    tail -n 40 "$work/all.log"
    echo "fuzz: $name FAILED (reproducer: $out/$name-*)"
    exit 1
  fi
  execs=$(awk -F: '/stat::number_of_executed_units/ {s += $NF} END {print s + 0}' "$work/all.log")
  awk -v n="$name" -v e="$execs" -v a="$t0" -v b="$t1" -v s="$start" \
    -v f="$(date -u +%FT%TZ)" 'BEGIN {
      t = b - a; printf "fuzz: %s: %d executions in %.1f s (%.0f/s), %s .. %s\n",
      n, e, t, (t > 0 ? e / t : 0), s, f }'
  rm -rf "$work"
done
