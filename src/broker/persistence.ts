/**
 * Aedes' in-memory persistence (aedes-persistence), with three changes:
 *
 * - Retained messages looked up by topic instead of by scan. aedes-persistence answers every
 *   SUBSCRIBE by testing the filter against every retained message; our devices keep a retained
 *   state each and subscribe to literal topics, so connecting N devices cost N x retained tests (a
 *   third of the CPU of a 10,000-device run). Literal filters are answered from an index; filters
 *   with wildcards go to the original (same semantics).
 * - The retained store is bounded (count and bytes) for every topic but devices' own state (one
 *   per provisioned device) and the broker's `$SYS/`: over a bound a message on a new topic is
 *   delivered but not kept, and counted.
 * - Each session's QoS 1 queue is bounded (session-queues.ts), and holds only what the session
 *   may receive.
 */
import { Readable } from 'node:stream';
import memory from 'aedes-persistence';
import { SessionQueues, type QueueBounds, type QueuedPacket } from './session-queues.js';

interface RetainedPacket { topic: string; payload: Buffer; [key: string]: unknown }
interface MemoryPersistence {
  storeRetained(packet: RetainedPacket): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): Readable;
  createRetainedStream(pattern: string): Readable;
  cleanSubscriptions(client: { id: string }): Promise<unknown>;
}

export interface PersistenceBounds extends QueueBounds {
  maxRetainedMessages: number;
  maxRetainedBytes: number;
}

/** What the bounded persistence holds and refused. */
export interface PersistenceStats {
  retainedMessages: number;
  retainedBytes: number;
  /** Retained messages not kept (the store was full). */
  retainedRefused: number;
  queues: SessionQueues;
}

export interface BoundedPersistence {
  /** The object Aedes is given. */
  readonly persistence: object;
  readonly stats: PersistenceStats;
}

const isLiteral = (pattern: string): boolean => !pattern.includes('+') && !pattern.includes('#');

/** Retained topics outside the bounds: a device's own state (bounded by provisioning) and the broker's `$SYS/`. */
function unbounded(topic: string): boolean {
  return topic.startsWith('$SYS/') || (topic.startsWith('device/') && topic.indexOf('/', 7) === topic.length - 6 && topic.endsWith('/state'));
}

/**
 * @param admit what session `clientId` may have queued of `packet` (see SessionQueues).
 */
export function boundedMemoryPersistence(bounds: PersistenceBounds, admit: (clientId: string, packet: QueuedPacket) => QueuedPacket | null): BoundedPersistence {
  const base = (memory as unknown as () => MemoryPersistence)();
  const retained = new Map<string, RetainedPacket>();
  const queues = new SessionQueues(bounds, admit);
  const stats: PersistenceStats = { retainedMessages: 0, retainedBytes: 0, retainedRefused: 0, queues };
  const size = (p: RetainedPacket): number => Buffer.byteLength(p.topic) + p.payload.length;

  const storeRetained = async (packet: RetainedPacket): Promise<void> => {
    const old = retained.get(packet.topic);
    if (!unbounded(packet.topic)) {
      const removing = packet.payload.length === 0;
      const messages = stats.retainedMessages + (removing ? (old ? -1 : 0) : (old ? 0 : 1));
      const bytes = stats.retainedBytes - (old ? size(old) : 0) + (removing ? 0 : size(packet));
      if (!removing && ((!old && messages > bounds.maxRetainedMessages) || bytes > bounds.maxRetainedBytes)) {
        stats.retainedRefused++;
        return;
      }
      stats.retainedMessages = messages;
      stats.retainedBytes = bytes;
    }
    await base.storeRetained(packet);
    if (packet.payload.length === 0) retained.delete(packet.topic);
    else retained.set(packet.topic, { ...packet });
  };
  const combi = (patterns: string[]): Readable => {
    const literal = patterns.filter(isLiteral);
    const wild = patterns.filter((p) => !isLiteral(p));
    if (wild.length === 0) {
      return Readable.from(literal.flatMap((p) => (retained.has(p) ? [retained.get(p)!] : [])));
    }
    const rest = base.createRetainedStreamCombi(wild);
    return Readable.from((async function* () {
      for (const p of literal) if (retained.has(p)) yield retained.get(p)!;
      for await (const packet of rest) yield packet as RetainedPacket;
    })());
  };

  const overrides: Record<string, unknown> = {
    storeRetained,
    createRetainedStreamCombi: combi,
    createRetainedStream: (pattern: string): Readable => combi([pattern]),
    outgoingEnqueue: async (sub: { clientId: string }, packet: QueuedPacket): Promise<void> => queues.enqueue(sub.clientId, packet),
    outgoingEnqueueCombi: async (subs: Array<{ clientId: string }>, packet: QueuedPacket): Promise<void> => {
      for (const sub of subs) queues.enqueue(sub.clientId, packet);
    },
    outgoingUpdate: async (client: { id: string }, packet: QueuedPacket): Promise<void> => queues.update(client.id, packet),
    outgoingClearMessageId: async (client: { id: string }, packet: { messageId?: number }): Promise<QueuedPacket | undefined> => queues.clear(client.id, packet),
    outgoingStream: (client: { id: string }): Readable => queues.stream(client.id),
    // A clean session replaces a stored one: its queue goes too (aedes-persistence kept it forever).
    cleanSubscriptions: async (client: { id: string }): Promise<unknown> => {
      queues.forget(client.id);
      return base.cleanSubscriptions(client);
    },
  };
  const persistence = new Proxy(base as object, {
    get(target, prop) {
      if (typeof prop === 'string' && prop in overrides) return overrides[prop];
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { persistence, stats };
}
