/**
 * aiot-sim broker nodes clustered through a real Redis (Aedes' mqemitter-redis and
 * aedes-persistence-redis): a command published at one node reaches a device connected to the
 * other, a persistent session resumes on another node with its queued QoS 1 messages, retained
 * messages are everyone's, and a node killed with SIGKILL is recovered from by moving to another.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import type { RunReport } from '../../src/sim/report.js';
import { useCleanup } from '../helpers/cleanup.js';
import { assertBuilt, finish, runCli, spawnCli, waitForStderr } from '../helpers/cli.js';
import { connectTcp, nextMessage, until } from '../helpers/mqtt.js';
import { serveClusterNodes } from '../helpers/cluster-nodes.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let redis: RedisServer;
beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => { await redis?.stop(); });

describe('broker nodes clustered on Redis', () => {
  const track = useCleanup();

  /** Two `serve --cluster --platform` nodes (the real command), ready; their MQTT URLs. */
  async function startNodes(cluster: string, platform: string): Promise<{ nodes: Array<ReturnType<typeof spawnCli>>; urls: string[] }> {
    const served = await serveClusterNodes(track, cluster, { platform });
    return { nodes: served.map((n) => n.child), urls: served.map((n) => n.url) };
  }

  async function node(db: number): Promise<EmbeddedBroker> {
    const b = await EmbeddedBroker.start({ operatorToken: 'op-token', mqttPort: 0, cluster: { url: `${redis.url}/${db}` } });
    track(() => b.close());
    // Both nodes know the device's credentials (each node's own access directory here).
    b.access.registerDevice('dev-1', { token: 'dev-1-token', uid: 'u1', members: [], children: [] });
    return b;
  }

  it('delivers a command published at node B to a device on node A, and resumes its session on B with what was queued', { timeout: 60_000 }, async () => {
    const [a, b] = [await node(7), await node(7)];
    const device = { clientId: 'dev-1', username: 'dev-1', password: 'dev-1-token', clean: false, reconnectPeriod: 0 } as const;
    const onA = track(await connectTcp(a, device));
    await onA.subscribeAsync('device/dev-1/down/rpc', { qos: 1 });
    const operator = track(await connectTcp(b, { username: 'operator', password: 'op-token', reconnectPeriod: 0 }));
    const got = nextMessage(onA, (t) => t === 'device/dev-1/down/rpc', 10_000);
    await operator.publishAsync('device/dev-1/down/rpc', '{"id":1,"method":"get_properties","params":[]}', { qos: 1 });
    expect((await got).payload).toContain('"id":1');

    // The device goes away; three commands are queued for its persistent session, in Redis.
    await onA.endAsync();
    for (const id of [2, 3, 4]) await operator.publishAsync('device/dev-1/down/rpc', `{"id":${id},"method":"get_properties","params":[]}`, { qos: 1 });
    // Aedes acknowledges a QoS 1 PUBLISH before it queues and routes it: the commands are queued
    // once node B has published them (its count), not when the operator has its PUBACKs. A device
    // resuming before that gets the late ones live as well as from the queue (QoS 1: at least once).
    await until(() => b.counters.published >= 4, 10_000, 'node B to queue and route the commands');
    const ids: number[] = [];
    const onB = mqtt.connect(`mqtt://127.0.0.1:${b.mqttAddress!.port}`, device);
    track(onB);
    onB.on('message', (_t, p) => { ids.push((JSON.parse(p.toString()) as { id: number }).id); });
    await until(() => ids.length >= 3, 10_000, 'the queued commands on node B');
    expect(ids).toEqual([2, 3, 4]);
  });

  it('a client id connecting at node B closes its session at node A (the takeover between nodes is kept)', { timeout: 30_000 }, async () => {
    const [a, b] = [await node(15), await node(15)];
    const device = { clientId: 'dev-1', username: 'dev-1', password: 'dev-1-token', reconnectPeriod: 0 } as const;
    const onA = track(await connectTcp(a, device));
    let closedAtA = false;
    onA.on('close', () => { closedAtA = true; });
    const onB = track(await connectTcp(b, device));
    await until(() => closedAtA, 10_000, 'node A to close the session node B took over');
    expect(onB.connected).toBe(true);
  });

  it('a persistent session resuming while messages for it flow gets its CONNACK first, then them', { timeout: 30_000 }, async () => {
    const [a, b] = [await node(14), await node(14)];
    const sub = { clientId: 'lab-resume', clean: false, reconnectPeriod: 0, protocolVersion: 4 } as const;
    const first = track(await connectTcp(a, sub));
    await first.subscribeAsync('lab/flow', { qos: 1 });
    await first.endAsync();
    // A publisher at node B keeps the topic busy while the session resumes at node A, again and again.
    const pub = track(await connectTcp(b, { reconnectPeriod: 0 }));
    let flowing = true;
    const flow = (async () => { for (let i = 0; flowing; i++) await pub.publishAsync('lab/flow', String(i), { qos: 1 }); })();
    try {
      for (let round = 0; round < 10; round++) {
        const firstPacket: string[] = [];
        const c = mqtt.connect(`mqtt://127.0.0.1:${a.mqttAddress!.port}`, sub);
        c.once('packetreceive', (p) => { firstPacket.push(p.cmd); });
        track(c);
        let got = 0;
        c.on('message', () => { got++; });
        // Before the fix Aedes wrote a live PUBLISH before the CONNACK: MQTT.js never connected.
        await until(() => firstPacket.length > 0, 5000, `round ${round}: a first packet from node A`);
        expect(firstPacket, `round ${round}: the first packet`).toEqual(['connack']);
        await until(() => c.connected, 5000, `round ${round}: the session connected`);
        await until(() => got > 0, 10_000, `round ${round}: messages on the resumed session`);
        await c.endAsync();
      }
    } finally {
      flowing = false;
      await flow;
    }
  });

  it('a persistent session\'s SUBSCRIBE naming several topics is answered, and each topic routed from the other node', { timeout: 30_000 }, async () => {
    const [a, b] = [await node(5), await node(5)];
    const sub = track(await connectTcp(a, { clientId: 'lab-multi', clean: false }));
    const got: string[] = [];
    sub.on('message', (t, p) => { got.push(`${t}=${p.toString()}`); });
    // Aedes stores the whole packet's subscriptions once per topic; each store waited for its own
    // broadcast through Redis under one key, and all but one waited for ever: no SUBACK.
    const granted = await sub.subscribeAsync({ 'lab/one': { qos: 1 }, 'lab/two': { qos: 1 }, 'lab/three': { qos: 0 } });
    expect(granted.map((g) => [g.topic, g.qos])).toEqual([['lab/one', 1], ['lab/two', 1], ['lab/three', 0]]);
    const pub = track(await connectTcp(b));
    for (const t of ['one', 'two', 'three']) await pub.publishAsync(`lab/${t}`, t, { qos: 1 });
    await until(() => got.length >= 3, 10_000, 'a message on each topic across nodes');
    expect(got.sort()).toEqual(['lab/one=one', 'lab/three=three', 'lab/two=two']);
  });

  it('messages from one node that arrive out of order are all delivered, and overlapping subscriptions still get one copy', { timeout: 30_000 }, async () => {
    const [a, b] = [await node(6), await node(6)];
    const sub = track(await connectTcp(a, { clientId: 'lab-order', clean: false }));
    const got: string[] = [];
    sub.on('message', (_t, p) => { got.push(p.toString()); });
    // 'lab/slow' has a persistent QoS 1 subscription: node B queues each message for it in Redis
    // before routing it. 'lab/fast' has only a QoS 0 one: routed at once, so it overtakes the slow
    // one published just before it. Aedes kept the highest counter seen and dropped the slow one.
    await sub.subscribeAsync({ 'lab/slow': { qos: 1 }, 'lab/+': { qos: 0 } });
    const pub = track(await connectTcp(b));
    const sent: Array<Promise<unknown>> = [];
    for (let i = 0; i < 10; i++) sent.push(pub.publishAsync('lab/slow', `slow-${i}`, { qos: 1 }), pub.publishAsync('lab/fast', `fast-${i}`, { qos: 1 }));
    await Promise.all(sent);
    await until(() => b.counters.published >= 20, 10_000, 'node B to route the 20 messages');
    const expected = Array.from({ length: 10 }, (_, i) => [`slow-${i}`, `fast-${i}`]).flat().sort();
    await until(() => got.length >= 20, 10_000, 'the 20 messages at node A');
    // And no copy for 'lab/slow' matching both subscriptions: a last message proves nothing more came.
    await pub.publishAsync('lab/fast', 'end', { qos: 1 });
    await until(() => got.includes('end'), 10_000, 'the last message');
    expect(got.filter((m) => m !== 'end').sort()).toEqual(expected);
  });

  it('a node whose Redis does not answer, or lacks the database, refuses to start and names cluster.url', { timeout: 30_000 }, async () => {
    const refusal = (url: string) => EmbeddedBroker.start({ operatorToken: 'op-token', mqttPort: 0, cluster: { url } }).then(
      async (b) => { await b.close(); return null; },
      (e: unknown) => e as { code?: string; message: string },
    );
    // Nothing listens on port 1: the node used to retry there for ever, and start() never returned.
    const gone = await refusal('redis://127.0.0.1:1');
    expect(gone?.code).toBe('E_REDIS');
    expect(gone?.message).toContain('cluster.url redis://127.0.0.1:1: cannot reach Redis');
    // A database the server does not have (16 of 0-15) was database 0 without a word.
    const none = await refusal(`${redis.url}/16`);
    expect(none?.code).toBe('E_OPTIONS');
    expect(none?.message).toContain(`cluster.url ${redis.url}/16: Redis has no database 16`);
    // The option's name is the caller's to give (serve says --cluster).
    const named = await EmbeddedBroker.start({ operatorToken: 'op-token', mqttPort: 0, cluster: { url: `${redis.url}/16`, option: '--cluster' } }).then(() => null, (e: unknown) => e as Error);
    expect(named?.message).toContain(`--cluster ${redis.url}/16: Redis has no database 16`);
  });

  it('serves a retained message taken in at one node from every node', { timeout: 30_000 }, async () => {
    const [a, b] = [await node(8), await node(8)];
    const pub = track(await connectTcp(a, { reconnectPeriod: 0 }));
    await pub.publishAsync('lab/setpoint', '21', { qos: 1, retain: true });
    const sub = track(await connectTcp(b, { reconnectPeriod: 0 }));
    const got = nextMessage(sub, (t) => t === 'lab/setpoint', 10_000);
    await sub.subscribeAsync('lab/setpoint', { qos: 1 });
    expect((await got).payload).toBe('21');
  });

  it('a node killed with SIGKILL: its clients move to the other node and their sessions resume', { timeout: 90_000 }, async () => {
    assertBuilt();
    const url = `${redis.url}/9`;
    const serve = (): ReturnType<typeof spawnCli> => track(spawnCli(['serve', '--cluster', url, '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0', '--token', 'op-token']));
    const [n1, n2] = [serve(), serve()];
    const port = async (n: ReturnType<typeof spawnCli>): Promise<number> => Number((await waitForStderr(n, /broker mqtt:\/\/127\.0\.0\.1:(\d+)/))[1]);
    const [p1, p2] = [await port(n1), await port(n2)];
    await waitForStderr(n1, /a node of the broker cluster on redis:\/\/127\.0\.0\.1/);
    // An anonymous persistent session (topics outside the reserved prefixes), on node 1, node 2 next.
    const received: string[] = [];
    const sub = mqtt.connect(`mqtt://127.0.0.1:${p1}`, {
      clientId: 'lab-sub', clean: false, reconnectPeriod: 200, protocolVersion: 4,
      servers: [{ host: '127.0.0.1', port: p1 }, { host: '127.0.0.1', port: p2 }],
    });
    track(sub);
    sub.on('message', (_t, p) => { received.push(p.toString()); });
    sub.on('error', () => undefined);
    await new Promise<void>((resolve) => sub.once('connect', () => resolve()));
    await sub.subscribeAsync('lab/events', { qos: 1 });
    const pub = track(await mqtt.connectAsync(`mqtt://127.0.0.1:${p2}`, { clientId: 'lab-pub', reconnectPeriod: 0 }));
    await pub.publishAsync('lab/events', 'before', { qos: 1 });
    await until(() => received.includes('before'), 10_000, 'a message across nodes');

    n1.kill('SIGKILL');
    // Published while the subscriber has no node: queued for its session in Redis.
    for (const m of ['during-1', 'during-2']) await pub.publishAsync('lab/events', m, { qos: 1 });
    await until(() => received.includes('during-1') && received.includes('during-2'), 20_000, 'the queued messages on node 2');
    await pub.publishAsync('lab/events', 'after', { qos: 1 });
    await until(() => received.includes('after'), 10_000, 'live messages on node 2');
    expect(received.filter((m) => m !== 'before' && m !== 'after').sort()).toEqual(['during-1', 'during-2']);
    n2.kill('SIGINT');
    expect((await finish(n2, 15_000)).code).toBe(0);
  });

  it('two nodes, two shard processes and the platform on one Redis: the figures of the single-process run', { timeout: 180_000 }, async () => {
    assertBuilt();
    const cluster = `${redis.url}/10`;
    const platform = `${redis.url}/11`;
    const { nodes, urls } = await startNodes(cluster, platform);
    const base = ['run', 'scenarios/default.yaml', '--fast', '--duration', '6h', '--http-port', '0'];
    const dir = await mkdtemp(join(tmpdir(), 'aiot-sim-cluster-'));
    track(() => rm(dir, { recursive: true, force: true }));
    const single = await runCli([...base, '--mqtt-port', '0', '--ws-port', '0', '--report', join(dir, 'one.json')], { timeoutMs: 60_000 });
    expect(single.code, single.stderr).toBe(0);
    const shards = [1, 2].map((k) => track(spawnCli([...base, '--shard', `${k}/2`, '--broker', urls.join(','), '--cluster', cluster, '--platform', platform, '--token', 'op-token', '--report', join(dir, `s${k}.json`)])));
    const ends = await Promise.all(shards.map((c) => finish(c, 120_000)));
    for (const e of ends) expect(e.code, e.stderr).toBe(0);
    // The nodes count what they take in; the shards' own observers count nothing.
    expect(ends[0]!.stderr).toContain('platform counted by the broker nodes (at ingress)');
    const read = async (f: string): Promise<RunReport> => JSON.parse(await readFile(join(dir, f), 'utf8')) as RunReport;
    const one = (await read('one.json')).platform;
    const { byTransport: _a, ...oneConnections } = one.connections;
    for (const f of ['s1.json', 's2.json']) {
      const got = (await read(f)).platform;
      const { byTransport, ...connections } = got.connections;
      // The same devices online, by category, model and region; over TCP here, in-process in one process.
      expect(connections).toEqual(oneConnections);
      expect(Object.keys(byTransport).sort()).toEqual(['ble', 'tcp', 'zigbee']);
      // Commands from app users and voice crossed from node to node: the same replies, events and people.
      expect(got.messages).toEqual(one.messages);
      expect(got.activeUsers).toEqual(one.activeUsers);
      expect([got.dailyActiveDevices, got.speakerMau, got.appMau, got.ownersWithMoreThan5Devices]).toEqual([one.dailyActiveDevices, one.speakerMau, one.appMau, one.ownersWithMoreThan5Devices]);
    }
    for (const n of nodes) n.kill('SIGINT');
    for (const n of nodes) expect((await finish(n, 15_000)).code).toBe(0);
  });

  it('a node killed with SIGKILL mid-run: the shards\' devices move to the other node, and the run says what the platform lost', { timeout: 180_000 }, async () => {
    assertBuilt();
    const cluster = `${redis.url}/12`;
    const platform = `${redis.url}/13`;
    const { nodes, urls } = await startNodes(cluster, platform);
    const dir = await mkdtemp(join(tmpdir(), 'aiot-sim-cluster-kill-'));
    track(() => rm(dir, { recursive: true, force: true }));
    // Six virtual hours in about 18 s: node 1 goes a few seconds in.
    const args = (k: number): string[] => ['run', 'scenarios/default.yaml', '--speed', '1200', '--duration', '6h', '--http-port', '0', '--shard', `${k}/2`,
      '--broker', urls.join(','), '--cluster', cluster, '--platform', platform, '--token', 'op-token', '--report', join(dir, `k${k}.json`)];
    const shards = [1, 2].map((k) => track(spawnCli(args(k))));
    for (const s of shards) await waitForStderr(s, /your brokers/, 30_000);
    await new Promise((r) => setTimeout(r, 4000));
    nodes[0]!.kill('SIGKILL');
    const ends = await Promise.all(shards.map((c) => finish(c, 120_000)));
    for (const e of ends) expect(e.code, e.stderr).toBe(0);
    const r = JSON.parse(await readFile(join(dir, 'k1.json'), 'utf8')) as RunReport;
    // Every device came back (on node 2) and is online at the end, as node 2 counted.
    expect(r.platform.connections.online).toBe(53);
    // The report says exactly how many events the platform never counted: those node 1 had
    // taken in (and acknowledged) but not yet written to the store when it was killed. The
    // devices' own QoS 1 queues lose nothing: what was unacknowledged is sent again to node 2.
    const store = r.platformStore!;
    const counted = r.platform.messages.byKind['event_occured'] ?? 0;
    expect(store.eventsSent).toBeGreaterThan(0);
    expect(store.eventsNotCounted).toBe(store.eventsSent! - counted);
    expect((JSON.parse(await readFile(join(dir, 'k2.json'), 'utf8')) as RunReport).platformStore).toMatchObject({ eventsSent: store.eventsSent, eventsNotCounted: store.eventsNotCounted });
    process.stderr.write(`node killed mid-run: events sent ${store.eventsSent}, counted ${counted}, not counted ${store.eventsNotCounted}, missing (seq gaps) ${r.platform.messages.eventsMissing}\n`);
    nodes[1]!.kill('SIGINT');
    expect((await finish(nodes[1]!, 15_000)).code).toBe(0);
  });
});
