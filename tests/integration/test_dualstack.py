#!/usr/bin/env python3
"""BEP 32 dual stack, black-box, in a network namespace of its own
(`unshare -n`, as root: loopback has only ::1 otherwise, and a network of
IPv6 nodes needs one address each; fd00::1..9 go on the namespace's lo).
Nothing leaves the namespace.

- D, one `mdht run --bind 127.0.31.1 --bind fd00::1`, prints one
  listening line per family with one id;
- four IPv4-only nodes (127.0.31.2-5) and four IPv6-only nodes
  (fd00::2-5) bootstrap from D: D's stats show both tables filled, its
  `table` lists nodes of both families;
- a peer announced over IPv6 (through an IPv6-only node) and one
  announced over IPv4 are both found by `mdht get-peers` through D's
  control socket, text and --json;
- raw clients: an IPv4-only client asking D's IPv4 socket with
  want [n4, n6] gets both `nodes` (26-byte entries) and `nodes6` (38-byte
  entries, fd00:: addresses); want [n6] alone gets only nodes6; an
  IPv6-only client announces to D's IPv6 socket, and a get_peers over IPv4
  to D does not return that IPv6 value (BEP 32: values are per family)
  while one over IPv6 does, 18 bytes; D's own queries carry want n4 n6;
- --bind twice of one family is one line and exit 2; the default `mdht
  run` binds 0.0.0.0 and :: (both listening lines);
- D's saved state holds both tables: restarted from it, both families
  have (questionable) nodes at once.

Without root (no namespace) it fails under CI or as root, else says why
and exits 77.

Usage: test_dualstack.py path/to/mdht
"""
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as tl  # noqa: E402
from testlib import check  # noqa: E402
from krpc_client import bdecode, bencode  # noqa: E402

ENV = "MDHT_DUALSTACK_NETNS"
PORT = 18700
D4, D6 = "127.0.31.1", "fd00::1"
IH = "d5" * 20
BIN = None


def setup_namespace():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for i in range(1, 10):
        subprocess.run(["ip", "-6", "addr", "add", "fd00::%d/64" % i, "dev",
                        "lo", "nodad"], check=True)


def mdht(*args, timeout=30):
    return tl.cmd_lines(BIN, args, timeout)


class Node(tl.CtlNode):
    """`mdht run` with a control socket; `lines` collects its stderr."""

    def __init__(self, tmp, name, binds, extra):
        args = ["--port", str(PORT), "--log-level", "info"]
        for b in binds:
            args += ["--bind", b]
        super().__init__(BIN, os.path.join(tmp, name + ".sock"), args + extra,
                         name=name)
        self.wait_up()


def stats(n):
    rc, out, err = mdht("stats", "--control", n.sock, "--json")
    check(rc == 0, "stats: %s" % err)
    objs = [json.loads(l) for l in out]
    main = objs[0]
    fam = {o["family"]: o for o in objs[1:] if o["type"] == "stats_family"}
    return main, fam


def raw(sock, to, q, args, want=None, timeout=3.0, nid=b"\x42" * 20):
    a = dict(args)
    a["id"] = nid
    if want is not None:
        a["want"] = want
    t = os.urandom(2)
    sock.sendto(bencode({"t": t, "y": "q", "q": q, "a": a}), to)
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([sock], [], [], end - time.time())
        if not r:
            break
        data, _ = sock.recvfrom(65536)
        m = bdecode(data)
        if m.get(b"t") == t:
            return m
    raise AssertionError("no answer to %s from %r" % (q, to))


def part_network(tmp):
    d = Node(tmp, "d", [D4, D6], ["--state", os.path.join(tmp, "dstate"),
                                  "--no-bootstrap"])
    listening = d.wait_lines(lambda l: "listening on" in l, 2)
    check(len(listening) == 2, "two listening lines: %r" % d.lines)
    ids = {re.search(r"id=([0-9a-f]{40})", l).group(1) for l in listening}
    check(len(ids) == 1, "one id for both families: %r" % listening)
    check(any("127.0.31.1:%d" % PORT in l for l in listening) and
          any("[fd00::1]:%d" % PORT in l for l in listening),
          "both addresses listed: %r" % listening)
    others = []
    for i in range(2, 6):
        others.append(Node(tmp, "v4_%d" % i, ["127.0.31.%d" % i],
                           ["--no-state", "--bootstrap",
                            "%s:%d" % (D4, PORT)]))
        others.append(Node(tmp, "v6_%d" % i, ["fd00::%d" % i],
                           ["--no-state", "--bootstrap",
                            "[%s]:%d" % (D6, PORT)]))
    # Both tables fill: D hears from every node of each family.
    end = time.time() + 20
    while time.time() < end:
        main, fam = stats(d)
        if main["nodes"]["good"] >= 4 and fam.get(6, {}).get(
                "nodes", {}).get("good", 0) >= 4:
            break
        time.sleep(0.3)
    check(main["nodes"]["good"] >= 4, "IPv4 table: %r" % main)
    check(fam[6]["nodes"]["good"] >= 4, "IPv6 table: %r" % fam)
    print("D: IPv4 table %d good, IPv6 table %d good" %
          (main["nodes"]["good"], fam[6]["nodes"]["good"]))
    rc, out, _ = mdht("table", "--control", d.sock)
    check(rc == 0 and any("127.0.31." in l for l in out) and
          any("[fd00::" in l for l in out), "table shows both: %r" % out)
    rc, out, _ = mdht("stats", "--control", d.sock)
    check(any(l.startswith("IPv6 nodes") for l in out), "stats text: %r" % out)
    return d, others


