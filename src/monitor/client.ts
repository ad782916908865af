/**
 * One `/ws` monitoring client: its topic filters, a bounded queue of tapped messages, a token
 * bucket for its rate, its drop count, and its liveness. It knows nothing of the hub: it reports
 * through the narrow `ClientEvents` it was given, and the hub decides when it writes (`flush()`).
 */
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import type { ServerFrame } from './protocol.js';

/** What a client tells its owner. */
export interface ClientEvents {
  /** The client has frames or a drop report to write: include it in the next write round. */
  wantsFlush(client: MonitorClient): void;
  /** One tapped message was dropped for this client (queue full or over its rate). */
  dropped(): void;
  /** `n` tapped messages were written to this client's socket. */
  sent(n: number): void;
  /** Age of the oldest message written in a round, seconds. */
  tapLatency(seconds: number): void;
  /** The client sent a WebSocket message. */
  message(client: MonitorClient, data: RawData, isBinary: boolean): void;
  /** The connection closed. */
  closed(client: MonitorClient): void;
}

export interface ClientLimits {
  /** Interval of this client's `stats` frames, ms. */
  interval: number;
  /** Tapped messages queued before new ones are dropped. */
  maxQueue: number;
  /** Bytes the socket may hold unsent before the client stops writing to it. */
  maxBufferedBytes: number;
  /** Tapped messages per second (token bucket, one second of burst). */
  maxMessagesPerSecond: number;
  /** Monotonic clock, ms. */
  now: () => number;
}

/** Drops are reported at most this often (ms): a flood would otherwise cost a frame per write. */
const DROP_REPORT_MS = 250;

export class MonitorClient {
  readonly filters = new Set<string>();
  sent = 0;
  droppedTotal = 0;
  /** Queued frames and the clock time the broker saw each message, from `head`. */
  private frames: Buffer[] = [];
  private seen: number[] = [];
  private head = 0;
  private droppedUnreported = 0;
  private droppedReportedAt = -Infinity;
  private tokens: number;
  private refilled: number;
  private flushWanted = false;
  private answeredPing = true;

  /**
   * @param socket the connection under `ws` (the one its upgrade came on): a round of tapped
   *   messages, already framed (ws-frame.ts), is written to it in one write.
   */
  constructor(readonly ws: WebSocket, private readonly socket: Duplex, readonly limits: ClientLimits, private readonly events: ClientEvents) {
    this.tokens = limits.maxMessagesPerSecond;
    this.refilled = limits.now();
    ws.on('pong', () => { this.answeredPing = true; });
    ws.on('message', (data, isBinary) => {
      this.answeredPing = true;
      events.message(this, data, isBinary);
    });
    ws.on('error', () => undefined); // bad frames (too big, invalid UTF-8): ws closes the socket
    ws.on('close', () => events.closed(this));
  }

  get queued(): number { return this.frames.length - this.head; }

  /** Whether this client takes one more tapped message (rate limit and queue bound); counts a drop when not. */
  admit(now: number): boolean {
    const rate = this.limits.maxMessagesPerSecond;
    this.tokens = Math.min(rate, this.tokens + ((now - this.refilled) / 1000) * rate);
    this.refilled = now;
    if (this.tokens >= 1 && this.queued < this.limits.maxQueue) {
      this.tokens -= 1;
      return true;
    }
    this.droppedTotal++;
    this.droppedUnreported++;
    this.events.dropped();
    this.wantFlush();
    return false;
  }

  /** Queue a frame this client admitted. */
  push(frame: Buffer, seenAt: number): void {
    this.frames.push(frame);
    this.seen.push(seenAt);
    this.wantFlush();
  }

  /** Write what the socket has room for; returns true when something is left for a later round. */
  flush(): boolean {
    const ws = this.ws;
    if (ws.readyState !== ws.OPEN) return this.settled(false);
    const limit = this.limits.maxBufferedBytes;
    const now = this.limits.now();
    if (this.droppedUnreported > 0 && ws.bufferedAmount < limit && now - this.droppedReportedAt >= DROP_REPORT_MS) {
      ws.send(`{"type":"dropped","count":${this.droppedUnreported},"total":${this.droppedTotal}}`);
      this.droppedUnreported = 0;
      this.droppedReportedAt = now;
    }
    // The tap latency is sampled once per round: the age of the oldest message written.
    if (this.head < this.frames.length && ws.bufferedAmount < limit) this.events.tapLatency((now - this.seen[this.head]!) / 1000);
    // Whole frames (ws-frame.ts), as many as the socket has room for, in one write.
    const from = this.head;
    let room = limit - ws.bufferedAmount;
    let bytes = 0;
    while (this.head < this.frames.length && room > 0) {
      const size = this.frames[this.head]!.length;
      bytes += size;
      room -= size;
      this.head++;
    }
    const n = this.head - from;
    if (n === 1) this.socket.write(this.frames[from]!);
    else if (n > 1) this.socket.write(Buffer.concat(this.frames.slice(from, this.head), bytes));
    if (n) {
      this.sent += n;
      this.events.sent(n);
    }
    this.compact();
    return this.settled(this.queued > 0 || this.droppedUnreported > 0);
  }

  /** Send a control or stats frame unless the socket is backed up; false if it was skipped. */
  trySend(text: string, limit = this.limits.maxBufferedBytes): boolean {
    if (this.ws.readyState !== this.ws.OPEN || this.ws.bufferedAmount >= limit) return false;
    this.ws.send(text);
    return true;
  }

  /** Answer a request; a client that sends requests but never reads the replies is cut off. */
  reply(frame: ServerFrame): void {
    if (!this.trySend(JSON.stringify(frame), 2 * this.limits.maxBufferedBytes)) this.ws.terminate();
  }

  /** Ping the client; false when it did not answer the previous ping (it should be terminated). */
  ping(): boolean {
    if (!this.answeredPing) return false;
    this.answeredPing = false;
    this.ws.ping();
    return true;
  }

  /** Drop everything queued (the client is gone). */
  clear(): void {
    this.frames = [];
    this.seen = [];
    this.head = 0;
    this.flushWanted = false;
  }

  private wantFlush(): void {
    if (this.flushWanted) return;
    this.flushWanted = true;
    this.events.wantsFlush(this);
  }

  private settled(more: boolean): boolean {
    if (!more) this.flushWanted = false;
    return more;
  }

  private compact(): void {
    if (this.head === this.frames.length) {
      this.frames = [];
      this.seen = [];
      this.head = 0;
    } else if (this.head > 1024) {
      this.frames = this.frames.slice(this.head);
      this.seen = this.seen.slice(this.head);
      this.head = 0;
    }
  }
}
