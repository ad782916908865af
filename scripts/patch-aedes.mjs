#!/usr/bin/env node
/**
 * Runs after `npm install` (the `postinstall` script): gives the installed Aedes seven fast paths
 * (its connect and subscribe handlers, its `$SYS` announcements, how its client watches its
 * connection, its keep-alive, its client's close, how it writes acknowledgements) and its packet
 * parser (mqtt-packet) one,
 * written to go upstream as they are.
 *
 * Aedes answers every CONNECT by streaming the session's queued QoS 1 messages through
 * `stream.pipeline` (an AbortController, end-of-stream listeners, a Transform, a DOMException with
 * its stack when the pipeline ends), and every SUBSCRIBE by piping a retained-message stream into
 * another Transform — even when nothing is queued and nothing is retained, which is what almost
 * every device's connect is. Measured with `aiot-sim bench --devices 8000`: 234-318 µs of broker
 * CPU per connection with them, 116-128 µs without. Both handlers are private to Aedes, so the fix
 * has to be in them: each asks the persistence first, through an optional synchronous method, and
 * takes its old path whenever the persistence does not offer it (aedes-persistence-redis, any
 * other) or answers that there is something to send:
 *
 *   persistence.hasOutgoing(client)       false: nothing queued for this session
 *   persistence.hasRetained(patterns)     false: no retained message matches any of these filters
 *
 * aiot-sim's in-memory persistence (src/broker/persistence.ts) offers both. Another program using
 * the same Aedes copy sees no change unless its persistence offers them too.
 *
 * Aedes also announces every client that connects or goes, and every SUBSCRIBE and UNSUBSCRIBE,
 * by publishing on `$SYS/{broker id}/new/clients`, `/disconnect/clients`, `/new/subscribes` (the
 * subscriptions as JSON) and `/new/unsubscribes`, whether or not anything listens. Each now asks
 * the emitter first, through another optional synchronous method, and publishes as before when
 * the emitter does not offer it (mqemitter, mqemitter-redis) or answers that something listens:
 *
 *   mq.hasListeners(topic)                false: no subscription or listener matches this topic
 *
 * aiot-sim's emitter (src/broker/emitter.ts) offers it on a broker alone, and answers true on a
 * cluster node (the other nodes listen through Redis).
 *
 * Aedes' client watches its connection with `stream.finished()` besides its own 'end' and 'error'
 * listeners. A connection that is not a Node stream (no stream states: aiot-sim's in-process fleet
 * links are emitters with `read()` and `write()`) is taken for a legacy stream there, which adds
 * five listeners and their closures (`consumer-load`'s 10,600 devices after start: 159.6 MB of
 * heap with them, 148.5 MB without). Such a connection is watched for its 'close' instead (Aedes'
 * 'end' and 'error' listeners stay), and so is a stream that destroys itself once done and then
 * emits 'close', as a TCP socket does: there `finished()` adds the same five listeners and, when
 * the socket closes, a premature-close error with its stack trace. Measured with
 * `BENCH_ONLY=broker`'s connect task (8,000 devices over TCP, four runs of each in turn): 80-84 µs
 * of broker CPU a connection against 81-90 µs. Any other stream (a WebSocket's, which emits no
 * 'close' of its own) is watched as before. The two functions Aedes bound twice each are bound once.
 *
 * Aedes re-armed each client's keep-alive timer on every packet it read (`refresh()`, which unlinks
 * the timer from Node's list and appends it again, touching the timers beside it: cold in the
 * cache with thousands of clients, 277 ns a message in `consumer-load`). Each packet notes its time
 * instead, and the timer, when it fires, waits out what is left of the interval since the last
 * packet, or closes the connection as before.
 *
 * Aedes' client `close()` made an Error (capturing a stack trace) for the write callbacks still
 * waiting on a connection that closes, whether or not any wait: about 3 µs of every disconnect,
 * 207 of 395 ms of `close()` in a profile of 69,237 sessions going offline. It is made only when
 * one waits.
 *
 * Aedes wrote every packet through mqtt-packet's `writeToStream`, which writes an acknowledgement
 * (CONNACK, SUBACK, PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, PINGRESP) in three to five pieces
 * and calls `debug()` with arguments on the way. Each is now written as one buffer of the same
 * bytes, and `write()` gets what `writeToStream` returned for it; any other packet, or a field
 * `writeToStream` would refuse or write otherwise, goes through it as before. Writing PUBACKs in a
 * loop: 90 against 190-236 ns each.
 *
 * And one change to mqtt-packet, the parser Aedes gives every client: it keeps the bytes of a
 * packet not yet whole in a `bl()`, a BufferListStream, which is a readable-stream Duplex with
 * its two stream states; the parser only appends, reads and consumes, which the plain BufferList
 * the same package exports does alike. Measured with 106,000 devices (69,237 sessions) in one
 * process: about 2.7 KB of heap per connection less (1,518-1,524 MB against 1,304-1,356, two
 * runs each). MQTT.js clients in the same process use the same parser, and the same saving.
 *
 * Idempotent; a package other than the version below, or a file that does not read as expected,
 * is left as it is with a warning (the broker works, its connects cost more CPU or memory).
 * Usage: node scripts/patch-aedes.mjs [AEDES_DIR [MQTT_PACKET_DIR]]
 *   (default: the Aedes this package resolves and the mqtt-packet that Aedes resolves; a directory
 *   given patches that package only)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const VERSION = '1.2.0';
export const MARKER = 'aiot-sim fast path';

/**
 * The change that has Aedes publish one of its $SYS announcements only when something listens
 * for it: `emitLine` is the event Aedes emits just before it publishes the announcement, `broker`
 * what the code there calls the broker, `topic` the announcement's topic after the broker's id.
 */
