#!/usr/bin/env python3
"""`mdht run --metrics ADDR:PORT`, black-box: after lookups through the
control socket, GET /metrics parses with a real Prometheus text parser
(Debian's python3-prometheus-client) and shows non-zero query and lookup
counters, histograms whose buckets are cumulative and agree with _count and
_sum, the node's id and version; HEAD, 404, 405, idle connections that are
bounded and timed out, a busy port and a bad address (one line, exit 2),
and an IPv6 listener.

Four nodes on 127.0.111.x, bootstrapped from the first; nothing leaves
loopback (the IPv6 listener is ::1).

Usage: test_metrics.py path/to/mdht
"""
import json
import os
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as tl  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # Never a silent skip: the parser is what this test is about.
    tl.under_debian_python("FAIL: python3-prometheus-client is missing "
                           "(scripts/deps.sh)")

BIN = None
PORT = 17991          # UDP, one per 127.0.111.x address
MPORT = 19100         # TCP metrics port on 127.0.111.1
V6PORT = 19111        # TCP metrics port on ::1
CTYPE = "text/plain; version=0.0.4; charset=utf-8"
IH = "0123456789abcdef0123456789abcdef01234567"


T0 = time.time()


def check(cond, what):
    if os.environ.get("MDHT_TEST_VERBOSE"):
        print("%6.1f %s" % (time.time() - T0, what.split(":")[0]))
    tl.check(cond, what)


def mdht(*args, timeout=30):
    return tl.cmd_lines(BIN, args, timeout)


class Node(tl.CtlNode):
    def __init__(self, ip, sock, args):
        self.addr = "%s:%d" % (ip, PORT)
        super().__init__(BIN, sock, ["--no-state", "--bind", ip, "--port",
                                     str(PORT), "--log-level", "info"] + args)
        self.wait_up()


def stats(sock):
    rc, out, err = mdht("stats", "--control", sock, "--json")
    check(rc == 0, "stats: %d %s" % (rc, err))
    return json.loads(out[0])


def http(url, method="GET", data=None):
    """Returns (status, headers, body)."""
    req = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def scrape(url):
    """Fetches and parses the page: {family name: family}."""
    status, headers, body = http(url)
    check(status == 200, "GET %s: %d" % (url, status))
    check(headers["Content-Type"] == CTYPE,
          "Content-Type %r" % headers["Content-Type"])
    text = body.decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    check(len(fams) == 24, "24 families, got %d: %s" % (len(fams),
                                                        sorted(fams)))
    return fams


def value(fams, family, sample, **labels):
    for s in fams[family].samples:
        if s.name == sample and all(s.labels.get(k) == v
                                    for k, v in labels.items()):
            return s.value
    raise AssertionError("no sample %s%r" % (sample, labels))


def check_histogram(fam, bounds):
    """Cumulative buckets in `bounds` order then +Inf; +Inf == _count; the
    sum lies between what the buckets' edges allow."""
    check(fam.type == "histogram", "%s is a histogram" % fam.name)
    buckets = [(s.labels["le"], s.value) for s in fam.samples
               if s.name == fam.name + "_bucket"]
    les = [b[0] for b in buckets]
    check([float(x) for x in les[:-1]] == bounds and les[-1] == "+Inf",
          "%s bounds %r" % (fam.name, les))
    counts = [b[1] for b in buckets]
    check(all(a <= b for a, b in zip(counts, counts[1:])),
          "%s buckets not monotonic: %r" % (fam.name, counts))
    count = [s.value for s in fam.samples if s.name == fam.name + "_count"][0]
    total = [s.value for s in fam.samples if s.name == fam.name + "_sum"][0]
    check(counts[-1] == count, "%s: +Inf %r != _count %r" %
          (fam.name, counts[-1], count))
    lo = hi = 0.0
    prev_c, prev_b = 0, 0.0
    for b, c in zip(bounds, counts):
        lo += (c - prev_c) * prev_b
        hi += (c - prev_c) * b
        prev_c, prev_b = c, b
    lo += (count - prev_c) * prev_b
    check(lo - 1e-6 <= total, "%s: _sum %r below %r" % (fam.name, total, lo))
    if count == prev_c:  # nothing above the last bound: bounded above too
        check(total <= hi + 1e-6, "%s: _sum %r above %r" % (fam.name, total,
                                                           hi))
    return count, total


