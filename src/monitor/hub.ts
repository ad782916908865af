/**
 * The `/ws` endpoint: token checked on upgrade, a snapshot first, then stats every interval, and a
 * live tap of the broker's messages through MQTT topic filters. One listener on the broker serves
 * every client; each client has a bounded queue, a rate limit and a bound on what its socket may
 * hold, so a slow or stalled client loses messages (and is told how many) instead of growing
 * memory or holding the broker up. Clients that stop answering pings are terminated.
 */
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { safeEqual } from '../broker/access.js';
import { logger } from '../log.js';
import type { MonitorMetrics } from './metrics.js';
import type { FaultRecord } from '../sim/faults.js';
import type { ErrorFrame, FaultFrame, MonitorStats, ServerFrame, SnapshotFrame } from './protocol.js';
import type { MonitoredBroker, MonitoredPlatform } from './source.js';
import { FilterIndex, filterProblem } from './topic-filter.js';

const log = logger('monitor');

export interface HubOptions {
  /** The token clients must present (`?token=` or `Authorization: Bearer`). */
  token: string;
  /** Default interval between `stats` frames, ms; a client may ask for another with `?interval=MS` (100..60000). Default 1000. */
  statsIntervalMs?: number;
  /** Tapped messages queued per client before new ones are dropped. Default 1000. */
  maxQueue?: number;
  /** Bytes a client's socket may hold unsent before the hub stops writing to it. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Tapped messages per second per client (token bucket, one second of burst). Default 1000: more than a page can show; for the whole stream, subscribe over MQTT. */
  maxMessagesPerSecond?: number;
  /** Topic filters per client. Default 100. */
  maxFilters?: number;
  /** Ping interval, ms; a client that has not answered the previous ping by the next is terminated. Default 30000. */
  heartbeatMs?: number;
  /** WebSocket monitors at once; more are refused with 503. Default 500. */
  maxClients?: number;
  /** The virtual clock, when there is a simulation. */
  virtualTime?: () => number | null;
  /** The scenario's fault records so far, when there is a simulation. */
  faults?: () => FaultRecord[];
}

/** What the hub knows about one client (for tests, benchmarks and /api). */
export interface MonitorClientInfo {
  filters: string[];
  queued: number;
  bufferedAmount: number;
  sent: number;
  dropped: number;
}

const FRAME_LIMIT = 64 * 1024;
const DROP_REPORT_MS = 250;
const FLUSH_MS = 20;
/** ws.send options for a UTF-8 Buffer sent as a text frame. */
const TEXT = { binary: false } as const;

class MonitorClient {
  readonly filters = new Set<string>();
  /** Queued frames and the performance.now() the broker saw each message, from `head`. */
  private frames: Buffer[] = [];
  private seen: number[] = [];
  private head = 0;
  alive = true;
  sent = 0;
  droppedTotal = 0;
  droppedUnreported = 0;
  private droppedReportedAt = -Infinity;
  private tokens: number;
  private refilled = performance.now();
  flushScheduled = false;

  constructor(readonly ws: WebSocket, readonly interval: number, private readonly hub: MonitorHub, readonly maxRate: number) {
    this.tokens = maxRate;
  }

  get queued(): number { return this.frames.length - this.head; }

  /** Whether this client takes one more tapped message (rate limit and queue bound); counts a drop when not. */
  admit(now: number): boolean {
    this.tokens = Math.min(this.maxRate, this.tokens + ((now - this.refilled) / 1000) * this.maxRate);
    this.refilled = now;
    if (this.tokens >= 1 && this.queued < this.hub.maxQueue) {
      this.tokens -= 1;
      return true;
    }
    this.droppedTotal++;
    this.droppedUnreported++;
    this.hub.dropped++;
    this.hub.scheduleFlush(this);
    return false;
  }

  /** Queue a frame this client admitted. */
  push(frame: Buffer, seenAt: number): void {
    this.frames.push(frame);
    this.seen.push(seenAt);
    this.hub.scheduleFlush(this);
  }

