/**
 * Running against a broker we do not own (Mosquitto, EMQX, ...): the platform cannot hear the
 * broker's connect and disconnect events, so it connects as a privileged client, subscribes to
 * the device and app topics, and counts connections from state messages and last wills.
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { accepted, brokersNamed, connectOverSocket } from '../contract/broker-list.js';
import { DEVICE_FILTERS } from '../contract/wire.js';
import { AiotSimError } from '../errors.js';
import { logger } from '../log.js';

const log = logger('external');

/** What the platform observer subscribes to: every device message of both wire profiles, commands included, and app sessions. */
export const OBSERVED_TOPICS = [...DEVICE_FILTERS, 'device/+/down/rpc', 'app/+/session'];

/**
 * The shared-subscription group of platform observers (MQTT 5 shared subscriptions, which
 * Mosquitto 2, EMQX, HiveMQ and VerneMQ also give MQTT 3.1.1 clients): however many processes
 * observe with it, the broker delivers each message to one of them, so the store counts it once.
 */
export const PLATFORM_SHARE_GROUP = 'aiot-sim-platform';

/** The observer's filters, shared in `group` (`$share/{group}/{filter}`) or not. */
export function observedFilters(group?: string): string[] {
  return group ? OBSERVED_TOPICS.map((f) => `$share/${group}/${f}`) : [...OBSERVED_TOPICS];
}

export interface ExternalCredentials { username?: string; password?: string }

/**
 * Connect an MQTT 3.1.1 client and resolve once its session is accepted, or fail with the broker
 * named. A broker that says "server unavailable" is asked again until `timeoutMs` (`accepted`).
 */
export async function connectExternal(url: string, clientId: string, creds: ExternalCredentials, timeoutMs = 10_000, failover: readonly string[] = []): Promise<MqttClient> {
  const opts: IClientOptions = {
    clientId, protocolVersion: 4, clean: true, keepalive: 60, reconnectPeriod: 1000, connectTimeout: timeoutMs,
    log: () => undefined,
  };
  if (creds.username !== undefined) opts.username = creds.username;
  if (creds.password !== undefined) opts.password = creds.password;
  // With several brokers: to the next of the list each time the connection is lost.
  const client = connectOverSocket({ url, failover }, clientId, opts);
  // Errors after a refusal (the client ends) must not go unheard: an EventEmitter throws those.
  const quiet = (err: Error): void => { log.debug({ url, clientId, err: err.message }, 'broker connection error while connecting'); };
  client.on('error', quiet);
  try {
    await accepted(client, timeoutMs);
  } catch (err) {
    client.end(true);
    throw new AiotSimError('E_BROKER', 'environment', `${brokersNamed({ url, failover })}: ${(err as Error).message}`, { cause: err });
  }
  client.off('error', quiet);
  client.on('error', (err) => log.warn({ url, clientId, err: err.message }, 'broker connection error'));
  return client;
}

/**
 * The platform's own client on an external broker: every observed message goes to `onMessage`,
 * and is emitted as `message` (the traffic the monitor taps, as it taps the embedded broker's).
 */
export class ExternalObserver extends EventEmitter<{ message: [topic: string, payload: Buffer, clientId: string | null] }> {
  received = 0;
  private lastAt = 0;
  /** What can be seen from outside: messages received; nothing of refusals or of other clients. */
  readonly counters = { published: 0, delivered: 0, rejected: 0 };
  readonly connectedClients = 0;
  readonly mqttAddress = null;
  readonly wsAddress = null;

  private constructor(readonly client: MqttClient) {
    super();
  }

  /**
   * `share`: subscribe in this shared-subscription group (each message to one observer of the
   * group); `failover`: more brokers to move to when this one goes.
   */
  static async connect(
    url: string, creds: ExternalCredentials, onMessage: (topic: string, payload: Buffer) => void,
    opts: { share?: string; filters?: string[]; failover?: readonly string[] } = {},
  ): Promise<ExternalObserver> {
    const client = await connectExternal(url, `aiot-sim-platform-${randomBytes(4).toString('hex')}`, creds, 10_000, opts.failover);
    const obs = new ExternalObserver(client);
    client.on('message', (topic, payload, packet) => {
      // In a shared group every observer gets its own copy of what was retained before it
      // subscribed (RETAIN set): it was counted live when it was published, or is older than the run.
      if (opts.share && packet.retain) return;
      obs.received++;
      obs.counters.published = obs.counters.delivered = obs.received;
      obs.lastAt = performance.now();
      onMessage(topic, payload);
      obs.emit('message', topic, payload, null);
    });
    const filters = opts.filters ?? observedFilters(opts.share);
    // mqtt.js subscribes again after each reconnection (to the next broker of the list, or the same one back).
    const granted = filters.length ? await client.subscribeAsync(filters, { qos: 0 }) : [];
    const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
    if (refused.length) {
      client.end(true);
      throw new AiotSimError('E_BROKER', 'environment', `broker ${url} refused the platform's subscription to ${refused.join(', ')} (the platform needs read access to device/#, appMsg/notify/iot/# and app/#)`);
    }
    return obs;
  }

  /** Resolve once nothing has arrived for `quietMs` (or after `maxMs`): the broker has caught up. */
  async quiet(quietMs = 300, maxMs = 15_000): Promise<void> {
    const until = performance.now() + maxMs;
    this.lastAt = Math.max(this.lastAt, performance.now());
    while (performance.now() < until && performance.now() - this.lastAt < quietMs) {
      await new Promise((r) => setTimeout(r, Math.min(50, quietMs)));
    }
  }

  close(): Promise<void> {
    return this.client.endAsync(true).then(() => undefined, () => undefined);
  }
}
