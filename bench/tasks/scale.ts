/**
 * Scale-out figures: what the platform costs counting into Redis beside counting in memory.
 *
 * One fast run of a scenario is recorded at the platform's door (every session and message it
 * is given, in order); the recording is then fed, again and again, to a platform counting in this
 * process and to one counting into a real Redis (started here, on loopback), alternately. Each
 * replay's CPU time is this process' (user + system) until the figures are back, plus, for Redis,
 * the server's own CPU time (INFO cpu); Redis' commands are counted from INFO commandstats.
 */
import { join } from 'node:path';
import mqtt from 'mqtt';
import { EmbeddedBroker, PACKAGE_ROOT, PlatformService, RedisStore, Simulation, type DeviceLookup, type PlatformSnapshot, type PlatformStore } from 'aiot-sim';
import { startRedis } from '../../tests/helpers/redis.js';
import { median, round, tick } from '../common.js';

type Recorded =
  | { k: 'm'; topic: string; payload: Buffer }
  | { k: 'u'; did: string; transport: string; connId: number }
  | { k: 'd'; did: string; connId: number };

/** Record what the platform is given during one fast run; returns it with the run's device lookup. */
async function record(scenario: string, duration: string): Promise<{ feed: Recorded[]; lookup: DeviceLookup; messages: number }> {
  const sim = await Simulation.create({ scenario: join(PACKAGE_ROOT, 'scenarios', scenario), speed: 'fast', duration, broker: { mqttPort: null, wsPort: null } });
  const feed: Recorded[] = [];
  const platform = sim.platform;
  // The platform reads messages through onMessage and counts sessions into its store: both are tapped here.
  const onMessage = platform.onMessage.bind(platform);
  platform.onMessage = (topic, payload) => { feed.push({ k: 'm', topic, payload: Buffer.from(payload) }); onMessage(topic, payload); };
  const store = platform.store;
  const up = store.sessionUp.bind(store);
  const down = store.sessionDown.bind(store);
  store.sessionUp = (did, transport, connId) => { feed.push({ k: 'u', did, transport, connId }); up(did, transport, connId); };
  store.sessionDown = (did, connId) => { feed.push({ k: 'd', did, connId }); down(did, connId); };
  await sim.start();
  await sim.finished;
  // The binding lookup the run's platform used (the provisioner's facts), for the replays.
  const lookup = (platform as unknown as { lookup: DeviceLookup }).lookup;
  return { feed, lookup, messages: feed.filter((r) => r.k === 'm').length };
}

/** Feed the recording to a platform counting into `store`; yields now and then so timed flushes run as in a live run. */
async function replay(feed: readonly Recorded[], lookup: DeviceLookup, store?: PlatformStore): Promise<{ cpuMs: number; wallMs: number; platform: PlatformService }> {
  const platform = new PlatformService(lookup, store);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let i = 0;
  for (const r of feed) {
    if (r.k === 'm') platform.onMessage(r.topic, r.payload);
    else if (r.k === 'u') platform.store.sessionUp(r.did, r.transport, r.connId);
    else platform.store.sessionDown(r.did, r.connId);
    if (++i % 2000 === 0) await tick();
  }
  await platform.settle();
  const c = process.cpuUsage(c0);
  return { cpuMs: (c.user + c.system) / 1000, wallMs: performance.now() - t0, platform };
}

/** Exact counts equal (keys in any order), distinct counts within 2 % (two HyperLogLog implementations past 2,048 ids). */
function sameCounts(a: PlatformSnapshot, b: PlatformSnapshot): boolean {
  const sorted = (r: Record<string, number>): string => JSON.stringify(Object.entries(r).sort(([x], [y]) => (x < y ? -1 : 1)));
  const near = (x: number, y: number): boolean => Math.abs(x - y) <= 0.02 * Math.max(x, y);
  return sorted(a.messages.byKind) === sorted(b.messages.byKind) && a.messages.duplicatesRemoved === b.messages.duplicatesRemoved
    && a.messages.eventsMissing === b.messages.eventsMissing && a.connections.online === b.connections.online
    && sorted(a.connections.byModel) === sorted(b.connections.byModel)
    && near(a.activeUsers.mau, b.activeUsers.mau) && near(a.dailyActiveDevices, b.dailyActiveDevices) && near(a.speakerMau, b.speakerMau);
}

