/**
 * One fleet session: a Wi-Fi device's or gateway's own MQTT session (client id = did, username =
 * did, password = its token, clean session off, keep-alive, last will), driven by the fleet
 * engine. It is a plain object of fields: no client, no stream of its own, no closures or timers
 * (the engine owns the one reader of broker bytes, the one keep-alive timer and the one deadline
 * timer). It behaves as `ClientSession` (session.ts) does over mqtt.js: the same states and ways
 * down (session-state.ts), QoS 1 publishes kept until PUBACK and sent again (DUP) after a drop,
 * reconnection with backoff and jitter, announcements in population order.
 */
import type { Device, DeviceLink, PublishOptions } from '../../device/device.js';
import { topics, type PropertyFrame, type Scalar } from '../../contract/wire.js';
import { logger } from '../../log.js';
import { Backoff, DEFAULT_RECONNECT } from '../backoff.js';
import { Rng } from '../rng.js';
import { TEARDOWN, type SessionState, type Teardown } from '../session-state.js';
import type { DeviceSession } from '../session.js';
import type { FleetHost, FleetPeer } from './peer.js';
import type { FleetLink } from './link.js';
import { CONNACK_REASONS, DISCONNECT, encodeConnect, encodePropertyPublish, encodePuback, encodePublish, encodeSubscribe, markDuplicate } from './packets.js';

const log = logger('fleet');
const DONE = Promise.resolve();
/** The longest a clean DISCONNECT waits for the session's QoS 1 publishes to be acknowledged. */
export const DISCONNECT_WAIT_MS = 3000;
/** How long after its last acknowledgement a session leaving cleanly sends DISCONNECT, ms. */
const ACKED_TO_DISCONNECT_MS = 10;

export class FleetSession implements DeviceSession, DeviceLink, FleetPeer {
  readonly did: string;
  get label(): string { return this.did; }
  /** Set for gateways only: the session's devices by did (commands name a child's did). */
  private readonly byDid: Map<string, Device> | null = null;
  private state_: SessionState = 'new';
  /** See ClientSession.selfAnnounce: whether the next reconnection announces itself. */
  private selfAnnounce = true;
  connects = 0;
  reconnectAttempts = 0;
  private backoff: Backoff | null = null;
  /** The connection to the broker, or null while there is none (the engine's). */
  link: FleetLink | null = null;
  /** QoS 1 publishes sent (or to send) and not acknowledged yet, by packet id, in order. */
  private unacked: Map<number, Buffer> | null = null;
  /** Of `unacked`, those written off the in-flight count when their connection went. */
  private writtenOff: Set<number> | null = null;
  /** Packets waiting while the broker's end of the link is full (counted in flight). */
  private queue: Buffer[] | null = null;
  private lastId = 0;
  /** The engine's keep-alive tick when this session last sent something. */
  lastSentTick = 0;
  /** The engine's pending deadline for this session (retry, CONNACK, DISCONNECT), if any. */
  deadline: { at: number; cancelled: boolean } | null = null;
  /** Callers of whenConnected() waiting, with their bounds. */
  private waiters: Array<{ resolve: (ok: boolean) => void; deadline: { cancelled: boolean } }> | null = null;
  /** A clean DISCONNECT waiting for acknowledgements. */
  private closing: (() => void) | null = null;

  constructor(
    private readonly engine: FleetHost,
    /** Index in the engine's session table (links name their session by it). */
    readonly slot: number,
    readonly device: Device,
    readonly children: Device[],
    private readonly token: string,
  ) {
    this.did = device.did;
    if (children.length) {
      this.byDid = new Map([[device.did, device]]);
      for (const c of children) this.byDid.set(c.did, c);
    }
  }

  get state(): SessionState { return this.state_; }
  get connected(): boolean { return this.state_ === 'connected'; }
  get held(): boolean { return this.state_ === 'suspended' || this.state_ === 'left'; }

  /** The first connection (the engine's bulk connect calls it). */
  start(): void {
    if (this.state_ !== 'new') return;
    this.enter('connecting');
    this.open(false);
  }

