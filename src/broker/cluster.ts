/**
 * A broker node of a cluster on Redis (`serve --cluster redis://HOST:PORT[/DB]`), built from
 * Aedes' own cluster packages: `mqemitter-redis` carries every message between the nodes (each
 * node delivers to its own subscribers what any node took in), and `aedes-persistence-redis`
 * keeps persistent sessions, their subscriptions and QoS 1 queues, and retained messages, so a
 * session resumes on any node. Nothing of our own replaces them.
 *
 * What the bounded in-memory persistence does (persistence.ts) is not done here: retained messages
 * and session queues are bounded by aedes-persistence-redis' own `maxSessionDelivery` (messages
 * delivered to a session on CONNECT), and the bounds' usage figures read zero.
 *
 * Redis going away (a restart, a crash) is survived (`ClusterLink`): every connection retries with
 * backoff and jitter, the node logs "cluster store unreachable, retrying" and "cluster store back
 * after N s", and meanwhile
 * - connected clients stay connected; what they publish is delivered to this node's own
 *   subscribers only and counted (`unroutedMessages`: no other node ever gets it), where
 *   mqemitter-redis would have held it in the client's offline queue, unbounded, and delivered it
 *   nowhere, not even here, until Redis was back;
 * - a CONNECT is refused with CONNACK 3 (server unavailable): it needs the session store;
 * - writes to the session store (QoS 1 queues, subscriptions, retained messages) wait for Redis
 *   (ioredis' offline queue) and are done once it is back, so a QoS 1 publish to a persistent
 *   session is routed then.
 * Once Redis is back, routing resumes (ioredis subscribes again). If it came back without its data
 * (no save, or a new server), the node says so and counts a reset: retained messages, persistent
 * sessions (their subscriptions and queued messages) and the access directory were lost with it.
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import mqemitterRedis from 'mqemitter-redis';
import { logger } from '../log.js';
import { closeRedis, connectRedis, openRedis } from '../platform/redis-store.js';
import { redactedUrl } from '../platform/urls.js';
import type { AccessDirectory, DeviceCredential } from './access.js';
import type { Inner, MqPacket } from './emitter.js';
import { SessionQueues } from './session-queues.js';
import type { PersistenceStats } from './persistence.js';

const log = logger('cluster');

/** aedes-persistence-redis' members used here (it ships no types). */
interface RedisPersistence {
  addSubscriptions(client: object, subs: object[]): Promise<unknown>;
}
/** Its factory takes ioredis options (here `conn`, an open connection). */
const persistenceRedis = createRequire(import.meta.url)('aedes-persistence-redis') as (opts: { conn: Redis; maxSessionDelivery: number }) => RedisPersistence;

export interface BrokerCluster {
  /** The Redis URL the nodes share (`redis://HOST:PORT[/DB]`). */
  url: string;
  /** What errors call the URL (default `cluster.url`; `serve` says `--cluster`). */
  option?: string;
}

/**
 * Before a node starts: its cluster's Redis must answer, and have the URL's database. Without
 * this check a node whose Redis is unreachable never finished starting (its connections retry for
 * ever, as they must once it runs), and a database the server does not have was database 0 without
 * a word. Fails with E_REDIS or E_OPTIONS, naming the option and the URL.
 */
export async function checkClusterStore(cluster: BrokerCluster): Promise<void> {
  const conn = await connectRedis(cluster.url, cluster.option ?? 'cluster.url', 'aiot-sim-cluster-check');
  await closeRedis(conn);
}

/** How a node's link to the cluster's Redis is doing (`/metrics`: aiot_sim_cluster_*). */
export interface ClusterHealth {
  /** The Redis URL, password hidden. */
  url: string;
  /** Every connection of the node to Redis is up. */
  up: boolean;
  /** Times Redis became unreachable. */
  outages: number;
  /** Seconds Redis was unreachable, in all (the current outage included). */
  downSeconds: number;
  /** Messages clients published here while Redis was unreachable: delivered to this node's subscribers only, never to the other nodes. */
  unroutedMessages: number;
  /** CONNECTs refused (CONNACK 3) while Redis was unreachable. */
  refusedConnects: number;
  /** Times Redis came back without its data (retained messages, persistent sessions and the access directory lost). */
  resets: number;
}

