/**
 * A list of brokers to fail over between (`--broker URL[,URL...]`): a client connects to one and,
 * each time its connection is lost, reconnects to the next (mqtt.js' `servers`). Clients start at
 * different places in the list (by a key such as their client id), so a fleet spreads over the
 * brokers and, when one goes, its clients move on to the others.
 *
 * Also how those clients' sockets send (`sendPacketsAtOnce`).
 */

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

/** What `sendPacketsAtOnce` needs of an mqtt.js client: its current stream, and its connect event. */
export interface SocketClient {
  readonly stream: unknown;
  on(event: 'connect', listener: () => void): unknown;
}

/**
 * Turn Nagle's algorithm off on an mqtt.js client's TCP or TLS socket, at each connection (mqtt.js
 * opens its sockets without a way to ask for it). With it on, a small packet written while an
 * earlier one is unacknowledged waits for that acknowledgement, which the broker's side may hold
 * back for tens of milliseconds (delayed ACK): a device answering a command writes its PUBACK and
 * then its reply, an app publishes its session and then a command. In fast mode the virtual clock
 * waits for each command's reply, and on Mosquitto (its own side's Nagle off) a run took twice as
 * long. A WebSocket stream has no such switch (`ws` turns Nagle off itself), nor an in-process one.
 */
export function sendPacketsAtOnce(client: SocketClient): void {
  client.on('connect', () => {
    const socket = client.stream as { setNoDelay?: (noDelay: boolean) => unknown } | null;
    if (typeof socket?.setNoDelay === 'function') socket.setNoDelay(true);
  });
}
