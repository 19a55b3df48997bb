"""Queries with long transaction ids, on the real binary: BEP 5 puts no
bound on `t`, and libtorrent, bittorrent-dht and aria2 echo 20 bytes and
more. A ping, find_node and get_peers with a 20- and a 64-byte `t` are
answered with the `t` echoed byte for byte; a `t` so long that the reply
would pass 1,400 bytes is dropped and counted.

Usage: test_tid.py path/to/mdht
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as tl  # noqa: E402
from testlib import check  # noqa: E402
from krpc_client import MdhtProcess, Sock, bdecode  # noqa: E402


def ask(client, to, t, q, args):
    a = {"id": client.id}
    a.update(args)
    client.send(to, {"t": t, "y": "q", "q": q, "a": a})
    return client.wait_reply(t, timeout=3.0)


def main():
    binary = sys.argv[1]
    ctl = "/tmp/mdht-tid-%d.sock" % os.getpid()
    node = MdhtProcess(binary, ["--bind", "127.0.9.1", "--port", "0",
                                "--no-bootstrap", "--control", ctl])
    try:
        client = Sock("127.0.9.2")
        target = os.urandom(20)
        for n in (1, 4, 20, 64, 200):
            # every byte value, so that nothing is mangled on the way
            t = bytes((i * 53 + n) % 256 for i in range(n))
            for q, args in (("ping", {}),
                            ("find_node", {"target": target}),
                            ("get_peers", {"info_hash": target})):
                r = ask(client, node.addr, t, q, args)
                check(r.get(b"y") == b"r", "%s with a %d-byte t answered" % (q, n))
                check(r.get(b"t") == t, "%s: %d-byte t echoed" % (q, n))
        # A t of 1,390 bytes: no reply fits in 1,400 bytes; dropped.
        client.send(node.addr, {"t": b"x" * 1390, "y": "q", "q": "ping",
                                "a": {"id": client.id}})
        try:
            client.wait_reply(b"x" * 1390, timeout=0.5)
            check(False, "an oversized reply was sent")
        except AssertionError as e:
            check("no reply" in str(e), "no reply to a 1,390-byte t")
        # ... and the node still answers afterwards.
        r = ask(client, node.addr, b"ok", "ping", {})
        check(r.get(b"t") == b"ok", "still answering")
        out = subprocess.run([binary, "stats", "--control", ctl, "--json"],
                             capture_output=True, timeout=10).stdout
        st = json.loads(out.decode().splitlines()[0])
        check(st["dropped"]["reply_too_big"] == 1,
              "the oversized reply counted: %r" % st["dropped"])
    finally:
        node.stop()
    print("%d checks passed" % tl.checks)


if __name__ == "__main__":
    main()
