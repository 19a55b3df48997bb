#!/usr/bin/env python3
"""The default control socket and the inspection commands, black-box
(issue 11, items 1 and 2):

- with XDG_RUNTIME_DIR set (to a directory of this test), `mdht run` serves
  $XDG_RUNTIME_DIR/mdht.sock and says so; `mdht stats`, `get-peers`,
  `table`, `infohashes`, `peers` reach it with no --control;
- MDHT_CONTROL overrides the default, --standalone bypasses it;
- with no node there, a lookup says so in one stderr line and runs a
  short-lived node; stats/table/... fail in one line, exit 2;
- a second `mdht run` on the same default socket: one line, exit 2; a stale
  socket (its node killed) is replaced;
- --no-state without XDG_RUNTIME_DIR: no default socket, said in one line.

Nodes on 127.0.62.x; nothing leaves loopback (the short-lived nodes only
ping loopback addresses or bootstrap from our node).

Usage: test_service_ctl.py path/to/mdht
"""
import json
import os
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

BIN = None
PORT = 17891
IH = "00112233445566778899aabbccddeeff00112233"
OTHER_IH = "ffeeddccbbaa99887766554433221100ffeeddcc"


def mdht(*args, env=None, timeout=40):
    """Runs a client command; returns (status, stdout lines, stderr lines)."""
    rc, out, err = tl.cmd_lines(BIN, args, timeout, env)
    return rc, out, err.splitlines()


class Node:
    """`mdht run --no-state` on 127.0.62.X:PORT with `args`."""

    def __init__(self, ip, args, env=None):
        self.addr = "%s:%d" % (ip, PORT)
        self.lines = []
        self.p = subprocess.Popen(
            [BIN, "run", "--no-state", "--bind", ip, "--port", str(PORT)] +
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=env)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.p.stderr:
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    def wait_line(self, pred, what, secs=10):
        end = time.time() + secs
        while time.time() < end:
            for line in list(self.lines):
                if pred(line):
                    return line
            check(self.p.poll() is None,
                  "%s: node exited: %r" % (what, self.lines))
            time.sleep(0.05)
        raise AssertionError("%s: not seen in %r" % (what, self.lines))

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        return self.p.wait(10)


def stats(*extra):
    rc, out, err = mdht("stats", "--json", *extra)
    check(rc == 0 and len(out) == 1, "stats: %d %r %r" % (rc, out, err))
    return json.loads(out[0])


def wait_for(pred, what, secs=15):
    end = time.time() + secs
    while time.time() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(what)


TABLE_LINE = re.compile(
    r"^\d+ +[0-9a-f]{40} 127\.0\.62\.\d+:%d (good|questionable|bad) "
    r"age \d+s seen (\d+s|-) rtt (\d+ms|-)$" % PORT)


def test_no_node(sock):
    # Nothing serves the default socket yet.
    for cmd in (["stats"], ["table"], ["infohashes"], ["peers", IH],
                ["save"]):
        rc, out, err = mdht(*cmd)
        check(rc == 2 and out == [] and len(err) == 1 and
              err[0] == "mdht: %s needs a running node: none serves %s "
              "(start 'mdht run', or give --control PATH or MDHT_CONTROL)"
              % (cmd[0], sock), "%s without a node: %d %r" % (cmd, rc, err))
    # A lookup runs a short-lived node, and says so first, in one line.
    # (A ping: it needs no bootstrap, so nothing leaves loopback.)
    t0 = time.time()
    rc, out, err = mdht("ping", "127.0.62.99:%d" % PORT, "--timeout", "1")
    # (Its own outcome, "no answer" or "timed out", is another test's.)
    check(rc in (1, 2) and len(err) == 2 and err[0] ==
          "mdht: no running node at %s; starting a short-lived one" % sock and
          err[1].startswith("mdht: "),
          "ping without a node: %d %r" % (rc, err))
    check(time.time() - t0 < 5, "the short-lived ping took too long")
    # The options only a short-lived node can use imply it: no notice.
    rc, out, err = mdht("ping", "127.0.62.99:%d" % PORT, "--timeout", "1",
                        "--bind", "127.0.62.98")
    check(rc in (1, 2) and len(err) == 1 and "short-lived" not in err[0],
          "ping --bind: no notice: %r" % err)


