/**
 * The platform's counts in Redis (`--platform redis://HOST:PORT[/DB]`): every process naming the
 * same Redis counts into one store and reads the same figures back. Writes are batched: each
 * message only touches this process' batch (most only bump a kind count and the event time), and
 * the batch goes out every `flushMs` as one script call (`APPLY`, redis-scripts.ts), which applies
 * it atomically in order; ids active per window and day go out together (one PFADD with many
 * ids). The figures are read back every `refreshMs` with one script call (`VIEW`).
 *
 * Redis going away is survived: batches wait (bounded: past `maxPendingWrites` the oldest are
 * dropped and counted) and go out once Redis is back. A Redis that comes back without its data
 * (restarted without persistence) is noticed by its missing `epoch` key and counted as a reset:
 * the figures start over from what arrives after it.
 */
import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { AiotSimError } from '../errors.js';
import { logger } from '../log.js';
import { checkRedisUrl, redactedUrl } from './urls.js';
import type { OnlineBucket } from './history.js';
import type { DeviceFacts, DeviceLookup } from './registry.js';
import { APPLY, VIEW } from './redis-scripts.js';
import { emptySnapshot, type PlatformSnapshot } from './snapshot.js';
import { BatchBuilder, type Known, type PlatformBatch, type SharedStore, type WindowName } from './store.js';

const log = logger('platform-redis');

export interface RedisStoreOptions {
  /** Key prefix (several stores can share one Redis database). Default `aiot:p:`. */
  prefix?: string;
  /** How often batched writes go out, ms. Default 100. */
  flushMs?: number;
  /** How often the figures are read back, ms. Default 1000. */
  refreshMs?: number;
  /** Writes kept while Redis is unreachable; beyond, the oldest batches are dropped and counted. Default 1,000,000. */
  maxPendingWrites?: number;
  /** A name for this writer's fault records (a shard's `K/N`). Default: a random id. */
  writer?: string;
}

/** How the store is doing: what it could not write, and how often Redis came back empty. */
export interface StoreHealth {
  url: string;
  connected: boolean;
  /** Writes batched or waiting for Redis. */
  pendingWrites: number;
  /** Writes dropped because Redis was away too long (past `maxPendingWrites`). */
  droppedWrites: number;
  /** Times Redis came back without the store's data (everything counted before was lost). */
  resets: number;
  /** Batches that failed and were sent again (a batch applied just before its reply was lost counts twice). */
  retries: number;
  /** Round trips to Redis: batches written and views read. */
  roundTrips: number;
}

interface RawView {
  epoch: string;
  time: string;
  online: number;
  byCategory: Record<string, number>; byModel: Record<string, number>; byRegion: Record<string, number>; byTransport: Record<string, number>;
  kinds: Record<string, number>;
  stats: Record<string, number>;
  dad: number; dadWeek: number | null; dau: number; wau: number; mau: number; speakerMau: number; appMau: number;
  hist: string[] | Record<string, never>;
  faults: string[] | Record<string, never>;
}

/**
 * Where a shard of a run is, in the order it marks it: started, at its end, its figures read (then
 * it may stop its devices). Or `failed`: it could not start, and the others need not wait for it.
 */
const SHARD_MARKS = ['started', 'done', 'read'] as const;
export type ShardMark = typeof SHARD_MARKS[number] | 'failed';

type ScriptRedis = Redis & {
  aiotApply(...args: string[]): Promise<number>;
  aiotView(prefix: string): Promise<string>;
};

/**
 * ioredis' `disconnectTimeout` for every connection we open: disconnect() ends the socket and
 * keeps a timer (ioredis' default: 2 s) until it closes. A socket that never opened, or one dropped
 * while Redis is away, has closed already and says so no more, so that timer held a refused
 * command, or a node stopped with Redis away, that long before the process could exit.
 */
const DISCONNECT_TIMEOUT_MS = 100;

