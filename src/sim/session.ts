/**
 * A device session (`DeviceSession`: what the session pool and the faults use), and its mqtt.js
 * implementation (`ClientSession`): an MQTT session for one Wi-Fi device or gateway, its own
 * client id, credentials and last will, over TCP, WebSocket or the in-process pipe. (On the
 * embedded broker, sessions are the fleet engine's by default: fleet/engine.ts.) A gateway's session also carries its Zigbee/BLE
 * children: it publishes for them on their own did topics and takes their commands.
 *
 * Sessions are persistent (clean session off): the broker keeps their subscriptions and queues
 * their QoS 1 commands while they are away, and mqtt.js keeps their unacknowledged QoS 1 publishes
 * and sends them again on reconnect. A dropped session reconnects by itself with exponential
 * backoff and full jitter (see backoff.ts); while it is down its devices keep their QoS 1 events
 * in a bounded offline buffer.
 */
import { MqttClient, type IClientOptions } from 'mqtt';
import type { Duplex } from 'node:stream';
import type { BrokerConnection } from '../broker/connection.js';
import type { Device, DeviceLink, PublishOptions } from '../device/device.js';
import { accepted, brokersNamed, connectOverSocket } from '../contract/broker-list.js';
import { topics } from '../contract/wire.js';
import { AiotSimError } from '../errors.js';
import { logger } from '../log.js';
import { Backoff, DEFAULT_RECONNECT, type ReconnectPolicy } from './backoff.js';
import { Rng } from './rng.js';
import type { Clock } from '../contract/clock.js';
import { closeConnection, TEARDOWN, type SessionState, type Teardown } from './session-state.js';
import type { TraceRecorder } from './trace.js';
import { when } from './waits.js';

const log = logger('session');

/**
 * How sessions reach the broker: `fleet`, the fleet engine's lean sessions, each handed to the
 * embedded broker as one in-process connection (`attach` returns false while the broker does not
 * serve); `in-process`, one mqtt.js client per device over an in-process byte pipe (`open`);
 * `url`, one mqtt.js client per device over a socket.
 */
export type Connector =
  | { kind: 'fleet'; attach: (conn: BrokerConnection) => boolean }
  | { kind: 'in-process'; open: () => Duplex }
  | { kind: 'url'; url: string; failover?: readonly string[] };

/** How an mqtt.js client (a `ClientSession`, an app user) reaches the broker. */
export type ClientConnector = Exclude<Connector, { kind: 'fleet' }>;

/** A count the session keeps up to date (the session pool's gauges). */
export interface Counter { add(delta: number): void }

export interface SessionHooks {
  clock: Clock;
  trace: TraceRecorder;
  /** Publishes handed to the client and not yet written (QoS 0) or acknowledged (QoS 1), for backpressure. */
  inflight: Counter;
  /** Sessions connected now: +1 as this one connects, -1 as it goes down. */
  connected?: Counter;
  /** Reconnection attempts of every session: +1 per attempt (so the total is not a sum over sessions). */
  reconnects?: Counter;
  /** Reconnection delays. Default DEFAULT_RECONNECT. */
  reconnect?: ReconnectPolicy;
  /** Seed of the reconnection jitter (each session forks its own stream by did). Default 1. */
  seed?: number;
}

const DONE = Promise.resolve();

export type { SessionState, Teardown } from './session-state.js';

/**
 * One Wi-Fi device's or gateway's MQTT session (a gateway's also carries its Zigbee/BLE
 * children), as the session pool and the faults drive it. See `SessionState` and `Teardown` for
 * its states and the ways it comes down.
 */
