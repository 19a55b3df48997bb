#!/usr/bin/env python3
"""`mdht sim`: the simulator from the command line.

- A small run (300 nodes, 2 % loss, 10 % stale routing entries, churn)
  exits 0 and prints one JSON object with the figures; the same seed gives
  the same figures; the table form prints the same success rate.
- Every bad argument gives status 2, one line on stderr, nothing on stdout.

Usage: test_sim.py path/to/mdht
"""
import json
import os
import subprocess
import sys

# Hermetic (CMake unsets them for ctest too): no node of the developer's on
# the default control socket answers here, nor do our nodes take it.
for _var in ("XDG_RUNTIME_DIR", "MDHT_CONTROL"):
    os.environ.pop(_var, None)

BIN = None
checks = 0
# Figures that depend on the machine, not on the seed.
MACHINE = ("wall_s", "max_rss_kib")


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def mdht(*args, timeout=120):
    p = subprocess.run([BIN] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


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
                ["--soft-timeout", "6000"], ["--lookups", "0"]):
        rc, out, err = mdht("sim", *bad, timeout=10)
        check(rc == 2, "%s: status %d, want 2" % (bad, rc))
        check(len(err.strip().splitlines()) == 1 and err.startswith("mdht: "),
              "%s: one line on stderr, got %r" % (bad, err))
        check(out == "", "%s: nothing on stdout" % (bad,))
    rc, out, err = mdht("sim", "--help", timeout=10)
    check(rc == 0 and "--latency-dist" in out and err == "", "sim --help")


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    test_bad_arguments()
    test_run()
    print("test_sim: %d checks passed" % checks)


if __name__ == "__main__":
    main()
