"""Attack 6: starving a good node through its own IP's rate limit.

The rate limit is per source IP. An attacker who floods the node with junk
from a good node's IP (spoofed, or from behind the same NAT) empties that
IP's bucket; if the good node's answers to the node's queries paid from
the same bucket, they would be dropped, the node would count the good node
as failing, and after 3 failures evict it from its routing table.

Answers that match one of the node's outstanding queries (32-bit random
check, exact address) pass before the limiter (src/core/node.c), so here:
a good fake node G at 127.0.9.20 joins the table; junk is flooded from
127.0.9.20 on another port at about 12x the rate limit while the node
pings G 8 times (`mdht ping --control`). Every ping must be answered (no
query times out), the flood must have been limited, and G must still be
in the table afterwards (find_node for G's id returns it). Against the
limiter-first node, 7 of 8 pings time out.

Run: python3 tests/adversarial/test_ratelimit_starvation.py build/mdht
"""
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from advlib import (MdhtProcess, Sock, check, cmd, figure, parse_nodes, run,
                    stats, udp_drops, wait_control)

NODE_IP = "127.0.9.1"
GOOD_IP = "127.0.9.20"
PROBE_IP = "127.0.9.30"
RATE = 250            # the node's default --rate-limit
BURST = 500           # ... and its default --rate-burst
FLOOD_RATE = 3000     # junk datagrams a second
FLOOD_SECONDS = 50.0  # at most; it lasts as long as the pings
FLOOD_MAX = 150000    # bound on the count, whatever the timing
PINGS = 8


def in_table(probe, node_addr, nid):
    r = probe.query(node_addr, "find_node", {"target": nid})
    nodes = parse_nodes(r[b"r"].get(b"nodes", b""))
    return any(n[0] == nid for n in nodes)


def flood(node_addr, sent, seconds, stop):
    """Junk from the good node's IP: garbage, and replies that match no
    query. Bounded in count and time. Runs in a process of its own: a
    thread would pause while G's thread answers (the GIL), and the gap
    would refill the bucket just in time for G's answer."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((GOOD_IP, 0))
    junk = [b"\x00junk" * 8, b"d1:t6:abcdef1:y1:r1:rd2:id20:" + b"x" * 20 +
            b"ee", b"i42e"]
    t0 = time.time()
    end = t0 + FLOOD_SECONDS
    n = 0
    while time.time() < end and n < FLOOD_MAX and not stop.is_set():
        due = int((time.time() - t0) * FLOOD_RATE)
        while n < min(due, FLOOD_MAX):
            s.sendto(junk[n % len(junk)], node_addr)
            n += 1
        time.sleep(0.0005)  # smooth: no gap in which tokens pile up
    sent.value = n
    seconds.value = time.time() - t0
    s.close()


def main(binary):
    tmp = tempfile.mkdtemp(prefix="mdht-adv-starve-")
    ctl = os.path.join(tmp, "ctl")
    node = MdhtProcess(binary, ["--bind", NODE_IP, "--port", "0",
                                "--no-bootstrap", "--control", ctl])
    good, probe = Sock(GOOD_IP), Sock(PROBE_IP)
    stop = multiprocessing.Event()
    try:
        wait_control(binary, ctl)
        # G queries the node, which pings G to confirm it; G answers.
        good.query(node.addr, "ping", {})
        good.serve(1.0)
        check(in_table(probe, node.addr, good.id), "G is in the table")
        before = stats(binary, ctl)
        t_before = time.monotonic()
        drops_before = udp_drops(node.addr)

        server = threading.Thread(target=good.serve,
                                  args=(FLOOD_SECONDS + 10,), daemon=True)
        server.start()
        sent = multiprocessing.Value("l", 0)
        secs = multiprocessing.Value("d", FLOOD_SECONDS)
        flooder = multiprocessing.Process(
            target=flood, args=(node.addr, sent, secs, stop), daemon=True)
        flooder.start()
        time.sleep(0.5)  # the bucket of G's IP is empty by now
        answered = 0
        mid = stats(binary, ctl)
        for _ in range(PINGS):
            rc, out, err = cmd(binary, ["ping", "%s:%d" % good.addr,
                                        "--control", ctl, "--timeout", "8"])
            answered += rc == 0 and out.split()[0] == good.id.hex()
            time.sleep(0.2)
        timeouts = stats(binary, ctl)["timeouts"] - mid["timeouts"]
        stop.set()
        flooder.join(5)
        sent, seconds = sent.value, secs.value
        after = stats(binary, ctl)
        window = time.monotonic() - t_before
        drops = udp_drops(node.addr) - drops_before
        limited = after["rate_limited"] - before["rate_limited"]
        figure("junk flood from G's IP: %d datagrams in %.1f s (%.0f/s, the "
               "limit is %d/s), %d rate-limited, %d dropped by the kernel" % (
                   sent, seconds, sent / seconds, RATE, limited, drops))
        check(sent / seconds >= 4 * RATE, "the flood is well above the "
              "rate limit")
        # What the limiter may let through: its burst, and its rate over
        # the whole window in which the node could have read the flood
        # (from the first stats to the last: the node may read the last
        # junk after the flooder has stopped). Datagrams the kernel
        # dropped never reached it.
        allowed = BURST + RATE * window
        check(limited + drops >= sent - allowed,
              "the flood was limited (%d limited + %d dropped of %d, at "
              "most %.0f let through)" % (limited, drops, sent, allowed))
        still = in_table(probe, node.addr, good.id)
        figure("G's answers to %d pings during the flood: %d counted, %d "
               "queries timed out; G %s the routing table" % (
                   PINGS, answered, timeouts, "stays in" if still else "left"))
        check(answered == PINGS, "every ping of G answered during the "
              "flood (%d of %d)" % (answered, PINGS))
        check(timeouts == 0, "no query of the node timed out during the "
              "flood (%d)" % timeouts)
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
