/**
 * Broker nodes clustered on a real Redis, through a Redis restart: with its data saved (SHUTDOWN
 * SAVE, as a SIGTERM does) and with its data lost (SIGKILL, no save). The nodes stay up and keep
 * their clients, refuse CONNECTs meanwhile with CONNACK 3, deliver what is published at a node to
 * its own subscribers only (and count it), route across nodes again once Redis is back, and say
 * what was lost when Redis came back empty.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import type { RunReport } from '../../src/sim/report.js';
import { useCleanup } from '../helpers/cleanup.js';
import { assertBuilt, finish, spawnCli, waitForStderr } from '../helpers/cli.js';
import { metricSample, serveClusterNodes } from '../helpers/cluster-nodes.js';
import { connectTcp, refusalCode, until } from '../helpers/mqtt.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let redis: RedisServer;
beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => { await redis?.stop(); });

describe('broker nodes through a Redis restart', () => {
  const track = useCleanup();

  async function node(db: number): Promise<EmbeddedBroker> {
    const b = await EmbeddedBroker.start({ operatorToken: 'op-token', mqttPort: 0, cluster: { url: `${redis.url}/${db}` } });
    track(() => b.close());
    for (const did of ['dev-1', 'dev-2']) b.access.registerDevice(did, { token: `${did}-token`, uid: 'u1', members: [], children: [] });
    return b;
  }
  const down = (...nodes: EmbeddedBroker[]): boolean => nodes.every((n) => n.clusterHealth()?.up === false);
  const up = (...nodes: EmbeddedBroker[]): boolean => nodes.every((n) => n.clusterHealth()?.up === true);

  it('Redis restarted with its data: clients stay, CONNECTs are refused (CONNACK 3), messages stay on their node and are counted, then routing resumes', { timeout: 30_000 }, async () => {
    const [a, b] = [await node(1), await node(1)];
    const device = { clientId: 'dev-1', username: 'dev-1', password: 'dev-1-token', clean: false } as const;
    const commands: string[] = [];
    const dev = track(await connectTcp(a, device));
    dev.on('message', (_t, p) => { commands.push(p.toString()); });
    await dev.subscribeAsync('device/dev-1/down/rpc', { qos: 1 });
    // Telemetry watchers (anonymous, clean sessions) on both nodes; the telemetry is published at node B.
    const [seenA, seenB]: string[][] = [[], []];
    for (const [n, seen] of [[a, seenA], [b, seenB]] as const) {
      const w = track(await connectTcp(n));
      w.on('message', (_t, p) => { seen.push(p.toString()); });
      await w.subscribeAsync('lab/telemetry', { qos: 0 });
    }
    const op = track(await connectTcp(b, { username: 'operator', password: 'op-token' }));
    const pub = track(await connectTcp(b));
    await pub.publishAsync('lab/telemetry', 'before');
    await until(() => seenA.includes('before') && seenB.includes('before'), 10_000, 'telemetry across nodes before the restart');

    // Redis goes down (SHUTDOWN SAVE) for a while; the test acts once both nodes have noticed.
    const restarting = redis.restart({ keepData: true, downMs: 2000 });
    await until(() => down(a, b), 10_000, 'both nodes to notice Redis is gone');
    // Nobody is thrown off.
    expect([dev.connected, op.connected, pub.connected]).toEqual([true, true, true]);
    // A CONNECT needs the session store: refused at once, with "server unavailable".
    expect(await refusalCode(connectTcp(b, { clientId: 'dev-2', username: 'dev-2', password: 'dev-2-token', clean: false }))).toBe(3);
    expect(b.rejectReasons.get('connect refused: the cluster store (Redis) is unreachable')).toBe(1);
    // Telemetry published at B reaches B's own watcher only, and is counted as not routed.
    for (const m of ['during-1', 'during-2', 'during-3']) await pub.publishAsync('lab/telemetry', m);
    await until(() => seenB.includes('during-3'), 10_000, 'telemetry on its own node during the outage');
    expect(b.clusterHealth()).toMatchObject({ up: false, outages: 1, unroutedMessages: 3, refusedConnects: 1, resets: 0 });
    expect(a.clusterHealth()).toMatchObject({ up: false, outages: 1, unroutedMessages: 0, refusedConnects: 0 });

    await restarting;
    await until(() => up(a, b), 15_000, 'both nodes back on Redis');
    // Routing across nodes again: a command from B to the device on A, telemetry from B to A's watcher.
    await op.publishAsync('device/dev-1/down/rpc', '{"id":7,"method":"get_properties","params":[]}', { qos: 1 });
    await until(() => commands.some((c) => c.includes('"id":7')), 10_000, 'a command across nodes after the restart');
    await pub.publishAsync('lab/telemetry', 'after');
    await until(() => seenA.includes('after') && seenB.includes('after'), 10_000, 'telemetry across nodes after the restart');
    // What B took in during the outage never reached A; B's watcher had it all.
    expect(seenA).toEqual(['before', 'after']);
    expect(seenB).toEqual(['before', 'during-1', 'during-2', 'during-3', 'after']);
    // CONNECTs are served again, and Redis kept its data: nothing was reset.
    track(await connectTcp(b, { clientId: 'dev-2', username: 'dev-2', password: 'dev-2-token', clean: false }));
    for (const n of [a, b]) expect(n.clusterHealth()).toMatchObject({ up: true, outages: 1, resets: 0 });
    expect(b.clusterHealth()!.downSeconds).toBeGreaterThan(0);
  });

  it('a node closes promptly while Redis is away (its connections are dropped, not left waiting to QUIT)', { timeout: 30_000 }, async () => {
    const a = await EmbeddedBroker.start({ operatorToken: 'op-token', mqttPort: 0, cluster: { url: `${redis.url}/5` } });
    const restarting = redis.restart({ keepData: true, downMs: 6000 });
    try {
      await until(() => a.clusterHealth()?.up === false, 10_000, 'the node to notice Redis is gone');
      const t0 = Date.now();
      await a.close();
      expect(Date.now() - t0).toBeLessThan(1500);
    } finally {
      await restarting;
    }
  });

  it('serve --cluster --platform stops on Ctrl-C within seconds while Redis is away', { timeout: 45_000 }, async () => {
    assertBuilt();
    const [served] = await serveClusterNodes(track, `${redis.url}/6`, { platform: `${redis.url}/7`, count: 1 });
    const child = served!.child;
    const restarting = redis.restart({ keepData: true, downMs: 10_000 });
    try {
      await waitForStderr(child, /cluster store unreachable, retrying/);
      const t0 = Date.now();
      child.kill('SIGINT');
      const end = await finish(child, 15_000);
      const took = Date.now() - t0;
      expect(end.code, end.stderr).toBe(0);
      // Connections not open are dropped, not sent a QUIT to wait for (before: about 3 s, the last
      // of it ioredis' own 2 s wait for dropped sockets to say they closed).
      expect(took, end.stderr).toBeLessThan(1500);
    } finally {
      await restarting;
    }
  });

  it('Redis killed and restarted empty: the nodes (serve --cluster) log the outage and the loss, /metrics counts it, live sessions go on, stored ones are gone', { timeout: 45_000 }, async () => {
    assertBuilt();
    const served = await serveClusterNodes(track, `${redis.url}/2`);
    const nodes = served.map((n) => n.child);
    const ports = served.map((n) => n.port);
    const metricsUrls = served.map((n) => n.metricsUrl);
    // A persistent session on node 1 that stays connected, one that goes away, and a publisher on node 2.
    const live: string[] = [];
    const liveSub = track(await mqtt.connectAsync(`mqtt://127.0.0.1:${ports[0]}`, { clientId: 'lab-live', clean: false, reconnectPeriod: 0 }));
    liveSub.on('message', (_t, p) => { live.push(p.toString()); });
    await liveSub.subscribeAsync('lab/events', { qos: 1 });
    const stored = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports[0]}`, { clientId: 'lab-stored', clean: false, reconnectPeriod: 0 });
    await stored.subscribeAsync('lab/events', { qos: 1 });
    await stored.endAsync();
    const pub = track(await mqtt.connectAsync(`mqtt://127.0.0.1:${ports[1]}`, { clientId: 'lab-pub', reconnectPeriod: 0 }));
    await pub.publishAsync('lab/events', 'before', { qos: 1 });
    await until(() => live.includes('before'), 10_000, 'a message across nodes');

    await redis.restart({ keepData: false, downMs: 1000 });
    for (const n of nodes) {
      await waitForStderr(n, /cluster store unreachable, retrying/);
      await waitForStderr(n, /cluster store back after \d+\.\d s/);
      await waitForStderr(n, /the cluster store came back without its data: retained messages, persistent sessions/);
    }
    for (const [i, m] of metricsUrls.entries()) {
      const text = await (await fetch(m)).text();
      const log = `node ${i + 1}'s log:\n${nodes[i]!.out.stderr}`;
      expect(metricSample(text, 'aiot_sim_cluster_store_up'), log).toBe(1);
      expect(metricSample(text, 'aiot_sim_cluster_store_outages_total'), log).toBe(1);
      expect(metricSample(text, 'aiot_sim_cluster_store_resets_total'), log).toBe(1);
      expect(metricSample(text, 'aiot_sim_cluster_store_down_seconds_total')).toBeGreaterThan(0);
    }
    // The connected session still gets what is published at the other node.
    await pub.publishAsync('lab/events', 'after', { qos: 1 });
    await until(() => live.includes('after'), 10_000, 'a message across nodes after Redis came back empty');
    // The stored session went with Redis' data: it resumes as a new one (no session present).
    const sessionPresent = await new Promise<boolean>((resolve, reject) => {
      const c = track(mqtt.connect(`mqtt://127.0.0.1:${ports[0]}`, { clientId: 'lab-stored', clean: false, reconnectPeriod: 0 }));
      c.once('connect', (p) => resolve(p.sessionPresent));
      c.once('error', reject);
    });
    expect(sessionPresent).toBe(false);
    for (const n of nodes) n.kill('SIGINT');
    for (const n of nodes) expect((await finish(n, 15_000)).code).toBe(0);
  });

  it('Redis restarted mid-run under two nodes and two shards: the run ends, every device is back, and the reports say what the platform lost', { timeout: 120_000 }, async () => {
    assertBuilt();
    const cluster = `${redis.url}/3`;
    const platform = `${redis.url}/4`;
    const served = await serveClusterNodes(track, cluster, { platform });
    const nodes = served.map((n) => n.child);
    const urls = served.map((n) => n.url);
    const metricsUrls = served.map((n) => n.metricsUrl);
    const dir = await mkdtemp(join(tmpdir(), 'aiot-sim-redis-restart-'));
    track(() => rm(dir, { recursive: true, force: true }));
    const args = (k: number): string[] => ['run', 'scenarios/default.yaml', '--speed', '1200', '--duration', '6h', '--http-port', '0', '--shard', `${k}/2`,
      '--broker', urls.join(','), '--cluster', cluster, '--platform', platform, '--token', 'op-token', '--report', join(dir, `r${k}.json`)];
    const shards = [1, 2].map((k) => track(spawnCli(args(k))));
    // Once both shards run (on a busy machine one may start seconds after the other) and node 1
    // has taken in some traffic, Redis goes down (saving its data) for two seconds.
    for (const s of shards) await waitForStderr(s, /on your brokers/, 30_000);
    const published = async (): Promise<number> => metricSample(await (await fetch(metricsUrls[0]!)).text(), 'aiot_sim_messages_published_total');
    let seen = 0;
    while (seen < 100) {
      seen = await published();
      if (shards.some((s) => s.exitCode !== null)) throw new Error(`a shard ended before Redis was restarted: ${shards.map((s) => s.out.stderr).join('\n')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    await redis.restart({ keepData: true, downMs: 2000 });
    const ends = await Promise.all(shards.map((c) => finish(c, 60_000)));
    for (const e of ends) expect(e.code, e.stderr).toBe(0);
    for (const n of nodes) await waitForStderr(n, /cluster store back after/);
    const r = JSON.parse(await readFile(join(dir, 'r1.json'), 'utf8')) as RunReport;
    expect(r.platform.connections.online).toBe(53);
    const store = r.platformStore!;
    const counted = r.platform.messages.byKind['event_occured'] ?? 0;
    expect(store.eventsNotCounted).toBe(store.eventsSent! - counted);
    const health = await Promise.all(metricsUrls.map(async (m) => {
      const text = await (await fetch(m)).text();
      return ['outages_total', 'unrouted_messages_total', 'refused_connects_total', 'resets_total'].map((k) => metricSample(text, k.startsWith('out') || k.startsWith('res') ? `aiot_sim_cluster_store_${k}` : `aiot_sim_cluster_${k}`));
    }));
    process.stderr.write(`Redis restarted mid-run: events sent ${store.eventsSent}, counted ${counted}, not counted ${store.eventsNotCounted}, store ${JSON.stringify(store)}; nodes [outages, unrouted, refused, resets] ${JSON.stringify(health)}\n`);
    for (const h of health) expect([h[0], h[3]]).toEqual([1, 0]);
    for (const n of nodes) n.kill('SIGINT');
    for (const n of nodes) expect((await finish(n, 15_000)).code).toBe(0);
  });
});
