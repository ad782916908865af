/**
 * Aedes' in-memory persistence (aedes-persistence), with these changes:
 *
 * - Retained messages kept here and looked up by topic instead of by scan. aedes-persistence
 *   answers every SUBSCRIBE by testing the filter against every retained message; our devices
 *   keep a retained state each and subscribe to literal topics, so connecting N devices cost N x
 *   retained tests (a third of the CPU of a 10,000-device run). Literal filters are answered from
 *   the Map; filters with wildcards test every retained topic, as aedes-persistence does (its own
 *   retained store stays empty: it held a second copy of every device's state).
 * - The retained store is bounded (count and bytes) for every topic but devices' own state (one
 *   per provisioned device) and the broker's `$SYS/`: over a bound a message on a new topic is
 *   delivered but not kept, and counted.
 * - Each session's QoS 1 queue is bounded (session-queues.ts), and holds only what the session
 *   may receive.
 * - The sessions' subscriptions are kept here (subscription-store.ts, with aedes-persistence's
 *   semantics): literal filters in a Map instead of its topic trie, so a device's subscription
 *   costs one entry and each QoS 1 publish finds the persistent sessions it reaches without
 *   splitting its topic; what wildcard filters match is remembered per topic. aedes-persistence's
 *   own subscription store stays empty (every method that reads or changes it is replaced; it is
 *   made without `broadcastSubscriptions`, which would let other cluster nodes change it).
 *
 * - It answers, without a stream, whether a session has anything queued and whether any retained
 *   message matches a SUBSCRIBE's filters (`hasOutgoing`, `hasRetained`; see scripts/patch-aedes.mjs).
 *
 * It is aedes-persistence's promise-based memory store itself (not its callback wrapper, which
 * Aedes 1.x does not use), its methods bound once, ours in place of some of them.
 */
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { SessionQueues, type QueueBounds, type QueuedPacket } from './session-queues.js';
import { SubscriptionStore, type SubscriptionRequest } from './subscription-store.js';
import { firstWildcard } from './topic-index.js';

const require = createRequire(import.meta.url);
/** aedes-persistence's memory store (the module has no type declarations). */
const MemoryStore = require('aedes-persistence/asyncPersistence.js') as new () => object;
/** qlobber's trie that only says whether a topic matches (as aedes-persistence tests retained topics). */
const { QlobberTrue } = require('qlobber') as { QlobberTrue: new (options: object) => { add(filter: string): unknown; test(topic: string): boolean } };

interface RetainedPacket { topic: string; payload: Buffer; qos?: number; [key: string]: unknown }

/**
 * A retained message as kept: its payload's bytes as a one-byte (latin1) string, which gives
 * back the same bytes. The payload Aedes hands over is a view into the bytes it was read from (a
 * chunk of a connection's traffic, or a slab of Node's buffer pool shared with other packets),
 * which a kept view would keep alive as long as the message is retained. Such memory is outside
 * V8's heap, and V8 starts a full collection whenever it grew by 64 MB since the last one, however
 * little the heap grew: with half a million devices announcing themselves, the devices' retained
 * states started one every 6-7 s. A string is a copy inside the heap, with no Buffer or
 * ArrayBuffer of its own.
 */
class Kept {
  constructor(readonly qos: number, readonly bytes: string) {}
}

/** The packet Aedes reads of a kept message (its `cmd`, `topic`, `payload`, `qos`). */
function packetOf(topic: string, kept: Kept): RetainedPacket {
  return { cmd: 'publish', topic, payload: Buffer.from(kept.bytes, 'latin1'), qos: kept.qos, retain: true };
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
  /** CONNECTs with nothing queued and SUBSCRIBEs nothing retained matched, answered without a stream (scripts/patch-aedes.mjs). */
  fastPaths: { connects: number; subscribes: number };
}

export interface BoundedPersistence {
  /** The object Aedes is given. */
  readonly persistence: object;
  readonly stats: PersistenceStats;
}

const isLiteral = (pattern: string): boolean => firstWildcard(pattern) === null;

/** Retained topics outside the bounds: a device's own state (bounded by provisioning) and the broker's `$SYS/`. */
function unbounded(topic: string): boolean {
  return topic.startsWith('$SYS/') || (topic.startsWith('device/') && topic.indexOf('/', 7) === topic.length - 6 && topic.endsWith('/state'));
}

/**
 * @param admit what session `clientId` may have queued of `packet` (see SessionQueues).
 */
