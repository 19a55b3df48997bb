#!/usr/bin/env python3
"""Saved state across restarts, black-box: `mdht run --state DIR`.

1. A restart keeps the routing table (>= 90 % of its good nodes are good
   again after the restart) and the stored peers, and get-peers through
   the restarted node finds a peer announced before the restart, with no
   bootstrap address given. The time from restart to the first successful
   lookup is measured with and without saved state.
2. kill -9 at 200 random moments while the node saves every 50 ms never
   leaves a state file that fails to load (checked by an independent
   reader of the format here, and by the next start of the node).
3. Truncated, bit-flipped, empty, foreign and future-version files: one
   warning each, kept aside as state.corrupt, a fresh start, no crash.
4. Two nodes on one state directory: the second exits 2 with one line.
5. `mdht save --control SOCK` saves a running node now: the file it
   names is written, loads, and holds the counts it prints; a failed save
   and a node without state answer exit 2 with one line.

Nodes live on 127.0.7.x, fake nodes on 127.0.8.x; nothing leaves loopback.

Usage: test_persist.py path/to/mdht
"""
import hashlib
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as tl  # noqa: E402
from testlib import check  # noqa: E402
from krpc_client import (MdhtProcess, Sock, bdecode, compact_addr,  # noqa: E402
                         id_at_depth)

BIN = None
PORT = 17981  # fixed, below the ephemeral range: a restart keeps its address
IH = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"
# The restarted node's id: next to IH, so that it stores the announced
# peer along with the fake nodes around it.
SUBJECT_ID = IH[:-2] + "ee"
FRESH_MS = 15 * 60 * 1000  # BEP 5: good if it answered within 15 minutes


# ------------------------------------------------- the format (state.h)

MAGIC = b"MDHTSTATE"
NEVER = 2 ** 64 - 1


def parse_state(b):
    """Reads a state file; raises ValueError on anything state.h forbids."""
    if len(b) < 17 + 32 or b[:9] != MAGIC:
        raise ValueError("not a state file / truncated")
    version, flags, body = struct.unpack(">HHI", b[9:17])
    if version != 1 or flags != 0:
        raise ValueError("version %d flags %d" % (version, flags))
    if 17 + body + 32 != len(b):
        raise ValueError("length")
    if hashlib.sha256(b[:-32]).digest() != b[-32:]:
        raise ValueError("checksum")
    secs = {}
    off, end = 17, 17 + body
    while off < end:
        if off + 5 > end:
            raise ValueError("section header")
        t, n = b[off], struct.unpack(">I", b[off + 1:off + 5])[0]
        if off + 5 + n > end:
            raise ValueError("section length")
        if t in secs and t in (1, 2, 3):
            raise ValueError("duplicate section")
        secs[t] = b[off + 5:off + 5 + n]
        off += 5 + n
    meta = secs[1]
    if len(meta) != 28:
        raise ValueError("meta")
    st = {"wall": struct.unpack(">Q", meta[:8])[0], "id": meta[8:28],
          "nodes": [], "peers": {}}

    def addr(p, i):
        fam = p[i]
        if fam not in (4, 6):
            raise ValueError("family")
        n = 4 if fam == 4 else 16
        ip = socket.inet_ntop(socket.AF_INET if fam == 4 else socket.AF_INET6,
                              p[i + 1:i + 1 + n])
        port = struct.unpack(">H", p[i + 1 + n:i + 3 + n])[0]
        return (ip, port), i + 3 + n

    p = secs.get(2, b"\0\0\0\0")
    count, i = struct.unpack(">I", p[:4])[0], 4
    for _ in range(count):
        kind, fails = p[i], p[i + 1]
        a, i = addr(p, i + 2)
        nid = p[i:i + 20]
        ages = struct.unpack(">QQQ", p[i + 20:i + 44])
        if len(nid) != 20 or kind not in (0, 1):
            raise ValueError("node entry")
        i += 44
        st["nodes"].append({"kind": kind, "fails": fails, "addr": a,
                            "id": nid, "reply_age": ages[0],
                            "query_age": ages[1], "added_age": ages[2]})
    if i != len(p):
        raise ValueError("nodes section length")
    p = secs.get(3, b"\0\0\0\0")
    count, i = struct.unpack(">I", p[:4])[0], 4
    for _ in range(count):
        ih = p[i:i + 20]
        n = struct.unpack(">I", p[i + 20:i + 24])[0]
        i += 24
        if n == 0:
            raise ValueError("empty info-hash")
        for _ in range(n):
            a, i = addr(p, i)
            seed = p[i]
            rem = struct.unpack(">Q", p[i + 1:i + 9])[0]
            i += 9
            st["peers"].setdefault(ih.hex(), []).append((a, seed, rem))
    if i != len(p):
        raise ValueError("peers section length")
    return st


