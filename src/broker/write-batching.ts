/**
 * Coalesce a connection's writes into one buffer and one syscall per event-loop turn.
 *
 * Aedes delivers every message in its own setImmediate callback, and mqtt-packet writes each
 * PUBLISH as five small chunks (header, length, topic length, topic string, payload), uncorking
 * at the next microtask: so each delivered message became its own `writev` of five chunks, and
 * at high rates the broker thread spent a third of its time there. Here writes are copied into
 * one growing buffer and handed to the socket once, in a setImmediate that runs after every
 * delivery callback of the turn.
 *
 * `write()` reports backpressure only beyond `softLimitBytes` (not at the socket's 16 KiB
 * highWaterMark, which one turn of deliveries exceeds): below it Aedes keeps delivering; the
 * broker's OverloadGuard bounds what a slow subscriber can accumulate.
 */
import type { Socket } from 'node:net';

type Callback = (err?: Error | null) => void;

export function coalesceWrites(socket: Socket, softLimitBytes = 1 << 20): void {
  let slab = Buffer.allocUnsafe(16 * 1024);
  let used = 0;
  let callbacks: Callback[] = [];
  let scheduled = false;
  const write = socket.write.bind(socket) as (chunk: Buffer, cb?: Callback) => boolean;
  const end = socket.end.bind(socket) as (...args: unknown[]) => Socket;

  const flush = (): void => {
    scheduled = false;
    if (used === 0) return;
    const out = used === slab.length ? slab : slab.subarray(0, used);
    const cbs = callbacks;
    slab = Buffer.allocUnsafe(Math.max(16 * 1024, Math.min(used * 2, 1 << 20)));
    used = 0;
    callbacks = [];
    if (socket.destroyed) {
      for (const cb of cbs) cb(new Error('connection closed'));
      return;
    }
    write(out, cbs.length ? (err) => { for (const cb of cbs) cb(err); } : undefined);
  };

  const room = (n: number): void => {
    if (used + n <= slab.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(slab.length * 2, used + n));
    slab.copy(bigger, 0, 0, used);
    slab = bigger;
  };

  socket.write = function coalescedWrite(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    if (typeof encoding === 'function') { cb = encoding; encoding = undefined; }
    if (typeof chunk === 'string') {
      const enc = (typeof encoding === 'string' ? encoding : 'utf8') as BufferEncoding;
      const n = Buffer.byteLength(chunk, enc);
      room(n);
      used += slab.write(chunk, used, n, enc);
    } else {
      const b = chunk as Uint8Array;
      room(b.length);
      slab.set(b, used);
      used += b.length;
    }
    if (typeof cb === 'function') callbacks.push(cb as Callback);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
    // Only the socket's own backlog: when it is over the limit its last write returned false, so `drain` will come.
    return socket.writableLength < softLimitBytes;
  } as Socket['write'];

  // mqtt-packet corks the stream per packet and schedules an uncork on the next tick when the
  // stream has cork(); with the writes already coalesced here that is a nextTick per delivered
  // message for nothing, so this socket offers no cork() (nothing else corks a broker socket).
  (socket as unknown as { cork?: () => void; uncork?: () => void }).cork = undefined;
  (socket as unknown as { cork?: () => void; uncork?: () => void }).uncork = undefined;

  socket.end = function coalescedEnd(...args: unknown[]): Socket {
    flush();
    return end(...args);
  } as Socket['end'];
}
