/**
 * People as real MQTT clients. Each user (home owner or member) is a simulated Mijia app client
 * logged in as `app:{uid}`, over MQTT over WebSocket when the embedded broker has that listener
 * (in-process otherwise: a session of the device fleet's engine each, fleet/cloud-session.ts,
 * rather than an mqtt.js client each). An app session announces itself on `app/{uid}/session`;
 * commands go to the devices' `down/rpc` and their replies are awaited on `up/rpc`, so the
 * broker's ACL decides what a user may command, and the platform can observe app activity.
 */
import { MqttClient, type IClientOptions } from 'mqtt';
import type { RpcResponse } from '../contract/wire.js';
import { topics } from '../contract/wire.js';
import { AiotSimError } from '../errors.js';
import { logger } from '../log.js';
import type { Clock } from '../contract/clock.js';
import { accepted, brokersNamed, connectOverSocket } from '../contract/broker-list.js';
import type { ClientConnector } from './session.js';
import { within } from './waits.js';
import { FLEET_CONNECT_CONCURRENCY, type FleetEngine } from './fleet/engine.js';
import type { CloudSessionFields, FleetCloudSession } from './fleet/cloud-session.js';

const log = logger('users');

/** How long an app client waits to connect again after losing the broker, ms. */
const APP_RECONNECT_MS = 2000;
/** How long an app client may take to have its session accepted (a broker that says "server unavailable" is asked again meanwhile). */
const CONNECT_TIMEOUT_MS = 30_000;

export interface AppUser { uid: string; token: string; homeId: string; dids: string[] }

export interface AppSessionPayload { uid: string; event: 'open'; home: string; ts: number }

/** What an RPC client needs of its connection to the broker. */
export interface RpcChannel {
  readonly connected: boolean;
  /** Publish at QoS 1; resolves once the broker acknowledges it. */
  publish(topic: string, payload: string): Promise<void>;
}

/**
 * A connection of a cloud client (an app user or the operator) to the broker: an mqtt.js client,
 * or a fleet session on the in-process transport (fleet/cloud-session.ts). Faults wait on its
 * `connect` and `close` events.
 */
export interface CloudConnection extends RpcChannel {
  on(event: 'connect' | 'close', fn: () => void): void;
  off(event: 'connect' | 'close', fn: () => void): void;
  /** Close at once: nothing waits for acknowledgements. */
  close(): Promise<void>;
}

/** An mqtt.js client as a CloudConnection. */
export class MqttConnection implements CloudConnection {
  constructor(readonly client: MqttClient) {}
  get connected(): boolean { return this.client.connected; }
  async publish(topic: string, payload: string): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: 1 });
  }
  on(event: 'connect' | 'close', fn: () => void): void { this.client.on(event, fn); }
  off(event: 'connect' | 'close', fn: () => void): void { this.client.off(event, fn); }
  async close(): Promise<void> {
    await this.client.endAsync(true).catch(() => undefined);
  }
}

/**
 * Commands over MQTT: publishes `{id, method, params}` to a device's `down/rpc` and resolves with
 * the reply carrying the same id on its `up/rpc` (the connection must be subscribed to it and hand
 * what it receives to `deliver`).
 */
export class RpcClient {
  private seq = 0;
  private readonly waiting = new Map<string, (res: RpcResponse) => void>();

  constructor(readonly channel: RpcChannel, private readonly idPrefix = '') {}

