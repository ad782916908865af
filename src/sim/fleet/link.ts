/**
 * The broker's end of one fleet session's connection. The broker (Aedes) reads and writes
 * connections as Node streams, so this end is a Duplex; the device end is not a stream at all:
 * the fleet engine `push()`es the device's packets into it, and what the broker writes goes
 * straight to the engine's one reader of broker bytes (`LinkOwner.received`), without the
 * Writable machinery, callbacks per chunk or a nextTick per packet.
 *
 * The read side keeps the device's bytes in a list of its own, too: Aedes reads a connection
 * only with `read()` when it says 'readable', so that is all this end offers it. A push onto an
 * empty list asks for one 'readable', and the links that asked in one turn hear it together on
 * the next tick (one tick for the lot, where Node's Readable queued two per packet: one to say
 * 'readable' and one to read ahead). What Aedes reads is the list joined, as Readable gives it.
 * The end of the stream (`push(null)`) and everything after it go through Readable as before.
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

/** Links with bytes pushed this turn whose 'readable' is due on the next tick, in order of push. */
let due: FleetLink[] = [];
let dueScheduled = false;

function sayReadable(): void {
  dueScheduled = false;
  const links = due;
  due = [];
  for (const link of links) {
    link.readDue = false;
    if (link.txChunks !== null && !link.destroyed) link.emit('readable');
  }
}

export class FleetLink extends Duplex {
  /** What the broker wrote and the engine has not parsed yet. */
  rxChunks: Buffer[] | null = null;
  /** Whether the engine has this link on its list of links to parse. */
  rxQueued = false;
  /** What the device pushed and the broker has not read yet. */
  txChunks: Buffer[] | null = null;
  private txBytes = 0;
  /** Whether a 'readable' is due for this link on the next tick. */
  readDue = false;
  /** A push said "wait" (the list reached the high-water mark): the owner hears when the broker reads. */
  private full = false;
  private ended = false;

  constructor(private readonly owner: LinkOwner, readonly slot: number) {
    super({ allowHalfOpen: false, highWaterMark: HIGH_WATER_MARK, decodeStrings: false });
    // mqtt-packet corks a stream that can be corked and uncorks it on the next tick, once per
    // packet: this end hands every write over at once, so it offers no cork().
    (this as { cork?: unknown }).cork = undefined;
  }

  /** The device's bytes for the broker; false once the broker has a high-water mark's worth unread. */
  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null || chunk === undefined) {
      this.ended = true;
      return super.push(null);
    }
    if (this.destroyed || this.ended) return false;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : (chunk as Buffer);
    if (this.txChunks === null) {
      this.txChunks = [bytes];
      if (!this.readDue) {
        this.readDue = true;
        due.push(this);
        if (!dueScheduled) {
          dueScheduled = true;
          process.nextTick(sayReadable);
        }
      }
    } else this.txChunks.push(bytes);
    this.txBytes += bytes.length;
    if (this.txBytes < HIGH_WATER_MARK) return true;
    this.full = true;
    return false;
  }

  /** All the device's bytes not read yet, joined (Aedes reads with `read(null)`); then the stream's end. */
  override read(size?: number): Buffer | null {
    const chunks = this.txChunks;
    // Nothing unread: Readable has nothing either until the stream's end (it only holds that).
    if (chunks === null && !this.ended && size !== 0) return null;
    if (chunks === null || size === 0) return super.read(size) as Buffer | null;
    const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.txBytes);
    this.txChunks = null;
    this.txBytes = 0;
    if (this.full) {
      this.full = false;
      this.owner.readable(this);
    }
    return bytes;
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
    this.txChunks = null;
    this.txBytes = 0;
    this.owner.linkClosed(this);
    cb(err);
  }
}
