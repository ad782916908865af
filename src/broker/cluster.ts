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
