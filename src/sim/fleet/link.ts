/**
 * The broker's end of one fleet session's connection. The broker (Aedes) reads and writes
 * connections as Node streams, so this end is a Duplex; the device end is not a stream at all:
 * the fleet engine `push()`es the device's packets into it, and what the broker writes goes
 * straight to the engine's one reader of broker bytes (`LinkOwner.received`), without the
 * Writable machinery, callbacks per chunk or a nextTick per packet.
 */
import { Duplex } from 'node:stream';

/** What the link reports to: the fleet engine. */
export interface LinkOwner {
  /** Bytes the broker wrote to the device (part of a packet, or several). */
  received(link: FleetLink, bytes: Buffer): void;
  /** The broker reads again after the link's buffer was full. */
  readable(link: FleetLink): void;
  /** The connection is gone (either end closed it). */
  linkClosed(link: FleetLink): void;
}

/** Bytes the broker may have unread in a link before `push()` says to wait (as a socket's buffer). */
const HIGH_WATER_MARK = 64 * 1024;

export class FleetLink extends Duplex {
  /** What the broker wrote and the engine has not parsed yet. */
  rxChunks: Buffer[] | null = null;
  /** Whether the engine has this link on its list of links to parse. */
  rxQueued = false;

  constructor(private readonly owner: LinkOwner, readonly slot: number) {
    super({ allowHalfOpen: false, highWaterMark: HIGH_WATER_MARK, decodeStrings: false });
    // mqtt-packet corks a stream that can be corked and uncorks it on the next tick, once per
    // packet: this end hands every write over at once, so it offers no cork().
    (this as { cork?: unknown }).cork = undefined;
  }

  /** The broker's writes, straight to the engine (never buffered here, never backpressured). */
  override write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
    if (typeof encoding === 'function') cb = encoding;
    if (!this.destroyed) {
      this.owner.received(this, typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : (chunk as Buffer));
    }
    if (typeof cb === 'function') process.nextTick(cb as () => void);
    return true;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (!this.destroyed) this.owner.received(this, chunk);
    cb();
  }

  override _read(): void {
    this.owner.readable(this);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.owner.linkClosed(this);
    cb(err);
  }
}
