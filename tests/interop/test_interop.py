#!/usr/bin/env python3
"""Interoperability of mdht with two reference DHT implementations.

    python3 tests/interop/test_interop.py path/to/mdht

Starts one closed network on loopback: 3 libtorrent sessions (DHT only,
lt_node.py under Debian's /usr/bin/python3), 3 bittorrent-dht nodes
(dht_node.mjs under node) and 3 `mdht run` nodes, each on its own 127.0.0.x,
bootstrapped into one another. Then checks, in both directions, that they
treat each other as DHT nodes: routing tables, peers announced one side and
found the other, closest nodes, and that every message between them decodes
and every query is answered.

Runs tests/interop/setup.sh first (installs the references when they are
missing, fails when it cannot; set MDHT_INTEROP_NO_SETUP=1 to skip that
step, never the tests). Prints one line per check and a final
"N passed, M failed"; exits 1 on any failure. On failure the work directory
with every node's log is kept and its path printed (MDHT_INTEROP_KEEP=1
keeps it always).
"""
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

# Hermetic (CMake unsets them for ctest too): no node of the developer's on
# the default control socket answers here, nor do our nodes take it.
for _var in ("XDG_RUNTIME_DIR", "MDHT_CONTROL"):
    os.environ.pop(_var, None)

HERE = os.path.dirname(os.path.abspath(__file__))
LT_PYTHON = "/usr/bin/python3"   # Debian's interpreter: it has the binding
RUN_BUDGET = 230.0               # seconds for the whole run, setup excluded
K = 8

# Distinct loopback addresses, one per node (the integration tests use
# 127.0.0.1 with random ports).
MDHT_IPS = ["127.0.0.131", "127.0.0.132", "127.0.0.133"]
LT_IPS = ["127.0.0.141", "127.0.0.142", "127.0.0.143"]
JS_IPS = ["127.0.0.151", "127.0.0.152", "127.0.0.153"]
PROBE_IP = "127.0.0.160"         # our raw KRPC socket
CLIENT_IP = "127.0.0.161"        # short-lived mdht client nodes
# BEP 32: the dual-stack mdht node (this and ::1), the IPv4-only
# libtorrent session beside the one on [::1], and a raw IPv4 announcer.
DUAL_IP = "127.0.0.134"
LT4_IP = "127.0.0.144"
RAW4_IP = "127.0.0.162"
# BEP 33 / 51: raw announces come from many addresses (a bloom filter
# holds IPs, so every peer needs its own) under 127.0.3.0/24 (peers) and
# 127.0.5.0/24 (sample_infohashes stores).
SCRAPE_NET = "127.0.3.%d"
SAMPLE_NET = "127.0.5.%d"

START = time.monotonic()