def read_state(d):
    with open(os.path.join(d, "state"), "rb") as f:
        return parse_state(f.read())


def read_state_after(proc, d):
    """Makes the node save now, then reads what it saved."""
    save_now(proc)
    return read_state(d)


def good_ids(st):
    return {n["id"] for n in st["nodes"] if n["kind"] == 0 and
            n["fails"] < 3 and n["reply_age"] < FRESH_MS}


# ---------------------------------------------------------------- helpers

def mdht(*args, timeout=30):
    return tl.cmd_lines(BIN, args, timeout)


def wait_line(proc, pattern, start=0, timeout=10.0):
    """Index of the first log line from `start` on matching `pattern`."""
    rx = re.compile(pattern)
    end = time.time() + timeout
    while time.time() < end:
        for i in range(start, len(proc.lines)):
            if rx.search(proc.lines[i]):
                return i
        if not proc.alive():
            break
        time.sleep(0.01)
    raise AssertionError("no log line /%s/ in %r" % (pattern,
                                                     proc.lines[start:]))


def save_now(proc):
    """SIGHUP, and wait until that save is on disk."""
    n = len(proc.lines)
    proc.p.send_signal(signal.SIGHUP)
    wait_line(proc, r"\bstate_saved\b", n)


class Responder(threading.Thread):
    """Fake nodes that answer every query with their id, in the
    background, until stopped."""

    def __init__(self, socks):
        super().__init__(daemon=True)
        self.socks = {s.s.fileno(): s for s in socks}
        self.stop_flag = False
        self.start()

    def run(self):
        while not self.stop_flag:
            r, _, _ = select.select(list(self.socks), [], [], 0.05)
            for fd in r:
                s = self.socks[fd]
                try:
                    data, frm = s.s.recvfrom(65536)
                    m = bdecode(data)
                except Exception:
                    continue
                if isinstance(m, dict) and m.get(b"y") == b"q":
                    s.answer(frm, m)

    def stop(self):
        self.stop_flag = True
        self.join()


class StoringSock(Sock):
    """A fake node that also plays its part in get_peers and
    announce_peer: hands out a token, stores announced peers and returns
    them as values."""

    def __init__(self, ip, nid):
        super().__init__(ip, nid)
        self.store = {}

    def answer(self, frm, m):
        a = m.get(b"a") or {}
        r = {"id": self.id}
        if m.get(b"q") == b"get_peers":
            r["token"] = b"tok1"
            vals = self.store.get(a.get(b"info_hash"))
            if vals:
                r["values"] = vals
            else:
                r["nodes"] = b""
        elif m.get(b"q") == b"announce_peer":
            port = frm[1] if a.get(b"implied_port") else a.get(b"port", 0)
            self.store.setdefault(a.get(b"info_hash"), []).append(
                compact_addr(frm[0], port))
        self.send(frm, {"t": m[b"t"], "y": "r", "r": r})


def run_args(ip, d, *extra):
    return ["--bind", ip, "--port", str(PORT), "--state", d,
            "--log-level", "info"] + list(extra)


# ------------------------------------------ 1. restart keeps the network

def first_lookup_ms(sock, started, peer, limit=20.0):
    """Polls get-peers through the control socket until it finds `peer`;
    returns ms since `started` (time.monotonic)."""
    last = None
    while time.monotonic() - started < limit:
        if os.path.exists(sock):
            rc, out, err = mdht("get-peers", IH, "--control", sock,
                                "--timeout", "5")
            if rc == 0 and peer in out:
                return (time.monotonic() - started) * 1000
            last = (rc, out, err)
        time.sleep(0.05)
    raise AssertionError("no successful lookup within %ss: %r" % (limit,
                                                                 last))