/** Where a node notes which Redis it joined: a key lost with Redis' data. */
const EPOCH_KEY = 'aiot:cluster:epoch';
/** Reconnect backoff: doubling from 100 ms up to 2 s, each wait with up to 50 % jitter (nodes do not return in step). */
const retryStrategy = (times: number): number => {
  const base = Math.min(100 * 2 ** Math.min(times - 1, 5), 2000);
  return Math.round(base * (0.5 + Math.random() * 0.5));
};

/**
 * A node's connections to the cluster's Redis, watched together: Redis is "down" while one that
 * was up has lost its connection and not got it back. Outages are logged, timed and counted
 * (`health`); on each return the node checks whether Redis kept its data (the epoch key it wrote
 * when it joined).
 */
export class ClusterLink {
  readonly url: string;
  /** Connections watched, and those of them lost (closed since they were last ready). */
  private readonly conns = new Map<Redis, string>();
  private readonly lost = new Set<Redis>();
  private readonly health_: ClusterHealth;
  private downSince: number | null = null;
  private downMs = 0;
  private epoch: string | null = null;
  private closed = false;

  constructor(cluster: BrokerCluster) {
    this.url = cluster.url;
    this.health_ = { url: redactedUrl(cluster.url), up: true, outages: 0, downSeconds: 0, unroutedMessages: 0, refusedConnects: 0, resets: 0 };
  }

  /** Whether every connection is up (a CONNECT is refused otherwise). */
  get up(): boolean { return this.downSince === null; }

  get health(): ClusterHealth {
    const current = this.downSince === null ? 0 : Date.now() - this.downSince;
    return { ...this.health_, up: this.up, downSeconds: Math.round((this.downMs + current) / 100) / 10 };
  }

  /** A message taken in while Redis is away, delivered here only. */
  unrouted(): void { this.health_.unroutedMessages++; }
  /** A CONNECT refused while Redis is away. */
  refusedConnect(): void { this.health_.refusedConnects++; }

  /** A node's session store on this link (aedes-persistence-redis; see `clusterPersistence`). */
  persistence(maxSessionDelivery: number): ReturnType<typeof clusterPersistence> { return clusterPersistence(this, maxSessionDelivery); }

  /** A node's routing through Redis on this link (mqemitter-redis; see `clusterEmitter`). */
  emitter(): Inner { return clusterEmitter(this); }

  /** A new connection to the cluster's Redis, retrying for ever while it is away; watched until it is closed. */
  open(role: string): Redis {
    const conn = openRedis(this.url, { maxRetriesPerRequest: null, retryStrategy, connectionName: `aiot-sim-cluster-${role}` });
    conn.on('error', (err: Error) => log.debug({ url: this.health_.url, role, err: err.message }, 'cluster store connection error'));
    // The Aedes cluster packages leave some commands unawaited (aedes-persistence-redis 12: the
    // LREMs of putWill, delWill and of stale queue entries; mqemitter-redis 7.2: its QUITs): one
    // that fails (the connection closed as the broker closes) would be an unhandled rejection,
    // which ends a process. Marked handled here; whoever awaits a command still gets its error.
    // Upstream, those calls would be awaited or caught.
    const send = conn.sendCommand.bind(conn);
    conn.sendCommand = ((...args: Parameters<Redis['sendCommand']>) => {
      const reply = send(...args);
      if (reply instanceof Promise) reply.catch((err: Error) => log.debug({ role, err: err.message }, 'cluster store command failed'));
      return reply;
    }) as Redis['sendCommand'];
    this.conns.set(conn, role);
    conn.on('ready', () => {
      this.lost.delete(conn);
      this.check();
    });
    conn.on('close', () => {
      if (this.conns.has(conn)) this.lost.add(conn);
      this.check();
    });
    conn.on('end', () => this.release(conn));
    if (this.epoch === null) void this.join(conn);
    return conn;
  }

  /** Stop watching `conn` (its owner closes it). */
  release(conn: Redis): void {
    this.conns.delete(conn);
    this.lost.delete(conn);
    this.check();
  }

  /** Stop watching (the broker closes): outages after this are not reported. */
  close(): void { this.closed = true; }

  private check(): void {
    if (this.closed) return;
    const up = this.lost.size === 0;
    if (!up && this.downSince === null) {
      this.downSince = Date.now();
      this.health_.outages++;
      const roles = [...this.lost].map((c) => `${this.conns.get(c) ?? '?'} (${c.status})`);
      log.warn({ url: this.health_.url, lost: roles }, 'cluster store unreachable, retrying');
    } else if (up && this.downSince !== null) {
      const ms = Date.now() - this.downSince;
      this.downMs += ms;
      this.downSince = null;
      log.warn({ url: this.health_.url, downSeconds: ms / 1000 }, `cluster store back after ${(ms / 1000).toFixed(1)} s`);
      const conn = [...this.conns.keys()][0];
      if (conn) void this.join(conn);
    }
  }