export interface DeviceSession {
  readonly did: string;
  readonly device: Device;
  readonly children: Device[];
  readonly state: SessionState;
  readonly connected: boolean;
  /** Held down by a fault (`suspended` or `left`) until `resume()`. */
  readonly held: boolean;
  /** Connection attempts after a drop or a refusal "server unavailable" (for reports). */
  readonly reconnectAttempts: number;
  /** Go offline for good, cleanly: children and self publish "offline", then DISCONNECT (no last will). */
  stop(): Promise<void>;
  /** Drop the connection for good without DISCONNECT, as a device losing power would (last will fires). */
  kill(): void;
  /** Drop the connection without DISCONNECT (the will fires) and reconnect by itself with backoff. */
  drop(): void;
  /** Lose the network (a fault): the will fires, and the session stays down until `resume()`. */
  suspend(): void;
  /** Leave cleanly (a fault): "offline" states, then DISCONNECT; down until `resume()`. */
  leave(): Promise<void>;
  /** Get the network back: reconnect, resolve once connected; the caller announces it (`goOnline`). */
  resume(timeoutMs?: number): Promise<void>;
  /** Resolves once the session is connected (at once if it is); rejects after `timeoutMs`. */
  whenConnected(timeoutMs?: number): Promise<void>;
  /** Attach the devices, subscribe to their commands, publish "online" (retained), flush offline buffers. */
  goOnline(): void;
  /** The next reconnection does not announce itself: the caller announces sessions together (`goOnline`). */
  holdAnnouncement(): void;
}

/** A device session as an mqtt.js client of its own (sockets, or the in-process pipe). */
export class ClientSession implements DeviceSession {
  readonly did: string;
  private client: MqttClient | null = null;
  private readonly byDid = new Map<string, Device>();
  private readonly link: DeviceLink;
  private state_: SessionState = 'new';
  /**
   * Whether the next reconnection announces itself (`goOnline`). Orthogonal to the state: a
   * fault that takes sessions down and brings them back together (or a broker restart) turns it
   * off so that it announces them itself, in population order; `goOnline()` turns it back on.
   */
  private selfAnnounce = true;
  connects = 0;
  /** Created at the first drop: most sessions never need one. */
  private backoff: Backoff | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Connection attempts after a drop or a refusal "server unavailable" (for reports). */
  reconnectAttempts = 0;
  /** This session's publishes not yet written (QoS 0) or acknowledged (QoS 1). */
  private readonly pending = new Set<number>();
  private nextPublish = 0;

  constructor(
    readonly device: Device,
    readonly children: Device[],
    private readonly token: string,
    private readonly connector: ClientConnector,
    private readonly hooks: SessionHooks,
  ) {
    this.did = device.did;
    this.byDid.set(device.did, device);
    for (const c of children) this.byDid.set(c.did, c);
    this.link = { publish: (topic, payload, opts) => this.publish(topic, payload, opts) };
  }

  get state(): SessionState { return this.state_; }

  get connected(): boolean { return this.state_ === 'connected'; }

  /** Held down by a fault (`suspended` or `left`) until `resume()`. */
  get held(): boolean { return this.state_ === 'suspended' || this.state_ === 'left'; }

  /** Connect and resolve once the broker accepted the session (CONNACK). */
  async connect(timeoutMs = 30_000): Promise<void> {
    const opts: IClientOptions = {
      clientId: this.did,
      username: this.did,
      password: this.token,
      protocolVersion: 4,
      // A persistent session: subscriptions and queued QoS 1 commands survive a drop.
      clean: false,
      keepalive: 60,
      // Reconnection is ours (backoff with jitter), not mqtt.js' fixed period.
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
      resubscribe: false,
      // While disconnected, QoS 0 telemetry is not queued (the device's offline buffer keeps QoS 1).
      queueQoSZero: false,
      // mqtt.js logs every packet through `debug`; thousands of sessions pay for it even when off.
      log: () => undefined,
      will: this.will(),
    };
    this.enter('connecting');
    const client = this.connector.kind === 'in-process'
      ? new MqttClient(() => (this.connector as { open: () => Duplex }).open(), opts)
      : connectOverSocket(this.connector, this.did, opts);
    this.client = client;
    client.on('connect', () => this.onConnect(client));
    // The will is stamped with the time its session starts, so refresh it for each reconnect.
    client.on('reconnect', () => { client.options.will = this.will(); });
    client.on('close', () => this.onClose(client));
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', (err) => log.debug({ did: this.did, err: err.message }, 'session error'));
    try {
      // "Server unavailable" (a broker node whose Redis is away) is asked again after the
      // session's own backoff (onClose), until the timeout; any other refusal or error ends it.
      await accepted(client, timeoutMs, true);
    } catch (err) {
      this.clearRetry();
      this.enter('ended');
      client.end(true);
      const where = this.connector.kind === 'url' ? ` on ${brokersNamed(this.connector)}` : '';
      throw new AiotSimError('E_BROKER', 'environment', `device ${this.did}${where}: ${(err as Error).message}`, { cause: err });
    }
  }

