"""Attack: one host fills the routing table (a Sybil attack from one IP).

The attacker owns one IP (127.0.22.1) and opens 160 UDP ports there, each
with an id it chose, spread over the depths of the victim's table; every
one pings the victim and answers its confirmation pings. 30 honest nodes
on addresses of their own do the same. Then the victim announces a
torrent (its get_peers lookup picks the 8 closest nodes that answered),
and an outsider asks it find_node for many targets.

Defence: one routing entry per IP (and one lookup candidate per IP). The
attack fails if the attacker holds at most 1 routing entry, is at most 1
of the nodes the victim announced to, and at most 1 node of each find_node
answer the victim gives.

Usage: test_sybil_one_ip.py path/to/mdht
"""
import os
import random
import shutil
import subprocess
import tempfile
import time

from advlib import (MdhtProcess, Sock, bdecode, check, figure, id_at_depth,
                    parse_nodes, run, serve_all)

ATTACKER_IP = "127.0.22.1"
N_SYBILS = 160
N_HONEST = 30
IH = bytes(range(20)).hex()


class Fake(Sock):
    """A minimal node: answers ping and find_node with its id, get_peers
    with a token, and records the announce_peer queries it gets. A Sybil
    also names its sisters in every answer, to pull the victim's lookups
    towards them."""

    def __init__(self, ip, nid, sisters=None):
        super().__init__(ip, nid)
        self.sisters = sisters
        self.announced = 0

    def answer(self, frm, m):
        q = m.get(b"q")
        r = {"id": self.id}
        if q == b"announce_peer":
            self.announced += 1
        if q in (b"find_node", b"get_peers"):
            r["nodes"] = self.sisters() if self.sisters else b""
        if q == b"get_peers":
            r["token"] = b"tok"
        self.send(frm, {"t": m[b"t"], "y": "r", "r": r})


def compact(s):
    ip, port = s.addr
    return s.id + bytes(int(x) for x in ip.split(".")) + port.to_bytes(2, "big")


def main(binary):
    rnd = random.Random(7)
    tmp = tempfile.mkdtemp(prefix="mdht-sybil-")
    ctl = os.path.join(tmp, "ctl.sock")
    victim = MdhtProcess(binary, ["--bind", "127.0.20.1", "--port", "0",
                                  "--no-bootstrap", "--log-level", "info",
                                  "--control", ctl])
    socks = []
    try:
        to = victim.addr
        sybils = []

        def sister_nodes():
            return b"".join(compact(s) for s in rnd.sample(sybils, 8))

        for i in range(N_SYBILS):
            depth = i % 20  # 8 per depth: enough to fill 20 buckets
            sybils.append(Fake(ATTACKER_IP, id_at_depth(victim.id, depth, rnd),
                               sister_nodes))
        honest = []
        for i in range(N_HONEST):
            ip = "127.0.21.%d" % (i + 1)
            honest.append(Fake(ip, id_at_depth(victim.id, i // 3, rnd)))
        socks = sybils + honest
        # The attacker speaks first: it gets every chance to take slots.
        for f in sybils + honest:
            f.send(to, {"t": f.tid(), "y": "q", "q": "ping",
                        "a": {"id": f.id}})
        serve_all(socks, 2.0)

        # The routing table as find_node answers show it: the union over
        # targets at every depth, and near each Sybil's id.
        outsider = Sock("127.0.23.1")
        seen = {}
        worst_answer = 0
        targets = [id_at_depth(victim.id, d, rnd) for d in range(24)]
        targets += [s.id for s in rnd.sample(sybils, 16)]
        for target in targets:
            r = outsider.query(to, "find_node", {"target": target})
            got = parse_nodes(r[b"r"].get(b"nodes", b""))
            for nid, ip, port in got:
                seen[(ip, port)] = nid
            worst_answer = max(worst_answer,
                               sum(1 for g in got if g[1] == ATTACKER_IP))
        in_table = sum(1 for (ip, _) in seen if ip == ATTACKER_IP)
        honest_seen = sum(1 for (ip, _) in seen if ip.startswith("127.0.21."))
        figure("one IP with %d ports and chosen ids, %d honest nodes: "
               "%d attacker entries seen in the routing table (%d honest)"
               % (N_SYBILS, N_HONEST, in_table, honest_seen))
        figure("find_node answers to others: at most %d attacker nodes of 8"
               % worst_answer)
        check(in_table <= 1, "attacker holds %d routing entries" % in_table)
        check(honest_seen >= 20, "honest nodes are in the table: %d"
              % honest_seen)
        check(worst_answer <= 1, "a find_node answer carried %d attacker "
              "nodes" % worst_answer)

        # Stats agree: the table holds no more than the honest nodes, the
        # attacker's one entry and the outsider.
        out = subprocess.run([binary, "stats", "--control", ctl, "--json"],
                             capture_output=True, text=True, timeout=10)
        check(out.returncode == 0, "stats: %s" % out.stderr)
        import json
        total = json.loads(out.stdout.splitlines()[0])["nodes"]["total"]
        figure("routing table size: %d (30 honest + outsider + attacker)"
               % total)
        check(total <= N_HONEST + 2, "table holds %d entries" % total)

        # The victim's own announce: who gets the announce_peer?
        p = subprocess.Popen([binary, "announce", IH, "--port", "6999",
                              "--control", ctl, "--timeout", "20"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        end = time.time() + 25
        while p.poll() is None and time.time() < end:
            serve_all(socks + [outsider], 0.2)
        if p.poll() is None:
            p.kill()
        p.wait()
        check(p.returncode == 0, "announce: %r" % p.stderr.read())
        serve_all(socks, 0.3)
        to_attacker = sum(1 for s in sybils if s.announced)
        to_honest = sum(1 for s in honest if s.announced)
        figure("announce: %d of %d nodes announced to are the attacker's"
               % (to_attacker, to_attacker + to_honest))
        check(to_attacker <= 1, "announced to %d Sybils" % to_attacker)
        # Under load (ctest -j) one honest fake, served from one Python
        # loop with 190 sockets, may answer past the soft timeout and be
        # passed over: 6 is the floor, not 7.
        check(to_honest >= 6, "announced to %d honest nodes" % to_honest)
        check(victim.alive(), "victim still running")
    finally:
        for s in socks:
            s.close()
        victim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