def _die_with_parent():
    """Runs in each child before exec: SIGTERM it if this test dies, even by
    SIGKILL (ctest's timeout), so that no node outlives the run."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def left():
    return RUN_BUDGET - (time.monotonic() - START)


def log(msg):
    print("  .. %s" % msg, flush=True)


# ---------------------------------------------------------------- bencode

def bencode(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(bencode(v) for v in x) + b"e"
    if isinstance(x, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v)
                       for k, v in x.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(type(x))


def bdecode(b):
    def dec(i):
        c = b[i:i + 1]
        if c == b"i":
            j = b.index(b"e", i)
            return int(b[i + 1:j]), j + 1
        if c in (b"l", b"d"):
            i += 1
            out = [] if c == b"l" else {}
            while b[i:i + 1] != b"e":
                if c == b"l":
                    v, i = dec(i)
                    out.append(v)
                else:
                    k, i = dec(i)
                    v, i = dec(i)
                    out[k] = v
            return out, i + 1
        j = b.index(b":", i)
        n = int(b[i:j])
        if j + 1 + n > len(b):
            raise ValueError("truncated string")
        return b[j + 1:j + 1 + n], j + 1 + n
    v, end = dec(0)
    if end != len(b):
        raise ValueError("trailing bytes")
    return v


def parse_nodes(blob):
    out = []
    for i in range(0, len(blob) - len(blob) % 26, 26):
        out.append((blob[i:i + 20].hex(),
                    "%s:%d" % (socket.inet_ntoa(blob[i + 20:i + 24]),
                               int.from_bytes(blob[i + 24:i + 26], "big"))))
    return out


def krpc(sock, to, q, args, timeout=2.0, ro=False):
    """One KRPC query from our probe socket: (reply's "r" dict, datagram
    length), or (None, 0) on timeout or error. ro: BEP 43 read-only, so
    that the receiver does not put this short-lived socket in its table."""
    t = os.urandom(2)
    a = {"id": PROBE_ID}
    a.update(args)
    msg = {"t": t, "y": "q", "q": q, "a": a}
    if ro:
        msg["ro"] = 1
    sock.sendto(bencode(msg), to)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data, frm = sock.recvfrom(65536)
        except socket.timeout:
            break
        if frm[:2] != to[:2]:   # an IPv6 source has 4 fields
            continue
        try:
            m = bdecode(data)
        except ValueError:
            continue
        if m.get(b"t") == t:
            return (m.get(b"r") if m.get(b"y") == b"r" else None), len(data)
    return None, 0


def krpc_find_node(sock, to, target_hex, timeout=2.0):
    """The nodes of one find_node reply, or None."""
    r, _ = krpc(sock, to, "find_node", {"target": bytes.fromhex(target_hex)},
                timeout)
    return None if r is None else parse_nodes(r.get(b"nodes", b""))


def compact_peers(values):
    return ["%s:%d" % (socket.inet_ntoa(v[:4]), int.from_bytes(v[4:6], "big"))
            for v in values if len(v) == 6]


def krpc_get_peers(sock, to, ih_hex, timeout=2.0):
    """The values of one get_peers reply, or None."""
    r, _ = krpc(sock, to, "get_peers", {"info_hash": bytes.fromhex(ih_hex)},
                timeout)
    return None if r is None else compact_peers(r.get(b"values", []))


PROBE_ID = os.urandom(20)


# ------------------------------------------------- BEP 33 and BEP 51 helpers

def bep33_bloom(ips):
    """BEP 33's filter, computed here from the BEP's text and nothing of
    mdht's: 2,048 bits, two indexes per IP from the first four bytes of
    SHA-1 of the packed address (little-endian 16-bit words, mod 2,048),
    bit i is bit (i % 8) of byte i / 8."""
    import hashlib
    bits = bytearray(256)
    for ip in ips:
        h = hashlib.sha1(socket.inet_aton(ip)).digest()
        for idx in (h[0] | h[1] << 8, h[2] | h[3] << 8):
            idx %= 2048
            bits[idx // 8] |= 1 << (idx % 8)
    return bytes(bits)


def bep33_estimate(bf):
    """BEP 33's size estimate of a filter: log(c / m) / (k log(1 - 1/m)),
    c the zero bits (at least 1), m = 2,048, k = 2; an empty filter holds
    nothing."""
    import math
    zeros = 2048 - sum(bin(b).count("1") for b in bf)
    if zeros == 2048:
        return 0.0
    zeros = max(zeros, 1)
    return math.log(zeros / 2048) / (2 * math.log(1 - 1 / 2048))


def bf_or(*fs):
    return bytes(a | b for a, b in zip(*fs)) if len(fs) > 1 else fs[0]


def raw_announce(ips, eps, ih, seed, port=6881):
    """announce_peer(ih, seed) from each of `ips` (its own socket, BEP 43
    read-only) to each endpoint in `eps`, with the token of a get_peers
    sent from that address first. Returns the number accepted."""
    ok = 0
    for ip in ips:
        s = socket.socket(family(ip), socket.SOCK_DGRAM)
        try:
            s.bind((ip, 0))
            for ep in eps:
                r, _ = krpc(s, ep, "get_peers", {"info_hash": ih}, 1.0, True)
                if not r or not r.get(b"token"):
                    continue
                a, _ = krpc(s, ep, "announce_peer",
                            {"info_hash": ih, "port": port,
                             "token": r[b"token"], "seed": 1 if seed else 0},
                            1.0, True)
                ok += a is not None
        finally:
            s.close()
    return ok


def raw_announce_many(ip, ep, ihs, per_ih_token):
    """One address announces every info-hash in `ihs` to `ep`: mdht's
    token is per address (one get_peers is enough), libtorrent's is per
    address and info-hash. Paced under mdht's per-address reply budget.
    Returns the number accepted."""
    ok = 0
    token = None
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((ip, 0))
        for ih in ihs:
            if token is None or per_ih_token:
                r, _ = krpc(s, ep, "get_peers", {"info_hash": ih}, 1.0, True)
                token = r.get(b"token") if r else None
                if not token:
                    continue
            a, _ = krpc(s, ep, "announce_peer", {"info_hash": ih,
                                                 "port": 6881,
                                                 "token": token}, 1.0, True)
            ok += a is not None
            time.sleep(0.005)
    finally:
        s.close()
    return ok


def raw_scrape(sock, ep, ih):
    """(BFsd, BFpe) of one get_peers scrape=1 reply (None when absent), or
    None when the node did not answer."""
    r, _ = krpc(sock, ep, "get_peers", {"info_hash": ih, "scrape": 1})
    if r is None:
        return None
    return r.get(b"BFsd"), r.get(b"BFpe")


def family(ip):
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def free_port(ip):
    """A port free for both UDP and TCP on ip (libtorrent listens on both)."""
    for _ in range(50):
        u = socket.socket(family(ip), socket.SOCK_DGRAM)
        u.bind((ip, 0))
        port = u.getsockname()[1]
        t = socket.socket(family(ip), socket.SOCK_STREAM)
        try:
            t.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no free port on %s" % ip)


# ------------------------------------------------------------- processes

class Helper:
    """A reference node (lt_node.py or dht_node.mjs): JSON lines in/out."""

    def __init__(self, kind, name, argv, logdir):
        self.kind, self.name = kind, name
        self.err = open(os.path.join(logdir, name + ".stderr"), "w")
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.err,
                                  text=True, cwd=HERE,
                                  preexec_fn=_die_with_parent)
        self.q = queue.Queue()
        self.seq = 0
        self.early = {}   # answers read while waiting for another seq
        threading.Thread(target=self._read, daemon=True).start()
        hello = self._get(lambda m: "ready" in m, 20)
        if not hello or not hello.get("ready"):
            raise RuntimeError("%s did not start: %r (see %s.stderr)"
                               % (name, hello, name))
        self.id = hello["id"]
        self.addr = hello["addr"]
        ip, port = self.addr.rsplit(":", 1)
        self.ep = (ip.strip("[]"), int(port))
        self.version = hello.get("version")

    def _read(self):
        for line in self.p.stdout:
            try:
                self.q.put(json.loads(line))
            except ValueError:
                self.q.put({"garbage": line})
        self.q.put(None)

    def _get(self, pred, timeout):
        for k, m in list(self.early.items()):
            if pred(m):
                return self.early.pop(k)
        end = time.monotonic() + timeout
        while True:
            rest = end - time.monotonic()
            if rest <= 0:
                return None
            try:
                m = self.q.get(timeout=rest)
            except queue.Empty:
                return None
            if m is None:
                return None
            if pred(m):
                return m
            if m.get("seq"):
                self.early[m["seq"]] = m

    def cmd(self, timeout=15, **kw):
        return self.answer(self.send(**kw), kw.get("cmd"), timeout)

    def send(self, **kw):
        """Sends one command without waiting: answer(seq) reads its reply
        later, while other commands run."""
        self.seq += 1
        seq = self.seq
        kw["seq"] = seq
        try:
            self.p.stdin.write(json.dumps(kw) + "\n")
            self.p.stdin.flush()
        except (BrokenPipeError, OSError):
            raise RuntimeError("%s has exited" % self.name)
        return seq

    def answer(self, seq, what, timeout):
        r = self._get(lambda m: m.get("seq") == seq, timeout)
        if r is None:
            raise RuntimeError("%s: no answer to %s within %ss"
                               % (self.name, what, timeout))
        return r

    def table(self):
        return {n["id"]: n["addr"] for n in self.cmd(cmd="table")["nodes"]}

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write(json.dumps({"seq": 0, "cmd": "quit"}) + "\n")
                self.p.stdin.flush()
                self.p.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.p.poll() is None:
            self.p.kill()   # by PID: only the process we started
            self.p.wait()
        self.err.close()


class Mdht:
    """`mdht run` on its own address, trace-level JSON log kept in memory."""

    def __init__(self, binary, name, ip, logdir, bootstrap, control,
                 also_bind=None):
        self.name = name
        self.control = control
        argv = [binary, "run", "--no-state", "--bind", ip, "--port", "0",
                "--log-level", "trace", "--log-format", "json"]
        # BEP 32: a second address of the other family (dual stack); its
        # socket's endpoint is self.ep6.
        if also_bind:
            argv += ["--bind", also_bind]
        self.ep6 = None
        if bootstrap:
            for b in bootstrap:
                argv += ["--bootstrap", b]
        else:
            argv.append("--no-bootstrap")
        if control:
            argv += ["--control", control]
        self.logf = open(os.path.join(logdir, name + ".log"), "w")
        self.events = []
        self.lock = threading.Lock()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True,
                                  preexec_fn=_die_with_parent)
        self.ep = None
        end = time.monotonic() + 10
        while time.monotonic() < end:
            line = self.p.stderr.readline()
            if not line:
                break
            self.logf.write(line)
            ev = self._parse(line)
            if ev and ev.get("event") == "listening":
                ip_, port = ev["addr"].rsplit(":", 1)
                if ip_.startswith("["):
                    self.ep6 = (ip_.strip("[]"), int(port))
                else:
                    self.ep = (ip_, int(port))
                self.id = ev["id"]
                if self.ep and (self.ep6 or not also_bind):
                    break
        if not self.ep:
            raise RuntimeError("%s did not say where it listens (see %s.log)"
                               % (name, name))
        self.addr = "%s:%d" % self.ep
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()

    @staticmethod
    def _parse(line):
        try:
            return json.loads(line)
        except ValueError:
            return None

    def _drain(self):
        for line in self.p.stderr:
            self.logf.write(line)
            ev = self._parse(line)
            if ev is not None:
                with self.lock:
                    self.events.append(ev)

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def stop(self):
        """SIGTERM, then SIGKILL after 5 s; returns the exit status
        (None if it had to be killed)."""
        killed = False
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                killed = True
        self.drain.join(5)
        if not self.logf.closed:
            self.logf.close()
        return None if killed else self.p.returncode


def mdht_cmd(binary, args, timeout):
    try:
        r = subprocess.run([binary] + args, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or "", "timed out after %ss" % timeout


def not_implemented(stderr):
    return "not implemented" in stderr or "not yet" in stderr


# ------------------------------------------------------------------ checks

class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def report(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print("PASS %s" % what, flush=True)
        else:
            self.failed += 1
            print("FAIL %s%s" % (what, ("\n       " + detail) if detail else ""),
                  flush=True)
        return ok


def xor_key(target_hex):
    t = int(target_hex, 16)
    return lambda nid: int(nid, 16) ^ t


def retry(fn, attempts, pause, budget):
    """fn() -> (ok, value); at most `attempts` tries within `budget` s."""
    end = time.monotonic() + budget
    value = None
    for i in range(attempts):
        ok, value = fn()
        if ok:
            return True, value
        if time.monotonic() + pause >= end or left() < pause:
            break
        time.sleep(pause)
    return False, value


def main():
    if len(sys.argv) != 2:
        print("usage: test_interop.py path/to/mdht", file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    if not os.access(binary, os.X_OK):
        print("FAIL mdht binary %s is not executable" % binary)
        return 1

    if os.environ.get("MDHT_INTEROP_NO_SETUP") != "1":
        r = subprocess.run(["bash", os.path.join(HERE, "setup.sh")])
        if r.returncode != 0:
            print("FAIL interop setup (tests/interop/setup.sh) failed: the "
                  "reference implementations are missing, see above")
            print("0 passed, 1 failed")
            return 1
    global START
    START = time.monotonic()

    def on_signal(signum, frame):
        raise SystemExit("killed by signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)

    # A reference implementation that dies by itself (libtorrent 2.0.8's
    # Python binding was seen to vanish mid-run, once in many runs, with
    # nothing on stderr) says nothing about mdht: the suite is then run
    # once more, loudly. A failure of mdht is never retried.
    for attempt in (1, 2):
        work = tempfile.mkdtemp(prefix="mdht-interop-")
        checks = Checks()
        procs = []
        crashed = []
        try:
            run(binary, work, checks, procs)
        except (Exception, SystemExit) as e:  # harness failure = failed check
            import traceback
            traceback.print_exc()
            checks.report(False, "harness ran to completion", repr(e))
        finally:
            for p in procs:
                rc = getattr(getattr(p, "p", None), "poll", lambda: None)()
                name = getattr(p, "name", "?")
                if rc is not None and not name.startswith("mdht"):
                    crashed.append("%s (exit status %s)" % (name, rc))
            for p in reversed(procs):
                try:
                    p.stop()
                except Exception:
                    pass
        if checks.failed and crashed and attempt == 1:
            print("REFERENCE CRASH: %s died on its own during the run; "
                  "logs kept in %s; running the suite once more"
                  % (", ".join(crashed), work))
            START = time.monotonic()
            continue
        break
    print("%d passed, %d failed (%.0f s)" % (checks.passed, checks.failed,
                                            time.monotonic() - START))
    if checks.failed or os.environ.get("MDHT_INTEROP_KEEP") == "1":
        print("logs kept in %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if checks.failed else 0


def run(binary, work, checks, procs):
    help_run = mdht_cmd(binary, ["run", "--help"], 10)[1]
    m = re.search(r"^\s*--control.*$", help_run, re.M)
    control_ok = bool(m) and "not yet" not in m.group(0)

    # ---- mdht nodes: each bootstraps from the ones before it, so the three
    # know each other before anyone else joins.
    mdhts = []
    for i, ip in enumerate(MDHT_IPS):
        ctl = os.path.join(work, "m%d.sock" % (i + 1)) if control_ok else None
        n = Mdht(binary, "mdht%d" % (i + 1), ip, work,
                 [x.addr for x in mdhts], ctl)
        procs.append(n)
        mdhts.append(n)
    log("mdht: %s" % ", ".join("%s %s" % (n.addr, n.id[:8]) for n in mdhts))

    # ---- libtorrent sessions.
    lts = []
    for i, ip in enumerate(LT_IPS):
        name = "lt%d" % (i + 1)
        h = Helper("libtorrent", name,
                   [LT_PYTHON, os.path.join(HERE, "lt_node.py"), "--bind", ip,
                    "--port", str(free_port(ip)),
                    "--log", os.path.join(work, name + ".log")], work)
        procs.append(h)
        lts.append(h)
    log("libtorrent %s: %s" % (lts[0].version, ", ".join(
        "%s %s" % (h.addr, h.id[:8]) for h in lts)))

    # add_dht_node() pings once; re-add every node not yet in a table until
    # it is (bounded: 30 rounds, 20 s).
    def lt_join():
        missing = 0
        for h in lts:
            tab = h.table()
            for x in mdhts + lts:
                if x is not h and x.id not in tab:
                    missing += 1
                    h.cmd(cmd="add_node", host=x.ep[0], port=x.ep[1])
        return missing == 0, missing
    ok, miss = retry(lt_join, 30, 0.5, 20)
    log("libtorrent tables %s (%s entries missing)" % ("complete" if ok else
                                                       "INCOMPLETE", miss))

    # ---- bittorrent-dht nodes: bootstrapped (once, at start) from nodes that
    # already answer.
    jss = []
    boot = [x.addr for x in mdhts + lts]
    for i, ip in enumerate(JS_IPS):
        name = "js%d" % (i + 1)
        argv = ["node", os.path.join(HERE, "dht_node.mjs"), "--bind", ip,
                "--port", str(free_port(ip)),
                "--log", os.path.join(work, name + ".log")]
        for b in boot + [x.addr for x in jss]:
            argv += ["--bootstrap", b]
        h = Helper("bittorrent-dht", name, argv, work)
        procs.append(h)
        jss.append(h)
    log("bittorrent-dht %s: %s" % (jss[0].version, ", ".join(
        "%s %s" % (h.addr, h.id[:8]) for h in jss)))
    allnodes = mdhts + lts + jss

    def js_join():
        missing = 0
        for h in jss:
            tab = h.table()
            for x in allnodes:
                if x is not h and x.id not in tab:
                    missing += 1
                    h.cmd(cmd="add_node", host=x.ep[0], port=x.ep[1])
        return missing == 0, missing
    ok, miss = retry(js_join, 20, 0.5, 15)
    log("bittorrent-dht tables %s (%s entries missing)"
        % ("complete" if ok else "INCOMPLETE", miss))
    # libtorrent learns the bittorrent-dht nodes from their queries; make
    # sure with add_dht_node as well.
    def lt_join_all():
        missing = 0
        for h in lts:
            tab = h.table()
            for x in allnodes:
                if x is not h and x.id not in tab:
                    missing += 1
                    h.cmd(cmd="add_node", host=x.ep[0], port=x.ep[1])
        return missing == 0, missing
    retry(lt_join_all, 20, 0.5, 10)

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind((PROBE_IP, 0))

    # ---------------------------------------------------- routing tables
    def in_tables(refs):
        bad = []
        for h in refs:
            tab = h.table()
            for n in mdhts:
                if tab.get(n.id) != n.addr:
                    bad.append("%s lacks %s %s" % (h.name, n.name, n.addr))
        return not bad, bad
    ok, bad = retry(lambda: in_tables(lts), 10, 0.5, 5)
    checks.report(ok, "every mdht node is in every libtorrent session's "
                  "routing table (libtorrent pinged mdht, accepted its "
                  "replies and keeps it as a good node)", "; ".join(bad or []))
    ok, bad = retry(lambda: in_tables(jss), 10, 0.5, 5)
    checks.report(ok, "every mdht node is in every bittorrent-dht node's "
                  "routing table", "; ".join(bad or []))

    def mdht_knows(refs):
        # Black-box view of mdht's table: find_node(target = the node's own
        # id) returns that node first when mdht's table holds it.
        bad = []
        for n in mdhts:
            for h in refs:
                nodes = krpc_find_node(probe, n.ep, h.id)
                if nodes is None:
                    bad.append("%s did not answer find_node" % n.name)
                elif (h.id, h.addr) not in nodes:
                    bad.append("%s lacks %s %s" % (n.name, h.name, h.addr))
        return not bad, bad
    ok, bad = retry(lambda: mdht_knows(lts), 10, 1.0, 10)
    checks.report(ok, "every libtorrent session is in every mdht node's "
                  "routing table (mdht verified them and returns them in "
                  "find_node)", "; ".join(bad or []))
    ok, bad = retry(lambda: mdht_knows(jss), 10, 1.0, 10)
    checks.report(ok, "every bittorrent-dht node is in every mdht node's "
                  "routing table", "; ".join(bad or []))

    # -------------------------------------------------- mdht client commands
    client_n = [0]

    def client(cmd, args, timeout=20):
        """An mdht client command: through the control socket of mdht1 when
        `mdht run --control` exists, else as a short-lived node on its own
        address bootstrapped from the whole network."""
        if control_ok:
            full = [cmd] + args + ["--control", mdhts[0].control]
        else:
            client_n[0] += 1
            full = [cmd] + args + ["--bind", CLIENT_IP, "--port", "0",
                                   "--timeout", "10"]
            for x in allnodes:
                full += ["--bootstrap", x.addr]
        return mdht_cmd(binary, full, timeout)

    # libtorrent and bittorrent-dht announce -> mdht stores the peers.
    ih_lt = os.urandom(20).hex()
    lt_peer = lts[0].addr   # announced with implied_port: its DHT/listen port
    lts[0].cmd(cmd="announce", infohash=ih_lt)
    log("libtorrent %s announces %s" % (lts[0].name, ih_lt))
    ih_js = os.urandom(20).hex()
    js_peer = "%s:%d" % (jss[0].ep[0], 5151)
    r = jss[0].cmd(cmd="announce", infohash=ih_js, port=5151, timeout=20)
    log("bittorrent-dht %s announces %s: %r" % (jss[0].name, ih_js, r))
    # BEP 33: lt2 seeds a torrent, which libtorrent announces with seed = 1
    # (checked in scrape_checks, once libtorrent has had time to announce).
    ih_seed = lts[1].cmd(cmd="announce_seed", timeout=20)["infohash"]
    log("libtorrent %s seeds %s" % (lts[1].name, ih_seed))

    def mdht_stores(ih, peer, src):
        def probe_all():
            have = [n.name for n in mdhts
                    if peer in (krpc_get_peers(probe, n.ep, ih) or [])]
            return bool(have), have
        ok, have = retry(probe_all, 20, 1.0, 25)
        bad = []
        for n in mdhts:
            for e in n.snapshot():
                if e.get("addr", "").split(":")[0] != src.ep[0]:
                    continue
                if e.get("event") == "token_rejected":
                    bad.append("%s rejected %s's token" % (n.name, src.name))
                if e.get("event") == "error_sent":
                    bad.append("%s answered %s's %s with error %s" % (
                        n.name, src.name, e.get("method"), e.get("code")))
        return ok and not bad, "stored by %s; %s" % (have, "; ".join(bad))
    ok, why = mdht_stores(ih_lt, lt_peer, lts[0])
    checks.report(ok, "libtorrent's announce_peer to mdht is accepted (with "
                  "mdht's token) and mdht serves the "
                  "peer in get_peers values", why)
    ok, why = mdht_stores(ih_js, js_peer, jss[0])
    checks.report(ok, "bittorrent-dht's announce_peer to mdht is accepted "
                  "and mdht serves the peer in get_peers values", why)

    # Many peers stored on one mdht node: its get_peers reply must still fit
    # the 1,500 bytes libtorrent reads a datagram into (a longer one is lost
    # without a trace), and libtorrent must get values from it.
    ih_big = os.urandom(20).hex()
    r, _ = krpc(probe, mdhts[0].ep, "get_peers",
                {"info_hash": bytes.fromhex(ih_big)})
    stored = 0
    if r and r.get(b"token"):
        for port in range(10001, 10201):
            a, _ = krpc(probe, mdhts[0].ep, "announce_peer",
                        {"info_hash": bytes.fromhex(ih_big), "port": port,
                         "token": r[b"token"]}, 1.0)
            stored += a is not None
            # mdht answers one address with 8,000 bytes a second (its
            # reply budget against amplification): 200 replies of ~80
            # bytes fit when paced at 100 a second.
            time.sleep(0.01)
    time.sleep(2.5)  # the budget refills before the big reply
    r, size = krpc(probe, mdhts[0].ep, "get_peers",
                   {"info_hash": bytes.fromhex(ih_big)})
    nvals = len(r.get(b"values", [])) if r else 0
    log("200 peers announced to mdht1 (%d accepted); its get_peers reply: "
        "%d bytes, %d values" % (stored, size, nvals))

    def lt_gets_big():
        peers = lts[2].cmd(cmd="get_peers", infohash=ih_big, wait=6,
                           timeout=15)["peers"]
        return len([p for p in peers if p.startswith(PROBE_IP + ":")]) > 0, \
            len(peers)
    ok, v = retry(lt_gets_big, 3, 1.0, 25)
    checks.report(ok and 0 < size <= 1500 and nvals > 0,
                  "with 200 peers stored, mdht's get_peers reply fits "
                  "libtorrent's 1,500-byte datagram buffer (%d bytes, %d "
                  "values) and libtorrent's get_peers receives them"
                  % (size, nvals), "libtorrent got %s peers" % v)

    # libtorrent announced -> `mdht get-peers` finds it.

    def mdht_gets_lt():
        rc, out, err = client("get-peers", [ih_lt])
        if rc is not None and not_implemented(err):
            return True, ("NI", err.strip())
        peers = out.split()
        return lt_peer in peers, (rc, peers, err.strip())
    ok, v = retry(mdht_gets_lt, 12, 2.0, 35)
    if v and v[0] == "NI":
        checks.report(False, "a peer announced by libtorrent is found by "
                      "`mdht get-peers`", "mdht get-peers: %s" % v[1])
    else:
        checks.report(ok, "a peer announced by libtorrent is found by "
                      "`mdht get-peers` (mdht's get_peers lookup walks "
                      "libtorrent nodes and decodes their values)",
                      "wanted %s, last result %r" % (lt_peer, v))

    # A short-lived mdht node that knows only references bootstraps through
    # them and finds bittorrent-dht's peer.
    def fresh_gets_js():
        args = ["get-peers", ih_js, "--bind", CLIENT_IP, "--port", "0",
                "--timeout", "10", "--bootstrap", lts[1].addr,
                "--bootstrap", jss[2].addr]
        rc, out, err = mdht_cmd(binary, args, 20)
        if rc is not None and not_implemented(err):
            return True, ("NI", err.strip())
        return js_peer in out.split(), (rc, out.split(), err.strip())
    ok, v = retry(fresh_gets_js, 3, 1.0, 40)
    if v and v[0] == "NI":
        checks.report(False, "a short-lived `mdht get-peers` bootstrapped "
                      "only from libtorrent and bittorrent-dht finds "
                      "bittorrent-dht's peer", "mdht get-peers: %s" % v[1])
    else:
        checks.report(ok, "a short-lived `mdht get-peers` bootstrapped only "
                      "from one libtorrent and one bittorrent-dht node finds "
                      "bittorrent-dht's peer (mdht's bootstrap and lookup "
                      "through the references alone)",
                      "wanted %s, last result %r" % (js_peer, v))

    # mdht announces -> libtorrent and bittorrent-dht find it.
    ih_m = os.urandom(20).hex()
    ann_port = 4242
    m_peer = "%s:%d" % ((mdhts[0].ep[0] if control_ok else CLIENT_IP),
                        ann_port)
    rc, out, err = client("announce", [ih_m, "--port", str(ann_port)], 30)
    if rc is not None and not_implemented(err):
        checks.report(False, "a peer announced by `mdht announce` is found by "
                      "libtorrent's get_peers", "mdht announce: %s"
                      % err.strip())
        checks.report(False, "a peer announced by `mdht announce` is found by "
                      "bittorrent-dht's get_peers", "mdht announce: %s"
                      % err.strip())
    else:
        acc = [l.split()[1] for l in out.splitlines() if len(l.split()) == 2]
        log("mdht announce %s: rc=%s, accepted by %s %s" % (
            ih_m, rc, acc, err.strip()))
        names = {x.addr: x.name for x in allnodes}
        log("  accepted by: %s" % ", ".join(names.get(a, a) for a in acc))

        def lt_gets_m():
            peers = lts[1].cmd(cmd="get_peers", infohash=ih_m, wait=8,
                               expect=m_peer, timeout=20)["peers"]
            return m_peer in peers, peers
        ok, v = retry(lt_gets_m, 4, 1.0, 30)
        checks.report(ok, "a peer announced by `mdht announce` is found by "
                      "libtorrent's get_peers (libtorrent accepted mdht's "
                      "tokens and announce_peer)",
                      "wanted %s, rc=%s got %r" % (m_peer, rc, v))

        def js_gets_m():
            r = jss[1].cmd(cmd="get_peers", infohash=ih_m, timeout=20)
            return m_peer in r.get("peers", []), r
        ok, v = retry(js_gets_m, 4, 1.0, 20)
        checks.report(ok, "a peer announced by `mdht announce` is found by "
                      "bittorrent-dht's get_peers", "wanted %s, rc=%s got %r"
                      % (m_peer, rc, v))

    # mdht find-node agrees with libtorrent's view of the closest nodes.
    target = os.urandom(20).hex()
    rc, out, err = client("find-node", [target])
    if rc is not None and not_implemented(err):
        checks.report(False, "`mdht find-node` agrees with libtorrent's view "
                      "of the closest nodes", "mdht find-node: %s"
                      % err.strip())
    else:
        got = [l.split()[0].lower() for l in out.splitlines()
               if len(l.split()) == 2]
        # libtorrent's view: ask each session for its closest nodes to the
        # target (find_node), rank everything they return by distance.
        seen = {}
        for h in lts:
            for nid, addr in krpc_find_node(probe, h.ep, target) or []:
                seen[nid] = addr
            seen[h.id] = h.addr
        # Only the nine nodes of the network count: a short-lived client
        # node may still sit in some tables.
        asker = mdhts[0].id if control_ok else None
        known = {x.id for x in allnodes} - {asker}
        key = xor_key(target)
        want = sorted((i for i in seen if i in known), key=key)[:K]
        got = [i for i in got if i in known]
        n = min(len(want), K)
        ok = rc == 0 and got[:n] == want[:n]
        names = {x.id: x.name for x in allnodes}
        checks.report(ok, "`mdht find-node` agrees with libtorrent's view "
                      "of the %d closest nodes, in order" % n,
                      "libtorrent: %s\n       mdht:       %s (rc=%s %s)" % (
                          [names.get(i, i[:8]) for i in want],
                          [names.get(i, i[:8]) for i in got], rc,
                          err.strip()))

    # ---------------------------------- BEP 33 scrape and BEP 51 samples
    scrape_checks(binary, mdhts, lts, probe, client, checks, ih_seed)
    sample_checks(binary, mdhts, lts, probe, checks)

    # ----------------------------- BEP 44 items and BEP 32 dual stack
    item_checks(binary, mdhts, lts, jss, probe, client, work, checks)
    dualstack_checks(binary, work, procs, checks)

    # ------------------------------------------- messages both ways decode
    time.sleep(1.0)   # let the last replies land
    groups = {"libtorrent": {h.ep[0] for h in lts},
              "bittorrent-dht": {h.ep[0] for h in jss}}

    def ip_of(e):
        return (e.get("addr") or "").rsplit(":", 1)[0]
    bad = []
    replies = {g: 0 for g in groups}
    for n in mdhts:
        for e in n.snapshot():
            ev = e.get("event")
            g = next((g for g, ips in groups.items() if ip_of(e) in ips), None)
            if g is None:
                continue
            if ev == "response_received":
                replies[g] += 1
            elif ev == "datagram_dropped":
                bad.append("%s dropped %s bytes from %s %s: %s" % (
                    n.name, e.get("len"), g, e.get("addr"), e.get("reason")))
            elif ev == "rate_limited":
                bad.append("%s rate-limited %s %s" % (n.name, g, e.get("addr")))
    for g, c in replies.items():
        if not c:
            bad.append("mdht received no reply at all from %s" % g)
    checks.report(not bad, "every datagram mdht received from libtorrent and "
                  "bittorrent-dht decoded and matched (%s replies, no "
                  "datagram_dropped in mdht's JSON log)" % ", ".join(
                      "%d %s" % (c, g) for g, c in replies.items()),
                  "; ".join(bad[:10]))

    bad = []
    summary = []
    for g, ips in groups.items():
        qin = rsp = 0
        for n in mdhts:
            for e in n.snapshot():
                if ip_of(e) not in ips:
                    continue
                ev = e.get("event")
                if ev == "query_received":
                    qin += 1
                elif ev == "response_sent":
                    rsp += 1
                elif ev == "error_sent":
                    bad.append("%s answered %s's %s with error %s" % (
                        n.name, g, e.get("method"), e.get("code")))
        summary.append("%d/%d from %s" % (rsp, qin, g))
        if not qin:
            bad.append("%s sent mdht no query at all" % g)
        elif rsp != qin:
            bad.append("%s sent %d queries, mdht sent %d responses"
                       % (g, qin, rsp))
    for n in mdhts:
        evs = n.snapshot()
        log("%s received %s" % (n.name, ", ".join(
            "%s %d" % (m, sum(1 for e in evs if e.get("event") ==
                              "query_received" and e.get("method") == m))
            for m in ("ping", "find_node", "get_peers", "announce_peer",
                      "sample_infohashes", "get", "put"))))
    checks.report(not bad, "every query libtorrent and bittorrent-dht sent "
                  "mdht was answered with a response (%s; mdht's JSON log)"
                  % ", ".join(summary), "; ".join(bad[:10]))

    # The other direction: libtorrent and bittorrent-dht decoded everything
    # mdht sent them.
    bad = []
    for h in lts:
        st = h.cmd(cmd="stats")
        if st.get("dht_messages_in_dropped"):
            bad.append("%s dropped %s incoming DHT messages" % (
                h.name, st["dht_messages_in_dropped"]))
    for h in jss:
        w = h.cmd(cmd="warnings").get("warnings", [])
        for x in w:
            bad.append("%s: %s" % (h.name, x))
    checks.report(not bad, "libtorrent and bittorrent-dht decoded every "
                  "message mdht sent them (libtorrent's "
                  "dht_messages_in_dropped = 0, no bittorrent-dht warning)",
                  "; ".join(bad[:10]))

    # `mdht stats` counters of the running nodes.
    stats_check(binary, mdhts, control_ok, checks)

    # The mdht nodes end cleanly (under ASan/UBSan too: a report is a
    # non-zero exit).
    bad = []
    for n in mdhts:
        rc = n.stop()
        if rc != 0:
            bad.append("%s exit status %s (see %s.log)" % (n.name, rc, n.name))
    checks.report(not bad, "every mdht node exited 0 on SIGTERM after the "
                  "exchange", "; ".join(bad))


def scrape_checks(binary, mdhts, lts, probe, client, checks, ih_seed_hex):
    """BEP 33 both ways: libtorrent answers mdht's scrape, mdht answers a
    scrape as libtorrent does, libtorrent's seed announce is stored as a
    seed, and `mdht scrape` over a network where both hold announces."""
    ih = os.urandom(20)
    ihx = ih.hex()
    seeds_a = [SCRAPE_NET % i for i in range(1, 21)]        # 20 seeds
    peers_a = [SCRAPE_NET % i for i in range(21, 51)]       # 30 downloaders
    seeds_x = [SCRAPE_NET % i for i in range(51, 61)]       # 10 more seeds
    peers_x = [SCRAPE_NET % i for i in range(61, 71)]       # 10 more peers
    bsd_a, bpe_a = bep33_bloom(seeds_a), bep33_bloom(peers_a)
    t0 = time.monotonic()
    n = raw_announce(seeds_a, [h.ep for h in lts], ih, True)
    n += raw_announce(peers_a, [h.ep for h in lts], ih, False)
    log("BEP 33: %d of %d announce_peer (20 seed = 1, 30 seed = 0, from 50 "
        "addresses) accepted by the 3 libtorrent sessions in %.1f s"
        % (n, 150, time.monotonic() - t0))
    # What libtorrent answers to scrape = 1 (dht_storage.cpp: BFsd and BFpe
    # of the stored swarm, no values).
    lt_bad = []
    lt_filters = None
    for h in lts:
        f = raw_scrape(probe, h.ep, ih)
        if f is None or f[0] != bsd_a or f[1] != bpe_a:
            lt_bad.append("%s answered %s" % (h.name, "nothing" if f is None
                          else "filters of %s/%s bytes, %s the BEP's bloom"
                          % (len(f[0] or b""), len(f[1] or b""),
                             "equal to" if f == (bsd_a, bpe_a) else
                             "different from")))
        elif lt_filters is None:
            lt_filters = f
    est_a = (round(bep33_estimate(bsd_a)), round(bep33_estimate(bpe_a)))

    # 1. libtorrent answers mdht's scrape: a short-lived mdht node that
    # knows only lt1; nothing of this swarm is on any mdht node yet.
    t0 = time.monotonic()
    rc, out, err = mdht_cmd(binary, [
        "scrape", ihx, "--json", "--standalone", "--bind", CLIENT_IP,
        "--port", "0", "--timeout", "10", "--bootstrap", lts[0].addr], 20)
    dt = time.monotonic() - t0
    got = parse_json_line(out, "scrape")
    ok = (rc == 0 and got is not None and not lt_bad and
          (got["seeds"], got["peers"]) == est_a and 1 <= got["nodes"] <= 3)
    checks.report(ok, "libtorrent answers mdht's scrape: 20 seeds and 30 "
                  "downloaders announced to libtorrent only, `mdht scrape "
                  "--bootstrap <libtorrent>` reports %s seeds, %s peers "
                  "from %s nodes in %.1f s (the BEP estimate of libtorrent's "
                  "filters: %d, %d)" % (
                      got and got["seeds"], got and got["peers"],
                      got and got["nodes"], dt, est_a[0], est_a[1]),
                  "rc=%s out=%r err=%r; %s" % (rc, out[:300], err.strip(),
                                               "; ".join(lt_bad)))

    # 2. mdht answers a scrape as libtorrent does: the same 50 addresses
    # announce to mdht2; mdht3 gets 10 more seeds and 10 more downloaders.
    n = raw_announce(seeds_a, [mdhts[1].ep], ih, True)
    n += raw_announce(peers_a, [mdhts[1].ep], ih, False)
    n += raw_announce(seeds_x, [mdhts[2].ep], ih, True)
    n += raw_announce(peers_x, [mdhts[2].ep], ih, False)
    log("BEP 33: %d of 70 announce_peer accepted by mdht2 (50) and mdht3 "
        "(20)" % n)
    f2 = raw_scrape(probe, mdhts[1].ep, ih)
    f3 = raw_scrape(probe, mdhts[2].ep, ih)
    want3 = (bep33_bloom(seeds_x), bep33_bloom(peers_x))
    bad = []
    if f2 is None or f3 is None:
        bad.append("no reply (mdht2 %s, mdht3 %s)" % (f2 is not None,
                                                      f3 is not None))
    else:
        for name, f, want in (("mdht2", f2, (bsd_a, bpe_a)),
                              ("mdht3", f3, want3)):
            if len(f[0] or b"") != 256 or len(f[1] or b"") != 256:
                bad.append("%s: BFsd %s bytes, BFpe %s bytes" % (
                    name, len(f[0] or b""), len(f[1] or b"")))
            elif f != want:
                bad.append("%s: filters differ from the BEP's bloom of the "
                           "announced addresses (%d/%d bits set, want %d/%d)"
                           % (name, *(sum(bin(b).count("1") for b in x)
                                      for x in f + want)))
        if lt_filters is None:
            bad.append("libtorrent's filters unavailable: %s"
                       % "; ".join(lt_bad))
        elif f2 != lt_filters:
            bad.append("mdht2's filters differ from libtorrent's for the "
                       "same 50 addresses")
    checks.report(not bad, "mdht answers get_peers scrape = 1 as libtorrent "
                  "does: BFsd and BFpe of 256 bytes, bit for bit the BEP 33 "
                  "bloom of the announced addresses and byte-identical to "
                  "libtorrent's filters for the same 20 seeds and 30 "
                  "downloaders", "; ".join(bad))

    # 3. mdht scrape over libtorrent and mdht nodes together: the union.
    sd_u = bf_or(bsd_a, want3[0])
    pe_u = bf_or(bpe_a, want3[1])
    est_u = (round(bep33_estimate(sd_u)), round(bep33_estimate(pe_u)))
    t0 = time.monotonic()
    rc, out, err = client("scrape", [ihx, "--json"])
    dt = time.monotonic() - t0
    got = parse_json_line(out, "scrape")
    ok = (rc == 0 and got is not None and
          (got["seeds"], got["peers"]) == est_u and got["nodes"] >= 2)
    checks.report(ok, "`mdht scrape` over libtorrent and mdht nodes holding "
                  "announces (30 seeds, 40 downloaders in all) reports %s "
                  "seeds, %s peers from %s nodes in %.1f s (the BEP estimate "
                  "of the union: %d, %d)" % (
                      got and got["seeds"], got and got["peers"],
                      got and got["nodes"], dt, est_u[0], est_u[1]),
                  "rc=%s out=%r err=%r" % (rc, out[:300], err.strip()))

    # 4. libtorrent's own announce as a seed (a torrent it seeds, added by
    # run() early: libtorrent takes 10-20 s to announce it): mdht stores it
    # with seed = 1.
    ih_seed = bytes.fromhex(ih_seed_hex)
    want = (bep33_bloom([lts[1].ep[0]]), bytes(256))

    def mdht_has_seed():
        got = {n.name: raw_scrape(probe, n.ep, ih_seed) for n in mdhts}
        have = [k for k, f in got.items() if f == want]
        return bool(have), (have, {k: f is not None and tuple(
            sum(bin(b).count("1") for b in x or b"") for x in f)
            for k, f in got.items()})
    t0 = time.monotonic()
    ok, v = retry(mdht_has_seed, 25, 1.0, 30)
    checks.report(ok, "libtorrent's announce of a torrent it seeds (seed = "
                  "1) is stored by mdht as a seed: mdht's BFsd holds "
                  "libtorrent's address, its BFpe is empty (%s, %.1f s)"
                  % (", ".join(v[0]) or "no node", time.monotonic() - t0),
                  "bits set (BFsd, BFpe) per node: %r" % (v[1],))


def parse_json_line(out, typ):
    for line in out.splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict) and o.get("type") == typ:
            return o
    return None


def sample_checks(binary, mdhts, lts, probe, checks):
    """BEP 51 both ways: libtorrent's dht_sample_infohashes() to mdht, and
    `mdht sample` crawling libtorrent."""
    # libtorrent -> mdht: 25 info-hashes on mdht2 (all fit a reply), 50 on
    # mdht3 (more than the 40 mdht sends).
    ihs2 = [os.urandom(20) for _ in range(25)]
    ihs3 = [os.urandom(20) for _ in range(50)]
    n2 = raw_announce_many(SAMPLE_NET % 1, mdhts[1].ep, ihs2, False)
    n3 = raw_announce_many(SAMPLE_NET % 2, mdhts[2].ep, ihs3, False)
    log("BEP 51: %d/25 info-hashes stored on mdht2, %d/50 on mdht3" % (n2, n3))
    res = {}
    for n in mdhts[1:]:
        r = lts[0].cmd(cmd="sample", host=n.ep[0], port=n.ep[1], wait=5,
                       timeout=10)
        res[n.name] = r
        log("libtorrent lt1 sample_infohashes -> %s: %s samples, num %s, "
            "interval %s, %s nodes" % (n.name, len(r.get("samples", [])),
                                       r.get("num_infohashes"),
                                       r.get("interval"), r.get("num_nodes")))
    bad = []
    for name, ours in (("mdht2", ihs2), ("mdht3", ihs3)):
        r = res[name]
        if not r.get("ok"):
            bad.append("%s: %s" % (name, r.get("error")))
            continue
        smp = r["samples"]
        num = r["num_infohashes"]
        if len(set(smp)) != len(smp):
            bad.append("%s: duplicate samples" % name)
        if num < len(ours):
            bad.append("%s: num %d < %d stored" % (name, num, len(ours)))
        if len(smp) != min(num, 40):
            bad.append("%s: %d samples of %d (want min(num, 40))"
                       % (name, len(smp), num))
        if num <= 40 and not {x.hex() for x in ours} <= set(smp):
            bad.append("%s: %d of our info-hashes missing from the samples"
                       % (name, len({x.hex() for x in ours} - set(smp))))
        if r["interval"] != 300:
            bad.append("%s: interval %s, want 300" % (name, r["interval"]))
        if not r["num_nodes"]:
            bad.append("%s: no nodes in the reply" % name)
    checks.report(not bad, "libtorrent's dht_sample_infohashes() to mdht: "
                  "mdht2 (25 stored) returns %s samples, mdht3 (50 stored) "
                  "%s, interval 300, with nodes; libtorrent decoded them "
                  "(dht_sample_infohashes_alert)" % (
                      len(res["mdht2"].get("samples", [])),
                      len(res["mdht3"].get("samples", []))), "; ".join(bad))

    # mdht -> libtorrent: 10 info-hashes held by lt3 alone (libtorrent
    # samples at most 20 of what it stores).
    ihs = [os.urandom(20) for _ in range(10)]
    n = raw_announce_many(SAMPLE_NET % 3, lts[2].ep, ihs, True)
    r, _ = krpc(probe, lts[2].ep, "sample_infohashes",
                {"target": os.urandom(20)})
    log("BEP 51: %d/10 info-hashes stored on libtorrent lt3; its own "
        "sample_infohashes reply: %s samples, num %s, interval %s" % (
            n, len((r or {}).get(b"samples", b"")) // 20,
            (r or {}).get(b"num"), (r or {}).get(b"interval")))
    t0 = time.monotonic()
    rc, out, err = mdht_cmd(binary, [
        "sample", "--json", "--standalone", "--bind", CLIENT_IP, "--port",
        "0", "--timeout", "15", "--bootstrap", lts[2].addr], 25)
    dt = time.monotonic() - t0
    found = {}
    for line in out.splitlines():
        try:
            o = json.loads(line)
            found[o["info_hash"]] = o["from"]
        except (ValueError, KeyError, TypeError):
            pass
    ours = {x.hex() for x in ihs}
    from_lt3 = [x for x in ours if found.get(x) == lts[2].addr]
    log("mdht sample --bootstrap lt3: rc=%s, %d info-hashes in %.1f s; %s"
        % (rc, len(found), dt, err.strip()))
    checks.report(rc == 0 and len(from_lt3) == len(ours),
                  "`mdht sample --bootstrap <libtorrent>` finds the %d "
                  "info-hashes stored on libtorrent alone, each from "
                  "libtorrent's address (%d found in all, %.1f s)"
                  % (len(from_lt3), len(found), dt),
                  "rc=%s, missing %d, err=%r; lt3 stores %s info-hashes "
                  "(libtorrent samples 20 at random beyond 20)" % (
                      rc, len(ours) - len(from_lt3), err.strip(),
                      (r or {}).get(b"num")))


# ------------------------------------------------------- BEP 44 and BEP 32

def mutable_target(pk_hex, salt):
    import hashlib
    return hashlib.sha1(bytes.fromhex(pk_hex) + salt.encode()).hexdigest()


def holders(probe, nodes, target, value, seq=None, sig=None):
    """Names of the nodes whose own store answers a raw KRPC `get` of
    target with this value (and seq and signature, for a mutable item):
    what each node stored, not what a lookup found."""
    have = []
    for n in nodes:
        r, _ = krpc(probe, n.ep, "get", {"target": bytes.fromhex(target)})
        if not r or r.get(b"v") != value.encode():
            continue
        if seq is not None and (r.get(b"seq") != seq or
                                r.get(b"sig", b"").hex() != sig):
            continue
        have.append(n.name)
    return have


def mdht_get_item(client, args):
    """`mdht get ... --json` through mdht1: its item line, or None."""
    rc, out, err = client("get", args + ["--json"])
    return parse_json_line(out, "item"), (rc, out[:300], err.strip())


def item_checks(binary, mdhts, lts, jss, probe, client, work, checks):
    """BEP 44 both ways with libtorrent and bittorrent-dht: items one
    implementation puts are read by the other's get, value, seq and
    signature equal, and each kind of node stores the other's puts."""
    tag = os.urandom(4).hex()
    t0 = time.monotonic()

    # ---- libtorrent puts, mdht gets.
    v_imm, lt_v, lt_salt = "lt immutable " + tag, "lt mutable " + tag, "lt-salt"
    # A mutable put starts with a get lookup; libtorrent waits out the
    # 15 s timeout of a node that is gone (a short-lived mdht client still
    # in its table) before it puts: that put runs while others go on.
    seq_mut = lts[0].send(cmd="put_mutable", seed=os.urandom(32).hex(),
                          salt=lt_salt, value=lt_v, wait=28)
    r1 = lts[0].cmd(cmd="put_immutable", value=v_imm, wait=28, timeout=30)
    log("libtorrent lt1 put immutable %s (%s nodes)"
        % (r1.get("target"), r1.get("success")))
    ok, v = retry(lambda: (lambda it: (bool(it) and it[0] is not None and
                                       it[0]["value"] == v_imm, it))(
        mdht_get_item(client, [r1.get("target", "00" * 20)])), 5, 1.0, 20)
    have = holders(probe, mdhts, r1.get("target", "00" * 20), v_imm)
    checks.report(ok and r1.get("ok") and have,
                  "an immutable item libtorrent put (dht_put_immutable_item) "
                  "is read by `mdht get TARGET` (value equal) and stored by "
                  "mdht nodes (%s answer a raw get with it)"
                  % (", ".join(have) or "none"),
                  "libtorrent: %r; mdht get: %r" % (r1, v))

    # ---- mdht puts, libtorrent gets.
    key = os.path.join(work, "item.key")
    rc, out, err = mdht_cmd(binary, ["keygen", key], 10)
    pk = out.strip()
    v_imm, v_mut, m_salt = "mdht immutable " + tag, "mdht mutable " + tag, "md-salt"
    rc1, out1, err1 = client("put", [v_imm, "--json"], 30)
    p1 = parse_json_line(out1, "item") or {}
    rc2, out2, err2 = client("put", ["--key", key, "--salt", m_salt, "--json",
                                     v_mut], 30)
    p2 = parse_json_line(out2, "item") or {}
    log("mdht put immutable %s (rc %s), mutable %s seq %s (rc %s) %s %s"
        % (p1.get("target"), rc1, p2.get("target"), p2.get("seq"), rc2,
           err1.strip(), err2.strip()))
    tgt = p1.get("target", "00" * 20)

    def lt_imm():
        r = lts[1].cmd(cmd="get_immutable", target=tgt, wait=8, timeout=15)
        return r.get("found") and r.get("value") == v_imm, r
    ok, v = retry(lt_imm, 3, 1.0, 25)
    have = holders(probe, lts, tgt, v_imm)
    checks.report(rc1 == 0 and ok and have,
                  "an immutable item `mdht put` stored is read by "
                  "libtorrent's dht_get_immutable_item (value equal) and "
                  "stored by libtorrent nodes (%s answer a raw get with it)"
                  % (", ".join(have) or "none"),
                  "mdht put rc=%s %r %r; libtorrent: %r" % (rc1, out1[:200],
                                                           err1, v))

    def lt_mut2():
        r = lts[1].cmd(cmd="get_mutable", pubkey=pk or "00" * 32,
                       salt=m_salt, wait=8, timeout=15)
        return (r.get("found") and r.get("value") == v_mut and
                r.get("seq_number") == p2.get("seq") and
                r.get("sig") == p2.get("sig")), r
    ok, v = retry(lt_mut2, 3, 1.0, 25)
    mt = mutable_target(pk or "00" * 32, m_salt)
    have = holders(probe, lts, mt, v_mut, p2.get("seq"), p2.get("sig"))
    checks.report(rc2 == 0 and ok and have,
                  "a mutable item `mdht put --key --salt` stored (key from "
                  "`mdht keygen`) is read by libtorrent's "
                  "dht_get_mutable_item, which verifies its signature "
                  "(value, seq %s and signature equal) and stored by "
                  "libtorrent nodes (%s)" % (p2.get("seq"), ", ".join(have)
                                             or "none"),
                  "mdht put rc=%s %r %r; libtorrent: %r" % (rc2, out2[:200],
                                                           err2, v))

    r2 = lts[0].answer(seq_mut, "put_mutable", 30)
    log("libtorrent lt1 put mutable %s seq %s (%s nodes)"
        % (r2.get("pubkey"), r2.get("seq_number"), r2.get("success")))
    def lt_mut():
        it, why = mdht_get_item(client, ["--pubkey", r2.get("pubkey", "00"),
                                         "--salt", lt_salt])
        good = (it is not None and it["value"] == lt_v and
                it["seq"] == r2.get("seq_number") and
                it.get("sig") == r2.get("sig"))
        return good, (it, why)
    ok, v = retry(lt_mut, 5, 1.0, 20)
    mt = mutable_target(r2.get("pubkey", "00" * 32), lt_salt)
    have = holders(probe, mdhts, mt, lt_v, r2.get("seq_number"),
                   r2.get("sig"))
    checks.report(ok and r2.get("ok") and have,
                  "a mutable item with salt libtorrent put "
                  "(dht_put_mutable_item, key from a random seed) is read by "
                  "`mdht get --pubkey --salt` (value, seq %s and signature "
                  "equal; mdht verified the signature) and stored by mdht "
                  "nodes (%s)" % (r2.get("seq_number"), ", ".join(have) or
                                  "none"),
                  "libtorrent: %r; mdht get: %r" % (r2, v))

    # ---- the same key on both sides: libtorrent updates mdht's item with
    # the seed from mdht's key file (seq + 1), mdht reads the update.
    seed = open(key).read().strip() if os.path.exists(key) else "00" * 32
    v_upd = "updated by libtorrent " + tag
    r3 = lts[2].cmd(cmd="put_mutable", seed=seed, salt=m_salt, value=v_upd,
                    wait=28, timeout=30)

    def upd():
        it, why = mdht_get_item(client, ["--pubkey", pk or "00" * 32,
                                         "--salt", m_salt])
        return (it is not None and it["value"] == v_upd and
                it["seq"] == (p2.get("seq") or 0) + 1 and
                r3.get("pubkey") == pk), (it, why)
    ok, v = retry(upd, 5, 1.0, 20)
    checks.report(ok, "libtorrent given the seed of `mdht keygen`'s key file "
                  "signs with the same key: its put of mdht's item reads "
                  "seq %s and stores seq %s, which `mdht get` returns"
                  % (p2.get("seq"), r3.get("seq_number")),
                  "libtorrent: %r; mdht get: %r" % (r3, v))

    # ---- bittorrent-dht puts, mdht gets.
    v_imm, v_mut, j_salt = "js immutable " + tag, "js mutable " + tag, "js-salt"
    j1 = jss[0].cmd(cmd="put", value=v_imm, timeout=30)
    j2 = jss[0].cmd(cmd="put", value=v_mut, seed=os.urandom(32).hex(),
                    salt=j_salt, seq_number=7, timeout=30)
    log("bittorrent-dht js1 put immutable %s (%s replies), mutable %s (%s "
        "replies)" % (j1.get("target"), j1.get("stored"), j2.get("target"),
                      j2.get("stored")))
    tgt = j1.get("target") or "00" * 20
    ok, v = retry(lambda: (lambda it: (it[0] is not None and
                                       it[0]["value"] == v_imm, it))(
        mdht_get_item(client, [tgt])), 5, 1.0, 20)
    have = holders(probe, mdhts, tgt, v_imm)
    checks.report(j1.get("ok") and ok and have,
                  "an immutable item bittorrent-dht put is read by `mdht get` "
                  "and stored by mdht nodes (%s)" % (", ".join(have) or "none"),
                  "bittorrent-dht: %r; mdht get: %r" % (j1, v))

    def js_mut():
        it, why = mdht_get_item(client, ["--pubkey", j2.get("pubkey") or
                                         "00" * 32, "--salt", j_salt])
        return (it is not None and it["value"] == v_mut and
                it["seq"] == 7), (it, why)
    ok, v = retry(js_mut, 5, 1.0, 20)
    have = holders(probe, mdhts, j2.get("target") or "00" * 20, v_mut)
    checks.report(j2.get("ok") and ok and have,
                  "a mutable item with salt bittorrent-dht put (seq 7, signed "
                  "with node's Ed25519) is read by `mdht get --pubkey "
                  "--salt` (value and seq equal, signature verified by mdht) "
                  "and stored by mdht nodes (%s)" % (", ".join(have) or
                                                     "none"),
                  "bittorrent-dht: %r; mdht get: %r" % (j2, v))

    # ---- mdht puts, bittorrent-dht gets.
    v_imm, v_mut, m_salt = "mdht to js " + tag, "mdht mutable to js " + tag, "md-js"
    rc1, out1, err1 = client("put", [v_imm, "--json"], 30)
    p1 = parse_json_line(out1, "item") or {}
    rc2, out2, err2 = client("put", ["--key", key, "--salt", m_salt, "--json",
                                     v_mut], 30)
    p2 = parse_json_line(out2, "item") or {}
    tgt = p1.get("target") or "00" * 20

    def js_imm():
        r = jss[1].cmd(cmd="get", target=tgt, timeout=30)
        return r.get("found") and r.get("value") == v_imm, r
    ok, v = retry(js_imm, 3, 1.0, 30)
    have = holders(probe, jss, tgt, v_imm)
    checks.report(rc1 == 0 and ok and have,
                  "an immutable item `mdht put` stored is read by "
                  "bittorrent-dht's get and stored by bittorrent-dht nodes "
                  "(%s)" % (", ".join(have) or "none"),
                  "mdht put rc=%s %r %r; bittorrent-dht: %r" % (
                      rc1, out1[:200], err1, v))
    mt = mutable_target(pk or "00" * 32, m_salt)

    def js_mut2():
        r = jss[1].cmd(cmd="get", target=mt, salt=m_salt, timeout=30)
        return (r.get("found") and r.get("value") == v_mut and
                r.get("seq_number") == p2.get("seq") and
                r.get("sig") == p2.get("sig")), r
    ok, v = retry(js_mut2, 3, 1.0, 30)
    have = holders(probe, jss, mt, v_mut, p2.get("seq"), p2.get("sig"))
    checks.report(rc2 == 0 and ok and have,
                  "a mutable item `mdht put --key --salt` stored is read by "
                  "bittorrent-dht's get, which verifies its signature "
                  "(value, seq and signature equal), and stored by "
                  "bittorrent-dht nodes (%s)" % (", ".join(have) or "none"),
                  "mdht put rc=%s %r %r; bittorrent-dht: %r" % (
                      rc2, out2[:200], err2, v))
    log("BEP 44 checks took %.1f s" % (time.monotonic() - t0))