  stop(): Promise<void> { return this.teardown('stop'); }
  kill(): void { void this.teardown('kill'); }
  drop(): void { void this.teardown('drop'); }
  suspend(): void { void this.teardown('suspend'); }
  leave(): Promise<void> { return this.teardown('leave'); }

  holdAnnouncement(): void {
    this.selfAnnounce = false;
  }

  goOnline(): void {
    this.selfAnnounce = true;
    if (this.state_ !== 'connected' || !this.link) return;
    this.device.attach(this);
    for (const c of this.children) c.attach(this);
    const filters = [topics.rpcDown(this.did)];
    for (const c of this.children) filters.push(topics.rpcDown(c.did));
    this.send(encodeSubscribe(this.takeId(), filters, 1));
    this.announce(this.device, 'online');
    for (const c of this.children) this.announce(c, 'online');
    this.device.flushOffline();
    for (const c of this.children) c.flushOffline();
  }

  resume(timeoutMs = 30_000): Promise<void> {
    if (!this.held) return DONE;
    const left = this.state_ === 'left';
    this.enter('connecting');
    this.selfAnnounce = false;
    const back = this.whenConnected(timeoutMs);
    // After a clean DISCONNECT nothing was left in flight; after a network loss the unacknowledged publishes go again.
    this.open(!left);
    return back;
  }

  async whenConnected(timeoutMs = 30_000): Promise<void> {
    if (this.state_ === 'new' || this.state_ === 'ended') throw new Error(`device ${this.did}: session stopped`);
    if (this.state_ === 'connected') return;
    const back = await new Promise<boolean>((resolve) => {
      const deadline = this.engine.deadlineAt(timeoutMs, () => this.settleWaiter(resolve, false));
      (this.waiters ??= []).push({ resolve, deadline });
    });
    if (!back) throw new Error(`device ${this.did}: no reconnect within ${timeoutMs} ms`);
  }

  private settleWaiter(resolve: (ok: boolean) => void, ok: boolean): void {
    const ws = this.waiters;
    if (!ws) return;
    const i = ws.findIndex((w) => w.resolve === resolve);
    if (i < 0) return;
    const [w] = ws.splice(i, 1);
    if (!ws.length) this.waiters = null;
    w!.deadline.cancelled = true;
    resolve(ok);
  }

  // DeviceLink: what the devices publish ---------------------------------------------------------

  publish(topic: string, payload: string, opts: PublishOptions): void {
    const st = this.state_;
    if (st === 'new' || st === 'ended') return;
    const e = this.engine;
    e.trace.record(e.clock.now(), topic, payload, opts.qos, opts.retain);
    const up = st === 'connected' && this.link !== null;
    if (opts.qos === 0) {
      // QoS 0 is not kept while disconnected (as mqtt.js with queueQoSZero off).
      if (up) this.send(encodePublish(topic, payload, 0, opts.retain, 0));
      return;
    }
    const id = this.takeId();
    const packet = encodePublish(topic, payload, 1, opts.retain, id);
    (this.unacked ??= new Map()).set(id, packet);
    if (up) {
      e.inflight.add(1);
      this.send(packet);
    } else (this.writtenOff ??= new Set()).add(id);
  }

  /** A property change (QoS 0): `publish` of its frame's topic and payload, written straight into its packet. */
  publishProperty(frame: PropertyFrame, did: string, didJson: string, value: Scalar, ts: number): void {
    const st = this.state_;
    if (st === 'new' || st === 'ended') return;
    const e = this.engine;
    const packet = encodePropertyPublish(frame, did, didJson, value, ts);
    e.trace.recordPublish(e.clock.now(), packet);
    if (st === 'connected' && this.link !== null) this.send(packet);
  }

  // From the engine: what the broker said ---------------------------------------------------------

