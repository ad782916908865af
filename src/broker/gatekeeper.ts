/**
 * The embedded broker's decisions on what clients send, installed as Aedes' hooks: who connects
 * and with which client id, what each may publish, subscribe to and receive, and what MQTT 3.1.1
 * forbids (refused here because Aedes 1.2 lets it through):
 *
 * - MQTT-3.1.3-8: an empty client id with CleanSession=0 gets CONNACK 2 and is closed (Aedes
 *   accepts it and makes a session nobody can resume; fixed upstream in moscajs/aedes#1097);
 * - MQTT-4.7.1-2/3: `#` and `+` must be whole levels (Aedes' check misses `a+/b`, `a#`);
 * - MQTT-1.5.3-2: U+0000 in a client id, user name, topic or filter closes the connection;
 * - client ids longer than `maxClientIdLength` get CONNACK 2 (Aedes caps only MQTT 3.1.0 ids).
 *
 * Network clients asking for no keep-alive, or more than the ceiling, are held to the ceiling.
 * A will is checked like a publish when it is set (CONNECT, refused with return code 5), so a
 * client learns at once that it may not leave it, instead of it being dropped unseen later.
 */
import type { Aedes, AedesPublishPacket, Client, ConnectPacket, Subscription } from 'aedes';
import { filterProblem, topicNameProblem } from '../contract/mqtt-topics.js';
import type { AccessDirectory, Principal } from './access.js';
import { ClientIdRegistry } from './client-ids.js';
import type { PublishPacketLike } from './frame-parser.js';
import type { LimitHits, ResolvedLimits } from './limits.js';
import type { Transport } from './listeners.js';
import type { Backlogged, OverloadGuard } from './overload.js';
import type { QueuedPacket } from './session-queues.js';
import { Slot } from './slot.js';

/** Errors the gate raised itself: already counted when raised. */
export const OWN_ERROR = Symbol('aiot-sim broker error');

/** What the gate tells the broker. */
export interface GateEvents {
  /** A CONNECT, publish or subscription refused; `connect` tells CONNECT refusals apart. */
  refused(reason: string, clientId: string, connect: boolean): void;
  /** A connection closed for what it sent (a protocol violation). */
  badPacket(reason: string, clientId: string): void;
  /** A client's publish was authorised (Aedes publishes it next). */
  publishing(): void;
  /** A message was let through to a subscriber. */
  delivered(): void;
}

interface ConnectFacts { emptyId: boolean; willTopic: string | null }

type Refusal = { reason: string; returnCode: 2 | 3 | 4 | 5; hit?: keyof LimitHits };

/** What `publishDirect` reads of an Aedes client (its own fields; the keep-alive one is the install step's). */
interface ClientState {
  connected: boolean;
  connackSent: boolean;
  closed: boolean;
  _keepaliveInterval: number;
  _lastPacketAt: number;
}

/** Aedes' `publish` as its handlers call it: with the client it came from. */
type PublishFrom = (packet: PublishPacketLike, client: Client, done: (this: { client?: Client }, err?: Error | null) => void) => void;

/** How a direct publish ends: an error closes the client, as it does from Aedes' handlers (`this` is Aedes' publish state). */
function publishedDirect(this: { client?: Client }, err?: Error | null): void {
  if (err) this.client?.emit('error', err);
}

/** Levels of a topic name (Aedes counts them against its `maxTopicLevels`). */
function levels(topic: string): number {
  let n = 1;
  for (let i = topic.indexOf('/'); i >= 0; i = topic.indexOf('/', i + 1)) n++;
  return n;
}

export class Gatekeeper {
  readonly ids: ClientIdRegistry;
  private readonly principals = new Slot<Client, Principal>('aiot-sim principal');
  private readonly facts = new Slot<Client, ConnectFacts>('aiot-sim connect facts');
  private readonly trusted = new WeakSet<object>();
  /** Why no CONNECT can be served now (the session store is away), or null; asked at each CONNECT. */
  unavailable: () => string | null = () => null;
  /** State payloads without their owner's uid, by original payload (shared by every delivery of it). */
  private readonly redacted = new WeakMap<Buffer, Buffer>();

  constructor(
    private readonly access: AccessDirectory,
    private readonly limits: ResolvedLimits,
    private readonly hits: LimitHits,
    private readonly overload: OverloadGuard,
    private readonly transportOf: (client: Client) => Transport,
    /** What is still to be written to a client: the overload guard sheds by it. */
    private readonly backlogOf: (client: Client) => Backlogged,
    private readonly events: GateEvents,
  ) {
    this.ids = new ClientIdRegistry(access);
  }