def dualstack_checks(binary, work, procs, checks):
    """BEP 32: a dual-stack `mdht run` (IPv4 and ::1) between a libtorrent
    session on [::1] only and one on IPv4 only; a peer announced through the
    dual-stack node is found by both, each in its own family."""
    t0 = time.monotonic()
    ctl = os.path.join(work, "dual.sock")
    d = Mdht(binary, "mdht-dual", DUAL_IP, work, None, ctl, also_bind="::1")
    procs.append(d)
    lt6 = Helper("libtorrent", "lt6", [
        LT_PYTHON, os.path.join(HERE, "lt_node.py"), "--bind", "::1",
        "--port", str(free_port("::1")), "--log",
        os.path.join(work, "lt6.log")], work)
    procs.append(lt6)
    lt4 = Helper("libtorrent", "lt4", [
        LT_PYTHON, os.path.join(HERE, "lt_node.py"), "--bind", LT4_IP,
        "--port", str(free_port(LT4_IP)), "--log",
        os.path.join(work, "lt4.log")], work)
    procs.append(lt4)
    log("dual stack: mdht %s and [::1]:%s, libtorrent %s and %s"
        % (d.addr, d.ep6 and d.ep6[1], lt6.addr, lt4.addr))
    d6 = "[::1]:%d" % d.ep6[1] if d.ep6 else None

    def join():
        miss = []
        for h, ep, want in ((lt6, d.ep6, d6), (lt4, d.ep, d.addr)):
            if ep is None:
                miss.append("mdht-dual has no socket for %s" % h.name)
            elif h.table().get(d.id) != want:
                miss.append("%s lacks mdht-dual %s" % (h.name, want))
                h.cmd(cmd="add_node", host=ep[0], port=ep[1])
        return not miss, miss
    ok, miss = retry(join, 20, 0.5, 10)
    checks.report(ok, "the dual-stack mdht node is in the routing table of a "
                  "libtorrent session on [::1] (as %s) and of one on IPv4 "
                  "(as %s)" % (d6, d.addr), "; ".join(miss or []))

    # 1. `mdht announce` through the dual-stack node's control socket.
    ih = os.urandom(20).hex()
    rc, out, err = mdht_cmd(binary, ["announce", ih, "--port", "4321",
                                     "--control", ctl], 30)
    acc = [l.split()[1] for l in out.splitlines() if len(l.split()) == 2]
    want6, want4 = "[::1]:4321", "%s:4321" % DUAL_IP
    found = {}
    for h, want in ((lt6, want6), (lt4, want4)):
        r = h.cmd(cmd="get_peers", infohash=ih, wait=8, expect=want,
                  timeout=15)
        found[h.name] = r.get("peers", [])
    ok = (rc == 0 and lt6.addr in acc and lt4.addr in acc and
          want6 in found["lt6"] and want4 in found["lt4"])
    checks.report(ok, "a peer announced through the dual-stack mdht node "
                  "(`mdht announce --control`) is accepted by both "
                  "libtorrent sessions and found by both get_peers, each in "
                  "its own family (lt6 %s, lt4 %s)" % (found["lt6"],
                                                       found["lt4"]),
                  "rc=%s accepted by %s, err=%r" % (rc, acc, err.strip()))

    # 2. Peers announced to the dual-stack node alone, one per family: each
    # libtorrent session gets its family's peer from mdht's get_peers reply
    # (BEP 32: values are per family), never the other's.
    ih2 = os.urandom(20)
    n = raw_announce(["::1"], [d.ep6 or ("::1", 9)], ih2, False, port=6006)
    n += raw_announce([RAW4_IP], [d.ep], ih2, False, port=6004)
    want6, want4 = "[::1]:6006", "%s:6004" % RAW4_IP
    found = {}
    for h, want in ((lt6, want6), (lt4, want4)):
        r = h.cmd(cmd="get_peers", infohash=ih2.hex(), wait=8, expect=want,
                  timeout=15)
        found[h.name] = r.get("peers", [])
    ok = (n == 2 and found["lt6"] == [want6] and found["lt4"] == [want4])
    checks.report(ok, "an IPv6 and an IPv4 peer announced to the dual-stack "
                  "mdht node only: libtorrent on [::1] gets %s and libtorrent "
                  "on IPv4 gets %s from mdht (one family each)"
                  % (found["lt6"], found["lt4"]),
                  "%d of 2 announces accepted" % n)

    bad = []
    for e in d.snapshot():
        if e.get("event") in ("datagram_dropped", "error_sent",
                              "rate_limited", "token_rejected"):
            bad.append(json.dumps(e))
    rc = d.stop()
    checks.report(not bad and rc == 0, "the dual-stack mdht node decoded "
                  "and answered everything libtorrent sent over both "
                  "families (no drop, error, rate limit or rejected token in "
                  "its log) and exited 0 (%.1f s for the BEP 32 checks)"
                  % (time.monotonic() - t0),
                  "exit %s; %s" % (rc, "; ".join(bad[:5])))


