/**
 * `aiot-sim bench` end to end with real parts: generator and probe worker threads, the embedded
 * broker or a real Mosquitto, real consumers. No timing assertions about speed: rates are modest
 * and the checks are about correctness (fields, loss, duplicates, sane histograms, exit codes).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Writable } from 'node:stream';
import mqtt from 'mqtt';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { runBench } from '../../src/load/bench.js';
import type { BenchReport } from '../../src/load/report.js';
import { benchDid } from '../../src/load/payloads.js';
import { assertBuilt, runCli } from '../helpers/cli.js';
import { useCleanup } from '../helpers/cleanup.js';
import { startMosquitto } from '../helpers/mosquitto.js';

beforeAll(() => assertBuilt()); // worker threads run the compiled dist/load/*.js

function expectSaneLatency(r: BenchReport): void {
  const l = r.latencyMs;
  expect(l.count).toBe(r.messages.received);
  for (const k of ['p50', 'p90', 'p99', 'p999', 'max', 'mean'] as const) expect(l[k]).toBeTypeOf('number');
  expect(l.p50!).toBeGreaterThanOrEqual(0);
  expect(l.p50!).toBeLessThanOrEqual(l.p90!);
  expect(l.p90!).toBeLessThanOrEqual(l.p99!);
  expect(l.p99!).toBeLessThanOrEqual(l.p999!);
  expect(l.p999!).toBeLessThanOrEqual(l.max! + 0.01);
  expect(l.max!).toBeLessThan(10_000); // a loopback message never takes 10 s at these rates
  expect(r.probe.negativeLatencies).toBe(0);
}

function expectNoLoss(r: BenchReport): void {
  expect(r.messages.sent).toBeGreaterThan(0);
  expect(r.messages.lost).toBe(0);
  expect(r.messages.duplicates).toBe(0);
  expect(r.messages.received).toBe(r.messages.sent);
  expect(r.messages.lossRatio).toBe(0);
}

describe('aiot-sim bench against the embedded broker', () => {
  const track = useCleanup();
  it('reports every documented field, zero loss at a modest rate and a sane latency histogram', async () => {
    const r = await runBench({ devices: 20, rate: 1000, durationMs: 2000, warmupMs: 500 });
    expect(Object.keys(r).sort()).toEqual(['broker', 'brokerCpu', 'config', 'connections', 'latencyMs', 'messages', 'probe', 'rate', 'slo', 'startedAt', 'target', 'timeline', 'tool', 'utilization', 'version', 'wallSeconds']);
    expect(r).toMatchObject({ tool: 'aiot-sim bench', version: 1, target: { broker: 'embedded', transport: 'tcp' }, slo: null });
    expect(r.config).toMatchObject({ devices: 20, qos: 0, rate: 1000, ratePerDevice: 50, durationSeconds: 2, warmupSeconds: 0.5, measure: 'broker', replyTopic: null, wire: 'cloud' });
    expect(r.config.models.length).toBeGreaterThan(5);
    expect(r.connections).toMatchObject({ devices: 20, succeeded: 20, failed: 0, disconnects: 0, errors: {} });
    expect(r.connections.connectRate).toBeGreaterThan(0);
    expectNoLoss(r);
    // The token bucket paces 1000 msg/s over 2 s: about 2000 in the window.
    expect(r.messages.sent).toBeGreaterThan(1500);
    expect(r.messages.sent).toBeLessThanOrEqual(2100);
    expectSaneLatency(r);
    expect(r.timeline.length).toBeGreaterThanOrEqual(2);
    expect(r.timeline.reduce((s, p) => s + p.sent, 0)).toBeGreaterThanOrEqual(r.messages.sent);
    const b = r.broker!;
    expect(b.aliveAfter).toBe(true);
    expect(b.rejected).toBe(0);
    expect(b.published).toBeGreaterThanOrEqual(r.messages.sent);
    expect(b.overload).toEqual({ shedQos0: 0, shedQos1: 0, delayedQos1: 0, slowEpisodes: 0, maxBacklogBytes: expect.any(Number) });
    expect(b.memory.heapBytesPerConnection).toBeTypeOf('number');
    expect(b.memory.rssMaxBytes).toBeGreaterThan(0);
    expect(r.timeline.every((p) => typeof p.brokerHeapBytes === 'number')).toBe(true);
    // Every thread's event-loop utilisation over the traffic, each within 0..1.
    expect(r.utilization.generators).toHaveLength(r.config.workers);
    for (const u of [r.utilization.broker!, r.utilization.probe, ...r.utilization.generators]) {
      expect(u).toBeGreaterThan(0);
      expect(u).toBeLessThanOrEqual(1);
    }
    // The broker thread's CPU time (Linux: /proc/thread-self), over every message sent.
    if (process.platform === 'linux') {
      expect(r.brokerCpu).toEqual({
        seconds: expect.any(Number), messages: expect.any(Number), microsPerMessage: expect.any(Number),
        connectSeconds: expect.any(Number), connections: 20, microsPerConnection: expect.any(Number),
      });
      expect(r.brokerCpu!.messages).toBeGreaterThanOrEqual(r.messages.sent);
      // The generator's side of connecting, from its own thread's CPU time (read in 10 ms ticks:
      // 20 connections may take less than one).
      expect(r.connections.generatorCpuMicrosPerConnection).toBeTypeOf('number');
      expect(r.connections.generatorCpuMicrosPerConnection).toBeGreaterThanOrEqual(0);
      expect(r.brokerCpu!.microsPerMessage).toBeCloseTo((r.brokerCpu!.seconds * 1e6) / r.brokerCpu!.messages, -1);
    }
  });

  it('runs QoS 1 over MQTT-over-WebSocket with padded payloads, a connection ramp and every PUBACK back', async () => {
    const r = await runBench({ devices: 10, rate: 500, qos: 1, transport: 'ws', payloadSize: 600, durationMs: 1500, warmupMs: 300, models: ['xiaomi.airc.r24r00', 'mibx5.washer.v7'], eventShare: 0.5, rampPerSecond: 20 });
    // The ramp starts device i at i/20 s: the last of 10 cannot connect before 0.45 s (a lower bound, not a speed claim).
    expect(r.connections.connectSeconds).toBeGreaterThanOrEqual(0.44);
    expect(r.config.rampPerSecond).toBe(20);
    expect(r.target.transport).toBe('ws');
    expect(r.target.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/mqtt$/);
    expect(r.config.payloadBytes.min).toBeGreaterThanOrEqual(600);
    expectNoLoss(r);
    expectSaneLatency(r);
    expect(r.messages.acked).toBeGreaterThanOrEqual(r.messages.sent);
    expect(r.connections.failed).toBe(0);
  });

  it('says why messages were not sent: a QoS 1 window of one unacknowledged PUBLISH fills at 4,000 msg/s over two connections', async () => {
    const r = await runBench({ devices: 2, rate: 4000, qos: 1, inflight: 1, durationMs: 1000, warmupMs: 200 });
    const why = r.messages.notSentWhy;
    expect(why.windowFull).toBeGreaterThan(0);
    expect(why.late + why.backedUp + why.windowFull).toBe(r.messages.notSent);
    // Counted over the measured window, as the other message figures; the warm-up's apart (it
    // fills as often, over a fifth of the time).
    expect(r.messages.notSentWarmup).toBeGreaterThan(0);
    expect(r.messages.notSentWarmup).toBeLessThan(r.messages.notSent);
    expectNoLoss(r);
  });

  it('speaks the central hub\'s format with wire "local-hub": a consumer of appMsg/notify/iot/# gets every message, flat', async () => {
    const seen: string[] = [];
    let checked = false;
    const r = await runBench({
      devices: 5, rate: 200, qos: 1, durationMs: 1000, warmupMs: 200, wire: 'local-hub', eventShare: 0.5,
      onBroker: (info) => {
        // A consumer of the hub's topics, next to the probe: it sees the format, not just the counts.
        const c = mqtt.connect(info.mqttUrl!, { protocolVersion: 4, reconnectPeriod: 0 });
        track(c);
        c.on('connect', () => { void c.subscribeAsync(['appMsg/notify/iot/#', 'device/#']); });
        c.on('message', (topic, payload) => {
          if (seen.length < 50) seen.push(topic);
          if (!checked && topic.startsWith('appMsg/')) {
            const body = JSON.parse(payload.toString()) as Record<string, unknown>;
            expect(body).not.toHaveProperty('params');
            expect(body).toMatchObject({ did: topic.split('/')[3], siid: expect.any(Number), ts: expect.any(Number) });
            checked = true;
          }
        });
      },
    });
    expect(r.config.wire).toBe('local-hub');
    expectNoLoss(r);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((t) => /^appMsg\/notify\/iot\/\d+\/(property|event)\/\d+\.\d+$/.test(t))).toBe(true);
    expect(checked).toBe(true);
  });

  it('refuses bad options with a message naming them', async () => {
    await expect(runBench({ wire: 'lan' as never })).rejects.toThrow('wire');
    await expect(runBench({ devices: 0 })).rejects.toThrow('devices');
    await expect(runBench({ rate: 10, ratePerDevice: 1 })).rejects.toThrow('exclude');
    await expect(runBench({ models: ['no.such.model'] })).rejects.toThrow('unknown device model "no.such.model"');
    await expect(runBench({ broker: 'http://x' })).rejects.toThrow('unsupported scheme');
  });
});

describe('aiot-sim bench against Mosquitto', () => {
  const track = useCleanup();

  it('measures a real Mosquitto with zero loss', async () => {
    const mosq = track(await startMosquitto());
    const r = await runBench({ broker: mosq.url, brokerPid: mosq.pid, devices: 20, rate: 1000, durationMs: 1500, warmupMs: 300 });
    expect(r.target).toEqual({ broker: 'external', url: mosq.url, transport: 'tcp' });
    expect(r.broker).toBeNull();
    // Mosquitto's own CPU time, read from /proc by its pid.
    if (process.platform === 'linux') expect(r.brokerCpu!.messages).toBeGreaterThanOrEqual(r.messages.sent);
    expectNoLoss(r);
    expectSaneLatency(r);
  });

  it('counts a dropped connection and reconnects it after the jitter', async () => {
    const m = track(await startMosquitto());
    // A client that takes over device 0's client id makes Mosquitto close the device's session.
    const takeOver = async (): Promise<void> => {
      const c = track(await mqtt.connectAsync(m.url, { clientId: benchDid(0), reconnectPeriod: 0, protocolVersion: 4 }));
      await c.endAsync();
    };
    let progressAfterTakeover = 0;
    let took = false;
    const r = await runBench({
      // A rate at which device 0 usually has messages in flight when its socket is closed.
      broker: m.url, devices: 5, rate: 5000, durationMs: 2000, warmupMs: 300, reconnectJitterMs: 200,
      onProgress: (p) => {
        if (p.phase === 'measuring' && !took) { took = true; void takeOver(); }
        if (took) progressAfterTakeover++;
      },
    });
    expect(took).toBe(true);
    expect(progressAfterTakeover).toBeGreaterThan(0);
    expect(r.connections.disconnects).toBeGreaterThanOrEqual(1);
    expect(r.connections.succeeded).toBeGreaterThanOrEqual(6); // 5 + at least one reconnect
    expect(r.timeline.at(-1)!.connected).toBe(5);
    // While device 0 was away its share was not sent (counted). What was sent arrived, except what
    // device 0 wrote in the moment Mosquitto closed its socket: those are lost with the connection,
    // and the report says so (they are the tail of the dropped connection's sequence numbers).
    expect(r.messages.notSent).toBeGreaterThan(0);
    const why = r.messages.notSentWhy;
    expect(why.backedUp).toBeGreaterThan(0);
    expect(why.late + why.backedUp + why.windowFull).toBe(r.messages.notSent);
    expect(r.messages.lost).toBe(r.messages.lostOnDroppedConnections);
    // At most what device 0 sends in a second (1,000 of 5,000/s): what was in flight at the drop.
    expect(r.messages.lostOnDroppedConnections).toBeLessThan(1000);
  });
});

describe('measuring a consumer: round trip through a reply topic', () => {
  const track = useCleanup();

  it('a consumer republishing device messages to bench/reply/... is measured end to end', async () => {
    let consumed = 0;
    const r = await runBench({
      devices: 10, rate: 300, durationMs: 1500, warmupMs: 500, replyTopic: 'bench/reply/#',
      onBroker: async ({ mqttUrl }) => {
        // The consumer under test: an ordinary MQTT client that subscribes to device telemetry and
        // republishes each message (payload unchanged) under bench/reply/<original topic>.
        const c = track(await mqtt.connectAsync(mqttUrl!, { reconnectPeriod: 0, protocolVersion: 4 }));
        c.on('message', (topic, payload) => { consumed++; c.publish(`bench/reply/${topic}`, payload, { qos: 0 }); });
        await c.subscribeAsync('device/+/up/#', { qos: 0 });
      },
      waitMs: 300,
    });
    expect(r.config).toMatchObject({ measure: 'round-trip', replyTopic: 'bench/reply/#' });
    expect(consumed).toBeGreaterThanOrEqual(r.messages.sent);
    expectNoLoss(r);
    expectSaneLatency(r);
  });
});

const CLIENTS = existsSync('/usr/bin/mosquitto_sub') && existsSync('/usr/bin/mosquitto_pub');

describe('the README worked example: mosquitto_sub | mosquitto_pub -l as the consumer', () => {
  const track = useCleanup();
  /** The shell and both clients are one process group (detached): end exactly that group. */
  const endGroup = (pipeline: ChildProcess) => (): void => {
    if (pipeline.pid && pipeline.exitCode === null) {
      try { process.kill(-pipeline.pid, 'SIGTERM'); } catch { /* already gone */ }
    }
  };

  // Needs the Debian package mosquitto-clients (the broker package alone has no clients).
  it.skipIf(!CLIENTS)('measures the round trip through the shell pipeline', async () => {
    const r = await runBench({
      devices: 10, rate: 200, durationMs: 1500, warmupMs: 1000, waitMs: 500, replyTopic: 'bench/reply',
      onBroker: ({ mqttUrl }) => {
        const port = new URL(mqttUrl!).port;
        const pipeline = spawn('sh', ['-c', `mosquitto_sub -h 127.0.0.1 -p ${port} -t 'device/+/up/#' | mosquitto_pub -h 127.0.0.1 -p ${port} -t bench/reply -l`],
          { detached: true, stdio: 'ignore' });
        track(endGroup(pipeline));
      },
    });
    expect(r.config.measure).toBe('round-trip');
    expectNoLoss(r);
    expectSaneLatency(r);
  });
});

