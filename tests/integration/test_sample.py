#!/usr/bin/env python3
"""`mdht sample`, the BEP 51 crawler, black-box:

- on a 50-node testnet (127.0.13.1 .. 127.0.13.50, port 17500) where 200
  distinct info-hashes were announced (each to the 8 testnet nodes closest
  to it, with get_peers + announce_peer from krpc_client), one crawl finds
  at least 190 of them (95 %); the figure, the time and the queries are
  printed;
- with --json, one {"info_hash", "from"} object per line, "from" a testnet
  node; --max N stops at exactly N lines;
- lines stream: against a fake node that answers with samples and names a
  node that never answers, the first info-hash is printed at once, and the
  crawl ends at --timeout (within a second) with status 0; a node that
  answers error 204 is counted as without BEP 51;
- a crawl that finds nothing exits 1; bad arguments exit 2 with one line.

Nothing leaves loopback; the testnet is killed by PID in a finally block;
every wait is bounded.

Usage: test_sample.py path/to/mdht
"""
import json
import os
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from krpc_client import Sock, bdecode, bencode, serve_all  # noqa: E402
import testlib as tl  # noqa: E402
from testlib import check, closest  # noqa: E402

BIN = None
N = 50
NIH = 200
K = 8
BASE = "127.0.13.1"
PORT = 17500

def mdht(*args, timeout=60):
    rc, out, err, secs = tl.cmd(BIN, args, timeout)
    return rc, out.splitlines(), err, secs


def announce_all(nodes, ihs):
    """Each info-hash to its K closest testnet nodes: get_peers for the
    token, then announce_peer. Four source addresses, so that no node's
    reply budget for one of them runs dry. Returns the accepted count."""
    socks = [Sock("127.0.13.%d" % (200 + i)) for i in range(4)]
    ok = 0
    try:
        for n, ih in enumerate(ihs):
            s = socks[n % len(socks)]
            for nid, addr in closest(nodes, ih, K):
                ip, port = addr.rsplit(":", 1)
                to = (ip, int(port))
                r = s.query(to, "get_peers", {"info_hash": ih})
                tok = r[b"r"][b"token"]
                r = s.query(to, "announce_peer", {"info_hash": ih,
                                                  "port": 6881 + n,
                                                  "token": tok})
                ok += r.get(b"y") == b"r"
    finally:
        for s in socks:
            s.close()
    return ok


def summary(err):
    line = [l for l in err.splitlines() if "nodes queried" in l]
    check(len(line) == 1, "one summary line on stderr: %r" % err)
    return line[0]


def test_testnet_crawl():
    proc, nodes, boot = tl.start_testnet(BIN, N, BASE, PORT, timeout=30)
    try:
        check(len(nodes) == N, "%d testnet nodes" % len(nodes))
        ihs = [os.urandom(20) for _ in range(NIH)]
        check(len(set(ihs)) == NIH, "distinct info-hashes")
        ok = announce_all(nodes, ihs)
        check(ok == NIH * K, "announces accepted: %d of %d" % (ok, NIH * K))
        want = {ih.hex() for ih in ihs}
        # The testnet's tables fill within seconds of its start: give the
        # crawl a few tries while they do.
        found, took, summ = set(), 0, ""
        for attempt in range(5):
            rc, out, err, took = mdht("sample", "--bootstrap", boot, "--bind",
                                      "127.0.13.250", "--timeout", "20",
                                      "--json")
            check(rc == 0, "sample: status %d (%s)" % (rc, err.strip()))
            objs = [json.loads(l) for l in out]
            found = {o["info_hash"] for o in objs}
            check(len(found) == len(objs), "each info-hash printed once")
            addrs = {a for _, a in nodes}
            check(all(o["from"] in addrs for o in objs),
                  "'from' is a testnet node")
            summ = summary(err)
            if len(found & want) >= 190:
                break
            time.sleep(2)
        got = len(found & want)
        print("test_sample: found %d of %d announced info-hashes (%.0f %%) "
              "in %.2f s; %s" % (got, NIH, 100.0 * got / NIH, took, summ))
        check(got >= 190, "found %d of %d (want >= 190)" % (got, NIH))
        check(found <= want, "only announced info-hashes")

        # --max 7: exactly 7 lines, text mode: 40 hex digits each.
        rc, out, err, _ = mdht("sample", "--bootstrap", boot, "--bind",
                               "127.0.13.251", "--timeout", "20", "--max", "7")
        check(rc == 0, "sample --max: status %d" % rc)
        check(len(out) == 7, "--max 7 printed %d lines" % len(out))
        check(all(len(l) == 40 and l in want for l in out), "hex lines")
        check("7 distinct info-hashes" in summary(err), "summary: %r" % err)
    finally:
        tl.stop_testnet(proc)


