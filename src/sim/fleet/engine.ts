/**
 * The fleet engine: every device session of a run on the embedded broker's in-process transport,
 * as one lean engine instead of a general-purpose MQTT client per device.
 *
 * Each session is still its own MQTT session through the broker (its CONNECT, credentials, will,
 * SUBSCRIBE, QoS 1 packet ids and PUBACKs: see session.ts), but what a client per device would
 * repeat a hundred thousand times is here once:
 * - one reader of broker-to-device bytes for all sessions: what the broker writes to a session's
 *   link is collected and parsed in one microtask per turn (`drain`);
 * - one keep-alive timer (PINGREQ for sessions that sent nothing for 40-60 s) and one deadline
 *   timer (reconnection retries with backoff, CONNACK and DISCONNECT bounds, waits), over a heap;
 * - packets written straight into exactly-sized buffers (packets.ts), no packet objects, stores,
 *   callbacks or streams on the device side.
 * The broker's end of each connection is a `FleetLink` (an emitter Aedes reads as it reads a stream).
 *
 * App users' clients and the operator on the in-process transport are fleet sessions too
 * (cloud-session.ts): the engine reads, times and pings them as it does devices (`FleetPeer`).
 */
import type { BrokerConnection } from '../../broker/connection.js';
import { performance } from 'node:perf_hooks';
import type { Clock } from '../../contract/clock.js';
import type { Device } from '../../device/device.js';
import { logger } from '../../log.js';
import type { ReconnectPolicy } from '../backoff.js';
import type { Counter, SessionHooks } from '../session.js';
import type { TraceRecorder } from '../trace.js';
import { FleetLink, type LinkOwner } from './link.js';
import type { FleetHost, FleetPeer } from './peer.js';
import { frameAt, PacketType, PINGREQ, type Frame } from './packets.js';
import { FleetSession } from './session.js';
import { FleetCloudSession, type CloudSessionFields } from './cloud-session.js';

const log = logger('fleet');

/** How long a session waits for CONNACK, ms (as mqtt.js' connectTimeout in ClientSession). */
const CONNACK_TIMEOUT_MS = 30_000;
/** Keep-alive the sessions announce in CONNECT, seconds (as mqtt.js' default in ClientSession). */
const KEEPALIVE_SECONDS = 60;

export interface FleetOptions extends SessionHooks {
  /** Hand a connection to the broker; false while it does not serve (down or closed). */
  attach: (conn: BrokerConnection) => boolean;
  /**
   * Keep-alive of every session, seconds. Default 60. One sweep every third of it sends PINGREQ
   * for the sessions that sent nothing in the last two to three thirds (the broker allows 1.5x).
   */
  keepaliveSeconds?: number;
}

interface Deadline { at: number; cancelled: boolean; fire: () => void }

/** CONNECTs a fleet's first connection keeps in flight at once (device and app sessions alike). */
export const FLEET_CONNECT_CONCURRENCY = 2000;

export class FleetEngine implements LinkOwner, FleetHost {
  readonly clock: Clock;
  readonly trace: TraceRecorder;
  readonly inflight: Counter;
  readonly connected: Counter | undefined;
  readonly reconnects: Counter | undefined;
  readonly reconnect: ReconnectPolicy | undefined;
  readonly seed: number;
  readonly attach: (conn: BrokerConnection) => boolean;
  readonly keepaliveSeconds: number;
  /** Keep-alive sweeps so far (sessions stamp the tick they last sent in). */
  tick = 0;
  private readonly slots: FleetPeer[] = [];
  private readonly devices: FleetSession[] = [];
  /** Links with bytes from the broker to parse this turn. */
  private rxLinks: FleetLink[] = [];
  private rxScheduled = false;
  private readonly frame: Frame = { first: 0, body: 0, length: 0 };
  private heap: Deadline[] = [];
  private heapTimer: NodeJS.Timeout | null = null;
  private heapTimerAt = Infinity;
  private keepalive: NodeJS.Timeout | null = null;
  /** The bulk first connection under way (connectAll). */
  private bulk: { next: (s: FleetPeer, err: Error | null) => void } | null = null;
  private closed = false;

