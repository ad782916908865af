/**
 * An in-memory byte pipe: two Duplex ends, what one writes the other reads. Devices in the same
 * process reach the embedded broker through it, speaking real MQTT packets without a socket or a
 * file descriptor each. Writes wait while the reader's buffer is full (backpressure).
 */
import { Duplex } from 'node:stream';

class PipeEnd extends Duplex {
  peer!: PipeEnd;
  private blocked: ((err?: Error | null) => void) | null = null;

  constructor() {
    super({ allowHalfOpen: false, highWaterMark: 64 * 1024 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.peer.destroyed) {
      cb(new Error('in-process pipe closed'));
      return;
    }
    if (this.peer.push(chunk)) cb();
    else this.peer.blocked = cb;
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this._write(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map((c) => c.chunk)), 'binary', cb);
  }

  override _read(): void {
    const cb = this.blocked;
    if (cb) {
      this.blocked = null;
      cb();
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const pending = this.blocked;
    this.blocked = null;
    pending?.(new Error('in-process pipe closed'));
    if (!this.peer.destroyed) this.peer.destroy();
    cb(err);
  }
}

/** Two connected ends: give one to the broker, the other to an MQTT client. */
export function createDuplexPair(): [Duplex, Duplex] {
  const a = new PipeEnd();
  const b = new PipeEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
