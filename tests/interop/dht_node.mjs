#!/usr/bin/env node
// One bittorrent-dht node (WebTorrent's DHT), driven over stdin/stdout.
//
//   node dht_node.mjs --bind 127.0.0.7 --port 7100 [--bootstrap IP:PORT]... [--log FILE]
//
// Prints {"ready":true,"id":HEX,"addr":"IP:PORT","version":V} once bound,
// then answers one JSON command per line with one JSON line carrying the
// same "seq":
//
//   {"seq":1,"cmd":"add_node","host":IP,"port":N}
//       -> {"seq":1,"ok":true,"answered":bool,"id":HEX}  (ping; added if answered)
//   {"seq":2,"cmd":"bootstrap"}
//       -> {"seq":2,"ok":true,"visited":N}   (find_node of our own id again:
//          bittorrent-dht bootstraps only once, at start)
//   {"seq":3,"cmd":"table"}
//       -> {"seq":3,"ok":true,"nodes":[{"id":HEX,"addr":"IP:PORT"},...]}
//   {"seq":4,"cmd":"announce","infohash":HEX,"port":N}
//       -> {"seq":4,"ok":bool,"error":...}   (lookup, then announce_peer)
//   {"seq":5,"cmd":"get_peers","infohash":HEX}
//       -> {"seq":5,"ok":true,"peers":["IP:PORT",...]}   (one full lookup)
//   {"seq":6,"cmd":"announced"}
//       -> {"seq":6,"ok":true,"announces":[{"infohash":HEX,"peer":"IP:PORT"}]}
//          (announce_peer queries this node accepted)
//   {"seq":7,"cmd":"warnings"}
//       -> {"seq":7,"ok":true,"warnings":[MESSAGE,...]}   (every warning the
//          library emitted: undecodable datagrams, unexpected transaction ids)
//   {"seq":8,"cmd":"put","value":TEXT}
//       -> {"seq":8,"ok":bool,"target":HEX,"stored":N}   (BEP 44 immutable:
//          lookup, then put to the closest nodes; N replies to the puts)
//   {"seq":9,"cmd":"put","value":TEXT,"seed":HEX,"salt":TEXT,"seq_number":N}
//       -> {"seq":9,"ok":bool,"target":HEX,"stored":N,"pubkey":HEX}
//          (mutable, signed with the Ed25519 key of the 32-byte seed)
//   {"seq":10,"cmd":"get","target":HEX,"salt":TEXT}
//       -> {"seq":10,"ok":true,"found":bool,"value":TEXT,"seq_number":N,
//           "sig":HEX,"pubkey":HEX}   (one full lookup, never its own
//          cache; mutable items only if their signature verifies)
//   {"seq":11,"cmd":"quit"}
//
// Ed25519 (sign, and the `verify` bittorrent-dht needs to store or accept
// mutable items) is node's own crypto: raw 32-byte keys are wrapped in
// their fixed PKCS#8 / SPKI DER prefixes.
//
// With --log FILE, every datagram in and out is written to FILE (bencode
// decoded, binary as hex) together with every warning the library emits
// (undecodable replies, unexpected transaction ids, ...).
import crypto from 'crypto'
import fs from 'fs'
import readline from 'readline'
import DHT from 'bittorrent-dht'
import bencode from 'bencode'

const VERSION = JSON.parse(fs.readFileSync(new URL('./node_modules/bittorrent-dht/package.json', import.meta.url))).version

function parseArgs (argv) {
  const o = { bootstrap: [] }
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]
    const v = argv[i + 1]
    if (a === '--bind') { o.bind = v; i++ } else if (a === '--port') { o.port = Number(v); i++ } else if (a === '--bootstrap') { o.bootstrap.push(v); i++ } else if (a === '--log') { o.log = v; i++ } else {
      process.stderr.write(`dht_node.mjs: unknown argument ${a}\n`)
      process.exit(2)
    }
  }
  if (!o.bind || !o.port) {
    process.stderr.write('usage: dht_node.mjs --bind IP --port N [--bootstrap IP:PORT]... [--log FILE]\n')
    process.exit(2)
  }
  return o
}

const opts = parseArgs(process.argv)
const log = opts.log ? fs.createWriteStream(opts.log, { flags: 'a' }) : null

function show (v) {
  if (v instanceof Uint8Array) {
    v = Buffer.from(v.buffer, v.byteOffset, v.length)
    const printable = /^[\x20-\x7e]*$/.test(v.toString('latin1'))
    return printable && v.length < 40 ? v.toString('latin1') : v.toString('hex')
  }
  if (Array.isArray(v)) return v.map(show)
  if (v && typeof v === 'object') {
    const o = {}
    for (const k of Object.keys(v)) o[k] = show(v[k])
    return o
  }
  return v
}

function logLine (s) {
  if (log) log.write(`${(Date.now() / 1000).toFixed(3)} ${s}\n`)
}

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex')

function signingKey (seedHex) {
  const priv = crypto.createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519, Buffer.from(seedHex, 'hex')]), format: 'der', type: 'pkcs8'
  })
  const pub = crypto.createPublicKey(priv).export({ format: 'der', type: 'spki' })
  return { priv, pk: Buffer.from(pub.subarray(pub.length - 32)) }
}

function ed25519Verify (sig, msg, pk) {
  try {
    const key = crypto.createPublicKey({
      key: Buffer.concat([SPKI_ED25519, Buffer.from(pk)]), format: 'der', type: 'spki'
    })
    return crypto.verify(null, Buffer.from(msg), key, Buffer.from(sig))
  } catch (e) {
    return false
  }
}

