/** The bench's pure parts: options checked into a config (every problem named), and the report built from what was measured. */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog, type Catalog } from '../../src/catalog/catalog.js';
import { OptionsError } from '../../src/errors.js';
import { resolveBenchConfig, type BenchOptions } from '../../src/load/options.js';
import type { GeneratorStats, ProbeStats } from '../../src/load/protocol.js';
import { buildBenchReport, type BenchOutcome } from '../../src/load/report.js';
import { PACKAGE_ROOT } from '../../src/paths.js';

let catalog: Catalog;
beforeAll(async () => { catalog = await loadCatalog(join(PACKAGE_ROOT, 'devices')); });

const resolve = (o: BenchOptions, cores = 2) => resolveBenchConfig(o, { catalog, cores, runId: 'abcd' });

function problemsOf(o: BenchOptions): Array<{ option: string; message: string }> {
  try {
    resolve(o);
  } catch (e) {
    expect(e).toBeInstanceOf(OptionsError);
    return (e as OptionsError).problems.map((p) => ({ option: p.option, message: p.message }));
  }
  throw new Error('no problem found');
}

describe('resolveBenchConfig', () => {
  it('fills in the documented defaults against the embedded broker', () => {
    const c = resolve({});
    expect(c).toMatchObject({
      devices: 100, workers: 1, qos: 0, rate: 1000, durationMs: 10_000, warmupMs: 2000, rampPerSecond: 0, payloadSize: 0,
      eventShare: 0.05, reconnectJitterMs: 1000, drainMs: 5000, inflight: 100, seed: 1, runId: 'abcd', replyTopic: null, waitMs: 0, slo: [],
      target: { kind: 'embedded', transport: 'tcp', host: '127.0.0.1', mqttPort: 0, wsPort: null },
    });
    expect(c.models.length).toBeGreaterThan(5);
    expect(c.models).toEqual([...c.models].sort());
    for (const m of c.models) expect(catalog.get(m)!.transport).toBe('wifi');
    expect(c.payloadBytes.min).toBeGreaterThan(100);
    expect(c.payloadBytes.max).toBeGreaterThanOrEqual(c.payloadBytes.min);
    expect(resolve({}, 8).workers).toBe(2);
    expect(resolve({ devices: 1, workers: 4 }).workers).toBe(1); // never more threads than devices
  });

  it('turns a per-device rate into the total, and parses an external broker URL', () => {
    expect(resolve({ devices: 20, ratePerDevice: 5 }).rate).toBe(100);
    expect(resolve({ broker: 'ws://10.0.0.5:8083', username: 'u' }).target).toEqual({
      kind: 'external', target: { transport: 'ws', host: '10.0.0.5', port: 8083, path: '/mqtt' }, url: 'ws://10.0.0.5:8083/mqtt', username: 'u',
    });
    expect(resolve({ transport: 'ws' }).target).toMatchObject({ kind: 'embedded', transport: 'ws', wsPort: 0 });
  });

  it('names every problem at once, each with its option and value', () => {
    expect(problemsOf({ devices: 0, workers: 65, eventShare: 2, qos: 2 as 0, durationMs: 0, seed: -1, replyTopic: 'a/#/b' })).toEqual([
      { option: 'devices', message: 'expected an integer from 1 to 1000000' },
      { option: 'qos', message: 'expected 0 or 1 (bench speaks MQTT 3.1.1 and generates no QoS 2)' },
      { option: 'workers', message: 'expected an integer from 1 to 64' },
      { option: 'replyTopic', message: 'expected an MQTT topic filter ("#" must be a whole level and the last one)' },
      { option: 'durationMs', message: 'expected a positive duration' },
      { option: 'eventShare', message: 'expected a share from 0 to 1' },
      { option: 'seed', message: 'expected a non-negative integer' },
    ]);
    let err: unknown;
    try { resolve({ devices: 0 }); } catch (e) { err = e; }
    expect((err as Error).message).toBe('devices: expected an integer from 1 to 1000000, got 0');
  });

  it('refuses options of the other kind of broker, and unusable models', () => {
    expect(problemsOf({ broker: 'mqtt://h:1', mqttPort: 0, host: 'x' }).map((p) => p.option)).toEqual(['host', 'mqttPort']);
    expect(problemsOf({ password: 'p' })).toEqual([{ option: 'password', message: expect.stringContaining('is for an external broker ({broker})') }]);
    expect(problemsOf({ rate: 1, ratePerDevice: 1 })).toEqual([{ option: 'ratePerDevice', message: 'excludes {rate}: give one of them' }]);
    expect(problemsOf({ models: [] })).toEqual([{ option: 'models', message: 'none given' }]);
    expect(problemsOf({ models: ['no.such.model'] })[0]!.message).toMatch(/unknown device model "no.such.model"/);
    expect(problemsOf({ broker: 'http://x' })[0]).toEqual({ option: 'broker', message: expect.stringContaining('unsupported scheme "http:"') });
    expect(problemsOf({ broker: 'mqtt://h:1', password: 'p' })).toEqual([{ option: 'password', message: 'needs {username}: MQTT 3.1.1 sends no password without a user name (MQTT-3.1.2-22)' }]);
    expect(resolve({ broker: 'mqtt://h:1', username: 'u', password: 'p' }).target).toMatchObject({ kind: 'external', username: 'u', password: 'p' });
    expect(problemsOf({ brokerPid: 42 })).toEqual([{ option: 'brokerPid', message: expect.stringContaining('is for an external broker ({broker})') }]);
    expect(problemsOf({ broker: 'mqtt://h:1', brokerPid: -1 })).toEqual([{ option: 'brokerPid', message: 'expected a process id (a positive integer)' }]);
  });
});

