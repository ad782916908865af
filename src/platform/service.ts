/**
 * The platform service: counts what it observes on the broker (sessions, state messages, last
 * wills, device messages) and never reads simulator state. Time is event time: the virtual time
 * carried in payloads (`ts`, a state's `timestamp`). It reads both wire profiles (cloud push and
 * central hub) without being told which one devices speak.
 */
import { parseDeviceTopic, readDeviceMessage } from '../contract/wire.js';
import { ActivityWindow, type WindowState } from './activity.js';
import { EventDeduper } from './dedup.js';
import { propertyChangeTime } from './fast-read.js';
import { OnlineHistory, type OnlineBucket } from './history.js';
import { ConnectionRegistry, Tally, type ConnectionCounts, type DeviceLookup } from './registry.js';

export interface PlatformSnapshot {
  /** Latest event time seen (virtual epoch ms), or null before any. */
  eventTime: number | null;
  connections: ConnectionCounts;
  /** Devices used on the latest event-time day (UTC): commanded, or reporting an event. */
  dailyActiveDevices: number;
  /**
   * The mean of daily active devices over the 7 whole event-time days before the latest (fewer
   * early in a run; null on the first day): the daily figure with a week of day-to-day noise
   * averaged out, for comparing a scaled-down population with a published daily figure.
   */
  dailyActiveDevicesWeekMean: number | null;
  /** Users with an app session or a voice request in the last 1 / 7 / 30 event-time days. */
  activeUsers: { dau: number; wau: number; mau: number };
  /** Speakers with a voice request in the last 30 days. */
  speakerMau: number;
  /** Users with an app session in the last 30 days. */
  appMau: number;
  /** Owners with more than five devices among those the platform has seen online. */
  ownersWithMoreThan5Devices: number;
  messages: {
    /** Device messages observed, by kind. */
    byKind: Record<string, number>;
    /** Device messages the platform could not use (bad JSON, wrong shape, did mismatch). */
    malformed: number;
    /** Events seen again (same did and seq, QoS 1 redelivery) and removed. */
    duplicatesRemoved: number;
    /** Event sequence numbers skipped over and not (yet) received, over all devices. */
    eventsMissing: number;
  };
}

/** The broker events the platform listens to (the embedded broker emits them; an external one is observed as a client). */
export interface BrokerFeed {
  on(event: 'clientReady' | 'clientGone', fn: (info: { clientId: string; connId: number; principal: { role: string }; transport: string }) => void): unknown;
  on(event: 'message', fn: (topic: string, payload: Buffer, clientId: string | null) => void): unknown;
}

type Obj = Record<string, unknown>;

/** Event times the platform believes: 1970 to 2100-01-01 (one bad clock must not move everyone's event time). */
const MIN_TS = 0;
const MAX_TS = Date.UTC(2100, 0, 1);
const plausible = (ts: number): boolean => ts >= MIN_TS && ts <= MAX_TS;

export class PlatformService {
  readonly registry: ConnectionRegistry;
  private eventTime: number | null = null;
  private readonly byKind: Record<string, number> = {};
  private malformed = 0;
  /** Event time of each device's latest "online", to spot stale offline states (old wills). */
  private readonly onlineSince = new Map<string, number>();
  private readonly activeDevices = new ActivityWindow();
  private readonly activeUsers = new ActivityWindow();
  private readonly voiceSpeakers = new ActivityWindow();
  private readonly appUsers = new ActivityWindow();
  private readonly seenDevices = new Set<string>();
  private readonly devicesPerOwner = new Map<string, number>();
  private ownersOver5 = 0;
  readonly malformedReasons = new Map<string, number>();
  /** Per-device event sequence numbers: removes QoS 1 duplicates with bounded memory. */
  readonly dedup = new EventDeduper();
  private readonly history = new OnlineHistory();

  constructor(private readonly lookup: DeviceLookup) {
    this.registry = new ConnectionRegistry(lookup);
  }