export async function platformCost({ scenario = 'consumer-load.yaml', duration = '6h', reps = 5 }: { scenario?: string; duration?: string; reps?: number }) {
  const { feed, lookup, messages } = await record(scenario, duration);
  const redis = await startRedis();
  try {
    const memory: number[] = [];
    const shared: Array<{ clientMs: number; serverMs: number; calls: number; scripts: number; equal: boolean }> = [];
    await replay(feed, lookup); // warm-up: the JIT sees the platform's code once before anything is timed
    for (let rep = 0; rep < reps; rep++) {
      const mem = await replay(feed, lookup);
      memory.push(mem.cpuMs);
      const store = await RedisStore.connect(`${redis.url}/${rep % 16}`);
      const stats0 = await redis.commandStats();
      const s0 = await redis.cpuSeconds();
      const r = await replay(feed, lookup, store);
      const s1 = await redis.cpuSeconds();
      const stats1 = await redis.commandStats();
      const calls = Object.entries(stats1).reduce((n, [k, v]) => n + v - (stats0[k] ?? 0), 0);
      const scripts = ['evalsha', 'eval'].reduce((n, k) => n + (stats1[k] ?? 0) - (stats0[k] ?? 0), 0);
      const a = mem.platform.snapshot();
      const b = r.platform.snapshot();
      shared.push({ clientMs: r.cpuMs, serverMs: (s1 - s0) * 1000, calls, scripts, equal: sameCounts(a, b) });
      await store.close();
    }
    const memUs = (median(memory) ?? 0) * 1000 / messages;
    const clientUs = (median(shared.map((s) => s.clientMs)) ?? 0) * 1000 / messages;
    const serverUs = (median(shared.map((s) => s.serverMs)) ?? 0) * 1000 / messages;
    return {
      scenario, duration, messages, reps,
      memoryCpuMicrosPerMessage: round(memUs, 3),
      redisClientCpuMicrosPerMessage: round(clientUs, 3),
      redisServerCpuMicrosPerMessage: round(serverUs, 3),
      /** This process' CPU per message with Redis over in memory (the platform's own cost). */
      clientRatio: round(clientUs / memUs, 3),
      /** The same, with Redis' own CPU added. */
      totalRatio: round((clientUs + serverUs) / memUs, 3),
      redisCommandsPerMessage: round((median(shared.map((s) => s.calls)) ?? 0) / messages, 3),
      redisRoundTripsPerMessage: round((median(shared.map((s) => s.scripts)) ?? 0) / messages, 5),
      sameFiguresEveryReplay: shared.every((s) => s.equal),
      details: { memoryCpuMs: memory.map((m) => round(m, 1)), redis: shared.map((s) => ({ ...s, clientMs: round(s.clientMs, 1), serverMs: round(s.serverMs, 1) })) },
    };
  } finally {
    await redis.stop();
  }
}

/**
 * Broker throughput and latency: one node on its own, one node of a cluster on Redis, and two
 * nodes of a cluster (publishers on one, the subscriber on the other), side by side in one
 * process. Publishers (anonymous, `lab/` topics) keep at most `window` messages in flight; each
 * payload carries its send time, so the latency is publish to delivery at the subscriber.
 */
export async function clusterThroughput({ messages = 20_000, publishers = 8, window = 500 }: { messages?: number; publishers?: number; window?: number }) {
  const redis = await startRedis();
  const run = async (kind: 'single' | 'cluster-1' | 'cluster-2', db: number) => {
    const cluster = kind === 'single' ? undefined : { url: `${redis.url}/${db}` };
    const a = await EmbeddedBroker.start({ operatorToken: 'bench', mqttPort: 0, wsPort: null, ...(cluster ? { cluster } : {}) });
    const b = kind === 'cluster-2' && cluster ? await EmbeddedBroker.start({ operatorToken: 'bench', mqttPort: 0, wsPort: null, cluster }) : a;
    const url = (x: EmbeddedBroker): string => `mqtt://127.0.0.1:${x.mqttAddress!.port}`;
    const sub = await mqtt.connectAsync(url(b), { clientId: `bench-sub-${kind}`, reconnectPeriod: 0 });
    await sub.subscribeAsync('lab/bench/#', { qos: 0 });
    const pubs = await Promise.all(Array.from({ length: publishers }, (_, i) => mqtt.connectAsync(url(a), { clientId: `bench-pub-${kind}-${i}`, reconnectPeriod: 0 })));
    // Let the subscription reach every node before anything is published.
    await new Promise((r) => setTimeout(r, 500));
    const latencies: number[] = [];
    let received = 0;
    let wake: (() => void) | null = null;
    sub.on('message', (_t, p) => {
      latencies.push(performance.now() - Number(p.toString()));
      received++;
      wake?.();
    });
    const stats0 = await redis.commandStats();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let sent = 0; sent < messages; sent++) {
      while (sent - received >= window) await new Promise<void>((r) => { wake = r; setTimeout(r, 50); });
      pubs[sent % publishers]!.publish(`lab/bench/${sent % 100}`, String(performance.now()), { qos: 0 });
    }
    const until = performance.now() + 30_000;
    while (received < messages && performance.now() < until) await new Promise<void>((r) => { wake = r; setTimeout(r, 50); });
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const stats1 = await redis.commandStats();
    const calls = Object.entries(stats1).reduce((n, [k, v]) => n + v - (stats0[k] ?? 0), 0);
    for (const c of [sub, ...pubs]) c.end(true);
    await a.close();
    if (b !== a) await b.close();
    latencies.sort((x, y) => x - y);
    const q = (p: number): number => round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0, 2);
    return {
      kind, messages, received, lost: messages - received,
      messagesPerSecond: round(received / seconds, 0),
      p50Ms: q(0.5), p99Ms: q(0.99),
      cpuMicrosPerMessage: round(((cpu.user + cpu.system) / received) || 0, 1),
      redisCommandsPerMessage: round(calls / Math.max(1, received), 2),
    };
  };
  try {
    return { single: await run('single', 0), clusterOneNode: await run('cluster-1', 1), clusterTwoNodes: await run('cluster-2', 2) };
  } finally {
    await redis.stop();
  }
}