describe('buildBenchReport', () => {
  const gen: GeneratorStats = {
    sent: 1200, sentMeasured: 1000, notSent: 8, notSentWhy: { late: 1, backedUp: 0, windowFull: 7 }, notSentMeasured: 3, notSentWhyMeasured: { late: 1, backedUp: 0, windowFull: 2 }, connectOk: 10, connectFailed: 1, disconnects: 0, connected: 10, acked: 0, inflight: 0,
    connectMaxMs: 12.345, connectCpuSeconds: 0.004, connectErrors: { refused: 1 }, droppedRanges: [],
  };
  const probe: ProbeStats = { received: 990, receivedAll: 1190, duplicates: 2, foreign: 4, negative: 0, lostOnDroppedConnections: 4, interval: { received: 5, p99Us: null } };
  const outcome = (over: Partial<BenchOutcome> = {}): BenchOutcome => ({
    config: resolve({ devices: 10, rate: 500, durationMs: 2000, warmupMs: 500, slo: [{ term: 'loss=0', metric: 'loss', op: '=', value: 0, percent: false }] }),
    startedAt: new Date('2026-11-26T00:00:00Z'), wallSeconds: 4.2, target: { broker: 'embedded', url: 'mqtt://127.0.0.1:1', transport: 'tcp' },
    connectSeconds: 0.25, generatorConnectCpu: null, generators: gen, probe, latencyUs: { count: 990, p50: 1500, p90: 2500, p99: 9000, p999: 9900, max: 9800, mean: 1700.4 },
    timeline: [], broker: null, utilization: { broker: null, probe: 0.1, generators: [0.2] }, brokerCpu: null, ...over,
  });

  it('derives loss, rates and latency in ms from the raw figures, and checks the SLO', () => {
    const r = buildBenchReport(outcome());
    expect(r.messages).toEqual({ sent: 1000, received: 990, lost: 10, lostOnDroppedConnections: 4, duplicates: 2, lossRatio: 0.01, notSent: 3, notSentWhy: { late: 1, backedUp: 0, windowFull: 2 }, notSentWarmup: 5, acked: 0 });
    expect(r.rate).toEqual({ target: 500, sent: 500, received: 495 });
    expect(r.connections).toMatchObject({ devices: 10, succeeded: 10, failed: 1, connectSeconds: 0.25, connectRate: 40, slowestConnectMs: 12.3 });
    // Percentiles above the exact maximum (HDR bucket edges) are clamped to it.
    expect(r.latencyMs).toEqual({ count: 990, p50: 1.5, p90: 2.5, p99: 9, p999: 9.8, max: 9.8, mean: 1.7 });
    expect(r.config).toMatchObject({ ratePerDevice: 50, durationSeconds: 2, warmupSeconds: 0.5, measure: 'broker', replyTopic: null });
    expect(r.slo).toMatchObject({ passed: false, checks: [{ term: 'loss=0', actual: 10, passed: false }] });
    expect(r.broker).toBeNull();
    expect(r.brokerCpu).toBeNull();
    expect(r.startedAt).toBe('2026-11-26T00:00:00.000Z');
  });

  it("gives the generator's CPU time per connection when it is known", () => {
    expect(buildBenchReport(outcome()).connections.generatorCpuMicrosPerConnection).toBeNull();
    expect(buildBenchReport(outcome({ generatorConnectCpu: { seconds: 0.004, connections: 10 } })).connections.generatorCpuMicrosPerConnection).toBe(400);
    expect(buildBenchReport(outcome({ generatorConnectCpu: { seconds: 0.004, connections: 0 } })).connections.generatorCpuMicrosPerConnection).toBeNull();
  });

  it("gives the broker's CPU time per message sent when it is known", () => {
    expect(buildBenchReport(outcome({ brokerCpu: { connectSeconds: 0.003, connections: 10, trafficSeconds: 0.006 } })).brokerCpu)
      .toEqual({ seconds: 0.01, messages: 1200, microsPerMessage: 5, connectSeconds: 0, connections: 10, microsPerConnection: 300 });
  });

  it('reports the embedded broker with heap per connection', () => {
    const r = buildBenchReport(outcome({
      broker: {
        counters: { published: 1200, delivered: 1190, rejected: 0 }, overload: { shedQos0: 0, shedQos1: 0, delayedQos1: 0, slowEpisodes: 0, maxBacklogBytes: 0 },
        emitter: { maxQueued: 3, waited: 0 }, heapBefore: 1_000_000, heapConnected: 1_100_000, heapMax: 2e6, rssMax: 5e7, aliveAfter: true,
      },
    }));
    expect(r.broker!.memory).toEqual({ heapUsedBeforeBytes: 1_000_000, heapUsedConnectedBytes: 1_100_000, heapBytesPerConnection: 10_000, heapUsedMaxBytes: 2e6, rssMaxBytes: 5e7 });
    expect(r.broker).toMatchObject({ published: 1200, delivered: 1190, emitter: { maxQueued: 3, waited: 0 }, aliveAfter: true });
  });
});
