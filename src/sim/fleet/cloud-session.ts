/**
 * A cloud client as a fleet session: on the embedded broker's in-process transport, the Mijia
 * app client of each user, and the operator (the cloud's own account), are driven by the fleet
 * engine, as the devices are, instead of one mqtt.js client (with its streams, stores and
 * timers) each.
 *
 * It is still the client's own MQTT session through the broker, the one its mqtt.js client
 * would open (users.ts, simulation.ts): its client id, user name and password, a clean session,
 * no will; SUBSCRIBE at QoS 1 to the replies it waits for, on every connection; QoS 1 publishes
 * kept until PUBACK and sent again (DUP) after a reconnection; a new connection `reconnectMs`
 * after the connection is lost (mqtt.js' `reconnectPeriod`).
 */
import { logger } from '../../log.js';
import type { FleetHost, FleetPeer } from './peer.js';
import type { FleetLink } from './link.js';
import { CONNACK_REASONS, encodeConnect, encodePuback, encodePublish, encodeSubscribe, markDuplicate } from './packets.js';

const log = logger('fleet');

export interface CloudSessionFields {
  /** Who the session is, in errors: "app user 2000000001", "the operator". */
  name: string;
  clientId: string;
  username: string;
  password: string;
  /** Filters subscribed at QoS 1 on every connection (the session is clean). */
  filters: readonly string[];
  /** How long after losing the broker the session tries again, ms (mqtt.js' reconnectPeriod). */
  reconnectMs: number;
  /** Each message the broker delivers to the session. */
  onMessage: (topic: string, payload: string) => void;
}

type ConnectionEvent = 'connect' | 'close';

export class FleetCloudSession implements FleetPeer {
  readonly label: string;
  link: FleetLink | null = null;
  lastSentTick = 0;
  deadline: { at: number; cancelled: boolean } | null = null;
  /** Connections accepted so far. */
  connects = 0;
  private state: 'new' | 'connecting' | 'connected' | 'ended' = 'new';
  /** Whether the first connection is complete (accepted and subscribed): connectAll heard of it. */
  private ready = false;
  /** The packet id of the SUBSCRIBE waiting for its SUBACK, or 0. */
  private subscribing = 0;
  /** QoS 1 publishes not acknowledged yet, by packet id, in order, with their callers. */
  private unacked: Map<number, { packet: Buffer; settle: (err?: Error) => void }> | null = null;
  private lastId = 0;
  private listeners: Array<{ event: ConnectionEvent; fn: () => void }> | null = null;

  constructor(
    private readonly engine: FleetHost,
    readonly slot: number,
    private readonly fields: CloudSessionFields,
  ) {
    this.label = fields.username;
  }

  /** Accepted by the broker and not lost since (as mqtt.js' `connected`). */
  get connected(): boolean { return this.state === 'connected'; }

  /** Publish at QoS 1; resolves when the broker acknowledges it, rejects if the session ends first. */
  publish(topic: string, payload: string): Promise<void> {
    if (this.state === 'new' || this.state === 'ended') return Promise.reject(new Error(`${this.label}: session closed`));
    const id = this.takeId();
    const packet = encodePublish(topic, payload, 1, false, id);
    return new Promise<void>((resolve, reject) => {
      (this.unacked ??= new Map()).set(id, { packet, settle: (err?: Error) => (err ? reject(err) : resolve()) });
      // While the broker is away, the publish waits for the next connection (as mqtt.js' store).
      if (this.state === 'connected' && this.link) this.send(packet);
    });
  }

  on(event: ConnectionEvent, fn: () => void): void {
    (this.listeners ??= []).push({ event, fn });
  }

  off(event: ConnectionEvent, fn: () => void): void {
    const ls = this.listeners;
    if (!ls) return;
    const i = ls.findIndex((l) => l.event === event && l.fn === fn);
    if (i >= 0) ls.splice(i, 1);
  }

  /** End the session at once (as mqtt.js' `end(true)`): no DISCONNECT, nothing waits for acknowledgements. */
  close(): Promise<void> {
    if (this.state === 'ended') return Promise.resolve();
    this.state = 'ended';
    this.engine.cancel(this);
    const u = this.unacked;
    this.unacked = null;
    if (u) for (const p of u.values()) p.settle(new Error(`${this.label}: session closed`));
    const link = this.link;
    this.link = null;
    link?.destroy();
    this.emit('close');
    return Promise.resolve();
  }

