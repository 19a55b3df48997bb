"""The node outlives what goes wrong around it: a reader of its stderr
that goes away (SIGPIPE used to kill it, unsaved), and a FIFO left where
its state file should be (opening it used to block forever).

Usage: test_robust.py path/to/mdht
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as tl  # noqa: E402
from testlib import check  # noqa: E402
from krpc_client import Sock  # noqa: E402


def wait_exit(p, secs=10):
    try:
        return p.wait(secs)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None


def stderr_closed(binary, tmp):
    state = os.path.join(tmp, "st")
    p = subprocess.Popen([binary, "run", "--bind", "127.0.0.41", "--port",
                          "17441", "--no-bootstrap", "--state", state,
                          "--log-level", "trace"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        p.stderr.readline()  # it is up
        p.stderr.close()     # the reader goes away
        s = Sock("127.0.0.42")
        r = s.query(("127.0.0.41", 17441), "ping", {}, timeout=3)
        check(r.get(b"y") == b"r", "answers after its stderr reader left")
        check(p.poll() is None, "still running (no SIGPIPE death)")
        p.send_signal(signal.SIGTERM)
        rc = wait_exit(p)
        check(rc == 0, "exit 0 on SIGTERM, got %r" % rc)
        check(os.path.exists(os.path.join(state, "state")),
              "saved its state on the way out")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def fifo_state(binary, tmp):
    d = os.path.join(tmp, "fifo")
    os.mkdir(d, 0o700)
    os.mkfifo(os.path.join(d, "state"))
    p = subprocess.Popen([binary, "run", "--bind", "127.0.0.43", "--port",
                          "17443", "--no-bootstrap", "--state", d],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        end = time.time() + 5
        lines = []
        while time.time() < end:
            line = p.stderr.readline().decode(errors="replace")
            if not line:
                break
            lines.append(line)
            if "listening on" in line:
                break
        check(any("listening on" in l for l in lines),
              "starts despite a FIFO named state: %r" % lines)
        check(any("not a regular file" in l for l in lines),
              "says why the file was set aside: %r" % lines)
        check(os.path.exists(os.path.join(d, "state.corrupt")),
              "the FIFO is kept aside as state.corrupt")
        p.send_signal(signal.SIGTERM)
        check(wait_exit(p) == 0, "exit 0 on SIGTERM")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def stuck_node_timeout(binary, tmp):
    """A client command keeps its --timeout against a node that accepts
    nothing (stopped, backlog full): it used to block in connect()."""
    sock = os.path.join(tmp, "c.sock")
    p = subprocess.Popen([binary, "run", "--bind", "127.0.0.44", "--port",
                          "17444", "--no-bootstrap", "--no-state",
                          "--control", sock],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    held = []
    try:
        end = time.time() + 5
        while not os.path.exists(sock) and time.time() < end:
            time.sleep(0.02)
        check(os.path.exists(sock), "control socket up")
        os.kill(p.pid, signal.SIGSTOP)
        for _ in range(300):  # more than any listen backlog
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(sock)
            except (BlockingIOError, InterruptedError):
                pass
            held.append(c)
        t0 = time.time()
        try:
            r = subprocess.run([binary, "stats", "--control", sock,
                                "--timeout", "1"], capture_output=True,
                               timeout=15)
            rc, err = r.returncode, r.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired:
            rc, err = None, "hung"
        took = time.time() - t0
        check(rc == 2, "exit 2 from a stuck node, got %r (%s)" % (rc, err))
        check(took < 5, "within its --timeout 1 (took %.1f s)" % took)
        check(err.count("\n") == 1, "one line on stderr: %r" % err)
    finally:
        for c in held:
            c.close()
        os.kill(p.pid, signal.SIGCONT)
        p.send_signal(signal.SIGTERM)
        if wait_exit(p) is None:
            raise AssertionError("node did not stop")


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        stderr_closed(binary, tmp)
        fifo_state(binary, tmp)
        stuck_node_timeout(binary, tmp)
    print("test_robust: %d passed, 0 failed" % tl.checks)


if __name__ == "__main__":
    main()
