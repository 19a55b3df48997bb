#!/usr/bin/env python3
"""`mdht testnet`: 20 nodes on loopback in one process (127.0.11.1 ..
127.0.11.20, port 17300), used by the short-lived client commands through
the printed bootstrap address:

- one "nodeid ip:port" line per node, then "bootstrap: ip:port";
- `mdht find-node` returns exactly the 8 ids of the testnet closest to a
  target;
- a peer announced with `mdht announce` (accepted by testnet nodes) is
  found by `mdht get-peers`;
- SIGTERM ends it with status 0; bad arguments give status 2 and one line
  on stderr.

Nothing leaves loopback; the testnet process is killed by PID in the
finally block; every wait is bounded.

Usage: test_testnet.py path/to/mdht
"""
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as tl  # noqa: E402
from testlib import check, closest  # noqa: E402

BIN = None
N = 20
K = 8
BASE = "127.0.11.1"
PORT = 17300
IH = "0123456789abcdef0123456789abcdef01234567"
PEER_BIND = "127.0.11.100"
PEER_PORT = 6999

def mdht(*args, timeout=60):
    return tl.cmd_lines(BIN, args, timeout)


def test_bad_arguments():
    for args in (["testnet"], ["testnet", "--nodes", "0"],
                 ["testnet", "--nodes", "3", "--base-ip", "10.0.0.1"],
                 ["testnet", "--nodes", "3", "--port", "x"],
                 ["testnet", "--nodes", "3", "--bogus"]):
        rc, out, err = mdht(*args, timeout=10)
        check(rc == 2, "%s: status %d, want 2" % (args, rc))
        check(len(err.strip().splitlines()) == 1,
              "%s: want one line on stderr, got %r" % (args, err))
        check(out == [], "%s: nothing on stdout" % (args,))


def test_testnet():
    proc, nodes, boot = tl.start_testnet(BIN, N, BASE, PORT)
    try:
        check(boot == "%s:%d" % (BASE, PORT), "bootstrap line: %r" % boot)
        check(len(nodes) == N, "%d node lines, want %d" % (len(nodes), N))
        want_addrs = ["127.0.11.%d:%d" % (i + 1, PORT) for i in range(N)]
        check([a for _, a in nodes] == want_addrs, "node addresses")
        ids = [i for i, _ in nodes]
        check(all(len(i) == 40 and int(i, 16) >= 0 for i in ids), "node ids")
        check(len(set(ids)) == N, "distinct ids")

        # find-node: the 8 closest of the testnet, once it has converged.
        rnd = random.Random(7)
        target = "%040x" % rnd.getrandbits(160)
        want = closest(ids, target, K)
        got = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rc, out, err = mdht("find-node", target, "--bootstrap", boot,
                                "--bind", "127.0.11.101", "--timeout", "10")
            got = [l.split()[0] for l in out]
            if rc == 0 and got == want:
                break
            time.sleep(1)
        check(got == want, "find-node: %r, want %r" % (got, want))

        # announce, then get-peers from another address.
        rc, out, err = mdht("announce", IH, "--port", str(PEER_PORT),
                            "--bootstrap", boot, "--bind", PEER_BIND,
                            "--timeout", "10")
        check(rc == 0, "announce: status %d (%s)" % (rc, err.strip()))
        accepted = [l.split() for l in out]
        check(len(accepted) >= K - 2,
              "announce accepted by %d nodes" % len(accepted))
        check(all([i, a] in nodes for i, a in accepted),
              "announce: accepted by testnet nodes only: %r" % accepted)
        check([i for i, _ in accepted][:3] == closest(ids, IH, 3),
              "announce: the closest nodes accepted")
        rc, out, err = mdht("get-peers", IH, "--bootstrap", boot,
                            "--bind", "127.0.11.102", "--timeout", "10")
        check(rc == 0, "get-peers: status %d (%s)" % (rc, err.strip()))
        check("%s:%d" % (PEER_BIND, PEER_PORT) in out,
              "get-peers found the peer: %r" % out)

        check(proc.poll() is None, "testnet still running")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        check(rc == 0, "SIGTERM: status %d" % rc)
        err = proc.stderr.read().decode()
        check(err == "", "nothing on stderr: %r" % err)
    finally:
        tl.stop_testnet(proc)


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    test_bad_arguments()
    test_testnet()
    print("test_testnet: %d checks passed" % tl.checks)


if __name__ == "__main__":
    main()