  /** A message the connection received: a reply to a request settles it, anything else is ignored. */
  deliver(topic: string, payload: string): void {
    if (!topic.endsWith('/up/rpc')) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      return;
    }
    // A reply comes from a device: anything but an object with an id is not one of ours.
    if (typeof parsed !== 'object' || parsed === null || !('id' in parsed)) return;
    const res = parsed as RpcResponse;
    const key = `${topic.split('/')[1] ?? ''}#${String(res.id)}`;
    const w = this.waiting.get(key);
    if (w) {
      this.waiting.delete(key);
      w(res);
    }
  }

  /** Requests sent and not yet answered, failed or timed out. */
  get pending(): number { return this.waiting.size; }

  /**
   * Publish a request and resolve with its reply. One deadline covers the publish and the reply, and
   * whatever happens (the request cannot be encoded, the publish fails or hangs on a stalled
   * connection, the reply is late) the returned promise is the only one that settles: no timer is
   * left to reject a promise nobody awaits.
   */
  async request(did: string, method: string, params: unknown, timeoutMs: number): Promise<RpcResponse> {
    // A client that lost the broker fails at once rather than queueing (the caller's work must not wait for a reconnect).
    if (!this.channel.connected) throw new AiotSimError('E_NOT_CONNECTED', 'protocol', `${method} to ${did}: not connected to the broker`);
    const id = this.idPrefix ? `${this.idPrefix}-${++this.seq}` : ++this.seq;
    // Encoded before anything waits: params too deep or circular fail here.
    const payload = JSON.stringify({ id, method, params });
    const key = `${did}#${id}`;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new AiotSimError('E_RPC_TIMEOUT', 'protocol', `no reply from ${did} to ${method} within ${timeoutMs} ms`)), timeoutMs);
    });
    const reply = new Promise<RpcResponse>((resolve) => this.waiting.set(key, resolve));
    try {
      // Promise.race handles whichever loses, so a late rejection of either is not left unhandled.
      await Promise.race([this.channel.publish(topics.rpcDown(did), payload), expired]);
      return await Promise.race([reply, expired]);
    } finally {
      clearTimeout(timer);
      this.waiting.delete(key);
    }
  }
}

/** A cloud client's connection and the RPC client over it, which hears what the connection receives. */
export interface RpcConnection<C extends CloudConnection> { connection: C; rpc: RpcClient }

/** RPC over an mqtt.js client (subscribed to the replies it waits for). */
export function mqttRpc(client: MqttClient, idPrefix = ''): RpcConnection<MqttConnection> {
  const connection = new MqttConnection(client);
  const rpc = new RpcClient(connection, idPrefix);
  client.on('message', (topic, payload) => rpc.deliver(topic, payload.toString('utf8')));
  return { connection, rpc };
}

/** RPC over a new session of the fleet engine (not connected yet: `engine.connectAll` connects it). */
export function fleetRpc(engine: FleetEngine, fields: Omit<CloudSessionFields, 'onMessage'>, idPrefix = ''): RpcConnection<FleetCloudSession> {
  let rpc: RpcClient | null = null;
  const connection = engine.createCloud({ ...fields, onMessage: (topic, payload) => rpc?.deliver(topic, payload) });
  rpc = new RpcClient(connection, idPrefix);
  return { connection, rpc };
}

class AppClient {
  constructor(readonly user: AppUser, readonly connection: CloudConnection, readonly rpc: RpcClient) {}
}

/**
 * Where app clients connect: over a socket or mqtt.js in process (a ClientConnector), or as
 * sessions of the device fleet's engine (the embedded broker's in-process transport).
 */
export type AppConnector = ClientConnector | { kind: 'fleet'; engine: FleetEngine };

export interface UserCounters {
  appSessions: number;
  appCommands: number;
  commandErrors: number;
  /** App sessions not opened because the app client had lost the broker. */
  offlineSessions: number;
  /** App sessions sent but not acknowledged in time (the work went on without waiting more). */
  unacknowledgedSessions: number;
}

export class AppUsers {
  private readonly clients = new Map<string, AppClient>();
  readonly counters: UserCounters = { appSessions: 0, appCommands: 0, commandErrors: 0, offlineSessions: 0, unacknowledgedSessions: 0 };

  constructor(private readonly connector: AppConnector, private readonly clock: Clock) {}

  get size(): number { return this.clients.size; }

  /** Every app client's MQTT connection (they reconnect by themselves after a drop). */
  connections(): CloudConnection[] {
    return [...this.clients.values()].map((c) => c.connection);
  }