  constructor(opts: FleetOptions) {
    this.attach = opts.attach;
    this.clock = opts.clock;
    this.trace = opts.trace;
    this.inflight = opts.inflight;
    this.connected = opts.connected;
    this.reconnects = opts.reconnects;
    this.reconnect = opts.reconnect;
    this.seed = opts.seed ?? 1;
    this.keepaliveSeconds = opts.keepaliveSeconds ?? KEEPALIVE_SECONDS;
  }

  /** Every device session, in the order created. */
  get sessions(): readonly FleetSession[] { return this.devices; }

  /** A session for a Wi-Fi device or gateway (with its children) and its token; not connected yet. */
  create(device: Device, children: Device[], token: string): FleetSession {
    const s = new FleetSession(this, this.slots.length, device, children, token);
    this.slots.push(s);
    this.devices.push(s);
    return s;
  }

  /** A session for a cloud client (an app user, the operator); not connected yet (connectAll connects it). */
  createCloud(fields: CloudSessionFields): FleetCloudSession {
    const s = new FleetCloudSession(this, this.slots.length, fields);
    this.slots.push(s);
    return s;
  }

  /**
   * Connect `sessions` for the first time, `concurrency` CONNECTs in flight at once; resolves when
   * every one has its CONNACK, rejects at the first refusal or timeout (nothing more is started).
   */
  connectAll(sessions: readonly FleetPeer[], concurrency: number, onProgress?: (done: number, total: number) => void): Promise<void> {
    if (this.bulk) return Promise.reject(new Error('fleet: a connection of the fleet is already under way'));
    this.startKeepalive();
    const total = sessions.length;
    if (total === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let next = 0;
      let done = 0;
      let failed = false;
      this.bulk = {
        next: (_s, err) => {
          if (failed) return;
          if (err) {
            failed = true;
            this.bulk = null;
            reject(err);
            return;
          }
          done++;
          onProgress?.(done, total);
          if (next < total) sessions[next++]!.start();
          else if (done === total) {
            this.bulk = null;
            resolve();
          }
        },
      };
      while (next < Math.min(concurrency, total)) sessions[next++]!.start();
    });
  }

  /** A session's first connection succeeded or failed (for connectAll). */
  firstConnect(s: FleetPeer, err: Error | null): void {
    this.bulk?.next(s, err);
  }

  /** Stop the engine's timers (sessions should be stopped first). */
  close(): void {
    this.closed = true;
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = null;
    if (this.heapTimer) clearTimeout(this.heapTimer);
    this.heapTimer = null;
    this.heap = [];
  }

  newLink(s: FleetPeer): FleetLink {
    return new FleetLink(this, s.slot);
  }

  // LinkOwner: the broker's side of the links ----------------------------------------------------

  received(link: FleetLink, bytes: Buffer): void {
    (link.rxChunks ??= []).push(bytes);
    if (link.rxQueued) return;
    link.rxQueued = true;
    this.rxLinks.push(link);
    if (!this.rxScheduled) {
      this.rxScheduled = true;
      queueMicrotask(this.drain);
    }
  }

  readable(link: FleetLink): void {
    const s = this.slots[link.slot];
    if (s && s.link === link) s.onReadable();
  }

  linkClosed(link: FleetLink): void {
    link.rxChunks = null;
    const s = this.slots[link.slot];
    if (s) s.onLinkClosed(link);
  }

  /** Parse what the broker wrote to every link since the last drain, packet by packet. */
  private readonly drain = (): void => {
    this.rxScheduled = false;
    const links = this.rxLinks;
    this.rxLinks = [];
    for (const link of links) {
      link.rxQueued = false;
      const chunks = link.rxChunks;
      if (!chunks || link.destroyed) continue;
      link.rxChunks = null;
      const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const used = this.parse(link, buf);
      if (used < buf.length && !link.destroyed) {
        // A partial packet waits for the rest (anything that arrived meanwhile comes after it).
        const rest = buf.subarray(used);
        link.rxChunks = link.rxChunks ? [rest, ...link.rxChunks] : [rest];
      }
    }
  };

  /** Handle the complete packets in `buf`; returns the bytes used. */
  private parse(link: FleetLink, buf: Buffer): number {
    const s = this.slots[link.slot];
    const f = this.frame;
    let o = 0;
    while (o < buf.length) {
      if (!s || s.link !== link) return buf.length;
      frameAt(buf, o, buf.length, f);
      if (f.length === 0) break;
      if (f.length < 0) {
        log.warn({ session: s.label }, 'malformed packet from the broker; closing the connection');
        link.destroy();
        return buf.length;
      }
      const end = o + f.length;
      const body = f.body;
      switch (f.first >> 4) {
        case PacketType.CONNACK:
          s.onConnack(buf[body + 1]!);
          break;
        case PacketType.PUBLISH: {
          const qos = (f.first >> 1) & 3;
          const topicEnd = body + 2 + ((buf[body]! << 8) | buf[body + 1]!);
          const id = qos ? (buf[topicEnd]! << 8) | buf[topicEnd + 1]! : 0;
          s.onPublish(buf.toString('utf8', body + 2, topicEnd), buf.toString('utf8', qos ? topicEnd + 2 : topicEnd, end), qos, id);
          break;
        }
        case PacketType.PUBACK:
          s.onPuback((buf[body]! << 8) | buf[body + 1]!);
          break;
        case PacketType.SUBACK: {
          for (let i = body + 2; i < end; i++) {
            if (buf[i] === 0x80) {
              log.warn({ session: s.label }, 'subscribe refused');
              break;
            }
          }
          s.onSuback((buf[body]! << 8) | buf[body + 1]!);
          break;
        }
        default: // PINGRESP, UNSUBACK: nothing to do
      }
      o = end;
    }
    return o;
  }

  // Deadlines: one timer for every session's retries and bounds ----------------------------------

  /** Reconnect `s` after `delayMs` (wall clock). */
  retryAfter(s: FleetPeer, delayMs: number): void {
    s.deadline = this.push(delayMs, () => {
      s.deadline = null;
      s.retry();
    });
  }

  /** Give `s` CONNACK_TIMEOUT_MS to be accepted. */
  awaitConnack(s: FleetPeer): void {
    this.cancel(s);
    s.deadline = this.push(CONNACK_TIMEOUT_MS, () => {
      s.deadline = null;
      s.onConnackTimeout();
    });
  }

  /** Cancel `s`'s pending retry or CONNACK bound. */
  cancel(s: FleetPeer): void {
    if (s.deadline) s.deadline.cancelled = true;
    s.deadline = null;
  }

  /** Call `fire` after `delayMs` unless the returned handle is cancelled first. */
  deadlineAt(delayMs: number, fire: () => void): { cancelled: boolean } {
    return this.push(delayMs, fire);
  }

  private push(delayMs: number, fire: () => void): Deadline {
    const d: Deadline = { at: performance.now() + delayMs, cancelled: false, fire };
    const heap = this.heap;
    heap.push(d);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= d.at) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = d;
    if (d.at < this.heapTimerAt) this.arm();
    return d;
  }

  private arm(): void {
    if (this.heapTimer) clearTimeout(this.heapTimer);
    this.heapTimer = null;
    this.heapTimerAt = Infinity;
    while (this.heap.length && this.heap[0]!.cancelled) this.pop();
    const top = this.heap[0];
    if (!top || this.closed) return;
    this.heapTimerAt = top.at;
    this.heapTimer = setTimeout(this.fireDue, Math.max(0, top.at - performance.now()));
  }

  private readonly fireDue = (): void => {
    this.heapTimer = null;
    this.heapTimerAt = Infinity;
    const now = performance.now();
    while (this.heap.length && this.heap[0]!.at <= now) {
      const d = this.pop()!;
      if (!d.cancelled) {
        d.cancelled = true;
        d.fire();
      }
    }
    this.arm();
  };

  private pop(): Deadline | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = l < heap.length && heap[l]!.at < last.at ? l : -1;
        if (r < heap.length && heap[r]!.at < (m < 0 ? last.at : heap[m]!.at)) m = r;
        if (m < 0) break;
        heap[i] = heap[m]!;
        i = m;
      }
      heap[i] = last;
    }
    return top;
  }

  // Keep-alive ---------------------------------------------------------------------------------

  private startKeepalive(): void {
    if (this.keepalive || this.closed) return;
    this.keepalive = setInterval(() => {
      this.tick++;
      const idle = this.tick - 3;
      for (const s of this.slots) if (s.lastSentTick <= idle) s.ping(PINGREQ);
    }, (this.keepaliveSeconds * 1000) / 3);
    this.keepalive.unref();
  }
}
