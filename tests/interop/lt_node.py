#!/usr/bin/python3
"""One libtorrent session with only its DHT, driven over stdin/stdout.

Run with Debian's own interpreter (/usr/bin/python3): that is where the
python3-libtorrent package installs its binding.

    /usr/bin/python3 lt_node.py --bind 127.0.0.5 --port 7000 [--log FILE]

It prints one JSON line {"ready": true, "id": HEX, "addr": "IP:PORT"} once
the DHT runs, then reads one JSON command per line on stdin and answers each
with one JSON line on stdout carrying the same "seq":

  {"seq":1,"cmd":"add_node","host":"127.0.0.2","port":6881}
      -> {"seq":1,"ok":true}      (one ping; libtorrent adds the node if it answers)
  {"seq":2,"cmd":"table"}
      -> {"seq":2,"ok":true,"nodes":[{"id":HEX,"addr":"IP:PORT"},...]}
  {"seq":3,"cmd":"get_peers","infohash":HEX,"wait":10,"expect":"IP:PORT"}
      -> {"seq":3,"ok":true,"peers":["IP:PORT",...]}
         (collects peers from every reply alert for up to "wait" seconds,
         stops early once "expect" is among them)
  {"seq":4,"cmd":"announce","infohash":HEX}
      -> {"seq":4,"ok":true}      (adds a magnet-only torrent, see below)
  {"seq":5,"cmd":"announced","infohash":HEX}
      -> {"seq":5,"ok":true,"count":N}   (announce_peer queries for HEX this
         session accepted, counted from dht_announce_alert)
  {"seq":6,"cmd":"stats"}
      -> {"seq":6,"ok":true,"dht_nodes":N,...}   (session counters)
  {"seq":7,"cmd":"sample","host":"127.0.0.2","port":6881,"target":HEX,"wait":5}
      -> {"seq":7,"ok":true,"samples":[HEX,...],"num_infohashes":N,
          "interval":S,"num_nodes":N}
         (BEP 51: one sample_infohashes query through libtorrent's
         dht_sample_infohashes(), answered by its
         dht_sample_infohashes_alert; ok false if none within "wait" s)
  {"seq":8,"cmd":"announce_seed"}
      -> {"seq":8,"ok":true,"infohash":HEX}
         (creates a one-file torrent, adds it in seed mode: libtorrent then
         announces it to the DHT with seed = 1, BEP 33)
  {"seq":9,"cmd":"put_immutable","value":TEXT,"wait":10}
      -> {"seq":9,"ok":true,"target":HEX,"success":N}
         (BEP 44: dht_put_immutable_item() of the bencoded string TEXT,
         answered by its dht_put_alert: N nodes accepted the put)
  {"seq":10,"cmd":"put_mutable","seed":HEX,"salt":TEXT,"value":TEXT}
      -> {"seq":10,"ok":true,"pubkey":HEX,"seq_number":N,"sig":HEX,
          "success":N}
         (dht_put_mutable_item() signed with the Ed25519 key of the 32-byte
         seed; libtorrent reads the current item and puts seq + 1)
  {"seq":11,"cmd":"get_immutable","target":HEX,"wait":10}
      -> {"seq":11,"ok":true,"found":bool,"value":TEXT}
  {"seq":12,"cmd":"get_mutable","pubkey":HEX,"salt":TEXT,"wait":10}
      -> {"seq":12,"ok":true,"found":bool,"value":TEXT,"seq_number":N,
          "sig":HEX,"authoritative":bool}
         (the first dht_mutable_item_alert: libtorrent verified the
         signature before it reports an item)
  {"seq":13,"cmd":"quit"}

--bind may be an IPv6 address (::1): addresses are then printed [ip]:port.

With --log FILE every DHT log line and every DHT packet (in and out) is
written to FILE: that is where libtorrent says why it rejected a message.
"""
import argparse
import json
import os
import queue
import sys
import tempfile
import threading
import time
import warnings

import hashlib

import libtorrent as lt

warnings.simplefilter("ignore", DeprecationWarning)


