/**
 * The platform's counts in a real Redis (started by the test): the same run counted in memory and
 * in Redis gives the same figures; the store survives Redis restarting, and says what it lost
 * when Redis came back without its data.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStore } from '../../src/platform/redis-store.js';
import { PlatformService } from '../../src/platform/service.js';
import { Simulation } from '../../src/sim/simulation.js';
import { assertBuilt, finish, spawnCli, waitForStderr } from '../helpers/cli.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let redis: RedisServer;
beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => { await redis?.stop(); });

/** Lively homes over two virtual days, fast: every figure moves (sessions, voice, app, events, gateways). */
function scenario(): Record<string, unknown> {
  return {
    name: 'redis-platform', seed: 11, start: '2026-07-15T18:00:00+02:00', speed: 'fast', duration: '30h',
    population: {
      homes: 14, regions: { cn: 2, es: 1 },
      devicesPerHome: { '2': 4, '4': 4, '7': 6 },
      mix: { speaker: 2, light: 3, plug: 2, sensor: 3, 'air-conditioner': 1 },
      membersPerHome: [0, 2],
    },
    behaviour: { app: { sessionsPerUserPerDay: 6 }, voice: { requestsPerUserPerDay: 6 } },
  };
}

async function run(platform?: string): Promise<Awaited<ReturnType<Simulation['stop']>>> {
  const sim = await Simulation.create({ scenario: scenario(), broker: { mqttPort: null }, ...(platform ? { platform } : {}) });
  await sim.start();
  return sim.finished;
}

describe('the platform on Redis', () => {
  it('counts a run exactly as the in-memory platform does', { timeout: 120_000 }, async () => {
    const memory = await run();
    const shared = await run(`${redis.url}/1`);
    expect(shared.traceDigest).toBe(memory.traceDigest);
    expect(memory.platform.activeUsers.mau).toBeGreaterThan(0);
    expect(memory.platform.speakerMau).toBeGreaterThan(0);
    expect(memory.platform.messages.byKind['event_occured']).toBeGreaterThan(0);
    // Small counts stay exact in Redis too (a set beside the HyperLogLog up to 2,048 ids).
    expect(shared.platform).toEqual(memory.platform);
    expect(shared.platformStore).toMatchObject({ kind: 'redis', droppedWrites: 0, resets: 0 });
  });

  it('keeps counting through a Redis restart, and says so when Redis came back empty', { timeout: 60_000 }, async () => {
    const url = `${redis.url}/2`;
    const store = await RedisStore.connect(url, { flushMs: 20, refreshMs: 200 });
    const facts = { model: 'chuangmi.plug.212a01', category: 'plug', region: 'cn', uid: 'u1' };
    const platform = new PlatformService((did) => (did.startsWith('d') ? facts : undefined), store);
    const state = (did: string, event: string, ts: number): void =>
      platform.onMessage(`device/${did}/state`, Buffer.from(JSON.stringify({ device_id: did, event, model: facts.model, timestamp: ts, uid: 1 })));
    const t0 = Date.UTC(2026, 6, 15);
    try {
      state('d1', 'online', t0);
      state('d2', 'online', t0);
      await platform.settle();
      expect(platform.snapshot().connections.online).toBe(2);

      // Redis goes away with its data saved; what arrives meanwhile waits and is written once it is back.
      const restarting = redis.restart({ keepData: true, downMs: 300 });
      state('d3', 'online', t0 + 1000);
      await restarting;
      await platform.settle();
      expect(platform.snapshot().connections.online).toBe(3);
      expect(store.health).toMatchObject({ resets: 0, droppedWrites: 0 });

      // Back without its data: the store notices and says so; counting goes on from there.
      await redis.restart({ keepData: false });
      state('d4', 'online', t0 + 2000);
      await platform.settle();
      await platform.settle();
      expect(store.health.resets).toBe(1);
      expect(platform.snapshot().connections.online).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('a shard waiting for the others to be done counts one that has already gone on to read the figures, and stops waiting for one that failed', async () => {
    const store = await RedisStore.connect(`${redis.url}/3`, { flushMs: 20, refreshMs: 200 });
    try {
      const since = Date.now();
      // Shard 1 saw everyone done and marked "read" before shard 2 had looked (its mark replaces the last).
      await store.markShard('run-a', 0, 'done');
      await store.markShard('run-a', 0, 'read');
      await store.markShard('run-a', 1, 'done');
      expect(await store.waitForShards('run-a', 2, 'done', since, 2000)).toBe('reached');
      // Being done is not having read: shard 2 has not.
      expect(await store.waitForShards('run-a', 2, 'read', since, 300)).toBe('timeout');
      // A mark from before this run started is an earlier run's.
      expect(await store.waitForShards('run-a', 2, 'done', Date.now() + 60_000, 300)).toBe('timeout');
      // A shard that could not start says so: the others stop waiting for it at once.
      await store.markShard('run-b', 0, 'done');
      await store.markShard('run-b', 1, 'failed');
      const t0 = Date.now();
      expect(await store.waitForShards('run-b', 2, 'done', since, 20_000)).toBe('failed');
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      await store.close();
    }
  });
  it('a shard waiting at its end for the others stops waiting on Ctrl-C, and reports what it has', { timeout: 60_000 }, async () => {
    assertBuilt();
    // Shard 1 of 2, and no shard 2: at its end it waits (up to 10 minutes) for the other.
    const child = spawnCli(['run', 'scenarios/default.yaml', '--speed', 'fast', '--duration', '10m', '--shard', '1/2', '--platform', `${redis.url}/6`, '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0']);
    try {
      await waitForStderr(child, /waiting for the run's other shards/, 30_000);
      const t0 = Date.now();
      child.kill('SIGINT');
      const end = await finish(child, 20_000);
      expect(end.code, end.stderr).toBe(0);
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(end.stderr).toContain('interrupted while waiting for the other shards');
      expect(end.stdout).toMatch(/online at end\s+\d+/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
