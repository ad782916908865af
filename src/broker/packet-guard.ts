/**
 * Packet framing checks the broker applies before Aedes parses a connection's bytes.
 *
 * Aedes 1.x (MQTT 3.1.1) has no maximum packet size: mqtt-packet accepts a Remaining Length up
 * to 256 MiB and buffers it until it is complete, so one client announcing a huge packet can make
 * the broker hold a huge buffer. `PacketFramer` follows the fixed headers of a byte stream
 * incrementally (one type byte, a 1-4 byte Remaining Length, then the body, skipped by count)
 * and names the first problem: a packet above the limit or a malformed Remaining Length.
 * `guardConnection` puts one in front of a connection, before anything reads from it.
 */
import type { BrokerConnection } from './connection.js';
import { Slot } from './slot.js';

/** The broker's default maximum packet size (bytes, fixed header included). */
export const DEFAULT_MAX_PACKET_SIZE = 256 * 1024;

export class PacketFramer {
  /** 'type': next byte is a fixed header's first byte; 'length': inside the Remaining Length; 'body': skipping. */
  private state: 'type' | 'length' | 'body' = 'type';
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private bodyLeft = 0;
  private failed: string | null = null;
  /** Where the offending packet starts in the chunk that revealed it (0 if in an earlier chunk). */
  goodBytes = 0;

  constructor(readonly maxPacketSize: number) {}

  /** Whether the stream is between packets (none begun and not finished) and nothing was refused. */
  get atBoundary(): boolean {
    return this.state === 'type' && this.failed === null;
  }

  /**
   * Feed the next bytes of the stream; returns a rejection reason, or null while all is well.
   * On a rejection, `goodBytes` says how much of `buf` holds the complete packets before it.
   */
  feed(buf: Uint8Array): string | null {
    if (this.failed) {
      this.goodBytes = 0;
      return this.failed;
    }
    let i = 0;
    let packetStart = 0;
    while (i < buf.length) {
      if (this.state === 'body') {
        const take = Math.min(this.bodyLeft, buf.length - i);
        this.bodyLeft -= take;
        i += take;
        if (this.bodyLeft === 0) this.state = 'type';
        continue;
      }
      const byte = buf[i++]!;
      if (this.state === 'type') {
        packetStart = i - 1;
        this.state = 'length';
        this.length = 0;
        this.multiplier = 1;
        this.lengthBytes = 0;
        continue;
      }
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.lengthBytes++;
      if (byte & 0x80) {
        if (this.lengthBytes === 4) return this.fail('malformed remaining length', packetStart);
        continue;
      }
      const total = 1 + this.lengthBytes + this.length;
      if (total > this.maxPacketSize) return this.fail('packet too large', packetStart);
      this.bodyLeft = this.length;
      this.state = this.length === 0 ? 'type' : 'body';
    }
    return null;
  }

  private fail(reason: string, packetStart: number): string {
    this.goodBytes = Math.max(0, packetStart);
    return (this.failed = reason);
  }
}

/** The broker's handle on one guarded connection. */
export interface ConnectionGuard {
  /** Take nothing more from the peer (the broker is going down): bytes arriving from now on are dropped unread. */
  hold(): void;
}

/** Each guarded connection's guard, kept on the connection (one shared `push`, no closure per connection). */
const guards = new Slot<BrokerConnection, Guard>('aiot-sim packet guard');

/** A connection's framer and what the guard keeps beside it: one object, which each chunk the connection reads touches. */
class Guard extends PacketFramer implements ConnectionGuard {
  held = false;
  constructor(
    maxPacketSize: number,
    /** The transport's own `push` (called with the connection as `this`). */
    readonly push: BrokerConnection['push'],
    readonly onBad: (reason: string, conn: BrokerConnection) => void,
  ) {
    super(maxPacketSize);
  }

  hold(): void { this.held = true; }
}

/** Every guarded connection's `push`: the check, then the transport's own. */
function guardedPush(this: BrokerConnection, chunk: Buffer | string | null, encoding?: BufferEncoding): boolean {
  const g = guards.get(this)!;
  if (chunk === null) return g.push.call(this, null);
  if (g.held) return false;
  const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
  const bad = g.feed(bytes);
  if (bad === null) return g.push.call(this, chunk, encoding);
  g.held = true;
  if (g.goodBytes > 0) g.push.call(this, bytes.subarray(0, g.goodBytes));
  g.goodBytes = 0;
  if (!this.destroyed) {
    g.onBad(bad, this);
    setImmediate(() => this.destroy());
  }
  return false;
}

/**
 * Whether `conn` may be handed one whole packet of `bytes` bytes other than through `push()` (see
 * `offerPublish` in frame-parser.ts): its guard takes packets, is between two of them, and the
 * packet is within the size limit. What a guard would have refused goes through `push()`, where it
 * is refused as usual.
 */
export function admitsWhole(conn: BrokerConnection, bytes: number): boolean {
  const g = guards.get(conn);
  return g !== undefined && !g.held && g.atBoundary && bytes <= g.maxPacketSize;
}

/**
 * Check every byte the transport hands to `conn` before its reader (Aedes) can see it. Transports
 * hand bytes over through `push()`, the Readable implementers' API that sockets, WebSocket streams
 * and our in-process links all call, so the check holds however the reader consumes the stream and
 * needs nothing of Aedes' internals. On a bad packet the complete packets before it are passed on,
 * `onBad` is told why (and which connection), and the connection is destroyed on the next turn.
 */
export function guardConnection(conn: BrokerConnection, maxPacketSize: number, onBad: (reason: string, conn: BrokerConnection) => void): ConnectionGuard {
  const guard = new Guard(maxPacketSize, conn.push, onBad);
  guards.set(conn, guard);
  conn.push = guardedPush;
  return guard;
}