  // FleetPeer: what the engine drives -------------------------------------------------------------

  start(): void {
    if (this.state !== 'new') return;
    this.state = 'connecting';
    this.open();
  }

  onConnack(returnCode: number): void {
    const link = this.link!;
    this.engine.cancel(this);
    if (returnCode !== 0) {
      const reason = CONNACK_REASONS[returnCode] ?? `Connection refused: code ${returnCode}`;
      if (!this.ready) {
        this.state = 'ended';
        this.link = null;
        link.destroy();
        this.engine.firstConnect(this, new Error(`${this.fields.name}: ${reason}`));
        return;
      }
      // Refused on a reconnection (mqtt.js would say so and try again): the close schedules the retry.
      log.debug({ session: this.label, reason }, 'reconnection refused');
      link.destroy();
      return;
    }
    if (this.state !== 'connecting') {
      this.link = null;
      link.destroy();
      return;
    }
    this.state = 'connected';
    this.connects++;
    const filters = this.fields.filters;
    if (filters.length) {
      this.subscribing = this.takeId();
      this.send(encodeSubscribe(this.subscribing, filters, 1));
    }
    if (this.unacked) for (const p of this.unacked.values()) this.send(markDuplicate(p.packet));
    if (!filters.length) this.becomeReady();
    this.emit('connect');
  }

  onSuback(id: number): void {
    if (id !== this.subscribing) return;
    this.subscribing = 0;
    this.becomeReady();
  }

  onPublish(topic: string, payload: string, qos: number, id: number): void {
    try {
      this.fields.onMessage(topic, payload);
    } catch (err) {
      log.error({ session: this.label, topic, err: (err as Error).message }, 'message handling failed');
    }
    if (qos === 1 && this.link) this.send(encodePuback(id));
  }

  onPuback(id: number): void {
    const u = this.unacked;
    const p = u?.get(id);
    if (!p) return;
    u!.delete(id);
    if (u!.size === 0) this.unacked = null;
    p.settle();
  }

  /** Cloud sessions send little and never wait on the link's high-water mark: nothing is queued. */
  onReadable(): void {}

  onLinkClosed(link: FleetLink): void {
    if (link !== this.link) return;
    this.link = null;
    this.subscribing = 0;
    this.engine.cancel(this);
    if (this.state === 'connected') this.state = 'connecting';
    this.emit('close');
    if (this.state === 'connecting') this.engine.retryAfter(this, this.fields.reconnectMs);
  }

  onConnackTimeout(): void {
    const link = this.link;
    if (!link) return;
    if (!this.ready) this.engine.firstConnect(this, new Error(`${this.fields.name}: connack timeout`));
    link.destroy();
  }

  retry(): void {
    if (this.state !== 'connecting' || this.link) return;
    this.open();
  }

  ping(packet: Buffer): void {
    if (this.state === 'connected' && this.link) this.send(packet);
  }

  // Internals ------------------------------------------------------------------------------------

  private open(): void {
    const link = this.engine.newLink(this);
    this.link = link;
    if (!this.engine.attach(link)) {
      // The broker does not serve (it is down): the connection closes at once, as a refused one would.
      link.destroy();
      return;
    }
    const { clientId, username, password } = this.fields;
    this.send(encodeConnect({ clientId, username, password, keepaliveSeconds: this.engine.keepaliveSeconds, clean: true }));
    this.engine.awaitConnack(this);
  }

  private becomeReady(): void {
    if (this.ready) return;
    this.ready = true;
    this.engine.firstConnect(this, null);
  }

  private send(packet: Buffer): void {
    this.lastSentTick = this.engine.tick;
    // The link keeps what it is given; its "full" only asks device sessions to hold back.
    this.link!.push(packet);
  }

  private emit(event: ConnectionEvent): void {
    const ls = this.listeners;
    if (!ls) return;
    for (const l of [...ls]) if (l.event === event) l.fn();
  }

  private takeId(): number {
    let id = this.lastId;
    do id = id === 0xffff ? 1 : id + 1;
    while (id === this.subscribing || this.unacked?.has(id));
    this.lastId = id;
    return id;
  }
}