  /** Write what the socket has room for; returns true when something is left for later. */
  flush(): boolean {
    const ws = this.ws;
    if (ws.readyState !== ws.OPEN) return false;
    const limit = this.hub.maxBufferedBytes;
    const now = performance.now();
    // Drops are reported at most every DROP_REPORT_MS: a flood would otherwise cost a frame per write.
    if (this.droppedUnreported > 0 && ws.bufferedAmount < limit && now - this.droppedReportedAt >= DROP_REPORT_MS) {
      ws.send(`{"type":"dropped","count":${this.droppedUnreported},"total":${this.droppedTotal}}`);
      this.droppedUnreported = 0;
      this.droppedReportedAt = now;
    }
    // The tap latency is sampled once per flush: the age of the oldest message written.
    if (this.head < this.frames.length && ws.bufferedAmount < limit) this.hub.metrics?.tapLatency.observe((now - this.seen[this.head]!) / 1000);
    let n = 0;
    // Frames written in one flush leave in one writev: cork the socket under ws while sending
    // (ws has no batching API; `_socket` is its net.Socket, and corking is optional here).
    const socket = (ws as unknown as { _socket?: { cork?: () => void; uncork?: () => void } })._socket;
    socket?.cork?.();
    while (this.head < this.frames.length && ws.bufferedAmount < limit) {
      ws.send(this.frames[this.head]!, TEXT);
      this.head++;
      n++;
    }
    socket?.uncork?.();
    if (n) {
      this.sent += n;
      this.hub.sent += n;
    }
    if (this.head === this.frames.length) {
      this.frames = [];
      this.seen = [];
      this.head = 0;
    } else if (this.head > 1024) {
      this.frames = this.frames.slice(this.head);
      this.seen = this.seen.slice(this.head);
      this.head = 0;
    }
    return this.queued > 0 || this.droppedUnreported > 0;
  }

  /** Send a control or stats frame unless the socket is backed up; false if it was skipped. */
  trySend(text: string, limit: number): boolean {
    if (this.ws.readyState !== this.ws.OPEN || this.ws.bufferedAmount >= limit) return false;
    this.ws.send(text);
    return true;
  }

  clear(): void {
    this.frames = [];
    this.seen = [];
    this.head = 0;
  }
}

interface StatsGroup {
  timer: NodeJS.Timeout;
  clients: Set<MonitorClient>;
  last: { t: number; published: number; delivered: number } | null;
}

export class MonitorHub {
  /** Tapped messages sent to clients, and dropped for them, since the hub started. */
  sent = 0;
  dropped = 0;
  readonly maxQueue: number;
  readonly maxBufferedBytes: number;
  private readonly wss: WebSocketServer;
  private readonly clients = new Set<MonitorClient>();
  private readonly index = new FilterIndex<MonitorClient>();
  private readonly groups = new Map<number, StatsGroup>();
  private readonly pending = new Set<MonitorClient>();
  private flushTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly opts: Required<Omit<HubOptions, 'virtualTime' | 'faults'>> & Pick<HubOptions, 'virtualTime' | 'faults'>;
  private readonly onMessage = (topic: string, payload: Buffer): void => this.tap(topic, payload);
  private closed = false;

  constructor(
    private readonly broker: MonitoredBroker,
    private readonly platform: MonitoredPlatform,
    opts: HubOptions,
    readonly metrics: MonitorMetrics | null = null,
  ) {
    this.opts = {
      token: opts.token,
      statsIntervalMs: opts.statsIntervalMs ?? 1000,
      maxQueue: opts.maxQueue ?? 1000,
      maxBufferedBytes: opts.maxBufferedBytes ?? 1024 * 1024,
      maxMessagesPerSecond: opts.maxMessagesPerSecond ?? 1000,
      maxFilters: opts.maxFilters ?? 100,
      heartbeatMs: opts.heartbeatMs ?? 30_000,
      maxClients: opts.maxClients ?? 500,
      virtualTime: opts.virtualTime,
      faults: opts.faults,
    };
    this.maxQueue = this.opts.maxQueue;
    this.maxBufferedBytes = this.opts.maxBufferedBytes;
    this.wss = new WebSocketServer({ noServer: true, maxPayload: FRAME_LIMIT, clientTracking: false });
    broker.on('message', this.onMessage);
    this.heartbeat = setInterval(() => this.beat(), this.opts.heartbeatMs);
    this.heartbeat.unref();
  }

  get clientCount(): number { return this.clients.size; }

  clientInfo(): MonitorClientInfo[] {
    return [...this.clients].map((c) => ({
      filters: [...c.filters], queued: c.queued, bufferedAmount: c.ws.bufferedAmount, sent: c.sent, dropped: c.droppedTotal,
    }));
  }

  /** Whether `token` is the monitor's token (constant time). */
  authorised(token: string | null | undefined): boolean {
    return typeof token === 'string' && safeEqual(token, this.opts.token);
  }