  /** Note the epoch of the Redis joined (the first node writes it); a different one later means Redis lost its data. */
  private async join(conn: Redis): Promise<void> {
    try {
      await conn.set(EPOCH_KEY, randomUUID(), 'NX');
      const epoch = await conn.get(EPOCH_KEY);
      if (this.epoch !== null && epoch !== this.epoch) {
        this.health_.resets++;
        log.warn({ url: this.health_.url },
          'the cluster store came back without its data: retained messages, persistent sessions (subscriptions, queued messages) and the access directory kept in it are lost');
      }
      this.epoch = epoch;
    } catch (err) {
      // Redis went away again: checked on its next return.
      log.debug({ err: (err as Error).message }, 'cluster epoch not read');
    }
  }
}

/** The cluster's persistence, shared by every node (one per broker; it survives the broker's restarts). */
function clusterPersistence(link: ClusterLink, maxSessionDelivery: number): { persistence: object; stats: PersistenceStats; close: () => Promise<void> } {
  const conn = link.open('sessions');
  const persistence = persistenceRedis({ conn, maxSessionDelivery });
  // Aedes 1.2 stores a persistent session's SUBSCRIBE once per topic, each time with the packet's
  // whole list; aedes-persistence-redis waits for each store's broadcast to come back through
  // Redis under one key (client id and first topic), so with several topics each wait replaced the
  // last and all but one never ended: no SUBACK. One store per packet (its list) ends them all; it
  // could go upstream (Aedes storing once per packet, or the broadcast keeping every waiter).
  const add = persistence.addSubscriptions.bind(persistence);
  const stored = new WeakMap<object[], Promise<unknown>>();
  persistence.addSubscriptions = (client, subs) => {
    const job = stored.get(subs) ?? add(client, subs);
    stored.set(subs, job);
    return job;
  };
  // Figures of the in-memory bounds: nothing is held in this process.
  const stats: PersistenceStats = { retainedMessages: 0, retainedBytes: 0, retainedRefused: 0, queues: new SessionQueues({ maxMessages: 0, maxBytes: 0 }, () => null), fastPaths: { connects: 0, subscribes: 0 } };
  // Closed with the broker (a restart keeps it): its Redis connection would keep the process alive.
  const close = async (): Promise<void> => {
    link.close();
    await closeRedis(conn);
  };
  return { persistence, stats, close };
}

/** mqemitter-redis' members used here (it ships no types). */
interface RedisEmitter extends Inner {
  /** mqemitter's own emit: delivers to this process' listeners only. */
  _emit(packet: MqPacket, cb: (err?: Error | null) => void): unknown;
  /** Reports connection errors (mqemitter-redis emits 'error' on it, and an EventEmitter with no listener throws). */
  state: { on(event: 'error', fn: (err: Error) => void): unknown };
}

/**
 * The message bus between the nodes (one per Aedes instance: a restarted broker opens a new one).
 *
 * Two things of mqemitter-redis 7.2 are mended here (both could go upstream): it re-emits its
 * connections' errors on `state`, an EventEmitter nobody listens to, so the first refused
 * reconnect crashed the process (an uncaught 'error'); and while its publishing connection is
 * down it queues every message in ioredis' offline queue, unbounded, delivering none, not even to
 * its own process' subscribers. Here messages are delivered locally meanwhile, and counted.
 */