/** A Redis connection of ours: ioredis with `options`, and our disconnect timeout (above). */
export function openRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, { ...options, disconnectTimeout: DISCONNECT_TIMEOUT_MS });
}

/** Open a Redis connection for one of our parts; resolves once it answers, or fails naming the URL and the flag. */
export async function connectRedis(url: string, flag: string, name: string): Promise<Redis> {
  const db = Number(checkRedisUrl(url, flag).pathname.slice(1) || '0');
  const redis = openRedis(url, {
    lazyConnect: true, connectionName: name,
    // Keep retrying while Redis is away (a restart); callers bound what they keep meanwhile.
    maxRetriesPerRequest: null, retryStrategy: (times) => Math.min(100 * times, 2000),
  });
  redis.on('error', (err: Error) => log.debug({ url: redactedUrl(url), err: err.message }, 'redis error'));
  try {
    await withTimeout(redis.connect(), 5000);
    await withTimeout(redis.ping(), 5000);
  } catch (e) {
    redis.disconnect();
    throw new AiotSimError('E_REDIS', 'environment', `${flag} ${redactedUrl(url)}: cannot reach Redis (${(e as Error).message})`, { cause: e });
  }
  // ioredis selects the URL's database as it connects, and only reports a refusal as an 'error'
  // event: on its own, a database the server does not have would be database 0 without a word.
  if (db > 0) {
    try {
      await withTimeout(redis.select(db), 5000);
    } catch (e) {
      redis.disconnect();
      throw new AiotSimError('E_OPTIONS', 'input', `${flag} ${redactedUrl(url)}: Redis has no database ${db} (${(e as Error).message}); a server has databases 0 to its "databases" setting less one, 0-15 by default`, { cause: e });
    }
  }
  return redis;
}

/**
 * Close a Redis connection: QUIT, or drop it if Redis does not answer within `ms`. Ours retry for
 * ever while Redis is away, so a QUIT then waits in the offline queue, and so did every stop. A
 * connection not open now (Redis away, it retries) is dropped at once: there is nobody to QUIT.
 */
export async function closeRedis(conn: Redis, ms = 1000): Promise<void> {
  if (conn.status !== 'ready') {
    conn.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); });
  await Promise.race([conn.quit().then(() => undefined, () => undefined), gaveUp]);
  clearTimeout(timer);
  conn.disconnect();
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e: unknown) => { clearTimeout(t); reject(e instanceof Error ? e : new Error(String(e))); });
  });
}

export class RedisStore implements SharedStore {
  private readonly prefix: string;
  private readonly builder = new BatchBuilder();
  /** Batches taken from the builder and not yet in Redis, oldest first. */
  private readonly pending: PlatformBatch[] = [];
  private pendingWrites = 0;
  private writing: Promise<void> | null = null;
  private viewSnapshot: PlatformSnapshot = emptySnapshot();
  private viewHistory: OnlineBucket[] = [];
  private viewFaults: Array<Record<string, unknown>> = [];
  private localTime: number | null = null;
  private epoch: string | null = null;
  private readonly listeners = new Set<() => void>();
  private readonly timers: NodeJS.Timeout[] = [];
  private closed = false;
  private ingressAddresses: string[] = [];
  /** More connections to end at close (a bindings subscriber). */
  private readonly closing: Array<() => Promise<void>> = [];
  private refreshing: Promise<void> | null = null;
  private readonly health_: StoreHealth;
  private readonly maxPending: number;
  private readonly writer: string;

  private constructor(private readonly redis: ScriptRedis, url: string, opts: RedisStoreOptions) {
    this.prefix = opts.prefix ?? 'aiot:p:';
    this.maxPending = opts.maxPendingWrites ?? 1_000_000;
    this.writer = opts.writer ?? randomBytes(4).toString('hex');
    this.health_ = { url: redactedUrl(url), connected: true, pendingWrites: 0, droppedWrites: 0, resets: 0, retries: 0, roundTrips: 0 };
    redis.on('ready', () => { this.health_.connected = true; });
    redis.on('close', () => { this.health_.connected = false; });
    const flush = setInterval(() => { if (!this.builder.empty || this.pending.length) void this.flush().catch(() => undefined); }, opts.flushMs ?? 100);
    const refresh = setInterval(() => { if (!this.refreshing) void this.refresh().catch(() => undefined); }, opts.refreshMs ?? 1000);
    flush.unref();
    refresh.unref();
    this.timers.push(flush, refresh);
  }

