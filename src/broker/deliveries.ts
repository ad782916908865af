/**
 * Lean deliveries for Aedes 1.2 clients: `client.deliver0` and `client.deliverQoS` (the
 * functions Aedes registers for a client's subscriptions) replaced by versions that do the same
 * checks in the same order (no-local, one copy of each message, `authorizeForward`), assign
 * packet ids and touch the persistence exactly as Aedes does, but:
 *
 * - write the PUBLISH straight into the connection's Outbox (write-batching.ts), where Aedes
 *   copies the packet once more and serialises it with mqtt-packet in five writes;
 * - complete deliveries in one setImmediate per event-loop turn for all of them, where Aedes
 *   schedules a setImmediate (and a closure) per delivery before writing, and another after.
 *
 * Completion stays a turn later, as in Aedes (the emitter's in-flight bound and the publisher's
 * read loop count on it). This is the change we would propose upstream: Aedes' `write()` taking a
 * serialiser, and one deferral per turn instead of per packet.
 *
 * Two defects of Aedes 1.2 are mended here. Its duplicate check drops messages that arrive out of
 * order on a cluster node (`forwardable` says how and why). And a persistent session resuming (CleanSession=0) has its
 * subscriptions restored before its CONNACK is written (connect.js: restoreSubs, then storeWill,
 * then doConnack), so a message published meanwhile was written to it *before* the CONNACK
 * (MQTT-3.2.0-1 says the CONNACK comes first). MQTT.js then never connects: it holds the PUBLISH's
 * PUBACK until connected and reads nothing more meanwhile. On a cluster node the window is several
 * Redis round trips wide. Deliveries before the CONNACK are held and written once it is
 * (`release()`, on Aedes' `connackSent`), or dropped as undeliverable if the connection goes first;
 * upstream, Aedes' own deliveries would wait for `connackSent` the same way.
 *
 * The Aedes internals relied on are listed in `AedesClientInternals`; when a client does not have
 * them (another Aedes version), `leanDeliveries` changes nothing and says so.
 */
import type { Duplex } from 'node:stream';
import { Packet, type QueuedPacket } from './session-queues.js';
import { afterFlush, type Outbox } from './write-batching.js';

type Done = () => void;

/** A packet as Aedes hands it to a delivery function (an aedes-packet). */
export interface DeliveryPacket {
  topic: string;
  payload: Buffer | string;
  qos: number;
  retain: boolean;
  dup: boolean;
  brokerId?: string;
  brokerCounter?: number;
  messageId?: number;
  clientId?: string;
  nl?: boolean;
  [key: string]: unknown;
}

/** The members of an Aedes 1.2 `Client` the lean deliveries use (not in Aedes' published types). */
export interface AedesClientInternals {
  id: string;
  clean: boolean;
  connecting: boolean;
  connected: boolean;
  errored?: boolean;
  conn: Duplex;
  subscriptions: Record<string, { qos?: number } | undefined>;
  _nextId: number;
  /** Set by Aedes once the CONNACK is written (just after its `connackSent` event). */
  connackSent?: boolean;
  broker: {
    id: string;
    counter: number;
    authorizeForward(client: AedesClientInternals, packet: DeliveryPacket): DeliveryPacket | null | undefined;
    persistence: {
      outgoingUpdate(client: AedesClientInternals, packet: QueuedPacket): Promise<unknown>;
      outgoingClearMessageId(client: AedesClientInternals, packet: DeliveryPacket): Promise<unknown>;
    };
  };
  _onError(err?: Error | null): void;
  waitForDrain(cb: (err: Error | null) => void): void;
  emit(event: 'error', err: Error): boolean;
  deliver0(packet: DeliveryPacket, cb: Done): void;
  deliverQoS(packet: DeliveryPacket, cb: Done): void;
}

/** Whether `client` has what the lean deliveries replace and use. */
function hasInternals(client: object): client is AedesClientInternals {
  const c = client as Partial<AedesClientInternals>;
  return typeof c.deliver0 === 'function' && typeof c.deliverQoS === 'function' && typeof c._onError === 'function'
    && typeof c.waitForDrain === 'function' && typeof c._nextId === 'number'
    && typeof c.subscriptions === 'object' && typeof c.broker === 'object';
}

/** A client's lean deliveries: `release()` once its CONNACK is written, or its connection is gone. */
export interface LeanDeliveries {
  /** Write the deliveries held until the CONNACK (or fail them, the connection being gone); later ones go straight out. */
  release(): void;
}

/**
 * Replace `client`'s delivery functions (before it subscribes: Aedes captures them at SUBSCRIBE).
 * Returns null, changing nothing, when `client` is not the Aedes client this was written for.
 * Every client shares the functions below; what each keeps of its own is one `Lean`, and the two
 * delivery functions bound to it (the emitter calls them without a `this`).
 */
