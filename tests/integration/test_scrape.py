#!/usr/bin/env python3
"""BEP 33 scrapes, black-box:

- on a 20-node testnet (127.0.14.1 .. 127.0.14.20, port 17600), 30 peers
  from 30 addresses announce one info-hash to its 8 closest nodes, 10 of
  them with seed=1; a raw get_peers with scrape=1 gets BFsd and BFpe, 256
  bytes each, equal bit for bit to filters built here in Python from the
  BEP's pseudocode (an implementation independent of the C one);
- `mdht scrape` estimates 10 seeds and 20 peers (within the filters'
  error) and says from how many nodes, in text and --json;
- `mdht announce --seed` is counted as one more seed;
- an info-hash nobody holds exits 1, a bad one exits 2 with one line.

Nothing leaves loopback; the testnet is killed by PID in a finally block;
every wait is bounded.

Usage: test_scrape.py path/to/mdht
"""
import hashlib
import json
import math
import os
import re
import time
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from krpc_client import Sock  # noqa: E402
import testlib as tl  # noqa: E402
from testlib import check, closest  # noqa: E402

BIN = None
N = 20
K = 8
BASE = "127.0.14.1"
PORT = 17600
SEEDS, LEECHERS = 10, 20

def mdht(*args, timeout=60):
    return tl.cmd_lines(BIN, args, timeout)


def bloom(ips):
    """The BEP's insertIP, as its pseudocode says."""
    f = bytearray(256)
    for ip in ips:
        h = hashlib.sha1(bytes(int(x) for x in ip.split("."))).digest()
        for i in (h[0] | h[1] << 8, h[2] | h[3] << 8):
            i %= 2048
            f[i // 8] |= 1 << (i % 8)
    return bytes(f)


def estimate(f):
    zeros = sum(8 - bin(b).count("1") for b in f)
    zeros = min(2047, max(1, zeros))
    return math.log(zeros / 2048) / (2 * math.log(1 - 1 / 2048))


def announce(nodes, ih):
    """SEEDS + LEECHERS peers on their own addresses announce ih to its K
    closest nodes; returns their addresses (seeds first)."""
    ips = ["127.0.14.%d" % (100 + i) for i in range(SEEDS + LEECHERS)]
    for i, ip in enumerate(ips):
        s = Sock(ip)
        try:
            for _, addr in closest(nodes, ih, K):
                host, port = addr.rsplit(":", 1)
                to = (host, int(port))
                r = s.query(to, "get_peers", {"info_hash": ih})
                args = {"info_hash": ih, "port": 6881, "token": r[b"r"][b"token"]}
                if i < SEEDS:
                    args["seed"] = 1
                a = s.query(to, "announce_peer", args)
                check(a.get(b"y") == b"r", "announce accepted: %r" % a)
        finally:
            s.close()
    return ips


def raw_filters(nodes, ih, ips):
    """A node among the closest answers scrape=1 with the filters of what
    it stores, bit-identical to the BEP's pseudocode; noseed and plain
    get_peers carry none."""
    _, addr = closest(nodes, ih, 1)[0]
    host, port = addr.rsplit(":", 1)
    s = Sock("127.0.14.240")
    try:
        r = s.query((host, int(port)), "get_peers",
                    {"info_hash": ih, "scrape": 1})[b"r"]
        check(len(r[b"BFsd"]) == 256 and len(r[b"BFpe"]) == 256,
              "BFsd and BFpe are 256 bytes")
        check(r[b"BFsd"] == bloom(ips[:SEEDS]), "BFsd as the BEP computes it")
        check(r[b"BFpe"] == bloom(ips[SEEDS:]), "BFpe as the BEP computes it")
        print("test_scrape: node %s: BFsd estimates %.2f, BFpe %.2f" %
              (addr, estimate(r[b"BFsd"]), estimate(r[b"BFpe"])))
        r = s.query((host, int(port)), "get_peers", {"info_hash": ih})[b"r"]
        check(b"BFsd" not in r and b"BFpe" not in r, "no filters unasked")
        r = s.query((host, int(port)), "get_peers",
                    {"info_hash": ih, "noseed": 1})[b"r"]
        vals = {".".join(str(b) for b in v[:4]) for v in r[b"values"]}
        check(vals == set(ips[SEEDS:]) | (vals & set(ips[:SEEDS])) and
              vals >= set(ips[SEEDS:]), "noseed: every downloader first")
    finally:
        s.close()


def test_scrape():
    proc, nodes, boot = tl.start_testnet(BIN, N, BASE, PORT, timeout=30,
                                         stderr=subprocess.DEVNULL)
    try:
        check(len(nodes) == N, "%d testnet nodes" % len(nodes))
        ih = os.urandom(20)
        ips = announce(nodes, ih)
        raw_filters(nodes, ih, ips)
        common = ["--bootstrap", boot, "--timeout", "20"]

        # A testnet just started: its nodes' tables fill within seconds,
        # and until they do a lookup may meet only one holder of the
        # swarm. A few tries, as test_sample gives its crawl.
        for attempt in range(5):
            rc, out, err = mdht("scrape", ih.hex(), "--bind", "127.0.14.250",
                                "--json", *common)
            check(rc == 0, "scrape: status %d (%s)" % (rc, err.strip()))
            o = json.loads(out[-1])
            if o["nodes"] >= 3:
                break
            time.sleep(1)
        print("test_scrape: mdht scrape --json (try %d): %s" %
              (attempt + 1, out[-1]))
        check(o["type"] == "scrape" and o["info_hash"] == ih.hex(), "object")
        check(abs(o["seeds"] - SEEDS) <= 1, "seeds %s ~ %d" % (o["seeds"], SEEDS))
        check(abs(o["peers"] - LEECHERS) <= 2,
              "peers %s ~ %d" % (o["peers"], LEECHERS))
        check(o["nodes"] >= 3, "filters from %d nodes" % o["nodes"])

        rc, out, err = mdht("announce", ih.hex(), "--port", "7000", "--seed",
                            "--bind", "127.0.14.251", *common)
        check(rc == 0, "announce --seed: %d (%s)" % (rc, err.strip()))
        rc, out, err = mdht("scrape", "magnet:?xt=urn:btih:" + ih.hex(),
                            "--bind", "127.0.14.252", *common)
        check(rc == 0 and len(out) == 1, "scrape text: %d %r" % (rc, out))
        print("test_scrape: after announce --seed: %s" % out[0])
        m = re.fullmatch(r"(\d+) seeds?, (\d+) peers? \(from (\d+) nodes?\)",
                         out[0])
        check(m is not None, "format: %r" % out)
        check(abs(int(m.group(1)) - (SEEDS + 1)) <= 1, "one more seed: %r" % out)

        rc, out, err = mdht("scrape", os.urandom(20).hex(), "--bind",
                            "127.0.14.253", *common)
        check(rc == 1 and out == [] and "no node holds" in err,
              "nobody holds it: %d %r %r" % (rc, out, err))
        rc, out, err = mdht("scrape", "xyz", "--bind", "127.0.14.253")
        check(rc == 2 and len(err.strip().splitlines()) == 1,
              "bad info-hash: %d %r" % (rc, err))
    finally:
        tl.stop_testnet(proc)


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    test_scrape()
    print("test_scrape: %d checks passed" % tl.checks)


if __name__ == "__main__":
    main()
