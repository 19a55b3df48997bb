"""Attack 9: a local user prepares the node's state directory.

Another user of the machine pre-creates the state directory (0777, or
owned by them), or puts a symbolic link where the directory or the state
file will be, or leaves the state file group-writable, and plants a state
file naming their own id and nodes. A node that loaded it would run with
the attacker's id and routing table. Each case must be refused before the
node starts: exit 2, one line on stderr starting with "mdht: ", and the
planted id never used. A proper directory still works.

Needs root (to give files to uid 65534); fails loudly otherwise.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time

from advlib import check, figure, run

PLANTED = "66" * 20


def plant(binary, tmp, ip):
    """A valid state file with the id PLANTED: made by a real node run with
    --id, stopped cleanly (it saves on SIGTERM)."""
    src = os.path.join(tmp, "source")
    p = subprocess.Popen([binary, "run", "--state", src, "--id", PLANTED,
                          "--bind", ip, "--port", "0", "--no-bootstrap",
                          "--log-level", "warn"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    time.sleep(0.5)
    p.terminate()
    p.wait(timeout=10)
    path = os.path.join(src, "state")
    check(os.path.isfile(path), "a planted state file was made")
    with open(path, "rb") as f:
        return f.read()


def start(binary, state, ip):
    """Runs a node on `state` for a moment; returns (exit status or None
    while running, stderr, the id it logged)."""
    p = subprocess.Popen([binary, "run", "--state", state, "--bind", ip,
                          "--port", "0", "--no-bootstrap"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        rc = p.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        rc = None
        p.terminate()
        p.wait(timeout=10)
    err = p.stderr.read()
    m = re.search(r"id=([0-9a-f]{40})", err)
    return rc, err, m.group(1) if m else None


def write(path, data, mode=0o600):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def main(binary):
    check(os.geteuid() == 0,
          "this test needs root (it gives files to uid 65534); run it as root")
    tmp = tempfile.mkdtemp(prefix="mdht-adv-state-")
    os.chmod(tmp, 0o700)
    try:
        data = plant(binary, tmp, "127.0.9.1")
        cases = []

        d = os.path.join(tmp, "world")          # 0777, planted file
        os.mkdir(d)
        os.chmod(d, 0o777)
        write(os.path.join(d, "state"), data)
        cases.append(("a 0777 directory", d, "writable by group or others"))

        d = os.path.join(tmp, "foreign")        # another user's directory
        os.mkdir(d, 0o700)
        write(os.path.join(d, "state"), data)
        os.chown(os.path.join(d, "state"), 65534, 65534)
        os.chown(d, 65534, 65534)
        cases.append(("a directory of uid 65534", d, "owned by uid 65534"))

        real = os.path.join(tmp, "real")        # symlinked directory
        os.mkdir(real, 0o700)
        write(os.path.join(real, "state"), data)
        d = os.path.join(tmp, "link")
        os.symlink(real, d)
        cases.append(("a symlinked directory", d, "is a symbolic link"))

        d = os.path.join(tmp, "filelink")       # symlinked state file
        os.mkdir(d, 0o700)
        write(os.path.join(tmp, "elsewhere"), data)
        os.symlink(os.path.join(tmp, "elsewhere"), os.path.join(d, "state"))
        cases.append(("a symlinked state file", d, "is a symbolic link"))

        d = os.path.join(tmp, "groupw")         # group-writable state file
        os.mkdir(d, 0o700)
        write(os.path.join(d, "state"), data, 0o660)
        cases.append(("a group-writable state file", d,
                      "writable by group or others"))

        d = os.path.join(tmp, "foreignfile")    # state file of another uid
        os.mkdir(d, 0o700)
        write(os.path.join(d, "state"), data)
        os.chown(os.path.join(d, "state"), 65534, 65534)
        cases.append(("a state file of uid 65534", d, "owned by uid 65534"))

        refused = 0
        for i, (what, d, why) in enumerate(cases):
            rc, err, used = start(binary, d, "127.0.9.%d" % (10 + i))
            lines = err.splitlines()
            figure("%s: exit %s, stderr %r" % (what, rc, err.strip()))
            check(rc == 2, "%s: exit 2, not %r" % (what, rc))
            check(len(lines) == 1 and lines[0].startswith("mdht: ") and
                  why in lines[0] and "refused" in lines[0],
                  "%s: one 'mdht: ... refused' line: %r" % (what, err))
            check(used is None and PLANTED not in err,
                  "%s: the planted id was not used" % what)
            refused += 1
        # Nothing was moved or rewritten in the refused places.
        check(os.path.islink(os.path.join(tmp, "filelink", "state")),
              "the symlinked state file is left as it was")
        check(open(os.path.join(real, "state"), "rb").read() == data,
              "the file behind the symlinked directory is untouched")
        figure("%d of %d planted states refused, planted id used 0 times"
               % (refused, len(cases)))

        # A proper directory, the same planted bytes: loaded (the user's
        # own file is trusted), and a directory mdht creates is 0700.
        d = os.path.join(tmp, "own")
        os.mkdir(d, 0o700)
        write(os.path.join(d, "state"), data)
        rc, err, used = start(binary, d, "127.0.9.30")
        check(rc is None and used == PLANTED,
              "a proper directory works and its state loads: %r %r" % (rc, err))
        d = os.path.join(tmp, "fresh", "sub")
        rc, err, used = start(binary, d, "127.0.9.31")
        check(rc is None, "a missing directory is created: %r" % err)
        mode = os.stat(d).st_mode & 0o777
        check(mode == 0o700, "created 0700, not %o" % mode)
        check(os.stat(os.path.join(d, "state")).st_mode & 0o777 == 0o600,
              "the state file it wrote is 0600")
        figure("proper directory: runs with its saved id; new directory "
               "mode %o" % mode)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