function announceOnlyToListeners(file, emitLine, broker, topic) {
  const indent = emitLine.slice(0, emitLine.length - emitLine.trimStart().length);
  const publish = `${broker}.publish({\n`;
  return {
    file,
    before: `${emitLine}\n${indent}${publish}`,
    after: `${emitLine}\n${indent}// ${MARKER}: no announcement nobody listens for\n`
      + `${indent}if (typeof ${broker}.mq.hasListeners !== 'function' || ${broker}.mq.hasListeners($SYS_PREFIX + ${broker}.id + '/${topic}')) ${publish}`,
  };
}

/** Each change: the file, the exact text Aedes has, and what takes its place. */
export const CHANGES = [
  {
    file: 'lib/handlers/connect.js',
    before: `  const persistence = client.broker.persistence
  const outgoing = persistence.outgoingStream(client)

  client.resume()
`,
    after: `  const persistence = client.broker.persistence
  // ${MARKER}: no stream pipeline when the persistence says nothing is queued
  if (typeof persistence.hasOutgoing === 'function' && !persistence.hasOutgoing(client)) {
    client.resume()
    return done()
  }
  const outgoing = persistence.outgoingStream(client)

  client.resume()
`,
  },
  {
    file: 'lib/handlers/subscribe.js',
    before: `  if (topics.length > 0) {
    const persistence = broker.persistence
    const stream = persistence.createRetainedStreamCombi(topics)
`,
    after: `  if (topics.length > 0) {
    const persistence = broker.persistence
    // ${MARKER}: no retained stream when the persistence says none matches
    if (typeof persistence.hasRetained === 'function' && !persistence.hasRetained(topics)) return
    const stream = persistence.createRetainedStreamCombi(topics)
`,
  },
  // The broker's $SYS announcements of each client and subscription, published only when
  // something listens for them (an optional `hasListeners(topic)` on the emitter, `mq`).
  announceOnlyToListeners('aedes.js', "    this.emit('client', client)", 'this', 'new/clients'),
  announceOnlyToListeners('aedes.js', "    this.emit('clientDisconnect', client)", 'this', 'disconnect/clients'),
  announceOnlyToListeners('lib/handlers/unsubscribe.js', "    client.broker.emit('unsubscribe', packet.unsubscriptions, client)", 'client.broker', 'new/unsubscribes'),
  announceOnlyToListeners('lib/handlers/subscribe.js', "  broker.emit('subscribe', subs, client)", 'broker', 'new/subscribes'),
  {
    file: 'lib/client.js',
    before: `import { pipeline, finished } from 'stream'
`,
    after: `import { pipeline, finished } from 'stream'
// ${MARKER}: a socket emits 'close' itself (its stream states say they do not)
import { Socket } from 'net'
`,
  },
  {
    file: 'lib/client.js',
    before: `    this.on('error', this._onError)
    conn.on('error', this.emit.bind(this, 'error'))
    this._parser.on('error', this.emit.bind(this, 'error'))

    conn.on('end', this.close.bind(this))
    this._eos = finished(this.conn, this.close.bind(this))
`,
    after: `    this.on('error', this._onError)
    // ${MARKER}: one bound function for each, and a connection watched for its 'close' alone
    // when that says all stream.finished would: it is not a Node stream (finished would take it
    // for a legacy stream), or a stream that destroys itself once done, and says so with 'close'
    // (a socket). finished adds five listeners, their closures and, at the close, an error
    const emitError = this.emit.bind(this, 'error')
    const close = this.close.bind(this)
    conn.on('error', emitError)
    this._parser.on('error', emitError)

    conn.on('end', close)
    const rs = conn._readableState
    const ws = conn._writableState
    if ((rs === undefined && ws === undefined) || (rs && ws && rs.autoDestroy && ws.autoDestroy && !rs.destroyed &&
        ((rs.emitClose && ws.emitClose) || conn instanceof Socket))) {
      conn.on('close', close)
      this._eos = noop
    } else {
      this._eos = finished(this.conn, close)
    }
`,
  },
  {
    file: 'lib/client.js',
    before: `    // Flush pending drain callbacks with connection closed error
    const error = new Error('connection closed')
    const pending = this._pendingDrains
    this._pendingDrains = []
    for (let i = 0; i < pending.length; i++) {
      setImmediate(pending[i], error, this)
    }
`,
    after: `    // Flush pending drain callbacks with connection closed error
    const pending = this._pendingDrains
    this._pendingDrains = []
    // ${MARKER}: the error (and its stack trace) only when a callback waits for it
    if (pending.length > 0) {
      const error = new Error('connection closed')
      for (let i = 0; i < pending.length; i++) {
        setImmediate(pending[i], error, this)
      }
    }
`,
  },
  // Keep-alive by the time of the last packet, not by re-arming a timer on each one.
  {
    file: 'lib/client.js',
    before: `    this._keepaliveTimer = null
    this._keepaliveInterval = -1
`,
    after: `    this._keepaliveTimer = null
    this._keepaliveInterval = -1
    // ${MARKER}: when the last packet came (performance.now()), read when the keep-alive timer fires
    this._lastPacketAt = 0
`,
  },
  {
    file: 'lib/handlers/connect.js',
    before: `    // [MQTT-3.1.2-24]
    client._keepaliveInterval = (this.packet.keepalive * 1500) + 1
    client._keepaliveTimer = setTimeout(keepaliveTimeout, client._keepaliveInterval)
`,
    after: `    // [MQTT-3.1.2-24]
    client._keepaliveInterval = (this.packet.keepalive * 1500) + 1
    // ${MARKER}: each packet notes its time (handlers/index.js); the timer, when it fires, waits
    // out what is left of the interval since the last one, or closes the connection
    client._lastPacketAt = performance.now()
    function keepaliveCheck () {
      const left = client._lastPacketAt + client._keepaliveInterval - performance.now()
      if (left > 0) client._keepaliveTimer = setTimeout(keepaliveCheck, Math.ceil(left))
      else keepaliveTimeout()
    }
    client._keepaliveTimer = setTimeout(keepaliveCheck, client._keepaliveInterval)
`,
  },
  {
    file: 'lib/handlers/index.js',
    before: `  if (client._keepaliveInterval > 0) {
    client._keepaliveTimer.refresh()
  }
`,
    after: `  if (client._keepaliveInterval > 0) {
    // ${MARKER}: the time, not a timer re-armed (which unlinks it from its list and appends it
    // again, touching the timers beside it: cold in the cache with thousands of clients)
    client._lastPacketAt = performance.now()
  }
`,
  },
  // The acknowledgements as one buffer each, not through mqtt-packet's writeToStream.
  {
    file: 'lib/write.js',
    before: `import mqtt from 'mqtt-packet'

function write (client, packet, done) {
  let error = null
  if (client.connecting || client.connected) {
    try {
      const result = mqtt.writeToStream(packet, client.conn)
`,
    after: `import mqtt from 'mqtt-packet'

// ${MARKER}: the acknowledgements a broker writes most, each as one buffer of the bytes
// mqtt-packet's writeToStream writes for it in three to five pieces (MQTT 3.1.1, the version
// write() asks it for), and what writeToStream returns for it. A packet with a field writeToStream
// would refuse or write otherwise (a packet id or code out of range, a dup flag) goes to it as before
const CONFIRMATIONS = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70, unsuback: 0xb0 }
const PINGRESP = Buffer.from([0xd0, 0])

function isByte (n) {
  return Number.isInteger(n) && n >= 0 && n <= 0xff
}

function isPacketId (n) {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff
}

function writeAck (packet, conn) {
  const cmd = packet.cmd
  if (cmd === 'connack') {
    const rc = packet.returnCode
    if (!isByte(rc)) return undefined
    conn.write(Buffer.from([0x20, 2, packet.sessionPresent ? 1 : 0, rc]))
    return true
  }
  if (cmd === 'pingresp') return conn.write(PINGRESP)
  const id = packet.messageId
  if (!isPacketId(id) || packet.dup) return undefined
  if (cmd === 'suback') {
    const granted = packet.granted
    if (!Array.isArray(granted) || granted.length === 0 || granted.length > 125) return undefined
    const bytes = Buffer.allocUnsafe(4 + granted.length)
    bytes[0] = 0x90
    bytes[1] = 2 + granted.length
    bytes[2] = id >> 8
    bytes[3] = id & 0xff
    for (let i = 0; i < granted.length; i++) {
      if (!isByte(granted[i])) return undefined
      bytes[4 + i] = granted[i]
    }
    return conn.write(bytes)
  }
  const header = CONFIRMATIONS[cmd]
  if (header === undefined) return undefined
  conn.write(Buffer.from([header, 2, id >> 8, id & 0xff]))
  return true
}

function write (client, packet, done) {
  let error = null
  if (client.connecting || client.connected) {
    try {
      const result = writeAck(packet, client.conn) ?? mqtt.writeToStream(packet, client.conn)
`,
  },
];

