#!/usr/bin/env python3
"""Attack 4 of docs/SECURITY.md: one host empties the peer store.

100 legitimate swarms, each announced by its own peer on its own 127.0.34.x
address, sit in a node whose store holds 300 info-hashes
(--max-infohashes 300). One attacker IP then announces 1,500 fresh
info-hashes, paced under the rate limiter (250/s, burst 500), with the one
token it got like anyone else. With oldest-first eviction, each fresh
info-hash would evict a legitimate swarm (99 of 100 went before the
defence). mdht evicts from the source holding the most records, which is
the attacker, and caps each IP at --max-infohashes-per-ip (256): every
legitimate swarm stays, the attacker holds at most its quota.

A second node with the default store shows the quota alone: the same
flood leaves the attacker exactly 256 info-hashes.

Usage: test_store_exhaustion.py path/to/mdht
"""
import json
import os
import select
import shutil
import subprocess
import tempfile

from advlib import (MdhtProcess, Sock, announce, bdecode, check, figure,
                    paced_flood, parse_peer, run, stats)

QUOTA = 256
FLOOD = 1500


def storage(binary, ctl):
    return stats(binary, ctl)["storage"]


def flood(attacker, to, n):
    """n fresh info-hashes from one IP, one token, paced
    (advlib.paced_flood). Returns (accepted, sent, seconds)."""
    r = attacker.query(to, "get_peers", {"info_hash": os.urandom(20)})
    token = r[b"r"][b"token"]
    return paced_flood(attacker, to, n, lambda: (
        "announce_peer", {"info_hash": os.urandom(20), "port": 6881,
                          "token": token}))


def start(binary, ip, ctl, extra):
    return MdhtProcess(binary, ["--bind", ip, "--port", "0",
                                "--no-bootstrap", "--log-level", "warn",
                                "--control", ctl] + extra)


def full_store(binary, tmp):
    ctl = os.path.join(tmp, "a.sock")
    node = start(binary, "127.0.34.1", ctl, ["--max-infohashes", "300"])
    socks = []
    try:
        to = node.addr
        swarms = []
        for i in range(100):
            s = Sock("127.0.34.%d" % (10 + i))
            socks.append(s)
            ih = os.urandom(20)
            check(announce(s, to, ih, 6000 + i), "legitimate announce")
            swarms.append((s, ih, (s.addr[0], 6000 + i)))
        attacker = Sock("127.0.35.1")
        socks.append(attacker)
        ok, sent, secs = flood(attacker, to, FLOOD)
        figure("one IP announced %d fresh info-hashes (%d accepted) in "
               "%.1f s into a store of 300" % (sent, ok, secs))
        check(sent == FLOOD, "the whole flood was sent")
        # Each legitimate peer looks up its own swarm (one reply each:
        # no single IP asks for much).
        held = 0
        for s, ih, me in swarms:
            r = s.query(to, "get_peers", {"info_hash": ih})
            vals = [parse_peer(v) for v in r[b"r"].get(b"values", [])]
            held += me in vals
        st = storage(binary, ctl)
        evil = st["peers"] - held
        figure("store of 300 flooded by one IP: %d/100 legitimate swarms "
               "kept; attacker holds %d info-hashes (quota %d); %d "
               "info-hashes stored" % (held, evil, QUOTA, st["infohashes"]))
        check(held == 100, "all 100 legitimate swarms held (%d)" % held)
        check(st["infohashes"] <= 300, "store bound kept")
        check(evil <= QUOTA, "attacker within its quota (%d)" % evil)
        check(node.alive(), "node still running")
    finally:
        for s in socks:
            s.close()
        node.stop()


def quota_alone(binary, tmp):
    ctl = os.path.join(tmp, "b.sock")
    node = start(binary, "127.0.36.1", ctl, [])
    attacker = Sock("127.0.36.2")
    try:
        ok, sent, secs = flood(attacker, node.addr, FLOOD)
        st = storage(binary, ctl)
        figure("default store, one IP announced %d fresh info-hashes "
               "(%d accepted) in %.1f s: %d kept (quota %d)"
               % (sent, ok, secs, st["infohashes"], QUOTA))
        check(st["infohashes"] == st["peers"], "one record each: %r" % st)
        check(st["infohashes"] <= QUOTA, "one IP within its quota: %r" % st)
        # Every acknowledged announce was stored: the quota, not a loss,
        # is what stops it.
        check(st["infohashes"] >= min(QUOTA, ok),
              "the quota is reached: %r after %d accepted" % (st, ok))
    finally:
        attacker.close()
        node.stop()


def main(binary):
    tmp = tempfile.mkdtemp(prefix="mdht-adv-store-")
    try:
        full_store(binary, tmp)
        quota_alone(binary, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