export function boundedMemoryPersistence(bounds: PersistenceBounds, admit: (clientId: string, packet: QueuedPacket) => QueuedPacket | null): BoundedPersistence {
  const base = new MemoryStore();
  const subscriptions = new SubscriptionStore();
  const retained = new Map<string, Kept>();
  const queues = new SessionQueues(bounds, admit);
  const stats: PersistenceStats = { retainedMessages: 0, retainedBytes: 0, retainedRefused: 0, queues, fastPaths: { connects: 0, subscribes: 0 } };
  const size = (topic: string, payloadBytes: number): number => Buffer.byteLength(topic) + payloadBytes;

  const storeRetained = async (packet: RetainedPacket): Promise<void> => {
    const old = retained.get(packet.topic);
    if (!unbounded(packet.topic)) {
      const removing = packet.payload.length === 0;
      const messages = stats.retainedMessages + (removing ? (old ? -1 : 0) : (old ? 0 : 1));
      const bytes = stats.retainedBytes - (old ? size(packet.topic, old.bytes.length) : 0) + (removing ? 0 : size(packet.topic, packet.payload.length));
      if (!removing && ((!old && messages > bounds.maxRetainedMessages) || bytes > bounds.maxRetainedBytes)) {
        stats.retainedRefused++;
        return;
      }
      stats.retainedMessages = messages;
      stats.retainedBytes = bytes;
    }
    if (packet.payload.length === 0) retained.delete(packet.topic);
    else retained.set(packet.topic, new Kept(packet.qos ?? 0, packet.payload.toString('latin1')));
  };
  /** The retained messages on `topics` (literal filters), in their order. */
  const onTopics = (topics: string[]): RetainedPacket[] => topics.flatMap((t) => {
    const kept = retained.get(t);
    return kept ? [packetOf(t, kept)] : [];
  });
  const combi = (patterns: string[]): Readable => {
    const literal = patterns.filter(isLiteral);
    const wild = patterns.filter((p) => !isLiteral(p));
    if (wild.length === 0) return Readable.from(onTopics(literal));
    return Readable.from((function* () {
      yield* onTopics(literal);
      for (const p of wild) yield* retainedMatching(retained, p);
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
    // Asked by Aedes' connect and subscribe handlers before they build a stream (the fast paths
    // scripts/patch-aedes.mjs gives them): nearly every device's connect has nothing queued and
    // subscribes to filters nothing is retained on. A wildcard filter is assumed to match.
    hasOutgoing: (client: { id: string }): boolean => {
      if (queues.has(client.id)) return true;
      stats.fastPaths.connects++;
      return false;
    },
    hasRetained: (patterns: string[]): boolean => {
      if (patterns.some((p) => !isLiteral(p) || retained.has(p))) return true;
      stats.fastPaths.subscribes++;
      return false;
    },
    // A clean session replaces a stored one: its queue goes too (aedes-persistence kept it forever).
    cleanSubscriptions: async (client: { id: string }): Promise<void> => {
      queues.forget(client.id);
      subscriptions.clean(client.id);
    },
    addSubscriptions: async (client: { id: string }, subs: SubscriptionRequest[]): Promise<void> => subscriptions.add(client.id, subs),
    removeSubscriptions: async (client: { id: string }, topics: string[]): Promise<void> => subscriptions.remove(client.id, topics),
    subscriptionsByClient: async (client: { id: string }): Promise<SubscriptionRequest[]> => subscriptions.of(client.id),
    // Aedes only reads the list (to queue the message for each session).
    subscriptionsByTopic: async (topic: string): Promise<unknown[]> => subscriptions.match(topic),
    countOffline: async (): Promise<{ subsCount: number; clientsCount: number }> => subscriptions.count(),
    getClientList: (filter: string): Readable => Readable.from(subscriptions.clientsOf(filter)),
  };
  return { persistence: withOverrides(base, overrides), stats };
}

/** The retained messages `pattern` (with wildcards) matches, in the order they were first stored. */
function* retainedMatching(retained: ReadonlyMap<string, Kept>, pattern: string): Generator<RetainedPacket> {
  const trie = new QlobberTrue({ wildcard_one: '+', wildcard_some: '#', separator: '/' });
  trie.add(pattern);
  for (const [topic, kept] of retained) if (trie.test(topic)) yield packetOf(topic, kept);
}

/**
 * An object with every method of `base` (bound to it, once) and its `broker` accessor, and
 * `overrides` in place of some. (A Proxy did this before and bound a function on every call.)
 */
function withOverrides(base: object, overrides: Record<string, unknown>): object {
  const out: Record<string, unknown> = {};
  for (let proto = Object.getPrototypeOf(base) as object | null; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto) as object | null) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      if (name === 'constructor' || name in out) continue;
      const d = Object.getOwnPropertyDescriptor(proto, name)!;
      if (typeof d.value === 'function') out[name] = (d.value as (...a: unknown[]) => unknown).bind(base);
    }
  }
  Object.assign(out, overrides);
  Object.defineProperty(out, 'broker', { get: () => (base as { broker?: unknown }).broker, enumerable: true });
  return out;
}