  /** Handle an HTTP upgrade on /ws: refuse (401, 400, 503) or take the connection over. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    const refuse = (status: string, text: string): void => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
    };
    if (this.closed) return refuse('503 Service Unavailable', 'the monitor is stopping\n');
    const token = url.searchParams.get('token') ?? bearer(req.headers.authorization);
    if (!this.authorised(token)) return refuse('401 Unauthorized', token ? 'wrong token\n' : 'missing token: connect to /ws?token=TOKEN\n');
    let interval = this.opts.statsIntervalMs;
    const raw = url.searchParams.get('interval');
    if (raw !== null) {
      interval = Number(raw);
      if (!Number.isInteger(interval) || interval < 100 || interval > 60_000) {
        return refuse('400 Bad Request', `interval: expected whole milliseconds from 100 to 60000, got "${raw}"\n`);
      }
    }
    if (this.clients.size >= this.opts.maxClients) return refuse('503 Service Unavailable', `too many monitors (at most ${this.opts.maxClients})\n`);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, interval));
  }

  private accept(ws: WebSocket, interval: number): void {
    const client = new MonitorClient(ws, interval, this, this.opts.maxMessagesPerSecond);
    this.clients.add(client);
    ws.on('pong', () => { client.alive = true; });
    ws.on('message', (data, isBinary) => {
      client.alive = true;
      this.onClientFrame(client, data, isBinary);
    });
    ws.on('error', () => undefined); // bad frames (too big, invalid UTF-8): ws closes the socket
    ws.on('close', () => this.forget(client));
    const frame: SnapshotFrame = { type: 'snapshot', data: { ...this.platform.snapshot(), stats: this.stats(null) } };
    ws.send(JSON.stringify(frame));
    this.join(client);
  }

  private join(client: MonitorClient): void {
    let g = this.groups.get(client.interval);
    if (!g) {
      const group: StatsGroup = { timer: setInterval(() => this.tick(group), client.interval), clients: new Set(), last: null };
      group.last = { t: performance.now(), published: this.broker.counters.published, delivered: this.broker.counters.delivered };
      this.groups.set(client.interval, (g = group));
    }
    g.clients.add(client);
  }

  private forget(client: MonitorClient): void {
    if (!this.clients.delete(client)) return;
    for (const f of client.filters) this.index.remove(f, client);
    client.filters.clear();
    client.clear();
    this.pending.delete(client);
    const g = this.groups.get(client.interval);
    if (g) {
      g.clients.delete(client);
      if (g.clients.size === 0) {
        clearInterval(g.timer);
        this.groups.delete(client.interval);
      }
    }
  }

  private tick(group: StatsGroup): void {
    const text = JSON.stringify({ type: 'stats', ...this.stats(group) });
    for (const c of group.clients) c.trySend(text, this.maxBufferedBytes);
  }

  /** Figures now; rates against the group's previous sample. */
  private stats(group: StatsGroup | null): MonitorStats {
    const s = this.platform.snapshot();
    const c = this.broker.counters;
    const now = performance.now();
    let rates = { publishedPerSecond: 0, deliveredPerSecond: 0 };
    if (group?.last) {
      const dt = (now - group.last.t) / 1000;
      if (dt > 0) {
        rates = {
          publishedPerSecond: Math.round((c.published - group.last.published) / dt),
          deliveredPerSecond: Math.round((c.delivered - group.last.delivered) / dt),
        };
      }
    }
    if (group) group.last = { t: now, published: c.published, delivered: c.delivered };
    return {
      ts: Date.now(),
      virtualTime: this.opts.virtualTime?.() ?? s.eventTime,
      clients: this.broker.connectedClients,
      online: s.connections.online,
      byCategory: s.connections.byCategory,
      byRegion: s.connections.byRegion,
      messages: { published: c.published, delivered: c.delivered, rejected: c.rejected },
      rates,
      activeUsers: s.activeUsers,
      dailyActiveDevices: s.dailyActiveDevices,
      dailyActiveDevicesWeekMean: s.dailyActiveDevicesWeekMean,
      monitors: this.clients.size,
      faults: this.opts.faults?.() ?? [],
    };
  }

  /** Tell every client a fault started or ended (a small, rare frame: sent like stats, never queued). */
  announceFault(frame: FaultFrame): void {
    if (this.closed) return;
    const text = JSON.stringify(frame);
    for (const c of this.clients) c.trySend(text, this.maxBufferedBytes);
  }

