/**
 * The broker's end of one fleet session's connection. The broker (Aedes) reads and writes
 * connections as Node streams, so this end is a Duplex; the device end is not a stream at all:
 * the fleet engine `push()`es the device's packets into it, and what the broker writes goes
 * straight to the engine's one reader of broker bytes (`LinkOwner.received`), without the
 * Writable machinery, callbacks per chunk or a nextTick per packet.
 *
 * The read side keeps the device's bytes in a list of its own, too, while the reader reads the
 * way Aedes does: on 'readable', everything there is (`read()` without a size). A push asks for
 * one 'readable' on the next tick, and the links pushed to in one turn hear it together (one
 * tick for the lot, where Node's Readable queued two per packet: one to say 'readable' and one
 * to read ahead); what the reader gets is the list joined, as Readable gives it. A reader that
 * reads by size or flowing, and the end of the stream (`push(null)`), get Node's Readable, with
 * whatever the list held handed to it first, so the bytes stay in order.
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
  for (let i = 0; i < links.length; i++) {
    const link = links[i]!;
    link.readDue = false;
    if (link.txChunks === null || link.destroyed) continue;
    try {
      link.emit('readable');
    } catch (err) {
      // A reader that throws loses its own connection (the error goes to it), not the others'.
      link.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

function scheduleReadable(): void {
  if (dueScheduled) return;
  dueScheduled = true;
  process.nextTick(sayReadable);
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
      this.handOver();
      return super.push(null);
    }
    if (this.destroyed || this.ended) return false;
    // Not read on 'readable' (no reader yet, or a flowing one), or Readable holds bytes already:
    // Node's Readable, after what waits here.
    if (this.readableFlowing !== false || this.readableLength > 0) {
      this.handOver();
      return super.push(chunk, encoding);
    }
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : (chunk as Buffer);
    if (this.txChunks === null) this.txChunks = [bytes];
    else this.txChunks.push(bytes);
    this.txBytes += bytes.length;
    if (!this.readDue) {
      this.readDue = true;
      due.push(this);
      scheduleReadable();
    }
    if (this.txBytes < HIGH_WATER_MARK) return true;
    this.full = true;
    return false;
  }

  /** Everything unread, joined (how Aedes reads: `read(null)` on 'readable'); by size or flowing, through Readable. */
  override read(size?: number): Buffer | null {
    const chunks = this.txChunks;
    if (size === 0) return super.read(0) as Buffer | null;
    if (chunks === null) {
      // Nothing unread: Readable has nothing either, until the stream's end or a reader of its kind.
      if ((size === undefined || size === null) && this.readableFlowing === false && !this.ended) return null;
      return super.read(size) as Buffer | null;
    }
    if ((size !== undefined && size !== null) || this.readableFlowing !== false) {
      this.handOver();
      return super.read(size) as Buffer | null;
    }
    const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.txBytes);
    this.txChunks = null;
    this.txBytes = 0;
    if (this.full) {
      this.full = false;
      this.owner.readable(this);
    }
    return bytes;
  }

  /** Give what the list holds to Node's Readable (a reader of another kind, or the end). */
  private handOver(): void {
    const chunks = this.txChunks;
    if (chunks === null) return;
    this.txChunks = null;
    this.txBytes = 0;
    this.full = false;
    for (const c of chunks) super.push(c);
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