  /** Connect to Redis at `url` and read the figures once; fails with E_REDIS naming the URL. */
  static async connect(url: string, opts: RedisStoreOptions = {}, flag = '--platform'): Promise<RedisStore> {
    const redis = await connectRedis(url, flag, 'aiot-sim-platform');
    redis.defineCommand('aiotApply', { numberOfKeys: 0, lua: APPLY });
    redis.defineCommand('aiotView', { numberOfKeys: 0, lua: VIEW });
    const store = new RedisStore(redis as ScriptRedis, url, opts);
    try {
      await store.claimEpoch();
      await store.refresh();
    } catch (e) {
      await store.close();
      throw new AiotSimError('E_REDIS', 'environment', `${flag} ${redactedUrl(url)}: ${(e as Error).message}`, { cause: e });
    }
    return store;
  }

  get health(): StoreHealth { return { ...this.health_, pendingWrites: this.pendingWrites + this.builder.size }; }

  sessionUp(did: string, transport: string, connId: number): void { this.builder.sessionUp(did, transport, connId); this.full(); }
  sessionDown(did: string, connId: number): void { this.builder.sessionDown(did, connId); this.full(); }
  online(device: Known, ts: number, parent: string | undefined, children: readonly Known[]): void { this.builder.online(device, ts, parent, children); this.full(); }
  offline(did: string, ts: number): void { this.builder.offline(did, ts); this.full(); }
  kind(kind: string): void { this.builder.kind(kind); this.full(); }
  malformed(reason: string): void { this.builder.bad(reason); this.full(); }
  active(window: WindowName, id: string, ts: number): void { this.builder.active(window, id, ts); this.full(); }

  time(ts: number): void {
    this.builder.timeAt(ts);
    if (this.localTime === null || ts > this.localTime) this.localTime = ts;
  }

  event(did: string, seq: number): boolean {
    this.builder.event(did, seq);
    this.full();
    // Redis removes the duplicates (by did and seq) as it applies the batch.
    return true;
  }

  get eventTime(): number | null {
    const merged = this.viewSnapshot.eventTime;
    if (this.localTime === null) return merged;
    return merged === null || this.localTime > merged ? this.localTime : merged;
  }

  get onlineCount(): number { return this.viewSnapshot.connections.online; }
  snapshot(): PlatformSnapshot { return this.viewSnapshot; }

  onlineHistory(from = -Infinity, to = Infinity): OnlineBucket[] {
    return this.viewHistory.filter((b) => b.t + 60_000 > from && b.t <= to).map((b) => ({ ...b }));
  }

  /** Fault records every writer stored (`recordFault`), in writer and index order, as of the latest view. */
  faults(): Array<Record<string, unknown>> { return this.viewFaults.map((f) => ({ ...f })); }

  /** Store (or replace) this writer's fault record number `index`. */
  recordFault(index: number, record: object): void {
    const key = `${this.writer}#${String(index).padStart(4, '0')}`;
    this.redis.hset(`${this.prefix}faults`, key, JSON.stringify(record)).catch((e: Error) => log.warn({ err: e.message }, 'fault record not stored'));
  }

