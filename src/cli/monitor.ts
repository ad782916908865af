/**
 * The CLI's monitoring parts: the monitor `run` starts next to a simulation (--http-port), and
 * `aiot-sim serve` (broker + platform + monitor, no devices). Kept out of main.ts on purpose.
 */
import { randomBytes } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import { newOperatorToken } from '../broker/access.js';
import { EmbeddedBroker } from '../broker/broker.js';
import type { DeviceLookup } from '../platform/registry.js';
import { AiotSimError } from '../errors.js';
import { help, operatorToken, parseFlags, port, text, UsageError, type FlagSet } from './args.js';
import { BROKER_FLAGS, BROKER_HELP, brokerOptionsFrom, operatorTokenFrom, TOKEN_FLAGS, TOKEN_HELP } from './broker-flags.js';
import { MonitorServer } from '../monitor/server.js';
import { monitorShardedSimulation, monitorSimulation } from '../monitor/simulation.js';
import { checkRedisUrl, redactedUrl } from '../platform/urls.js';
import { PlatformService } from '../platform/service.js';
import { ShardedSimulation } from '../sim/sharded.js';
import type { Simulation } from '../sim/simulation.js';

/** Start the monitor for a started simulation (one thread or several); if it cannot (busy port), stop the simulation and rethrow. */
export async function startRunMonitor(
  sim: Simulation | ShardedSimulation, at: { port: number; host: string; allowOrigins: readonly string[] }, err: NodeJS.WritableStream,
): Promise<MonitorServer> {
  let monitor: MonitorServer;
  try {
    monitor = sim instanceof ShardedSimulation ? await monitorShardedSimulation(sim, at) : await monitorSimulation(sim, at);
  } catch (e) {
    await sim.stop();
    throw e;
  }
  err.write(`aiot-sim: dashboard ${monitor.dashboardUrl}\n`);
  return monitor;
}

export const SERVE_USAGE = `aiot-sim serve [options]: an embedded broker, the platform and the live monitor, no simulated devices

  --mqtt-port P     broker TCP port (default 1883; 0 = any free port)
  --ws-port P       MQTT over WebSocket port, path /mqtt (default 8083; 0 = any free port)
  --http-port P     monitor HTTP port: dashboard, /api, /metrics, /ws (default 8080; 0 = any free port)
  --host H          interface every listener binds to (default 127.0.0.1)
  --cluster URL     be a node of a broker cluster on Redis (redis://HOST:PORT[/DB]): messages,
                    persistent sessions, retained messages and the access directory shared with
                    every node naming it (run --broker NODES --cluster URL provisions into it)
  --platform URL    count into the shared platform store in Redis (redis://HOST:PORT[/DB]) what
                    this broker takes in, and serve everyone's figures (shard processes', other
                    nodes') on the monitor, live (default: this broker's only, in this process)
${TOKEN_HELP}
${BROKER_HELP}`;

const SERVE_FLAGS = {
  'mqtt-port': port, 'ws-port': port, 'http-port': port, host: text, platform: text, cluster: text, token: operatorToken, ...TOKEN_FLAGS, ...BROKER_FLAGS, help,
} satisfies FlagSet;

