"""Attack 8: forging the answer to the node's query.

An off-path attacker who knows (or guesses) that the node has asked some
node F something sends the answer itself, with F's address as source, and
has to guess the transaction id. The node's transaction ids carry 32
random bits (src/core/txn.h), and an answer counts only from the exact
address (IP and port) that was asked.

Here F is a fake node on its own loopback address; the node pings it
through `mdht ping --control`. The test checks, on the ids F sees, that at
least 32 bits of them vary at random between queries, and that forged
answers (right id from F's IP on another port, right id from another IP,
wrong ids from F itself) are not taken: the ping reports F's real id, and
every forgery is counted as unmatched (or rate-limited).

Run: python3 tests/adversarial/test_txn_forgery.py build/mdht
"""
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

from advlib import (MdhtProcess, Sock, bdecode, check, cmd, figure, run, stats,
                    wait_control)

NODE_IP = "127.0.8.1"
F_IP = "127.0.8.2"
OTHER_IP = "127.0.8.3"
SAMPLES = 64


def next_query(sock, timeout=5.0):
    """The next query that reaches `sock`: (message, source)."""
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select([sock.s], [], [], max(0, end - time.time()))
        if not r:
            break
        data, frm = sock.s.recvfrom(65536)
        m = bdecode(data)
        if m.get(b"y") == b"q":
            return m, frm
    raise AssertionError("no query reached %s:%d" % sock.addr)


def start_ping(binary, ctl):
    return subprocess.Popen([binary, "ping", "%s:%d" % F_ADDR, "--control",
                             ctl, "--timeout", "10"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def reply(t, nid):
    return {"t": t, "y": "r", "r": {"id": nid}}


def answer_until_done(p, f, tids):
    """F answers every query (the node may also ping F on its own) until
    the ping command `p` exits; returns its output."""
    end = time.time() + 15
    while p.poll() is None and time.time() < end:
        r, _, _ = select.select([f.s], [], [], 0.05)
        if r:
            data, frm = f.s.recvfrom(65536)
            m = bdecode(data)
            if m.get(b"y") == b"q":
                tids.append(m[b"t"])
                f.send(frm, reply(m[b"t"], f.id))
    out, err = p.communicate(timeout=15)
    check(p.returncode == 0, "ping of F answered: %s" % err.decode())
    return out


def sample_tids(binary, ctl, f):
    tids = []
    while len(tids) < SAMPLES:
        answer_until_done(start_ping(binary, ctl), f, tids)
    return tids


def random_bits(tids):
    """Bits set in between 1/8 and 7/8 of the samples: for 64 random
    samples, a bit falls outside by chance with odds of about 1e-8."""
    n = min(len(t) for t in tids) * 8
    good = 0
    for bit in range(n):
        ones = sum((t[bit // 8] >> (7 - bit % 8)) & 1 for t in tids)
        good += len(tids) // 8 <= ones <= len(tids) - len(tids) // 8
    return good


def forge_round(binary, ctl, f, liar_port, liar_ip):
    """One ping of F with forged answers before F's own. Returns the
    number of forgeries sent."""
    evil = b"\xee" * 20
    p = start_ping(binary, ctl)
    m, frm = next_query(f)
    t = m[b"t"]
    forged = 0
    liar_port.send(frm, reply(t, evil))  # F's IP, another port
    liar_ip.send(frm, reply(t, evil))    # another IP, right id
    forged += 2
    for bit in range(8 * len(t)):        # every one-bit-wrong id, from F
        b = bytearray(t)
        b[bit // 8] ^= 0x80 >> (bit % 8)
        f.send(frm, reply(bytes(b), evil))
        forged += 1
    for _ in range(20):                  # random ids of the same length
        f.send(frm, reply(os.urandom(len(t)), evil))
        forged += 1
    f.send(frm, reply(t[:4], evil))      # the id cut to the old 4 bytes
    forged += 1
    time.sleep(0.3)
    check(p.poll() is None, "no forged answer completed the ping")
    f.send(frm, reply(t, f.id))
    out = answer_until_done(p, f, [])
    got = out.decode().split()[0] if out.split() else ""
    check(got == f.id.hex(), "the ping reports F's id, not a forger's: %r"
          % out)
    return forged


def main(binary):
    global F_ADDR
    tmp = tempfile.mkdtemp(prefix="mdht-adv-txn-")
    ctl = os.path.join(tmp, "ctl")
    node = MdhtProcess(binary, ["--bind", NODE_IP, "--port", "0",
                                "--no-bootstrap", "--control", ctl])
    f = Sock(F_IP)
    F_ADDR = f.addr
    liar_port, liar_ip = Sock(F_IP), Sock(OTHER_IP)
    try:
        wait_control(binary, ctl)
        tids = sample_tids(binary, ctl, f)
        lens = sorted(set(len(t) for t in tids))
        varying = random_bits(tids)
        figure("%d transaction ids of the node's queries: %s bytes, %d bits "
               "vary at random, %d repeats" % (len(tids), lens, varying,
                                                len(tids) - len(set(tids))))
        check(len(set(tids)) == len(tids), "no transaction id repeats")
        check(varying >= 32, "at least 32 random bits per transaction id "
              "(%d)" % varying)

        before = stats(binary, ctl)
        forged = 0
        for _ in range(3):
            forged += forge_round(binary, ctl, f, liar_port, liar_ip)
        after = stats(binary, ctl)
        refused = ((after["dropped"]["unmatched"] -
                    before["dropped"]["unmatched"]) +
                   (after["rate_limited"] - before["rate_limited"]))
        figure("%d forged answers (right id from the wrong port or IP, "
               "wrong ids from the right address): %d refused, 0 accepted"
               % (forged, refused))
        check(refused == forged, "every forgery refused: %d of %d"
              % (refused, forged))
        check(node.alive(), "the node survived")
    finally:
        for s in (f, liar_port, liar_ip):
            s.close()
        node.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
