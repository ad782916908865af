/**
 * `aiot-sim record` and `aiot-sim replay` with real parts: a simulation's traffic on its embedded
 * broker recorded by the real command (operator credentials), replayed into the embedded broker
 * and into a real Mosquitto, watched by real MQTT subscribers; a `--trace` file replayed as is;
 * bad files refused with the line named; Ctrl-C on record loses nothing.
 *
 * Timing: a replay at 10x of a recording of about 10 s is checked message by message against it:
 * at least 80 % of the messages arrive within 150 ms of (their recorded offset / 10), and the pace
 * as a whole (a robust slope of replayed against recorded offsets) is 1/10 within 25 %. Bounds for
 * a shared 2-core machine: on a quiet one every message is within 40 ms; under a load average of
 * 14 a starved event loop let a few go out 300+ ms late, and with six more busy processes (load 22)
 * 93-99 % were within 150 ms at a pace of 0.089-0.098. A replay that ignored the timing (all
 * within ~50 ms), or played at 5x or 20x (a pace of 0.2 or 0.05), misses them.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDeviceTopic } from '../../src/contract/wire.js';
import { runReplay } from '../../src/replay/replay.js';
import type { ReplayReport } from '../../src/replay/report.js';
import { createSimulation } from '../../src/sim/simulation.js';
import { assertBuilt, finish, runCli, spawnCli, waitForStderr } from '../helpers/cli.js';
import { useCleanup } from '../helpers/cleanup.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { tcpUrl, until } from '../helpers/mqtt.js';
import { tinyScenario } from '../helpers/scenario.js';

/** How far a replayed message may arrive from its scaled recorded time ... */
const TIMING_TOLERANCE_MS = 150;
/** ... for at least this share of the messages (a starved event loop delays a few in bursts). */
const ON_TIME_SHARE = 0.8;
/** The pace as a whole (replayed / recorded time) within this fraction of 1/speed. */
const PACE_TOLERANCE = 0.25;

/**
 * How a replay kept time. `pace`: the Theil-Sen slope of replayed against recorded offsets (the
 * median of the slopes between messages at least 2 s apart in the recording; robust to a few late
 * ones). `onTime`: the share of messages within TIMING_TOLERANCE_MS of their scaled recorded
 * offset, measured from the median error (so the first message's own delay does not count against
 * every other).
 */
function timing(pairs: Array<{ recorded: number; replayed: number }>, speed: number): { pace: number; onTime: number } {
  const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };
  const slopes: number[] = [];
  for (let i = 0; i < pairs.length; i++) {
    for (let j = i + 1; j < pairs.length; j++) {
      const dr = pairs[j]!.recorded - pairs[i]!.recorded;
      if (Math.abs(dr) >= 2000) slopes.push((pairs[j]!.replayed - pairs[i]!.replayed) / dr);
    }
  }
  const errors = pairs.map((p) => p.replayed - p.recorded / speed);
  const m = median(errors);
  return { pace: median(slopes), onTime: errors.filter((e) => Math.abs(e - m) <= TIMING_TOLERANCE_MS).length / errors.length };
}

interface Line { ts: number; topic: string; payload: string; qos: 0 | 1 | 2; retain?: boolean; encoding?: string }
interface Arrival { topic: string; payload: string; qos: number; at: number }

const readLines = (file: string): Line[] => readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
/** The device of a topic, in either wire profile (`device/{did}/...`, `appMsg/notify/iot/{did}/...`). */
const didOf = (topic: string): string => parseDeviceTopic(topic)?.did ?? topic.split('/')[1]!;

/**
 * Per device and QoS, its messages in the order they came. Replay sends each device's messages in
 * recorded order on one session; a broker keeps that order per QoS level (MQTT's ordered topics),
 * but may let a QoS 0 message overtake a QoS 1 one (both Aedes and Mosquitto do).
 */
function byDevice(items: Array<{ topic: string; payload: string; qos: number }>): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const { topic, payload, qos } of items) {
    // A device's own messages go out on its session and keep their order; commands to it go out on
    // the session of everything else, and MQTT orders nothing across two publishers' sessions.
    const key = `${didOf(topic)} QoS ${qos}${topic.includes('/down/') ? ' commands' : ''}`;
    m.set(key, [...(m.get(key) ?? []), `${topic} ${payload}`]);
  }
  return m;
}

/** A subscriber that keeps everything it gets, with its arrival time (performance.now()). */
async function watch(url: string, filter: string): Promise<{ client: MqttClient; got: Arrival[] }> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4 });
  const got: Arrival[] = [];
  client.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), qos: packet.qos, at: performance.now() }));
  await client.subscribeAsync(filter, { qos: 2 });
  return { client, got };
}