  onView(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  /** Write out everything batched so far (in order, one batch at a time); resolves once Redis has it. */
  flush(): Promise<void> {
    if (!this.builder.empty) this.queue(this.builder.take());
    if (this.writing) return this.writing.then(() => (this.pending.length || !this.builder.empty ? this.flush() : undefined));
    if (!this.pending.length) return Promise.resolve();
    this.writing = this.writeAll().finally(() => { this.writing = null; });
    return this.writing;
  }

  /** Views are read one at a time (a second one waits for the first): a lost epoch is noticed once. */
  refresh(): Promise<void> {
    const before = this.refreshing?.catch(() => undefined) ?? Promise.resolve();
    const r: Promise<void> = before.then(() => this.readView()).finally(() => { if (this.refreshing === r) this.refreshing = null; });
    this.refreshing = r;
    return r;
  }

  private async readView(): Promise<void> {
    await this.flush();
    if (this.closed) return;
    const raw = JSON.parse(await this.redis.aiotView(this.prefix)) as RawView;
    this.health_.roundTrips++;
    if (raw.epoch !== this.epoch) {
      // Redis lost the store's data (a restart without persistence, a FLUSHDB): what was counted before is gone.
      this.health_.resets++;
      log.warn({ url: this.health_.url }, 'the platform store in Redis lost its data: figures start over');
      await this.claimEpoch();
    }
    this.viewSnapshot = snapshotOf(raw);
    this.viewHistory = (Array.isArray(raw.hist) ? raw.hist : []).map(bucketOf);
    this.viewFaults = (Array.isArray(raw.faults) ? raw.faults : []).map((f) => JSON.parse(f.slice(f.indexOf('\n') + 1)) as Record<string, unknown>);
    for (const fn of this.listeners) fn();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const t of this.timers) clearInterval(t);
    // With Redis away there is nothing to say to it: the connections are dropped at once below.
    if (this.health_.connected) {
      if (this.ingressAddresses.length) await withTimeout(this.redis.zrem(`${this.prefix}ingress`, ...this.ingressAddresses), 1000).catch(() => undefined);
      try {
        await withTimeout(this.flush(), 10_000);
      } catch (e) {
        log.warn({ err: (e as Error).message, pending: this.pendingWrites }, 'platform writes not flushed at close');
      }
    } else if (this.pendingWrites + this.builder.size > 0) {
      log.warn({ url: this.health_.url, pending: this.pendingWrites + this.builder.size }, 'platform writes not flushed at close: Redis is unreachable');
    }
    this.closed = true;
    this.listeners.clear();
    // All at once: each open connection gets its bounded QUIT, the others are dropped (closeRedis).
    await Promise.all([...this.closing.splice(0).map((c) => c()), closeRedis(this.redis)]);
  }

  /**
   * The platform's binding directory (what it knows of each device: model, category, region,
   * owner, a gateway's children, a speaker's voice event), shared through the store: a process
   * simulating devices writes theirs before they connect (`bind`), and a broker node counting at
   * ingress, which simulates none, reads them (`followBindings`).
   */
  async bind(entries: ReadonlyArray<readonly [string, DeviceFacts]>): Promise<void> {
    for (let i = 0; i < entries.length; i += 1000) {
      const chunk = entries.slice(i, i + 1000);
      const p = this.redis.pipeline();
      for (const [did, facts] of chunk) p.hset(`${this.prefix}bind`, did, JSON.stringify(facts));
      p.publish(`${this.prefix}bind`, JSON.stringify(chunk));
      await p.exec();
    }
  }

  /** Every binding in the store, kept up to date as processes write more: the platform's lookup. */
  async followBindings(): Promise<DeviceLookup> {
    const known = new Map<string, DeviceFacts>();
    const sub = this.redis.duplicate();
    sub.on('error', () => undefined);
    sub.on('message', (_channel, text: string) => {
      try {
        for (const [did, facts] of JSON.parse(text) as Array<[string, DeviceFacts]>) known.set(did, facts);
      } catch {
        // Not a list of bindings: ignored.
      }
    });
    // Subscribed first, then loaded: nothing written in between is missed.
    await sub.subscribe(`${this.prefix}bind`);
    for (const [did, facts] of Object.entries(await this.redis.hgetall(`${this.prefix}bind`))) known.set(did, JSON.parse(facts) as DeviceFacts);
    this.closing.push(() => closeRedis(sub));
    return (did) => known.get(did);
  }

