/**
 * The broker's end of one fleet session's connection, and nothing more than the broker uses of
 * one: an EventEmitter that Aedes reads the way it reads every connection ('readable', then
 * `read()` of everything there is), writes with `write()`, watches with 'end', 'error' and 'close'
 * (the install step has Aedes listen for 'close' itself; an Aedes without it watches the link
 * through `stream.finished`, which takes any emitter with `write()` as a stream), and destroys.
 *
 * It is not a Node Duplex. A Duplex carries two stream states, its buffers and its listeners:
 * about 1.5 KB a connection, copied by every young-generation collection while a fleet starts,
 * and three more objects a message touches (the link, its readable state, its writable state)
 * when it is cold in the cache, as every device's is in a fleet of thousands. So the fleet engine
 * `push()`es the device's packets into a list of the link's own, and what the broker writes goes
 * straight to the engine's one reader of broker bytes (`LinkOwner.received`).
 *
 * A push asks for one 'readable' on the next tick, and the links pushed to in one turn hear it
 * together (one tick for the lot); what the reader gets is the list joined. `push(null)` ends the
 * device's side: once the reader has read what the list held, the link says 'end' and closes, as
 * a socket whose peer closed does.
 *
 * Before it pushes a packet, the fleet offers it (`offer`) to the broker serving the link, which
 * takes a QoS 0 PUBLISH at once when nothing pushed before is unread and reading it would serve it
 * the same way (broker/connection.ts, `DirectLane`).
 */
import { EventEmitter } from 'node:events';
import type { BrokerConnection, DirectLane } from '../../broker/connection.js';

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

/** Links whose 'readable' (or 'end') is due on the next tick, in order of push. */
let due: FleetLink[] = [];
let dueScheduled = false;

function sayReadable(): void {
  dueScheduled = false;
  const links = due;
  due = [];
  for (let i = 0; i < links.length; i++) {
    const link = links[i]!;
    link.readDue = false;
    if (link.destroyed) continue;
    try {
      if (link.txChunks !== null) link.emit('readable');
      else if (link.ending) link.finish();
    } catch (err) {
      // A reader that throws loses its own connection (the error goes to it), not the others'.
      link.destroy(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

function emitClose(link: FleetLink, err: Error | null | undefined): void {
  if (err) link.emit('error', err);
  link.closed = true;
  link.emit('close');
}

export class FleetLink extends EventEmitter implements DirectLane {
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
  /** The device ended its side (`push(null)`): 'end' follows what the list holds. */
  ending = false;
  destroyed = false;
  /** 'close' was emitted (read by `stream.finished`, where Aedes watches the link with it). */
  closed = false;
  /** Set by the broker that serves the link: it may take a whole packet at once (see `offer`). */
  direct: ((conn: BrokerConnection, packet: Buffer) => boolean) | null = null;
  /** Nothing waits in the link: what the broker writes is handed over at once (read by write batching). */
  readonly writableLength = 0;

  constructor(private readonly owner: LinkOwner, readonly slot: number) {
    super();
  }

  /** Whether the broker may write (a Writable's `writable`, read by write batching). */
  get writable(): boolean {
    return !this.destroyed;
  }

  /**
   * The device's bytes for the broker, or null for the end of them; false once the broker has a
   * high-water mark's worth unread (or the link is closed or ended).
   */
  push(chunk: Buffer | string | null, encoding?: BufferEncoding): boolean {
    if (this.destroyed || this.ending) return false;
    if (chunk === null) {
      this.ending = true;
      this.due();
      return false;
    }
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    if (this.txChunks === null) this.txChunks = [bytes];
    else this.txChunks.push(bytes);
    this.txBytes += bytes.length;
    this.due();
    if (this.txBytes < HIGH_WATER_MARK) return true;
    this.full = true;
    return false;
  }

  /**
   * Offer one whole packet to the broker before pushing it: taken at once (true) only while nothing
   * pushed before is unread, so it cannot overtake it; otherwise (false) the caller pushes it.
   */
  offer(packet: Buffer): boolean {
    return this.direct !== null && this.txChunks === null && !this.destroyed && !this.ending && this.direct(this, packet);
  }

  /** Everything unread, joined (how Aedes reads: `read(null)` on 'readable'), or the first `size` bytes of it. */
  read(size?: number | null): Buffer | null {
    const chunks = this.txChunks;
    if (chunks === null || size === 0) return null;
    let bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.txBytes);
    if (size !== undefined && size !== null && size < bytes.length) {
      const rest = bytes.subarray(size);
      bytes = bytes.subarray(0, size);
      this.txChunks = [rest];
      this.txBytes = rest.length;
    } else {
      this.txChunks = null;
      this.txBytes = 0;
    }
    if (this.full && this.txBytes < HIGH_WATER_MARK) {
      this.full = false;
      this.owner.readable(this);
    }
    if (this.ending && this.txChunks === null) this.due();
    return bytes;
  }

  /** The broker's writes, straight to the engine (never buffered here, never backpressured). */
  write(chunk: Buffer | string, encoding?: BufferEncoding | ((err?: Error | null) => void), cb?: (err?: Error | null) => void): boolean {
    if (typeof encoding === 'function') cb = encoding;
    if (!this.destroyed) this.owner.received(this, typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
    if (cb) process.nextTick(cb);
    return true;
  }

  /** The broker is done writing: the connection closes (a socket that does not stay half open). */
  end(chunk?: Buffer | string | (() => void), encoding?: BufferEncoding | (() => void), cb?: () => void): this {
    if (typeof chunk === 'function') cb = chunk;
    else if (chunk !== undefined && chunk !== null) this.write(chunk);
    if (typeof encoding === 'function') cb = encoding;
    this.destroy();
    if (cb) process.nextTick(cb);
    return this;
  }

  /**
   * Close the connection: what it holds is dropped, the owner hears at once, and the link says
   * 'error' (when given one) and 'close' on the next tick, as a stream does.
   */
  destroy(err?: Error | null): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.txChunks = null;
    this.txBytes = 0;
    this.full = false;
    this.owner.linkClosed(this);
    process.nextTick(emitClose, this, err);
    return this;
  }

  /** @internal The device's end, said once the reader has read everything: 'end', then closed. */
  finish(): void {
    this.emit('end');
    this.destroy();
  }

  private due(): void {
    if (this.readDue) return;
    this.readDue = true;
    due.push(this);
    if (!dueScheduled) {
      dueScheduled = true;
      process.nextTick(sayReadable);
    }
  }
}
