#!/usr/bin/env python3
"""Attack 3 of docs/SECURITY.md: one host takes over a swarm's peer list.

20 legitimate peers, each on its own 127.0.31.x address, announce one
info-hash; then one attacker IP, with the token it got like anyone else,
announces ports 1..500 for that info-hash. A store keyed by ip:port would
hold 500 attacker records, evict the legitimate ones at the swarm bound
and hand out attacker values only. mdht keeps one record per IP per
info-hash: every legitimate peer is still returned, and at most one
attacker value.

Second part: 150 legitimate peers on distinct IPs; a get_peers reply
carries at most 100 values (--max-values), a random sample.

Usage: test_store_one_ip.py path/to/mdht
"""
import os
import select
import time

from advlib import (MdhtProcess, Sock, announce, bdecode, check, figure,
                    parse_peer, run, send_batch)

NODE_IP = "127.0.31.1"
ATTACKER_IP = "127.0.32.1"


def values(sock, to, ih):
    r = sock.query(to, "get_peers", {"info_hash": ih})
    return [parse_peer(v) for v in r[b"r"].get(b"values", [])]


def flood_ports(attacker, to, ih, ports, deadline):
    """Announces every port with one token, 50 at a time (a burst the
    kernel's buffers take whole; the flood stays within the rate
    limiter's burst of 500). Returns (accepted, sent)."""
    r = attacker.query(to, "get_peers", {"info_hash": ih})
    token = r[b"r"][b"token"]
    ports = list(ports)
    ok = sent = 0
    for i in range(0, len(ports), 50):
        if time.time() > deadline:
            break
        batch = [("announce_peer", {"info_hash": ih, "port": p,
                                    "token": token})
                 for p in ports[i:i + 50]]
        # A short wait: replies beyond a reply budget may never come.
        ok += send_batch(attacker, to, batch, timeout=0.5)
        sent += len(batch)
    return ok, sent


def swarm_takeover(node, to):
    ih = os.urandom(20)
    legit = [Sock("127.0.31.%d" % (10 + i)) for i in range(20)]
    for i, s in enumerate(legit):
        check(announce(s, to, ih, 6000 + i), "legitimate announce accepted")
    attacker = Sock(ATTACKER_IP)
    t0 = time.time()
    ok, sent = flood_ports(attacker, to, ih, range(1, 501), t0 + 10)
    figure("one IP announced %d ports (%d acknowledged) in %.2f s"
           % (sent, ok, time.time() - t0))
    checker = Sock("127.0.31.200")
    got = values(checker, to, ih)
    want = {(s.addr[0], 6000 + i) for i, s in enumerate(legit)}
    kept = len(want & set(got))
    evil = [v for v in got if v[0] == ATTACKER_IP]
    figure("one IP, 500 ports: %d record(s) returned, %d/20 legitimate "
           "peers kept" % (len(evil), kept))
    check(kept == 20, "all 20 legitimate peers returned (%d)" % kept)
    check(len(evil) <= 1, "at most 1 attacker value (%d)" % len(evil))
    check(len(got) <= 21, "nothing else returned (%d values)" % len(got))
    for s in legit + [attacker, checker]:
        s.close()


def values_per_reply(node, to):
    ih = os.urandom(20)
    legit = [Sock("127.0.33.%d" % (1 + i)) for i in range(150)]
    for i, s in enumerate(legit):
        check(announce(s, to, ih, 7000 + i), "legitimate announce accepted")
    want = {(s.addr[0], 7000 + i) for i, s in enumerate(legit)}
    checker = Sock("127.0.31.201")
    seen = set()
    sizes = []
    for _ in range(3):
        got = values(checker, to, ih)
        sizes.append(len(got))
        check(set(got) <= want, "only announced peers returned")
        check(len(set(got)) == len(got), "no value twice")
        seen |= set(got)
    figure("150 peers stored: replies carry %s values; %d distinct over 3 "
           "replies" % (sizes, len(seen)))
    check(all(n == 100 for n in sizes), "100 values per reply: %r" % sizes)
    check(len(seen) > 100, "a random sample, not always the same 100")
    for s in legit + [checker]:
        s.close()


def main(binary):
    node = MdhtProcess(binary, ["--bind", NODE_IP, "--port", "0",
                                "--no-bootstrap", "--log-level", "warn"])
    try:
        to = node.addr
        swarm_takeover(node, to)
        values_per_reply(node, to)
        check(node.alive(), "node still running")
    finally:
        node.stop()


if __name__ == "__main__":
    run(main)