  /**
   * This process counts what its broker takes in (an aiot-sim broker node, `serve --platform`),
   * reachable at `addresses` (`host:port` of its listeners): said in the store every 2 s, so that
   * a run observing one of those addresses knows not to count too (`countsAtIngressFor`).
   */
  countsAtIngress(addresses: readonly string[]): void {
    if (!addresses.length) return;
    const beat = (): void => {
      const now = Date.now();
      this.redis.zadd(`${this.prefix}ingress`, ...addresses.flatMap((a) => [now, a])).catch(() => undefined);
    };
    beat();
    const t = setInterval(beat, 2000);
    t.unref();
    this.timers.push(t);
    this.ingressAddresses = [...addresses];
  }

  /** Whether a broker node counting at ingress into this store listens at `address` (`host:port`; heard from in the last 10 s). */
  async countsAtIngressFor(address: string): Promise<boolean> {
    const at = await this.redis.zscore(`${this.prefix}ingress`, address);
    return at !== null && Number(at) > Date.now() - 10_000;
  }

  /**
   * Shard `index` of `count` of run `run` has reached the end of its virtual time (`done`) or
   * started: marks in the store that the shards of one run wait on (`waitForShards`).
   */
  async markShard(run: string, index: number, state: ShardMark): Promise<void> {
    await this.redis.hset(`${this.prefix}shards:${run}`, String(index), `${state}@${Date.now()}`);
    await this.redis.expire(`${this.prefix}shards:${run}`, 7 * 86_400);
  }

  /** Shard `index`'s count of run `run` (a later run of the same shards replaces it). */
  async setShardCount(run: string, field: string, index: number, n: number): Promise<void> {
    await this.redis.hset(`${this.prefix}runs:${run}`, `${field}:${index}`, n);
    await this.redis.expire(`${this.prefix}runs:${run}`, 7 * 86_400);
  }

  /** A count of run `run`, added up over its `shards` shards. */
  async runCount(run: string, field: string, shards: number): Promise<number> {
    const all = await this.redis.hgetall(`${this.prefix}runs:${run}`);
    let n = 0;
    for (let i = 0; i < shards; i++) n += Number(all[`${field}:${i}`] ?? 0);
    return n;
  }