// bootstrap: the closed network's nodes; never the public routers.
const dht = new DHT({
  bootstrap: opts.bootstrap.length ? opts.bootstrap : false,
  host: opts.bind,
  verify: ed25519Verify
})

const announcedToUs = []
dht.on('announce', (peer, infoHash) => {
  announcedToUs.push({ infohash: infoHash.toString('hex'), peer: `${peer.host}:${peer.port}` })
})
const warnings = []
dht.on('warning', (err) => {
  warnings.push(String(err && err.message))
  logLine(`WARNING ${err && err.message}`)
})
dht.on('error', (err) => {
  logLine(`ERROR ${err && err.message}`)
  out({ ready: false, error: String(err && err.message) })
  process.exit(1)
})

if (log) {
  // Log every datagram both ways: incoming at the UDP socket, outgoing at
  // k-rpc-socket's send(peer, message), which every query, response and
  // error goes through.
  dht._rpc.socket.socket.on('message', (buf, rinfo) => {
    let m
    try { m = JSON.stringify(show(bencodeDecode(buf))) } catch (e) { m = `UNDECODABLE ${Buffer.from(buf).toString('hex')}` }
    logLine(`<== ${rinfo.address}:${rinfo.port} ${m}`)
  })
  const krpcSocket = dht._rpc.socket
  const send = krpcSocket.send.bind(krpcSocket)
  krpcSocket.send = (peer, message, cb) => {
    logLine(`==> ${peer.address || peer.host}:${peer.port} ${JSON.stringify(show(message))}`)
    return send(peer, message, cb)
  }
}

function bencodeDecode (b) { return bencode.decode(b) }

function out (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function hexId (id) {
  return Buffer.isBuffer(id) ? id.toString('hex') : String(id)
}

function tableNodes () {
  return dht._rpc.nodes.toArray().map((n) => ({ id: hexId(n.id), addr: `${n.host}:${n.port}` }))
}

function handle (c) {
  const seq = c.seq
  switch (c.cmd) {
    case 'quit':
      out({ seq, ok: true })
      dht.destroy(() => process.exit(0))
      setTimeout(() => process.exit(0), 500).unref()
      return
    case 'add_node':
      dht._sendPing({ host: c.host, port: Number(c.port) }, (err, node) => {
        if (err || !node) return out({ seq, ok: true, answered: false, error: err && err.message })
        dht.addNode(node)
        out({ seq, ok: true, answered: true, id: hexId(node.id) })
      })
      return
    case 'bootstrap':
      dht._rpc.populate(dht._rpc.id, { q: 'find_node', a: { id: dht._rpc.id, target: dht._rpc.id } },
        (err, n) => out({ seq, ok: !err, visited: n, error: err && err.message }))
      return
    case 'table':
      out({ seq, ok: true, nodes: tableNodes() })
      return
    case 'announce':
      dht.announce(c.infohash, Number(c.port || 0), (err, hits) =>
        out({ seq, ok: !err, hits, error: err && err.message }))
      return
    case 'get_peers': {
      const ih = c.infohash.toLowerCase()
      const peers = new Set()
      const onPeer = (peer, infoHash) => {
        if (infoHash.toString('hex') === ih) peers.add(`${peer.host}:${peer.port}`)
      }
      dht.on('peer', onPeer)
      dht.lookup(ih, (err) => {
        // 'peer' events for the last replies come before the callback.
        setImmediate(() => {
          dht.removeListener('peer', onPeer)
          out({ seq, ok: !err, peers: [...peers].sort(), error: err && err.message })
        })
      })
      return
    }
    case 'put': {
      const o = { v: Buffer.from(c.value) }
      let pk = null
      if (c.seed) {
        const key = signingKey(c.seed)
        pk = key.pk
        o.k = pk
        o.seq = Number(c.seq_number || 0)
        if (c.salt) o.salt = Buffer.from(c.salt)
        o.sign = (buf) => crypto.sign(null, buf, key.priv)
      }
      dht.put(o, (err, hash, n) => out({
        seq, ok: !err, target: hash && Buffer.from(hash).toString('hex'), stored: n, pubkey: pk && pk.toString('hex'), error: err && err.message
      }))
      return
    }
    case 'get': {
      const o = { cache: false }
      if (c.salt) o.salt = Buffer.from(c.salt)
      dht.get(c.target, o, (err, r) => {
        const hex = (b) => b ? Buffer.from(b).toString('hex') : null
        out({
          seq,
          ok: !err,
          found: !!(r && r.v),
          value: r && r.v ? Buffer.from(r.v).toString() : null,
          seq_number: r ? r.seq : null,
          sig: hex(r && r.sig),
          pubkey: hex(r && r.k),
          error: err && err.message
        })
      })
      return
    }
    case 'announced':
      out({ seq, ok: true, announces: announcedToUs })
      return
    case 'warnings':
      out({ seq, ok: true, warnings })
      return
    default:
      out({ seq, ok: false, error: `unknown command ${c.cmd}` })
  }
}

dht.listen(opts.port, opts.bind, () => {
  out({ ready: true, id: hexId(dht.nodeId), addr: `${opts.bind}:${opts.port}`, version: VERSION })
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    line = line.trim()
    if (!line) return
    let c
    try { c = JSON.parse(line) } catch (e) { return out({ ok: false, error: `bad json: ${e.message}` }) }
    try { handle(c) } catch (e) { out({ seq: c.seq, ok: false, error: String(e && e.stack) }) }
  })
  rl.on('close', () => dht.destroy(() => process.exit(0)))
})
