#!/usr/bin/python3
"""libtorrent's DHT as a benchmark target: one session, DHT only, on a
loopback address, with nothing in its way but its own code.

Run with Debian's /usr/bin/python3 (python3-libtorrent installs there):

    /usr/bin/python3 bench/lt_server.py --bind 127.0.0.1 --port 7000

Prints one JSON line {"ready": true, "id": HEX, "addr": "IP:PORT",
"version": V} once the DHT runs, then reads commands on stdin, one per
line, and answers none of them (the benchmark checks the table by
querying the node, as any client would):

    add IP PORT     add_dht_node(): libtorrent pings it, and keeps it in its
                    routing table if it answers
    quit            exit (so does end of input)

The settings are tests/interop/lt_node.py's, with two differences that
matter for a throughput benchmark: no alert categories except errors (a
dht_get_peers_alert per incoming get_peers would be work libtorrent does
for the embedding application, not for the network), and DHT settings
that rate-limit incoming or outgoing traffic raised so that libtorrent is
measured, not its throttles.
"""
import argparse
import json
import os
import sys
import threading
import time
import warnings

import libtorrent as lt

warnings.simplefilter("ignore", DeprecationWarning)


def settings(bind, port):
    return {
        "listen_interfaces": "%s:%d" % (bind, port),
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        # No router outside the closed network; nodes come from add.
        "dht_bootstrap_nodes": "",
        # All fake nodes are in 127.0.0.0/8: one node per /24 (the
        # default) would keep only a few of them.
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        # The DoS blocker bans an IP after dht_block_ratelimit (5/s)
        # messages: the load generator's 8 sources send thousands per
        # second each. The benchmark measures mdht with --rate-limit 0, so
        # libtorrent gets its limiter out of the way too.
        "dht_block_ratelimit": 1000000000,
        # 8,000 B/s of DHT upload by default; 0 is not "unlimited" in
        # 2.0.8, so a rate no benchmark reaches (1 GB/s).
        "dht_upload_rate_limit": 1000000000,
        # BEP 42 checks would make libtorrent ignore loopback node ids.
        "dht_enforce_node_id": False,
        "dht_prefer_verified_node_ids": False,
        "dht_ignore_dark_internet": False,
        "alert_mask": lt.alert.category_t.error_notification,
    }


def own_id(ses):
    # session.dht_state() is deprecated but is the one binding that gives
    # the node id (20 bytes, then libtorrent appends the IP).
    st = ses.dht_state()
    nid = st.get(b"node-id") if isinstance(st, dict) else None
    if isinstance(nid, list):
        nid = nid[0] if nid else None
    if nid and len(nid) >= 20:
        return bytes(nid[:20])
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--max-seconds", type=float, default=600,
                    help="exit after this long whatever happens")
    a = ap.parse_args()

    ses = lt.session(settings(a.bind, a.port))
    deadline = time.monotonic() + 10
    nid = None
    while time.monotonic() < deadline:
        if ses.is_dht_running():
            nid = own_id(ses)
            if nid:
                break
        time.sleep(0.05)
    if not nid:
        print(json.dumps({"ready": False,
                          "error": "libtorrent DHT did not start"}),
              flush=True)
        os._exit(1)
    print(json.dumps({"ready": True, "id": nid.hex(),
                      "addr": "%s:%d" % (a.bind, a.port),
                      "version": lt.__version__}), flush=True)

    done = threading.Event()

    def read_stdin():
        for line in sys.stdin:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "quit":
                break
            if parts[0] == "add" and len(parts) == 3:
                ses.add_dht_node((parts[1], int(parts[2])))
        done.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    end = time.monotonic() + a.max_seconds
    # Alerts are popped so that the queue never fills; with only the
    # error category there are next to none.
    while not done.is_set() and time.monotonic() < end:
        ses.wait_for_alert(200)
        for al in ses.pop_alerts():
            sys.stderr.write("libtorrent: %s\n" % al.message())
    sys.stdout.flush()
    os._exit(0)  # do not wait for the session's orderly shutdown


if __name__ == "__main__":
    main()
