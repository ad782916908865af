/**
 * An MQTT session for one Wi-Fi device or gateway: its own client id, credentials and last will,
 * over TCP, WebSocket or the in-process pipe. A gateway's session also carries its Zigbee/BLE
 * children: it publishes for them on their own did topics and takes their commands.
 *
 * Sessions are persistent (clean session off): the broker keeps their subscriptions and queues
 * their QoS 1 commands while they are away, and mqtt.js keeps their unacknowledged QoS 1 publishes
 * and sends them again on reconnect. A dropped session reconnects by itself with exponential
 * backoff and full jitter (see backoff.ts); while it is down its devices keep their QoS 1 events
 * in a bounded offline buffer.
 */
import mqtt, { MqttClient, type IClientOptions } from 'mqtt';
import type { Duplex } from 'node:stream';
import type { Device, DeviceLink, PublishOptions } from '../device/device.js';
import { topics } from '../contract/wire.js';
import { logger } from '../log.js';
import { Backoff, DEFAULT_RECONNECT, type ReconnectPolicy } from './backoff.js';
import { Rng } from './rng.js';
import type { Clock } from '../contract/clock.js';
import type { TraceRecorder } from './trace.js';

const log = logger('session');

/** How sessions reach the broker. */
export type Connector =
  | { kind: 'in-process'; open: () => Duplex }
  | { kind: 'url'; url: string };

export interface SessionHooks {
  clock: Clock;
  trace: TraceRecorder;
  /** Publishes handed to the client and not yet written (for backpressure). */
  inflight: { count: number };
  /** Reconnection delays. Default DEFAULT_RECONNECT. */
  reconnect?: ReconnectPolicy;
  /** Seed of the reconnection jitter (each session forks its own stream by did). Default 1. */
  seed?: number;
}

export class DeviceSession {
  readonly did: string;
  private client: MqttClient | null = null;
  private readonly byDid = new Map<string, Device>();
  private readonly link: DeviceLink;
  connected = false;
  connects = 0;
  /** While suspended (a fault), the session stays down and does not reconnect by itself. */
  suspended = false;
  /** Stopped or killed: never reconnects. */
  private ended = false;
  private announceOnReconnect = true;
  /** Created at the first drop: most sessions never need one. */
  private backoff: Backoff | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Connection attempts after a drop (for reports). */
  reconnectAttempts = 0;
  /** This session's publishes not yet written (QoS 0) or acknowledged (QoS 1). */
  private readonly pending = new Set<number>();
  private nextPublish = 0;

  constructor(
    readonly device: Device,
    readonly children: Device[],
    private readonly token: string,
    private readonly connector: Connector,
    private readonly hooks: SessionHooks,
  ) {
    this.did = device.did;
    this.byDid.set(device.did, device);
    for (const c of children) this.byDid.set(c.did, c);
    this.link = { publish: (topic, payload, opts) => this.publish(topic, payload, opts) };
  }

  /** Connect and resolve once the broker accepted the session (CONNACK) and it went online. */
  connect(timeoutMs = 30_000): Promise<void> {
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
    const client = this.connector.kind === 'in-process'
      ? new MqttClient(() => (this.connector as { open: () => Duplex }).open(), opts)
      : mqtt.connect(this.connector.url, opts);
    this.client = client;
    client.on('connect', () => this.onConnect());
    // The will is stamped with the time its session starts, so refresh it for each reconnect.
    client.on('reconnect', () => { client.options.will = this.will(); });
    client.on('close', () => this.onClose(client));
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', (err) => log.debug({ did: this.did, err: err.message }, 'session error'));
    return new Promise((resolve, reject) => {
      const ok = (): void => { client.off('error', bad); resolve(); };
      const bad = (err: Error): void => {
        client.off('connect', ok);
        this.ended = true;
        client.end(true);
        reject(new Error(`device ${this.did}: ${err.message}`));
      };
      client.once('connect', ok);
      client.once('error', bad);
    });
  }

  private will(): NonNullable<IClientOptions['will']> {
    return {
      topic: topics.state(this.did),
      payload: Buffer.from(JSON.stringify(this.device.statePayload('offline'))),
      qos: 1,
      retain: true,
    };
  }

  /** Go offline cleanly: children and self publish "offline", then DISCONNECT (no last will). */
  async stop(): Promise<void> {
    const client = this.client;
    if (!client) return;
    this.ended = true;
    this.clearRetry();
    if (!this.connected) {
      // Down (a fault, or the broker is away): nothing to say goodbye on.
      this.client = null;
      this.detachAll();
      client.end(true);
      this.writeOff();
      return;
    }
    for (const d of [...this.children, this.device]) {
      this.announce(d, 'offline');
    }
    this.client = null;
    this.detachAll();
    // A clean DISCONNECT after the offline states; never wait long on a connection that is gone.
    await disconnect(client, true);
    this.writeOff();
  }

  /** Drop the connection without DISCONNECT, as a device losing power or network would (last will fires). */
  kill(): void {
    const client = this.client;
    this.ended = true;
    this.clearRetry();
    this.client = null;
    this.detachAll();
    client?.stream?.destroy();
    client?.end(true);
  }

