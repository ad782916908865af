/**
 * The run's MQTT clients that are not devices: the operator (the cloud's own account, behind
 * `command()`, the voice cloud and automations) and the app users' clients. A fault waits on
 * their connections (gone with the broker, back after it) through their own connect and close
 * events, not by polling.
 */
import type { MqttClient } from 'mqtt';
import type { Clock } from '../contract/clock.js';
import type { FleetEngine } from './fleet/engine.js';
import { AppUsers, fleetRpc, MqttConnection, mqttRpc, type AppConnector, type AppUser, type CloudConnection, type RpcClient } from './users.js';
import { when } from './waits.js';

/** What the operator subscribes to: every device's replies. */
const OPERATOR_FILTER = 'device/+/up/rpc';
/** How long the operator waits to connect again after losing the broker, ms. */
export const OPERATOR_RECONNECT_MS = 1000;

export class CloudClients {
  private operator_: RpcClient | null = null;
  private operatorConnection: CloudConnection | null = null;
  private apps_: AppUsers | null = null;

  /** The operator's RPC client, once connected. */
  get operator(): RpcClient | null { return this.operator_; }

  /** The operator's mqtt.js client, once connected (none when the operator is a fleet session). */
  get operatorClient(): MqttClient | null {
    return this.operatorConnection instanceof MqttConnection ? this.operatorConnection.client : null;
  }

  /** The app users' clients, once connected. */
  get apps(): AppUsers | null { return this.apps_; }

  /** Take the operator's client: wait for its CONNACK, subscribe to every device's replies. */
  async connectOperator(op: MqttClient): Promise<void> {
    if (!op.connected) await new Promise<void>((resolve, reject) => {
      op.once('connect', () => resolve());
      op.once('error', reject);
    });
    await op.subscribeAsync(OPERATOR_FILTER, { qos: 1 });
    const { connection, rpc } = mqttRpc(op);
    this.operatorConnection = connection;
    this.operator_ = rpc;
  }

  /**
   * The operator as a session of the fleet engine (on the embedded broker, in process): its own
   * clean session as `operator`, subscribed to every device's replies, as the mqtt.js client.
   */
  async connectOperatorSession(engine: FleetEngine, clientId: string, password: string): Promise<void> {
    const { connection, rpc } = fleetRpc(engine, { name: 'the operator', clientId, username: 'operator', password, filters: [OPERATOR_FILTER], reconnectMs: OPERATOR_RECONNECT_MS });
    await engine.connectAll([connection], 1);
    this.operatorConnection = connection;
    this.operator_ = rpc;
  }

  /** Connect an app client for each user who uses the app. */
  async connectUsers(users: AppUser[], connector: AppConnector, clock: Clock): Promise<void> {
    const apps = new AppUsers(connector, clock);
    this.apps_ = apps;
    await apps.connectAll(users);
  }

  /** Resolves once the operator and every app client have seen their connection close (bounded). */
  async gone(timeoutMs: number): Promise<void> {
    await Promise.all(this.connections().map((c) => connectedIs(c, false, timeoutMs)));
  }

  /** Resolves once the operator and every app client are connected again (bounded; they reconnect by themselves). */
  async back(timeoutMs: number): Promise<void> {
    await Promise.all(this.connections().map((c) => connectedIs(c, true, timeoutMs)));
  }

  /** Disconnect the app clients. */
  async closeApps(): Promise<void> {
    await this.apps_?.close();
  }

  /** Disconnect the operator. */
  async closeOperator(): Promise<void> {
    const op = this.operatorConnection;
    this.operator_ = null;
    this.operatorConnection = null;
    if (op) await op.close();
  }

  private connections(): CloudConnection[] {
    const all = this.apps_?.connections() ?? [];
    if (this.operatorConnection) all.push(this.operatorConnection);
    return all;
  }
}

/** Resolves once `client.connected` is `want`, woken by the client's connect and close events. */
function connectedIs(client: CloudConnection, want: boolean, timeoutMs: number): Promise<boolean> {
  const event = want ? 'connect' : 'close';
  return when(() => client.connected === want, (wake) => {
    client.on(event, wake);
    return () => { client.off(event, wake); };
  }, timeoutMs);
}
