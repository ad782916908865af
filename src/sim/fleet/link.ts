/**
 * The broker's end of one fleet session's connection. The broker (Aedes) reads and writes
 * connections as Node streams, so this end is a Duplex; the device end is not a stream at all:
 * the fleet engine `push()`es the device's packets into it, and what the broker writes goes
 * straight to the engine's one reader of broker bytes (`LinkOwner.received`), without the
 * Writable machinery, callbacks per chunk or a nextTick per packet.
 *
 * The reading side keeps its own list of pushed packets too. Aedes reads a connection one way
 * only: on 'readable' it takes everything there is with `read()` and parses it. A Readable's
 * buffer does far more per packet for that (a nextTick to emit 'readable', another to read ahead
 * through `_read`, its list and length bookkeeping, a copy to join the list on `read()`), and in
 * fast mode every simulated message passes through it once. Here a push appends to the link's list
 * and puts the link on one list of links to wake, woken in one nextTick for all; `read()` hands
 * over the list joined, and `_read`'s "the broker reads again" is told only to a device that was
 * told to wait. The stream's own machinery still carries the end (`push(null)`), `read(0)`, and
 * any reader that reads another way (`read(n)`, 'data'): what the link holds goes into the
 * stream's buffer first, in order, and the stream takes over from there.
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

/** Links with pushed bytes the broker has not been told of yet, told in one nextTick. */
let toWake: FleetLink[] = [];
let wakeScheduled = false;

function wakeAll(): void {
  wakeScheduled = false;
  const links = toWake;
  toWake = [];
  for (const link of links) link.wake();
}

export class FleetLink extends Duplex {
  /** What the broker wrote and the engine has not parsed yet. */
  rxChunks: Buffer[] | null = null;
  /** Whether the engine has this link on its list of links to parse. */
  rxQueued = false;
  /** Packets the device pushed and the broker has not read. */
  private txChunks: Buffer[] = [];
  private txBytes = 0;
  /** Whether the link is on the list of links to wake. */
  private txWaking = false;
  /** Whether a push said "wait" (so a read must say "go on"). */
  private txFull = false;
  /** Once the stream's own buffer is in use (an end, or another way of reading), every push goes there. */
  private streamed = false;

  constructor(private readonly owner: LinkOwner, readonly slot: number) {
    super({ allowHalfOpen: false, highWaterMark: HIGH_WATER_MARK, decodeStrings: false });
    // mqtt-packet corks a stream that can be corked and uncorks it on the next tick, once per
    // packet: this end hands every write over at once, so it offers no cork().
    (this as { cork?: unknown }).cork = undefined;
  }

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (this.streamed || chunk === null || !(chunk instanceof Buffer) || this.readableFlowing === true) {
      this.spill();
      return super.push(chunk, encoding);
    }
    if (this.destroyed) return false;
    this.txChunks.push(chunk);
    this.txBytes += chunk.length;
    if (!this.txWaking) {
      this.txWaking = true;
      toWake.push(this);
      if (!wakeScheduled) {
        wakeScheduled = true;
        process.nextTick(wakeAll);
      }
    }
    if (this.txBytes < HIGH_WATER_MARK) return true;
    this.txFull = true;
    return false;
  }

  override read(n?: number): Buffer | null {
    // read(0) asks the stream to fill its buffer and takes nothing (a Readable does it when a
    // 'readable' listener comes): nothing here to hand over.
    if (n === 0) return super.read(0) as Buffer | null;
    if (this.txBytes > 0 && (n === undefined || n === null) && !this.streamed) {
      const chunks = this.txChunks;
      const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.txBytes);
      this.txChunks = [];
      this.txBytes = 0;
      if (this.txFull) {
        this.txFull = false;
        this.owner.readable(this);
      }
      return buf;
    }
    // Read by size: the stream's buffer takes over (with what the link holds, in order).
    if (this.txBytes > 0) this.spill();
    return super.read(n) as Buffer | null;
  }

  /** Tell the reader there is something to read (from the nextTick that wakes the pushed-to links). */
  wake(): void {
    this.txWaking = false;
    if (this.txBytes > 0 && !this.destroyed && !this.streamed) this.emit('readable');
  }

  /** Hand what the link holds to the stream's own buffer, and leave every later push to it. */
  private spill(): void {
    if (this.streamed) return;
    this.streamed = true;
    if (this.txBytes === 0) return;
    const chunks = this.txChunks;
    this.txChunks = [];
    this.txBytes = 0;
    for (const c of chunks) super.push(c);
  }

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
    this.txChunks = [];
    this.txBytes = 0;
    this.owner.linkClosed(this);
    cb(err);
  }
}