class FakeSampler(Sock):
    """A node that answers sample_infohashes with `samples` and names
    `names` (compact nodes), or answers error 204 when samples is None."""

    def __init__(self, ip, samples, names=b""):
        super().__init__(ip)
        self.samples = samples
        self.names = names
        self.asked = 0

    def answer(self, frm, m):
        q = m.get(b"q")
        if q == b"sample_infohashes":
            self.asked += 1
            if self.samples is None:
                self.send(frm, {"t": m[b"t"], "y": "e",
                                "e": [204, "Method Unknown"]})
                return
            self.send(frm, {"t": m[b"t"], "y": "r",
                            "r": {"id": self.id, "interval": 21600,
                                  "num": len(self.samples) // 20,
                                  "samples": self.samples,
                                  "nodes": self.names}})
            return
        self.send(frm, {"t": m[b"t"], "y": "r",
                        "r": {"id": self.id, "nodes": self.names}})


def compact(sock_or_ip, port, nid):
    ip = sock_or_ip
    return nid + bytes(int(x) for x in ip.split(".")) + port.to_bytes(2, "big")


def test_streaming_and_204():
    ih = bytes.fromhex("5a" * 20)
    # Names a node that never answers (nothing listens there) and one
    # that answers 204: the crawl waits for the silent one until its
    # timeout.
    no204 = FakeSampler("127.0.13.161", None)
    names = (compact("127.0.13.160", 9, os.urandom(20)) +
             compact("127.0.13.161", no204.addr[1], no204.id))
    good = FakeSampler("127.0.13.162", ih, names)
    try:
        t0 = time.monotonic()
        proc = subprocess.Popen([BIN, "sample", "--bootstrap",
                                 "%s:%d" % good.addr, "--bind",
                                 "127.0.13.163", "--timeout", "3"],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        first = None
        buf = b""
        try:
            fds = [s.s.fileno() for s in (good, no204)]
            by_fd = {good.s.fileno(): good, no204.s.fileno(): no204}
            out_fd = proc.stdout.fileno()
            while time.monotonic() - t0 < 10 and proc.poll() is None:
                r, _, _ = select.select(fds + [out_fd], [], [], 0.05)
                for fd in r:
                    if fd == out_fd:
                        chunk = os.read(fd, 4096)
                        buf += chunk
                        if first is None and b"\n" in buf:
                            first = time.monotonic() - t0
                        continue
                    s = by_fd[fd]
                    data, frm = s.s.recvfrom(65536)
                    m = bdecode(data)
                    if m.get(b"y") == b"q":
                        s.answer(frm, m)
            rc = proc.wait(timeout=10)
            took = time.monotonic() - t0
            buf += proc.stdout.read()
            err = proc.stderr.read().decode()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        check(rc == 0, "streaming sample: status %d (%s)" % (rc, err))
        check(buf.decode().splitlines() == [ih.hex()],
              "one info-hash line: %r" % buf)
        check(first is not None and first < 1.5,
              "first line after %s s, before the end (streamed)" % first)
        check(2.5 <= took < 4.5, "ended at --timeout 3: %.2f s" % took)
        s = summary(err)
        check("1 without BEP 51" in s, "the 204 node counted: %r" % s)
        check(good.asked == 1 and no204.asked == 1,
              "each asked once: %d %d" % (good.asked, no204.asked))
        print("test_sample: streamed first line after %.2f s, ended after "
              "%.2f s (--timeout 3); %s" % (first, took, s))
    finally:
        good.close()
        no204.close()


def test_nothing_found_and_bad_args():
    empty = FakeSampler("127.0.13.170", b"")
    try:
        proc = subprocess.Popen([BIN, "sample", "--bootstrap",
                                 "%s:%d" % empty.addr, "--bind",
                                 "127.0.13.171", "--timeout", "3"],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            serve_all([empty], 10, done=lambda: proc.poll() is not None)
            rc = proc.wait(timeout=10)
            out, err = proc.stdout.read(), proc.stderr.read().decode()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        check(rc == 1, "nothing found: status %d (%s)" % (rc, err))
        check(out == b"", "nothing on stdout")
        check("0 distinct info-hashes" in summary(err), err)
    finally:
        empty.close()
    for args in (["sample", "--max", "x"], ["sample", "--max", "70000"],
                 ["sample", "extra"], ["sample", "--bogus"]):
        rc, out, err, _ = mdht(*args, timeout=10)
        check(rc == 2, "%s: status %d, want 2" % (args, rc))
        check(len(err.strip().splitlines()) == 1,
              "%s: one line on stderr: %r" % (args, err))


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    test_nothing_found_and_bad_args()
    test_streaming_and_204()
    test_testnet_crawl()
    print("test_sample: %d checks passed" % tl.checks)


if __name__ == "__main__":
    main()