function clusterEmitter(link: ClusterLink): Inner {
  const subConn = link.open('routing-in');
  const pubConn = link.open('routing-out');
  const mq = (mqemitterRedis as unknown as (o: object) => RedisEmitter)({ subConn, pubConn, matchEmptyLevels: true });
  mq.state.on('error', () => undefined); // each connection's errors are logged by the link
  const routed = mq.emit.bind(mq);
  mq.emit = (packet: MqPacket, cb: (err?: Error | null) => void): unknown => {
    // The nodes' own $SYS messages (the session store's subscription broadcasts among them) wait for Redis.
    if (pubConn.status === 'ready' || packet.topic.startsWith('$SYS/')) return routed(packet, cb);
    link.unrouted();
    return mq._emit(packet, cb);
  };
  const close = mq.close.bind(mq);
  mq.close = (cb: () => void): unknown => {
    link.release(subConn);
    link.release(pubConn);
    // It ends once both connections have answered its QUITs, which wait for ever while Redis is
    // away: the connections are dropped after 1 s (at once when one is not open) and the close is done.
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(drop);
      cb();
    };
    const dropBoth = (): void => {
      subConn.disconnect();
      pubConn.disconnect();
      finish();
    };
    // Not open now (Redis away): nobody to QUIT, dropped at once.
    const drop = setTimeout(dropBoth, subConn.status === 'ready' && pubConn.status === 'ready' ? 1000 : 0);
    return close(finish);
  };
  return mq;
}

/** Where the cluster's access directory lives in its Redis: hashes of credentials, and a channel announcing new ones. */
const DIRECTORY = { devices: 'aiot:acl:devices', users: 'aiot:acl:users', channel: 'aiot:acl' } as const;

type DirectoryEntry = { kind: 'device'; id: string; cred: DeviceCredential } | { kind: 'user'; id: string; token: string };

/**
 * The cluster's access directory, shared through its Redis: every node keeps a copy of it in its
 * own `AccessDirectory` (loaded at start, then kept up to date from the channel), and whoever
 * provisions devices and app users (a shard process naming the cluster: `run --cluster`) writes
 * them to it before they connect. A node that has not heard of a credential yet refuses the
 * CONNECT, and the client tries again with backoff. After Redis was away the directory is read
 * again (what was announced meanwhile was not heard).
 */
export async function followDirectory(cluster: BrokerCluster, access: AccessDirectory): Promise<() => Promise<void>> {
  const sub = openRedis(cluster.url, { maxRetriesPerRequest: null, retryStrategy });
  sub.on('error', () => undefined);
  const load = async (): Promise<void> => {
    const read = openRedis(cluster.url, { maxRetriesPerRequest: null });
    read.on('error', () => undefined);
    try {
      for (const [id, cred] of Object.entries(await read.hgetall(DIRECTORY.devices))) apply({ kind: 'device', id, cred: JSON.parse(cred) as DeviceCredential });
      for (const [id, token] of Object.entries(await read.hgetall(DIRECTORY.users))) apply({ kind: 'user', id, token });
    } finally {
      await closeRedis(read);
    }
  };
  const apply = (e: DirectoryEntry): void => {
    if (e.kind === 'device') access.registerDevice(e.id, e.cred);
    else access.registerUser(e.id, e.token);
  };
  // Subscribed first, then loaded: nothing written in between is missed.
  sub.on('message', (_channel, text: string) => {
    try {
      for (const e of JSON.parse(text) as DirectoryEntry[]) apply(e);
    } catch {
      // Not ours: the channel is the cluster's, anything else on it is ignored.
    }
  });
  await sub.subscribe(DIRECTORY.channel);
  await load();
  // ioredis subscribes again on each reconnection ('ready' comes after); then the directory is read again.
  sub.on('ready', () => { load().catch((err: Error) => log.warn({ err: err.message }, 'cluster access directory not read again after Redis came back')); });
  return () => closeRedis(sub);
}

/** Collects the credentials a simulation provisions, to write them to the cluster's directory. */
export class DirectoryWriter {
  private readonly entries: DirectoryEntry[] = [];
  registerDevice(did: string, cred: DeviceCredential): void { this.entries.push({ kind: 'device', id: did, cred }); }
  registerUser(uid: string, token: string): void { this.entries.push({ kind: 'user', id: uid, token }); }

  /** Write everything collected (hashes, then the channel, in chunks); resolves once Redis has it. */
  async write(url: string): Promise<number> {
    const redis = openRedis(url, { maxRetriesPerRequest: 2 });
    redis.on('error', () => undefined);
    try {
      for (let i = 0; i < this.entries.length; i += 1000) {
        const chunk = this.entries.slice(i, i + 1000);
        const p = redis.pipeline();
        for (const e of chunk) {
          if (e.kind === 'device') p.hset(DIRECTORY.devices, e.id, JSON.stringify(e.cred));
          else p.hset(DIRECTORY.users, e.id, e.token);
        }
        p.publish(DIRECTORY.channel, JSON.stringify(chunk));
        await p.exec();
      }
      return this.entries.length;
    } finally {
      await closeRedis(redis);
    }
  }
}
