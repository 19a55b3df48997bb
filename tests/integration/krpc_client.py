"""A small KRPC toolkit for black-box tests of mdht: bencode, sockets on
distinct loopback addresses, and a helper that starts `mdht run`.

Written for the tests only; it trusts nothing it receives (a decode error
is an assertion failure in the test, not a crash of the helper).
"""
import os
import re
import select
import signal
import socket
import subprocess
import time

# Hermetic when run by hand too (CMake unsets them for ctest): a node of the
# developer's on the default control socket must not answer the tests'
# client commands, nor the tests' nodes take that socket.
for _var in ("XDG_RUNTIME_DIR", "MDHT_CONTROL"):
    os.environ.pop(_var, None)


def bencode(x):
    if isinstance(x, bool):
        raise TypeError("bool is not bencode")
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, (bytes, bytearray)):
        return b"%d:%s" % (len(x), bytes(x))
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
        if c == b"l":
            i += 1
            out = []
            while b[i:i + 1] != b"e":
                v, i = dec(i)
                out.append(v)
            return out, i + 1
        if c == b"d":
            i += 1
            out = {}
            while b[i:i + 1] != b"e":
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
    return v


def compact_addr(ip, port):
    return socket.inet_aton(ip) + port.to_bytes(2, "big")


def parse_nodes(blob):
    assert len(blob) % 26 == 0, "nodes length %d not a multiple of 26" % len(blob)
    out = []
    for i in range(0, len(blob), 26):
        nid = blob[i:i + 20]
        ip = socket.inet_ntoa(blob[i + 20:i + 24])
        port = int.from_bytes(blob[i + 24:i + 26], "big")
        out.append((nid, ip, port))
    return out


def parse_peer(b):
    assert len(b) == 6, "peer of %d bytes" % len(b)
    return socket.inet_ntoa(b[:4]), int.from_bytes(b[4:], "big")


def flip_bit(nid, bit):
    b = bytearray(nid)
    b[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(b)


def id_at_depth(node_id, depth, rnd):
    """An id sharing exactly `depth` leading bits with node_id: fake nodes
    spread over depths fit their buckets, so tests know the whole table."""
    x = bytearray(flip_bit(node_id, depth))
    for bit in range(depth + 1, 160):
        if rnd.random() < 0.5:
            x[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(x)


def xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


class Sock:
    """One UDP socket on its own loopback address: one fake DHT node."""

    def __init__(self, ip="127.0.0.1", nid=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((ip, 0))
        self.addr = self.s.getsockname()
        self.id = nid if nid is not None else os.urandom(20)
        self._t = 0

    def tid(self):
        self._t += 1
        return self._t.to_bytes(2, "big")

    def send(self, to, msg):
        self.s.sendto(msg if isinstance(msg, bytes) else bencode(msg), to)

    def query(self, to, q, args, extra=None, timeout=3.0, raw_answer=False):
        t = self.tid()
        a = {"id": self.id}
        a.update(args)
        m = {"t": t, "y": "q", "q": q, "a": a}
        if extra:
            m.update(extra)
        self.send(to, m)
        return self.wait_reply(t, timeout)

    def wait_reply(self, t, timeout=3.0):
        end = time.time() + timeout
        while time.time() < end:
            r, _, _ = select.select([self.s], [], [], max(0, end - time.time()))
            if not r:
                break
            data, frm = self.s.recvfrom(65536)
            m = bdecode(data)
            if m.get(b"y") == b"q":
                self.answer(frm, m)
                continue
            if m.get(b"t") == t:
                return m
        raise AssertionError("no reply to transaction %r" % t)

    def answer(self, frm, m):
        """Answers pings (and any other query) as a minimal node."""
        self.send(frm, {"t": m[b"t"], "y": "r", "r": {"id": self.id}})

    def serve(self, seconds):
        """Answers whatever queries arrive for `seconds`."""
        end = time.time() + seconds
        while time.time() < end:
            r, _, _ = select.select([self.s], [], [], max(0, end - time.time()))
            if not r:
                return
            data, frm = self.s.recvfrom(65536)
            try:
                m = bdecode(data)
            except Exception:
                continue
            if m.get(b"y") == b"q":
                self.answer(frm, m)

    def close(self):
        self.s.close()


def serve_all(socks, seconds, done=None):
    """Answers queries on many sockets at once, for `seconds` or until
    done() is true (looked at every 50 ms)."""
    end = time.time() + seconds
    by_fd = {s.s.fileno(): s for s in socks}
    while time.time() < end and not (done and done()):
        wait = max(0, end - time.time())
        r, _, _ = select.select(list(by_fd), [], [],
                                min(wait, 0.05) if done else wait)
        for fd in r:
            s = by_fd[fd]
            data, frm = s.s.recvfrom(65536)
            try:
                m = bdecode(data)
            except Exception:
                continue
            if m.get(b"y") == b"q":
                s.answer(frm, m)


LISTEN_RE = re.compile(r"listening on (\S+):(\d+) id=([0-9a-fA-F]{40})")


class MdhtProcess:
    """`mdht run` in the background; reads its listening line."""

    def __init__(self, binary, args, timeout=10.0):
        # Tests keep no state unless they ask: nodes must not share (and
        # lock) the user's default state directory.
        if "--state" not in args and "--no-state" not in args:
            args = args + ["--no-state"]
        self.p = subprocess.Popen([binary, "run"] + args,
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        end = time.time() + timeout
        self.lines = []
        while time.time() < end:
            line = self.p.stderr.readline().decode(errors="replace")
            if not line:
                raise AssertionError("mdht exited early: %r" % self.lines)
            self.lines.append(line)
            m = LISTEN_RE.search(line)
            if m:
                self.addr = (m.group(1), int(m.group(2)))
                self.id = bytes.fromhex(m.group(3))
                break
        else:
            raise AssertionError("mdht did not say where it listens")
        # Keep draining stderr so that logging never blocks the node.
        import threading
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.p.stderr:
            self.lines.append(line.decode(errors="replace"))

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=10.0):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError("mdht did not exit on SIGTERM")