def one_error_line(err, start, what):
    lines = err.splitlines()
    check(len(lines) == 1 and lines[0].startswith(start),
          "%s: want one line starting %r, got %r" % (what, start, err))


def main():
    global BIN
    BIN = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="mdht-metrics-")
    url = "http://127.0.111.1:%d/metrics" % MPORT
    nodes = []
    try:
        socks = [os.path.join(tmp, "n%d.sock" % i) for i in range(4)]
        first = Node("127.0.111.1", socks[0],
                     ["--no-bootstrap", "--metrics", "127.0.111.1:%d" % MPORT])
        nodes.append(first)
        check(any("metrics on http://127.0.111.1:%d/metrics" % MPORT in l
                  for l in first.lines), "says where: %r" % first.lines)
        for i in range(1, 4):
            nodes.append(Node("127.0.111.%d" % (i + 1), socks[i],
                              ["--bootstrap", first.addr]))
        end = time.time() + 20
        while time.time() < end:
            if all(stats(s)["nodes"]["total"] >= 3 for s in socks):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("tables did not fill")

        # Before any lookup of ours: the page parses, histograms are sane.
        fams = scrape(url)
        before = value(fams, "mdht_lookups", "mdht_lookups_total",
                       method="get_peers", result="ok")

        # Lookups through the control socket of the node we scrape.
        rc, out, err = mdht("announce", IH, "--port", "6999", "--control",
                            socks[1])
        check(rc == 0, "announce: %d %s" % (rc, err))
        rc, out, err = mdht("get-peers", IH, "--control", socks[0])
        check(rc == 0 and "127.0.111.2:6999" in out,
              "get-peers: %d %r %s" % (rc, out, err))
        rc, out, err = mdht("find-node", nodes[3].id, "--control", socks[0])
        check(rc == 0, "find-node: %d %s" % (rc, err))

        fams = scrape(url)
        s = stats(socks[0])
        info = fams["mdht_info"].samples[0]
        check(info.labels["node_id"] == first.id and info.value == 1,
              "mdht_info: %r" % (info,))
        rc, out, _ = mdht("--version")
        check(out[0] == "mdht " + info.labels["version"],
              "version label %r vs %r" % (info.labels, out))
        start = value(fams, "mdht_start_time_seconds", "mdht_start_time_seconds")
        check(abs(start - (time.time() - s["uptime_s"])) < 5,
              "start time %r, uptime %r" % (start, s["uptime_s"]))

        gp = value(fams, "mdht_lookups", "mdht_lookups_total",
                   method="get_peers", result="ok")
        fnd = value(fams, "mdht_lookups", "mdht_lookups_total",
                    method="find_node", result="ok")
        check(gp >= before + 1 and fnd >= 1,
              "lookup counters: get_peers %r (before %r), find_node %r" %
              (gp, before, fnd))
        sent = {m: value(fams, "mdht_queries_sent", "mdht_queries_sent_total",
                         method=m) for m in ("ping", "find_node", "get_peers")}
        check(sent["get_peers"] >= 1 and sent["find_node"] >= 1,
              "queries sent: %r" % sent)
        received = sum(x.value for x in fams["mdht_queries_received"].samples)
        check(received >= 3, "queries received: %r" % received)
        # The same numbers as `stats` (taken after the page: at least).
        check(s["queries_out"]["get_peers"] >= sent["get_peers"] and
              s["packets"]["in"] >= value(fams, "mdht_datagrams_received",
                                          "mdht_datagrams_received_total") > 0,
              "stats vs page: %r" % s)
        rn = fams["mdht_routing_nodes"].samples
        check(sorted(x.labels["state"] for x in rn) ==
              ["bad", "good", "questionable"], "states %r" % rn)
        check(sum(x.value for x in rn) == s["nodes"]["total"] >= 3,
              "routing nodes %r vs %r" % (rn, s["nodes"]))
        check(value(fams, "mdht_routing_buckets", "mdht_routing_buckets") ==
              s["nodes"]["buckets"], "buckets")
        check(fams["mdht_datagrams_dropped"].type == "counter" and
              len(fams["mdht_datagrams_dropped"].samples) == 9, "drop reasons")
        check(fams["mdht_lookups_running"].type == "gauge", "running: gauge")

        n, total = check_histogram(fams["mdht_lookup_duration_seconds"],
                                   [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20,
                                    30])
        # (Loopback lookups may take under 1 ms: a sum of 0 is right.)
        check(n >= gp + fnd and total >= 0, "lookup histogram: %r %r" %
              (n, total))
        n_lookups = n
        n, total = check_histogram(fams["mdht_reply_rtt_seconds"],
                                   [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                    1, 2.5, 5])
        check(n >= 3, "rtt histogram count %r" % n)

        # Counters only grow.
        rc, _, err = mdht("find-node", nodes[2].id, "--control", socks[0])
        check(rc == 0, "find-node again: %s" % err)
        again = scrape(url)
        check(value(again, "mdht_lookups", "mdht_lookups_total",
                    method="find_node", result="ok") == fnd + 1,
              "find_node lookups +1")
        n_after, _ = check_histogram(again["mdht_lookup_duration_seconds"],
                                     [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20,
                                      30])
        check(n_after >= n_lookups + 1, "lookup histogram grew: %r -> %r" %
              (n_lookups, n_after))

        # HEAD: the headers, no body. A query string is not a path.
        status, headers, body = http(url, "HEAD")
        check(status == 200 and body == b"" and headers["Content-Type"] ==
              CTYPE, "HEAD: %d %r" % (status, body))
        check(http(url + "?x=1")[0] == 200, "query string")
        # Other paths: 404. Other methods: 405 with Allow.
        for path in ("/", "/metric", "/metrics/", "/metricsx", "/../metrics"):
            st, _, _ = http(url.replace("/metrics", path))
            check(st == 404, "GET %s: %d" % (path, st))
        for m, data in (("POST", b"x=1"), ("PUT", b"y"), ("DELETE", None),
                        ("OPTIONS", None)):
            st, headers, _ = http(url, m, data)
            check(st == 405 and headers["Allow"] == "GET, HEAD",
                  "%s: %d %r" % (m, st, headers["Allow"]))

        # Idle connections: MHD holds 16 (MDHT_METRICS_MAX_CONNS) and
        # closes each after 10 s idle; the others wait in the kernel's
        # backlog for a free slot, then get the same: about 20 s for the
        # last. The bound leaves room for a loaded machine (ctest -j2
        # beside other node tests). The node goes on.
        idle = []
        for _ in range(20):
            c = socket.socket()
            c.settimeout(45)
            c.connect(("127.0.111.1", MPORT))
            idle.append(c)
        rc, out, err = mdht("ping", nodes[1].addr, "--control", socks[0])
        check(rc == 0, "ping while 20 idle HTTP connections: %s" % err)
        t0 = time.time()
        closed = 0
        for c in idle:
            try:
                closed += c.recv(1) == b""
            except (ConnectionResetError, socket.timeout):
                pass
            c.close()
        took = time.time() - t0
        check(closed == len(idle) and 8 < took < 40,
              "idle connections closed: %d of %d in %.1f s" %
              (closed, len(idle), took))
        check(len(scrape(url)) == 24, "serves again after the idle ones")

        # A busy port, a bad address: one line, exit 2, before the node.
        rc, out, err = mdht("run", "--no-state", "--no-bootstrap", "--bind",
                            "127.0.111.9", "--port", str(PORT), "--metrics",
                            "127.0.111.1:%d" % MPORT, timeout=10)
        check(rc == 2, "busy port: exit %d" % rc)
        check(err == "mdht: cannot serve metrics on 127.0.111.1:%d: Address "
              "already in use\n" % MPORT, "busy port: %r" % err)
        for bad in ("nope", "127.0.111.1", "127.0.111.1:0", "::1:9100",
                    "127.0.111.1:99999"):
            rc, out, err = mdht("run", "--no-state", "--no-bootstrap",
                                "--metrics", bad, timeout=10)
            check(rc == 2, "--metrics %s: exit %d" % (bad, rc))
            one_error_line(err, "mdht: bad --metrics address '%s'" % bad, bad)
        # IPv6 loopback.
        v6 = Node("127.0.111.5", os.path.join(tmp, "v6.sock"),
                  ["--no-bootstrap", "--metrics", "[::1]:%d" % V6PORT])
        nodes.append(v6)
        fams = scrape("http://[::1]:%d/metrics" % V6PORT)
        check(fams["mdht_info"].samples[0].labels["node_id"] == v6.id,
              "IPv6 listener serves its node")

        for nd in nodes:
            check(nd.stop() == 0, "clean exit")
        nodes = []
    finally:
        for nd in nodes:
            nd.p.kill()
            nd.p.wait()
    print("ok: %d checks" % tl.checks)


if __name__ == "__main__":
    main()
