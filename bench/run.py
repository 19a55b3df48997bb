#!/usr/bin/python3
"""The mdht benchmark: mdht against a raw UDP echo server (this machine's
ceiling) and libtorrent 2.0.8, all on loopback, measured alternately in
one run by bench_loadgen (bench/loadgen.c); then bench_core (the query
path in-process, without the kernel) and bench_memory (bytes per stored
peer and per routing entry).

    /usr/bin/python3 bench/run.py --build build-bench [--rounds 5]
        [--seconds 4] [--window 192] [--mix 1:4:4] [--json-out FILE]
        [--no-libtorrent] [--no-memory]

/usr/bin/python3 because that is where python3-libtorrent installs.

Setup, once: each server is started on 127.0.0.1 (the servers pinned to
the last CPU, the load generator and this script to the first, so that
they never compete for one core); mdht and libtorrent get a full routing
table from 152 fake nodes (8 at each depth 0..18 below their id, i.e. 19
full buckets, about what a node in the public DHT holds) on distinct
addresses 127.<net>.<depth>.<j>, which ping the server and answer its
queries for the whole run. A find_node probe checks that each server then
answers with 8 nodes. Then each round runs the load generator once
against each server, in an order that rotates, so that slow drift of the
machine falls on all of them alike. Medians over rounds are reported.

Bounded: every wait has a deadline, every loop a count; only loopback
addresses are used; the processes started here are stopped by their PID
(SIGTERM, then SIGKILL after 5 s) whatever happens.

Exit status: 0 when every measurement completed with valid replies (the
targets are reported, not enforced: these are benchmark figures, not
timed tests); 1 when a server died, a table could not be filled, or a
reply was invalid; 2 on usage errors.
"""
import argparse
import json
import os
import random
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# ------------------------------------------------------------------ bencode


