/**
 * Coalesce a connection's writes into one buffer and one write per event-loop turn, on every
 * transport: TCP sockets, MQTT-over-WebSocket streams and in-process pipes.
 *
 * Aedes writes each packet with mqtt-packet, which writes a PUBLISH as five small chunks (header,
 * length, topic length, topic, payload): on a socket each became a syscall's worth of work, on a
 * WebSocket stream each became its own WebSocket frame, on an in-process pipe each its own push.
 * Here every write of a turn is copied into one buffer per connection, and all connections
 * written to in the turn are flushed together in one setImmediate, after every delivery callback
 * of the turn. A connection holds no buffer while idle (a fleet has many idle connections).
 *
 * `Outbox.publish()` serialises a PUBLISH straight into that buffer (the broker's delivery path,
 * deliveries.ts), without building a packet object or going through mqtt-packet.
 *
 * `write()` reports backpressure only beyond `softLimitBytes` (not at the stream's highWaterMark,
 * which one turn of deliveries exceeds): below it Aedes keeps delivering; the broker's
 * OverloadGuard bounds what a slow subscriber can accumulate.
 */
import type { BrokerConnection } from './connection.js';
import { Slot } from './slot.js';
import { remainingLengthSize, writeRemainingLength } from '../contract/mqtt-length.js';

type Callback = (err?: Error | null) => void;

/** Default bound past which `write()` asks the writer to wait for 'drain', bytes. */
export const SOFT_LIMIT_BYTES = 1 << 20;
/** Smallest buffer taken for a turn's writes (small ones come from Node's shared pool). */
const MIN_SLAB = 512;
/** A connection's next buffer is sized from its last turn's bytes, at most this. */
const MAX_HINT = 1 << 20;

/** Outboxes written to since the last flush, flushed together in one setImmediate. */
let dirty: Outbox[] = [];
/** Callbacks to run once this turn's writes are flushed (deliveries.ts completes deliveries here). */
let completions: Array<() => void> = [];
let scheduled = false;

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(flushAll);
}

function flushAll(): void {
  scheduled = false;
  const boxes = dirty;
  dirty = [];
  for (const box of boxes) box.flush();
  const done = completions;
  completions = [];
  let i = 0;
  try {
    while (i < done.length) done[i++]!();
  } finally {
    if (i < done.length) {
      // One threw: the others still run, on the next turn.
      completions = done.slice(i).concat(completions);
      schedule();
    }
  }
}

/** Run `fn` after this turn's writes are flushed: one setImmediate for all of them, instead of one each. */
export function afterFlush(fn: () => void): void {
  completions.push(fn);
  schedule();
}

/** The write side of one broker connection. */
export class Outbox {
  private slab: Buffer | null = null;
  private used = 0;
  /** Bytes the last flush carried: the next turn's buffer starts at this size. */
  private hint = MIN_SLAB;
  private callbacks: Callback[] | null = null;
  private queued = false;
  /** The stream's own `write`, `end` and `destroy` (called with the stream as `this`). */
  readonly rawWrite: BrokerConnection['write'];
  readonly rawEnd: BrokerConnection['end'];
  readonly rawDestroy: BrokerConnection['destroy'];

  constructor(private readonly stream: BrokerConnection, private readonly softLimitBytes = SOFT_LIMIT_BYTES) {
    this.rawWrite = stream.write;
    this.rawEnd = stream.end;
    this.rawDestroy = stream.destroy;
  }

  /** Bytes waiting: in this turn's buffer and in the stream's own. */
  get writableLength(): number {
    return this.used + this.stream.writableLength;
  }

  /** Whether more may be written before the stream drains (see the module comment). */
  get writable(): boolean {
    return this.writableLength < this.softLimitBytes;
  }

  /** Append raw bytes (Aedes' own writes: CONNACK, SUBACK, PUBACK, ...). Returns `writable`. */
  append(chunk: Uint8Array | string, encoding: BufferEncoding = 'utf8', cb?: Callback): boolean {
    if (typeof chunk === 'string') {
      const n = Buffer.byteLength(chunk, encoding);
      const slab = this.room(n);
      this.used += slab.write(chunk, this.used, n, encoding);
    } else {
      const slab = this.room(chunk.length);
      slab.set(chunk, this.used);
      this.used += chunk.length;
    }
    if (cb) (this.callbacks ??= []).push(cb);
    return this.writable;
  }

