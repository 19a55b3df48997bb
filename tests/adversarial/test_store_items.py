#!/usr/bin/env python3
"""Store exhaustion, BEP 44 (docs/SECURITY.md, attack 3): one host tries to
own the item store.

40 legitimate items, each put by its own source on its own 127.0.37.x
address, sit in a node whose store holds 100 items (--max-items 100). One
attacker IP then puts 1,500 fresh immutable items, paced under the rate
limiter, with the one write token it got like anyone else. With
oldest-first eviction each fresh item would evict a legitimate one; mdht
caps each source at --max-items-per-ip (32; its own oldest item gives way)
and at a bound evicts the oldest item of the source holding the most, so
every legitimate item stays.

Usage: test_store_items.py path/to/mdht
"""
import hashlib
import os
import shutil
import tempfile

from advlib import MdhtProcess, Sock, check, figure, run, paced_flood, stats

QUOTA = 32
FLOOD = 1500


def flood(attacker, to, n):
    """n fresh items from one IP, one token, paced (advlib.paced_flood)."""
    r = attacker.query(to, "get", {"target": os.urandom(20)})
    token = r[b"r"][b"token"]
    return paced_flood(attacker, to, n, lambda: (
        "put", {"token": token, "v": os.urandom(64)}))


def main(binary):
    tmp = tempfile.mkdtemp(prefix="mdht-adv-items-")
    ctl = os.path.join(tmp, "a.sock")
    node = MdhtProcess(binary, ["--bind", "127.0.37.1", "--port", "0",
                                "--no-bootstrap", "--log-level", "warn",
                                "--control", ctl, "--max-items", "100"])
    socks = []
    try:
        to = node.addr
        items = []
        for i in range(40):
            s = Sock("127.0.37.%d" % (10 + i))
            socks.append(s)
            v = b"legitimate item %d" % i
            target = hashlib.sha1(b"%d:%s" % (len(v), v)).digest()
            tok = s.query(to, "get", {"target": target})[b"r"][b"token"]
            r = s.query(to, "put", {"token": tok, "v": v})
            check(r.get(b"y") == b"r", "legitimate put")
            items.append((s, target, v))
        attacker = Sock("127.0.38.1")
        socks.append(attacker)
        ok, sent, secs = flood(attacker, to, FLOOD)
        figure("one IP put %d fresh items (%d accepted) in %.1f s into a "
               "store of 100" % (sent, ok, secs))
        check(sent == FLOOD, "the whole flood was sent")
        held = 0
        for s, target, v in items:
            r = s.query(to, "get", {"target": target})
            held += r[b"r"].get(b"v") == v
        st = stats(binary, ctl)["storage"]
        evil = st["items"] - held
        figure("item store of 100 flooded by one IP: %d/40 legitimate items "
               "kept; attacker holds %d (quota %d); %d items stored"
               % (held, evil, QUOTA, st["items"]))
        check(held == 40, "all 40 legitimate items held (%d)" % held)
        check(st["items"] <= 100, "store bound kept")
        check(evil <= QUOTA, "attacker within its quota (%d)" % evil)
        check(node.alive(), "node still running")
    finally:
        for s in socks:
            s.close()
        node.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
