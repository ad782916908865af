/**
 * A list of brokers to fail over between (`--broker URL[,URL...]`): a client connects to one and,
 * each time its connection is lost, reconnects to the next (mqtt.js' `servers`). Clients start at
 * different places in the list (by a key such as their client id), so a fleet spreads over the
 * brokers and, when one goes, its clients move on to the others.
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
