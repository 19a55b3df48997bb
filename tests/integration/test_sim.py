#!/usr/bin/env python3
"""`mdht sim`: the simulator from the command line.

- A small run (300 nodes, 2 % loss, 10 % stale routing entries, churn)
  exits 0 and prints one JSON object with the figures; the same seed gives
  the same figures; the table form prints the same success rate.
- Every bad argument gives status 2, one line on stderr, nothing on stdout.
- --progress prints a line per phase on stderr (phase, virtual time, events
  and events/s, nodes up, RSS, peak RSS and heap in use), and nothing else changes.
- --churn weibull: nodes leave and come back during the run (sessions of a
  few minutes, so that some do in a short run); the run completes with its
  figures and the same seed gives the same output, byte for byte.
- --threads 1, 2 and 3 give the same JSON, byte for byte, but for the
  machine's members (wall time, memory, events/s, threads); bad values
  are refused.

Usage: test_sim.py path/to/mdht
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as tl  # noqa: E402
from testlib import check  # noqa: E402

BIN = None
# Figures that depend on the machine, not on the seed.
MACHINE = ("wall_s", "max_rss_kib", "events_per_s", "threads")


def mdht(*args, timeout=120):
    return tl.cmd(BIN, args, timeout)[:3]


def test_run():
    args = ["sim", "--nodes", "300", "--seed", "5", "--loss", "0.02",
            "--dead", "0.1", "--churn", "0.5", "--lookups", "150",
            "--latency-dist", "lognormal"]
    rc, out, err = mdht(*(args + ["--json"]))
    check(rc == 0, "sim: status %d (%s)" % (rc, err.strip()))
    check(err == "", "sim: nothing on stderr: %r" % err)
    lines = out.splitlines()
    check(len(lines) == 1, "one JSON line")
    r = json.loads(lines[0])
    check(r["nodes"] == 300 and r["lookups"] == 150, "echoes the options")
    check(r["latency_dist"] == "lognormal", "latency model")
    check(r["success"] >= 0.97, "success %.3f" % r["success"])
    check(r["dead_entries"] >= 0.10, "dead entries %.3f" % r["dead_entries"])
    check(r["churn_left"] > 0, "churn happened")
    for k in ("ttfp_ms", "done_ms", "rounds", "datagrams", "rtt_ms"):
        check(r[k]["n"] > 0 and r[k]["median"] > 0, "%s measured" % k)
    check(r["ttfp_ms"]["median"] <= r["done_ms"]["median"], "ttfp <= done")
    check(abs(r["ratios"]["done_median"] -
              r["done_ms"]["median"] / r["rtt_ms"]["median"]) < 0.01,
          "ratio to the median RTT")
    rc, out2, _ = mdht(*(args + ["--json"]))
    r2 = json.loads(out2)
    for k in MACHINE:
        r.pop(k)
        r2.pop(k)
    check(r == r2, "same seed, same figures")
    rc, text, err = mdht(*args)
    check(rc == 0, "table: status %d" % rc)
    check("%.2f %%" % (r["success"] * 100) in text, "table: success rate")
    check("time to first peer ms" in text, "table: ttfp row")


def test_bad_arguments():
    for bad in (["--nodes", "1"], ["--nodes", "x"], ["--loss", "1.5"],
                ["--loss", "abc"], ["--latency-dist", "pareto"],
                ["--dead", "0.95"], ["--churn", "-1"], ["--bogus"],
                ["extra"], ["--json=1"], ["--nodes"],
                ["--nodes", "3", "--routers", "5"],
                ["--soft-timeout", "6000"], ["--lookups", "0"],
                ["--churn", "pareto"], ["--churn", "weibull",
                                        "--session-shape", "0"],
                ["--session-scale", "5"], ["--rejoin", "maybe"],
                ["--join-batch", "-1"], ["--nodes", "2000001"]):
        rc, out, err = mdht("sim", *bad, timeout=10)
        check(rc == 2, "%s: status %d, want 2" % (bad, rc))
        check(len(err.strip().splitlines()) == 1 and err.startswith("mdht: "),
              "%s: one line on stderr, got %r" % (bad, err))
        check(out == "", "%s: nothing on stdout" % (bad,))
    rc, out, err = mdht("sim", "--help", timeout=10)
    check(rc == 0 and "--latency-dist" in out and err == "", "sim --help")


PHASES = ("join", "settle", "announce", "kill", "lookups", "done")


def test_progress():
    args = ["sim", "--nodes", "400", "--seed", "9", "--lookups", "60",
            "--threads", "2", "--json"]
    rc, quiet, err = mdht(*args)
    check(rc == 0 and err == "", "sim without --progress: quiet stderr")
    rc, out, err = mdht(*(args + ["--progress"]))
    check(rc == 0, "sim --progress: status %d" % rc)
    lines = err.splitlines()
    seen = []
    heaps = []
    for line in lines:
        m = re.match(r"mdht sim: (\w+) +virtual +([\d.]+) s, (\d+) events "
                     r"\((\d+)/s\), (\d+) queued, nodes (\d+)/(\d+) up, "
                     r"(\d+) threads, RSS (\d+) MiB \(peak (\d+)(?:, heap in use "
                     r"(\d+))?\), wall ([\d.]+) s$", line)
        check(m is not None, "progress line: %r" % line)
        seen.append(m.group(1))
        check(int(m.group(7)) == 400, "nodes in the line")
        check(int(m.group(8)) == 2, "threads in the line: %r" % line)
        check(int(m.group(9)) > 0 and int(m.group(10)) >= int(m.group(9)),
              "RSS and peak: %r" % line)
        # glibc tells what the heap holds (not under ASan, whose malloc
        # glibc cannot see): some, and no more than the process has
        heaps.append(m.group(11))
        if m.group(11) is not None:
            check(0 < int(m.group(11)) <= int(m.group(10)) + 1,
                  "heap in use: %r" % line)
    # the line that starts a phase has it (not under ASan's allocator), and
    # only that line: mallinfo2 is too slow to call every 2 s at scale
    if "ASAN_OPTIONS" not in os.environ:
        check(all(heaps[seen.index(ph)] is not None for ph in PHASES),
              "heap in use on each phase's first line (glibc malloc)")
    for ph in PHASES:
        check(ph in seen, "phase %s reported (%s)" % (ph, seen))
    check(seen.index("join") < seen.index("lookups") < seen.index("done"),
          "phases in order")
    r1, r2 = json.loads(quiet), json.loads(out)
    for k in MACHINE:
        r1.pop(k)
        r2.pop(k)
    check(r1 == r2, "--progress changes nothing in the figures")
    check(r2["events"] > 0, "events counted")


def test_weibull_churn():
    args = ["sim", "--nodes", "400", "--seed", "21", "--loss", "0.05",
            "--dead", "0.1", "--lookups", "100", "--churn", "weibull",
            "--session-scale", "2", "--rejoin", "same-id"]
    rc, out, err = mdht(*(args + ["--json"]))
    check(rc == 0 and err == "", "weibull: status %d (%s)" % (rc, err))
    r = json.loads(out)
    check(r["churn_model"] == "weibull" and r["session_shape"] == 0.38 and
          r["session_scale_min"] == 2 and r["down_scale_min"] == 2 and
          r["rejoin"] == "same-id", "weibull: echoes the model")
    check(r["churn_left"] > 0 and r["churn_joined"] > 0,
          "weibull: nodes left (%d) and came back (%d)" %
          (r["churn_left"], r["churn_joined"]))
    check(r["success"] >= 0.95, "weibull: success %.3f" % r["success"])
    for k in ("ttfp_ms", "done_ms", "rounds", "datagrams"):
        check(r[k]["n"] > 0, "weibull: %s measured" % k)
    # The table, twice: the same bytes but for the wall-clock line.
    rc, t1, _ = mdht(*args)
    rc2, t2, _ = mdht(*args)
    check(rc == 0 and rc2 == 0, "weibull table: status")
    strip = lambda t: [l for l in t.splitlines() if not l.startswith("run:")]
    check(strip(t1) == strip(t2) and len(strip(t1)) > 8,
          "weibull: same seed, same output")
    check("churn weibull (k 0.38, sessions 2 min, away 2 min, same id)" in t1,
          "weibull: the model in the header")
    rc, t3, _ = mdht(*(args[:3] + ["22"] + args[4:]))
    check(strip(t3) != strip(t1), "weibull: another seed, other figures")


def test_threads():
    """--threads 1, 2 and 3: the same figures, byte for byte but for the
    machine's (wall time, memory, events/s and the thread count, which
    --json reports)."""
    args = ["sim", "--nodes", "500", "--seed", "3", "--loss", "0.05",
            "--dead", "0.1", "--churn", "0.5", "--lookups", "200",
            "--latency", "50", "--jitter", "20", "--json"]
    outs = {}
    for t in ("1", "2", "3"):
        rc, out, err = mdht(*(args + ["--threads", t]))
        check(rc == 0 and err == "", "--threads %s: status %d (%s)" %
              (t, rc, err.strip()))
        r = json.loads(out)
        check(r["threads"] == int(t), "--threads %s reported: %r" %
              (t, r["threads"]))
        # Byte for byte: the JSON text up to the machine's members.
        outs[t] = out[:out.index(',"wall_s":')]
        check(r["success"] >= 0.97 and r["churn_left"] > 0,
              "--threads %s: a real run (success %.3f)" % (t, r["success"]))
    check(outs["1"] == outs["2"] == outs["3"],
          "the same figures on 1, 2 and 3 threads")
    rc, out, _ = mdht(*(args[:-1] + ["--threads", "2"]))
    check(rc == 0 and re.search(r"^run: [\d.]+ s wall on 2 threads, ", out,
                                re.M) is not None,
          "the table names the threads: %r" % out[-200:])
    for bad in ("0", "65", "x", ""):
        rc, out, err = mdht("sim", "--threads", bad)
        check(rc == 2 and out == "" and len(err.splitlines()) == 1 and
              err.startswith("mdht: "), "--threads %r refused: %r" %
              (bad, err))


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    test_bad_arguments()
    test_run()
    test_progress()
    test_weibull_churn()
    test_threads()
    print("test_sim: %d checks passed" % tl.checks)


if __name__ == "__main__":
    main()
