#!/usr/bin/env python3
"""BEP 42 on the real binary, over loopback: a node's responders tell it
its address (`ip`), it votes, and on a private address it keeps its id.

Ten fake nodes, each on its own loopback address, serve as bootstrap
routers and answer every query of `mdht run` (bound to 127.0.3.1):
three say the node is at its real (loopback) address, seven (enough to
outvote them, were they believed) claim a public address for it. The
node must
- adopt its loopback address (one `external_addr` log line, once),
- ignore the public claims (a loopback peer cannot see a public address),
- never change its id (private addresses are exempt from BEP 42): no
  `node_id_changed` line, and it still answers with the id it started
  with.

Nothing leaves loopback; the process is stopped by PID; waits are
bounded.

Usage: test_bep42.py path/to/mdht
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import krpc_client as kc  # noqa: E402

NODE_IP = "127.0.3.1"
PORT = 16991


class Voter(kc.Sock):
    """A fake node whose answers carry `ip`: what it says we are."""

    def __init__(self, ip, says):
        super().__init__(ip)
        self.says = says

    def answer(self, frm, m):
        claim = self.says if self.says else frm
        self.send(frm, {"t": m[b"t"], "y": "r", "r": {"id": self.id},
                        "ip": kc.compact_addr(claim[0], claim[1])})


def main():
    binary = sys.argv[1]
    honest = [Voter("127.0.3.%d" % (10 + i), None) for i in range(3)]
    liars = [Voter("127.0.3.%d" % (20 + i), ("93.184.216.34", PORT))
             for i in range(7)]
    voters = honest + liars
    args = ["--bind", NODE_IP, "--port", str(PORT), "--log-level", "info"]
    for v in voters:
        args += ["--bootstrap", "%s:%d" % v.addr]
    node = kc.MdhtProcess(binary, args)
    try:
        start_id = node.id
        # Several rounds of queries: bootstrap pings, the self lookup and
        # its retries.
        kc.serve_all(voters, 8.0)
        probe = kc.Sock("127.0.3.99")
        r = probe.query((NODE_IP, PORT), "ping", {})
        answered_id = r[b"r"][b"id"]
        probe.close()
        assert node.alive(), "mdht died"
    finally:
        node.stop()
        for v in voters:
            v.close()
    log = "".join(node.lines)
    ext = [ln for ln in node.lines if "external_addr" in ln]
    changed = [ln for ln in node.lines if "node_id_changed" in ln]
    print("figure: external_addr lines: %d (%s)" %
          (len(ext), ext[0].strip() if ext else "-"))
    print("figure: node_id_changed lines: %d" % len(changed))
    assert len(ext) == 1, log
    assert "addr=%s:%d" % (NODE_IP, PORT) in ext[0], ext[0]
    assert "93.184.216.34" not in log, log
    assert not changed, log
    assert answered_id == start_id, (answered_id.hex(), start_id.hex())
    print("ok: loopback node kept its id %s" % start_id.hex())


if __name__ == "__main__":
    main()
