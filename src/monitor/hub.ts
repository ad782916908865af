/**
 * The `/ws` endpoint: token checked on upgrade, a snapshot first, then stats every interval, and a
 * live tap of the broker's messages through MQTT topic filters. One listener on the broker serves
 * every client; each client (client.ts) has a bounded queue, a rate limit and a bound on what its
 * socket may hold, so a slow or stalled client loses messages (and is told how many) instead of
 * growing memory or holding the broker up. Clients that stop answering pings are terminated.
 *
 * The constructor only takes the options; `start()` subscribes to the broker and starts the
 * heartbeat, `close()` removes every listener and timer it added and closes every client.
 */
import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { safeEqual } from '../broker/access.js';
import { logger } from '../log.js';
import type { FaultRecord } from '../sim/faults.js';
import { MonitorClient, type ClientEvents, type ClientLimits } from './client.js';
import type { MonitorMetrics } from './metrics.js';
import type { ClientFrame, FaultFrame, MonitorStats, SnapshotFrame } from './protocol.js';
import { parseClientFrame } from './requests.js';
import type { MonitoredBroker, MonitoredPlatform } from './source.js';
import { FilterIndex } from './topic-filter.js';
import { textFrame } from './ws-frame.js';

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
  /** Monotonic clock (ms) for rate limits, drop reports, latencies and rates. Default `performance.now`. */
  now?: () => number;
}

/** What the hub knows about one client (for tests, benchmarks and /api). */
export interface MonitorClientInfo {
  filters: string[];
  queued: number;
  bufferedAmount: number;
  sent: number;
  dropped: number;
}

type Settings = Required<Omit<HubOptions, 'virtualTime' | 'faults'>> & Pick<HubOptions, 'virtualTime' | 'faults'>;

const FRAME_LIMIT = 64 * 1024;
/** Clients with something to send are written to together, every FLUSH_MS. */
const FLUSH_MS = 20;

interface StatsGroup {
  timer: NodeJS.Timeout;
  clients: Set<MonitorClient>;
  last: { t: number; published: number; delivered: number };
}

