"""Black-box test of BEP 44 storage: `mdht run` on loopback, raw KRPC.

Immutable and mutable items are put and got back; the mutable ones are
signed here with PyNaCl (libsodium, an implementation independent of the
node's code path), and the BEP's own test vectors are put as published.
Every error of the BEP (205, 206, 207, 301, 302) and the missing or bad
token (203) is provoked; a 1,000-byte value is served within 1,400 bytes;
items survive a restart through the state directory.

Usage: test_bep44.py path/to/mdht
"""
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib as tl  # noqa: E402
from testlib import check  # noqa: E402
from krpc_client import MdhtProcess, Sock, bdecode, bencode  # noqa: E402

try:
    import nacl.signing
except ImportError:
    # PyNaCl comes from Debian (python3-nacl), as for tests/interop.
    tl.under_debian_python("test_bep44: python3-nacl is required "
                           "(scripts/deps.sh installs it)")


def signed_buf(salt, seq, v):
    b = b""
    if salt:
        b += b"4:salt%d:%s" % (len(salt), salt)
    return b + b"3:seqi%de1:v" % seq + bencode(v)


def mutable_target(pk, salt=b""):
    return hashlib.sha1(pk + salt).digest()


def get(sock, to, target, seq=None):
    args = {"target": target}
    if seq is not None:
        args["seq"] = seq
    r = sock.query(to, "get", args)
    check(r.get(b"y") == b"r", "get answered: %r" % r)
    check(len(r[b"r"].get(b"token", b"")) > 0, "get carries a token")
    return r[b"r"]


def put(sock, to, token, v, key=None, seq=None, salt=b"", cas=None,
        sig=None, pk=None):
    args = {"token": token, "v": v}
    if key is not None or pk is not None:
        pk = pk or bytes(key.verify_key)
        if sig is None:
            sig = key.sign(signed_buf(salt, seq, v)).signature
        args.update({"k": pk, "seq": seq, "sig": sig})
        if salt:
            args["salt"] = salt
        if cas is not None:
            args["cas"] = cas
    return sock.query(to, "put", args)


def error_code(r):
    check(r.get(b"y") == b"e", "an error: %r" % r)
    return r[b"e"][0]


def bep_vectors(client, to):
    """The BEP's published items (signed with its key) store and serve."""
    pk = bytes.fromhex(
        "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")
    sig1 = bytes.fromhex(
        "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff"
        "1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01")
    sig2 = bytes.fromhex(
        "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d"
        "df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08")
    t1 = mutable_target(pk)
    check(t1.hex() == "4a533d47ec9c7d95b1ad75f576cffc641853b750", "vector 1")
    tok = get(client, to, t1)[b"token"]
    r = put(client, to, tok, b"Hello World!", pk=pk, seq=1, sig=sig1)
    check(r.get(b"y") == b"r", "BEP vector 1 stored: %r" % r)
    body = get(client, to, t1)
    check(body.get(b"v") == b"Hello World!" and body.get(b"seq") == 1 and
          body.get(b"sig") == sig1 and body.get(b"k") == pk, "vector 1 served")
    t2 = mutable_target(pk, b"foobar")
    check(t2.hex() == "411eba73b6f087ca51a3795d9c8c938d365e32c1", "vector 2")
    r = put(client, to, tok, b"Hello World!", pk=pk, seq=1, sig=sig2,
            salt=b"foobar")
    check(r.get(b"y") == b"r", "BEP vector 2 stored: %r" % r)
    check(get(client, to, t2).get(b"sig") == sig2, "vector 2 served")
    t3 = hashlib.sha1(b"12:Hello World!").digest()
    check(t3.hex() == "e5f96f6f38320f0f33959cb4d3d656452117aadb", "vector 3")
    r = put(client, to, tok, b"Hello World!")
    check(r.get(b"y") == b"r", "BEP vector 3 stored")
    check(get(client, to, t3).get(b"v") == b"Hello World!", "vector 3 served")