let dir: string;
/** A recording of a simulation's device traffic, made by `aiot-sim record` against the simulation's own broker. */
let recording: string;
let recorded: Line[];

beforeAll(async () => {
  assertBuilt();
  dir = await mkdtemp(join(tmpdir(), 'aiot-record-'));
  recording = join(dir, 'run.ndjson');
  // A small, lively population at 600x: ten virtual minutes a second; ten seconds recorded.
  const sim = await createSimulation({
    scenario: tinyScenario({ homes: 4, mix: { 'yeelink.light.mono6': 1, 'lumi.sensor_motion.v2': 2, 'lumi.sensor_ht.agl02': 2, speaker: 1 }, devicesPerHome: { '4': 1 } }),
    speed: 600, broker: { mqttPort: 0, wsPort: null },
  });
  try {
    const rec = spawnCli(['record', '--broker', tcpUrl(sim.broker), '--username', 'operator', '--password', sim.operatorToken,
      '--topic', 'device/#', '--duration', '10s', '--out', recording]);
    const end = await finish(rec, 30_000);
    expect(end.code, end.stderr).toBe(0);
    expect(end.stderr).toMatch(/aiot-sim record: recording device\/# from mqtt:\/\/127\.0\.0\.1:\d+ to .*run\.ndjson for 10 s/);
    expect(end.stderr).toMatch(/aiot-sim record: \d+ messages \(\d[\d,]* bytes\) in \d+(\.\d+)? s, written to /);
  } finally {
    await sim.stop();
  }
  recorded = readLines(recording);
}, 60_000);

afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('aiot-sim record', () => {
  const track = useCleanup();

  it('captured the run as NDJSON in the --trace format, with receive times, QoS and the retained states', () => {
    const summary = `${recorded.length} messages: ${recorded.slice(0, 3).map((l) => JSON.stringify(l)).join(' ')} ... ${JSON.stringify(recorded.at(-1))}`;
    expect(recorded.length, summary).toBeGreaterThan(60);
    for (const l of recorded) {
      expect(Object.keys(l).filter((k) => !['ts', 'topic', 'payload', 'qos', 'retain'].includes(k))).toEqual([]);
      expect(l.topic).toMatch(/^device\/[^/]+\//);
      expect(() => JSON.parse(l.payload)).not.toThrow();
    }
    for (let i = 1; i < recorded.length; i++) expect(recorded[i]!.ts).toBeGreaterThanOrEqual(recorded[i - 1]!.ts);
    const span = recorded.at(-1)!.ts - recorded[0]!.ts;
    expect(span, summary).toBeGreaterThan(7000); // traffic over the whole recording, not one burst
    expect(span, summary).toBeLessThan(11_000);
    const kinds = new Set(recorded.map((l) => l.topic.split('/')[2] === 'state' ? 'state' : l.topic.split('/')[3]));
    expect(kinds).toContain('state');
    expect(kinds).toContain('properties_changed');
    // Retained states come first, as the subscription delivered them; events are QoS 1, readings QoS 0.
    expect(recorded[0], summary).toMatchObject({ qos: 1, retain: true });
    expect(recorded.filter((l) => l.topic.includes('/up/event_occured/')).every((l) => l.qos === 1)).toBe(true);
    expect(recorded.filter((l) => l.topic.includes('/up/properties_changed/')).every((l) => l.qos === 0)).toBe(true);
  });

  it('flushes as it goes, and Ctrl-C loses nothing it received', async () => {
    const mosq = track(await startMosquitto());
    const file = join(dir, 'ctrl-c.ndjson');
    const rec = track(spawnCli(['record', '--broker', mosq.url, '--topic', 'test/#', '--out', file]));
    await waitForStderr(rec, /recording test\/# from/);
    const pub = track(await mqtt.connectAsync(mosq.url, { reconnectPeriod: 0 }));
    for (let i = 0; i < 50; i++) await pub.publishAsync(`test/${i % 5}`, JSON.stringify({ i }), { qos: 1 });
    // While it runs, every message is on disk already (no buffering until exit).
    await until(() => readFileSync(file, 'utf8').split('\n').filter(Boolean).length === 50, 10_000, 'the 50 messages in the file while recording');
    for (let i = 50; i < 300; i++) pub.publish(`test/${i % 5}`, Buffer.from([0xff, i & 0xff]), { qos: i % 2 as 0 | 1 });
    await pub.endAsync();
    rec.kill('SIGINT');
    const end = await finish(rec, 15_000);
    expect(end.code, end.stderr).toBe(0);
    const count = Number(/aiot-sim record: ([\d,]+) messages/.exec(end.stderr)![1]!.replace(/,/g, ''));
    const lines = readLines(file);
    expect(lines.length).toBe(count);
    expect(count).toBeGreaterThanOrEqual(50);
    expect(lines.slice(0, 50).map((l) => JSON.parse(l.payload) as { i: number }).map((p) => p.i)).toEqual([...Array(50).keys()]);
    // Binary payloads are kept as base64; each line is whole.
    for (const l of lines.slice(50)) expect(l).toMatchObject({ encoding: 'base64' });
  });

  it('says why it cannot record: wrong credentials, an unreachable broker', async () => {
    const sim = await createSimulation({ scenario: tinyScenario({ homes: 1, mix: { plug: 1 }, devicesPerHome: { '1': 1 } }), speed: 'manual', broker: { mqttPort: 0, wsPort: null } });
    try {
      const wrong = await runCli(['record', '--broker', tcpUrl(sim.broker), '--username', 'operator', '--password', 'not-the-token', '--out', join(dir, 'x.ndjson')]);
      expect(wrong.code).toBe(1);
      expect(wrong.stderr).toMatch(/aiot-sim record: broker mqtt:\/\/127\.0\.0\.1:\d+: .*(Bad username or password|Not authorized)/i);
    } finally {
      await sim.stop();
    }
    const closed = await runCli(['record', '--broker', 'mqtt://127.0.0.1:1', '--out', join(dir, 'w.ndjson')]);
    expect(closed.code).toBe(1);
    expect(closed.stderr).toMatch(/aiot-sim record: broker mqtt:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
    const usage = await runCli(['record', '--broker', 'http://x', '--out', join(dir, 'y.ndjson')]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--broker: unsupported scheme "http:"');
    const none = await runCli(['record', '--out', join(dir, 'z.ndjson')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('record needs --broker');
    const passwordOnly = await runCli(['record', '--broker', 'mqtt://127.0.0.1:1', '--password', 'p', '--out', join(dir, 'p.ndjson')]);
    expect(passwordOnly.code).toBe(2);
    expect(passwordOnly.stderr).toContain('--password needs --username');
  });
});

describe('aiot-sim replay', () => {
  const track = useCleanup();

  it('replays the recording at 10x into the embedded broker: complete, in order per device, QoS kept, on time', async () => {
    let sub: Awaited<ReturnType<typeof watch>> | null = null;
    const report = await runReplay({
      // The subscriber reads everything as recorded (by default anonymous clients get telemetry and states without the owner's uid).
      file: recording, speed: 10, anonymous: 'all',
      onBroker: async ({ url, embedded }) => {
        expect(embedded).toBe(true);
        sub = await watch(url, 'device/#');
        track(sub.client);
      },
    });
    const got = sub!.got;
    await until(() => got.length >= recorded.length, 10_000, 'every replayed message at the subscriber');
    expect(got.length).toBe(recorded.length);
    expect(byDevice(got)).toEqual(byDevice(recorded));
    const qosOf = new Map(recorded.map((l) => [`${l.topic} ${l.payload}`, l.qos]));
    for (const a of got) expect(a.qos).toBe(qosOf.get(`${a.topic} ${a.payload}`));
    // Timing: each message at its recorded offset / 10 after the first.
    const r0 = recorded[0]!.ts;
    const order = new Map<string, number[]>();
    recorded.forEach((l, i) => order.set(`${l.topic} ${l.payload}`, [...(order.get(`${l.topic} ${l.payload}`) ?? []), i]));
    const pairs = got.map((a) => {
      const i = order.get(`${a.topic} ${a.payload}`)!.shift()!;
      return { recorded: recorded[i]!.ts - r0, replayed: a.at - got[0]!.at };
    });
    const t = timing(pairs, 10);
    const seen = `pace ${t.pace.toFixed(4)}, ${(t.onTime * 100).toFixed(1)} % within ${TIMING_TOLERANCE_MS} ms; replay's own lateness ${JSON.stringify(report.latenessMs)}`;
    expect(t.pace, seen).toBeGreaterThan(0.1 * (1 - PACE_TOLERANCE));
    expect(t.pace, seen).toBeLessThan(0.1 * (1 + PACE_TOLERANCE));
    expect(t.onTime, seen).toBeGreaterThanOrEqual(ON_TIME_SHARE);
    expect(report).toMatchObject({
      tool: 'aiot-sim replay', version: 1, target: { broker: 'embedded' },
      config: { speed: 10, loops: 1, rewriteDid: null, measure: 'sent', replyTopic: null },
      messages: { scheduled: recorded.length, sent: recorded.length, notSent: 0, skipped: 0, received: null },
      probe: null, slo: null,
    });
    expect(report.recording).toMatchObject({ messages: recorded.length, devices: new Set(recorded.map((l) => didOf(l.topic))).size, backwards: 0 });
    expect(report.messages.byQos[0] + report.messages.byQos[1]).toBe(recorded.length);
    expect(report.messages.acked).toBe(report.messages.byQos[1]);
    expect(report.rate.scheduled).toBeCloseTo(recorded.length / ((recorded.at(-1)!.ts - r0) / 10_000), 0);
    const l = report.latenessMs!;
    expect(l.count).toBe(recorded.length);
    expect(l.p50!).toBeGreaterThanOrEqual(0);
    expect(l.p50!).toBeLessThanOrEqual(l.p99!);
    expect(l.p99!).toBeLessThanOrEqual(l.max!);
    expect(report.connections.failed).toBe(0);
  });

  it('replays into Mosquitto from the command line, and a --trace file as is (of the central hub\'s wire profile)', async () => {
    const trace = join(dir, 'trace.ndjson');
    const sim = await createSimulation({
      scenario: tinyScenario({ homes: 3, mix: { 'xiaomi.aircondition.mc4': 1, 'lumi.sensor_magnet.v2': 2, speaker: 1 }, devicesPerHome: { '3': 1 } }),
      speed: 'fast', duration: '3h', broker: { mqttPort: 0, wsPort: null }, traceFile: trace, wire: 'local-hub',
    });
    const run = await sim.finished;
    const lines = readLines(trace);
    expect(lines.length).toBe(run.traceMessages);
    expect(lines.some((l) => l.topic.startsWith('appMsg/notify/iot/'))).toBe(true);
    expect(lines.every((l) => l.qos === 0 || l.qos === 1)).toBe(true);
    expect(lines.filter((l) => l.topic.endsWith('/state')).every((l) => l.retain === true && l.qos === 1)).toBe(true);

    const mosq = track(await startMosquitto());
    const sub = await watch(mosq.url, '#');
    track(sub.client);
    const reportFile = join(dir, 'mosq.json');
    const res = await runCli(['replay', trace, '--broker', mosq.url, '--fast', '--report', reportFile, '--quiet'], { timeoutMs: 60_000 });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('## aiot-sim replay:');
    await until(() => sub.got.length >= lines.length, 15_000, 'the whole trace at the subscriber');
    expect(sub.got.length).toBe(lines.length);
    expect(byDevice(sub.got)).toEqual(byDevice(lines));
    const report = JSON.parse(readFileSync(reportFile, 'utf8')) as ReplayReport;
    expect(report).toMatchObject({ target: { broker: 'external', url: mosq.url }, config: { speed: 'fast' }, latenessMs: null, rate: { scheduled: null } });
    expect(report.messages.sent).toBe(lines.length);
    expect(report.messages.byQos).toEqual({ 0: lines.filter((l) => l.qos === 0).length, 1: lines.filter((l) => l.qos === 1).length, 2: 0 });
    // The states were replayed retained: a new subscriber gets each device's last one from Mosquitto.
    const late = await watch(mosq.url, 'device/+/state');
    track(late.client);
    const devices = new Set(lines.filter((l) => l.topic.endsWith('/state')).map((l) => l.topic));
    await until(() => late.got.length >= devices.size, 5000, 'the retained states');
    expect(new Set(late.got.map((a) => a.topic))).toEqual(devices);
  });

  it('stands one recording for many devices (--rewrite-did), loops, and measures the round trip through a consumer', async () => {
    let sub: Awaited<ReturnType<typeof watch>> | null = null;
    const report = await runReplay({
      file: recording, speed: 'fast', loops: 2, rewriteDid: 3, replyTopic: 'consumer/reply/#', anonymous: 'all',
      onBroker: async ({ url }) => {
        sub = await watch(url, 'device/#');
        track(sub.client);
        // The consumer under test: republishes what it reads, payload unchanged.
        const consumer = track(await mqtt.connectAsync(url, { reconnectPeriod: 0 }));
        consumer.on('message', (topic, payload) => consumer.publish(`consumer/reply/${didOf(topic)}`, payload, { qos: 1 }));
        await consumer.subscribeAsync('device/#', { qos: 1 });
      },
    });
    const n = recorded.length * 2 * 3;
    expect(report.messages).toMatchObject({ scheduled: n, sent: n, received: n, lost: 0, duplicates: 0, lossRatio: 0, unmeasured: 0 });
    expect(report.config).toMatchObject({ loops: 2, rewriteDid: 3, measure: 'round-trip', replyTopic: 'consumer/reply/#' });
    expect(report.latencyMs.count).toBe(n);
    expect(report.latencyMs.p50!).toBeGreaterThanOrEqual(0);
    expect(report.latencyMs.p99!).toBeLessThanOrEqual(report.latencyMs.max!);
    expect(report.probe).toEqual({ foreign: 0, negativeLatencies: 0 });
    const got = sub!.got;
    await until(() => got.length >= n, 10_000, 'every copy at the subscriber');
    // Three copies of each device, none of them the recorded one, each did the shape of its original.
    const originals = new Set(recorded.map((l) => didOf(l.topic)));
    const replayed = new Set(got.map((a) => didOf(a.topic)));
    expect(replayed.size).toBe(originals.size * 3);
    for (const d of replayed) expect(originals.has(d)).toBe(false);
    const shape = (d: string): string => d.replace(/[0-9a-f]/g, 'x');
    expect(new Set([...replayed].map(shape))).toEqual(new Set([...originals].map(shape)));
    // Each copy of a device plays its recorded messages twice, in order, its own did in its payloads.
    for (const [key, msgs] of byDevice(got)) {
      const did = key.split(' ')[0]!;
      expect(msgs.length % 2).toBe(0);
      for (const m of msgs) expect(m).not.toMatch(new RegExp([...originals].map((o) => `"${o.replace(/\./g, '\\.')}"`).join('|')));
      const payloads = msgs.map((m) => m.slice(m.indexOf(' ') + 1).replace(/,"bench":\{[^}]*\}\}$/, '}'));
      expect(payloads.slice(0, payloads.length / 2)).toEqual(payloads.slice(payloads.length / 2));
      // Telemetry and states name their device (RPC replies may not: an error reply has no did).
      for (const m of msgs.filter((x) => !x.startsWith(`device/${did}/up/rpc `))) expect(m.slice(m.indexOf(' ') + 1)).toContain(`"${did}"`);
    }
  });

  it('gates on --slo like bench, and refuses latency terms without a consumer to answer', async () => {
    const mosq = track(await startMosquitto());
    const consumer = track(await mqtt.connectAsync(mosq.url, { reconnectPeriod: 0 }));
    consumer.on('message', (_topic, payload) => consumer.publish('reply', payload));
    await consumer.subscribeAsync('device/#', { qos: 1 });
    const ok = await runCli(['replay', recording, '--broker', mosq.url, '--fast', '--reply-topic', 'reply', '--slo', 'loss=0,dups=0,p99<10s'], { timeoutMs: 60_000 });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/\| `loss=0` \| 0 \| pass \|/);
    const strict = await runCli(['replay', recording, '--broker', mosq.url, '--fast', '--reply-topic', 'reply', '--slo', 'max<1us'], { timeoutMs: 60_000 });
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(/aiot-sim replay: SLO violated: max<1us \(measured [\d.]+\)/);
    const noReply = await runCli(['replay', recording, '--broker', mosq.url, '--slo', 'p99<50ms']);
    expect(noReply.code).toBe(2);
    expect(noReply.stderr).toContain('--slo: p99 is measured on a consumer\'s replies: give --reply-topic');
    const policy = await runCli(['replay', recording, '--broker', mosq.url, '--anonymous', 'all']);
    expect(policy.code).toBe(2);
    expect(policy.stderr).toContain('--anonymous: configures the embedded broker; your broker (--broker) has its own rules');
  });

  it('refuses a bad file before sending anything, naming each bad line', async () => {
    const bad = join(dir, 'bad.ndjson');
    await writeFile(bad, `${readFileSync(recording, 'utf8').split('\n').slice(0, 3).join('\n')}\n{"ts":1,"topic":"device/x/state"}\nnot json\n`);
    const res = await runCli(['replay', bad, '--fast']);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('aiot-sim replay: bad recording, nothing was sent:');
    expect(res.stderr).toMatch(/bad\.ndjson: line 4: payload: expected a string, got nothing/);
    expect(res.stderr).toMatch(/bad\.ndjson: line 5: not JSON \(/);
    const missing = await runCli(['replay', join(dir, 'missing.ndjson')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/missing\.ndjson: no such file/);
    const usage = await runCli(['replay', recording, '--fast', '--speed', '2']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--fast and --speed exclude each other');
  });
});