export class MonitorHub {
  /** Tapped messages sent to clients, and dropped for them, since the hub started. */
  sent = 0;
  dropped = 0;
  private readonly opts: Settings;
  private readonly clients = new Set<MonitorClient>();
  private readonly index = new FilterIndex<MonitorClient>();
  private readonly groups = new Map<number, StatsGroup>();
  private readonly pending = new Set<MonitorClient>();
  private readonly events: ClientEvents;
  private wss: WebSocketServer | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly onMessage = (topic: string, payload: Buffer): void => this.tap(topic, payload);
  private state: 'new' | 'running' | 'closed' = 'new';

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
      now: opts.now ?? (() => performance.now()),
    };
    this.events = {
      wantsFlush: (c) => this.scheduleFlush(c),
      dropped: () => { this.dropped++; },
      sent: (n) => { this.sent += n; },
      tapLatency: (s) => this.metrics?.tapLatency.observe(s),
      message: (c, data, isBinary) => this.onClientMessage(c, data, isBinary),
      closed: (c) => this.forget(c),
    };
  }

  /** Tap the broker and start the heartbeat. Once only; a closed hub stays closed. */
  start(): void {
    if (this.state !== 'new') return;
    this.state = 'running';
    // No permessage-deflate: tapped messages are written as frames made once for every client (ws-frame.ts).
    this.wss = new WebSocketServer({ noServer: true, maxPayload: FRAME_LIMIT, clientTracking: false, perMessageDeflate: false });
    this.broker.on('message', this.onMessage);
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
    const wss = this.wss;
    if (this.state !== 'running' || !wss) return refuse('503 Service Unavailable', `the monitor is ${this.state === 'new' ? 'not started' : 'stopping'}\n`);
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
    // The socket handed to ws here is the one the client's frames are written to (corked per round).
    wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, socket, interval));
  }

  private accept(ws: WebSocket, socket: Duplex, interval: number): void {
    const limits: ClientLimits = {
      interval, maxQueue: this.opts.maxQueue, maxBufferedBytes: this.opts.maxBufferedBytes,
      maxMessagesPerSecond: this.opts.maxMessagesPerSecond, now: this.opts.now,
    };
    const client = new MonitorClient(ws, socket, limits, this.events);
    this.clients.add(client);
    const frame: SnapshotFrame = { type: 'snapshot', data: { ...this.platform.snapshot(), stats: this.stats(null) } };
    ws.send(JSON.stringify(frame));
    this.join(client);
  }

  private join(client: MonitorClient): void {
    const interval = client.limits.interval;
    let g = this.groups.get(interval);
    if (!g) {
      const c = this.broker.counters;
      const group: StatsGroup = {
        timer: setInterval(() => this.tick(group), interval), clients: new Set(),
        last: { t: this.opts.now(), published: c.published, delivered: c.delivered },
      };
      this.groups.set(interval, (g = group));
    }
    g.clients.add(client);
  }

  private forget(client: MonitorClient): void {
    if (!this.clients.delete(client)) return;
    for (const f of client.filters) this.index.remove(f, client);
    client.filters.clear();
    client.clear();
    this.pending.delete(client);
    const interval = client.limits.interval;
    const g = this.groups.get(interval);
    if (g) {
      g.clients.delete(client);
      if (g.clients.size === 0) {
        clearInterval(g.timer);
        this.groups.delete(interval);
      }
    }
  }

  private tick(group: StatsGroup): void {
    const text = JSON.stringify({ type: 'stats', ...this.stats(group) });
    for (const c of group.clients) c.trySend(text);
  }

  /** Figures now; rates against the group's previous sample. */
  private stats(group: StatsGroup | null): MonitorStats {
    const s = this.platform.snapshot();
    const c = this.broker.counters;
    const now = this.opts.now();
    let rates = { publishedPerSecond: 0, deliveredPerSecond: 0 };
    if (group) {
      const dt = (now - group.last.t) / 1000;
      if (dt > 0) {
        rates = {
          publishedPerSecond: Math.round((c.published - group.last.published) / dt),
          deliveredPerSecond: Math.round((c.delivered - group.last.delivered) / dt),
        };
      }
      group.last = { t: now, published: c.published, delivered: c.delivered };
    }
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
    if (this.state !== 'running') return;
    const text = JSON.stringify(frame);
    for (const c of this.clients) c.trySend(text);
  }

  /**
   * The broker's one listener: nothing to do unless some client has a filter, and the frame is
   * built only once a matching client has room for it (a flood mostly costs a lookup of the
   * topic's remembered matches).
   */
  private tap(topic: string, payload: Buffer): void {
    const clients = this.index.matching(topic);
    if (clients.length === 0) return;
    const seenAt = this.opts.now();
    let frame: Buffer | null = null;
    for (let i = 0; i < clients.length; i++) {
      const client = clients[i]!;
      if (!client.admit(seenAt)) continue;
      frame ??= messageFrame(topic, payload, Date.now());
      client.push(frame, seenAt);
    }
  }

  /**
   * Clients with something to send are flushed together every FLUSH_MS: a few milliseconds of
   * latency buy one socket write per client per round instead of one per message. Clients whose
   * sockets are full stay pending and are retried the next round (ws has no drain event).
   */
  private scheduleFlush(client: MonitorClient): void {
    this.pending.add(client);
    if (!this.flushTimer && this.state === 'running') this.flushTimer = setTimeout(() => this.flushAll(), FLUSH_MS);
  }

  private flushAll(): void {
    this.flushTimer = null;
    for (const c of this.pending) {
      if (!c.flush()) this.pending.delete(c);
    }
    if (this.pending.size && this.state === 'running') this.flushTimer = setTimeout(() => this.flushAll(), FLUSH_MS);
  }

  private onClientMessage(client: MonitorClient, data: RawData, isBinary: boolean): void {
    const frame = parseClientFrame(data, isBinary);
    if (frame.type === 'error') client.reply(frame);
    else this.onRequest(client, frame);
  }

  private onRequest(client: MonitorClient, req: ClientFrame): void {
    if (req.type === 'ping') return client.reply({ type: 'pong' });
    const filters = [...new Set(req.topics)];
    if (req.type === 'unsubscribe') {
      for (const f of filters) {
        if (client.filters.delete(f)) this.index.remove(f, client);
      }
      return client.reply({ type: 'unsubscribed', topics: filters });
    }
    const fresh = filters.filter((f) => !client.filters.has(f));
    if (client.filters.size + fresh.length > this.opts.maxFilters) {
      const message = `topics: at most ${this.opts.maxFilters} filters per client (${client.filters.size} already)`;
      return client.reply({ type: 'error', code: 'E_TOO_MANY_FILTERS', message });
    }
    for (const f of fresh) {
      client.filters.add(f);
      this.index.add(f, client);
    }
    client.reply({ type: 'subscribed', topics: [...client.filters] });
  }

  private beat(): void {
    for (const c of this.clients) {
      try {
        if (c.ping()) continue;
        log.info('terminating a monitor that did not answer the last ping');
        c.ws.terminate();
      } catch {
        // ping() throws on a socket that is not open: forget it like one that did not answer.
      }
      this.forget(c);
    }
  }

  /** Close every client and remove every listener and timer `start()` added. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const wss = this.wss;
    this.state = 'closed';
    this.broker.off('message', this.onMessage);
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.heartbeat = this.flushTimer = null;
    for (const c of [...this.clients]) {
      c.ws.terminate();
      this.forget(c);
    }
    if (wss) await new Promise<void>((resolve) => wss.close(() => resolve()));
  }
}

/** A message frame, encoded (and framed for WebSocket) once and shared by every client it goes to. */
function messageFrame(topic: string, payload: Buffer, ts: number): Buffer {
  const utf8 = isUtf8(payload);
  const text = utf8 ? payload.toString('utf8') : payload.toString('base64');
  return textFrame(`{"type":"message","topic":${JSON.stringify(topic)},"payload":${JSON.stringify(text)}${utf8 ? '' : ',"encoding":"base64"'},"ts":${ts}}`);
}

export function bearer(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return m ? m[1]! : null;
}
