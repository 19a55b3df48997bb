#!/usr/bin/env bash
# The simulator's scaling table (issue "A million nodes on one machine"):
# the same scenario at several network sizes, without churn and with the
# Weibull churn model, one line each: wall time, peak RSS, bytes per node,
# events per second, and the lookup figures against the median link RTT.
#
#   SIM_SIZES="10000 100000" bench/simscale.sh [path/to/mdht] [extra options]
#
# The scenario: 5 % loss, 10 % of routing entries pointing at dead nodes,
# one-way latency 50 ms x U(0.5, 1.5) per link + 0-20 ms jitter, 1,000
# get_peers lookups for 50 announced info-hashes. Churn runs add
# --churn weibull (k 0.38, 42.4 min sessions and times away; see
# docs/PERFORMANCE.md, "Churn").
#
# Memory: each run gets `ulimit -v` of SIM_VMEM_GB (default: 80 % of
# MemAvailable when it starts), so that a size that does not fit fails
# with "out of memory" instead of pushing the machine into swap; such a
# size is reported, not hidden. SIM_CHURN=0 skips the churn runs.
set -uo pipefail

BIN=${1:-build-bench/mdht}
shift || true
[ -x "$BIN" ] || { echo "bench/simscale.sh: no mdht binary at $BIN" >&2; exit 2; }
SIZES=${SIM_SIZES:-10000 100000}
CHURN=${SIM_CHURN:-1}
avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
VMEM_KB=$(( ${SIM_VMEM_GB:-0} * 1024 * 1024 ))
[ "$VMEM_KB" -gt 0 ] || VMEM_KB=$(( avail_kb * 8 / 10 ))
COMMON=(--seed 1 --loss 0.05 --dead 0.10 --infohashes 50 --lookups 1000
        --latency 50 --jitter 20 --latency-dist uniform "$@")

run() {
  local n=$1 name=$2
  shift 2
  local out
  if out=$( (ulimit -v "$VMEM_KB"; "$BIN" sim --nodes "$n" "${COMMON[@]}" "$@" --json) 2>&1); then
    echo "$out" | sed "s/^{/{\"run\":\"$name\",/"
  else
    printf '{"run":"%s","nodes":%d,"failed":"%s"}\n' "$name" "$n" \
      "$(echo "$out" | tail -1 | tr -d '"\\')"
  fi
}

echo "bench/simscale.sh: sizes $SIZES; memory limit $((VMEM_KB / 1024 / 1024)) GB per run; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)" >&2
{
  for n in $SIZES; do
    run "$n" static
    [ "$CHURN" = 0 ] || run "$n" weibull --churn weibull
  done
} | /usr/bin/python3 -c '
import json, sys
print("%-8s %8s %8s %9s %9s %9s %9s %6s | %8s %5s %5s %5s %5s %6s | %5s %6s" % (
    "run", "nodes", "wall s", "RSS MiB", "B/node", "heap/nd", "events/s",
    "B/ent", "found %", "ttfp", "done", "p99", "rnds", "dgrams", "RTT",
    "churn"))
for line in sys.stdin:
    r = json.loads(line)
    if "failed" in r:
        print("%-8s %8d  did not run: %s" % (r["run"], r["nodes"], r["failed"]))
        continue
    x = r["ratios"]
    rss = r["max_rss_kib"] * 1024
    m = r["memory"]
    print("%-8s %8d %8.1f %9.0f %9.0f %9.0f %9.0f %6.1f | %8.2f %5.2f %5.2f "
          "%5.2f %5.1f %6.1f | %5.0f %6s" % (
        r["run"], r["nodes"], r["wall_s"], rss / 2**20, rss / r["nodes"],
        m["per_node"]["total"], r["events_per_s"], m["bytes_per_entry"],
        r["success"] * 100, x["ttfp_median"],
        x["done_median"], x["done_p99"], r["rounds"]["mean"],
        r["datagrams"]["mean"], r["rtt_ms"]["median"],
        "%d/%d" % (r["churn_left"], r["churn_joined"])))
print("B/node is the peak RSS over the nodes (simulator included); heap/nd "
      "what a settled node holds (mdht_node_memory), B/ent its routing "
      "table per entry (slots, candidates, index); ttfp, done (median) and "
      "p99 (of completion) are multiples of the median link RTT; rnds and "
      "dgrams are means per lookup; churn is nodes that left/came back "
      "during the run")
'
