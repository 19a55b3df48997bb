"""Attack 6: starving a good node through its own IP's rate limit.

The rate limit is per source IP. An attacker who floods the node with junk
from a good node's IP (spoofed, or from behind the same NAT) empties that
IP's bucket; if the good node's answers to the node's queries paid from
the same bucket, they would be dropped, the node would count the good node
as failing, and after 3 failures evict it from its routing table.

Answers that match one of the node's outstanding queries (32-bit random
check, exact address) pass before the limiter (src/core/node.c), so here:
a good fake node G at 127.0.9.20 joins the table; junk is flooded from
127.0.9.20 on another port at about 12x the rate limit for 4 s; meanwhile
the node pings G 5 times (`mdht ping --control`). Every ping must be
answered, the flood must have been limited, and G must still be in the
table afterwards (find_node for G's id returns it).

Run: python3 tests/adversarial/test_ratelimit_starvation.py build/mdht
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from advlib import MdhtProcess, Sock, check, figure, parse_nodes, run

NODE_IP = "127.0.9.1"
GOOD_IP = "127.0.9.20"
PROBE_IP = "127.0.9.30"
RATE = 250            # the node's default --rate-limit
FLOOD_RATE = 3000     # junk datagrams a second
FLOOD_SECONDS = 4.0
FLOOD_MAX = 12000     # bound on the count, whatever the timing
PINGS = 5


def cmd(binary, args, timeout=20):
    p = subprocess.run([binary] + args, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def stats(binary, ctl):
    rc, out, err = cmd(binary, ["stats", "--control", ctl, "--json"])
    check(rc == 0, "mdht stats: %s" % err)
    return json.loads(out)


def wait_control(binary, ctl):
    end = time.time() + 10
    while time.time() < end:
        if os.path.exists(ctl) and cmd(binary, ["stats", "--control", ctl])[0] == 0:
            return
        time.sleep(0.05)
    raise AssertionError("control socket never answered")


def in_table(probe, node_addr, nid):
    r = probe.query(node_addr, "find_node", {"target": nid})
    nodes = parse_nodes(r[b"r"].get(b"nodes", b""))
    return any(n[0] == nid for n in nodes)


def flood(sent, stop):
    """Junk from the good node's IP: garbage, and replies that match no
    query. Bounded in count and time."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((GOOD_IP, 0))
    junk = [b"\x00junk" * 8, b"d1:t6:abcdef1:y1:r1:rd2:id20:" + b"x" * 20 +
            b"ee", b"i42e"]
    t0 = time.time()
    end = t0 + FLOOD_SECONDS
    while time.time() < end and sent[0] < FLOOD_MAX and not stop.is_set():
        due = int((time.time() - t0) * FLOOD_RATE)
        while sent[0] < min(due, FLOOD_MAX):
            s.sendto(junk[sent[0] % len(junk)], NODE_ADDR)
            sent[0] += 1
        time.sleep(0.002)
    sent.append(time.time() - t0)
    s.close()


def main(binary):
    global NODE_ADDR
    tmp = tempfile.mkdtemp(prefix="mdht-adv-starve-")
    ctl = os.path.join(tmp, "ctl")
    node = MdhtProcess(binary, ["--bind", NODE_IP, "--port", "0",
                                "--no-bootstrap", "--control", ctl])
    NODE_ADDR = node.addr
    good, probe = Sock(GOOD_IP), Sock(PROBE_IP)
    stop = threading.Event()
    try:
        wait_control(binary, ctl)
        # G queries the node, which pings G to confirm it; G answers.
        good.query(node.addr, "ping", {})
        good.serve(1.0)
        check(in_table(probe, node.addr, good.id), "G is in the table")
        before = stats(binary, ctl)

        server = threading.Thread(target=good.serve,
                                  args=(FLOOD_SECONDS + 25,), daemon=True)
        server.start()
        sent = [0]
        flooder = threading.Thread(target=flood, args=(sent, stop),
                                   daemon=True)
        flooder.start()
        time.sleep(0.5)  # the bucket of G's IP is empty by now
        answered = 0
        for _ in range(PINGS):
            rc, out, err = cmd(binary, ["ping", "%s:%d" % good.addr,
                                        "--control", ctl, "--timeout", "8"])
            answered += rc == 0 and out.split()[0] == good.id.hex()
            time.sleep(0.3)
        flooder.join(FLOOD_SECONDS + 5)
        stop.set()
        after = stats(binary, ctl)
        limited = after["rate_limited"] - before["rate_limited"]
        seconds = sent[1] if len(sent) > 1 else FLOOD_SECONDS
        figure("junk flood from G's IP: %d datagrams in %.1f s (%.0f/s, the "
               "limit is %d/s), %d rate-limited" % (
                   sent[0], seconds, sent[0] / seconds, RATE, limited))
        check(sent[0] / seconds >= 4 * RATE, "the flood is well above the "
              "rate limit")
        check(limited >= sent[0] - 2 * RATE - RATE * seconds,
              "the flood was limited (%d of %d)" % (limited, sent[0]))
        still = in_table(probe, node.addr, good.id)
        figure("G's answers to %d pings during the flood: %d counted; G "
               "%s the routing table" % (PINGS, answered,
                                         "stays in" if still else "left"))
        check(answered == PINGS, "every ping of G answered during the "
              "flood (%d of %d)" % (answered, PINGS))
        check(still, "G is still in the routing table")
        check(node.alive(), "the node survived")
    finally:
        stop.set()
        good.close()
        probe.close()
        node.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(main)