  /**
   * Announce the session: attach devices, subscribe to their commands, publish "online" (retained)
   * for self and children. The simulation calls it for the first connection, in population order,
   * so the trace does not depend on which socket connected first; reconnects announce themselves.
   */
  goOnline(): void {
    const client = this.client;
    this.announceOnReconnect = true;
    if (!client || !this.connected) return;
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
    this.announceOnReconnect = false;
  }

  /**
   * Drop the connection without DISCONNECT (the broker publishes the last will) and reconnect by
   * itself with backoff, as after a network blip: a reconnect storm when every session does it.
   */
  drop(): void {
    const client = this.client;
    if (!client || this.suspended || this.ended) return;
    this.connected = false;
    this.detachAll();
    client.stream?.destroy();
    this.writeOff();
  }

  private onConnect(): void {
    this.connected = true;
    this.connects++;
    this.backoff?.reset();
    if (this.connects > 1 && this.announceOnReconnect) this.goOnline();
  }

  /** Retry after a drop, after a jittered exponential delay, until connected. */
  private scheduleRetry(client: MqttClient): void {
    if (this.retryTimer || this.ended || this.suspended || this.client !== client) return;
    this.backoff ??= new Backoff(this.hooks.reconnect ?? DEFAULT_RECONNECT, Rng.from(this.hooks.seed ?? 1, 'reconnect', this.did));
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.ended || this.suspended || this.client !== client || client.connected) return;
      this.reconnectAttempts++;
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

  /**
   * Lose the network (a fault): the connection drops without DISCONNECT, so the broker publishes
   * the last will, and the session does not come back until `resume()`.
   */
  suspend(): void {
    const client = this.client;
    if (!client || this.suspended) return;
    this.suspended = true;
    this.clearRetry();
    this.connected = false;
    this.detachAll();
    client.stream?.destroy();
    this.writeOff();
  }

  /**
   * Leave cleanly (a fault: the device is unplugged, or churns): children and self publish
   * "offline", then DISCONNECT (no last will); the session stays down until `resume()`.
   */
  async leave(): Promise<void> {
    const client = this.client;
    if (!client || this.suspended || this.ended) return;
    const wasConnected = this.connected;
    if (wasConnected) {
      for (const d of [...this.children, this.device]) {
        this.announce(d, 'offline');
      }
    }
    this.suspended = true;
    this.leftCleanly = true;
    this.clearRetry();
    this.connected = false;
    this.detachAll();
    await disconnect(client, wasConnected);
    this.writeOff();
  }

  private leftCleanly = false;

  /** Messages in flight on a connection that is gone are written off (not waited for). */
  private writeOff(): void {
    this.hooks.inflight.count -= this.pending.size;
    this.pending.clear();
  }

  /**
   * Get the network back: reconnect and resolve once connected. The caller announces the session
   * (`goOnline`), so that sessions coming back together announce in a reproducible order.
   */
  resume(timeoutMs = 30_000): Promise<void> {
    const client = this.client;
    if (!client || !this.suspended) return Promise.resolve();
    this.suspended = false;
    this.announceOnReconnect = false;
    const back = this.whenConnected(timeoutMs);
    if (this.leftCleanly) {
      // After a clean DISCONNECT mqtt.js has closed its stores (nothing was left in flight).
      this.leftCleanly = false;
      client.options.will = this.will();
      client.reconnect();
    } else this.reconnectKeepingStore(client);
    return back;
  }

  /** Resolves once the session is connected (at once if it is); rejects after `timeoutMs`. */
  whenConnected(timeoutMs = 30_000): Promise<void> {
    const client = this.client;
    if (!client) return Promise.reject(new Error(`device ${this.did}: session stopped`));
    if (this.connected) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { client.off('connect', ok); reject(new Error(`device ${this.did}: no reconnect within ${timeoutMs} ms`)); }, timeoutMs);
      const ok = (): void => { clearTimeout(timer); resolve(); };
      client.once('connect', ok);
    });
  }

  private onClose(client: MqttClient): void {
    this.connected = false;
    this.detachAll();
    // What was handed to the connection that closed is not waited for (QoS 1 is resent from the store).
    this.writeOff();
    this.scheduleRetry(client);
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
    this.hooks.trace.record(this.hooks.clock.now(), topic, payload);
    const inflight = this.hooks.inflight;
    const id = this.nextPublish++;
    this.pending.add(id);
    inflight.count++;
    client.publish(topic, payload, opts, () => {
      if (this.pending.delete(id)) inflight.count--;
    });
  }
}

/** Send DISCONNECT (when `clean`) and wait for it at most 3 s; then make sure the connection is closed. */
async function disconnect(client: MqttClient, clean: boolean): Promise<void> {
  if (clean) {
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<void>((resolve) => { timer = setTimeout(resolve, 3000); });
    await Promise.race([client.endAsync(false).catch(() => undefined), gaveUp]);
    clearTimeout(timer);
  }
  if (!client.disconnected) client.end(true);
}