  /** Start observing a broker. */
  observe(feed: BrokerFeed): void {
    feed.on('clientReady', (info) => {
      if (info.principal.role === 'device') this.registry.sessionUp(info.clientId, info.transport, info.connId);
    });
    feed.on('clientGone', (info) => {
      if (info.principal.role !== 'device') return;
      this.registry.sessionDown(info.clientId, info.connId);
      this.noteOnline();
    });
    feed.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  /** Feed one device message (also used when observing an external broker as a client). */
  onMessage(topic: string, payload: Buffer): void {
    // The hot path: a property change in the devices' own shape is read in place (fast-read.ts).
    const ts = propertyChangeTime(topic, payload);
    if (ts !== undefined) return this.onPropertyChange(ts);
    if (topic.startsWith('app/')) return this.onAppMessage(topic, payload);
    const t = parseDeviceTopic(topic);
    if (!t) return;
    if (t.kind === 'rpc_down') {
      // Commands carry no time: they count at the platform's current event time.
      if (this.eventTime !== null) this.activeDevices.add(t.did, this.eventTime);
      return;
    }
    const m = readDeviceMessage(t, payload.toString('utf8'));
    if ('problem' in m) return this.reject(m.problem);
    if (m.kind !== 'rpc_up') {
      if (!plausible(m.ts)) return this.reject('ts out of range');
      if (this.eventTime === null || m.ts > this.eventTime) this.eventTime = m.ts;
    }
    if (m.kind === 'event_occured' && m.seq !== undefined) {
      const seq = m.seq;
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return this.reject('seq is not a positive integer');
      if (this.dedup.check(m.did, seq) !== 'new') return;
    }
    this.byKind[m.kind] = (this.byKind[m.kind] ?? 0) + 1;
    if (m.kind === 'event_occured') this.onEvent(m.did, m.siid, m.eiid, m.ts, m.arguments);
    if (m.kind === 'state') this.onState(m.did, m.event, m.ts, m.parentId);
  }

  /** A property change: counted, and its time moves the event time (as any message's does). */
  private onPropertyChange(ts: number): void {
    if (!plausible(ts)) return this.reject('ts out of range');
    if (this.eventTime === null || ts > this.eventTime) this.eventTime = ts;
    this.byKind['properties_changed'] = (this.byKind['properties_changed'] ?? 0) + 1;
  }

  private onState(did: string, ev: unknown, ts: number, parent: string | undefined): void {
    if (ev === 'online') {
      this.onlineSince.set(did, ts);
      this.markOnline(did, parent);
      // Children with no state of their own (BLE) are online while their gateway is.
      for (const child of this.lookup(did)?.statelessChildren ?? []) this.markOnline(child, did);
      this.noteOnline();
    } else if (ev === 'offline') {
      // A last will carries the time its session connected: one older than the latest
      // "online" belongs to a session already replaced, and changes nothing.
      if (ts >= (this.onlineSince.get(did) ?? -Infinity)) this.registry.markOffline(did);
      this.noteOnline();
    }
    else this.reject('state event must be "online" or "offline"');
  }

  private markOnline(did: string, parent: string | undefined): void {
    this.registry.markOnline(did, parent);
    this.countOwnership(did);
  }

  private onEvent(did: string, siid: number, eiid: number, ts: number, args: unknown[]): void {
    this.activeDevices.add(did, ts);
    const voice = this.lookup(did)?.voice;
    if (!voice || voice.siid !== siid || voice.eiid !== eiid) return;
    this.voiceSpeakers.add(did, ts);
    const user = args.find((a: unknown) => typeof a === 'object' && a !== null && (a as Obj)['piid'] === voice.userPiid) as Obj | undefined;
    if (typeof user?.['value'] === 'string' && user['value']) this.activeUsers.add(user['value'], ts);
  }

  /** `app/{uid}/session` {"uid","event":"open","ts"}: an app session of that user. */
  private onAppMessage(topic: string, payload: Buffer): void {
    const parts = topic.split('/');
    if (parts[2] !== 'session') return;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      return this.reject('invalid JSON');
    }
    const obj = (typeof body === 'object' && body !== null ? body : {}) as Obj;
    const ts = obj['ts'];
    if (obj['uid'] !== parts[1] || typeof ts !== 'number' || !Number.isFinite(ts)) return this.reject('app session without matching uid and ts');
    if (!plausible(ts)) return this.reject('ts out of range');
    if (this.eventTime === null || ts > this.eventTime) this.eventTime = ts;
    this.activeUsers.add(parts[1]!, ts);
    this.appUsers.add(parts[1]!, ts);
  }