def stats_check(binary, mdhts, control_ok, checks):
    what = ("`mdht stats` counters of every mdht node: replies received, none "
            "dropped (parse, proto, unmatched, too_big), nothing rate-limited, "
            "no token rejected, every query answered")
    if not control_ok:
        checks.report(False, what, "`mdht run --control` is not "
                      "implemented yet, so `mdht stats` cannot ask a node")
        return
    bad = []
    for n in mdhts:
        rc, out, err = mdht_cmd(binary, ["stats", "--control", n.control,
                                         "--json"], 10)
        if rc != 0:
            bad.append("%s: mdht stats rc=%s %s" % (n.name, rc, err.strip()))
            continue
        try:
            st = json.loads(out)
            qin = sum(st["queries_in"].values())
            answered = st["responses"]["out"] + st["errors"]["out"]
            drops = {k: st["dropped"][k]
                     for k in ("parse", "proto", "unmatched", "too_big")}
            rin = st["responses"]["in"]
            limited, rejected = st["rate_limited"], st["tokens_rejected"]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            bad.append("%s: unexpected `mdht stats --json` output (%r): %r"
                       % (n.name, e, out[:300]))
            continue
        log("%s stats: %d queries in, %d answered (%d errors), %d replies "
            "in, dropped %s, rate-limited %d, tokens rejected %d" % (
                n.name, qin, answered, st["errors"]["out"], rin, drops,
                limited, rejected))
        if qin != answered:
            bad.append("%s: %d queries in, %d responses + errors out"
                       % (n.name, qin, answered))
        if not rin:
            bad.append("%s received no reply at all" % n.name)
        for k, v in drops.items():
            if v:
                bad.append("%s: dropped.%s = %d" % (n.name, k, v))
        if limited:
            bad.append("%s: rate_limited = %d" % (n.name, limited))
        if rejected:
            bad.append("%s: tokens_rejected = %d" % (n.name, rejected))
    checks.report(not bad, what, "; ".join(bad))


if __name__ == "__main__":
    sys.exit(main())
