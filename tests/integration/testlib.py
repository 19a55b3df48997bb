"""What the black-box tests of mdht share beyond KRPC (krpc_client.py):
the check counter, a runner for client commands, the testnet starter,
XOR closeness, a node started with a control socket, and the re-run in a
network namespace.

Imported the same way as krpc_client (sys.path of the test's own folder);
the adversarial tests reach it through advlib.py. One copy, so that a fix
to how a test waits or reads reaches every test.
"""
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

# Hermetic when run by hand too (CMake unsets them for ctest): a node of the
# developer's on the default control socket must not answer the tests'
# client commands, nor the tests' nodes take that socket.
for _var in ("XDG_RUNTIME_DIR", "MDHT_CONTROL"):
    os.environ.pop(_var, None)

checks = 0


def check(cond, what):
    """An assertion that is counted: each test prints how many held."""
    global checks
    if not cond:
        raise AssertionError(what)
    checks += 1


def cmd(binary, args, timeout=60, env=None):
    """Runs `mdht ARGS` with no stdin; returns (exit status, stdout,
    stderr, seconds it took)."""
    t0 = time.monotonic()
    p = subprocess.run([binary] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    return (p.returncode, p.stdout.decode(), p.stderr.decode(),
            time.monotonic() - t0)


def cmd_lines(binary, args, timeout=60, env=None):
    """cmd() with stdout split into lines: (status, stdout lines, stderr)."""
    rc, out, err, _ = cmd(binary, args, timeout, env)
    return rc, out.splitlines(), err


def read_lines(proc, until, timeout):
    """Lines of proc's stdout up to and including the one starting with
    `until`, within `timeout` seconds."""
    lines, buf = [], b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            lines.append(line.decode())
            if lines[-1].startswith(until):
                return lines
    raise AssertionError("no '%s' line within %ss: %r" % (until, timeout, lines))


def start_testnet(binary, n, base, port, timeout=20, stderr=subprocess.PIPE):
    """Starts `mdht testnet`; returns (process, [[id hex, "ip:port"], ...],
    bootstrap "ip:port") once it printed its bootstrap line. The caller
    kills the process (by PID) when done."""
    proc = subprocess.Popen([binary, "testnet", "--nodes", str(n),
                             "--base-ip", base, "--port", str(port)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=stderr)
    try:
        lines = read_lines(proc, "bootstrap: ", timeout)
    except BaseException:
        stop_testnet(proc)
        raise
    return proc, [l.split() for l in lines[:-1]], lines[-1].split(" ", 1)[1]


def stop_testnet(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def closest(nodes, target, k):
    """The k of `nodes` closest to `target` by XOR, closest first. A node
    is its id in hex, or a sequence whose first item is; the target is 20
    bytes or 40 hex digits."""
    t = (int(target, 16) if isinstance(target, str)
         else int.from_bytes(target, "big"))

    def dist(n):
        return int(n if isinstance(n, str) else n[0], 16) ^ t
    return sorted(nodes, key=dist)[:k]


class CtlNode:
    """`mdht run ARGS --control SOCK` in the background, its stderr drained
    into `lines` (so that logging never blocks it). wait_up() returns once
    it answers `stats` on that socket, which also gives its id."""

    def __init__(self, binary, sock, args, name="mdht run"):
        self.binary, self.sock, self.name = binary, sock, name
        self.lines = []
        self.id = None
        self.p = subprocess.Popen(
            [binary, "run", "--control", sock] + list(args),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.p.stderr:
            self.lines.append(line.decode(errors="replace"))

    def wait_up(self, deadline=None):
        end = deadline if deadline is not None else time.time() + 10
        while time.time() < end:
            if self.p.poll() is not None:
                raise AssertionError("%s exited: %r" % (self.name, self.lines))
            if os.path.exists(self.sock):
                rc, out, _, _ = cmd(self.binary, ["stats", "--control",
                                                  self.sock, "--json"], 20)
                if rc == 0:
                    self.id = json.loads(out.splitlines()[0])["id"]
                    return self
            time.sleep(0.05)
        raise AssertionError("%s did not come up: %r" % (self.name,
                                                         self.lines))

    def wait_lines(self, pred, count, timeout=10):
        """The stderr lines for which pred holds, once there are `count` of
        them: the reader thread may not have caught up with a node that is
        already answering (a loaded machine)."""
        end = time.time() + timeout
        while True:
            got = [l for l in self.lines if pred(l)]
            if len(got) >= count or time.time() >= end:
                return got
            time.sleep(0.05)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        return self.p.wait(10)


def enter_namespace(flag_env, script, why_more=""):
    """Re-runs `script` (with this process's arguments) in a new network
    namespace, marked by flag_env=1 in its environment; returns at once
    inside it. Where no namespace can be made: a failure under CI or as
    root (there one always can be), else a skip (exit 77) saying why."""
    if os.environ.get(flag_env) == "1":
        return
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        why = ("cannot create a network namespace (unshare -n: %s)%s"
               % (probe.stderr.decode().strip(), why_more))
        if os.environ.get("CI") or os.geteuid() == 0:
            print("FAILED: " + why)
            sys.exit(1)
        print("SKIPPED (not root): " + why)
        sys.exit(77)
    env = dict(os.environ, **{flag_env: "1"})
    os.execvpe("unshare", ["unshare", "-n", sys.executable,
                           os.path.abspath(script)] + sys.argv[1:], env)


DEBIAN_PYTHON = "/usr/bin/python3"


def under_debian_python(missing):
    """For a test whose Python dependency (a python3-* package of Debian,
    scripts/deps.sh) did not import: CMake may have found another
    interpreter (pyenv, a venv), so re-run the test under Debian's; if this
    is Debian's, print `missing` and fail (never a silent skip)."""
    if os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON) \
            and os.path.exists(DEBIAN_PYTHON):
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON] + sys.argv)
    print(missing, file=sys.stderr)
    sys.exit(1)
