/**
 * The platform service: counts what it observes on the broker (sessions, state messages, last
 * wills, device messages) and never reads simulator state. Time is event time: the virtual `ts`
 * carried in payloads.
 */
import { parseDeviceTopic } from '../device/topics.js';
import { ConnectionRegistry, type ConnectionCounts, type DeviceLookup } from './registry.js';

export interface PlatformSnapshot {
  /** Latest event time seen (virtual epoch ms), or null before any. */
  eventTime: number | null;
  connections: ConnectionCounts;
  messages: {
    /** Device messages observed, by kind. */
    byKind: Record<string, number>;
    /** Device messages the platform could not use (bad JSON, wrong shape, did mismatch). */
    malformed: number;
  };
}

/** The broker events the platform listens to (the embedded broker emits them; an external one is observed as a client). */
export interface BrokerFeed {
  on(event: 'clientReady' | 'clientGone', fn: (info: { clientId: string; connId: number; principal: { role: string }; transport: string }) => void): unknown;
  on(event: 'message', fn: (topic: string, payload: Buffer, clientId: string | null) => void): unknown;
}

type Obj = Record<string, unknown>;

export class PlatformService {
  readonly registry: ConnectionRegistry;
  private eventTime: number | null = null;
  private readonly byKind: Record<string, number> = {};
  private malformed = 0;
  /** Event time of each device's latest "online", to spot stale offline states (old wills). */
  private readonly onlineSince = new Map<string, number>();
  readonly malformedReasons = new Map<string, number>();

  constructor(lookup: DeviceLookup) {
    this.registry = new ConnectionRegistry(lookup);
  }

  /** Start observing a broker. */
  observe(feed: BrokerFeed): void {
    feed.on('clientReady', (info) => {
      if (info.principal.role === 'device') this.registry.sessionUp(info.clientId, info.transport, info.connId);
    });
    feed.on('clientGone', (info) => {
      if (info.principal.role === 'device') this.registry.sessionDown(info.clientId, info.connId);
    });
    feed.on('message', (topic, payload) => this.onMessage(topic, payload));
  }

  /** Feed one device message (also used when observing an external broker as a client). */
  onMessage(topic: string, payload: Buffer): void {
    const t = parseDeviceTopic(topic);
    if (!t || t.kind === 'rpc_down') return;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch {
      return this.reject('invalid JSON');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return this.reject('payload is not an object');
    const obj = body as Obj;
    if (t.kind !== 'rpc_up') {
      if (obj['did'] !== t.did) return this.reject('did in payload does not match topic');
      const ts = obj['ts'];
      if (typeof ts !== 'number' || !Number.isFinite(ts)) return this.reject('missing or invalid ts');
      if (this.eventTime === null || ts > this.eventTime) this.eventTime = ts;
    }
    this.byKind[t.kind] = (this.byKind[t.kind] ?? 0) + 1;
    if (t.kind === 'state') {
      const ev = obj['event'];
      const parent = typeof obj['parent_id'] === 'string' ? obj['parent_id'] : undefined;
      const ts = obj['ts'] as number;
      if (ev === 'online') {
        this.onlineSince.set(t.did, ts);
        this.registry.markOnline(t.did, parent);
      } else if (ev === 'offline') {
        // A last will carries the time its session connected: one older than the latest
        // "online" belongs to a session already replaced, and changes nothing.
        if (ts >= (this.onlineSince.get(t.did) ?? -Infinity)) this.registry.markOffline(t.did);
      }
      else this.reject('state event must be "online" or "offline"');
    }
  }

  snapshot(): PlatformSnapshot {
    return {
      eventTime: this.eventTime,
      connections: this.registry.counts(),
      messages: { byKind: { ...this.byKind }, malformed: this.malformed },
    };
  }

  private reject(reason: string): void {
    this.malformed++;
    this.malformedReasons.set(reason, (this.malformedReasons.get(reason) ?? 0) + 1);
  }
}
