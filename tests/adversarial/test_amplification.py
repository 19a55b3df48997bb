"""Attack 7: the node as a reflector (amplification).

A get_peers for an info-hash with many stored peers is answered with up
to ~1,300 bytes for a ~90-byte query. An attacker who spoofs a victim's
address as the source makes the node send those bytes to the victim.

Defence: a reply byte budget per destination IP (IPv6: per /64, and per
/48 at 4x), --reply-budget, 8,000 bytes a second with a burst of twice
that; responses and errors beyond it are dropped (counted as
dropped.reply_budget). So, whatever the attack rate, a victim receives
from one node at most 16,000 + 8,000 * T bytes over T seconds.

Here an info-hash gets 100 peers (announced from 100 loopback addresses);
then, for several attack rates, an attacker sends get_peers with a
victim's address as source (its socket is bound to the victim's 127.x
address: on loopback that is what spoofing looks like) and the bytes that
arrive at the victim are counted. The same attack against a node run with
--reply-budget 0 gives the figure without the defence.

Run: python3 tests/adversarial/test_amplification.py build/mdht
"""
import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from advlib import (MdhtProcess, Sock, bdecode, bencode, check, cmd, figure,
                    run)

BUDGET = 8000          # the default --reply-budget, bytes a second
BURST = 2 * BUDGET
PEERS = 100
IH = bytes.fromhex("a1" * 20)
RATES = [5, 20, 100, 1000]   # spoofed queries a second
SECONDS = 4.0


def plant(node_addr, net):
    """PEERS announcers, each on its own address 127.<net>.x.y, announce
    IH to the node."""
    stored = 0
    for i in range(PEERS):
        s = Sock("127.%d.%d.%d" % (net, 1 + i // 200, 1 + i % 200))
        try:
            r = s.query(node_addr, "get_peers", {"info_hash": IH})
            tok = r[b"r"][b"token"]
            a = s.query(node_addr, "announce_peer",
                        {"info_hash": IH, "port": 6881, "token": tok})
            stored += a.get(b"y") == b"r"
        finally:
            s.close()
    return stored


def reply_size(node_addr, ip):
    s = Sock(ip)
    try:
        s.send(node_addr, {"t": b"zz", "y": "q", "q": "get_peers",
                           "a": {"id": s.id, "info_hash": IH}})
        end = time.time() + 3
        while time.time() < end:  # skip the node's confirmation ping
            r, _, _ = select.select([s.s], [], [], max(0, end - time.time()))
            if not r:
                break
            data = s.s.recv(65536)
            if bdecode(data).get(b"t") == b"zz":
                return len(data), data
        raise AssertionError("the probe's get_peers is not answered")
    finally:
        s.close()


def attack(node_addr, victim_ip, rate, seconds):
    """Spoofed get_peers at `rate` a second for `seconds`: returns (bytes
    sent by the attacker, bytes received at the victim)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((victim_ip, 0))
    got = [0]
    stop = threading.Event()

    def victim():  # what arrives at the victim's address
        while not stop.is_set():
            r, _, _ = select.select([s], [], [], 0.05)
            if r:
                got[0] += len(s.recv(65536))

    t = threading.Thread(target=victim, daemon=True)
    t.start()
    sent = n = 0
    nid = os.urandom(20)
    t0 = time.time()
    while time.time() - t0 < seconds and n < rate * seconds:
        due = min(int((time.time() - t0) * rate) + 1, int(rate * seconds))
        while n < due:
            q = bencode({"t": n.to_bytes(4, "big"), "y": "q", "q": "get_peers",
                         "a": {"id": nid, "info_hash": IH}})
            s.sendto(q, node_addr)
            sent += len(q)
            n += 1
        time.sleep(0.002)
    time.sleep(0.5)  # replies still on their way
    stop.set()
    t.join(2)
    s.close()
    return sent, got[0], time.time() - t0


def main(binary):
    tmp = tempfile.mkdtemp(prefix="mdht-adv-amp-")
    ctl = os.path.join(tmp, "ctl")
    node = MdhtProcess(binary, ["--bind", "127.0.10.1", "--port", "0",
                                "--no-bootstrap", "--control", ctl])
    open_node = MdhtProcess(binary, ["--bind", "127.0.10.2", "--port", "0",
                                     "--no-bootstrap", "--reply-budget", "0"])
    try:
        check(plant(node.addr, 11) == PEERS, "the info-hash has its peers")
        check(plant(open_node.addr, 13) == PEERS, "... on both nodes")
        size, _ = reply_size(node.addr, "127.0.10.50")
        figure("get_peers for the planted info-hash: a %d-byte reply" % size)
        check(size > 1000, "the reply is big (%d bytes)" % size)

        worst = 0.0
        for i, rate in enumerate(RATES):
            sent, got, elapsed = attack(node.addr, "127.0.12.%d" % (i + 1),
                                        rate, SECONDS)
            ratio = got / sent
            worst = max(worst, ratio)
            bound = BURST + BUDGET * elapsed
            figure("%d spoofed get_peers/s for %.0f s: attacker sent %d "
                   "bytes, victim received %d (%.0f B/s): %.2fx" % (
                       rate, SECONDS, sent, got, got / elapsed, ratio))
            check(got <= bound, "the victim gets at most burst + budget * T "
                  "= %d bytes (%d)" % (bound, got))
        rc, out, err = cmd(binary, ["stats", "--control", ctl, "--json"])
        check(rc == 0, "stats: %s" % err)
        dropped = json.loads(out)["dropped"]["reply_budget"]
        figure("worst amplification with the budget: %.2fx (at the lowest "
               "rate, under the budget); replies dropped for the budget: %d"
               % (worst, dropped))
        check(dropped > 0, "replies were dropped for the budget")

        sent, got, elapsed = attack(open_node.addr, "127.0.12.100", 100,
                                    SECONDS)
        figure("without the budget (--reply-budget 0), 100 spoofed "
               "get_peers/s: victim received %d bytes (%.0f B/s): %.2fx" % (
                   got, got / elapsed, got / sent))
        check(got > BURST + BUDGET * elapsed,
              "the attack would exceed the budget without it")
        check(node.alive() and open_node.alive(), "the nodes survived")
    finally:
        node.stop()
        open_node.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