  /**
   * Append a PUBLISH packet (MQTT 3.1.1: fixed header, topic, packet id when QoS > 0, payload).
   * Returns `writable`.
   */
  publish(topic: string, payload: Uint8Array, qos: number, messageId: number, retain: boolean, dup: boolean): boolean {
    const ascii = isAscii(topic);
    const topicBytes = ascii ? topic.length : Buffer.byteLength(topic);
    const remaining = 2 + topicBytes + (qos > 0 ? 2 : 0) + payload.length;
    const slab = this.room(1 + remainingLengthSize(remaining) + remaining);
    let at = this.used;
    slab[at++] = 0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0);
    at = writeRemainingLength(slab, at, remaining);
    slab[at++] = topicBytes >> 8;
    slab[at++] = topicBytes & 0xff;
    at += slab.write(topic, at, topicBytes, ascii ? 'latin1' : 'utf8');
    if (qos > 0) {
      slab[at++] = messageId >> 8;
      slab[at++] = messageId & 0xff;
    }
    slab.set(payload, at);
    this.used = at + payload.length;
    return this.writable;
  }

  /** Hand what this turn wrote to the stream (now, not at the end of the turn). */
  flush(): void {
    this.queued = false;
    const slab = this.slab;
    if (slab === null) return;
    const out = this.used === slab.length ? slab : slab.subarray(0, this.used);
    const cbs = this.callbacks;
    this.hint = Math.max(MIN_SLAB, Math.min(this.used, MAX_HINT));
    this.slab = null;
    this.used = 0;
    this.callbacks = null;
    if (this.stream.destroyed) {
      if (cbs) for (const cb of cbs) cb(new Error('connection closed'));
      return;
    }
    this.rawWrite.call(this.stream, out, cbs ? (err) => { for (const cb of cbs) cb(err); } : undefined);
  }

  /** The buffer of this turn, with room for `n` more bytes; the outbox is queued for the turn's flush. */
  private room(n: number): Buffer {
    let slab = this.slab;
    if (slab === null) {
      slab = this.slab = Buffer.allocUnsafe(Math.max(this.hint, n));
      if (!this.queued) {
        this.queued = true;
        dirty.push(this);
        schedule();
      }
    } else if (this.used + n > slab.length) {
      const bigger = Buffer.allocUnsafe(Math.max(slab.length * 2, this.used + n));
      slab.copy(bigger, 0, 0, this.used);
      slab = this.slab = bigger;
    }
    return slab;
  }
}

/** Whether every UTF-16 unit of `s` is ASCII (so its UTF-8 length is its length). */
function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Each coalesced stream's outbox, kept on the stream (shared `write`, `end`, `destroy`: no closures per connection). */
const boxes = new Slot<BrokerConnection, Outbox>('aiot-sim outbox');

/** The outbox `coalesceWrites` routed `stream`'s writes through, if any. */
export function outboxOf(stream: BrokerConnection): Outbox | undefined {
  return boxes.get(stream);
}

function coalescedWrite(this: BrokerConnection, chunk: Uint8Array | string, encoding?: BufferEncoding | Callback, cb?: Callback): boolean {
  if (typeof encoding === 'function') {
    cb = encoding;
    encoding = undefined;
  }
  return boxes.get(this)!.append(chunk, typeof encoding === 'string' ? encoding : 'utf8', cb);
}

function coalescedEnd(this: BrokerConnection, ...args: unknown[]): BrokerConnection {
  const box = boxes.get(this)!;
  box.flush();
  return (box.rawEnd as (...a: unknown[]) => BrokerConnection).apply(this, args);
}

function coalescedDestroy(this: BrokerConnection, err?: Error): BrokerConnection {
  const box = boxes.get(this)!;
  if (!this.destroyed && this.writable) box.flush();
  return box.rawDestroy.call(this, err);
}

/**
 * Route every write to `stream` through a new Outbox (returned). mqtt-packet corks a stream per
 * packet and schedules an uncork on the next tick when the stream has cork(); with the writes
 * already coalesced that is a nextTick per packet for nothing, so the stream offers no cork()
 * (nothing else corks a broker connection). `end()` and `destroy()` flush first, so what was
 * written before a connection is closed is still handed to it, as without coalescing.
 */
export function coalesceWrites(stream: BrokerConnection, softLimitBytes = SOFT_LIMIT_BYTES): Outbox {
  const box = new Outbox(stream, softLimitBytes);
  boxes.set(stream, box);
  stream.write = coalescedWrite as BrokerConnection['write'];
  (stream as unknown as { cork?: () => void; uncork?: () => void }).cork = undefined;
  (stream as unknown as { cork?: () => void; uncork?: () => void }).uncork = undefined;
  stream.end = coalescedEnd as BrokerConnection['end'];
  stream.destroy = coalescedDestroy;
  return box;
}