  private will(): NonNullable<IClientOptions['will']> {
    return {
      topic: topics.state(this.did),
      payload: Buffer.from(JSON.stringify(this.device.statePayload('offline'))),
      qos: 1,
      retain: true,
    };
  }

  /** Go offline for good, cleanly: children and self publish "offline", then DISCONNECT (no last will). */
  stop(): Promise<void> {
    return this.teardown('stop');
  }

  /** Drop the connection for good without DISCONNECT, as a device losing power would (last will fires). */
  kill(): void {
    void this.teardown('kill');
  }

  /**
   * Drop the connection without DISCONNECT (the broker publishes the last will) and reconnect by
   * itself with backoff, as after a network blip: a reconnect storm when every session does it.
   */
  drop(): void {
    void this.teardown('drop');
  }

  /**
   * Lose the network (a fault): the connection drops without DISCONNECT, so the broker publishes
   * the last will, and the session does not come back until `resume()`.
   */
  suspend(): void {
    void this.teardown('suspend');
  }

  /**
   * Leave cleanly (a fault: the device is unplugged, or churns): children and self publish
   * "offline", then DISCONNECT (no last will); the session stays down until `resume()`.
   */
  leave(): Promise<void> {
    return this.teardown('leave');
  }

  /**
   * Every way down (see `Teardown`): say goodbye if the rule is clean and the session is up, move
   * to the rule's state, let the devices go, close the connection, and write off what was in flight.
   */
  private teardown(how: Teardown): Promise<void> {
    const client = this.client;
    const rule = TEARDOWN[how];
    if (!client || (!rule.evenIfHeld && (this.held || this.state_ === 'ended'))) return DONE;
    const goodbye = rule.clean && this.state_ === 'connected';
    if (goodbye) this.sayOffline();
    // A drop keeps a retry already under way; every other way down cancels it.
    if (rule.next !== 'connecting') this.clearRetry();
    this.enter(rule.next);
    if (rule.next === 'ended') this.client = null;
    this.detachAll();
    // A clean DISCONNECT after the offline states; never wait long on a connection that is gone.
    const closing = closeConnection(client, how, goodbye);
    if (!closing) {
      this.writeOff();
      return DONE;
    }
    return closing.then(() => this.writeOff());
  }

  /** Children, then self, publish "offline" (retained). */
  private sayOffline(): void {
    for (const d of [...this.children, this.device]) {
      this.announce(d, 'offline');
    }
  }

  /**
   * Announce the session: attach devices, subscribe to their commands, publish "online" (retained)
   * for self and children. The simulation calls it for the first connection, in population order,
   * so the trace does not depend on which socket connected first; reconnects announce themselves.
   */
  goOnline(): void {
    const client = this.client;
    this.selfAnnounce = true;
    if (!client || this.state_ !== 'connected') return;
    for (const d of this.byDid.values()) d.attach(this.link);
    client.subscribe([...this.byDid.keys()].map((did) => topics.rpcDown(did)), { qos: 1 }, (err) => {
      if (err) log.warn({ did: this.did, err: err.message }, 'subscribe failed');
    });
    const all = [this.device, ...this.children];
    for (const d of all) {
      this.announce(d, 'online');
    }
    // What the devices kept while offline goes out after they said they are back.
    for (const d of all) d.flushOffline();
  }

  /**
   * The next reconnection (after a drop the caller is about to cause or expects) does not announce
   * itself: the caller announces sessions together, in a reproducible order (`goOnline`; called
   * on a session that is not back yet, it lets the session announce itself when it is).
   */
  holdAnnouncement(): void {
    this.selfAnnounce = false;
  }