  /** The principal a client authenticated as. */
  principalOf(client: Client): Principal | undefined {
    return this.principals.get(client);
  }

  /** Connections opened by this process as the operator (in-process, never from the network). */
  trust(conn: object): void {
    this.trusted.add(conn);
  }

  /** The connection of `client` ended: a clean session's client id is free again. */
  release(client: Client): void {
    if (client.id) this.ids.release(client.id, client.conn);
  }

  /** What session `clientId` may have queued of `packet` (persistence), or null. */
  admitQueued(clientId: string, packet: QueuedPacket): QueuedPacket | null {
    const p = this.ids.principalOf(clientId);
    if (!p || !this.access.canRead(p, packet.topic)) return null;
    return p.role === 'observer' ? this.forObserver(packet) : packet;
  }

  /**
   * A QoS 0 PUBLISH from a connected client, published as Aedes' handlers would publish it but
   * without them (the frame parser offers it here first; see frame-parser.ts). Aedes passes each
   * packet through a dispatcher, the publish handler's checks, two series of steps with a bound
   * function and a closure each, and our `authorizePublish` by callback: for a message a device
   * publishes, most of what the broker does for it that is not delivering it. Here: the same
   * checks (the topic's name and levels, the client's right to publish there), the same count,
   * the client's last-packet time (the install step's keep-alive), and `aedes.publish` with the
   * client, as the handler calls it. Anything those checks refuse, and a client not connected yet
   * (Aedes queues its packets until the CONNACK) or closed, goes to Aedes as before, so refusals,
   * their errors and their counts are the handlers' own: false says so.
   */
  readonly publishDirect = (client: object, packet: PublishPacketLike): boolean => {
    const aedes = this.aedes;
    const c = client as Client & ClientState;
    if (aedes === null || !c.connected || !c.connackSent || c.closed) return false;
    const topic = packet.topic;
    if (topic === null || topicNameProblem(topic) !== null || levels(topic) > aedes.maxTopicLevels) return false;
    const p = this.principals.get(c);
    if (p === undefined || this.access.canPublish(p, topic) !== true) return false;
    this.events.publishing();
    if (c._keepaliveInterval > 0) c._lastPacketAt = performance.now();
    (aedes.publish as unknown as PublishFrom).call(aedes, packet, c, publishedDirect);
    return true;
  };

  private aedes: (Aedes & { maxTopicLevels: number }) | null = null;

  install(aedes: Aedes): void {
    this.aedes = aedes as Aedes & { maxTopicLevels: number };
    aedes.preConnect = (client, packet, done) => {
      const bad = connectProblem(packet);
      if (bad) {
        this.events.badPacket(bad, packet.clientId.slice(0, 64));
        return done(own(new Error(bad)), false);
      }
      this.facts.set(client, { emptyId: packet.clientId === '', willTopic: packet.will?.topic ?? null });
      const ceiling = this.limits.maxKeepAliveSeconds;
      const keepalive = packet.keepalive ?? 0;
      if (this.transportOf(client) !== 'in-process' && (keepalive === 0 || keepalive > ceiling)) {
        packet.keepalive = ceiling; // Aedes reads it next, to arm the keep-alive timer
        this.hits.keepAlive++;
      }
      done(null, true);
    };
    aedes.authenticate = (client, username, password, done) => {
      const res = this.connect(client, username, password?.toString('utf8'));
      if ('reason' in res) {
        if (res.hit) this.hits[res.hit]++;
        this.events.refused(`connect refused: ${res.reason}`, client.id, true);
        return done(own(Object.assign(new Error(res.reason), { returnCode: res.returnCode })), false);
      }
      this.principals.set(client, res);
      this.ids.hold(client.id, res, !client.clean, client.conn);
      done(null, true);
    };
    aedes.authorizePublish = (client, packet, done) => {
      if (!client) return done(null); // wills of clients that are gone: checked at CONNECT
      const bad = topicNameProblem(packet.topic);
      if (bad) {
        this.events.badPacket(`publish: ${bad}`, client.id);
        return done(own(new Error(bad)));
      }
      const p = this.principals.get(client);
      const ok = p ? this.access.canPublish(p, packet.topic) : 'unauthenticated client';
      if (ok !== true) {
        // MQTT 3.1.1 has no negative PUBACK: the connection is closed (MQTT-3.3.5-2).
        this.events.refused(`publish to ${packet.topic} refused: ${ok}`, client.id, false);
        return done(own(new Error(ok)));
      }
      this.events.publishing();
      done(null);
    };
    aedes.authorizeSubscribe = (client, sub: Subscription, done) => {
      const bad = filterProblem(sub.topic);
      if (bad) {
        // A protocol violation, not a refusal: the connection is closed (MQTT-4.8.0-1).
        this.events.badPacket(`subscribe: ${bad}`, client.id);
        return done(own(new Error(bad)), null);
      }
      const p = this.principals.get(client);
      const ok = p ? this.access.canSubscribe(p, sub.topic) : 'unauthenticated client';
      if (ok !== true) {
        this.events.refused(`subscribe to ${sub.topic} refused: ${ok}`, client.id, false);
        return done(null, null); // SUBACK 0x80 for this filter; the session stays up
      }
      done(null, sub);
    };
    aedes.authorizeForward = (client, packet: AedesPublishPacket) => {
      const p = this.principals.get(client);
      // Checked per delivery: a granted filter wider than what the principal may read delivers only what it may.
      if (!p || !this.access.canRead(p, packet.topic)) return null;
      if (!this.overload.admit(this.backlogOf(client), packet.qos)) return null;
      this.events.delivered();
      return p.role === 'observer' ? (this.forObserver(packet) as AedesPublishPacket) : packet;
    };
  }