  private countOwnership(did: string): void {
    if (this.seenDevices.has(did)) return;
    this.seenDevices.add(did);
    const uid = this.lookup(did)?.uid;
    if (!uid) return;
    const n = (this.devicesPerOwner.get(uid) ?? 0) + 1;
    this.devicesPerOwner.set(uid, n);
    if (n === 6) this.ownersOver5++;
  }

  snapshot(): PlatformSnapshot {
    return figures({
      eventTime: this.eventTime, connections: this.registry.counts(), ownersOver5: this.ownersOver5,
      activeDevices: this.activeDevices, activeUsers: this.activeUsers, voiceSpeakers: this.voiceSpeakers, appUsers: this.appUsers,
      messages: this.messageCounts(),
    });
  }

  private messageCounts(): PlatformSnapshot['messages'] {
    return {
      byKind: { ...this.byKind }, malformed: this.malformed,
      duplicatesRemoved: this.dedup.stats.duplicates, eventsMissing: this.dedup.stats.missing,
    };
  }

  /** Everything the snapshot is made of, as plain data, for merging with other shards' (`mergedSnapshot`). */
  exportState(): PlatformState {
    return {
      eventTime: this.eventTime,
      connections: this.registry.counts(),
      devicesPerOwner: [...this.devicesPerOwner],
      windows: {
        activeDevices: this.activeDevices.toState(), activeUsers: this.activeUsers.toState(),
        voiceSpeakers: this.voiceSpeakers.toState(), appUsers: this.appUsers.toState(),
      },
      messages: this.messageCounts(),
    };
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
      activeDevices: window('activeDevices'), activeUsers: window('activeUsers'), voiceSpeakers: window('voiceSpeakers'), appUsers: window('appUsers'),
      messages: { byKind, ...messages },
    });
  }

  /** The online count per event-time minute (lowest, highest, last), between two virtual times. */
  onlineHistory(from?: number, to?: number): OnlineBucket[] {
    return this.history.range(from, to);
  }

  private noteOnline(): void {
    if (this.eventTime !== null) this.history.note(this.eventTime, this.registry.size);
  }

  private reject(reason: string): void {
    this.malformed++;
    this.malformedReasons.set(reason, (this.malformedReasons.get(reason) ?? 0) + 1);
  }
}

/** A platform's counts as plain data (structured-clone safe), for merging shards. */
export interface PlatformState {
  eventTime: number | null;
  connections: ConnectionCounts;
  /** Devices seen online, per owner. */
  devicesPerOwner: Array<[string, number]>;
  windows: Record<'activeDevices' | 'activeUsers' | 'voiceSpeakers' | 'appUsers', WindowState>;
  messages: PlatformSnapshot['messages'];
}

interface Parts {
  eventTime: number | null;
  connections: ConnectionCounts;
  ownersOver5: number;
  activeDevices: ActivityWindow;
  activeUsers: ActivityWindow;
  voiceSpeakers: ActivityWindow;
  appUsers: ActivityWindow;
  messages: PlatformSnapshot['messages'];
}

function figures(p: Parts): PlatformSnapshot {
  return {
    eventTime: p.eventTime,
    connections: p.connections,
    dailyActiveDevices: p.activeDevices.count(1),
    dailyActiveDevicesWeekMean: p.activeDevices.averageDaily(7),
    activeUsers: { dau: p.activeUsers.count(1), wau: p.activeUsers.count(7), mau: p.activeUsers.count(30) },
    speakerMau: p.voiceSpeakers.count(30),
    appMau: p.appUsers.count(30),
    ownersWithMoreThan5Devices: p.ownersOver5,
    messages: p.messages,
  };
}
