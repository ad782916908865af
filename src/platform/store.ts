/**
 * Where the platform's counts go. The platform service (service.ts) reads messages and decides
 * what they mean; a store keeps the counts and gives the figures back. Two kinds:
 *
 * - `MemoryStore` (memory-store.ts): in this process, as the platform always counted; every
 *   write is applied at once and every read is exact at that instant.
 * - shared stores, which write in batches (`PlatformBatch`) to a store other processes or threads
 *   count into too: `RedisStore` reads the merged figures back every so often (`refresh()`), so
 *   its reads are a recent view of everyone's; the store of a `--workers` thread (`ThreadStore`,
 *   thread-store.ts) reads its own shard's counts, and the main thread applies every shard's
 *   batches to one `MemoryStore` (`apply`), whose figures are the run's.
 *
 * Writes are plain calls with plain data, in the order the platform saw the messages; a batch
 * keeps that order, so applying it anywhere gives what applying the calls one by one gives.
 */
import type { OnlineBucket } from './history.js';
import type { DeviceFacts } from './registry.js';
import type { PlatformSnapshot } from './snapshot.js';

/** The activity windows the platform keeps (distinct ids per event-time day). */
export const WINDOWS = ['activeDevices', 'activeUsers', 'voiceUsers', 'appUsers'] as const;
export type WindowName = (typeof WINDOWS)[number];

/** A device whose binding the platform knows, with what it knows. */
export type Known = readonly [did: string, facts: DeviceFacts | undefined];

export interface PlatformStore {
  /** An MQTT session for `did` was accepted (`connId` tells reconnections apart). */
  sessionUp(did: string, transport: string, connId: number): void;
  /** Session `connId` of `did` ended: it and its children are offline, unless a newer session replaced it. */
  sessionDown(did: string, connId: number): void;
  /**
   * `did` said it is online at event time `ts` (its own state, or a gateway's for a child:
   * `parent`), and so are the children that have no state of their own (`children`).
   */
  online(device: Known, ts: number, parent: string | undefined, children: readonly Known[]): void;
  /** `did` said (or its last will said) it is offline; a state older than its latest "online" changes nothing. */
  offline(did: string, ts: number): void;
  /** A message carried event time `ts` (the latest one is the platform's event time). */
  time(ts: number): void;
  /** A device message of this kind was counted. */
  kind(kind: string): void;
  /**
   * An event numbered `seq` by `did`: counted (kind `event_occured`) once, duplicates removed.
   * Returns false when the store knows now that it is a duplicate (or too old to check); a
   * store that decides later returns true and removes it then (the activity the caller counts
   * for it is a distinct count, which a duplicate does not change).
   */
  event(did: string, seq: number): boolean;
  /** `id` was active in `window` at event time `ts`. */
  active(window: WindowName, id: string, ts: number): void;
  /** A message the platform could not use, and why. */
  malformed(reason: string): void;

  /** Latest event time known here (a shared store: the merged one, or this writer's own if later). */
  readonly eventTime: number | null;
  /** Devices online (a shared store: as of its latest view). */
  readonly onlineCount: number;
  /** The figures (a shared store: as of its latest view). */
  snapshot(): PlatformSnapshot;
  /** The online count per event-time minute (lowest, highest, last), between two virtual times. */
  onlineHistory(from?: number, to?: number): OnlineBucket[];
}

/**
 * A shared store: its writes go out in batches and its reads are views of everyone's counts.
 * `settle()` resolves once everything written so far is in the store and the view includes it.
 */
export interface SharedStore extends PlatformStore {
  /** Write out what is batched; resolves once the store has it. */
  flush(): Promise<void>;
  /** Flush, then read the merged figures back (the next `snapshot()` returns them). */
  refresh(): Promise<void>;
  /** Stop writing and reading (flushes first); idempotent. */
  close(): Promise<void>;
  /** Subscribe to new views (after each `refresh`, timed or asked for); returns how to stop. */
  onView(fn: () => void): () => void;
}

export function isShared(store: PlatformStore): store is SharedStore {
  return typeof (store as Partial<SharedStore>).refresh === 'function';
}