def loopback_settings(bind, port, debug):
    """Settings for a closed network of nodes on 127.0.0.x, one per setting
    with the reason it differs from libtorrent's default."""
    cat = lt.alert.category_t
    mask = (cat.error_notification | cat.status_notification
            # dht_get_peers_reply_alert, dht_live_nodes_alert, dht_stats_alert
            # are dht_operation alerts: without this category a lookup
            # reports nothing at all.
            | cat.dht_operation_notification
            # dht_announce_alert (someone announced to us), dht_reply_alert,
            # dht_bootstrap_alert.
            | cat.dht_notification)
    if debug:
        # dht_log_alert and dht_pkt_alert: every decision and every packet.
        mask |= cat.dht_log_notification
    return {
        # libtorrent 2.0.8 starts its DHT only on a socket bound to an
        # explicit address; 0.0.0.0 would also collide with the other
        # nodes on the same port.
        "listen_interfaces": "%s:%d" % (
            "[%s]" % bind if ":" in bind else bind, port),
        # Local service discovery, UPnP and NAT-PMP would multicast and talk
        # to the router: nothing of it belongs in a closed test network.
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # The default router (dht.libtorrent.org) is outside the closed
        # network, and nodes given as routers never enter the routing table:
        # the harness adds every node with add_dht_node() instead.
        "dht_bootstrap_nodes": "",
        # Keep one node per /24 in the routing table and in lookups: all of
        # 127.0.0.x is one /24, so only one of our nodes would be kept.
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        # The DoS blocker bans an IP for dht_block_timeout (5 min) after
        # dht_block_ratelimit (5/s averaged over 10 s = 50) messages; a
        # bootstrap burst from one test node exceeds that.
        "dht_block_ratelimit": 1000000,
        # 8,000 B/s of DHT upload drops replies during lookup bursts; 0 does
        # not mean unlimited here, so give a large number.
        "dht_upload_rate_limit": 100000000,
        # BEP 42: node ids derived from the (loopback) address, verified-id
        # preference, and dropping of "dark internet" ranges would make
        # libtorrent ignore or deprioritise other loopback nodes.
        "dht_enforce_node_id": False,
        "dht_prefer_verified_node_ids": False,
        "dht_ignore_dark_internet": False,
        # Re-announce torrents often (default 15 min), so that a torrent
        # added for "announce" is announced again within the test's time.
        "dht_announce_interval": 10,
        # Peers found for the announce torrent would be connected to over
        # TCP/uTP; several peers share an IP on loopback.
        "allow_multiple_connections_per_ip": True,
        # The IP notifier re-opens listen sockets when the machine's
        # interfaces change; the test's sockets are fixed, keep them still.
        "enable_ip_notifier": False,
        "alert_mask": mask,
    }


def ep_str(ep):
    """ip:port, IPv6 as [ip]:port (as mdht prints it)."""
    return ("[%s]:%d" if ":" in ep[0] else "%s:%d") % (ep[0], ep[1])


def ed25519_keys(seed):
    """libtorrent's key pair of a 32-byte seed: the 2.0.8 binding has no
    ed25519_create_keypair, and dht_put_mutable_item wants libtorrent's
    own 64-byte secret key (SHA-512 of the seed, clamped: ed25519's
    expanded key, not seed + public key). The public key comes from PyNaCl."""
    import nacl.signing
    sk = bytearray(hashlib.sha512(seed).digest())
    sk[0] &= 248
    sk[31] &= 63
    sk[31] |= 64
    return bytes(sk), bytes(nacl.signing.SigningKey(seed).verify_key)


def item_text(a):
    """The value of an item alert as text, None when the lookup found
    nothing (the binding then raises on reading the empty entry)."""
    try:
        return text(a.item)
    except RuntimeError:
        return None


def text(entry):
    """An item's value (a bencoded string) as text; other values as repr."""
    if isinstance(entry, dict) and "value" in entry:
        entry = entry["value"]
    if isinstance(entry, bytes):
        return entry.decode("utf-8", "replace")
    return None if entry is None else repr(entry)


def raw(x):
    """bytes of a binding value that may come as str, bytes or a list."""
    if isinstance(x, str):
        return x.encode("latin-1")
    return bytes(x)


