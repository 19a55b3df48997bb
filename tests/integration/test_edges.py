#!/usr/bin/env python3
"""The rough edges of issue 11, black-box: the real binary over loopback.

- a client against a node with no usable node fails at once (--control),
  and the standalone client fails once its router pings timed out (not at
  --timeout), with one progress line per phase on a terminal;
- an announce that every node refuses: exit 1 "no node accepted the
  announce";
- ping: exit 1 for no answer with or without --timeout; --timeout N
  honoured within a second against a stopped (SIGSTOP) node;
- SIGINT exits 130 (standalone and --control clients started in the
  background of a script, mdht run, testnet); SIGTERM stops run with 0;
- ping of an IPv6 address from an IPv4 --bind: one clear line;
- --json: errors (usage ones too) as one JSON object on stdout;
- testnet --help shows no "(default 0)" for the required --nodes;
- logs as the README's level table says; a bind failure is one line;
- stats counts bad nodes, plurals; magnet links in capitals or
  percent-encoded; a state load is said in one line.

Nodes on 127.0.111.x; nothing leaves loopback.

Usage: test_edges.py path/to/mdht
"""
import json
import os
import pty
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as tl  # noqa: E402
from testlib import check  # noqa: E402
import krpc_client as k  # noqa: E402

BIN = None
PORT = 17911
IH = "0123456789abcdef0123456789abcdef01234567"
DEAD = "127.0.111.99:9"  # nobody listens there


def mdht(*args, timeout=40):
    return tl.cmd(BIN, args, timeout)


def one_line(err, what):
    check(err.count("\n") == 1 and err.startswith("mdht: "),
          "%s: want one 'mdht: ' line, got %r" % (what, err))


class Run(tl.CtlNode):
    """`mdht run` with a control socket, its stderr kept."""

    def __init__(self, ip, sock, args, level="info", port=PORT):
        super().__init__(BIN, sock, ["--bind", ip, "--port", str(port),
                                     "--log-level", level] + args)
        self.wait_up()


def background_int(cmd, delay=1.0):
    """Runs `cmd` in the background of a non-interactive bash (which
    starts it with SIGINT ignored), then `kill -INT`s it; returns its exit
    status and how long the kill took to end it."""
    script = ('"$@" 2>/dev/null >/dev/null & p=$!; sleep %s; t0=$(date +%%s%%N);'
              ' kill -INT $p; wait $p; rc=$?; t1=$(date +%%s%%N);'
              ' echo $rc $(( (t1 - t0) / 1000000 ))' % delay)
    p = subprocess.run(["bash", "-c", script, "bash"] + cmd,
                       stdout=subprocess.PIPE, timeout=60)
    rc, ms = p.stdout.decode().split()
    return int(rc), int(ms)


def with_pty(cmd):
    """Runs `cmd` with stderr on a terminal; returns (status, stderr)."""
    m, s = pty.openpty()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=s)
    os.close(s)
    buf = b""
    while True:
        try:
            d = os.read(m, 4096)
        except OSError:
            break
        if not d:
            break
        buf += d
    os.close(m)
    return p.wait(30), buf.decode(errors="replace").replace("\r\n", "\n")


class Refuser(k.Sock):
    """A node that answers every lookup with a token but refuses every
    announce_peer (KRPC error 203)."""

    def answer(self, frm, m):
        q = m.get(b"q")
        if q == b"announce_peer":
            self.send(frm, {"t": m[b"t"], "y": "e", "e": [203, "bad token"]})
            return
        r = {"id": self.id}
        if q in (b"get_peers", b"find_node"):
            r["nodes"] = b""
            r["token"] = b"tok"
        self.send(frm, {"t": m[b"t"], "y": "r", "r": r})


