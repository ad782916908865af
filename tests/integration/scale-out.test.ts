/**
 * One simulation over several processes (the real `aiot-sim` command, as users run it): shard
 * processes counting into one platform in a real Redis give the figures of the single-process
 * run of the same scenario and seed, and `aiot-sim status` reads them back.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlatformSnapshot } from '../../src/platform/service.js';
import type { RunReport } from '../../src/sim/report.js';
import { useCleanup } from '../helpers/cleanup.js';
import { assertBuilt, finish, runCli, spawnCli, waitForStderr } from '../helpers/cli.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { openMonitor, wsUrl } from '../helpers/ws.js';
import mqtt from 'mqtt';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let redis: RedisServer;
let dir: string;
beforeAll(async () => {
  assertBuilt();
  redis = await startRedis();
  dir = await mkdtemp(join(tmpdir(), 'aiot-sim-scale-'));
});
afterAll(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The default scenario, fast, over six virtual hours, on private ports. */
const RUN = ['run', 'scenarios/default.yaml', '--fast', '--duration', '6h', '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0'];

async function report(name: string): Promise<RunReport> {
  return JSON.parse(await readFile(join(dir, name), 'utf8')) as RunReport;
}

describe('shard processes on a platform in Redis', () => {
  // Registered here, not inside a test: a hook added while a test runs is never called.
  const track = useCleanup();
  it('count what one process counts, and status reads it back', { timeout: 120_000 }, async () => {
    const platform = `${redis.url}/4`;
    const one = await runCli([...RUN, '--report', join(dir, 'one.json')], { timeoutMs: 60_000 });
    expect(one.code, one.stderr).toBe(0);
    const shards = [1, 2].map((k) => spawnCli([...RUN, '--shard', `${k}/2`, '--platform', platform, '--report', join(dir, `s${k}.json`)]));
    const ends = await Promise.all(shards.map((s) => finish(s, 90_000)));
    for (const e of ends) expect(e.code, e.stderr).toBe(0);
    expect(ends[0]!.stderr).toMatch(/shard 1 of 2: \d+ homes/);
    expect(ends[0]!.stderr).toContain('platform counted by this process into redis://127.0.0.1');

    const single = await report('one.json');
    const [s1, s2] = [await report('s1.json'), await report('s2.json')];
    expect(single.platform.activeUsers.mau).toBeGreaterThan(0);
    expect(single.platform.messages.byKind['event_occured']).toBeGreaterThan(0);
    // Each shard waits for the other at its end, so both report the whole fleet's figures.
    expect(s1.platform).toEqual(single.platform);
    expect(s2.platform).toEqual(single.platform);
    expect(s1.devices.total + s2.devices.total).toBe(single.devices.total);

    // A shard's digest is its own traffic's: the same with the platform in this process.
    const alone = await runCli([...RUN, '--shard', '1/2', '--report', join(dir, 'alone.json')], { timeoutMs: 60_000 });
    expect(alone.code, alone.stderr).toBe(0);
    expect((await report('alone.json')).traceDigest).toBe(s1.traceDigest);

    // The store still holds the run's figures: status prints them (the devices have gone offline since).
    const st = await runCli(['status', '--platform', platform, '--json']);
    expect(st.code, st.stderr).toBe(0);
    const view = JSON.parse(st.stdout) as typeof single.platform & { store: { resets: number } };
    expect(view.activeUsers).toEqual(single.platform.activeUsers);
    expect(view.speakerMau).toBe(single.platform.speakerMau);
    expect(view.messages.byKind['event_occured']).toBe(single.platform.messages.byKind['event_occured']);
    expect(view.connections.online).toBe(0);
    const text = await runCli(['status', '--platform', platform]);
    expect(text.stdout).toMatch(new RegExp(`active users +DAU ${single.platform.activeUsers.dau}, WAU`));
  });

  it('serve --platform shows the shards\' figures live on its monitor', { timeout: 120_000 }, async () => {
    const platform = `${redis.url}/5`;
    const node = track(spawnCli(['serve', '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0', '--token', 'view-token', '--platform', platform]));
    const [, url] = await waitForStderr(node, /dashboard (http:\/\/127\.0\.0\.1:\d+\/)\?token=view-token/);
    expect(node.out.stderr).toContain('platform store redis://127.0.0.1');
    const api = async (path: string): Promise<Response> => fetch(new URL(path, url), { headers: { authorization: 'Bearer view-token' } });
    const snapshot = async (): Promise<PlatformSnapshot> => (await (await api('/api/snapshot')).json()) as PlatformSnapshot;
    expect((await snapshot()).connections.online).toBe(0);

    // Two shards in near real time (six virtual hours in about seven seconds), each on its own broker.
    const live = [...RUN.filter((a) => a !== '--fast'), '--speed', '3000'];
    const shards = [1, 2].map((k) => track(spawnCli([...live, '--shard', `${k}/2`, '--platform', platform, '--report', join(dir, `live${k}.json`)])));
    const mon = track(await openMonitor(wsUrl(url!, 'view-token')));
    await mon.next('snapshot');
    // While they run, the node's monitor shows their devices online and their messages, read back from Redis.
    const stats = await mon.next('stats', (s) => s.online > 0 && s.activeUsers.mau > 0, 60_000);
    expect(shards.every((c) => c.exitCode === null)).toBe(true);
    expect(stats.byCategory['speaker']).toBeGreaterThan(0);
    const during = await snapshot();
    expect(during.connections.online).toBeGreaterThan(0);
    expect((await (await api('/metrics')).text())).toMatch(/^aiot_sim_devices_online [1-9]/m);

    const ends = await Promise.all(shards.map((c) => finish(c, 90_000)));
    for (const e of ends) expect(e.code, e.stderr).toBe(0);
    const whole = (await report('live1.json')).platform;
    expect((await report('live2.json')).platform).toEqual(whole);
    // Once the shards are done, the node's view is the fleet's (its devices gone offline since).
    const until = Date.now() + 15_000;
    let after = await snapshot();
    while (after.connections.online > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
      after = await snapshot();
    }
    expect(after.connections.online).toBe(0);
    expect(after.activeUsers).toEqual(whole.activeUsers);
    expect(after.speakerMau).toBe(whole.speakerMau);
    expect(after.dailyActiveDevices).toBe(whole.dailyActiveDevices);
    expect(after.messages.byKind['event_occured']).toBe(whole.messages.byKind['event_occured']);
    node.kill('SIGINT');
    expect((await finish(node, 15_000)).code).toBe(0);
  });

  it('on Mosquitto: shard processes count each message once through the shared subscription', { timeout: 120_000 }, async () => {
    const broker = await startMosquitto();
    track(() => broker.stop());
    const platform = `${redis.url}/6`;
    const onMosquitto = ['run', 'scenarios/default.yaml', '--fast', '--duration', '6h', '--http-port', '0', '--broker', broker.url];
    const one = await runCli([...onMosquitto, '--report', join(dir, 'm-one.json')], { timeoutMs: 60_000 });
    expect(one.code, one.stderr).toBe(0);
    const shards = [1, 2].map((k) => track(spawnCli([...onMosquitto, '--shard', `${k}/2`, '--platform', platform, '--report', join(dir, `m${k}.json`)])));
    const ends = await Promise.all(shards.map((c) => finish(c, 90_000)));
    for (const e of ends) expect(e.code, e.stderr).toBe(0);
    expect(ends[0]!.stderr).toContain('shared subscription $share/aiot-sim-platform/');
    const single = (await report('m-one.json')).platform;
    expect(single.messages.byKind['event_occured']).toBeGreaterThan(0);
    // Two observers in one group, each message to one of them: the counts add up to one observer's.
    for (const k of [1, 2]) expect((await report(`m${k}.json`)).platform).toEqual(single);
  });

  it('devices move to the next broker of --broker when theirs is killed', { timeout: 120_000 }, async () => {
    const [a, b] = [await startMosquitto(), await startMosquitto()];
    track(() => a.stop());
    track(() => b.stop());
    // Who announces itself online where (sessions starting on A or B, then those moving to B).
    const online = { a: new Set<string>(), b: new Set<string>() };
    for (const [k, broker] of [['a', a], ['b', b]] as const) {
      const watch = track(await mqtt.connectAsync(broker.url, { clientId: `watch-${k}`, reconnectPeriod: 0 }));
      watch.on('message', (topic, payload) => {
        if ((JSON.parse(payload.toString()) as { event?: string }).event === 'online') online[k].add(topic.split('/')[1]!);
      });
      watch.on('error', () => undefined);
      await watch.subscribeAsync('device/+/state');
    }
    const run = track(spawnCli(['run', 'scenarios/default.yaml', '--speed', '400', '--duration', '2h', '--http-port', '0', '--broker', `${a.url},${b.url}`, '--report', join(dir, 'failover.json')]));
    await waitForStderr(run, /your brokers mqtt:\/\/127\.0\.0\.1:\d+, mqtt:\/\/127\.0\.0\.1:\d+ \(each client moves to the next/);
    const until = async (cond: () => boolean, ms: number, what: string): Promise<void> => {
      const end = Date.now() + ms;
      while (!cond()) {
        if (Date.now() > end) throw new Error(`${what} within ${ms} ms (A ${online.a.size}, B ${online.b.size})`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    // The fleet spreads over both brokers (each client starts at its own place in the list).
    await until(() => online.a.size > 0 && online.b.size > 0, 20_000, 'devices on both brokers');
    await new Promise((r) => setTimeout(r, 500));
    const onA = [...online.a].filter((d) => !online.b.has(d));
    expect(onA.length).toBeGreaterThan(0);
    process.kill(a.pid, 'SIGKILL');
    // Every device that was on A is announced online on B, after backoff with jitter.
    await until(() => onA.every((d) => online.b.has(d)), 30_000, 'every device of A online on B');
    const end = await finish(run, 60_000);
    expect(end.code, end.stderr).toBe(0);
    const r = await report('failover.json');
    expect(r.platform.connections.online).toBe(r.devices.total);
  });

  it('refuses a bad --shard or --platform, naming the flag', async () => {
    const bad = await runCli([...RUN, '--shard', '3/2']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--shard: expected K/N');
    const url = await runCli([...RUN, '--platform', 'http://x']);
    expect(url.code).toBe(2);
    expect(url.stderr).toContain('--platform: unsupported scheme');
    const gone = await runCli(['status', '--platform', 'redis://127.0.0.1:1']);
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain('cannot reach Redis');
    // A database the server does not have (16 of 0-15) is refused, not quietly database 0.
    for (const args of [['status', '--platform', `${redis.url}/16`], ['serve', '--cluster', `${redis.url}/16`, '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0', '--token', 'op-token-0123456789']]) {
      const none = await runCli(args);
      expect(none.code, none.stderr).toBe(1);
      expect(none.stderr).toContain(`${args[1]} ${redis.url}/16: Redis has no database 16`);
    }
  });
});