def immutable(client, other, to):
    v = {"list": [1, 2, b"three"], "n": -7}
    target = hashlib.sha1(bencode(v)).digest()
    body = get(client, to, target)
    check(b"v" not in body, "nothing stored yet")
    check(len(body.get(b"nodes", b"")) % 26 == 0, "nodes present")
    tok = body[b"token"]
    # another address's token is refused, and so is none at all
    otok = get(other, to, target)[b"token"]
    check(error_code(put(client, to, otok, v)) == 203, "bad token: 203")
    r = client.query(to, "put", {"v": v})
    check(error_code(r) == 203, "missing token: 203")
    check(put(client, to, tok, v).get(b"y") == b"r", "immutable put")
    body = get(other, to, target)
    check(body.get(b"v") == {b"list": [1, 2, b"three"], b"n": -7},
          "any node gets the value back")
    check(b"seq" not in body and b"k" not in body, "immutable: no k, seq")


def mutable(client, to):
    key = nacl.signing.SigningKey(bytes(range(32)))
    pk = bytes(key.verify_key)
    salt = b"feed"
    target = mutable_target(pk, salt)
    tok = get(client, to, target)[b"token"]
    r = put(client, to, tok, [b"entry", 1], key=key, seq=1, salt=salt)
    check(r.get(b"y") == b"r", "mutable put: %r" % r)
    body = get(client, to, target)
    check(body.get(b"v") == [b"entry", 1] and body.get(b"seq") == 1,
          "mutable get")
    key.verify_key.verify(signed_buf(salt, body[b"seq"], [b"entry", 1]),
                          body[b"sig"])  # raises if the signature is bad
    checks_seq = get(client, to, target, seq=1)
    check(checks_seq.get(b"seq") == 1 and b"v" not in checks_seq and
          b"sig" not in checks_seq, "get with current seq: seq only")

    # 206: signed by another key, or over other bytes
    other = nacl.signing.SigningKey(bytes(32))
    sig = other.sign(signed_buf(salt, 2, b"x")).signature
    r = put(client, to, tok, b"x", pk=pk, seq=2, salt=salt, sig=sig)
    check(error_code(r) == 206, "foreign signature: 206")
    sig = key.sign(signed_buf(salt, 2, b"x")).signature
    r = put(client, to, tok, b"y", pk=pk, seq=2, salt=salt, sig=sig)
    check(error_code(r) == 206, "signature over another value: 206")
    r = put(client, to, tok, b"x", pk=pk, seq=3, salt=salt, sig=sig)
    check(error_code(r) == 206, "signature over another seq: 206")
    # 302: lower seq, or the same seq with another value
    check(error_code(put(client, to, tok, b"old", key=key, seq=0,
                         salt=salt)) == 302, "lower seq: 302")
    check(error_code(put(client, to, tok, b"other", key=key, seq=1,
                         salt=salt)) == 302, "same seq, other value: 302")
    # the same item again is a refresh, not an error
    check(put(client, to, tok, [b"entry", 1], key=key, seq=1,
              salt=salt).get(b"y") == b"r", "republish accepted")
    # 301: cas is not the stored seq
    check(error_code(put(client, to, tok, b"new", key=key, seq=2, salt=salt,
                         cas=7)) == 301, "cas mismatch: 301")
    check(put(client, to, tok, b"new", key=key, seq=2, salt=salt,
              cas=1).get(b"y") == b"r", "cas right: stored")
    body = get(client, to, target)
    check(body.get(b"v") == b"new" and body.get(b"seq") == 2, "updated")
    # 207: salt over 64 bytes
    big_salt = b"s" * 65
    r = put(client, to, tok, b"x", key=key, seq=1, salt=big_salt)
    check(error_code(r) == 207, "salt of 65 bytes: 207")
    # 205: a value over 1,000 bytes, immutable or mutable
    big = b"x" * 997  # bencoded: "997:" + 997 = 1,001 bytes
    check(error_code(put(client, to, tok, big)) == 205, "1,001 bytes: 205")
    r = put(client, to, tok, big, pk=pk, seq=9, sig=bytes(64))
    check(error_code(r) == 205, "mutable 1,001 bytes: 205")
    # malformed: k of 31 bytes, sig missing
    r = client.query(to, "put", {"token": tok, "v": b"x", "k": pk[:31],
                                 "seq": 1, "sig": bytes(64)})
    check(error_code(r) == 203, "k of 31 bytes: 203")
    r = client.query(to, "put", {"token": tok, "v": b"x", "k": pk, "seq": 1})
    check(error_code(r) == 203, "no sig: 203")