describe('aiot-sim bench on the command line', () => {
  const small = ['bench', '--devices', '5', '--rate', '200', '--duration', '1s', '--warmup', '200ms', '--quiet'];

  it('exits 0 when every --slo term holds and prints the JSON report with --report -', async () => {
    const res = await runCli([...small, '--slo', 'loss=0,dups=0,connectFailures=0,p99<5s', '--report', '-'], { timeoutMs: 30_000 });
    expect(res.stderr).toMatch(/embedded broker mqtt:\/\/127\.0\.0\.1:\d+/);
    expect(res.code).toBe(0);
    const r = JSON.parse(res.stdout) as BenchReport;
    expect(r.slo?.passed).toBe(true);
    expect(r.slo?.checks.map((c) => c.metric)).toEqual(['loss', 'dups', 'connectFailures', 'p99']);
  });

  it('exits 1 when an --slo term is violated, naming it, and prints the Markdown table', async () => {
    const res = await runCli([...small, '--slo', 'loss=0,p50<0.0001ms'], { timeoutMs: 30_000 });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('SLO violated: p50<0.0001ms');
    expect(res.stdout).toContain('| latency (ms) | p50 | p90 | p99 | p99.9 | max | samples |');
    expect(res.stdout).toMatch(/\| `p50<0\.0001ms` \| [\d.]+ \| \*\*FAIL\*\* \|/);
  });

  it('holds a QoS 1 device to --inflight unacknowledged messages, counting the rest as "window full"', async () => {
    // One message in flight a device, and each 5 ms tick asks 5 of each: most are held back.
    const res = await runCli(['bench', '--devices', '2', '--rate', '2000', '--qos', '1', '--inflight', '1', '--duration', '1s', '--warmup', '200ms', '--quiet', '--report', '-'], { timeoutMs: 30_000 });
    expect(res.code).toBe(0);
    const r = JSON.parse(res.stdout) as BenchReport;
    expect(r.config.inflight).toBe(1);
    expect(r.messages.notSentWhy.windowFull).toBeGreaterThan(0);
    expect(r.messages.notSent).toBe(r.messages.notSentWhy.windowFull + r.messages.notSentWhy.late + r.messages.notSentWhy.backedUp);
    expect(r.messages.lost).toBe(0);
    expect(r.messages.sent).toBeGreaterThan(0);
  });

  it.each([
    [['--inflight', '0'], '--inflight'],
    [['--slo', 'p99<<5'], 'p99<<5'],
    [['--slo', 'p99<5ms,jitter<3'], 'unknown metric "jitter"'],
    [['--qos', '2'], '--qos'],
    [['--rate', 'fast'], '--rate'],
    [['--duration', 'soon'], '--duration'],
    [['--broker', 'mqtt://127.0.0.1:1', '--mqtt-port', '0'], '--mqtt-port'],
    [['--frobnicate'], 'frobnicate'],
  ])('exits 2 on a usage error: %j', async (args, needle) => {
    // In process (the same main() the binary runs): usage errors are caught before anything starts.
    let stderr = '';
    const sink = new Writable({ write(_c, _e, cb) { cb(); } });
    const errSink = new Writable({ write(c: Buffer, _e, cb) { stderr += c.toString(); cb(); } });
    expect(await main(['bench', ...args], sink, errSink)).toBe(2);
    expect(stderr).toContain(needle);
  });

  it('exits 1 naming the broker when it cannot be reached', async () => {
    const res = await runCli(['bench', '--broker', 'mqtt://127.0.0.1:1', '--quiet', '--devices', '1']);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/probe: .*(ECONNREFUSED|no connection)/);
  });
});
