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
 */
import { createRequire } from 'node:module';
import { Redis } from 'ioredis';
import mqemitterRedis from 'mqemitter-redis';
import type { AccessDirectory, DeviceCredential } from './access.js';
import type { Inner } from './emitter.js';
import { SessionQueues } from './session-queues.js';
import type { PersistenceStats } from './persistence.js';

/** aedes-persistence-redis ships no types: its factory takes ioredis options (here `conn`, an open connection). */
const persistenceRedis = createRequire(import.meta.url)('aedes-persistence-redis') as (opts: { conn: Redis; maxSessionDelivery: number }) => object;

export interface BrokerCluster {
  /** The Redis URL the nodes share (`redis://HOST:PORT[/DB]`). */
  url: string;
}

/** The cluster's persistence, shared by every node (one per broker; it survives the broker's restarts). */
export function clusterPersistence(cluster: BrokerCluster, maxSessionDelivery: number): { persistence: object; stats: PersistenceStats; close: () => Promise<void> } {
  const conn = new Redis(cluster.url, { maxRetriesPerRequest: null });
  conn.on('error', () => undefined);
  const persistence = persistenceRedis({ conn, maxSessionDelivery });
  // Figures of the in-memory bounds: nothing is held in this process.
  const stats: PersistenceStats = { retainedMessages: 0, retainedBytes: 0, retainedRefused: 0, queues: new SessionQueues({ maxMessages: 0, maxBytes: 0 }, () => null) };
  // Closed with the broker (a restart keeps it): its Redis connection would keep the process alive.
  const close = async (): Promise<void> => { await conn.quit().catch(() => conn.disconnect()); };
  return { persistence, stats, close };
}

/** The message bus between the nodes (one per Aedes instance: a restarted broker opens a new one). */
export function clusterEmitter(cluster: BrokerCluster): Inner {
  const subConn = new Redis(cluster.url, { maxRetriesPerRequest: null });
  const pubConn = new Redis(cluster.url, { maxRetriesPerRequest: null });
  subConn.on('error', () => undefined);
  pubConn.on('error', () => undefined);
  return (mqemitterRedis as unknown as (o: object) => Inner)({ subConn, pubConn, matchEmptyLevels: true });
}

/** Where the cluster's access directory lives in its Redis: hashes of credentials, and a channel announcing new ones. */
const DIRECTORY = { devices: 'aiot:acl:devices', users: 'aiot:acl:users', channel: 'aiot:acl' } as const;

type DirectoryEntry = { kind: 'device'; id: string; cred: DeviceCredential } | { kind: 'user'; id: string; token: string };

/**
 * The cluster's access directory, shared through its Redis: every node keeps a copy of it in its
 * own `AccessDirectory` (loaded at start, then kept up to date from the channel), and whoever
 * provisions devices and app users (a shard process naming the cluster: `run --cluster`) writes
 * them to it before they connect. A node that has not heard of a credential yet refuses the
 * CONNECT, and the client tries again with backoff.
 */
export async function followDirectory(cluster: BrokerCluster, access: AccessDirectory): Promise<() => Promise<void>> {
  const sub = new Redis(cluster.url, { maxRetriesPerRequest: null });
  const read = new Redis(cluster.url, { maxRetriesPerRequest: null });
  sub.on('error', () => undefined);
  read.on('error', () => undefined);
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
  for (const [id, cred] of Object.entries(await read.hgetall(DIRECTORY.devices))) apply({ kind: 'device', id, cred: JSON.parse(cred) as DeviceCredential });
  for (const [id, token] of Object.entries(await read.hgetall(DIRECTORY.users))) apply({ kind: 'user', id, token });
  await read.quit();
  return async () => { await sub.quit().catch(() => sub.disconnect()); };
}

/** Collects the credentials a simulation provisions, to write them to the cluster's directory. */
export class DirectoryWriter {
  private readonly entries: DirectoryEntry[] = [];
  registerDevice(did: string, cred: DeviceCredential): void { this.entries.push({ kind: 'device', id: did, cred }); }
  registerUser(uid: string, token: string): void { this.entries.push({ kind: 'user', id: uid, token }); }

  /** Write everything collected (hashes, then the channel, in chunks); resolves once Redis has it. */
  async write(url: string): Promise<number> {
    const redis = new Redis(url, { maxRetriesPerRequest: 2 });
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
      await redis.quit().catch(() => redis.disconnect());
    }
  }
}
