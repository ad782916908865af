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
import { PACKAGE_ROOT, PlatformService, RedisStore, Simulation, type DeviceLookup, type PlatformSnapshot, type PlatformStore } from 'aiot-sim';
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