class Node:
    def __init__(self, bind, port, log_path):
        self.log = open(log_path, "a", buffering=1) if log_path else None
        self.ses = lt.session(loopback_settings(bind, port, bool(log_path)))
        self.bind, self.port = bind, port
        self.save_dir = tempfile.mkdtemp(prefix="lt-interop-")
        self.cmds = queue.Queue()
        self.pending_live = []      # seqs waiting for dht_live_nodes_alert
        self.lookups = {}           # infohash hex -> list of lookups
        self.announced_to_us = {}   # infohash hex -> count
        self.torrents = {}
        self.node_id = None
        self.dht_id_bytes = None
        self.samples = []           # pending sample_infohashes queries
        self.item_waits = []        # pending BEP 44 puts and gets

    def out(self, obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def read_stdin(self):
        for line in sys.stdin:
            line = line.strip()
            if line:
                self.cmds.put(line)
        self.cmds.put(None)

    def own_id(self):
        # session.dht_state() is deprecated but is the one binding that
        # gives the node id (20 bytes, then libtorrent appends the IP).
        st = self.ses.dht_state()
        nid = st.get(b"node-id") if isinstance(st, dict) else None
        if isinstance(nid, list):
            nid = nid[0] if nid else None
        if nid and len(nid) >= 20:
            return bytes(nid[:20])
        return None

    def wait_ready(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ses.is_dht_running():
                nid = self.own_id()
                if nid:
                    self.dht_id_bytes = nid
                    self.node_id = nid.hex()
                    return True
            self.pump(0.05)
        return False

    # ---- alerts ----
    def pump(self, wait):
        self.ses.wait_for_alert(int(wait * 1000))
        for a in self.ses.pop_alerts():
            self.on_alert(a)

    def on_alert(self, a):
        if isinstance(a, lt.dht_live_nodes_alert):
            nodes = []
            for n in a.nodes:
                ep = n["endpoint"]
                nodes.append({"id": bytes(n["nid"].to_bytes()).hex(),
                              "addr": ep_str(ep)})
            for seq in self.pending_live:
                self.out({"seq": seq, "ok": True, "nodes": nodes})
            self.pending_live = []
        elif isinstance(a, lt.dht_get_peers_reply_alert):
            ih = bytes(a.info_hash.to_bytes()).hex()
            peers = [ep_str(p) for p in a.peers()]
            for lk in self.lookups.get(ih, []):
                lk["peers"].update(peers)
        elif isinstance(a, lt.dht_sample_infohashes_alert):
            ep = "%s:%d" % (a.endpoint[0], a.endpoint[1])
            for sm in [x for x in self.samples if x["ep"] == ep]:
                self.samples.remove(sm)
                iv = a.interval
                iv = iv.total_seconds() if hasattr(iv, "total_seconds") else iv
                self.out({"seq": sm["seq"], "ok": True,
                          "samples": [bytes(h.to_bytes()).hex()
                                      for h in a.samples],
                          "num_infohashes": a.num_infohashes,
                          "num_samples": a.num_samples,
                          "interval": int(iv), "num_nodes": a.num_nodes})
        elif isinstance(a, (lt.dht_put_alert, lt.dht_immutable_item_alert,
                            lt.dht_mutable_item_alert)):
            self.on_item_alert(a)
        elif isinstance(a, lt.dht_announce_alert):
            ih = bytes(a.info_hash.to_bytes()).hex()
            self.announced_to_us[ih] = self.announced_to_us.get(ih, 0) + 1
        elif isinstance(a, lt.session_stats_alert):
            vals = a.values
            for seq in getattr(self, "pending_stats", []):
                self.out({"seq": seq, "ok": True,
                          "dht_nodes": vals.get("dht.dht_nodes"),
                          "dht_messages_in": vals.get("dht.dht_messages_in"),
                          "dht_messages_out": vals.get("dht.dht_messages_out"),
                          "dht_messages_in_dropped":
                              vals.get("dht.dht_messages_in_dropped"),
                          "dht_messages_out_dropped":
                              vals.get("dht.dht_messages_out_dropped")})
            self.pending_stats = []
        if self.log and isinstance(a, (lt.dht_log_alert, lt.dht_pkt_alert)):
            self.log.write("%.3f %s\n" % (time.time(), a.message()))

    # ---- commands ----
    def command(self, line):
        try:
            c = json.loads(line)
        except ValueError as e:
            self.out({"ok": False, "error": "bad json: %s" % e})
            return True
        seq = c.get("seq")
        cmd = c.get("cmd")
        try:
            if cmd == "quit":
                self.out({"seq": seq, "ok": True})
                return False
            if cmd == "add_node":
                self.ses.add_dht_node((c["host"], int(c["port"])))
                self.out({"seq": seq, "ok": True})
            elif cmd == "table":
                self.pending_live.append(seq)
                self.ses.dht_live_nodes(lt.sha1_hash(self.dht_id_bytes))
            elif cmd == "get_peers":
                ih = c["infohash"].lower()
                lk = {"seq": seq, "peers": set(), "expect": c.get("expect"),
                      "end": time.monotonic() + float(c.get("wait", 10))}
                self.lookups.setdefault(ih, []).append(lk)
                self.ses.dht_get_peers(lt.sha1_hash(bytes.fromhex(ih)))
            elif cmd == "announce":
                ih = c["infohash"].lower()
                if ih not in self.torrents:
                    # The 2.0.8 binding cannot build dht_announce's flags
                    # argument, so announce the way a client does: a
                    # magnet-only torrent, announced to the DHT with the
                    # session's listen port (implied_port, as the DHT socket
                    # is the listen socket).
                    atp = lt.add_torrent_params()
                    atp.info_hashes = lt.info_hash_t(
                        lt.sha1_hash(bytes.fromhex(ih)))
                    atp.save_path = self.save_dir
                    atp.name = "interop-" + ih[:8]
                    self.torrents[ih] = self.ses.add_torrent(atp)
                else:
                    self.torrents[ih].force_dht_announce()
                self.out({"seq": seq, "ok": True})
            elif cmd == "sample":
                target = bytes.fromhex(c.get("target") or os.urandom(20).hex())
                self.samples.append({
                    "seq": seq, "ep": "%s:%d" % (c["host"], int(c["port"])),
                    "end": time.monotonic() + float(c.get("wait", 5))})
                self.ses.dht_sample_infohashes((c["host"], int(c["port"])),
                                               lt.sha1_hash(target))
            elif cmd in ("put_immutable", "put_mutable", "get_immutable",
                         "get_mutable"):
                self.item_command(seq, cmd, c)
            elif cmd == "announce_seed":
                ih = self.add_seed()
                self.out({"seq": seq, "ok": True, "infohash": ih})
            elif cmd == "announced":
                ih = c["infohash"].lower()
                self.out({"seq": seq, "ok": True,
                          "count": self.announced_to_us.get(ih, 0)})
            elif cmd == "stats":
                if not hasattr(self, "pending_stats"):
                    self.pending_stats = []
                self.pending_stats.append(seq)
                self.ses.post_session_stats()
            else:
                self.out({"seq": seq, "ok": False,
                          "error": "unknown command %r" % cmd})
        except Exception as e:  # report, keep running
            self.out({"seq": seq, "ok": False, "error": repr(e)})
        return True

    # ---- BEP 44 ----
    def item_command(self, seq, cmd, c):
        """Starts a put or get; the answer goes out when its alert comes
        (on_item_alert) or after "wait" seconds (finish_item_waits)."""
        w = {"seq": seq, "cmd": cmd,
             "end": time.monotonic() + float(c.get("wait", 10))}
        salt = c.get("salt", "").encode()
        if cmd == "put_immutable":
            t = self.ses.dht_put_immutable_item(c["value"].encode())
            w["key"] = ("put", bytes(t.to_bytes()).hex())
        elif cmd == "get_immutable":
            w["key"] = ("imm", c["target"].lower())
            self.ses.dht_get_immutable_item(
                lt.sha1_hash(bytes.fromhex(c["target"])))
        elif cmd == "put_mutable":
            sk, pk = ed25519_keys(bytes.fromhex(c["seed"]))
            w["key"] = ("put", pk.hex(), salt)
            self.ses.dht_put_mutable_item(sk, pk, c["value"].encode(), salt)
        else:
            w["key"] = ("mut", c["pubkey"].lower(), salt)
            self.ses.dht_get_mutable_item(bytes.fromhex(c["pubkey"]), salt)
        self.item_waits.append(w)

    def on_item_alert(self, a):
        if isinstance(a, lt.dht_put_alert):
            pk = raw(a.public_key)
            if any(pk):
                key = ("put", pk.hex(), raw(a.salt))
                ans = {"pubkey": pk.hex(), "seq_number": a.seq,
                       "sig": raw(a.signature).hex()}
            else:
                key = ("put", bytes(a.target.to_bytes()).hex())
                ans = {"target": key[1]}
            ans["success"] = a.num_success
        elif isinstance(a, lt.dht_immutable_item_alert):
            key = ("imm", bytes(a.target.to_bytes()).hex())
            v = item_text(a)
            ans = {"found": v is not None, "value": v}
        else:
            key = ("mut", raw(a.key).hex(), raw(a.salt))
            v = item_text(a)
            ans = {"found": v is not None, "value": v, "seq_number": a.seq,
                   "sig": raw(a.signature).hex(),
                   "authoritative": a.authoritative}
        for w in [x for x in self.item_waits if x["key"] == key]:
            self.item_waits.remove(w)
            ans.update({"seq": w["seq"], "ok": True})
            self.out(ans)

    def finish_item_waits(self):
        now = time.monotonic()
        for w in [x for x in self.item_waits if now >= x["end"]]:
            self.item_waits.remove(w)
            self.out({"seq": w["seq"], "ok": False,
                      "error": "no alert for %s within its wait" % w["cmd"]})

    def add_seed(self):
        """A torrent of one small random file, added in seed mode (no hash
        check): libtorrent announces a torrent it seeds with seed = 1,
        which is what the 2.0.8 binding's dht_announce cannot ask for."""
        d = tempfile.mkdtemp(prefix="seed-", dir=self.save_dir)
        name = "seed.bin"
        with open(os.path.join(d, name), "wb") as f:
            f.write(os.urandom(16384))
        fs = lt.file_storage()
        lt.add_files(fs, os.path.join(d, name))
        ct = lt.create_torrent(fs)
        lt.set_piece_hashes(ct, d)
        ti = lt.torrent_info(ct.generate())
        atp = lt.add_torrent_params()
        atp.ti = ti
        atp.save_path = d
        atp.flags |= lt.torrent_flags.seed_mode
        ih = bytes(ti.info_hashes().v1.to_bytes()).hex()
        self.torrents[ih] = self.ses.add_torrent(atp)
        return ih

    def finish_samples(self):
        now = time.monotonic()
        for sm in [x for x in self.samples if now >= x["end"]]:
            self.samples.remove(sm)
            self.out({"seq": sm["seq"], "ok": False,
                      "error": "no sample_infohashes reply from %s" % sm["ep"]})

    def finish_lookups(self):
        now = time.monotonic()
        for ih, lks in list(self.lookups.items()):
            keep = []
            for lk in lks:
                done = now >= lk["end"] or (lk["expect"] and
                                             lk["expect"] in lk["peers"])
                if done:
                    self.out({"seq": lk["seq"], "ok": True,
                              "peers": sorted(lk["peers"])})
                else:
                    keep.append(lk)
            if keep:
                self.lookups[ih] = keep
            else:
                del self.lookups[ih]

    def run(self):
        if not self.wait_ready(10):
            self.out({"ready": False,
                      "error": "libtorrent DHT did not start on %s:%d"
                      % (self.bind, self.port)})
            return 1
        self.out({"ready": True, "id": self.node_id,
                  "addr": ep_str((self.bind, self.port)),
                  "version": lt.__version__})
        threading.Thread(target=self.read_stdin, daemon=True).start()
        running = True
        while running:
            self.pump(0.05)
            self.finish_lookups()
            self.finish_samples()
            self.finish_item_waits()
            while True:
                try:
                    line = self.cmds.get_nowait()
                except queue.Empty:
                    break
                if line is None or not self.command(line):
                    running = False
                    break
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log")
    a = ap.parse_args()
    node = Node(a.bind, a.port, a.log)
    rc = node.run()
    sys.stdout.flush()
    os._exit(rc)  # do not wait for the session's orderly shutdown


if __name__ == "__main__":
    main()
