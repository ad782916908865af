/**
 * The platform's counts in this process (the default store): the connection registry, the
 * activity windows, event de-duplication, the online history and the message counts. Every write
 * is applied at once. It also applies batches other threads wrote (`apply`), which is how a run
 * over worker threads counts into one store.
 */
import { ActivityWindow } from './activity.js';
import { EventDeduper } from './dedup.js';
import { OnlineHistory, type OnlineBucket } from './history.js';
import { ConnectionRegistry, type DeviceFacts } from './registry.js';
import { figures, type PlatformSnapshot } from './snapshot.js';
import { ARITY, OP, WINDOWS, type Known, type PlatformBatch, type PlatformStore, type WindowName } from './store.js';

const DAY = 86_400_000;

export class MemoryStore implements PlatformStore {
  readonly registry: ConnectionRegistry;
  /** Per-device event sequence numbers: removes QoS 1 duplicates with bounded memory. */
  readonly dedup = new EventDeduper();
  readonly malformedReasons = new Map<string, number>();
  private eventTime_: number | null = null;
  private readonly byKind: Record<string, number> = {};
  private malformed_ = 0;
  /** Event time of each device's latest "online", to spot stale offline states (old wills). */
  private readonly onlineSince = new Map<string, number>();
  private readonly windows: Record<WindowName, ActivityWindow> = {
    activeDevices: new ActivityWindow(), activeUsers: new ActivityWindow(), voiceUsers: new ActivityWindow(), appUsers: new ActivityWindow(),
  };
  private readonly seenDevices = new Set<string>();
  private readonly devicesPerOwner = new Map<string, number>();
  private ownersOver5 = 0;
  private readonly history = new OnlineHistory();
  /** Facts given with "online" states, for the registry (which looks them up by did). */
  private readonly known = new Map<string, DeviceFacts>();

  constructor() {
    this.registry = new ConnectionRegistry((did) => this.known.get(did));
  }

  get eventTime(): number | null { return this.eventTime_; }
  get onlineCount(): number { return this.registry.size; }

  sessionUp(did: string, transport: string, connId: number): void {
    this.registry.sessionUp(did, transport, connId);
  }

  sessionDown(did: string, connId: number): void {
    this.registry.sessionDown(did, connId);
    this.noteOnline();
  }

  online(device: Known, ts: number, parent: string | undefined, children: readonly Known[]): void {
    const [did] = device;
    this.onlineSince.set(did, ts);
    this.markOnline(device, parent);
    // Children with no state of their own (BLE) are online while their gateway is.
    for (const child of children) this.markOnline(child, did);
    this.noteOnline();
  }

  offline(did: string, ts: number): void {
    // A last will carries the time its session connected: one older than the latest "online"
    // belongs to a session already replaced, and changes nothing.
    if (ts >= (this.onlineSince.get(did) ?? -Infinity)) this.registry.markOffline(did);
    this.noteOnline();
  }

  time(ts: number): void {
    if (this.eventTime_ === null || ts > this.eventTime_) this.eventTime_ = ts;
  }

  kind(kind: string): void {
    this.byKind[kind] = (this.byKind[kind] ?? 0) + 1;
  }

  event(did: string, seq: number): boolean {
    if (this.dedup.check(did, seq) !== 'new') return false;
    this.kind('event_occured');
    return true;
  }

  active(window: WindowName, id: string, ts: number): void {
    this.windows[window].add(id, ts);
  }

  malformed(reason: string): void {
    this.malformed_++;
    this.malformedReasons.set(reason, (this.malformedReasons.get(reason) ?? 0) + 1);
  }

  snapshot(): PlatformSnapshot {
    return figures({
      eventTime: this.eventTime_, connections: this.registry.counts(), ownersOver5: this.ownersOver5,
      activeDevices: this.windows.activeDevices, activeUsers: this.windows.activeUsers,
      voiceUsers: this.windows.voiceUsers, appUsers: this.windows.appUsers,
      messages: this.messageCounts(),
    });
  }

  onlineHistory(from?: number, to?: number): OnlineBucket[] {
    return this.history.range(from, to);
  }

  /**
   * Apply a batch another writer collected (a worker thread's platform), in its order. Shards
   * count disjoint devices (homes whole, gateways with their children), so applying every shard's
   * batches gives what one store fed all their writes gives: connections and counts add up,
   * owners' devices add up per owner, each day's activity is the union of the shards' ids.
   */
  apply(b: PlatformBatch): void {
    if (b.time !== null) this.time(b.time);
    for (const [kind, n] of b.kinds) this.byKind[kind] = (this.byKind[kind] ?? 0) + n;
    for (const [reason, n] of b.malformed) {
      this.malformed_ += n;
      this.malformedReasons.set(reason, (this.malformedReasons.get(reason) ?? 0) + n);
    }
    for (const [key, ids] of b.activity) {
      const [window, day] = key.split('\u0000') as [WindowName, string];
      if (!WINDOWS.includes(window)) continue;
      for (const id of ids) this.active(window, id, Number(day) * DAY);
    }
    const o = b.ops;
    for (let i = 0, next = 0; i < o.length; i = next) {
      const f = (k: number): string => o[i + k] ?? '';
      next = i + 1 + (ARITY[o[i]!] ?? 0);
      switch (o[i]) {
        case OP.up: this.sessionUp(f(1), f(2), Number(f(3))); break;
        case OP.down: this.sessionDown(f(1), Number(f(2))); break;
        case OP.online: {
          // The children of this online state follow it.
          const children: Known[] = [];
          while (o[next] === OP.child && o[next + 2] === f(1)) {
            children.push([o[next + 1]!, factsOf(o.slice(next + 3, next + 8))]);
            next += 1 + ARITY[OP.child]!;
          }
          this.online([f(1), factsOf(o.slice(i + 4, i + 9))], Number(f(2)), f(3) || undefined, children);
          break;
        }
        case OP.offline: this.offline(f(1), Number(f(2))); break;
        case OP.event: this.event(f(1), Number(f(2))); break;
        default: throw new RangeError(`platform batch: unknown op "${o[i]}" at ${i}`);
      }
    }
  }

  private markOnline([did, facts]: Known, parent: string | undefined): void {
    if (facts) this.known.set(did, facts);
    this.registry.markOnline(did, parent);
    this.countOwnership(did, facts);
  }

  private countOwnership(did: string, facts: DeviceFacts | undefined): void {
    if (this.seenDevices.has(did)) return;
    this.seenDevices.add(did);
    const uid = facts?.uid;
    if (!uid) return;
    const n = (this.devicesPerOwner.get(uid) ?? 0) + 1;
    this.devicesPerOwner.set(uid, n);
    if (n === 6) this.ownersOver5++;
  }

  private messageCounts(): PlatformSnapshot['messages'] {
    return {
      byKind: { ...this.byKind }, malformed: this.malformed_,
      duplicatesRemoved: this.dedup.stats.duplicates, eventsMissing: this.dedup.stats.missing,
    };
  }

  private noteOnline(): void {
    if (this.eventTime_ !== null) this.history.note(this.eventTime_, this.registry.size);
  }
}

/** Facts from their op fields (category model region radio uid); undefined when the writer knew none. */
function factsOf(fields: string[]): DeviceFacts | undefined {
  const [category, model, region, radio, uid] = fields;
  if (!category) return undefined;
  const f: DeviceFacts = { category, model: model ?? '', region: region ?? '' };
  if (radio) f.radio = radio;
  if (uid) f.uid = uid;
  return f;
}