/** The change to mqtt-packet's parser (the version it is written for, the exact text, its replacement). */
export const PARSER_VERSION = '9.0.2';
export const PARSER_CHANGES = [
  {
    file: 'parser.js',
    before: `    this._list = bl()
`,
    after: `    // ${MARKER}: the plain buffer list; the parser never uses it as a stream
    this._list = new bl.BufferList()
`,
  },
];

/** Applies the changes to the Aedes in `dir`; returns what happened to each file, in words. */
export function patchAedes(dir) {
  return patchPackage(dir, 'Aedes', VERSION, CHANGES, 'the handler');
}

/** Applies the change to the mqtt-packet in `dir`; returns what happened, in words. */
export function patchParser(dir) {
  return patchPackage(dir, 'mqtt-packet', PARSER_VERSION, PARSER_CHANGES, 'the parser');
}

function patchPackage(dir, name, wanted, changes, part) {
  let version;
  try {
    version = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version;
  } catch (err) {
    return [{ file: join(dir, 'package.json'), applied: false, why: `cannot read it (${err.code ?? err.message})` }];
  }
  if (version !== wanted) {
    return [{ file: join(dir, 'package.json'), applied: false, why: `${name} ${version}, the fast paths are written for ${wanted}` }];
  }
  return changes.map(({ file, before, after }) => {
    const path = join(dir, file);
    const text = readFileSync(path, 'utf8');
    if (text.includes(after)) return { file: path, applied: true, why: 'already applied' };
    const at = text.indexOf(before);
    if (at < 0 || text.indexOf(before, at + 1) >= 0) return { file: path, applied: false, why: `${part} does not read as expected` };
    writeFileSync(path, text.slice(0, at) + after + text.slice(at + before.length));
    return { file: path, applied: true, why: 'applied' };
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  let [aedesDir, parserDir] = process.argv.slice(2);
  if (!aedesDir) {
    try {
      // aedes.js sits at the package's root (its package.json is not among its exports)
      const aedesMain = fileURLToPath(import.meta.resolve('aedes'));
      aedesDir = dirname(aedesMain);
      parserDir = dirname(createRequire(aedesMain).resolve('mqtt-packet'));
    } catch {
      console.warn('aiot-sim: Aedes is not installed; no fast paths to apply');
      process.exit(0);
    }
  }
  for (const r of patchAedes(aedesDir)) {
    if (!r.applied) console.warn(`aiot-sim: Aedes fast path not applied to ${r.file}: ${r.why}. The broker works; its connects and disconnects cost more CPU (a connect up to about twice).`);
  }
  for (const r of parserDir ? patchParser(parserDir) : []) {
    if (!r.applied) console.warn(`aiot-sim: mqtt-packet fast path not applied to ${r.file}: ${r.why}. The broker works; each connection holds about 2.7 KB more.`);
  }
}
