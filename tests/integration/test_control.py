#!/usr/bin/env python3
"""The control socket of `mdht run --control PATH`, black-box: the client
commands through it (get-peers, announce, find-node, ping, stats), the same
commands without it (a short-lived node), bad requests, too many clients,
a second node on the same path, file mode and clean-up.

A few nodes on 127.0.6.x, bootstrapped from the first; nothing leaves
loopback.

Usage: test_control.py path/to/mdht
"""
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as tl  # noqa: E402
from testlib import check  # noqa: E402

BIN = None
PORT = 17881  # below the ephemeral range: no clash with port-0 sockets
IH = "0123456789abcdef0123456789abcdef01234567"
OTHER_IH = "fedcba9876543210fedcba9876543210fedcba98"


def mdht(*args, timeout=30):
    """Runs a client command; returns (status, stdout lines, stderr)."""
    return tl.cmd_lines(BIN, args, timeout)


def one_error_line(err, what):
    lines = err.splitlines()
    check(len(lines) == 1 and lines[0].startswith("mdht: "),
          "%s: want one 'mdht: ' line on stderr, got %r" % (what, err))


def raw(path, data, want_status=1, timeout=5.0):
    """Sends raw bytes on a fresh connection; returns what came back once
    `want_status` status lines have arrived or the server closed."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # turned away before we spoke: its answer is still readable
    out = b""
    try:
        while out.count(b"\0exit ") < want_status:
            d = s.recv(65536)
            if not d:
                break
            out += d
        # The last status line may still be arriving.
        while out and not out.endswith(b"\n"):
            d = s.recv(65536)
            if not d:
                break
            out += d
    finally:
        s.close()
    return out


class Node(tl.CtlNode):
    """`mdht run` on IP:PORT with a control socket; its id is read through
    that socket (stats), which also tells that the node is up."""

    def __init__(self, ip, sock, args, level="warn"):
        self.addr = "%s:%d" % (ip, PORT)
        super().__init__(BIN, sock, ["--no-state", "--bind", ip, "--port",
                                     str(PORT), "--log-level", level] + args)
        self.wait_up()


def stats(sock):
    rc, out, err = mdht("stats", "--control", sock, "--json")
    check(rc == 0, "stats: exit %d %s" % (rc, err))
    check(len(out) == 1, "stats --json is one line: %r" % out)
    return json.loads(out[0])


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="mdht-ctl-")
    nodes = []
    try:
        socks = [os.path.join(tmp, "n%d.sock" % i) for i in range(4)]
        first = Node("127.0.6.1", socks[0], ["--no-bootstrap"], "info")
        nodes.append(first)
        for i in range(1, 4):
            nodes.append(Node("127.0.6.%d" % (i + 1), socks[i],
                              ["--bootstrap", first.addr]))
        ids = {n.id: n.addr for n in nodes}

        # The file: a socket, 0600.
        st = os.lstat(socks[0])
        check(stat.S_ISSOCK(st.st_mode), "control path is a socket")
        check(stat.S_IMODE(st.st_mode) == 0o600,
              "mode %o, want 600" % stat.S_IMODE(st.st_mode))
        check(any("control socket" in l for l in first.lines),
              "the node says where its control socket is")

        # Everyone knows everyone (4 nodes fit in one bucket).
        end = time.time() + 20
        while time.time() < end:
            if all(stats(s)["nodes"]["total"] >= 3 for s in socks):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("tables did not fill: %r" %
                                 [stats(s)["nodes"] for s in socks])

        # ping
        rc, out, err = mdht("ping", ids[nodes[2].id], "--control",
                            socks[0])
        check(rc == 0, "ping via control: %d %s" % (rc, err))
        check(len(out) == 1, "ping prints one line: %r" % out)
        nid, rtt = out[0].split()
        check(nid == nodes[2].id, "ping: id %s" % nid)
        check(rtt.isdigit(), "ping: rtt %r" % rtt)
        rc, out, err = mdht("ping", ids[nodes[2].id], "--control",
                            socks[0], "--json")
        o = json.loads(out[0])
        check(o["type"] == "pong" and o["id"] == nodes[2].id
              and isinstance(o["rtt_ms"], int), "ping --json: %r" % o)
        # Nobody there: status 1.
        rc, out, err = mdht("ping", "127.0.6.9:9", "--control", socks[0],
                            "--timeout", "10")
        check(rc == 1 and out == [], "ping nobody: %d %r" % (rc, out))
        one_error_line(err, "ping nobody")
        check("no answer from 127.0.6.9:9" in err, err)

        # find-node: the other three, closest first.
        target = "00" * 20
        rc, out, err = mdht("find-node", target, "--control", socks[1])
        check(rc == 0, "find-node: %d %s" % (rc, err))
        got = [l.split() for l in out]
        for nid, addr in got:
            check(ids.get(nid) == addr, "find-node: unknown %s %s" %
                  (nid, addr))
        dists = [int(nid, 16) for nid, _ in got]
        check(dists == sorted(dists), "find-node: closest first")
        check({nid for nid, _ in got} >= set(ids) - {nodes[1].id},
              "find-node finds the others: %r" % got)

        # announce, then get-peers from every other node.
        rc, out, err = mdht("announce", IH, "--port", "6999", "--control",
                            socks[1])
        check(rc == 0, "announce: %d %s" % (rc, err))
        check(len(out) >= 1, "some node accepted: %r" % out)
        for l in out:
            nid, addr = l.split()
            check(ids.get(nid) == addr, "announce: unknown %s" % l)
        peer = "127.0.6.2:6999"
        for i in (0, 2, 3):
            rc, out, err = mdht("get-peers", IH, "--control", socks[i])
            check(rc == 0 and peer in out,
                  "get-peers via node %d: %d %r %s" % (i, rc, out, err))
        rc, out, err = mdht("get-peers", "magnet:?xt=urn:btih:" + IH +
                            "&dn=test", "--control", socks[3], "--json")
        check(rc == 0, "get-peers magnet --json: %d %s" % (rc, err))
        objs = [json.loads(l) for l in out]
        check({"type": "peer", "addr": peer} in objs, "json peer: %r" % objs)
        done = objs[-1]
        check(done["type"] == "done" and done["command"] == "get-peers" and
              done["target"] == IH and done["peers"] >= 1 and
              done["rounds"] >= 1 and done["queries"] >= done["responses"] >= 1,
              "json summary: %r" % done)
        # No peers: status 1, one line.
        rc, out, err = mdht("get-peers", OTHER_IH, "--control", socks[2])
        check(rc == 1 and out == [], "no peers: %d %r" % (rc, out))
        one_error_line(err, "no peers")

        # The same without --control: a short-lived read-only node.
        rc, out, err = mdht("get-peers", IH, "--bootstrap", ids[
            nodes[3].id], "--timeout", "20")
        check(rc == 0 and peer in out, "get-peers, short-lived node: %d %r %s"
              % (rc, out, err))
        rc, out, err = mdht("ping", ids[nodes[0].id])
        check(rc == 0 and out[0].split()[0] == nodes[0].id,
              "ping, short-lived node: %d %r %s" % (rc, out, err))

        # stats, text and JSON.
        rc, out, err = mdht("stats", "--control", socks[0])
        check(rc == 0, "stats: %d %s" % (rc, err))
        text = "\n".join(out)
        for key in ("uptime", "nodes", "bucket 0", "storage", "queries in",
                    "queries out", "errors", "timeouts", "dropped"):
            check(key in text, "stats text lacks %r: %s" % (key, text))
        s = stats(socks[0])
        check(s["id"] == nodes[0].id, "stats id")
        check(s["nodes"]["total"] >= 3 and
              s["nodes"]["total"] == sum(b["nodes"] for b in s["buckets"]),
              "stats: buckets add up: %r" % s)
        check(s["queries_in"]["ping"] >= 1 and s["queries_out"]["ping"] >= 1,
              "stats: ping counters %r" % s)
        check(set(s["dropped"]) >= {"parse", "proto", "unmatched"},
              "stats: drop reasons %r" % s["dropped"])
        stored = sum(stats(x)["storage"]["peers"] for x in socks)
        check(stored >= 1, "the announced peer is stored somewhere")
        rc, out, err = mdht("stats")
        check(rc == 2, "stats without --control: %d" % rc)
        one_error_line(err, "stats without --control")

        # Bad requests get an error and the connection stays usable.
        for req, want in ((b"frobnicate\n", b"unknown command"),
                          (b"\n", b"empty request"),
                          (b"get-peers xyz\n", b"bad info-hash"),
                          (b"get-peers " + IH.encode() + b" --frob\n",
                           b"unexpected"),
                          (b"announce " + IH.encode() + b"\n", b"--port"),
                          (b"ping nowhere\n", b"bad address"),
                          (b"stats\x00\n", b"NUL"),
                          (b"\xff\xfe\x00garbage\n", b"exit 2")):
            r = raw(socks[0], req)
            check(r.startswith(b"\0exit 2 ") and want in r,
                  "bad request %r -> %r" % (req, r))
        r = raw(socks[0], b"frobnicate\nping %s\nstats\n" %
                ids[nodes[1].id].encode(), want_status=3)
        parts = r.split(b"\0exit ")
        check(len(parts) == 4 and parts[1].startswith(b"2 ") and
              parts[2].startswith(b"0") and parts[3].startswith(b"0"),
              "pipelined requests answered in order: %r" % r[:300])
        # A line over the limit: error, then the server hangs up.
        r = raw(socks[0], b"a" * 5000 + b"\n")
        check(r == b"\0exit 2 request line too long\n", "long line: %r" % r)

        # Clients that leave in the middle, and too many at once.
        for _ in range(5):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(socks[0])
            s.sendall(b"get-peers %s --timeout 5000\n" % OTHER_IH.encode())
            s.close()
        time.sleep(0.5)  # let the node see them go
        many = []
        try:
            for _ in range(24):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(5)
                for _ in range(50):
                    try:
                        s.connect(socks[0])
                        break
                    except BlockingIOError:  # backlog full for a moment
                        time.sleep(0.02)
                many.append(s)
            time.sleep(0.3)
            turned_away = 0
            for s in many:
                s.setblocking(False)
                try:
                    turned_away += b"too many control clients" in s.recv(100)
                except BlockingIOError:
                    pass  # one of the 16 served: waits for its request
            check(turned_away == 24 - 16, "%d of 24 turned away" % turned_away)
            r = raw(socks[0], b"stats\n")
            check(b"too many control clients" in r, "client limit: %r" % r)
        finally:
            for s in many:
                s.close()
        time.sleep(0.3)
        check(stats(socks[0])["nodes"]["total"] >= 3,
              "the node serves again after the crowd left")
        check(first.alive(), "node survived bad clients")

        # A second node on the same path: refused, one line, exit 2.
        p = subprocess.run([BIN, "run", "--no-state", "--bind", "127.0.6.9", "--port",
                            str(PORT), "--no-bootstrap", "--control", socks[0]],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=10)
        err = p.stderr.decode()
        check(p.returncode == 2, "second node: exit %d" % p.returncode)
        one_error_line(err, "second node")
        check("another node serves %s" % socks[0] in err, err)
        # A path that is not a socket.
        plain = os.path.join(tmp, "plain")
        open(plain, "w").close()
        p = subprocess.run([BIN, "run", "--no-state", "--bind", "127.0.6.9", "--port",
                            str(PORT), "--no-bootstrap", "--control", plain],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=10)
        check(p.returncode == 2 and "not a socket" in p.stderr.decode(),
              "not a socket: %d %r" % (p.returncode, p.stderr))
        one_error_line(p.stderr.decode(), "not a socket")
        # No node there.
        rc, out, err = mdht("stats", "--control", os.path.join(tmp, "none"))
        check(rc == 2, "stats, no node: %d" % rc)
        one_error_line(err, "stats, no node")
        # Ctrl-C on a --control client that waits for its answer: exit 130
        # and one 'interrupted' line, as the short-lived node does.
        stuck = os.path.join(tmp, "stuck")
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(stuck)
        ls.listen(1)
        ls.settimeout(10)
        p = subprocess.Popen([BIN, "stats", "--control", stuck, "--timeout",
                              "30"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        conn, _ = ls.accept()
        conn.settimeout(10)
        req = conn.recv(100)
        check(req.startswith(b"stats") and req.endswith(b"\n"),
              "stuck node: the request %r" % req)
        p.send_signal(signal.SIGINT)  # the request sent: it waits on its loop
        out, err = p.communicate(timeout=10)
        conn.close()
        ls.close()
        check(p.returncode == 130 and err.decode() == "mdht: interrupted\n",
              "--control client on SIGINT: %d %r" % (p.returncode, err))

        # An unreachable bootstrap: a clear line after the timeout.
        t0 = time.time()
        rc, out, err = mdht("find-node", target, "--bootstrap",
                            "127.0.6.9:9", "--timeout", "2")
        took = time.time() - t0
        check(rc == 2 and "no bootstrap node answered" in err,
              "unreachable bootstrap: %d %r" % (rc, err))
        one_error_line(err, "unreachable bootstrap")
        check(1.5 < took < 10, "unreachable bootstrap took %.1f s" % took)

        # SIGTERM removes the file; SIGKILL leaves a stale one, reused.
        check(nodes[0].stop() == 0, "node 0 exits 0")
        check(not os.path.exists(socks[0]), "socket removed on exit")
        nodes[1].p.send_signal(signal.SIGKILL)
        nodes[1].p.wait()
        check(os.path.exists(socks[1]), "SIGKILL leaves the socket")
        again = Node("127.0.6.2", socks[1], ["--no-bootstrap"])
        nodes.append(again)
        rc, out, err = mdht("stats", "--control", socks[1], "--json")
        check(rc == 0 and json.loads(out[0])["id"] == again.id,
              "a stale socket is replaced: %d %s" % (rc, err))
    finally:
        for n in nodes:
            if n.alive():
                n.p.kill()  # only processes this test started, by PID
            n.p.wait()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    print("test_control: %d checks passed" % tl.checks)


if __name__ == "__main__":
    main()
