#!/usr/bin/env bash
# Runs every libFuzzer target built in $1 for $2 seconds each, starting from
# its committed corpus (new inputs go to a scratch copy, not the repo).
set -euo pipefail
dir=$1
secs=${2:-15}
root=$(cd "$(dirname "$0")/.." && pwd)
for bin in "$dir"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  corpus="$root/tests/fuzz/corpus/${name#fuzz_}"
  work=$(mktemp -d)
  cp -r "$corpus"/. "$work"/ 2>/dev/null || true
  echo "fuzz: $name for ${secs}s"
  "$bin" -max_total_time="$secs" -max_len=65536 -print_final_stats=1 "$work" 2>"$work.log" ||
    { tail -n 40 "$work.log"; echo "fuzz: $name FAILED"; exit 1; }
  grep -E 'stat::number_of_executed_units' "$work.log" || true
  rm -rf "$work" "$work.log"
done
