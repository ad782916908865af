/**
 * The platform service: counts what it observes on the broker (sessions, state messages, last
 * wills, device messages) and never reads simulator state. Time is event time: the virtual time
 * carried in payloads (`ts`, a state's `timestamp`). It reads both wire profiles (cloud push and
 * central hub) without being told which one devices speak.
 */
import { parseDeviceTopic, readDeviceMessage } from '../contract/wire.js';
import type { EventDeduper } from './dedup.js';
import { propertyChangeTime } from './fast-read.js';
import type { OnlineBucket } from './history.js';
import { MemoryStore } from './memory-store.js';
import type { ConnectionRegistry, DeviceLookup } from './registry.js';
import type { PlatformSnapshot } from './snapshot.js';
import { isShared, type Known, type PlatformStore } from './store.js';

export type { PlatformSnapshot } from './snapshot.js';

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
  /**
   * Where the counts go: in this process (the default, `MemoryStore`), or a store shared with other
   * processes or threads (`RedisStore`, a worker thread's batches), whose figures are everyone's.
   */
  private store_: PlatformStore;
  private counted = false;

  constructor(private readonly lookup: DeviceLookup, store: PlatformStore = new MemoryStore()) {
    this.store_ = store;
  }

  get store(): PlatformStore { return this.store_; }

  /** Count into `store` from now on; only before anything was counted. */
  useStore(store: PlatformStore): void {
    if (this.counted) throw new Error('platform.useStore(): the platform has already counted into another store');
    this.store_ = store;
  }

  /** The in-process store's connection registry (only a platform counting in this process has one). */
  get registry(): ConnectionRegistry { return this.memory('registry').registry; }
  /** Per-device event sequence numbers (only a platform counting in this process keeps them here). */
  get dedup(): EventDeduper { return this.memory('dedup').dedup; }
  /** Why messages were malformed, with counts (this process's store only). */
  get malformedReasons(): ReadonlyMap<string, number> { return this.memory('malformedReasons').malformedReasons; }
  /** Devices online now (a shared store: as of its latest view). */
  get online(): number { return this.store.onlineCount; }

  private memory(what: string): MemoryStore {
    if (this.store instanceof MemoryStore) return this.store;
    throw new Error(`platform.${what}: this platform counts into a shared store; read its figures with snapshot()`);
  }

  /** Start observing a broker. */
  observe(feed: BrokerFeed): void {
    this.counted = true;
    feed.on('clientReady', (info) => {
      if (info.principal.role === 'device') this.store.sessionUp(info.clientId, info.transport, info.connId);
    });
    feed.on('clientGone', (info) => {
      if (info.principal.role !== 'device') return;
      this.store.sessionDown(info.clientId, info.connId);
    });
    feed.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  /** Feed one device message (also used when observing an external broker as a client). */
  onMessage(topic: string, payload: Buffer): void {
    this.counted = true;
    // The hot path: a property change in the devices' own shape is read in place (fast-read.ts).
    const ts = propertyChangeTime(topic, payload);
    if (ts !== undefined) return this.onPropertyChange(ts);
    if (topic.startsWith('app/')) return this.onAppMessage(topic, payload);
    const t = parseDeviceTopic(topic);
    if (!t) return;
    if (t.kind === 'rpc_down') {
      // Commands carry no time: they count at the platform's current event time.
      const now = this.store.eventTime;
      if (now !== null) this.store.active('activeDevices', t.did, now);
      return;
    }
    const m = readDeviceMessage(t, payload.toString('utf8'));
    if ('problem' in m) return this.reject(m.problem);
    if (m.kind !== 'rpc_up') {
      if (!plausible(m.ts)) return this.reject('ts out of range');
      this.store.time(m.ts);
    }
    if (m.kind === 'event_occured' && m.seq !== undefined) {
      const seq = m.seq;
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return this.reject('seq is not a positive integer');
      // The store counts the event once (removing QoS 1 duplicates by did and seq).
      if (!this.store.event(m.did, seq)) return;
    } else this.store.kind(m.kind);
    if (m.kind === 'event_occured') this.onEvent(m.did, m.siid, m.eiid, m.ts, m.arguments);
    if (m.kind === 'state') this.onState(m.did, m.event, m.ts, m.parentId);
  }

  /** A property change: counted, and its time moves the event time (as any message's does). */
  private onPropertyChange(ts: number): void {
    if (!plausible(ts)) return this.reject('ts out of range');
    this.store.time(ts);
    this.store.kind('properties_changed');
  }

  private onState(did: string, ev: unknown, ts: number, parent: string | undefined): void {
    if (ev === 'online') {
      const facts = this.lookup(did);
      // Children with no state of their own (BLE) are online while their gateway is.
      const children = (facts?.statelessChildren ?? []).map((c): Known => [c, this.lookup(c)]);
      this.store.online([did, facts], ts, parent, children);
    } else if (ev === 'offline') this.store.offline(did, ts);
    else this.reject('state event must be "online" or "offline"');
  }

  private onEvent(did: string, siid: number, eiid: number, ts: number, args: unknown[]): void {
    this.store.active('activeDevices', did, ts);
    const voice = this.lookup(did)?.voice;
    if (!voice || voice.siid !== siid || voice.eiid !== eiid) return;
    const user = args.find((a: unknown) => typeof a === 'object' && a !== null && (a as Obj)['piid'] === voice.userPiid) as Obj | undefined;
    if (typeof user?.['value'] !== 'string' || !user['value']) return;
    // The speaker's monthly users are people: who spoke, not which speaker heard it.
    this.store.active('voiceUsers', user['value'], ts);
    this.store.active('activeUsers', user['value'], ts);
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
    this.store.time(ts);
    this.store.active('activeUsers', parts[1]!, ts);
    this.store.active('appUsers', parts[1]!, ts);
  }

  /** The figures (a shared store's: everyone's, as of its latest view). */
  snapshot(): PlatformSnapshot {
    return this.store.snapshot();
  }

  /** The online count per event-time minute (lowest, highest, last), between two virtual times. */
  onlineHistory(from?: number, to?: number): OnlineBucket[] {
    return this.store.onlineHistory(from, to);
  }

  /**
   * Resolves once what the platform counted so far is in its store and its figures include it
   * (at once for a store in this process).
   */
  async settle(): Promise<void> {
    if (isShared(this.store)) await this.store.refresh();
  }

  private reject(reason: string): void {
    this.store.malformed(reason);
  }
}