  /** Connect every user's app client (bounded concurrency); each subscribes to its homes' replies. */
  async connectAll(users: AppUser[], concurrency = 100): Promise<void> {
    const connector = this.connector;
    if (connector.kind === 'fleet') {
      await this.connectFleet(users, connector.engine);
      return;
    }
    const queue = [...users];
    const worker = async (): Promise<void> => {
      for (let u = queue.shift(); u; u = queue.shift()) await this.connect(u);
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
  }

  /** The fleet engine connects them all at once: each a session of its own, no mqtt.js client. */
  private async connectFleet(users: AppUser[], engine: FleetEngine): Promise<void> {
    const sessions: FleetCloudSession[] = [];
    for (const user of users) {
      const { connection, rpc } = fleetRpc(engine, {
        name: `app user ${user.uid}`, clientId: `app-${user.uid}`, username: `app:${user.uid}`, password: user.token,
        filters: user.dids.map((did) => topics.rpcUp(did)), reconnectMs: APP_RECONNECT_MS,
      }, user.uid);
      this.clients.set(user.uid, new AppClient(user, connection, rpc));
      sessions.push(connection);
    }
    await engine.connectAll(sessions, FLEET_CONNECT_CONCURRENCY);
  }

  private async connect(user: AppUser): Promise<void> {
    const connector = this.connector as ClientConnector;
    const opts: IClientOptions = {
      clientId: `app-${user.uid}`, username: `app:${user.uid}`, password: user.token,
      protocolVersion: 4, clean: true, keepalive: 60, reconnectPeriod: APP_RECONNECT_MS, connectTimeout: CONNECT_TIMEOUT_MS,
      // As device sessions: mqtt.js logs every packet through `debug`, which costs even when off.
      log: () => undefined,
    };
    const client = connector.kind === 'in-process'
      ? new MqttClient(() => connector.open(), opts)
      : connectOverSocket(connector, user.uid, opts);
    client.on('error', (err) => log.debug({ uid: user.uid, err: err.message }, 'app client error'));
    try {
      await accepted(client, CONNECT_TIMEOUT_MS);
    } catch (err) {
      client.end(true);
      throw new AiotSimError('E_BROKER', 'environment', `app user ${user.uid}${connector.kind === 'url' ? ` on ${brokersNamed(connector)}` : ''}: ${(err as Error).message}`, { cause: err });
    }
    if (user.dids.length) await client.subscribeAsync(user.dids.map((did) => topics.rpcUp(did)), { qos: 1 });
    const { connection, rpc } = mqttRpc(client, user.uid);
    this.clients.set(user.uid, new AppClient(user, connection, rpc));
  }

  /** The user opens the Mijia app: `app/{uid}/session` carries the virtual time. */
  async openSession(uid: string, ackTimeoutMs = 5000): Promise<void> {
    const c = this.require(uid);
    const payload: AppSessionPayload = { uid, event: 'open', home: c.user.homeId, ts: this.clock.now() };
    if (!c.connection.connected) {
      this.counters.offlineSessions++;
      return;
    }
    this.counters.appSessions++;
    // The simulation's work waits for this: a PUBACK that never comes (the broker node died with the
    // message; the client sends it again once reconnected) must not hold every later command.
    const sent = c.connection.publish(`app/${uid}/session`, JSON.stringify(payload));
    if (!(await within(sent, ackTimeoutMs))) {
      this.counters.unacknowledgedSessions++;
      log.debug({ uid }, `app session not acknowledged within ${ackTimeoutMs} ms`);
      return;
    }
    await sent;
  }

  /** The user commands a device from the app; resolves with the device's reply. */
  async command(uid: string, did: string, method: string, params: unknown, timeoutMs = 5000): Promise<RpcResponse> {
    this.counters.appCommands++;
    try {
      return await this.require(uid).rpc.request(did, method, params, timeoutMs);
    } catch (err) {
      this.counters.commandErrors++;
      throw err;
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.connection.close()));
    this.clients.clear();
  }

  private require(uid: string): AppClient {
    const c = this.clients.get(uid);
    if (!c) throw new AiotSimError('E_UNKNOWN_USER', 'input', `no app client for user ${uid}`);
    return c;
  }
}