  onConnack(returnCode: number): void {
    const link = this.link!;
    this.engine.cancel(this);
    if (returnCode !== 0) {
      const reason = CONNACK_REASONS[returnCode] ?? `Connection refused: code ${returnCode}`;
      this.enter('ended');
      this.link = null;
      link.destroy();
      this.engine.firstConnect(this, new Error(`device ${this.did}: ${reason}`));
      return;
    }
    if (this.state_ !== 'connecting') {
      // A connection that got through after a fault or stop() took the session down: not wanted.
      this.link = null;
      link.destroy();
      return;
    }
    this.enter('connected');
    this.connects++;
    this.backoff?.reset();
    if (this.unacked) for (const packet of this.unacked.values()) this.send(markDuplicate(packet));
    if (this.connects === 1) this.engine.firstConnect(this, null);
    const ws = this.waiters;
    if (ws) {
      this.waiters = null;
      for (const w of ws) {
        w.deadline.cancelled = true;
        w.resolve(true);
      }
    }
    if (this.connects > 1 && this.selfAnnounce) this.goOnline();
  }

  onPublish(topic: string, payload: string, qos: number, id: number): void {
    const a = topic.indexOf('/');
    const did = topic.slice(a + 1, topic.indexOf('/', a + 1));
    const device = this.byDid ? this.byDid.get(did) : did === this.did ? this.device : undefined;
    if (device) {
      try {
        device.handleRpc(payload);
      } catch (err) {
        log.error({ did, err: (err as Error).message }, 'rpc handling failed');
      }
    }
    if (qos === 1 && this.link) this.send(encodePuback(id));
  }

  /** The broker took the subscriptions to the devices' commands (or refused them: the engine logs it). */
  onSuback(): void {}

  onPuback(id: number): void {
    const u = this.unacked;
    if (!u?.delete(id)) return;
    if (!this.writtenOff?.delete(id)) this.engine.inflight.add(-1);
    if (u.size === 0) {
      this.unacked = null;
      this.writtenOff = null;
      this.closing?.();
    }
  }

  /** The broker reads again: send what waited. */
  onReadable(): void {
    const q = this.queue;
    const link = this.link;
    if (!q || !link) return;
    this.queue = null;
    const inflight = this.engine.inflight;
    for (let i = 0; i < q.length; i++) {
      inflight.add(-1);
      if (!link.push(q[i]) && i + 1 < q.length) {
        this.queue = q.slice(i + 1);
        return;
      }
    }
  }

  /** The connection is gone (the broker closed it, or this session did). */
  onLinkClosed(link: FleetLink): void {
    if (link !== this.link) return;
    this.link = null;
    this.engine.cancel(this);
    if (this.state_ === 'connected') this.enter('connecting');
    this.detachAll();
    this.writeOff();
    this.closing?.();
    this.scheduleRetry();
  }

  /** No CONNACK in time: give this connection up (a retry follows, as after any close). */
  onConnackTimeout(): void {
    const link = this.link;
    if (!link) return;
    if (this.connects === 0) {
      this.engine.firstConnect(this, new Error(`device ${this.did}: connack timeout`));
    }
    link.destroy();
  }

  /** Keep-alive: nothing sent for a while, so say we are here. */
  ping(packet: Buffer): void {
    if (this.state_ === 'connected' && this.link) this.send(packet);
  }

  // Internals ------------------------------------------------------------------------------------

  private teardown(how: Teardown): Promise<void> {
    const rule = TEARDOWN[how];
    const st = this.state_;
    if (st === 'new' || st === 'ended' || (!rule.evenIfHeld && this.held)) return DONE;
    const goodbye = rule.clean && st === 'connected';
    if (goodbye) this.sayOffline();
    if (rule.next !== 'connecting') this.engine.cancel(this);
    this.enter(rule.next);
    this.detachAll();
    if (goodbye) return this.disconnect();
    const link = this.link;
    if (how !== 'drop' && how !== 'suspend') {
      // An end for good, or a clean leave of a session that was not up: nothing stays in flight.
      this.unacked = null;
      this.writtenOff = null;
    }
    // No DISCONNECT: the broker publishes the will (if it had taken the session).
    if (link) link.destroy();
    this.writeOff();
    return DONE;
  }

