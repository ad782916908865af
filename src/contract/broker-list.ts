/**
 * A list of brokers to fail over between (`--broker URL[,URL...]`): a client connects to one and,
 * each time its connection is lost, reconnects to the next (mqtt.js' `servers`). Clients start at
 * different places in the list (by a key such as their client id), so a fleet spreads over the
 * brokers and, when one goes, its clients move on to the others. `connectOverSocket` is how every
 * mqtt.js client of ours reaches a broker over a socket: device sessions, app users, the
 * platform's observer, the operator and `record`.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

export interface BrokerServer { host: string; port: number; protocol: 'mqtt' | 'mqtts' | 'ws' | 'wss' | 'tcp' }

/** The list rotated to start at `key`'s place (a stable hash of the key): the URL to connect to first, and the servers in order. */
export function failoverFor(urls: readonly string[], key: string): { url: string; servers: BrokerServer[] } {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  const start = (h >>> 0) % urls.length;
  const order = urls.map((_, i) => urls[(start + i) % urls.length]!);
  return { url: order[0]!, servers: order.map(serverOf) };
}

function serverOf(url: string): BrokerServer {
  const u = new URL(url);
  const protocol = u.protocol.replace(/:$/, '') as BrokerServer['protocol'];
  const port = u.port ? Number(u.port) : protocol === 'mqtts' ? 8883 : protocol === 'ws' ? 80 : protocol === 'wss' ? 443 : 1883;
  return { host: u.hostname, port, protocol };
}

/**
 * An mqtt.js client on `brokers.url` over a socket that sends each packet at once. With other
 * brokers to fail over to, the list is rotated to start at the client's own place (`key`), and
 * mqtt.js moves to the next broker at each reconnection.
 */
export function connectOverSocket(brokers: { url: string; failover?: readonly string[] }, key: string, opts: IClientOptions): MqttClient {
  let url = brokers.url;
  if (brokers.failover?.length) {
    const f = failoverFor([brokers.url, ...brokers.failover], key);
    url = f.url;
    opts = { ...opts, servers: f.servers };
  }
  const client = mqtt.connect(url, opts);
  sendPacketsAtOnce(client);
  return client;
}

/**
 * Turn Nagle's algorithm off on an mqtt.js client's TCP or TLS socket, at each connection (mqtt.js
 * opens its sockets without a way to ask for it). With it on, a small packet written while an
 * earlier one is unacknowledged waits for that acknowledgement, which the broker's side may hold
 * back for tens of milliseconds (delayed ACK): a device answering a command writes its PUBACK and
 * then its reply, an app publishes its session and then a command. In fast mode the virtual clock
 * waits for each command's reply, and on Mosquitto (its own side's Nagle off) a run took twice as
 * long. A WebSocket stream has no such switch (`ws` turns Nagle off itself).
 */
function sendPacketsAtOnce(client: MqttClient): void {
  client.on('connect', () => {
    const socket = client.stream as { setNoDelay?: (noDelay: boolean) => unknown } | null;
    if (typeof socket?.setNoDelay === 'function') socket.setNoDelay(true);
  });
}

/** How messages name the brokers a client uses: `broker URL`, or `brokers URL, URL, ...` with failover. */
export function brokersNamed(brokers: { url: string; failover?: readonly string[] }): string {
  return brokers.failover?.length ? `brokers ${[brokers.url, ...brokers.failover].join(', ')}` : `broker ${brokers.url}`;
}

/**
 * Whether a connection error is the broker's CONNACK refusal "server unavailable" (return code 3):
 * the broker is there but cannot serve sessions for now (an aiot-sim broker node refuses CONNECTs
 * while its cluster's Redis is away), so connecting again shortly is worth it.
 */
export function serverUnavailable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 3;
}

/** Waits between tries when the broker says "server unavailable": doubling from this, up to the cap. */
const UNAVAILABLE_RETRY_MS = 250;
const UNAVAILABLE_RETRY_MAX_MS = 2000;

/**
 * Resolve once `client`'s session is accepted (its first CONNACK with return code 0). A refusal
 * "server unavailable" is tried again until `timeoutMs` from now: by this function (250 ms, then
 * doubling up to 2 s), or, with `ownerReconnects`, by the client's owner (a device session's own
 * backoff); any other error, or no session by then, rejects with that error. The caller ends the
 * client on a rejection, and keeps its own 'error' listener (this one is removed once it settles).
 */
export function accepted(client: MqttClient, timeoutMs: number, ownerReconnects = false): Promise<void> {
  if (client.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    let tries = 0;
    let retry: NodeJS.Timeout | null = null;
    let last: Error | null = null;
    const settle = (err?: Error): void => {
      clearTimeout(timer);
      if (retry) clearTimeout(retry);
      client.off('connect', ok);
      client.off('error', bad);
      if (err) reject(err);
      else resolve();
    };
    const ok = (): void => settle();
    const bad = (err: Error): void => {
      if (!serverUnavailable(err)) {
        settle(err);
        return;
      }
      last = err;
      if (ownerReconnects) return;
      const wait = Math.min(UNAVAILABLE_RETRY_MS * 2 ** tries++, UNAVAILABLE_RETRY_MAX_MS);
      if (Date.now() + wait >= deadline) {
        settle(err);
        return;
      }
      retry = setTimeout(() => {
        retry = null;
        client.reconnect();
      }, wait);
    };
    const timer = setTimeout(() => settle(new Error(`no session accepted within ${timeoutMs} ms${last ? ` (last: ${last.message})` : ''}`)), timeoutMs);
    client.on('connect', ok);
    client.on('error', bad);
  });
}