def part_announce_and_find(d, others):
    v4 = next(o for o in others if o.sock.endswith("v4_3.sock"))
    v6 = next(o for o in others if o.sock.endswith("v6_3.sock"))
    rc, out, err = mdht("announce", IH, "--port", "7006", "--control", v6.sock)
    check(rc == 0, "announce over IPv6: %d %r %s" % (rc, out, err))
    rc, out, err = mdht("announce", IH, "--port", "7004", "--control", v4.sock)
    check(rc == 0, "announce over IPv4: %d %r %s" % (rc, out, err))
    rc, out, err = mdht("get-peers", IH, "--control", d.sock)
    check(rc == 0, "get-peers through D: %d %s" % (rc, err))
    print("mdht get-peers through D:\n  " + "\n  ".join(out))
    check("[fd00::3]:7006" in out, "the IPv6 peer: %r" % out)
    check("127.0.31.3:7004" in out, "the IPv4 peer: %r" % out)
    rc, out, err = mdht("get-peers", IH, "--control", d.sock, "--json")
    check(rc == 0, "get-peers --json: %s" % err)
    peers = [json.loads(l) for l in out]
    addrs = {p.get("addr") for p in peers}
    check("[fd00::3]:7006" in addrs and "127.0.31.3:7004" in addrs,
          "json peers of both families: %r" % out)
    # An IPv4-only node's lookup finds only IPv4 peers (its network).
    rc, out, _ = mdht("get-peers", IH, "--control", v4.sock)
    check(rc == 0 and "127.0.31.3:7004" in out and
          not any("fd00" in l for l in out), "v4-only node: %r" % out)