def test_restart(tmp):
    rnd = random.Random(7)
    n = 5
    dirs = [os.path.join(tmp, "net%d" % i) for i in range(n)]
    socks = [os.path.join(tmp, "ctl%d" % i) for i in range(n)]
    ips = ["127.0.7.%d" % (i + 1) for i in range(n)]
    router = "%s:%d" % (ips[0], PORT)
    nodes = []
    fakes = []
    responder = None
    try:
        nodes.append(MdhtProcess(BIN, run_args(ips[0], dirs[0],
                                               "--no-bootstrap", "--id",
                                               SUBJECT_ID, "--control",
                                               socks[0])))
        for i in range(1, n):
            nodes.append(MdhtProcess(BIN, run_args(
                ips[i], dirs[i], "--bootstrap", router, "--control",
                socks[i])))
        subject = nodes[0]
        # 30 fake nodes around the subject's id: a table of some size.
        for depth in range(10):
            for j in range(3):
                fakes.append(StoringSock("127.0.8.%d" % (depth * 3 + j + 1),
                                  id_at_depth(subject.id, depth, rnd)))
        responder = Responder(fakes)
        for f in fakes:
            f.send(subject.addr, {"t": f.tid(), "y": "q", "q": "ping",
                                  "a": {"id": f.id}})
        for p in nodes[1:]:
            wait_line(p, r"\bbootstrap_done\b", timeout=15)
        # The fakes answered the subject's confirmation pings: good.
        end = time.time() + 10
        while len(good_ids(read_state_after(subject, dirs[0]))) < 30:
            check(time.time() < end, "the fakes become good nodes")
            time.sleep(0.1)

        # A peer announced through node 1, stored by the closest nodes.
        peer = "%s:6999" % ips[1]
        rc, out, err = mdht("announce", IH, "--port", "6999", "--control",
                            socks[1])
        check(rc == 0 and len(out) >= 4,
              "announce accepted by several nodes: %d %r %s" % (rc, out, err))
        # And one announced to the subject itself, for its peer store.
        c = Sock("127.0.8.200")
        tok = c.query(subject.addr, "get_peers", {"info_hash": bytes.fromhex(
            IH)})[b"r"][b"token"]
        c.query(subject.addr, "announce_peer", {
            "info_hash": bytes.fromhex(IH), "port": 7000, "token": tok})

        # What the subject knows before the restart, saved on SIGTERM.
        check(subject.stop() == 0, "clean exit")
        before = read_state(dirs[0])
        good0 = good_ids(before)
        check(len(good0) >= 30, "good nodes before the restart: %d" %
              len(good0))
        check(IH in before["peers"] and
              any(a == ("127.0.8.200", 7000) for a, _, _ in
                  before["peers"][IH]), "the peer is in the saved file")

        # Restart without any bootstrap address.
        started = time.monotonic()
        subject = MdhtProcess(BIN, run_args(ips[0], dirs[0], "--no-bootstrap",
                                            "--control", socks[0]))
        nodes[0] = subject
        check(subject.id == before["id"], "same node id after the restart")
        wait_line(subject, r"state loaded from .* %d nodes" %
                  len([x for x in before["nodes"] if x["kind"] == 0]))
        ms_state = first_lookup_ms(socks[0], started, peer)

        # The stored peer came back too: a get_peers query to the subject
        # returns it without any lookup.
        r = c.query(subject.addr, "get_peers", {"info_hash":
                                                bytes.fromhex(IH)})
        vals = r[b"r"].get(b"values", [])
        check(compact_addr("127.0.8.200", 7000) in vals,
              "restored peer served: %r" % vals)
        c.close()

        # >= 90 % of the good nodes are good again (they answered the
        # paced pings).
        end = time.time() + 10
        while True:
            good1 = good_ids(read_state_after(subject, dirs[0]))
            kept = len(good0 & good1) / len(good0)
            if kept >= 0.9 or time.time() > end:
                break
            time.sleep(0.3)
        check(kept >= 0.9, "kept %.0f %% of %d good nodes" %
              (kept * 100, len(good0)))

        # Without saved state, from a router, for comparison.
        check(subject.stop() == 0, "clean exit")
        started = time.monotonic()
        subject = MdhtProcess(BIN, ["--bind", ips[0], "--port", str(PORT),
                                    "--no-state", "--bootstrap",
                                    "%s:%d" % (ips[2], PORT), "--control",
                                    socks[0]])
        nodes[0] = subject
        ms_router = first_lookup_ms(socks[0], started, peer)
        print("restart to first successful get-peers: %.0f ms with saved "
              "state (no bootstrap address), %.0f ms without (from a "
              "router)" % (ms_state, ms_router))
        print("good nodes kept: %d of %d (%.0f %%)" %
              (len(good0 & good1), len(good0), kept * 100))
    finally:
        if responder:
            responder.stop()
        for p in nodes:
            if p.alive():
                p.p.kill()
                p.p.wait()
        for f in fakes:
            f.close()


