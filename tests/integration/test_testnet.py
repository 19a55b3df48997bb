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
import select
import signal
import subprocess
import sys
import time

# Hermetic (CMake unsets them for ctest too): no node of the developer's on
# the default control socket answers here, nor do our nodes take it.
for _var in ("XDG_RUNTIME_DIR", "MDHT_CONTROL"):
    os.environ.pop(_var, None)

BIN = None
N = 20
K = 8
BASE = "127.0.11.1"
PORT = 17300
IH = "0123456789abcdef0123456789abcdef01234567"
PEER_BIND = "127.0.11.100"
PEER_PORT = 6999
checks = 0


def check(cond, what):
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def mdht(*args, timeout=60):
    p = subprocess.run([BIN] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout.decode().splitlines(), p.stderr.decode()


def read_lines(proc, until, timeout):
    """Lines of proc's stdout up to and including the one starting with
    `until`, within `timeout` seconds."""
    lines, buf = [], b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            lines.append(line.decode())
            if lines[-1].startswith(until):
                return lines
    raise AssertionError("no '%s' line within %ss: %r" % (until, timeout, lines))


def closest(ids, target, k):
    t = int(target, 16)
    return sorted(ids, key=lambda i: int(i, 16) ^ t)[:k]


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
    proc = subprocess.Popen([BIN, "testnet", "--nodes", str(N), "--base-ip",
                             BASE, "--port", str(PORT)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        lines = read_lines(proc, "bootstrap: ", 20)
        boot = lines[-1].split(" ", 1)[1]
        check(boot == "%s:%d" % (BASE, PORT), "bootstrap line: %r" % lines[-1])
        nodes = [l.split() for l in lines[:-1]]
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
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    test_bad_arguments()
    test_testnet()
    print("test_testnet: %d checks passed" % checks)


if __name__ == "__main__":
    main()