def test_served(a, sock):
    # stats, with no --control: the node on the default socket.
    s = stats()
    check(s["id"] == a.id, "stats answered by another node: %r" % s)
    # table: both other nodes, one line each, good, with an RTT.
    wait_for(lambda: len(mdht("table")[1]) == 2, "table never showed 2 nodes")
    rc, out, err = mdht("table")
    check(rc == 0 and err == [], "table: %d %r" % (rc, err))
    for line in out:
        check(TABLE_LINE.match(line), "table line %r" % line)
    check(sorted(l.split()[2] for l in out) ==
          ["127.0.62.2:%d" % PORT, "127.0.62.3:%d" % PORT],
          "table addresses: %r" % out)
    rc, out, err = mdht("table", "--json")
    rows = [json.loads(l) for l in out]
    check(rc == 0 and len(rows) == 2, "table --json: %r" % out)
    for r in rows:
        check(r["type"] == "node" and r["state"] == "good" and
              re.fullmatch("[0-9a-f]{40}", r["id"]) and
              isinstance(r["rtt_ms"], int) and r["rtt_ms"] >= 1 and
              r["age_ms"] >= r["seen_ms"] >= 0 and r["fails"] == 0,
              "table row %r" % r)

    # Nothing stored yet: exit 1, said in one line.
    rc, out, err = mdht("infohashes")
    check(rc == 1 and out == [] and err == ["mdht: no info-hash stored"],
          "empty infohashes: %d %r %r" % (rc, out, err))

    # A peer announced to our nodes (a short-lived node from 127.0.62.9,
    # bootstrapped from A: --standalone, else it would ask A to announce).
    rc, out, err = mdht("announce", IH, "--port", "6999", "--standalone",
                        "--bootstrap", a.addr, "--bind", "127.0.62.9",
                        "--timeout", "10")
    check(rc == 0 and len(out) >= 1, "announce: %d %r %r" % (rc, out, err))
    rc, out, err = mdht("infohashes")
    check(rc == 0 and len(out) == 1 and
          re.fullmatch(r"%s peers 1 seeds 0 newest \d+s oldest \d+s" % IH,
                       out[0]), "infohashes: %d %r %r" % (rc, out, err))
    rc, out, err = mdht("infohashes", "--json")
    row = json.loads(out[0])
    check(row["type"] == "infohash" and row["infohash"] == IH and
          row["peers"] == 1 and row["oldest_ms"] >= row["newest_ms"] >= 0,
          "infohashes --json: %r" % row)
    rc, out, err = mdht("peers", IH)
    check(rc == 0 and len(out) == 1 and
          re.fullmatch(r"127\.0\.62\.9:6999 age \d+s", out[0]),
          "peers: %d %r %r" % (rc, out, err))
    rc, out, err = mdht("peers", "magnet:?xt=urn:btih:" + IH, "--json")
    row = json.loads(out[0])
    check(rc == 0 and row == {"type": "peer", "addr": "127.0.62.9:6999",
                              "seed": False, "age_ms": row["age_ms"],
                              "ttl_ms": row["ttl_ms"]} and
          row["ttl_ms"] > 0, "peers --json: %r" % row)
    rc, out, err = mdht("peers", OTHER_IH)
    check(rc == 1 and err == ["mdht: no peer stored for %s" % OTHER_IH],
          "peers of an unknown info-hash: %d %r" % (rc, err))
    rc, out, err = mdht("peers")
    check(rc == 2 and len(err) == 1 and "peers needs INFOHASH" in err[0],
          "peers with no argument: %r" % err)

    # get-peers with no --control: through A (its own lookup counter
    # moves), and no notice.
    before = stats()["queries_out"]["get_peers"]
    rc, out, err = mdht("get-peers", IH, "--timeout", "10")
    check(rc == 0 and "127.0.62.9:6999" in out and err == [],
          "get-peers via the default socket: %d %r %r" % (rc, out, err))
    check(stats()["queries_out"]["get_peers"] > before,
          "get-peers did not run on the node of the default socket")

    # --standalone bypasses the node: A sends no ping for it.
    before = stats()["queries_out"]["ping"]
    rc, out, err = mdht("ping", "127.0.62.2:%d" % PORT, "--standalone",
                        "--timeout", "5")
    check(rc == 0 and err == [], "ping --standalone: %d %r" % (rc, err))
    check(stats()["queries_out"]["ping"] == before,
          "--standalone went through the running node")
    rc, out, err = mdht("ping", "127.0.62.2:%d" % PORT, "--timeout", "5")
    check(rc == 0 and stats()["queries_out"]["ping"] == before + 1,
          "ping via the default socket: %d %r" % (rc, err))
    rc, out, err = mdht("ping", "127.0.62.2:%d" % PORT, "--standalone",
                        "--control", sock)
    check(rc == 2 and len(err) == 1 and "exclude each other" in err[0],
          "--standalone with --control: %r" % err)
    rc, out, err = mdht("stats", "--standalone")
    check(rc == 2 and len(err) == 1 and "--standalone" in err[0],
          "stats --standalone: %r" % err)


