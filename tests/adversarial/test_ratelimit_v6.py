"""Attack 5: one IPv6 host, many addresses, to escape the rate limit.

A host with a /64 (every SLAAC host) can send from 2^64 addresses. Were
the rate limit keyed on the whole address, every datagram could come
from a fresh address with a full bucket. The limiter keys IPv6 on the
/64 (rate 250/s, burst 500 by default), and also on the /48 with 4x the
rate and burst (src/core/ratelimit.h).

Loopback has only ::1, so the test runs in a network namespace of its own
(`unshare -n`, as root): 2001:db8::/32 is routed locally on its lo, and
with net.ipv6.ip_nonlocal_bind the attacker sends each datagram from
another address (IPV6_PKTINFO). Nothing leaves the namespace.

  1. 5,000 pings from 5,000 addresses of one /64: at most the burst plus
     the rate over the elapsed time are answered (node run with
     --reply-budget 0, so that only the limiter counts);
  2. 300 pings from each of 20 /64s of one /48: at most 4 bursts plus 4
     times the rate are answered;
  3. attack 1 against a node with default settings (figure only: there
     the reply budget of the /64, 8,000 B/s, is the tighter bound).

Without root (no namespace), it says why and exits 77 (skipped; as root
or under CI it fails instead); the
core test test_node.c:test_rate_limit_v6_tiers covers the same on
virtual time.

Run: python3 tests/adversarial/test_ratelimit_v6.py build/mdht
"""
import json
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

from advlib import (MdhtProcess, bdecode, bencode, check, cmd, enter_namespace,
                    figure, run)

ENV = "MDHT_ADV_NETNS"
NODE_A = "2001:db8:9::1"
NODE_B = "2001:db8:9::2"
RATE, BURST, SITE = 250, 500, 4


def setup_namespace():
    for c in (["ip", "link", "set", "lo", "up"],
              ["ip", "-6", "addr", "add", NODE_A + "/128", "dev", "lo"],
              ["ip", "-6", "addr", "add", NODE_B + "/128", "dev", "lo"],
              ["ip", "-6", "route", "add", "local", "2001:db8::/32", "dev",
               "lo"]):
        subprocess.run(c, check=True)
    with open("/proc/sys/net/ipv6/ip_nonlocal_bind", "w") as f:
        f.write("1")  # this namespace's own setting


def rate_limited(binary, ctl):
    rc, out, err = cmd(binary, ["stats", "--control", ctl, "--json"])
    check(rc == 0, "stats: %s" % err)
    return json.loads(out)["rate_limited"]


def start(binary, ip, ctl, extra):
    n = MdhtProcess(binary, ["--bind", ip, "--port", "0", "--no-bootstrap",
                             "--control", ctl] + extra)
    n.addr = (n.addr[0].strip("[]"), n.addr[1])
    end = time.time() + 10
    while not (os.path.exists(ctl) and
               cmd(binary, ["stats", "--control", ctl])[0] == 0):
        check(time.time() < end, "control socket answers")
        time.sleep(0.05)
    return n


def addr_in(prefix64, iid):
    """The address prefix64 (8 bytes) + iid (64 bits)."""
    return prefix64 + iid.to_bytes(8, "big")


def pings(node_addr, sources, seconds):
    """One ping from each address of `sources` (16-byte strings), spread
    over `seconds`. Returns (answers received, elapsed seconds)."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("::", 0))
    answers = [0]
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            r, _, _ = select.select([s], [], [], 0.05)
            if r:
                m = bdecode(s.recv(65536))
                answers[0] += m.get(b"y") == b"r"

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    nid = os.urandom(20)
    t0 = time.time()
    for i, src in enumerate(sources):
        q = bencode({"t": i.to_bytes(4, "big"), "y": "q", "q": "ping",
                     "a": {"id": nid}})
        pk = src + struct.pack("I", 0)
        s.sendmsg([q], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pk)], 0,
                  node_addr)
        lag = t0 + seconds * (i + 1) / len(sources) - time.time()
        if lag > 0.002:
            time.sleep(lag)
    elapsed = time.time() - t0
    time.sleep(0.5)  # answers on their way
    stop.set()
    t.join(2)
    s.close()
    return answers[0], elapsed


def main(binary):
    # CI runs as root, where a namespace can always be made: there a
    # failure to make one is a failure, never a quiet skip.
    enter_namespace(ENV, __file__, "; the /64 and /48 tiers are tested in "
                    "the core (test_node.c:test_rate_limit_v6_tiers)")
    setup_namespace()
    tmp = tempfile.mkdtemp(prefix="mdht-adv-v6-")
    rnd = random.Random(5)
    a = b = None
    try:
        a = start(binary, NODE_A, os.path.join(tmp, "a"),
                  ["--reply-budget", "0"])
        b = start(binary, NODE_B, os.path.join(tmp, "b"), [])

        # 1. One /64, 5,000 addresses.
        p64 = socket.inet_pton(socket.AF_INET6, "2001:db8:1:1::")[:8]
        srcs = [addr_in(p64, rnd.getrandbits(64)) for _ in range(5000)]
        before = rate_limited(binary, os.path.join(tmp, "a"))
        got, t = pings(a.addr, srcs, 0.5)
        limited = rate_limited(binary, os.path.join(tmp, "a")) - before
        bound = BURST + RATE * (t + 0.1)
        figure("5,000 pings from 5,000 addresses of one /64 in %.2f s: %d "
               "answered, %d rate-limited (burst %d + %d/s)" % (
                   t, got, limited, BURST, RATE))
        check(got <= bound, "at most burst + rate * T answered (%d > %d)"
              % (got, bound))
        check(got >= BURST, "the burst is answered (%d)" % got)
        check(limited >= 5000 - bound, "the rest is rate-limited (%d)"
              % limited)

        # 2. Twenty /64s of one /48, 300 each: under the /64 burst alone.
        srcs = []
        for sub in range(20):
            p = socket.inet_pton(socket.AF_INET6,
                                 "2001:db8:2:%x::" % (0x100 + sub))[:8]
            srcs += [addr_in(p, rnd.getrandbits(64)) for _ in range(300)]
        rnd.shuffle(srcs)
        got, t = pings(a.addr, srcs, 0.6)
        bound = SITE * (BURST + RATE * (t + 0.1))
        figure("6,000 pings from 20 /64s of one /48 (300 each) in %.2f s: "
               "%d answered (/48 tier: burst %d + %d/s)" % (
                   t, got, SITE * BURST, SITE * RATE))
        check(got <= bound, "at most 4 bursts + 4x rate * T answered "
              "(%d > %d)" % (got, bound))
        check(got >= SITE * BURST, "4 bursts are answered (%d)" % got)

        # 3. Attack 1 against the defaults: the reply budget binds first.
        p64 = socket.inet_pton(socket.AF_INET6, "2001:db8:3:1::")[:8]
        srcs = [addr_in(p64, rnd.getrandbits(64)) for _ in range(5000)]
        got, t = pings(b.addr, srcs, 0.5)
        figure("the same 5,000 pings from one /64 against default settings: "
               "%d answered (the /64's reply budget, 16,000 bytes of burst, "
               "binds before the limiter)" % got)
        check(got <= BURST + RATE * (t + 0.1), "defaults: limited too")
        check(a.alive() and b.alive(), "the nodes survived")
    finally:
        for n in (a, b):
            if n:
                n.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
