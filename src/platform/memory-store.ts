/**
 * The platform's counts in this process (the default store): the connection registry, the
 * activity windows, event de-duplication, the online history and the message counts. Every write
 * is applied at once. It also applies batches other threads wrote (`apply`), which is how a run
 * over worker threads counts into one store.
 */
import { ActivityWindow, type WindowState } from './activity.js';
import { EventDeduper } from './dedup.js';
import { OnlineHistory, type OnlineBucket } from './history.js';
import { ConnectionRegistry, Tally, type ConnectionCounts, type DeviceFacts } from './registry.js';
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

  /** Everything the snapshot is made of, as plain data, for merging with other shards' (`mergedSnapshot`). */
  exportState(): PlatformState {
    return {
      eventTime: this.eventTime_,
      connections: this.registry.counts(),
      devicesPerOwner: [...this.devicesPerOwner],
      windows: {
        activeDevices: this.windows.activeDevices.toState(), activeUsers: this.windows.activeUsers.toState(),
        voiceUsers: this.windows.voiceUsers.toState(), appUsers: this.windows.appUsers.toState(),
      },
      messages: this.messageCounts(),
    };
  }

  /** Apply a batch another writer collected (a worker thread's platform), in its order. */
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
    for (let i = 0; i < o.length; i += 1 + (ARITY[o[i]!] ?? 0)) {
      const f = (k: number): string => o[i + k] ?? '';
      switch (o[i]) {
        case OP.up: this.sessionUp(f(1), f(2), Number(f(3))); break;
        case OP.down: this.sessionDown(f(1), Number(f(2))); break;
        case OP.online: {
          const children: Known[] = [];
          let j = i + 1 + ARITY[OP.online]!;
          // The children of this online state follow it.
          while (o[j] === OP.child && o[j + 2] === f(1)) {
            children.push([o[j + 1]!, factsOf(o.slice(j + 3, j + 8))]);
            j += 1 + ARITY[OP.child]!;
          }
          this.online([f(1), factsOf(o.slice(i + 4, i + 9))], Number(f(2)), f(3) || undefined, children);
          i = j - 1 - ARITY[OP.online]!;
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

  /**
   * The snapshot one platform would give had it seen what every shard saw (homes split over
   * workers): connections and message counts add up, owners' devices add up per owner, and
   * activity windows are unions, so distinct counts are not double-counted.
   */
  static mergedSnapshot(states: readonly PlatformState[]): PlatformSnapshot {
    const dims = ['byCategory', 'byModel', 'byRegion', 'byTransport'] as const;
    const tallies = { byCategory: new Tally(), byModel: new Tally(), byRegion: new Tally(), byTransport: new Tally() };
    const byKind: Record<string, number> = {};
    const messages = { malformed: 0, duplicatesRemoved: 0, eventsMissing: 0 };
    const perOwner = new Map<string, number>();
    let eventTime: number | null = null;
    let online = 0;
    for (const st of states) {
      if (st.eventTime !== null && (eventTime === null || st.eventTime > eventTime)) eventTime = st.eventTime;
      online += st.connections.online;
      for (const d of dims) for (const [k, n] of Object.entries(st.connections[d])) tallies[d].add(k, n);
      for (const [uid, n] of st.devicesPerOwner) perOwner.set(uid, (perOwner.get(uid) ?? 0) + n);
      for (const [k, n] of Object.entries(st.messages.byKind)) byKind[k] = (byKind[k] ?? 0) + n;
      messages.malformed += st.messages.malformed;
      messages.duplicatesRemoved += st.messages.duplicatesRemoved;
      messages.eventsMissing += st.messages.eventsMissing;
    }
    const connections: ConnectionCounts = {
      online, byCategory: tallies.byCategory.record(), byModel: tallies.byModel.record(),
      byRegion: tallies.byRegion.record(), byTransport: tallies.byTransport.record(),
    };
    const window = (k: keyof PlatformState['windows']): ActivityWindow => ActivityWindow.merged(states.map((s) => s.windows[k]));
    return figures({
      eventTime, connections, ownersOver5: [...perOwner.values()].filter((n) => n > 5).length,
      activeDevices: window('activeDevices'), activeUsers: window('activeUsers'), voiceUsers: window('voiceUsers'), appUsers: window('appUsers'),
      messages: { byKind, ...messages },
    });
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

/** A platform's counts as plain data (structured-clone safe), for merging shards. */
export interface PlatformState {
  eventTime: number | null;
  connections: ConnectionCounts;
  /** Devices seen online, per owner. */
  devicesPerOwner: Array<[string, number]>;
  windows: Record<'activeDevices' | 'activeUsers' | 'voiceUsers' | 'appUsers', WindowState>;
  messages: PlatformSnapshot['messages'];
}