/** `aiot-sim serve`: runs until SIGINT/SIGTERM; returns the exit code. */
export async function serve(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const parsed = parseFlags(args, SERVE_FLAGS, 'serve');
  const { values: v, positionals } = parsed;
  if (v.help) {
    out.write(SERVE_USAGE);
    return 0;
  }
  if (positionals.length) throw new UsageError(`serve takes no arguments, got "${positionals.join(' ')}"`);
  const brokerOptions = brokerOptionsFrom(parsed, 'serve');
  const token = (await operatorTokenFrom(v.token, v['token-file'], process.env, 'serve')) ?? newOperatorToken();
  const host = v.host ?? '127.0.0.1';
  const mqttPort = v['mqtt-port'] ?? 1883;
  const wsPort = v['ws-port'] ?? 8083;
  const httpPort = v['http-port'] ?? 8080;
  for (const [flag, url] of [['--platform', v.platform], ['--cluster', v.cluster]] as const) {
    if (url === undefined) continue;
    try {
      checkRedisUrl(url, flag);
    } catch (e) {
      throw new UsageError((e as Error).message, 'serve');
    }
  }

  // The shared store first: a Redis that cannot be reached stops serve before it opens a port.
  // Redis' client loads only for a node that counts into it or joins a cluster.
  const store = v.platform === undefined ? null : await (await import('../platform/redis-store.js')).RedisStore.connect(v.platform, { writer: `serve ${randomBytes(3).toString('hex')}` });
  let broker: EmbeddedBroker;
  try {
    broker = await EmbeddedBroker.start({ ...brokerOptions, operatorToken: token, host, mqttPort, wsPort, ...(v.cluster !== undefined ? { cluster: { url: v.cluster, option: '--cluster' } } : {}) });
  } catch (e) {
    await store?.close();
    throw e;
  }
  // A cluster node takes the credentials shard processes write to the cluster's access directory.
  let unfollow: (() => Promise<void>) | null = null;
  let lookup: DeviceLookup = () => undefined;
  try {
    if (v.cluster !== undefined) unfollow = await (await import('../broker/cluster.js')).followDirectory({ url: v.cluster }, broker.access);
    // No devices of its own: it knows those bound in the shared store (shard processes write theirs), or none.
    if (store) lookup = await store.followBindings();
  } catch (e) {
    await broker.close();
    await unfollow?.();
    await store?.close();
    throw e;
  }
  const platform = store ? new PlatformService(lookup, store) : new PlatformService(lookup);
  platform.observe(broker);
  if (store) store.countsAtIngress(listenerAddresses(broker));
  let monitor: MonitorServer;
  try {
    monitor = await MonitorServer.start({ broker, platform, token, host, port: httpPort, title: 'aiot-sim serve', allowOrigins: v['allow-origin'] ?? [] });
  } catch (e) {
    await broker.close();
    await unfollow?.();
    await store?.close();
    throw e instanceof AiotSimError ? e : new AiotSimError('E_MONITOR', 'environment', (e as Error).message, { cause: e });
  }
  const mqtt = broker.mqttAddress ? `mqtt://${broker.mqttAddress.host}:${broker.mqttAddress.port}` : 'off';
  const ws = broker.wsAddress ? `ws://${broker.wsAddress.host}:${broker.wsAddress.port}/mqtt` : 'off';
  err.write(`aiot-sim: broker ${mqtt} (WebSocket ${ws}); operator token: ${token}\n`);
  if (v.cluster !== undefined) err.write(`aiot-sim: a node of the broker cluster on ${redactedUrl(v.cluster)} (messages, persistent sessions and retained messages shared)\n`);
  if (store) err.write(`aiot-sim: platform store ${redactedUrl(v.platform!)}: counting what this broker takes in; the monitor shows everyone's figures\n`);
  err.write(`aiot-sim: dashboard ${monitor.dashboardUrl}\n`);
  err.write('aiot-sim: serving until Ctrl-C\n');

  await new Promise<void>((resolve) => {
    const onSignal = (): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  err.write('aiot-sim: stopping...\n');
  await monitor.stop();
  // The broker first: what its clients' goodbyes change is counted into the store before it closes.
  await broker.close();
  await Promise.all([unfollow?.(), store?.close()]);
  return 0;
}

/**
 * Where clients reach this broker (`host:port` of each listener), as a run's `--broker` URL would
 * name it; a listener on every interface is reachable at each of this machine's addresses.
 */
function listenerAddresses(broker: EmbeddedBroker): string[] {
  const out = new Set<string>();
  for (const a of [broker.mqttAddress, broker.wsAddress]) {
    if (!a) continue;
    const hosts = a.host === '0.0.0.0' || a.host === '::'
      ? ['localhost', hostname(), ...Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((i) => i.address))]
      : [a.host];
    for (const h of hosts) out.add(h.includes(':') ? `[${h}]:${a.port}` : `${h}:${a.port}`);
  }
  return [...out];
}