def oversize(client, fakes, to):
    """A 1,000-byte value beside full nodes stays within 1,400 bytes."""
    key = nacl.signing.SigningKey(bytes([9] * 32))
    v = b"z" * 996  # bencoded: exactly 1,000 bytes
    check(len(bencode(v)) == 1000, "1,000-byte value")
    target = mutable_target(bytes(key.verify_key))
    tok = get(client, to, target)[b"token"]
    check(put(client, to, tok, v, key=key, seq=5).get(b"y") == b"r",
          "1,000-byte put accepted")
    t = client.tid()
    client.send(to, {"t": t, "y": "q", "q": "get",
                     "a": {"id": client.id, "target": target}})
    client.s.settimeout(3.0)
    while True:  # skip the node's own queries (confirmation pings)
        data, _ = client.s.recvfrom(65536)
        m = bdecode(data)
        if m.get(b"t") == t and m.get(b"y") == b"r":
            break
    check(b"v" in m[b"r"] and b"nodes" not in m[b"r"],
          "the nodes gave way to the value")
    check(len(data) <= 1400, "reply of %d bytes <= 1400" % len(data))
    check(bencode(v) in data, "the value is in it")


def mdht(binary, *args):
    return tl.cmd(binary, args)[:3]


def cli(binary, tmp):
    """The commands: keygen, put, get, standalone and through a running
    node's control socket, on a network of two nodes."""
    ctl_a = os.path.join(tmp, "ctl_a")
    a = MdhtProcess(binary, ["--bind", "127.0.0.61", "--port", "0",
                             "--no-bootstrap", "--control", ctl_a])
    ctl = os.path.join(tmp, "ctl")
    b = MdhtProcess(binary, ["--bind", "127.0.0.62", "--port", "0",
                             "--bootstrap", "%s:%d" % a.addr,
                             "--control", ctl])
    try:
        boot = ["--bootstrap", "%s:%d" % a.addr, "--bind", "127.0.0.63",
                "--timeout", "10"]
        for _ in range(50):  # b has joined once a knows it
            if os.path.exists(ctl) and mdht(binary, "find-node", "--control",
                                            ctl, "00" * 20)[0] == 0:
                break
            time.sleep(0.1)
        # immutable, standalone
        rc, out, err = mdht(binary, "put", *boot, "Hello World!")
        check(rc == 0, "put: %r %r" % (out, err))
        check(out == "e5f96f6f38320f0f33959cb4d3d656452117aadb\n",
              "put prints the BEP's target: %r" % out)
        rc, out, err = mdht(binary, "get", *boot,
                            "e5f96f6f38320f0f33959cb4d3d656452117aadb")
        check(rc == 0 and out == "Hello World!\n", "get: %r %r" % (out, err))
        rc, out, err = mdht(binary, "get", *boot, "11" * 20)
        check(rc == 1 and out == "" and err.startswith("mdht: no item found"),
              "get of nothing: exit 1: %r %r" % (out, err))
        # keygen: a new file of mode 0600, never overwritten
        key = os.path.join(tmp, "key")
        rc, out, err = mdht(binary, "keygen", key)
        check(rc == 0 and len(out.strip()) == 64, "keygen: %r" % out)
        pk = bytes.fromhex(out.strip())
        check(stat.S_IMODE(os.stat(key).st_mode) == 0o600, "key file 0600")
        seed = bytes.fromhex(open(key).read().strip())
        check(bytes(nacl.signing.SigningKey(seed).verify_key) == pk,
              "the key file's seed gives the printed key")
        rc, out, err = mdht(binary, "keygen", key)
        check(rc == 2 and "File exists" in err, "keygen keeps a file: %r" % err)
        # mutable through the control socket: seq 1, then 2
        rc, out, err = mdht(binary, "put", "--control", ctl, "--key", key,
                            "--salt", "feed", "version one")
        target = mutable_target(pk, b"feed").hex()
        check(rc == 0 and out == "%s seq 1\n" % target, "put --key: %r %r"
              % (out, err))
        rc, out, err = mdht(binary, "put", "--control", ctl, "--key", key,
                            "--salt", "feed", "--json", "version two")
        j = [json.loads(ln) for ln in out.splitlines()]
        check(rc == 0 and j[0]["type"] == "item" and j[0]["seq"] == 2 and
              j[0]["value"] == "version two", "put --json: %r" % out)
        # a wrong cas: nobody stores it
        rc, out, err = mdht(binary, "put", "--control", ctl, "--key", key,
                            "--salt", "feed", "--cas", "7", "clobber")
        check(rc == 1 and "no node stored the item" in err,
              "cas mismatch: exit 1: %r %r" % (out, err))
        # standalone get of the mutable item, JSON, signature checked here
        rc, out, err = mdht(binary, "get", *boot, "--pubkey", pk.hex(),
                            "--salt", "feed", "--json")
        j = [json.loads(ln) for ln in out.splitlines()]
        item = j[0]
        check(rc == 0 and item["value"] == "version two" and
              item["seq"] == 2, "get --pubkey --json: %r %r" % (out, err))
        nacl.signing.VerifyKey(pk).verify(
            signed_buf(b"feed", 2, b"version two"), bytes.fromhex(item["sig"]))
        check(True, "mdht's signature verifies under PyNaCl")
        # what node a stores, raw KRPC
        s = Sock("127.0.0.64")
        body = get(s, a.addr, bytes.fromhex(target))
        check(body.get(b"v") == b"version two" and body.get(b"seq") == 2,
              "node a holds seq 2")
        # node a's counters: 2 items, 3 puts stored, 1 refused (cas)
        rc, out, err = mdht(binary, "stats", "--control", ctl_a, "--json")
        st = json.loads(out)["storage"]
        check(rc == 0 and st["items"] == 2 and st["items_stored"] == 3 and
              st["puts_refused"] == 1 and st["items_served"] >= 2,
              "stats: %r" % st)
        rc, out, err = mdht(binary, "stats", "--control", ctl_a)
        check("items            2 (BEP 44; 3 puts stored" in out,
              "stats text: %r" % out)
        # usage errors: one line, exit 2
        for args in (["get", "--pubkey", "abc"], ["put"],
                     ["put", "--seq", "3", "x"],
                     ["put", "--key", key, "--seq", "1", "--cas", "1", "x"],
                     ["get", "--salt", "s", "11" * 20],
                     ["put", "x" * 1000]):
            rc, out, err = mdht(binary, *args)
            check(rc == 2 and err.count("\n") == 1 and
                  err.startswith("mdht: "), "%r: %r" % (args, err))
    finally:
        for n in (a, b):
            if n.alive():
                n.stop()