# ---------------------------------------------- 2. kill -9 during saves

def test_kill9(tmp, rounds=200, budget=40.0):
    d = os.path.join(tmp, "kill9")
    log = os.path.join(tmp, "kill9.log")
    rnd = random.Random(9)
    fakes = [Sock("127.0.8.%d" % (100 + i)) for i in range(20)]
    responder = Responder(fakes)
    args = [BIN, "run", "--bind", "127.0.7.9", "--port", "0",
            "--no-bootstrap", "--state", d, "--save-interval", "0.05",
            "--log-level", "info"]
    seen = set()
    loaded = 0
    started = time.time()
    try:
        for r in range(rounds):
            with open(log, "wb") as lf:
                p = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=lf)
            text = ""
            end = time.time() + 10
            while time.time() < end:
                with open(log, "rb") as lf:
                    text = lf.read().decode(errors="replace")
                if re.search(r"state loaded from|no saved state|unusable",
                             text) and "listening on" in text:
                    break
                check(p.poll() is None, "mdht exited early: %s" % text)
                time.sleep(0.002)
            check("unusable" not in text and " warn " not in text,
                  "round %d: the file left by the last kill -9 loads: %s" %
                  (r, text))
            if "state loaded from" in text:
                loaded += 1
            if r == 0:
                # Give the node something to save: fakes that it pings
                # back, and a stored peer.
                m = re.search(r"listening on (\S+):(\d+)", text)
                to = (m.group(1), int(m.group(2)))
                for f in fakes:
                    f.send(to, {"t": f.tid(), "y": "q", "q": "ping",
                                "a": {"id": f.id}})
                c = Sock("127.0.8.150")
                tok = c.query(to, "get_peers", {"info_hash": bytes.fromhex(
                    IH)})[b"r"][b"token"]
                c.query(to, "announce_peer", {"info_hash": bytes.fromhex(IH),
                                              "port": 7777, "token": tok})
                c.close()
                time.sleep(0.3)
            time.sleep(rnd.uniform(0, 0.12))
            p.kill()
            p.wait()
            check(p.returncode == -signal.SIGKILL, "killed by SIGKILL, "
                  "not dead before: %r" % p.returncode)
            with open(os.path.join(d, "state"), "rb") as f:
                blob = f.read()
            st = parse_state(blob)  # raises if not whole
            seen.add(hashlib.sha256(blob).digest())
            if r == rounds - 1:
                check(len(st["nodes"]) >= 10 and IH in st["peers"],
                      "the state kept its content through the kills: %d "
                      "nodes" % len(st["nodes"]))
            if time.time() - started > budget:
                break
        done = r + 1
        check(done >= 100, "at least 100 kills within the time budget: %d" %
              done)
        check(len(seen) > done // 4, "saves happened between kills: %d "
              "distinct files in %d rounds" % (len(seen), done))
        check(not os.path.exists(os.path.join(d, "state.corrupt")),
              "no file was ever set aside")
        print("kill -9: %d rounds in %.1f s, %d distinct state files, every "
              "one loadable" % (done, time.time() - started, len(seen)))
    finally:
        responder.stop()
        for f in fakes:
            f.close()


# ----------------------------------------------------- 3. bad state files

