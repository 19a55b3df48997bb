#!/usr/bin/env python3
"""`mdht run --config FILE`, black-box.

1. contrib/mdht.conf lists every flag of `mdht help run` (but --config) as
   a commented-out line, and no key that is not a flag: it cannot rot.
2. The example is accepted as it is, and with each of its option lines
   uncommented alone (the command line overriding what must not apply
   here: address, state, control socket, bootstrap).
3. Settings take effect, and the command line wins: bind and id from the
   file; --id on the command line over the file's; --bootstrap over the
   file's no-bootstrap, --no-state over the file's state.
4. A bad line is ONE line on stderr naming file and line, exit 2, and no
   node starts: unknown key, bad value, missing '=', a flag with a value,
   a key given twice, 'config' inside a config file, NUL byte, an
   overlong line; a missing file names the file.

Nodes live on 127.0.111.2x; nothing leaves loopback.

Usage: test_config.py path/to/mdht
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as tl  # noqa: E402
from testlib import check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "contrib", "mdht.conf")
BIN = None
LISTEN_RE = re.compile(r"listening on ([0-9.]+):(\d+) id=([0-9a-f]{40})")
HERE_ARGS = ["--bind", "127.0.111.20", "--port", "0", "--no-bootstrap",
             "--no-state"]


def run_flags():
    out = subprocess.run([BIN, "help", "run"], capture_output=True,
                         text=True, check=True).stdout
    flags = {}
    for line in out.splitlines():
        m = re.match(r"  --([a-z0-9-]+)( \S+)?  ", line)
        if m:
            flags[m.group(1)] = m.group(2) is not None
    check(len(flags) > 30, "help run lists %d flags" % len(flags))
    return flags


def start(args, timeout=10):
    """Runs `mdht run ARGS` until it says where it listens; returns
    (address, id), after SIGTERM and exit status 0."""
    p = subprocess.Popen([BIN, "run"] + args, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        end = time.time() + timeout
        seen = []
        while time.time() < end:
            line = p.stderr.readline()
            if not line:
                raise AssertionError("mdht %s exited: %r" % (args, seen))
            seen.append(line)
            m = LISTEN_RE.search(line)
            if m:
                break
        else:
            raise AssertionError("mdht %s did not listen" % args)
        p.send_signal(signal.SIGTERM)
        p.stderr.read()
        check(p.wait(10) == 0, "mdht %s: exit status %d" % (args, p.returncode))
        return m.group(1), m.group(3)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def refused(args):
    """Runs mdht expecting a usage error: returns its one stderr line."""
    p = subprocess.run([BIN, "run"] + args, capture_output=True, timeout=10)
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 2, "%s: exit %d, %r" % (args, p.returncode, err))
    check(err.count("\n") == 1 and err.startswith("mdht: "),
          "%s: not one line: %r" % (args, err))
    check("listening" not in err, "%s started a node" % args)
    return err.rstrip("\n")


def test_example_lists_every_flag():
    flags = run_flags()
    text = open(EXAMPLE).read()
    listed = {}
    for line in text.splitlines():
        m = re.match(r"#([a-z0-9-]+)( = .+)?$", line)
        if m:
            listed[m.group(1)] = m.group(2) is not None
    for f, takes_value in flags.items():
        if f == "config":
            continue
        check(f in listed, "contrib/mdht.conf lacks '%s'" % f)
        check(listed[f] == takes_value, "'%s': value or flag?" % f)
    for k in listed:
        check(k in flags and k != "config",
              "contrib/mdht.conf has '%s', which is no flag of run" % k)
    print("contrib/mdht.conf lists all %d options of run" % len(listed))
    return text


def test_example_accepted(text, tmp):
    start(["--config", EXAMPLE] + HERE_ARGS)
    lines = text.splitlines()
    options = [i for i, l in enumerate(lines)
               if re.match(r"#[a-z0-9-]+( = .+)?$", l)]
    path = os.path.join(tmp, "one.conf")
    override = HERE_ARGS + ["--control", os.path.join(tmp, "ctl.sock")]
    for i in options:
        one = list(lines)
        one[i] = one[i][1:]
        with open(path, "w") as f:
            f.write("\n".join(one) + "\n")
        start(["--config", path] + override)
    print("the example starts a node as is and with each of its %d option "
          "lines uncommented" % len(options))


def write(tmp, name, body):
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
        f.write(body if isinstance(body, bytes) else body.encode())
    return path


def test_effect_and_override(tmp):
    ida = "ab" * 20
    idb = "cd" * 20
    path = write(tmp, "effect.conf",
                 "# from the file\nbind = 127.0.111.21\nport = 0\n"
                 "id = %s\nno-bootstrap\nno-state = true\n" % ida)
    addr, nid = start(["--config", path])
    check(addr == "127.0.111.21" and nid == ida,
          "file settings: %s %s" % (addr, nid))
    addr, nid = start(["--config", path, "--id", idb])
    check(nid == idb, "--id on the command line lost to the file: %s" % nid)
    # Exclusive pairs: the command line's side wins over the file's.
    start(["--config", path, "--bootstrap", "127.0.111.29:6881"])
    path2 = write(tmp, "state.conf", "bind = 127.0.111.22\nport = 0\n"
                  "no-bootstrap\nstate = %s\n" % os.path.join(tmp, "st"))
    start(["--config", path2, "--no-state"])
    check(not os.path.exists(os.path.join(tmp, "st")),
          "--no-state on the command line: the file's state was used")
    start(["--config", path2])
    check(os.path.exists(os.path.join(tmp, "st", "state")),
          "state = DIR from the file was not used")
    print("file settings apply; --id, --bootstrap, --no-state override it")


def test_bad_lines(tmp):
    base = "port = 0\nno-bootstrap\n"
    cases = [
        (base + "frob = 3\n", "3: unknown option 'frob'"),
        (base + "k = 99\n",
         "3: bad value '99' for --k (want an integer from 1 to 16)"),
        (base + "port\n", "3: option 'port' needs a value ('key = value')"),
        ("bind\n", "1: option 'bind' needs a value ('key = value')"),
        ("read-only = yes\n",
         "1: option 'read-only' is a flag: give it alone, or '= true' or "
         "'= false'"),
        (base + "\n# again\nport = 1\n",
         "5: option 'port' given twice (first on line 1)"),
        ("config = other.conf\n",
         "1: 'config' cannot be set in a config file"),
        (b"port = 0\nbi\0nd = 127.0.0.1\n", "2: NUL byte in the line"),
        ("#" * 1025 + "\n", "1: line longer than 1024 bytes"),
        ("bind = 127.0.0.1 # comment\n",
         "1: bad bind address '127.0.0.1 # comment' (want a numeric IPv4 or "
         "IPv6 address)"),
    ]
    for n, (body, want) in enumerate(cases):
        path = write(tmp, "bad%d.conf" % n, body)
        err = refused(["--config", path] + HERE_ARGS)
        check(err == "mdht: %s:%s" % (path, want),
              "case %d: %r, want %r" % (n, err, want))
    missing = os.path.join(tmp, "nope.conf")
    err = refused(["--config", missing])
    check(err == "mdht: %s: cannot read: No such file or directory" % missing,
          err)
    # The command line's own errors come first, and name no file.
    err = refused(["--config", missing, "--frob"])
    check(err == "mdht: unknown option '--frob'", err)
    print("%d bad files: one line naming file and line, exit 2"
          % (len(cases) + 1))


def main():
    global BIN
    if len(sys.argv) != 2:
        sys.exit("usage: test_config.py path/to/mdht")
    BIN = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        text = test_example_lists_every_flag()
        test_example_accepted(text, tmp)
        test_effect_and_override(tmp)
        test_bad_lines(tmp)
    print("test_config: %d checks passed" % tl.checks)


if __name__ == "__main__":
    main()