  /**
   * Wait for the session's QoS 1 publishes to be acknowledged, send DISCONNECT, and resolve once
   * the broker has closed the connection (it handles a connection's packets in order, so what
   * came before DISCONNECT has been published by then); at most DISCONNECT_WAIT_MS in all.
   */
  private disconnect(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.closing = null;
        deadline.cancelled = true;
        this.link?.destroy();
        this.unacked = null;
        this.writtenOff = null;
        this.writeOff();
        resolve();
      };
      const bye = (): void => {
        const link = this.link;
        if (!link || link.destroyed) {
          done();
          return;
        }
        this.closing = done;
        link.push(DISCONNECT);
        link.push(null);
      };
      const deadline = this.engine.deadlineAt(DISCONNECT_WAIT_MS, done);
      // As mqtt.js does, DISCONNECT goes 10 ms after the last acknowledgement: the broker
      // acknowledges a QoS 1 publish before it publishes it, and would drop what it has not.
      if (this.unacked && this.link) this.closing = () => { this.closing = null; this.engine.deadlineAt(ACKED_TO_DISCONNECT_MS, bye); };
      else bye();
    });
  }

  private open(keepStore: boolean): void {
    if (!keepStore) {
      this.unacked = null;
      this.writtenOff = null;
    }
    const link = this.engine.newLink(this);
    this.link = link;
    this.queue = null;
    if (!this.engine.attach(link)) {
      // The broker does not serve (it is down): the connection closes at once, as a refused one would.
      link.destroy();
      return;
    }
    const will = { topic: topics.state(this.did), payload: JSON.stringify(this.device.statePayload('offline')), qos: 1 as const, retain: true };
    this.send(encodeConnect({ clientId: this.did, username: this.did, password: this.token, keepaliveSeconds: this.engine.keepaliveSeconds, clean: false, will }));
    this.engine.awaitConnack(this);
  }

  private scheduleRetry(): void {
    if (this.deadline || this.state_ !== 'connecting') return;
    const e = this.engine;
    this.backoff ??= new Backoff(e.reconnect ?? DEFAULT_RECONNECT, Rng.from(e.seed, 'reconnect', this.did));
    e.retryAfter(this, this.backoff.next());
  }

  /** The engine's retry deadline came. */
  retry(): void {
    if (this.state_ !== 'connecting' || this.link) return;
    this.reconnectAttempts++;
    this.engine.reconnects?.add(1);
    this.open(true);
  }

  private enter(next: SessionState): void {
    const was = this.state_;
    if (was === next) return;
    this.state_ = next;
    const gauge = this.engine.connected;
    if (was === 'connected') gauge?.add(-1);
    else if (next === 'connected') gauge?.add(1);
  }

  /** Hand a packet to the broker; while its end of the link is full, queue it (counted in flight). */
  private send(packet: Buffer): void {
    const link = this.link!;
    this.lastSentTick = this.engine.tick;
    if (this.queue) {
      this.queue.push(packet);
      this.engine.inflight.add(1);
    } else if (!link.offer(packet) && !link.push(packet)) this.queue = [];
  }

  /** What was in flight on a connection that is gone is written off (QoS 1 is sent again on reconnect). */
  private writeOff(): void {
    const inflight = this.engine.inflight;
    if (this.queue) {
      inflight.add(-this.queue.length);
      this.queue = null;
    }
    const u = this.unacked;
    if (!u) return;
    const off = (this.writtenOff ??= new Set());
    const counted = u.size - off.size;
    if (counted > 0) inflight.add(-counted);
    for (const id of u.keys()) off.add(id);
  }

  private takeId(): number {
    let id = this.lastId;
    do id = id === 0xffff ? 1 : id + 1;
    while (this.unacked?.has(id));
    this.lastId = id;
    return id;
  }

  private detachAll(): void {
    this.device.detach();
    for (const c of this.children) c.detach();
  }

  private sayOffline(): void {
    for (const c of this.children) this.announce(c, 'offline');
    this.announce(this.device, 'offline');
  }

  /** Publish a device's state (retained), unless the cloud has none for it (BLE children). */
  private announce(d: Device, event: 'online' | 'offline'): void {
    if (d.announcesState) this.publish(topics.state(d.did), JSON.stringify(d.statePayload(event)), { qos: 1, retain: true });
  }
}