def test_bad_files(tmp):
    # A valid file to damage: from a short run.
    d = os.path.join(tmp, "bad")
    p = MdhtProcess(BIN, ["--bind", "127.0.7.10", "--port", "0",
                          "--no-bootstrap", "--state", d])
    c = Sock("127.0.8.160")
    c.query(p.addr, "ping", {})
    time.sleep(0.2)
    check(p.stop() == 0, "clean exit")
    c.close()
    with open(os.path.join(d, "state"), "rb") as f:
        good = f.read()
    parse_state(good)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x08
    future = bytearray(good)
    future[10] = 2
    cases = [
        ("truncated", good[:len(good) // 2], "truncated"),
        ("bit-flipped", bytes(flipped), "checksum mismatch"),
        ("empty", b"", "empty file"),
        ("foreign", b"SQLite format 3\0" + b"\0" * 100,
         "not a mdht state file"),
        ("future version", bytes(future), "format version 2"),
    ]
    for name, blob, reason in cases:
        with open(os.path.join(d, "state"), "wb") as f:
            f.write(blob)
        p = MdhtProcess(BIN, ["--bind", "127.0.7.10", "--port", "0",
                              "--no-bootstrap", "--state", d])
        i = wait_line(p, r"unusable")
        line = p.lines[i]
        check(" warn " in line and reason in line and
              "state.corrupt" in line and "starting fresh" in line,
              "%s: one clear warning: %r" % (name, line))
        time.sleep(0.1)
        warns = [l for l in p.lines if " warn " in l or " error " in l]
        check(len(warns) == 1, "%s: exactly one warning: %r" % (name, warns))
        with open(os.path.join(d, "state.corrupt"), "rb") as f:
            check(f.read() == blob, "%s: kept aside byte for byte" % name)
        check(p.alive(), "%s: the node runs" % name)
        check(p.stop() == 0, "%s: clean exit" % name)
        parse_state(open(os.path.join(d, "state"), "rb").read())


# --------------------------------------------------------------- 4. lock

def test_lock(tmp):
    d = os.path.join(tmp, "lock")
    a = MdhtProcess(BIN, ["--bind", "127.0.7.11", "--port", "0",
                          "--no-bootstrap", "--state", d])
    try:
        t = time.time()
        r = subprocess.run([BIN, "run", "--bind", "127.0.7.12", "--port", "0",
                            "--no-bootstrap", "--state", d],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        err = r.stderr.decode().splitlines()
        check(r.returncode == 2, "second node exits 2: %d" % r.returncode)
        check(time.time() - t < 5, "at once")
        check(len(err) == 1 and "in use by another mdht (pid %d)" %
              a.p.pid in err[0], "one clear line: %r" % err)
        check(a.alive(), "the first node keeps running")
    finally:
        check(a.stop() == 0, "clean exit")
    # Exclusive flags, and the lock is gone with the process.
    rc, _, err = mdht("run", "--state", d, "--no-state")
    check(rc == 2 and len(err.splitlines()) == 1, "--state with --no-state")
    b = MdhtProcess(BIN, ["--bind", "127.0.7.12", "--port", "0",
                          "--no-bootstrap", "--state", d])
    check(b.stop() == 0, "the directory is free again")


# ------------------------------------------------------- 5. mdht save

def test_save_command(tmp):
    d = os.path.join(tmp, "save")
    sock = os.path.join(tmp, "save.sock")
    state = os.path.join(d, "state")
    # No periodic save within the test: every file is the command's.
    p = MdhtProcess(BIN, ["--bind", "127.0.7.13", "--port", "0",
                          "--no-bootstrap", "--state", d, "--control", sock,
                          "--save-interval", "3600"])
    # At depths 0..5, two each: every one fits its bucket (k = 8), so all
    # twelve become good whatever the random ids.
    rnd = random.Random(13)
    fakes = [Sock("127.0.8.%d" % (170 + i), id_at_depth(p.id, i // 2, rnd))
             for i in range(12)]
    responder = Responder(fakes)
    q = None
    try:
        wait_line(p, r"control socket")
        check(not os.path.exists(state), "a fresh node has not saved yet")
        # Something to save: nodes that it confirms, and a stored peer.
        for f in fakes:
            f.send(p.addr, {"t": f.tid(), "y": "q", "q": "ping",
                            "a": {"id": f.id}})
        c = Sock("127.0.8.190")
        tok = c.query(p.addr, "get_peers", {"info_hash": bytes.fromhex(
            IH)})[b"r"][b"token"]
        c.query(p.addr, "announce_peer", {"info_hash": bytes.fromhex(IH),
                                          "port": 7100, "token": tok})
        c.close()
        end = time.time() + 10
        while True:
            rc, out, _ = mdht("stats", "--control", sock, "--json")
            if rc == 0 and json.loads(out[0])["nodes"]["good"] >= len(fakes):
                break
            check(time.time() < end, "the node learns the fakes: %r" % out)
            time.sleep(0.05)

        rc, out, err = mdht("save", "--control", sock)
        check(rc == 0 and err == "", "save: exit 0, quiet: %d %r" % (rc, err))
        m = re.fullmatch(r"saved (\d+) nodes?, (\d+) peers? to (.+)",
                         out[0] if len(out) == 1 else "")
        check(m is not None, "save: one line of output: %r" % out)
        check(os.path.realpath(m.group(3)) == os.path.realpath(state),
              "save names the file: %r" % m.group(3))
        with open(state, "rb") as f:
            first = f.read()
        st = parse_state(first)  # raises if it does not load
        check(st["id"] == p.id, "the node's id is saved")
        check(len(st["nodes"]) == int(m.group(1)) >= len(fakes),
              "the saved nodes, as counted: %d vs %s" % (len(st["nodes"]),
                                                         m.group(1)))
        npeers = sum(len(v) for v in st["peers"].values())
        check(npeers == int(m.group(2)) == 1 and
              st["peers"][IH][0][0] == ("127.0.8.190", 7100),
              "the stored peer is saved, as counted: %r" % st["peers"])

        # Again, as JSON: a new file (its save time differs).
        time.sleep(0.01)
        rc, out, err = mdht("save", "--control", sock, "--json")
        check(rc == 0 and err == "" and len(out) == 1,
              "save --json: one line: %d %r %r" % (rc, out, err))
        o = json.loads(out[0])
        check(o["type"] == "saved" and o["nodes"] == len(st["nodes"]) and
              o["peers"] == 1 and o["path"] == m.group(3),
              "save --json: the same counts: %r" % o)
        with open(state, "rb") as f:
            second = f.read()
        check(second != first, "the second save wrote a new file")
        check(parse_state(second)["wall"] > st["wall"], "a later save time")

        # A save that fails: exit 2, the reason in one line, the old file
        # kept. (A directory in the temp file's way fails even for root.)
        os.mkdir(state + ".tmp")
        rc, out, err = mdht("save", "--control", sock)
        lines = err.splitlines()
        check(rc == 2 and out == [] and len(lines) == 1 and
              lines[0].startswith("mdht: cannot save state to ") and
              "Is a directory" in lines[0],
              "failed save: exit 2, one line: %d %r %r" % (rc, out, err))
        os.rmdir(state + ".tmp")
        with open(state, "rb") as f:
            check(f.read() == second, "the previous file is kept")
        rc, out, err = mdht("save", "--control", sock)
        check(rc == 0 and len(out) == 1, "and saves again: %r" % err)
        check(p.alive(), "the node runs on")

        # No state kept, nothing to save; no node, no save.
        q = MdhtProcess(BIN, ["--bind", "127.0.7.14", "--port", "0",
                              "--no-bootstrap", "--no-state", "--control",
                              sock + "2"])
        wait_line(q, r"control socket")
        rc, out, err = mdht("save", "--control", sock + "2")
        check(rc == 2 and out == [] and err == "mdht: this node keeps no "
              "state (--no-state)\n", "--no-state: exit 2, one line: %d %r"
              % (rc, err))
        rc, out, err = mdht("save")
        check(rc == 2 and out == [] and len(err.splitlines()) == 1 and
              "--control" in err, "save without --control: %d %r" % (rc, err))
    finally:
        responder.stop()
        for f in fakes:
            f.close()
        for x in (p, q):
            if x:
                check(x.stop() == 0, "clean exit")


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="mdht-persist-") as tmp:
        test_lock(tmp)
        test_save_command(tmp)
        test_bad_files(tmp)
        test_restart(tmp)
        test_kill9(tmp)
    print("test_persist: %d checks passed in %.1f s" % (tl.checks,
                                                       time.time() - t0))


if __name__ == "__main__":
    main()