def test_empty_node(tmp):
    sock = os.path.join(tmp, "empty.sock")
    n = Run("127.0.111.1", sock, ["--no-state", "--no-bootstrap"])
    try:
        for cmd in (["get-peers", IH], ["find-node", IH],
                    ["announce", IH, "--port", "1"]):
            rc, out, err, took = mdht(*cmd, "--control", sock)
            check(rc == 2 and "the node knows no other node yet" in err,
                  "%s on an empty node: %d %r" % (cmd[0], rc, err))
            one_line(err, cmd[0])
            check(took < 1.0, "%s on an empty node took %.2f s" %
                  (cmd[0], took))
        # Magnet links in capitals and percent-encoded are read (the node,
        # not the parser, refuses them: it knows nobody).
        for link in ("MAGNET:?XT=URN:BTIH:" + IH.upper(),
                     "magnet:?xt=urn%3Abtih%3A" + IH + "&dn=x"):
            rc, _, err, _ = mdht("get-peers", link, "--control", sock)
            check(rc == 2 and "knows no other node" in err,
                  "magnet %r: %d %r" % (link, rc, err))
        # stats: bad nodes counted, one bucket is "1 bucket".
        rc, out, err, _ = mdht("stats", "--control", sock)
        check(rc == 0 and re.search(
            r"^nodes +0 \(0 good, 0 questionable, 0 bad\) in 1 bucket, "
            r"0 replacements$", out, re.M), "stats text: %r" % out)
        rc, out, _, _ = mdht("stats", "--control", sock, "--json")
        check(json.loads(out)["nodes"]["bad"] == 0, "stats --json bad")
        # ping: no answer is exit 1 with or without --timeout.
        rc, _, err, took = mdht("ping", DEAD, "--control", sock)
        check(rc == 1 and "no answer from" in err, "ping: %d %r" % (rc, err))
        rc, _, err, took = mdht("ping", DEAD, "--control", sock,
                                "--timeout", "2")
        check(rc == 1 and "no answer from 127.0.111.99:9 within 2 s" in err,
              "ping --timeout 2: %d %r" % (rc, err))
        check(1.8 < took < 3.0, "ping --timeout 2 took %.1f s" % took)
        # Ctrl-C on a --control client run in a script's background.
        rc, ms = background_int([BIN, "ping", DEAD, "--control", sock,
                                 "--timeout", "30"])
        check(rc == 130 and ms < 2000,
              "--control client, kill -INT: %d after %d ms" % (rc, ms))
        # --timeout N against a stopped node: within N + 1 s.
        n.p.send_signal(signal.SIGSTOP)
        try:
            rc, _, err, took = mdht("get-peers", IH, "--control", sock,
                                    "--timeout", "2")
        finally:
            n.p.send_signal(signal.SIGCONT)
        check(rc == 2 and 2.0 <= took < 3.0,
              "stopped node, --timeout 2: %d in %.2f s %r" % (rc, took, err))
        one_line(err, "stopped node")
    finally:
        check(n.stop(signal.SIGINT) == 130, "mdht run exits 130 on SIGINT")


def test_standalone():
    rc, _, err, took = mdht("find-node", IH, "--bootstrap", DEAD)
    check(rc == 2 and err == "mdht: no bootstrap node answered\n",
          "unreachable bootstrap: %d %r" % (rc, err))
    check(took < 7.0, "unreachable bootstrap took %.1f s (not --timeout)"
          % took)
    rc, err = with_pty([BIN, "get-peers", IH, "--bootstrap", DEAD,
                        "--bootstrap", "127.0.111.98:9"])
    check(rc == 2 and err == "bootstrapping via 2 routers...\n"
          "mdht: no bootstrap node answered\n",
          "progress on a terminal: %d %r" % (rc, err))
    # ping: exit 1 both ways.
    rc, _, err, _ = mdht("ping", DEAD)
    check(rc == 1, "standalone ping: %d %r" % (rc, err))
    rc, _, err, took = mdht("ping", DEAD, "--timeout", "1")
    check(rc == 1 and took < 2.0, "standalone ping --timeout 1: %d %r %.1f"
          % (rc, err, took))
    rc, ms = background_int([BIN, "find-node", IH, "--bootstrap", DEAD,
                             "--timeout", "30"], delay=0.5)
    check(rc == 130 and ms < 2000, "standalone, kill -INT: %d after %d ms"
          % (rc, ms))
    # Address family.
    rc, out, err, _ = mdht("ping", "[::1]:20001", "--bind", "127.0.8.100")
    check(rc == 2 and err == "mdht: cannot ping an IPv6 address from an IPv4 "
          "binding (--bind 127.0.8.100)\n", "family: %d %r" % (rc, err))
    # --json errors: runtime and usage.
    for cmd in (["ping", "[::1]:20001", "--bind", "127.0.8.100", "--json"],
                ["get-peers", "nothex", "--json"],
                ["get-peers", IH, "--json", "--bogus"],
                ["stats", "--control", "/nonexistent/x", "--json"]):
        rc, out, err, _ = mdht(*cmd)
        lines = out.splitlines()
        check(rc == 2 and len(lines) == 1, "%r: %d %r" % (cmd, rc, out))
        obj = json.loads(lines[0])
        check(obj["type"] == "error" and obj["exit"] == 2 and
              obj["error"] == err[len("mdht: "):].rstrip("\n"),
              "%r: json %r, stderr %r" % (cmd, obj, err))
    # testnet: no "(default 0)" for the required --nodes; 0 refused.
    rc, out, _, _ = mdht("testnet", "--help")
    check(rc == 0 and "(default 0)" not in out and
          re.search(r"--nodes N .*\(required\)", out), "testnet --help")
    rc, _, err, _ = mdht("testnet", "--nodes", "0")
    check(rc == 2 and "--nodes" in err, "testnet --nodes 0: %r" % err)
    one_line(err, "testnet --nodes 0")
    rc, ms = background_int([BIN, "testnet", "--nodes", "2", "--base-ip",
                             "127.0.111.60", "--port", str(PORT)])
    check(rc == 130, "testnet, kill -INT: %d" % rc)


