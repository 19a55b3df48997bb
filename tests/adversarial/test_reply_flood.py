"""Attack: one reply that lists 300 nodes on one third-party IP.

A node the victim knows (the liar, with an id next to the target) answers
the victim's find_node and get_peers queries with 300 "nodes", all ports
of one IP that belongs to somebody else (127.0.33.1: 300 sockets the test
binds there, that never answer and count what they receive). Without a
defence the victim's lookup would send a query to each, reflecting traffic
at that IP, and wait on all of them.

Defence: a lookup takes at most K nodes from one reply and one candidate
per IP. The attack fails if the third-party IP receives at most 1 query
per lookup, and find-node and get-peers finish normally and quickly.

Usage: test_reply_flood.py path/to/mdht
"""
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import select

from advlib import MdhtProcess, Sock, check, figure, run, serve_all

VICTIM_IP = "127.0.30.1"
THIRD_IP = "127.0.33.1"
N_FLOOD = 300
PEER = bytes([127, 0, 40, 1]) + (6881).to_bytes(2, "big")


def compact(nid, ip, port):
    return nid + bytes(int(x) for x in ip.split(".")) + port.to_bytes(2, "big")


class Honest(Sock):
    def answer(self, frm, m):
        r = {"id": self.id}
        if m.get(b"q") in (b"find_node", b"get_peers"):
            r["nodes"] = b""
        if m.get(b"q") == b"get_peers":
            r["token"] = b"tok"
            r["values"] = [PEER]
        self.send(frm, {"t": m[b"t"], "y": "r", "r": r})


class Liar(Sock):
    """Answers every lookup query with 300 nodes at the third party."""

    def __init__(self, ip, nid, flood):
        super().__init__(ip, nid)
        self.flood = flood

    def answer(self, frm, m):
        r = {"id": self.id}
        if m.get(b"q") in (b"find_node", b"get_peers"):
            target = m[b"a"].get(b"target") or m[b"a"].get(b"info_hash")
            r["nodes"] = b"".join(
                compact(target[:18] + i.to_bytes(2, "big"), THIRD_IP, port)
                for i, port in enumerate(self.flood))
        if m.get(b"q") == b"get_peers":
            r["token"] = b"tok"
        self.send(frm, {"t": m[b"t"], "y": "r", "r": r})


def drain(third):
    """Datagrams received by the third party so far."""
    n = 0
    for s in third:
        while True:
            r, _, _ = select.select([s], [], [], 0)
            if not r:
                break
            s.recvfrom(65536)
            n += 1
    return n


def lookup(binary, ctl, cmd, target, socks):
    """Runs `mdht CMD TARGET --control ctl` while the fakes answer; returns
    (exit status, seconds)."""
    t0 = time.time()
    p = subprocess.Popen([binary, cmd, target.hex(), "--control", ctl,
                          "--timeout", "20"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    end = t0 + 25
    while p.poll() is None and time.time() < end:
        serve_all(socks, 0.05)
    if p.poll() is None:
        p.kill()
    p.wait()
    return p.returncode, time.time() - t0


def main(binary):
    rnd = random.Random(11)
    tmp = tempfile.mkdtemp(prefix="mdht-flood-")
    ctl = os.path.join(tmp, "ctl.sock")
    victim = MdhtProcess(binary, ["--bind", VICTIM_IP, "--port", "0",
                                  "--no-bootstrap", "--log-level", "info",
                                  "--control", ctl])
    third, socks = [], []
    try:
        to = victim.addr
        for _ in range(N_FLOOD):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((THIRD_IP, 0))
            third.append(s)
        flood = [s.getsockname()[1] for s in third]
        target = bytes(rnd.getrandbits(8) for _ in range(20))
        liar = Liar("127.0.32.1", target[:19] + bytes([target[19] ^ 1]),
                    flood)
        honest = [Honest("127.0.31.%d" % (i + 1)) for i in range(12)]
        socks = [liar] + honest
        for f in socks:
            f.send(to, {"t": f.tid(), "y": "q", "q": "ping",
                        "a": {"id": f.id}})
        serve_all(socks, 1.5)
        drain(third)

        rc, secs = lookup(binary, ctl, "find-node", target, socks)
        got = drain(third)
        figure("reply listing %d nodes on one IP: find-node sent %d queries "
               "to that IP, finished in %.2f s (exit %d)"
               % (N_FLOOD, got, secs, rc))
        check(rc == 0, "find-node exit %d" % rc)
        check(got <= 1, "%d queries to the third party" % got)
        check(secs < 4.0, "find-node took %.2f s" % secs)

        rc, secs = lookup(binary, ctl, "get-peers", target, socks)
        got = drain(third)
        figure("reply listing %d nodes on one IP: get-peers sent %d queries "
               "to that IP, finished in %.2f s (exit %d)"
               % (N_FLOOD, got, secs, rc))
        check(rc == 0, "get-peers exit %d (0: found the honest peer)" % rc)
        check(got <= 1, "%d queries to the third party" % got)
        check(secs < 4.0, "get-peers took %.2f s" % secs)
        check(victim.alive(), "victim still running")
    finally:
        for s in socks:
            s.close()
        for s in third:
            s.close()
        victim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