def test_override(tmp, a):
    # MDHT_CONTROL names another node: it answers, not the default one.
    dsock = os.path.join(tmp, "d.sock")
    d = Node("127.0.62.4", ["--no-bootstrap", "--control", dsock])
    try:
        d.wait_line(lambda l: l.endswith("control socket " + dsock),
                    "D's control line")
        env = dict(os.environ, MDHT_CONTROL=dsock)
        rc, out, err = mdht("stats", "--json", env=env)
        did = json.loads(out[0])["id"]
        check(rc == 0 and did != a.id and did in " ".join(d.lines),
              "MDHT_CONTROL: answered by %s, A is %s" % (did, a.id))
        # --control beats MDHT_CONTROL.
        rc, out, err = mdht("stats", "--json", "--control", a.sock, env=env)
        check(json.loads(out[0])["id"] == a.id, "--control over MDHT_CONTROL")
        # A dead MDHT_CONTROL is an error, not a fallback.
        env = dict(os.environ, MDHT_CONTROL=os.path.join(tmp, "none.sock"))
        rc, out, err = mdht("stats", env=env)
        check(rc == 2 and len(err) == 1 and "none.sock" in err[0],
              "dead MDHT_CONTROL: %d %r" % (rc, err))
    finally:
        d.stop()


def test_second_and_stale(sock):
    # A second node on the same default socket: one line, exit 2.
    p = subprocess.run([BIN, "run", "--no-state", "--no-bootstrap", "--bind",
                        "127.0.62.5", "--port", str(PORT)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    check(p.returncode == 2 and
          p.stderr.decode() == "mdht: another node serves %s\n" % sock,
          "second node: %d %r" % (p.returncode, p.stderr))


def test_no_state_no_xdg(tmp):
    env = dict(os.environ)
    env.pop("XDG_RUNTIME_DIR")
    n = Node("127.0.62.6", ["--no-bootstrap"], env=env)
    try:
        line = n.wait_line(lambda l: "no control socket" in l, "no socket")
        check(line.endswith("no control socket: no XDG_RUNTIME_DIR, and "
                            "--no-state leaves no state directory for one "
                            "(give --control PATH)"), line)
        check(sum("control socket" in l for l in n.lines) == 1,
              "one line: %r" % n.lines)
    finally:
        check(n.stop() == 0, "the node without a socket stops cleanly")


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="mdht-svc-") as tmp:
        rt = os.path.join(tmp, "rt")
        os.mkdir(rt, 0o700)
        os.environ["XDG_RUNTIME_DIR"] = rt
        os.environ["HOME"] = os.path.join(tmp, "home")  # hermetic fallback
        os.environ.pop("XDG_STATE_HOME", None)
        os.environ.pop("MDHT_CONTROL", None)
        sock = os.path.join(rt, "mdht.sock")

        test_no_node(sock)
        a = Node("127.0.62.1", ["--no-bootstrap"])
        others = []
        try:
            a.sock = sock
            a.wait_line(lambda l: l.endswith("control socket " + sock),
                        "A's control socket line")
            a.id = stats()["id"]
            for ip in ("127.0.62.2", "127.0.62.3"):
                others.append(Node(ip, ["--no-control", "--bootstrap",
                                        a.addr]))
            test_served(a, sock)
            test_override(tmp, a)
            test_second_and_stale(sock)
            # Killed: its socket file stays, stale; the next node takes it.
            a.stop(signal.SIGKILL)
            check(os.path.exists(sock), "a killed node leaves its socket")
            a = Node("127.0.62.1", ["--no-bootstrap"])
            a.wait_line(lambda l: l.endswith("control socket " + sock),
                        "the stale socket replaced")
            check(stats()["id"] in " ".join(a.lines), "the new node answers")
        finally:
            for n in [a] + others:
                n.stop()
        check(not os.path.exists(sock), "the socket is removed on exit")
        test_no_state_no_xdg(tmp)
    print("test_service_ctl: %d checks passed" % tl.checks)


if __name__ == "__main__":
    main()