  /**
   * The broker's one listener: nothing to do unless some client has a filter, and the frame is
   * built only once a matching client has room for it (a flood mostly costs a trie walk).
   */
  private tap(topic: string, payload: Buffer): void {
    if (this.index.size === 0) return;
    let frame: Buffer | null = null;
    let seenAt = 0;
    this.index.match(topic, (client) => {
      if (seenAt === 0) seenAt = performance.now();
      if (!client.admit(seenAt)) return;
      frame ??= messageFrame(topic, payload, Date.now());
      client.push(frame, seenAt);
    });
  }

  /**
   * Clients with something to send are flushed together every FLUSH_MS: a few milliseconds of
   * latency buy one socket write per client per round instead of one per message. Clients whose
   * sockets are full stay pending and are retried the next round (ws has no drain event).
   */
  scheduleFlush(client: MonitorClient): void {
    if (client.flushScheduled) return;
    client.flushScheduled = true;
    this.pending.add(client);
    if (!this.flushTimer && !this.closed) this.flushTimer = setTimeout(() => this.flushAll(), FLUSH_MS);
  }

  private flushAll(): void {
    this.flushTimer = null;
    for (const c of this.pending) {
      if (c.flush()) continue;
      c.flushScheduled = false;
      this.pending.delete(c);
    }
    if (this.pending.size && !this.closed) this.flushTimer = setTimeout(() => this.flushAll(), FLUSH_MS);
  }

  private onClientFrame(client: MonitorClient, data: RawData, isBinary: boolean): void {
    const reply = (f: ServerFrame): void => {
      // A client that sends requests but never reads its replies is cut off.
      if (!client.trySend(JSON.stringify(f), 2 * this.maxBufferedBytes)) client.ws.terminate();
    };
    const error = (code: string, message: string): void => reply({ type: 'error', code, message } satisfies ErrorFrame);
    if (isBinary) return error('E_FRAME', 'binary frames are not part of the protocol: send JSON text');
    let msg: unknown;
    try {
      msg = JSON.parse(rawText(data));
    } catch {
      return error('E_JSON', 'the frame is not valid JSON');
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return error('E_FRAME', 'expected a JSON object with a "type"');
    const m = msg as Record<string, unknown>;
    const type = m['type'];
    if (type === 'ping') return reply({ type: 'pong' });
    if (type !== 'subscribe' && type !== 'unsubscribe') {
      return error('E_TYPE', `type: expected "subscribe", "unsubscribe" or "ping", got ${JSON.stringify(type) ?? 'nothing'}`);
    }
    const topics = m['topics'];
    if (!Array.isArray(topics) || topics.length === 0) return error('E_TOPICS', 'topics: expected a non-empty array of MQTT topic filters');
    for (let i = 0; i < topics.length; i++) {
      const t: unknown = topics[i];
      if (typeof t !== 'string') return error('E_FILTER', `topics[${i}]: expected a string, got ${typeof t}`);
      const problem = filterProblem(t);
      if (problem) return error('E_FILTER', `topics[${i}]: "${t}": ${problem}`);
    }
    const filters = [...new Set(topics as string[])];
    if (type === 'subscribe') {
      const fresh = filters.filter((f) => !client.filters.has(f));
      if (client.filters.size + fresh.length > this.opts.maxFilters) {
        return error('E_TOO_MANY_FILTERS', `topics: at most ${this.opts.maxFilters} filters per client (${client.filters.size} already)`);
      }
      for (const f of fresh) {
        client.filters.add(f);
        this.index.add(f, client);
      }
      reply({ type: 'subscribed', topics: [...client.filters] });
    } else {
      for (const f of filters) {
        if (client.filters.delete(f)) this.index.remove(f, client);
      }
      reply({ type: 'unsubscribed', topics: filters });
    }
  }

  private beat(): void {
    for (const c of this.clients) {
      if (!c.alive) {
        log.info('terminating a monitor that did not answer the last ping');
        c.ws.terminate();
        this.forget(c);
        continue;
      }
      c.alive = false;
      try {
        c.ws.ping();
      } catch {
        this.forget(c);
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.broker.off('message', this.onMessage);
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const c of [...this.clients]) {
      c.ws.terminate();
      this.forget(c);
    }
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

/** A message frame, encoded once and shared by every client it goes to. */
function messageFrame(topic: string, payload: Buffer, ts: number): Buffer {
  const utf8 = isUtf8(payload);
  const text = utf8 ? payload.toString('utf8') : payload.toString('base64');
  return Buffer.from(`{"type":"message","topic":${JSON.stringify(topic)},"payload":${JSON.stringify(text)}${utf8 ? '' : ',"encoding":"base64"'},"ts":${ts}}`);
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

export function bearer(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return m ? m[1]! : null;
}
