#!/usr/bin/env python3
"""Service notification, black-box: this test stands in for systemd.

It binds an AF_UNIX datagram socket, starts `mdht run` with NOTIFY_SOCKET
naming it (and WATCHDOG_USEC=2000000, WATCHDOG_PID unset: the watchdog is
the child's, as sd_watchdog_enabled reads it), and checks what arrives:

1. READY=1, with a STATUS= naming the listening address, and only after
   the node printed its listening line (read from stderr once READY is
   in: the line was written before the datagram was sent);
2. WATCHDOG=1 again and again, about 1 s apart (half of 2 s);
3. a STATUS= update once a second node has joined ("1 node");
4. STOPPING=1 on SIGTERM, the last message, and exit status 0;
5. an abstract-namespace socket ("@name") works the same;
6. WATCHDOG_PID naming another process: READY but no pings.

Nodes live on 127.0.111.x; nothing leaves loopback.

Usage: test_notify.py path/to/mdht
"""
import os
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

BIN = None


class FakeSystemd:
    """The notify socket and what came in on it, with arrival times."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.msgs = []  # (time, text)

    def pump(self, seconds, until=None):
        """Receives for `seconds`, or until until(text) is true."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r, _, _ = select.select([self.s], [], [], end - time.monotonic())
            if not r:
                continue
            text = self.s.recv(4096).decode()
            self.msgs.append((time.monotonic(), text))
            if until and until(text):
                return text
        return None

    def close(self):
        self.s.close()


def start(env_extra, args):
    env = dict(os.environ)
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(k, None)
    env.update(env_extra)
    return subprocess.Popen([BIN, "run", "--no-state", "--no-bootstrap",
                             "--port", "0"] + args,
                            env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def stderr_now(p):
    """What the node wrote to stderr so far, without waiting."""
    out = b""
    os.set_blocking(p.stderr.fileno(), False)
    while True:
        try:
            chunk = os.read(p.stderr.fileno(), 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


def stop(p, fake):
    p.send_signal(signal.SIGTERM)
    stopping = fake.pump(10, lambda t: "STOPPING=1" in t)
    rc = p.wait(10)
    fake.pump(0.3)  # anything after STOPPING would show here
    return stopping, rc


def test_path_socket(tmp):
    fake = FakeSystemd(os.path.join(tmp, "notify"))
    p = start({"NOTIFY_SOCKET": os.path.join(tmp, "notify"),
               "WATCHDOG_USEC": "2000000"}, ["--bind", "127.0.111.1"])
    try:
        ready = fake.pump(10, lambda t: "READY=1" in t)
        check(ready is not None, "no READY=1 within 10 s")
        err = stderr_now(p)
        check("listening on 127.0.111.1:" in err,
              "READY=1 came before the listening line: %r" % err)
        port = err.split("listening on 127.0.111.1:")[1].split()[0]
        check("STATUS=127.0.111.1:%s, 0 nodes (0 good)" % port in ready,
              "READY's status: %r" % ready)
        # A second node joins: the table's size shows in a later STATUS=.
        q = subprocess.Popen([BIN, "run", "--no-state", "--port", "0",
                              "--bind", "127.0.111.2", "--bootstrap",
                              "127.0.111.1:" + port],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        try:
            status = fake.pump(12, lambda t: t.startswith("STATUS=")
                               and ", 1 node " in t)
        finally:
            q.terminate()
            q.wait(10)
        check(status is not None, "no STATUS= update with 1 node: %r"
              % fake.msgs)
        pings = [t for t, m in fake.msgs if m == "WATCHDOG=1"]
        check(len(pings) >= 9, "%d pings in ~10 s" % len(pings))
        # The first one comes with READY; then one every half WATCHDOG_USEC.
        gaps = [b - a for a, b in zip(pings[1:], pings[2:])]
        check(all(0.7 < g < 1.5 for g in gaps), "ping gaps %r" % gaps)
        print("path socket: READY after the listening line, %d pings, gaps "
              "%.2f-%.2f s; status %r" % (len(pings), min(gaps), max(gaps),
                                          status))
        stopping, rc = stop(p, fake)
        check(stopping == "STOPPING=1", "no STOPPING=1: %r" % fake.msgs[-3:])
        check(fake.msgs[-1][1] == "STOPPING=1",
              "after STOPPING=1: %r" % fake.msgs[-1][1])
        check(rc == 0, "exit status %d" % rc)
    finally:
        if p.poll() is None:
            p.kill()
        fake.close()


def test_abstract_socket():
    name = "mdht-test-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
    fake = FakeSystemd("\0" + name)
    p = start({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "2000000"},
              ["--bind", "127.0.111.3"])
    try:
        ready = fake.pump(10, lambda t: "READY=1" in t)
        check(ready is not None and "STATUS=127.0.111.3:" in ready,
              "abstract socket: %r" % fake.msgs)
        fake.pump(1.2)
        check(any(m == "WATCHDOG=1" for _, m in fake.msgs),
              "abstract socket: no ping")
        stopping, rc = stop(p, fake)
        check(stopping == "STOPPING=1" and rc == 0,
              "abstract socket: stop %r rc %d" % (stopping, rc))
        print("abstract socket @%s: READY, WATCHDOG, STOPPING" % name)
    finally:
        if p.poll() is None:
            p.kill()
        fake.close()


def test_watchdog_of_another_pid(tmp):
    path = os.path.join(tmp, "notify2")
    fake = FakeSystemd(path)
    # Our own pid: certainly not the child's.
    p = start({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000",
               "WATCHDOG_PID": str(os.getpid())}, ["--bind", "127.0.111.4"])
    try:
        check(fake.pump(10, lambda t: "READY=1" in t) is not None,
              "WATCHDOG_PID: no READY")
        fake.pump(1.0)
        check(not any(m == "WATCHDOG=1" for _, m in fake.msgs),
              "pings for a watchdog of another process: %r" % fake.msgs)
        stopping, rc = stop(p, fake)
        check(stopping == "STOPPING=1" and rc == 0, "WATCHDOG_PID: stop")
        print("WATCHDOG_PID of another process: READY, no pings")
    finally:
        if p.poll() is None:
            p.kill()
        fake.close()


def main():
    global BIN
    if len(sys.argv) != 2:
        sys.exit("usage: test_notify.py path/to/mdht")
    BIN = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        test_path_socket(tmp)
        test_abstract_socket()
        test_watchdog_of_another_pid(tmp)
    print("test_notify: %d checks passed" % tl.checks)


if __name__ == "__main__":
    main()