/**
 * One batch of writes, in order, as flat strings (what a Redis script takes as arguments, and
 * what crosses a thread boundary cheaply): each op is a code followed by a fixed number of fields
 * (`ARITY`), except activity (`A window day n id...`), whose ids are grouped per window and day.
 * Counts that only add up (kinds, malformed reasons) and the event time travel aggregated.
 */
export interface PlatformBatch {
  ops: string[];
  /** Activity ids per `window\u0000day`. */
  activity: Array<[key: string, ids: string[]]>;
  kinds: Array<[kind: string, n: number]>;
  malformed: Array<[reason: string, n: number]>;
  /** Latest event time in the batch, or null. */
  time: number | null;
  /** How many writes it holds (for counting what a store lost). */
  size: number;
}

/** The ops and how many fields follow each code. */
export const OP = {
  /** sessionUp: did transport connId */
  up: 'U',
  /** sessionDown: did connId */
  down: 'D',
  /** online: did ts parent category model region radio uid (facts empty when unknown) */
  online: 'N',
  /** a stateless child online with its gateway: did gateway category model region radio uid */
  child: 'C',
  /** offline: did ts */
  offline: 'F',
  /** event: did seq */
  event: 'E',
} as const;

export const ARITY: Record<string, number> = { U: 3, D: 2, N: 8, C: 7, F: 2, E: 2 };

const DAY = 86_400_000;

/** The facts a store keeps of an online device, as op fields: category model region radio uid. */
export function factFields(facts: DeviceFacts | undefined): string[] {
  if (!facts) return ['', '', '', '', ''];
  return [facts.category, facts.model, facts.region, facts.radio ?? '', facts.uid ?? ''];
}

/** Collects writes into a `PlatformBatch` (a shared store's pending writes). */
export class BatchBuilder {
  private ops: string[] = [];
  private activity = new Map<string, Set<string>>();
  private kinds = new Map<string, number>();
  private malformed = new Map<string, number>();
  private time: number | null = null;
  /** Writes (messages' worth) collected since the last `take()`. */
  size = 0;

  get empty(): boolean { return this.size === 0 && this.time === null; }

  sessionUp(did: string, transport: string, connId: number): void { this.push(OP.up, did, transport, String(connId)); }
  sessionDown(did: string, connId: number): void { this.push(OP.down, did, String(connId)); }
  online(device: Known, ts: number, parent: string | undefined, children: readonly Known[]): void {
    this.push(OP.online, device[0], String(ts), parent ?? '', ...factFields(device[1]));
    for (const [child, facts] of children) this.push(OP.child, child, device[0], ...factFields(facts));
  }
  offline(did: string, ts: number): void { this.push(OP.offline, did, String(ts)); }
  event(did: string, seq: number): void { this.push(OP.event, did, String(seq)); }

  timeAt(ts: number): void {
    if (this.time === null || ts > this.time) this.time = ts;
  }

  kind(kind: string): void {
    this.kinds.set(kind, (this.kinds.get(kind) ?? 0) + 1);
    this.size++;
  }

  bad(reason: string): void {
    this.malformed.set(reason, (this.malformed.get(reason) ?? 0) + 1);
    this.size++;
  }

  active(window: WindowName, id: string, ts: number): void {
    const key = `${window}\u0000${Math.floor(ts / DAY)}`;
    let ids = this.activity.get(key);
    if (!ids) this.activity.set(key, (ids = new Set()));
    ids.add(id);
    this.size++;
  }

  /** The batch so far; the builder starts over. */
  take(): PlatformBatch {
    const b: PlatformBatch = {
      ops: this.ops, activity: [...this.activity].map(([k, ids]) => [k, [...ids]]),
      kinds: [...this.kinds], malformed: [...this.malformed], time: this.time, size: this.size,
    };
    this.ops = [];
    this.activity = new Map();
    this.kinds = new Map();
    this.malformed = new Map();
    this.time = null;
    this.size = 0;
    return b;
  }

  private push(...fields: string[]): void {
    for (const f of fields) this.ops.push(f);
    this.size++;
  }
}