def part_raw(d):
    c4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c4.bind(("127.0.31.9", 0))
    c6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    c6.bind(("fd00::9", 0))
    try:
        target = os.urandom(20)
        m = raw(c4, (D4, PORT), "find_node", {"target": target},
                want=["n4", "n6"])
        r = m[b"r"]
        n4, n6 = r.get(b"nodes", b""), r.get(b"nodes6", b"")
        check(len(n4) > 0 and len(n4) % 26 == 0, "nodes: %d" % len(n4))
        check(len(n6) > 0 and len(n6) % 38 == 0, "nodes6: %d" % len(n6))
        ip6 = socket.inet_ntop(socket.AF_INET6, n6[20:36])
        check(ip6.startswith("fd00::"), "nodes6 entry %s" % ip6)
        print("want n4 n6 over IPv4: %d nodes, %d nodes6 entries (first %s)" %
              (len(n4) // 26, len(n6) // 38, ip6))
        m = raw(c4, (D4, PORT), "find_node", {"target": target}, want=["n6"])
        check(b"nodes" not in m[b"r"] and len(m[b"r"].get(b"nodes6", b"")) > 0,
              "want n6 alone: %r" % m[b"r"].keys())
        m = raw(c6, (D6, PORT), "get_peers", {"info_hash": target},
                want=["n4"])
        check(len(m[b"r"].get(b"nodes", b"")) > 0 and b"nodes6" not in m[b"r"],
              "want n4 over IPv6: %r" % m[b"r"].keys())
        # announce over IPv6 to D, then get_peers over both families
        ih = os.urandom(20)
        tok = raw(c6, (D6, PORT), "get_peers", {"info_hash": ih})[b"r"][b"token"]
        m = raw(c6, (D6, PORT), "announce_peer",
                {"info_hash": ih, "port": 7777, "token": tok})
        check(m[b"y"] == b"r", "announce over IPv6: %r" % m)
        m = raw(c4, (D4, PORT), "get_peers", {"info_hash": ih})
        check(b"values" not in m[b"r"], "no IPv6 value over IPv4: %r" % m)
        c6b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        c6b.bind(("fd00::8", 0))
        m = raw(c6b, (D6, PORT), "get_peers", {"info_hash": ih})
        c6b.close()
        vals = m[b"r"].get(b"values", [])
        check(len(vals) == 1 and len(vals[0]) == 18, "18-byte value: %r" % vals)
        check(socket.inet_ntop(socket.AF_INET6, vals[0][:16]) == "fd00::9" and
              int.from_bytes(vals[0][16:], "big") == 7777, "value %r" % vals)
        print("IPv6 announce: IPv4 get_peers 0 values, IPv6 get_peers 1 "
              "value of 18 bytes")
        # D stores it in its one store: its control socket lists it
        rc, out, _ = mdht("peers", ih.hex(), "--control", d.sock)
        check(rc == 0 and any("[fd00::9]:7777" in l for l in out),
              "peers lists the IPv6 peer: %r" % out)
    finally:
        c4.close()
        c6.close()


def part_queries_want_both(d):
    """A fake IPv4 node D pings back; D's find_node to it asks for both."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.31.10", 0))
    try:
        # querying D makes D ping us (confirmation); answering that puts us
        # in its table; a lookup through D then queries us.
        nid = b"\x43" * 20  # an id D has not seen at another address
        raw(s, (D4, PORT), "ping", {}, nid=nid)
        end = time.time() + 5
        seen = None
        lookup = None
        while time.time() < end and seen is None:
            r, _, _ = select.select([s], [], [], 0.2)
            if not r:
                continue
            data, frm = s.recvfrom(65536)
            m = bdecode(data)
            if m.get(b"y") != b"q":
                continue
            s.sendto(bencode({"t": m[b"t"], "y": "r", "r": {"id": nid}}), frm)
            if m[b"q"] == b"ping" and lookup is None:
                lookup = subprocess.Popen(
                    [BIN, "find-node", "43" * 20, "--control", d.sock],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            elif m[b"q"] == b"find_node":
                seen = m[b"a"].get(b"want")
        check(seen == [b"n4", b"n6"], "D's find_node asks want n4 n6: %r" % seen)
        if lookup:
            lookup.wait(30)
    finally:
        s.close()


def part_cli(tmp):
    rc, out, err = mdht("run", "--bind", "127.0.31.1", "--bind", "127.0.31.2",
                        "--no-state")
    lines = err.strip().splitlines()
    check(rc == 2 and len(lines) == 1 and lines[0].startswith("mdht: "),
          "two IPv4 --bind: %d %r" % (rc, err))
    print("two IPv4 --bind: exit %d, %s" % (rc, lines[0]))
    p = subprocess.Popen([BIN, "run", "--no-state", "--no-control",
                          "--no-bootstrap", "--port", "0"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        got, buf = [], b""
        end = time.time() + 10
        while time.time() < end and len(got) < 2:
            r, _, _ = select.select([p.stderr], [], [], 0.2)
            if r:
                buf += os.read(p.stderr.fileno(), 65536)
                got = [l.strip() for l in buf.decode().splitlines()
                       if "listening on" in l]
        check(len(got) == 2 and "0.0.0.0:" in got[0] and "[::]:" in got[1],
              "default binds both: %r" % got)
        print("default mdht run:\n  " + "\n  ".join(got))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)


def part_state(tmp, d):
    check(d.stop() == 0, "D stops cleanly")
    d2 = Node(tmp, "d2", [D4, D6], ["--state", os.path.join(tmp, "dstate"),
                                    "--no-bootstrap"])
    try:
        main, fam = stats(d2)
        check(main["nodes"]["total"] >= 4, "IPv4 table restored: %r" % main)
        check(fam[6]["nodes"]["total"] >= 4, "IPv6 table restored: %r" % fam)
        print("restarted D: IPv4 table %d, IPv6 table %d nodes" %
              (main["nodes"]["total"], fam[6]["nodes"]["total"]))
    finally:
        d2.stop()


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    tl.enter_namespace(ENV, __file__)
    setup_namespace()
    tmp = tempfile.mkdtemp(prefix="mdht-ds-")
    os.chmod(tmp, 0o700)
    d, others = None, []
    try:
        d, others = part_network(tmp)
        part_announce_and_find(d, others)
        part_raw(d)
        part_queries_want_both(d)
        part_cli(tmp)
        part_state(tmp, d)
    finally:
        for n in others + ([d] if d else []):
            try:
                n.stop()
            except Exception:
                n.p.kill()
    print("test_dualstack: %d checks passed" % tl.checks)


if __name__ == "__main__":
    main()
