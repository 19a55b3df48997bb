"""Attack 10: a local user answers on the control socket's path.

Another user of the machine binds the path given to --control before the
node does (a shared /tmp), and answers the client with made-up peers, or
with terminal escape sequences that would rewrite the user's screen. The
client must refuse a listener that runs as another uid (exit 2, one line),
and must print nothing raw that came from the socket: no ESC, CR, BEL,
DEL, C1 or other control byte, in text or in --json output.

Needs root (the fake server drops to uid 65534); fails loudly otherwise.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from advlib import check, figure, run

IH = "0123456789abcdef0123456789abcdef01234567"
FAKE_PEER = b"6.6.6.6:6666"
# What a hostile answer carries: CSI sequences (clear screen, move the
# cursor, set the title through OSC), CR to overwrite a line, BEL, BS,
# DEL, an 8-bit C1 CSI (0x9b), the UTF-8 form of C1 CSI (c2 9b), and NUL
# in the middle of a line.
EVIL = (b"\x1b[2J\x1b[H\x1b]0;pwned\x07ok\rspoofed\x08\x7f\x9b31m"
        b"\xc2\x9b0m\x00end")
RAW_BAD = [b"\x1b", b"\r", b"\x07", b"\x08", b"\x7f", b"\x9b", b"\x00",
           b"\xc2"]


def fake_server(path, uid, answer, ready):
    """A child process that binds `path` (as `uid` if given), answers every
    request with `answer`, and serves until killed."""
    pid = os.fork()
    if pid:
        return pid
    try:
        if uid is not None:
            os.setgid(uid)
            os.setuid(uid)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.listen(8)
        os.write(ready, b"x")
        while True:
            c, _ = s.accept()
            c.settimeout(2)
            try:
                c.recv(2048)
                c.sendall(answer)
            except OSError:
                pass
            c.close()
    finally:
        os._exit(0)


def with_server(path, uid, answer, fn):
    r, w = os.pipe()
    pid = fake_server(path, uid, answer, w)
    try:
        os.close(w)
        check(os.read(r, 1) == b"x", "the fake server is listening")
        return fn()
    finally:
        os.close(r)
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def client(binary, *args):
    p = subprocess.run([binary] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def main(binary):
    check(os.geteuid() == 0,
          "this test needs root (the fake server runs as uid 65534); "
          "run it as root")
    tmp = tempfile.mkdtemp(prefix="mdht-adv-ctl-")
    # A shared directory, as /tmp is: anyone may create a socket in it.
    os.chmod(tmp, 0o1777)
    try:
        # 1. Another uid listens on the path: refused before sending.
        path = os.path.join(tmp, "foreign.sock")
        answer = FAKE_PEER + b"\n\x00exit 0\n"
        rc, out, err = with_server(path, 65534, answer,
                                   lambda: client(binary, "get-peers", IH,
                                                  "--control", path))
        figure("listener of uid 65534: exit %d, stdout %r, stderr %r"
               % (rc, out, err.strip()))
        check(rc == 2, "foreign listener: exit 2, not %d" % rc)
        lines = err.splitlines()
        check(len(lines) == 1 and lines[0].startswith(b"mdht: ") and
              b"uid 65534" in lines[0] and b"refused" in lines[0],
              "foreign listener: one 'mdht: ... refused' line: %r" % err)
        check(FAKE_PEER not in out and out == b"",
              "foreign listener: no fake peer printed")

        # 2. Our own uid, hostile bytes everywhere: output lines, a
        # progress line and the status message. Nothing raw comes out.
        path = os.path.join(tmp, "evil.sock")
        for json_mode in (False, True):
            line = (b'{"type":"peer","addr":"' + EVIL + b'"}' if json_mode
                    else FAKE_PEER + b" " + EVIL)
            answer = (line + b"\n\x01progress " + EVIL + b"\n" +
                      EVIL + b"\n\x00exit 1 " + EVIL + b"\n")
            args = ["get-peers", IH, "--control", path]
            if json_mode:
                args.append("--json")
            rc, out, err = with_server(path, None, answer,
                                       lambda: client(binary, *args))
            os.unlink(path)
            mode = "json" if json_mode else "text"
            raw = [b for b in RAW_BAD if b in out or b in err]
            figure("%s: hostile answer: exit %d, raw control bytes printed: "
                   "%d; stdout %r" % (mode, rc, len(raw), out))
            check(rc == 1, "%s: the status still comes through: %d"
                  % (mode, rc))
            check(not raw, "%s: no raw control byte printed: %r"
                  % (mode, raw))
            check(all(0x20 <= c < 0x7f or c == 0x0a for c in out + err),
                  "%s: only printable ASCII and LF printed" % mode)
            esc = b"\\u001b" if json_mode else b"\\x1b"
            check(out.count(esc) == 2 * 3 and err.count(b"\\x1b") == 3,
                  "%s: every ESC shown escaped" % mode)
            check(len(err.splitlines()) == 1 and err.startswith(b"mdht: "),
                  "%s: the message is one line: %r" % (mode, err))
            if json_mode:
                obj = json.loads(out.splitlines()[0])
                check(obj["addr"].startswith("\x1b[2J"),
                      "json: the escaped line is valid JSON")

        # 3. The server side. In a directory others may write without the
        # sticky bit, another user could swap the socket once the node
        # listens: the node refuses it. In a sticky shared directory (as
        # /tmp), the socket is 0600 and our own client talks to it.
        loose = os.path.join(tmp, "loose")
        os.mkdir(loose)
        os.chmod(loose, 0o777)
        p = subprocess.run([binary, "run", "--no-state", "--bind", "127.0.9.60",
                            "--port", "0", "--no-bootstrap", "--control",
                            os.path.join(loose, "s")],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30)
        figure("node on a socket in a 0777 directory: exit %d, %r"
               % (p.returncode, p.stderr.strip()))
        check(p.returncode == 2 and len(p.stderr.splitlines()) == 1 and
              b"without the sticky bit" in p.stderr,
              "0777 socket directory refused: %r" % p.stderr)
        check(not os.path.exists(os.path.join(loose, "s")),
              "no socket was created there")
        path = os.path.join(tmp, "node.sock")
        node = subprocess.Popen([binary, "run", "--no-state", "--bind",
                                 "127.0.9.61", "--port", "0",
                                 "--no-bootstrap", "--control", path],
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            rc = None
            while time.time() < deadline:
                rc, out, err = client(binary, "stats", "--control", path)
                if rc == 0:
                    break
                time.sleep(0.05)
            mode = os.stat(path).st_mode & 0o777
            figure("own node in a sticky 1777 directory: socket mode %o, "
                   "stats exit %s" % (mode, rc))
            check(mode == 0o600, "the socket is 0600, not %o" % mode)
            check(rc == 0, "our own node answers our client: %r" % err)
        finally:
            node.terminate()
            node.wait(timeout=10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
