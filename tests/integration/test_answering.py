"""Black-box test of the answering node: `mdht run --bind 127.0.0.1` over a
real UDP socket. Every field of every response is checked.

Usage: test_answering.py path/to/mdht
"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as tl  # noqa: E402
from testlib import check  # noqa: E402
from krpc_client import (MdhtProcess, Sock, bdecode, bencode, compact_addr,
                         id_at_depth, parse_nodes, parse_peer, serve_all, xor)


def check_common(r, s, node, t=None):
    """Fields every response carries."""
    check(r.get(b"y") == b"r", "y is r: %r" % r)
    if t is not None:
        check(r.get(b"t") == t, "t echoed")
    body = r[b"r"]
    check(isinstance(body.get(b"id"), bytes) and len(body[b"id"]) == 20,
          "20-byte id")
    check(body[b"id"] == node.id, "id is the node's id")
    check(r.get(b"ip") == compact_addr(*s.addr), "ip is our address (BEP 42)")
    check(isinstance(r.get(b"v"), bytes) and len(r[b"v"]) == 4, "4-byte v")
    return body


def main():
    binary = sys.argv[1]
    rnd = random.Random(42)
    node = MdhtProcess(binary, ["--bind", "127.0.0.1", "--port", "0",
                                "--no-bootstrap", "--log-level", "info"])
    fakes = []
    try:
        to = node.addr
        client = Sock("127.0.0.1")

        # ping: every field
        t = client.tid()
        client.send(to, {"t": t, "y": "q", "q": "ping", "a": {"id": client.id}})
        r = client.wait_reply(t)
        body = check_common(r, client, node, t)
        check(set(body) == {b"id"}, "ping response holds only id")

        # Fill the routing table with 30 fake nodes, 3 at each depth 0..9
        # so that every one fits in its bucket; they answer the node's
        # confirmation pings and become good.
        for depth in range(10):
            for j in range(3):
                ip = "127.0.1.%d" % (depth * 3 + j + 1)
                fakes.append(Sock(ip, id_at_depth(node.id, depth, rnd)))
        for f in fakes:
            f.send(to, {"t": f.tid(), "y": "q", "q": "ping",
                        "a": {"id": f.id}})
        serve_all(fakes, 1.5)

        # find_node: exactly the 8 closest of the 30 (and the client, which
        # answered the node's confirmation ping too), closest first
        known = fakes + [client]
        for trial in range(5):
            target = bytes(rnd.getrandbits(8) for _ in range(20))
            r = client.query(to, "find_node", {"target": target})
            body = check_common(r, client, node)
            got = parse_nodes(body[b"nodes"])
            expect = sorted(known, key=lambda f: xor(f.id, target))[:8]
            check([g[0] for g in got] == [f.id for f in expect],
                  "find_node returns the 8 closest, closest first")
            check([(g[1], g[2]) for g in got] ==
                  [f.addr for f in expect], "with their addresses")

        # get_peers before any announce: token and nodes, no values
        ih = bytes(rnd.getrandbits(8) for _ in range(20))
        r = client.query(to, "get_peers", {"info_hash": ih})
        body = check_common(r, client, node)
        token = body.get(b"token")
        check(isinstance(token, bytes) and 4 <= len(token) <= 20, "token")
        check(b"values" not in body, "no values before an announce")
        got = parse_nodes(body[b"nodes"])
        expect = sorted(known, key=lambda f: xor(f.id, ih))[:8]
        check([g[0] for g in got] == [f.id for f in expect],
              "get_peers nodes are the closest")

        # announce_peer with the token, explicit port
        r = client.query(to, "announce_peer",
                         {"info_hash": ih, "port": 4444, "token": token})
        body = check_common(r, client, node)
        check(set(body) == {b"id"}, "announce response holds only id")

        # announce_peer with implied_port from another socket on another IP
        other = Sock("127.0.0.3")
        r = other.query(to, "get_peers", {"info_hash": ih})
        tok2 = r[b"r"][b"token"]
        r = other.query(to, "announce_peer", {"info_hash": ih, "port": 1,
                                              "implied_port": 1,
                                              "token": tok2})
        check(r.get(b"y") == b"r", "implied_port announce accepted")

        # get_peers now returns both peers as values
        r = client.query(to, "get_peers", {"info_hash": ih})
        body = check_common(r, client, node)
        values = sorted(parse_peer(v) for v in body.get(b"values", []))
        check(values == sorted([("127.0.0.1", 4444), other.addr]),
              "values after announce: %r" % values)

        # bad token: error 203
        r = client.query(to, "announce_peer",
                         {"info_hash": ih, "port": 4444, "token": b"nope"})
        check(r.get(b"y") == b"e" and r[b"e"][0] == 203, "203 on bad token")
        # a token given to another IP is refused
        r = client.query(to, "announce_peer",
                         {"info_hash": ih, "port": 4444, "token": tok2})
        check(r.get(b"y") == b"e" and r[b"e"][0] == 203,
              "203 on another IP's token")
        # port 0 without implied_port: 203
        r = client.query(to, "announce_peer",
                         {"info_hash": ih, "port": 0, "token": token})
        check(r.get(b"y") == b"e" and r[b"e"][0] == 203, "203 on port 0")

        # unknown method: 204
        r = client.query(to, "frobnicate", {"target": ih})
        check(r.get(b"y") == b"e" and r[b"e"][0] == 204, "204 on unknown")
        check(isinstance(r[b"e"][1], bytes), "error message is a string")

        # missing argument: 203
        r = client.query(to, "find_node", {})
        check(r.get(b"y") == b"e" and r[b"e"][0] == 203, "203 on no target")
        r = client.query(to, "get_peers", {"info_hash": b"short"})
        check(r.get(b"y") == b"e" and r[b"e"][0] == 203,
              "203 on a 5-byte info_hash")

        # 1,000 malformed datagrams, then the node still answers a ping
        bad = Sock("127.0.0.9")
        samples = [b"", b"d", b"i1e", b"de", b"l" * 10000 + b"e" * 10000,
                   b"l" * 4000 + b"e" * 4000,  # deep, under the size cap
                   b"d1:t2:aa1:y1:q1:q4:pinge",  # no a
                   b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe",  # short id
                   b"d1:t3:abc1:y1:re",  # unmatched response
                   b"99999999999999999999:x", b"x" * 65000,
                   b"d1:ai-0ee", b"d1:ad2:id20:" + b"a" * 20]
        for i in range(1000):
            if i < len(samples) * 10:
                pkt = samples[i % len(samples)]
            else:
                pkt = bytes(rnd.getrandbits(8)
                            for _ in range(rnd.randint(1, 300)))
            bad.s.sendto(pkt, to)
        time.sleep(0.5)
        check(node.alive(), "node alive after garbage")
        probe = Sock("127.0.0.10")
        r = probe.query(to, "ping", {})
        check_common(r, probe, node)

        # sample_infohashes (BEP 51) returns the announced info-hash
        r = client.query(to, "sample_infohashes", {"target": ih})
        body = check_common(r, client, node)
        check(body.get(b"samples") == ih, "sample is the announced ih")
        check(body.get(b"num") == 1, "num is 1")

        rc = node.stop()
        check(rc == 0, "exit status 0 on SIGTERM, got %r" % rc)
    except Exception:
        sys.stderr.write("".join(node.lines[-40:]))
        raise
    finally:
        if node.alive():
            node.p.kill()
    print("test_answering: %d passed, 0 failed" % tl.checks)


if __name__ == "__main__":
    main()