  /** Decide a CONNECT whose packet was well formed: the principal, or why not. */
  private connect(client: Client, username: string | undefined, password: string | undefined): Principal | Refusal {
    const id = client.id;
    if (this.facts.get(client)?.emptyId && !client.clean) {
      return { reason: 'an empty client id needs CleanSession=1 (MQTT-3.1.3-8)', returnCode: 2 };
    }
    if (id.length > this.limits.maxClientIdLength) {
      return { reason: `client id of ${id.length} characters, at most ${this.limits.maxClientIdLength}`, returnCode: 2, hit: 'clientIdLength' };
    }
    const away = this.unavailable();
    if (away) return { reason: away, returnCode: 3 };
    let p: Principal;
    if (this.trusted.has(client.conn) && !username) p = { role: 'operator' };
    else {
      const res = this.access.authenticate(id, username, password);
      if ('refused' in res) return { reason: res.refused, returnCode: res.returnCode };
      p = res;
    }
    const idRefusal = this.ids.refusal(id, p);
    if (idRefusal) return { reason: idRefusal, returnCode: 2 };
    const will = this.facts.get(client)?.willTopic;
    if (will) {
      const ok = this.access.canPublish(p, will);
      if (ok !== true) return { reason: `will topic ${will}: ${ok}`, returnCode: 5 };
    }
    if (p.role === 'observer' && !client.clean && this.ids.isNewAnonymousSession(id) && this.ids.anonymousSessions >= this.limits.maxAnonymousSessions) {
      return { reason: `${this.limits.maxAnonymousSessions} persistent anonymous sessions already: connect with CleanSession=1 or an account`, returnCode: 3, hit: 'anonymousSessions' };
    }
    return p;
  }

  /**
   * What an anonymous client gets of a message: device state without its owner's `uid` (under
   * `telemetry`, anonymous clients see that a device is online, not whose it is).
   */
  private forObserver<T extends { topic: string; payload: Buffer | string }>(packet: T): T {
    if (this.access.anonymous !== 'telemetry' || !isStateTopic(packet.topic) || !Buffer.isBuffer(packet.payload)) return packet;
    let out = this.redacted.get(packet.payload);
    if (!out) {
      out = withoutUid(packet.payload);
      this.redacted.set(packet.payload, out);
    }
    return out === packet.payload ? packet : { ...packet, payload: out };
  }
}

/** What MQTT 3.1.1 forbids in a CONNECT that Aedes 1.2 lets through, or null. */
function connectProblem(packet: ConnectPacket): string | null {
  if (packet.clientId.includes('\u0000')) return 'CONNECT: a client id must not contain U+0000';
  if (packet.username?.includes('\u0000')) return 'CONNECT: a user name must not contain U+0000';
  const will = packet.will?.topic;
  if (will !== undefined) {
    const bad = topicNameProblem(will);
    if (bad) return `CONNECT: will: ${bad}`;
  }
  return null;
}

function isStateTopic(topic: string): boolean {
  return topic.startsWith('device/') && topic.endsWith('/state') && topic.indexOf('/', 7) === topic.length - 6;
}

function withoutUid(payload: Buffer): Buffer {
  try {
    const body: unknown = JSON.parse(payload.toString('utf8'));
    if (typeof body !== 'object' || body === null || Array.isArray(body) || !('uid' in body)) return payload;
    const { uid: _uid, ...rest } = body as Record<string, unknown>;
    return Buffer.from(JSON.stringify(rest));
  } catch {
    return payload;
  }
}

function own<E extends Error>(err: E): E {
  return Object.assign(err, { [OWN_ERROR]: true });
}