def main():
    binary = sys.argv[1]
    state = tempfile.mkdtemp(prefix="mdht-bep44-")
    args = ["--bind", "127.0.0.1", "--port", "0", "--no-bootstrap",
            "--log-level", "debug", "--reply-budget", "0", "--state", state]
    node = MdhtProcess(binary, args)
    try:
        to = node.addr
        client = Sock("127.0.0.21")
        other = Sock("127.0.0.22")
        fakes = []
        for i in range(8):  # nodes to fill the "nodes" of every answer
            f = Sock("127.0.%d.1" % (40 + i))
            f.send(to, {"t": f.tid(), "y": "q", "q": "ping",
                        "a": {"id": f.id}})
            fakes.append(f)
        from krpc_client import serve_all
        serve_all(fakes, 1.0)
        bep_vectors(client, to)
        immutable(client, other, to)
        mutable(client, to)
        oversize(client, fakes, to)
        check(any("item_stored" in ln for ln in node.lines),
              "item_stored logged")
        check(any("item_served" in ln for ln in node.lines),
              "item_served logged")
        check(node.alive(), "node alive")
        check(node.stop() == 0, "exit 0")

        # Items come back after a restart.
        node = MdhtProcess(binary, args)
        to = node.addr
        c2 = Sock("127.0.0.23")
        t3 = hashlib.sha1(b"12:Hello World!").digest()
        check(get(c2, to, t3).get(b"v") == b"Hello World!",
              "immutable item survives a restart")
        key = nacl.signing.SigningKey(bytes(range(32)))
        body = get(c2, to, mutable_target(bytes(key.verify_key), b"feed"))
        check(body.get(b"v") == b"new" and body.get(b"seq") == 2,
              "mutable item survives a restart")
        check(node.stop() == 0, "exit 0")
        cli(binary, state)
    except Exception:
        sys.stderr.write("".join(node.lines[-40:]))
        raise
    finally:
        if node.alive():
            node.p.kill()
        shutil.rmtree(state, ignore_errors=True)
    print("test_bep44: %d passed, 0 failed" % tl.checks)


if __name__ == "__main__":
    main()