  /**
   * Resolves `reached` once every shard of `run` has marked `state` or a later one (a mark older
   * than `since`, wall ms, is an earlier run's); `failed` as soon as one marked that it could not
   * start; `timeout` after `timeoutMs`. A shard's mark replaces its last: one that saw everyone
   * `done` may mark `read` before a slower one has looked, and that one must still count it as
   * done (it waited the whole 10 minutes otherwise). `interrupted` once `cancelled()` says so
   * (checked at each look, every 200 ms).
   */
  async waitForShards(run: string, count: number, state: Exclude<ShardMark, 'failed'>, since: number, timeoutMs: number, cancelled: () => boolean = () => false): Promise<'reached' | 'failed' | 'timeout' | 'interrupted'> {
    const until = Date.now() + timeoutMs;
    const reached = new RegExp(`^(${SHARD_MARKS.slice(SHARD_MARKS.indexOf(state)).join('|')}|failed)@(\\d+)$`);
    for (;;) {
      const marks = await this.redis.hgetall(`${this.prefix}shards:${run}`);
      let done = 0;
      for (let i = 0; i < count; i++) {
        const m = reached.exec(marks[String(i)] ?? '');
        if (!m || Number(m[2]) < since) continue;
        if (m[1] === 'failed') return 'failed';
        done++;
      }
      if (done === count) return 'reached';
      if (cancelled()) return 'interrupted';
      if (Date.now() > until) return 'timeout';
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * Resolves once the figures stop moving: views 250 ms apart agree (everyone's batches are in),
   * or after `maxMs`.
   */
  async still(maxMs = 10_000): Promise<void> {
    const until = Date.now() + maxMs;
    let last = '';
    for (;;) {
      await this.refresh();
      const s = this.viewSnapshot;
      const now = JSON.stringify([s.messages, s.connections.online, s.eventTime]);
      if (now === last || Date.now() > until) return;
      last = now;
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** A full batch goes out without waiting for the timer (bounded memory in fast runs). */
  private full(): void {
    if (this.builder.size >= 5000 && !this.writing) void this.flush().catch(() => undefined);
  }

  private queue(b: PlatformBatch): void {
    const n = b.size;
    this.pending.push(b);
    this.pendingWrites += n;
    while (this.pendingWrites > this.maxPending && this.pending.length > 1) {
      const dropped = this.pending.shift()!;
      const k = dropped.size;
      this.pendingWrites -= k;
      this.health_.droppedWrites += k;
    }
  }

  private async writeAll(): Promise<void> {
    while (this.pending.length) {
      const b = this.pending[0]!;
      try {
        await this.redis.aiotApply(...argsOf(this.prefix, b));
        this.health_.roundTrips++;
      } catch (e) {
        this.health_.retries++;
        log.warn({ err: (e as Error).message }, 'platform batch not written; it waits for Redis');
        throw e;
      }
      this.pending.shift();
      this.pendingWrites -= b.size;
    }
  }

  private async claimEpoch(): Promise<void> {
    const mine = randomBytes(8).toString('hex');
    await this.redis.set(`${this.prefix}epoch`, mine, 'NX');
    this.epoch = await this.redis.get(`${this.prefix}epoch`);
  }
}

/**
 * A batch as the APPLY script's arguments: counts as they are, each activity's ids and then all
 * the ops as one argument of newline-ended fields (a few long strings cost the client far less to
 * send than thousands of short ones; ids and op fields hold no newline).
 */
function argsOf(prefix: string, b: PlatformBatch): string[] {
  const out: string[] = [prefix, b.time === null ? '' : String(b.time), String(b.kinds.length)];
  for (const [k, n] of b.kinds) out.push(k, String(n));
  out.push(String(b.malformed.length));
  for (const [r, n] of b.malformed) out.push(r, String(n));
  out.push(String(b.activity.length));
  for (const [key, ids] of b.activity) {
    const [w, day] = key.split('\u0000');
    out.push(w!, day!, ids.length ? `${ids.join('\n')}\n` : '');
  }
  out.push(b.ops.length ? `${b.ops.join('\n')}\n` : '');
  return out;
}

function snapshotOf(v: RawView): PlatformSnapshot {
  const obj = (r: Record<string, number> | unknown[]): Record<string, number> => {
    const out: Record<string, number> = {};
    if (Array.isArray(r)) return out;
    for (const k of Object.keys(r).sort()) out[k] = r[k]!;
    return out;
  };
  const stats = obj(v.stats);
  return {
    eventTime: v.time === '' ? null : Number(v.time),
    connections: { online: v.online, byCategory: obj(v.byCategory), byModel: obj(v.byModel), byRegion: obj(v.byRegion), byTransport: obj(v.byTransport) },
    dailyActiveDevices: v.dad,
    dailyActiveDevicesWeekMean: v.dadWeek,
    activeUsers: { dau: v.dau, wau: v.wau, mau: v.mau },
    speakerMau: v.speakerMau,
    appMau: v.appMau,
    ownersWithMoreThan5Devices: stats['over5'] ?? 0,
    messages: { byKind: obj(v.kinds), malformed: stats['malformed'] ?? 0, duplicatesRemoved: stats['duplicates'] ?? 0, eventsMissing: stats['missing'] ?? 0 },
  };
}

function bucketOf(s: string): OnlineBucket {
  const [t, min, max, last] = s.split(',').map(Number);
  return { t: t!, min: min!, max: max!, last: last! };
}