export function leanDeliveries(client: object, outbox: Outbox): LeanDeliveries | null {
  if (!hasInternals(client)) return null;
  const lean = new Lean(client, outbox);
  client.deliver0 = deliverQoS0.bind(lean);
  client.deliverQoS = deliverQoS.bind(lean);
  return lean;
}

class Lean implements LeanDeliveries {
  /** Deliveries that came before the CONNACK was written, in order (made when the first comes). */
  held: Array<() => void> | null = null;
  /** Set once the CONNACK is written or the connection gone: deliveries go straight out (or fail). */
  released = false;
  /** The message last let through (its broker and counter): the same one again is a duplicate. */
  lastBroker: string | undefined = undefined;
  lastCounter = -1;

  constructor(readonly c: AedesClientInternals, readonly outbox: Outbox) {}

  release(): void {
    const waiting = this.held;
    this.held = null;
    this.released = true;
    if (waiting) for (const go of waiting) go();
  }

  /**
   * Aedes' getToForwardPacket: no-local (MQTT 5), one copy of a message, then the broker's
   * authorizeForward. A client whose subscriptions overlap gets each message once: the emitter
   * calls its listeners for one message one after the other, so a copy is the message just let
   * through (same broker, same counter). Aedes instead keeps the highest counter seen from each
   * broker and drops anything at or below it, which loses messages that arrive out of counter
   * order: on a cluster node a QoS 1 message for a persistent session waits for the session store
   * (Redis) while a later one that no persistent session wants does not, and overtakes it.
   */
  forwardable(packet: DeliveryPacket): DeliveryPacket | null {
    const c = this.c;
    if (packet.clientId === c.id && packet.nl) return null;
    const id = packet.brokerId;
    if (id) {
      const counter = packet.brokerCounter ?? 0;
      if (id === this.lastBroker && counter === this.lastCounter) return null;
      this.lastBroker = id;
      this.lastCounter = counter;
    }
    return c.broker.authorizeForward(c, packet) ?? null;
  }

  /** Aedes' write(): the PUBLISH, or the error it would raise; `done` once written (or drained). */
  send(p: DeliveryPacket, qos: number, messageId: number, done: Done): void {
    const c = this.c;
    if (!this.released && !c.connackSent && c.connecting) {
      // Completed now: a session whose CONNACK never comes must not hold the emitter's delivery slots.
      (this.held ??= []).push(() => this.send(p, qos, messageId, noop));
      afterFlush(done);
      return;
    }
    if (!(c.connecting || c.connected)) {
      c._onError(new Error('connection closed'));
      afterFlush(done);
      return;
    }
    const payload = typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload;
    if (typeof p.topic !== 'string' || !(payload instanceof Uint8Array)) {
      c._onError(new Error('packet received not valid'));
      afterFlush(done);
      return;
    }
    if (this.outbox.publish(p.topic, payload, qos, messageId, p.retain === true, p.dup === true) || c.errored) afterFlush(done);
    else {
      c.waitForDrain((err) => {
        if (err) c._onError(err);
        done();
      });
    }
  }

  /** A QoS 1 copy, once the session store has it (or at once for a clean session or a retained message). */
  sendStored(out: QueuedPacket & DeliveryPacket, cb: Done, err: unknown): void {
    if (err) {
      this.c.emit('error', err as Error);
      cb();
    } else this.send(out, out.qos, out.messageId!, cb);
  }
}

function deliverQoS0(this: Lean, packet: DeliveryPacket, cb: Done): void {
  const toForward = this.forwardable(packet);
  if (toForward) this.send(toForward, 0, 0, cb);
  else afterFlush(cb);
}

function deliverQoS(this: Lean, packet: DeliveryPacket, cb: Done): void {
  const c = this.c;
  if (packet.qos === 0) {
    c.deliver0(packet, cb);
    return;
  }
  const toForward = this.forwardable(packet);
  if (toForward) {
    // Aedes' QoSPacket: a copy with this session's packet id, downgraded to the client's subscription.
    const out = new Packet(toForward as QueuedPacket, c.broker) as QueuedPacket & DeliveryPacket;
    if (toForward.messageId) out.messageId = toForward.messageId;
    else {
      out.messageId = c._nextId;
      c._nextId = c._nextId >= 65_535 ? 1 : c._nextId + 1;
    }
    const sub = c.subscriptions[out.topic];
    if (sub && (sub.qos ?? 0) < out.qos) out.qos = sub.qos ?? 0;
    out['writeCallback'] = cb;
    if (c.clean || out.retain) this.sendStored(out, cb, null);
    else {
      const stored = (err: unknown = null): void => this.sendStored(out, cb, err);
      c.broker.persistence.outgoingUpdate(c, out).then(stored, stored);
    }
  } else {
    if (c.clean === false) c.broker.persistence.outgoingClearMessageId(c, packet).then(noop, noop);
    afterFlush(cb);
  }
}

function noop(): void {}