def test_announce_refused():
    socks = [Refuser("127.0.111.%d" % i) for i in (20, 21, 22)]
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            k.serve_all(socks, 0.2)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        boot = []
        for s in socks:
            boot += ["--bootstrap", "%s:%d" % s.addr]
        rc, out, err, _ = mdht("announce", IH, "--port", "5000", *boot,
                               "--timeout", "15")
        check(rc == 1 and err == "mdht: no node accepted the announce\n",
              "announce refused by all: %d %r %r" % (rc, out, err))
    finally:
        stop.set()
        t.join(5)


def test_logs(tmp):
    sa, sb = os.path.join(tmp, "a.sock"), os.path.join(tmp, "b.sock")
    a = Run("127.0.111.1", sa, ["--no-state", "--no-bootstrap"], "info")
    b = Run("127.0.111.2", sb, ["--no-state", "--bootstrap",
                                "127.0.111.1:%d" % PORT], "debug")
    c = None
    try:
        c = Run("127.0.111.3", os.path.join(tmp, "c.sock"),
                ["--no-state", "--bootstrap", "127.0.111.1:%d" % PORT])
        time.sleep(1.5)
        for i in range(5):
            rc, _, err, _ = mdht("find-node", "%040x" % (i * 7919), "--control",
                                 sb)
            check(rc == 0, "find-node via b: %d %r" % (rc, err))
            mdht("find-node", "%040x" % (i * 104729), "--control", sa)
        time.sleep(0.5)
        # The bind failure: the documented one line, exit 2.
        rc, _, err, _ = mdht("run", "--no-state", "--no-bootstrap", "--bind",
                             "127.0.111.1", "--port", str(PORT))
        check(rc == 2 and err == "mdht: cannot bind 127.0.111.1:%d: Address "
              "already in use\n" % PORT, "bind failure: %d %r" % (rc, err))
    finally:
        for n in (a, b, c):
            if n:
                check(n.stop() == 0, "mdht run exits 0 on SIGTERM")
    def count(lines, word):
        return sum(1 for ln in lines if re.search(r"\b%s\b" % word, ln))
    # info: lookups end, but their start and the traffic are not shown;
    # external_addr at most once per change (one address here).
    check(count(a.lines, "lookup_started") == 0, "info: no lookup_started")
    check(count(a.lines, "lookup_done") >= 1, "info: lookup_done %r" % a.lines)
    check(count(a.lines, "external_addr") <= 1, "info: external_addr once")
    # debug: lookup starts, but not one line per datagram (trace).
    check(count(b.lines, "lookup_started") >= 5, "debug: lookup_started")
    for w in ("query_sent", "response_received", "query_received",
              "response_sent"):
        check(count(b.lines, w) == 0, "debug: no %s" % w)
    check(count(b.lines, "external_addr") <= 1, "debug: external_addr once")


def test_state_load(tmp):
    d = os.path.join(tmp, "state")
    sock = os.path.join(tmp, "s.sock")
    n = Run("127.0.111.5", sock, ["--state", d, "--no-bootstrap"])
    check(n.stop() == 0, "state node exits 0")
    n = Run("127.0.111.5", sock, ["--state", d, "--no-bootstrap"])
    time.sleep(0.3)
    check(n.stop() == 0, "state node exits 0 again")
    said = [ln for ln in n.lines if "state loaded" in ln or
            "state_loaded" in ln]
    check(len(said) == 1, "a state load is one line: %r" % said)
    check(re.search(r": 0 nodes, 0 candidates .* 0 peers", said[0]),
          "load line: %r" % said[0])


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        test_empty_node(tmp)
        test_standalone()
        test_announce_refused()
        test_logs(tmp)
        test_state_load(tmp)
    print("test_edges: %d checks passed" % tl.checks)


if __name__ == "__main__":
    main()