  /**
   * Get the network back: reconnect and resolve once connected. The caller announces the session
   * (`goOnline`), so that sessions coming back together announce in a reproducible order.
   */
  resume(timeoutMs = 30_000): Promise<void> {
    const client = this.client;
    if (!client || !this.held) return DONE;
    const left = this.state_ === 'left';
    this.enter('connecting');
    this.selfAnnounce = false;
    const back = this.whenConnected(timeoutMs);
    if (left) {
      // After a clean DISCONNECT mqtt.js has closed its stores (nothing was left in flight).
      client.options.will = this.will();
      client.reconnect();
    } else this.reconnectKeepingStore(client);
    return back;
  }

  /** Resolves once the session is connected (at once if it is); rejects after `timeoutMs`. */
  async whenConnected(timeoutMs = 30_000): Promise<void> {
    const client = this.client;
    if (!client) throw new Error(`device ${this.did}: session stopped`);
    const back = await when(() => this.state_ === 'connected', (wake) => {
      client.on('connect', wake);
      return () => { client.off('connect', wake); };
    }, timeoutMs);
    if (!back) throw new Error(`device ${this.did}: no reconnect within ${timeoutMs} ms`);
  }

  private enter(next: SessionState): void {
    const was = this.state_;
    if (was === next) return;
    this.state_ = next;
    if (was === 'connected') this.hooks.connected?.add(-1);
    else if (next === 'connected') this.hooks.connected?.add(1);
  }

  private onConnect(client: MqttClient): void {
    if (this.state_ !== 'connecting') {
      // A connection that got through after a fault or stop() took the session down: not wanted.
      client.stream?.destroy();
      return;
    }
    this.enter('connected');
    this.connects++;
    this.backoff?.reset();
    if (this.connects > 1 && this.selfAnnounce) this.goOnline();
  }

  private onClose(client: MqttClient): void {
    if (this.state_ === 'connected') this.enter('connecting');
    this.detachAll();
    // What was handed to the connection that closed is not waited for (QoS 1 is resent from the store).
    this.writeOff();
    this.scheduleRetry(client);
  }

  /** Retry after a drop, after a jittered exponential delay, until connected. */
  private scheduleRetry(client: MqttClient): void {
    if (this.retryTimer || this.state_ !== 'connecting' || this.client !== client) return;
    this.backoff ??= new Backoff(this.hooks.reconnect ?? DEFAULT_RECONNECT, Rng.from(this.hooks.seed ?? 1, 'reconnect', this.did));
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.state_ !== 'connecting' || this.client !== client || client.connected) return;
      this.reconnectAttempts++;
      this.hooks.reconnects?.add(1);
      this.reconnectKeepingStore(client);
    }, delay);
  }

  /** Reconnect without losing unacknowledged QoS 1 publishes (mqtt.js' reconnect() drops its stores by default). */
  private reconnectKeepingStore(client: MqttClient): void {
    client.options.will = this.will();
    client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** Messages in flight on a connection that is gone are written off (not waited for). */
  private writeOff(): void {
    if (this.pending.size) this.hooks.inflight.add(-this.pending.size);
    this.pending.clear();
  }

  private detachAll(): void {
    for (const d of this.byDid.values()) d.detach();
  }

  private onMessage(topic: string, payload: Buffer): void {
    const did = topic.split('/')[1] ?? '';
    const device = this.byDid.get(did);
    if (!device) return;
    try {
      device.handleRpc(payload.toString('utf8'));
    } catch (err) {
      log.error({ did, err: (err as Error).message }, 'rpc handling failed');
    }
  }

  /** Publish a device's state (retained), unless the cloud has none for it (BLE children). */
  private announce(d: Device, event: 'online' | 'offline'): void {
    if (d.announcesState) this.publish(topics.state(d.did), JSON.stringify(d.statePayload(event)), { qos: 1, retain: true });
  }

  private publish(topic: string, payload: string, opts: PublishOptions): void {
    const client = this.client;
    if (!client) return;
    this.hooks.trace.record(this.hooks.clock.now(), topic, payload, opts.qos, opts.retain);
    const inflight = this.hooks.inflight;
    const id = this.nextPublish++;
    this.pending.add(id);
    inflight.add(1);
    client.publish(topic, payload, opts, () => {
      if (this.pending.delete(id)) inflight.add(-1);
    });
  }
}
