"""Shared pieces of the adversarial tests: the KRPC toolkit of
tests/integration, a check counter, and a runner that prints what each
attack achieved, so that the figures in docs/SECURITY.md come from a run.

Every test here plays one attacker from docs/SECURITY.md against the real
`mdht run` over loopback, where each simulated host has its own 127.x.y.z
address. A test asserts that the attack fails; run against a build without
the defence, it fails.
"""
import json
import os
import select
import socket
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
from krpc_client import *  # noqa: F401,F403  (re-exported for the tests)
import testlib  # noqa: E402
from testlib import check, closest, enter_namespace  # noqa: F401,E402


def figure(text):
    """One measured figure of the attack, printed for the log and the
    closing note."""
    print("figure: " + text, flush=True)


def cmd(binary, args, timeout=20):
    """Runs `mdht ARGS`; returns (exit status, stdout, stderr)."""
    return testlib.cmd(binary, args, timeout)[:3]


def stats(binary, ctl):
    """`mdht stats --json` of the node serving `ctl`, as a dict."""
    rc, out, err = cmd(binary, ["stats", "--control", ctl, "--json"])
    check(rc == 0, "mdht stats: %s" % err)
    return json.loads(out)


def udp_drops(addr):
    """Datagrams the kernel dropped at the IPv4 UDP socket bound to `addr`
    ((ip, port)) because its receive buffer was full (/proc/net/udp's
    drops column). A node descheduled on a loaded machine never sees
    those, so no counter of its own can."""
    ip = socket.inet_aton(addr[0])[::-1].hex().upper()
    want = "%s:%04X" % (ip, addr[1])
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if cols[1] == want:
                return int(cols[-1])
    check(False, "a UDP socket bound to %s:%d in /proc/net/udp" % addr)


def wait_control(binary, ctl):
    """Waits (at most 10 s) until the node answers on its control socket."""
    end = time.time() + 10
    while time.time() < end:
        if os.path.exists(ctl) and cmd(binary, ["stats", "--control", ctl])[0] == 0:
            return
        time.sleep(0.05)
    raise AssertionError("control socket never answered")


def announce(sock, to, ih, port):
    """get_peers for a token, then announce_peer; True if accepted."""
    r = sock.query(to, "get_peers", {"info_hash": ih})
    token = r[b"r"][b"token"]
    r = sock.query(to, "announce_peer",
                   {"info_hash": ih, "port": port, "token": token})
    return r.get(b"y") == b"r"


def send_batch(sock, to, queries, timeout=2.0):
    """Sends (method, args) queries back to back, then collects replies;
    returns how many were answered with "r"."""
    tids = set()
    for q, a in queries:
        t = sock.tid()
        tids.add(t)
        args = {"id": sock.id}
        args.update(a)
        sock.send(to, {"t": t, "y": "q", "q": q, "a": args})
    ok = 0
    end = time.time() + timeout
    while tids and time.time() < end:
        r, _, _ = select.select([sock.s], [], [], max(0, end - time.time()))
        if not r:
            break
        m = bdecode(sock.s.recvfrom(65536)[0])
        if m.get(b"t") in tids:
            tids.discard(m[b"t"])
            ok += m.get(b"y") == b"r"
    return ok


def paced_flood(sock, to, n, query, max_seconds=20.0):
    """n queries made by query() (method, args) from one socket: 400 at
    once (within the burst), then 50 every 0.25 s (200/s, under the 250/s
    refill). Bounded in count and time. Returns (accepted, sent, seconds)."""
    t0 = time.time()
    ok = sent = 0
    while sent < n and time.time() - t0 < max_seconds:
        step = time.time()
        batch = [query() for _ in range(min(50, n - sent))]
        # Replies past a reply budget may never come: wait no longer
        # than the pacing does.
        ok += send_batch(sock, to, batch, timeout=0.25)
        sent += len(batch)
        if sent > 400:
            time.sleep(max(0.0, 0.25 - (time.time() - step)))
    return ok, sent, time.time() - t0


def run(main):
    """Runs main(binary); exit status 0 only if every check held."""
    binary = sys.argv[1]
    try:
        main(binary)
    except Exception:
        traceback.print_exc()
        print("FAILED after %d checks" % testlib.checks)
        sys.exit(1)
    print("%d checks passed" % testlib.checks)