def bencode(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(bencode(v) for v in x) + b"e"
    if isinstance(x, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v)
                       for k, v in x.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(type(x))


def bdecode(b):
    def dec(i, depth):
        if depth > 32:
            raise ValueError("too deep")
        c = b[i:i + 1]
        if c == b"i":
            j = b.index(b"e", i)
            return int(b[i + 1:j]), j + 1
        if c in (b"l", b"d"):
            i += 1
            items = []
            while b[i:i + 1] != b"e":
                if i >= len(b):
                    raise ValueError("truncated")
                v, i = dec(i, depth + 1)
                items.append(v)
            if c == b"l":
                return items, i + 1
            return dict(zip(items[::2], items[1::2])), i + 1
        j = b.index(b":", i)
        n = int(b[i:j])
        if j + 1 + n > len(b):
            raise ValueError("truncated string")
        return b[j + 1:j + 1 + n], j + 1 + n
    return dec(0, 0)[0]


# --------------------------------------------------------------- processes

SERVER_CPU = None  # set in main()
CLIENT_CPU = None


def pin(cpu):
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


class Proc:
    """A child process we started; stopped by PID, never by name."""

    def __init__(self, name, argv, cpu):
        self.name = name
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE,
                                  preexec_fn=pin(cpu))
        self.err = []
        threading.Thread(target=self._drain_err, daemon=True).start()

    def _drain_err(self):
        # A full stderr pipe would block the server mid-benchmark.
        for line in self.p.stderr:
            if len(self.err) < 1000:
                self.err.append(line.decode(errors="replace").rstrip())

    def read_line(self, timeout):
        """One stdout line within `timeout` seconds, or None."""
        end = time.monotonic() + timeout
        buf = b""
        fd = self.p.stdout.fileno()
        while time.monotonic() < end and not buf.endswith(b"\n"):
            r, _, _ = select.select([fd], [], [], max(0, end - time.monotonic()))
            if not r:
                break
            c = os.read(fd, 1)
            if not c:
                break
            buf += c
        return buf.decode(errors="replace").strip() if buf else None

    def cpu_seconds(self):
        """User and system CPU time of the process so far (all threads)."""
        try:
            with open("/proc/%d/stat" % self.p.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            tck = os.sysconf("SC_CLK_TCK")
            return int(fields[11]) / tck, int(fields[12]) / tck
        except (OSError, IndexError, ValueError):
            return 0.0, 0.0

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
            except OSError:
                pass
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


def free_port(ip):
    """A port free for both UDP and TCP on `ip` (libtorrent listens on
    both)."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((ip, 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind((ip, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port on %s" % ip)


# --------------------------------------------------------------- fake nodes


def id_at_depth(node_id, depth, rnd):
    """A random id sharing exactly `depth` leading bits with node_id."""
    x = bytearray(node_id)
    x[depth // 8] ^= 0x80 >> (depth % 8)
    for bit in range(depth + 1, 160):
        if rnd.random() < 0.5:
            x[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(x)


class FakeNet:
    """Fake DHT nodes that fill one server's routing table: each pings the
    server once, and every socket answers every query it gets (the
    server's confirmation pings, libtorrent's refreshes) for as long as
    the benchmark runs, so the nodes stay good."""

    def __init__(self, net, server_id, depths, rnd):
        self.socks = []
        for d in range(depths):
            for j in range(8):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.%d.%d.%d" % (net, d, j + 1), 0))
                s.setblocking(False)
                self.socks.append((s, id_at_depth(server_id, d, rnd)))
        self.stop = threading.Event()
        self.answered = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        by_fd = {s.fileno(): (s, nid) for s, nid in self.socks}
        while not self.stop.is_set():
            r, _, _ = select.select(list(by_fd), [], [], 0.2)
            for fd in r:
                s, nid = by_fd[fd]
                for _ in range(16):  # bounded drain per wakeup
                    try:
                        data, frm = s.recvfrom(65536)
                    except BlockingIOError:
                        break
                    try:
                        m = bdecode(data)
                    except (ValueError, IndexError):
                        continue
                    if not isinstance(m, dict) or m.get(b"y") != b"q":
                        continue
                    body = {"id": nid, "nodes": b""}
                    if m.get(b"q") == b"get_peers":
                        body["token"] = b"faketokn"
                    try:
                        s.sendto(bencode({"t": m.get(b"t", b""), "y": "r",
                                          "r": body}), frm)
                        self.answered += 1
                    except OSError:
                        pass

    def ping_all(self, to, add_cb=None):
        # In groups, with time to answer in between: mdht confirms at most
        # 32 newcomers at a time and leaves the rest unconfirmed.
        for i, (s, nid) in enumerate(self.socks):
            s.sendto(bencode({"t": b"pg", "y": "q", "q": "ping",
                              "a": {"id": nid}}), to)
            if add_cb:
                add_cb(s.getsockname())
            if i % 16 == 15:
                time.sleep(0.15)

    def close(self):
        self.stop.set()
        self.thread.join(2)
        for s, _ in self.socks:
            s.close()


def probe_nodes(to, timeout=10.0):
    """Sends find_node probes until one is answered with 8 nodes or the
    deadline passes; returns the largest node count seen."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.250", 0))
    best, end, n = -1, time.monotonic() + timeout, 0
    try:
        while time.monotonic() < end and best < 8:
            n += 1
            t = n.to_bytes(2, "big")
            s.sendto(bencode({"t": t, "y": "q", "q": "find_node",
                              "a": {"id": os.urandom(20),
                                    "target": os.urandom(20)}}), to)
            r, _, _ = select.select([s], [], [], 0.5)
            if r:
                data, _ = s.recvfrom(65536)
                try:
                    m = bdecode(data)
                    nodes = m[b"r"].get(b"nodes", b"")
                    best = max(best, len(nodes) // 26)
                except (ValueError, KeyError, TypeError, IndexError):
                    pass
            if best < 8:
                time.sleep(0.3)
    finally:
        s.close()
    return best


# -------------------------------------------------------------- measuring


def run_loadgen(args, target, name):
    argv = [os.path.join(args.build, "bench_loadgen"), "--target", target,
            "--duration", str(args.seconds), "--warmup", str(args.warmup),
            "--window", str(args.window), "--sources", str(args.sources),
            "--mix", args.mix, "--json",
            "--expect-nodes", "0" if name == "echo" else "8"]
    try:
        out = subprocess.run(argv, capture_output=True, timeout=args.seconds +
                             args.warmup + 30, preexec_fn=pin(CLIENT_CPU))
    except subprocess.TimeoutExpired:
        return {"error": "loadgen did not finish"}
    try:
        return json.loads(out.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "loadgen: %s" % out.stderr.decode()[-300:]}


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    global SERVER_CPU, CLIENT_CPU
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    # 192 in flight: the kernel's default receive buffer (rmem_default,
    # 208 KiB here) holds about 200 small datagrams, and mdht and the echo
    # server keep the default. A deeper window makes the servers' sockets
    # drop (RcvbufErrors), which measures a buffer size, not a server.
    ap.add_argument("--window", type=int, default=192)
    ap.add_argument("--sources", type=int, default=8)
    ap.add_argument("--mix", default="1:4:4",
                    help="ping:find_node:get_peers weights")
    ap.add_argument("--depths", type=int, default=19,
                    help="full buckets to give each table (8 nodes each)")
    ap.add_argument("--no-libtorrent", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--json-out")
    args = ap.parse_args()
    if not (1 <= args.rounds <= 20 and 0.5 <= args.seconds <= 60 and
            1 <= args.depths <= 30):
        ap.error("rounds 1..20, seconds 0.5..60, depths 1..30")
    for prog in ("bench_loadgen", "bench_echo", "mdht"):
        if not os.access(os.path.join(args.build, prog), os.X_OK):
            ap.error("%s/%s missing: build first (make bench)" %
                     (args.build, prog))

    ncpu = len(os.sched_getaffinity(0))
    cpus = sorted(os.sched_getaffinity(0))
    if ncpu >= 2:
        CLIENT_CPU, SERVER_CPU = cpus[0], cpus[-1]
        os.sched_setaffinity(0, {CLIENT_CPU})
    t_start = time.monotonic()
    # Other work on the machine skews the figures; say so up front.
    with open("/proc/loadavg") as f:
        loadavg = f.read().split()[0]
    if float(loadavg) > 0.5:
        print("note: load average %s before starting: something else is "
              "running, the figures will be noisy" % loadavg, flush=True)
    rnd = random.Random(1)
    procs, nets = [], []
    servers = {}  # name -> "ip:port"
    ok = True
    try:
        # ---- servers
        echo = Proc("echo", [os.path.join(args.build, "bench_echo"), "--bind",
                             "127.0.0.1", "--port", "0", "--max-seconds",
                             "900"], SERVER_CPU)
        procs.append(echo)
        line = echo.read_line(5) or ""
        if not line.startswith("listening on "):
            raise RuntimeError("echo did not start: %r %r" % (line, echo.err))
        servers["echo"] = line.split()[-1]

        mdht = Proc("mdht", [os.path.join(args.build, "mdht"), "run",
                             "--bind", "127.0.0.1", "--port", "0",
                             "--no-bootstrap", "--no-state", "--no-control",
                             "--rate-limit", "0",
                             # 8 load sockets draw ~100k replies/s: the
                             # per-destination budget is off, as the
                             # limiter is.
                             "--reply-budget", "0",
                             "--log-level", "info"], SERVER_CPU)
        procs.append(mdht)
        end = time.monotonic() + 5
        mdht_id = None
        while time.monotonic() < end and mdht_id is None:
            for l in list(mdht.err):
                if "listening on" in l:
                    addr = l.split("listening on ")[1].split()[0]
                    mdht_id = bytes.fromhex(l.split("id=")[1][:40])
                    servers["mdht"] = addr
            time.sleep(0.05)
        if mdht_id is None:
            raise RuntimeError("mdht did not start: %r" % mdht.err)

        lt = None
        if not args.no_libtorrent:
            port = free_port("127.0.0.1")
            lt = Proc("libtorrent", ["/usr/bin/python3",
                                     os.path.join(HERE, "lt_server.py"),
                                     "--bind", "127.0.0.1", "--port",
                                     str(port), "--max-seconds", "900"],
                      SERVER_CPU)
            procs.append(lt)
            line = lt.read_line(15)
            try:
                ready = json.loads(line or "")
            except ValueError:
                ready = {}
            if not ready.get("ready"):
                raise RuntimeError("libtorrent did not start: %r %r" %
                                   (line, lt.err[-5:]))
            servers["libtorrent"] = ready["addr"]
            lt_id = bytes.fromhex(ready["id"])
            lt_version = ready.get("version")

        # ---- full routing tables
        def hostport(s):
            h, p = s.rsplit(":", 1)
            return h, int(p)

        net = FakeNet(1, mdht_id, args.depths, rnd)
        nets.append(net)
        net.ping_all(hostport(servers["mdht"]))
        if lt:
            ltnet = FakeNet(2, lt_id, args.depths, rnd)
            nets.append(ltnet)

            def add(addr):
                lt.p.stdin.write(b"add %s %d\n" % (addr[0].encode(), addr[1]))
                lt.p.stdin.flush()
            ltnet.ping_all(hostport(servers["libtorrent"]), add)
        fill = {}
        for name in servers:
            if name == "echo":
                continue
            fill[name] = probe_nodes(hostport(servers[name]))
            print("%s at %s: find_node answers with %d nodes" %
                  (name, servers[name], fill[name]), flush=True)
            if fill[name] < 8:
                ok = False
                print("  routing table not full: the figures below are "
                      "not comparable", flush=True)

        # ---- rounds
        names = [n for n in ("mdht", "echo", "libtorrent") if n in servers]
        results = {n: [] for n in names}
        byname = {p.name: p for p in procs}
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                proc = byname[name]
                u0, s0 = proc.cpu_seconds()
                res = run_loadgen(args, servers[name], name)
                u1, s1 = proc.cpu_seconds()
                res["server_user_s"] = round(u1 - u0, 2)
                res["server_sys_s"] = round(s1 - s0, 2)
                # CPU the server spent per answered query (warm-up
                # included at the measured rate): unlike the rate, it
                # hardly moves when something else takes CPU time.
                if res.get("rate"):
                    res["cpu_us_per_query"] = round(
                        (u1 - u0 + s1 - s0) * 1e6 /
                        (res["rate"] * (args.seconds + args.warmup)), 2)
                results[name].append(res)
                if "error" in res:
                    ok = False
                    print("round %d %-10s ERROR %s" % (r + 1, name,
                                                        res["error"]),
                          flush=True)
                    continue
                if res["invalid"]:
                    ok = False
                print("round %d %-10s %9.0f answered/s  p50 %5d us  "
                      "p99 %6d us  invalid %d  timeouts %d  "
                      "server cpu %.2fu+%.2fs = %.2f us/query" %
                      (r + 1, name, res["rate"], res["p50_us"], res["p99_us"],
                       res["invalid"], res["timeouts"], res["server_user_s"],
                       res["server_sys_s"], res.get("cpu_us_per_query", 0)),
                      flush=True)
                if not proc.alive():
                    raise RuntimeError("%s died: %r" % (name, proc.err[-5:]))

        # ---- in-process: the query path alone, and memory
        def run_json(prog, argv, cpu):
            path = os.path.join(args.build, prog)
            if not os.access(path, os.X_OK):
                return None
            out = subprocess.run([path] + argv + ["--json"],
                                 capture_output=True, timeout=120,
                                 preexec_fn=pin(cpu))
            try:
                res = json.loads(out.stdout.decode().strip().splitlines()[-1])
            except (ValueError, IndexError):
                res = None
            if out.returncode != 0 or res is None:
                print("%s failed (status %d): %s" %
                      (prog, out.returncode, out.stderr.decode()[-300:]))
                return None
            return res
        core = run_json("bench_core", ["--mix", args.mix], SERVER_CPU)
        if core is None:
            ok = False
        mem = None
        if not args.no_memory:
            mem = run_json("bench_memory", [], SERVER_CPU)
            if mem is None:
                ok = False

        # ---- summary
        def med(name, key):
            return median([x[key] for x in results[name] if key in x])

        print()
        print("machine: %d CPU(s), %s, Linux %s; servers pinned to CPU %s, "
              "load generator to CPU %s; load average at start %s" %
              (os.cpu_count(), cpu_model(), os.uname().release, SERVER_CPU,
               CLIENT_CPU, loadavg))
        print("load: window %d, %d sources, mix ping:find_node:get_peers = "
              "%s, %d rounds x %.1f s (+%.1f s warm-up)" %
              (args.window, args.sources, args.mix, args.rounds, args.seconds,
               args.warmup))
        print()
        print("| server | answered/s (median) | min | max | p50 us | p99 us "
              "| server CPU us/query | invalid | timeouts |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name in names:
            rates = [x["rate"] for x in results[name] if "rate" in x]
            print("| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.2f | %d | %d |" %
                  (name, median(rates), min(rates or [0]),
                   max(rates or [0]), med(name, "p50_us"),
                   med(name, "p99_us"), med(name, "cpu_us_per_query"),
                   sum(x.get("invalid", 0) for x in results[name]),
                   sum(x.get("timeouts", 0) for x in results[name])))
        print()

        # Three views of each ratio: of the median rates; the median of the
        # ratios within each round (the servers measured back to back
        # share the machine's conditions); and of the CPU each server
        # spends per query (the steadiest when other work competes).
        def per_round(a, b):
            xs = [x["rate"] / y["rate"] for x, y in zip(results[a], results[b])
                  if x.get("rate") and y.get("rate")]
            return median(xs)
        ratios = {}
        targets = {"echo": 0.75, "libtorrent": 2.5}
        for other in ("echo", "libtorrent"):
            if other not in results:
                continue
            key = "mdht/" + other
            r_med = med("mdht", "rate") / med(other, "rate")
            r_round = per_round("mdht", other)
            r_cpu = med(other, "cpu_us_per_query") / med("mdht",
                                                        "cpu_us_per_query")
            ratios[key] = {"median_rates": round(r_med, 3),
                           "median_per_round": round(r_round, 3),
                           "cpu_per_query": round(r_cpu, 3)}
            print("%-16s %.2f of median rates, %.2f median per round, %.2f "
                  "by CPU per query  (target >= %.2f: %s)" %
                  (key + ":", r_med, r_round, r_cpu, targets[other],
                   "met" if r_round >= targets[other] else "MISSED"))
        if core:
            print()
            print("query path in-process (bench_core, no kernel): %.0f ns "
                  "per query, %.0f queries/s" %
                  (core["ns_per_query"], core["queries_per_sec"]))
        if mem:
            print()
            print("memory (bench_memory): %.1f MB RSS with %d routing "
                  "entries and %d peers over %d info-hashes (target <= 32 "
                  "MB: %s); %.1f bytes per stored peer, %.1f bytes per "
                  "routing entry (heap in use, glibc tcache %s)" %
                  (mem["rss_kb"] / 1024, mem["rt_entries"], mem["peers"],
                   mem["infohashes"], "met" if mem["rss_kb"] <= 32 * 1024
                   else "MISSED", mem["bytes_per_peer"],
                   mem["bytes_per_rt_entry"],
                   "on" if mem.get("tcache") else "off"))
        print("total time %.0f s" % (time.monotonic() - t_start))
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump({"servers": servers, "fill": fill,
                           "results": results, "ratios": ratios,
                           "memory": mem, "core": core,
                           "loadavg_at_start": loadavg,
                           "window": args.window,
                           "mix": args.mix, "rounds": args.rounds,
                           "seconds": args.seconds,
                           "libtorrent": lt_version if lt else None}, f,
                          indent=1)
    except RuntimeError as e:
        print("bench: %s" % e, file=sys.stderr)
        ok = False
    finally:
        for n in nets:
            n.close()
        for p in reversed(procs):
            p.stop()
    return 0 if ok else 1


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
