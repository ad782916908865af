/**
 * `aiot-sim bench` as a library call: drive a broker (the embedded one, or any MQTT 3.1.1 broker by
 * URL) with realistic Mijia device traffic from generator worker threads, measure it with a probe
 * worker, and return the report.
 *
 * Threads: the embedded broker (when used) runs on the calling thread, which otherwise only
 * aggregates stats once a second; generators and the probe each have their own worker thread.
 * Phases: connect (ramped) -> warm-up (traffic, not measured) -> measured window -> drain (wait
 * for stragglers, bounded) -> report.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { EmbeddedBroker } from '../broker/broker.js';
import type { OverloadOptions } from '../broker/overload.js';
import { loadCatalog, type Catalog } from '../catalog/catalog.js';
import { AiotSimError } from '../errors.js';
import { PACKAGE_ROOT, workerScript } from '../paths.js';
import { benchDid, buildTemplate, shapesOf, type MessageShape } from './payloads.js';
import {
  wallUs, type BenchDevice, type FromGenerator, type FromProbe, type GeneratorConfig, type GeneratorStats,
  type LatencySummaryUs, type ProbeConfig, type ProbeStats, type ToGenerator, type ToProbe,
} from './protocol.js';
import type { BenchReport, LatencyMs, TimelinePoint } from './report.js';
import { checkSlo, type SloTerm } from './slo.js';
import { parseBrokerUrl, targetUrl, WireClient, type WireTarget } from './wire.js';

export interface BenchOptions {
  /** External broker URL (mqtt://HOST:PORT or ws://HOST:PORT/PATH); absent: start the embedded broker. */
  broker?: string;
  /** Embedded broker: transport the devices and probe use. Default tcp. */
  transport?: 'tcp' | 'ws';
  /** Embedded broker: interface to bind. Default 127.0.0.1. */
  host?: string;
  /** Embedded broker TCP port (0 = any free one). Default 0. */
  mqttPort?: number;
  /** Embedded broker WebSocket port (0 = any); default: off unless transport is ws. */
  wsPort?: number | null;
  /** Embedded broker: Aedes delivery concurrency. Default 100. */
  concurrency?: number;
  /** Embedded broker: shedding bounds (see broker/overload.ts). */
  overload?: OverloadOptions;
  /** External broker credentials for devices and probe (default anonymous). */
  username?: string;
  password?: string;
  /** Device connections. Default 100. */
  devices?: number;
  /** Total message rate, msg/s (default 1000). Exclusive with ratePerDevice. */
  rate?: number;
  ratePerDevice?: number;
  qos?: 0 | 1;
  /** Measured time, ms. Default 10,000. */
  durationMs?: number;
  /** Traffic before measuring, ms. Default 2,000. */
  warmupMs?: number;
  /** Connections per second while connecting; 0 = as fast as possible. Default 0. */
  rampPerSecond?: number;
  /** Pad payloads to at least this many bytes. Default 0. */
  payloadSize?: number;
  /** Share of event_occured messages (0..1). Default 0.05. */
  eventShare?: number;
  /** Device models to draw devices from (round robin). Default: every Wi-Fi model of the catalogue. */
  models?: string[];
  /** A dropped connection reconnects after 50 ms + a random 0..this many ms. Default 1,000. */
  reconnectJitterMs?: number;
  /** Generator worker threads. Default 1 (2 on 4+ cores). */
  workers?: number;
  /** Measure the round trip through a consumer that republishes bench messages on this topic filter. */
  replyTopic?: string;
  /** Wait this long after the broker is up before connecting devices (time to start a consumer), ms. Default 0. */
  waitMs?: number;
  /** After the window, wait at most this long for messages still on their way, ms. Default 5,000. */
  drainMs?: number;
  /** QoS 1 PUBLISHes in flight per connection. Default 100. */
  inflight?: number;
  /** SLO terms checked into the report. */
  slo?: SloTerm[];
  seed?: number;
  catalog?: Catalog;
  /** Called once the embedded broker listens (or with the external URL). */
  onBroker?: (info: { url: string; mqttUrl: string | null; wsUrl: string | null; embedded: boolean }) => void;
  /** Called about once a second while running. */
  onProgress?: (p: BenchProgress) => void;
}

export interface BenchProgress {
  phase: 'connecting' | 'warm-up' | 'measuring' | 'draining';
  seconds: number;
  connected: number;
  devices: number;
  sendRate: number;
  receiveRate: number;
  p99Ms: number | null;
  /** Connect failures + dropped connections so far. */
  errors: number;
}

export class BenchError extends AiotSimError {
  constructor(message: string, kind: 'input' | 'environment' = 'input') { super(kind === 'input' ? 'E_BENCH_INPUT' : 'E_BENCH', kind, message); }
}

const DEFAULTS = { devices: 100, rate: 1000, durationMs: 10_000, warmupMs: 2000, reconnectJitterMs: 1000, drainMs: 5000, inflight: 100, eventShare: 0.05 };

function positiveInt(name: string, v: number | undefined, fallback: number, min = 1): number {
  const x = v ?? fallback;
  if (!Number.isInteger(x) || x < min) throw new BenchError(`${name}: expected an integer >= ${min}, got ${String(v)}`);
  return x;
}

/** A generator worker: its latest stats, and its answers to come. */
interface Running { worker: Worker; stats: GeneratorStats | null; connected: Promise<number>; stopped: Promise<GeneratorStats> | null }

function onceFrom<T>(w: Worker, pick: (m: FromGenerator | FromProbe) => T | undefined, what: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new BenchError(`${what}: no answer within ${Math.round(timeoutMs / 1000)} s`, 'environment')); }, timeoutMs);
    const onMsg = (m: FromGenerator | FromProbe): void => {
      if (m.type === 'fatal') { cleanup(); reject(new BenchError(`${what}: ${m.error}`, 'environment')); return; }
      const v = pick(m);
      if (v !== undefined) { cleanup(); resolve(v); }
    };
    const onExit = (code: number): void => { cleanup(); reject(new BenchError(`${what}: worker exited (${code})`, 'environment')); };
    const onError = (err: Error): void => { cleanup(); reject(new BenchError(`${what}: ${err.message}`, 'environment')); };
    const cleanup = (): void => { clearTimeout(timer); w.off('message', onMsg); w.off('exit', onExit); w.off('error', onError); };
    w.on('message', onMsg);
    w.once('exit', onExit);
    w.once('error', onError);
  });
}

function toMs(l: LatencySummaryUs | null): LatencyMs {
  if (!l) return { count: 0, p50: null, p90: null, p99: null, p999: null, max: null, mean: null };
  // HDR percentiles are the highest value equivalent to their bucket (3 significant digits), which
  // can lie a hair above the exact maximum: clamp so p50 <= ... <= p999 <= max always holds.
  const ms = (us: number): number => Math.round(Math.min(us, l.max)) / 1000;
  return { count: l.count, p50: ms(l.p50), p90: ms(l.p90), p99: ms(l.p99), p999: ms(l.p999), max: ms(l.max), mean: ms(l.mean) };
}

function sumStats(all: Array<GeneratorStats | null>): GeneratorStats {
  const s: GeneratorStats = { sent: 0, sentMeasured: 0, notSent: 0, connectOk: 0, connectFailed: 0, disconnects: 0, connected: 0, acked: 0, inflight: 0, connectMaxMs: 0, connectErrors: {} };
  for (const x of all) {
    if (!x) continue;
    s.sent += x.sent; s.sentMeasured += x.sentMeasured; s.notSent += x.notSent; s.connectOk += x.connectOk; s.connectFailed += x.connectFailed;
    s.disconnects += x.disconnects; s.connected += x.connected; s.acked += x.acked; s.inflight += x.inflight;
    s.connectMaxMs = Math.max(s.connectMaxMs, x.connectMaxMs);
    for (const [k, v] of Object.entries(x.connectErrors)) s.connectErrors[k] = (s.connectErrors[k] ?? 0) + v;
  }
  return s;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** A full GC before memory readings: global.gc when exposed, else enabled at run time (V8 allows it). */
let gcFn: (() => void) | null = null;
const gc = (): void => {
  if (!gcFn) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) gcFn = g;
    else {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    }
  }
  gcFn();
};

/** Run one bench and return its report. Throws BenchError on bad options or an unreachable broker. */
export async function runBench(o: BenchOptions = {}): Promise<BenchReport> {
  const startedAt = new Date();
  const t0 = performance.now();
  const devices = positiveInt('devices', o.devices, DEFAULTS.devices);
  if (o.rate !== undefined && o.ratePerDevice !== undefined) throw new BenchError('rate and rate-per-device exclude each other');
  const rate = o.ratePerDevice !== undefined ? o.ratePerDevice * devices : (o.rate ?? DEFAULTS.rate);
  if (!(rate > 0) || !Number.isFinite(rate)) throw new BenchError(`rate: expected a positive number of messages/s, got ${String(o.ratePerDevice ?? o.rate)}`);
  const qos = o.qos ?? 0;
  if (qos !== 0 && qos !== 1) throw new BenchError(`qos: expected 0 or 1, got ${String(qos)}`);
  const durationMs = o.durationMs ?? DEFAULTS.durationMs;
  const warmupMs = o.warmupMs ?? DEFAULTS.warmupMs;
  if (!(durationMs > 0)) throw new BenchError('duration: must be positive');
  if (!(warmupMs >= 0)) throw new BenchError('warmup: must be zero or positive');
  const workers = Math.min(devices, positiveInt('workers', o.workers, availableParallelism() >= 4 ? 2 : 1));
  const eventShare = o.eventShare ?? DEFAULTS.eventShare;
  if (!(eventShare >= 0 && eventShare <= 1)) throw new BenchError(`event share must be within 0..1, got ${eventShare}`);
  const payloadSize = o.payloadSize ?? 0;
  if (!Number.isInteger(payloadSize) || payloadSize < 0 || payloadSize > 256 * 1024) throw new BenchError(`payload-size: expected 0..262144 bytes, got ${payloadSize}`);
  const rampPerSecond = o.rampPerSecond ?? 0;
  if (!(rampPerSecond >= 0)) throw new BenchError(`ramp: expected connections/s >= 0, got ${rampPerSecond}`);
  const reconnectJitterMs = o.reconnectJitterMs ?? DEFAULTS.reconnectJitterMs;
  const drainMs = o.drainMs ?? DEFAULTS.drainMs;
  const inflight = positiveInt('inflight', o.inflight, DEFAULTS.inflight);
  const seed = o.seed ?? 1;

  const catalog = o.catalog ?? await loadCatalog(join(PACKAGE_ROOT, 'devices'));
  const modelNames = o.models ?? catalog.models.filter((m) => m.transport === 'wifi').map((m) => m.model).sort();
  const shapes: Record<string, { properties: MessageShape[]; events: MessageShape[] }> = {};
  for (const name of modelNames) {
    const m = catalog.get(name);
    if (!m) throw new BenchError(`models: unknown device model "${name}" (aiot-sim devices lists them)`);
    const s = shapesOf(m);
    if (s.properties.length + s.events.length === 0) throw new BenchError(`models: ${name} has no notify property or event to send`);
    shapes[name] = s;
  }
  if (modelNames.length === 0) throw new BenchError('models: none given');
  const runId = randomBytes(3).toString('base64url').slice(0, 4);
  let payloadMin = Infinity;
  let payloadMax = 0;
  for (const s of Object.values(shapes)) {
    for (const shape of [...s.properties, ...s.events]) {
      const len = buildTemplate(shape, runId, qos, payloadSize).buf.length;
      payloadMin = Math.min(payloadMin, len);
      payloadMax = Math.max(payloadMax, len);
    }
  }

  // ---- broker
  let embedded: EmbeddedBroker | null = null;
  let target: WireTarget;
  const transport = o.transport ?? 'tcp';
  if (o.broker !== undefined) {
    try {
      target = parseBrokerUrl(o.broker);
    } catch (e) {
      throw new BenchError(`broker: ${(e as Error).message}`);
    }
  } else {
    const host = o.host ?? '127.0.0.1';
    embedded = await EmbeddedBroker.start({
      host, mqttPort: o.mqttPort ?? 0, wsPort: o.wsPort ?? (transport === 'ws' ? 0 : null),
      operatorToken: randomBytes(16).toString('hex'), allowAnonymous: true,
      ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
      ...(o.overload ? { overload: o.overload } : {}),
    });
    const addr = transport === 'ws' ? embedded.wsAddress : embedded.mqttAddress;
    if (!addr) throw new BenchError(`the embedded broker has no ${transport} listener`, 'environment');
    target = { transport, host: addr.host, port: addr.port, path: transport === 'ws' ? '/mqtt' : '' };
  }
  const b = embedded;
  const mqttUrl = b?.mqttAddress ? `mqtt://${b.mqttAddress.host}:${b.mqttAddress.port}` : null;
  const wsUrl = b?.wsAddress ? `ws://${b.wsAddress.host}:${b.wsAddress.port}/mqtt` : null;
  const benchDevices: BenchDevice[] = [];
  for (let i = 0; i < devices; i++) {
    const did = benchDid(i);
    const model = modelNames[i % modelNames.length]!;
    if (b) {
      const token = randomBytes(12).toString('hex');
      b.access.registerDevice(did, { token, uid: String(1_900_000_000 + i) });
      benchDevices.push({ index: i, did, model, username: did, password: token });
    } else {
      benchDevices.push({
        index: i, did, model,
        ...(o.username !== undefined ? { username: o.username } : {}), ...(o.password !== undefined ? { password: o.password } : {}),
      });
    }
  }

  const probeWorkers: Worker[] = [];
  const gens: Running[] = [];
  let memMaxRss = 0;
  let heapMax = 0;
  const sampleMemory = (): void => {
    const m = process.memoryUsage();
    memMaxRss = Math.max(memMaxRss, m.rss);
    heapMax = Math.max(heapMax, m.heapUsed);
  };
  try {
    o.onBroker?.({ url: targetUrl(target), mqttUrl, wsUrl, embedded: b !== null });
    // ---- probe
    const probeCfg: ProbeConfig = {
      target, clientId: `aiot-bench-probe-${runId}`, filters: o.replyTopic ? [o.replyTopic] : ['device/+/up/#'], qos, runId, devices,
      ...(b ? {} : o.username !== undefined ? { username: o.username, password: o.password ?? '' } : {}),
    };
    const probe = new Worker(workerScript('load', 'probe-worker'), { workerData: probeCfg });
    probeWorkers.push(probe);
    let probeStats: ProbeStats | null = null;
    let probeError: string | null = null;
    probe.on('message', (m: FromProbe) => {
      if (m.type === 'stats' || m.type === 'finished') probeStats = m.stats;
      if (m.type === 'fatal') probeError = m.error;
    });
    probe.on('error', (err) => { probeError = err.message; });
    await onceFrom(probe, (m) => (m.type === 'ready' ? true : undefined), 'probe', 15_000);

    if (o.waitMs && o.waitMs > 0) await sleep(o.waitMs);
    gc();
    const heapBefore = process.memoryUsage().heapUsed;

    // ---- generators
    const perWorkerRamp = rampPerSecond / workers;
    for (let w = 0; w < workers; w++) {
      const mine = benchDevices.filter((d) => d.index % workers === w);
      const cfg: GeneratorConfig = {
        target, devices: mine, shapes, eventShare, qos, ratePerSecond: (rate * mine.length) / devices, rampPerSecond: perWorkerRamp,
        payloadSize, runId, reconnectJitterMs, inflight, maxBufferedBytes: 1 << 20, seed: seed * 7919 + w, keepalive: 60,
      };
      const worker = new Worker(workerScript('load', 'generator-worker'), { workerData: cfg });
      const run: Running = {
        worker, stats: null,
        connected: onceFrom(worker, (m) => (m.type === 'connected' ? (m as { seconds: number }).seconds : undefined), `generator ${w}`,
          30_000 + (rampPerSecond > 0 ? (devices / rampPerSecond) * 1000 : devices * 20)),
        stopped: null,
      };
      run.connected.catch(() => undefined); // awaited below with the others; one failing must not leave the rest unhandled
      worker.on('message', (m: FromGenerator) => { if (m.type === 'stats' || m.type === 'connected' || m.type === 'stopped') run.stats = m.stats; });
      gens.push(run);
    }
    const progress = (phase: BenchProgress['phase'], last: { sent: number; at: number }): void => {
      const s = sumStats(gens.map((g) => g.stats));
      const now = performance.now();
      const dt = Math.max(0.001, (now - last.at) / 1000);
      const ps = probeStats as ProbeStats | null;
      o.onProgress?.({
        phase, seconds: (now - t0) / 1000, connected: s.connected, devices, sendRate: (s.sent - last.sent) / dt,
        receiveRate: ps ? ps.interval.received / dt : 0, p99Ms: ps?.interval.p99Us != null ? ps.interval.p99Us / 1000 : null,
        errors: s.connectFailed + s.disconnects,
      });
      last.sent = s.sent;
      last.at = now;
    };
    const connectTicker = setInterval(() => progress('connecting', { sent: 0, at: performance.now() - 1000 }), 1000);
    let connectSeconds: number;
    try {
      // Each worker times its own ramp (from its first CONNECT), so thread start-up is not counted.
      connectSeconds = Math.max(...await Promise.all(gens.map((g) => g.connected)));
    } finally {
      clearInterval(connectTicker);
    }
    await sleep(50);
    gc();
    sampleMemory();
    const heapConnected = process.memoryUsage().heapUsed;

    // ---- traffic
    const startUs = wallUs();
    const fromUs = startUs + warmupMs * 1000;
    const untilUs = fromUs + durationMs * 1000;
    probe.postMessage({ type: 'window', fromUs, untilUs } satisfies ToProbe);
    for (const g of gens) {
      g.stopped = onceFrom(g.worker, (m) => (m.type === 'stopped' ? m.stats : undefined), 'generator', warmupMs + durationMs + 30_000);
      g.stopped.catch(() => undefined);
      g.worker.postMessage({ type: 'go', measureFromUs: fromUs, measureUntilUs: untilUs } satisfies ToGenerator);
    }
    const timeline: TimelinePoint[] = [];
    const last = { sent: 0, at: performance.now() };
    // Event-loop utilisation of every thread over the traffic: the one near 1 is what limits the rate.
    const eluStart = { main: performance.eventLoopUtilization(), probe: probe.performance.eventLoopUtilization(), gens: gens.map((g) => g.worker.performance.eventLoopUtilization()) };
    let eluEnd: typeof eluStart | null = null;
    let lastSentTl = 0;
    const ticker = setInterval(() => {
      sampleMemory();
      const s = sumStats(gens.map((g) => g.stats));
      const ps = probeStats as ProbeStats | null;
      timeline.push({
        second: timeline.length + 1, sent: s.sent - lastSentTl, received: ps?.interval.received ?? 0,
        p99Ms: ps?.interval.p99Us != null ? ps.interval.p99Us / 1000 : null, connected: s.connected,
        brokerHeapBytes: b ? process.memoryUsage().heapUsed : null,
      });
      lastSentTl = s.sent;
      progress(wallUs() < fromUs ? 'warm-up' : wallUs() < untilUs ? 'measuring' : 'draining', last);
    }, 1000);
    let finalGen: GeneratorStats;
    let latencyUs: LatencySummaryUs | null;
    let finalProbe: ProbeStats;
    try {
      finalGen = sumStats(await Promise.all(gens.map((g) => g.stopped!)));
      eluEnd = { main: performance.eventLoopUtilization(), probe: probe.performance.eventLoopUtilization(), gens: gens.map((g) => g.worker.performance.eventLoopUtilization()) };
      // ---- drain: until everything measured arrived, nothing moved for 1 s, or drainMs.
      const drainUntil = performance.now() + drainMs;
      let lastSeen = -1;
      let still = 0;
      while (performance.now() < drainUntil && probeError === null) {
        const r = (probeStats as ProbeStats | null)?.received ?? 0;
        if (r >= finalGen.sentMeasured) break;
        if (r === lastSeen) { if (++still >= 10) break; } else { still = 0; lastSeen = r; }
        await sleep(100);
      }
      if (probeError !== null) throw new BenchError(`probe: ${probeError}`, 'environment');
      const fin = onceFrom(probe, (m) => (m.type === 'finished' ? m : undefined), 'probe', 10_000);
      probe.postMessage({ type: 'finish' } satisfies ToProbe);
      const answer = await fin;
      latencyUs = answer.latencyUs;
      finalProbe = answer.stats;
    } finally {
      clearInterval(ticker);
    }
    if (probeError !== null) throw new BenchError(`probe: ${probeError}`, 'environment');
    // The last, partial second of the timeline (since the last tick).
    timeline.push({
      second: timeline.length + 1, sent: finalGen.sent - lastSentTl, received: finalProbe.interval.received,
      p99Ms: finalProbe.interval.p99Us != null ? finalProbe.interval.p99Us / 1000 : null, connected: finalGen.connected,
      brokerHeapBytes: b ? process.memoryUsage().heapUsed : null,
    });
    const elu = (a: { idle: number; active: number; utilization: number }, z: { idle: number; active: number; utilization: number }): number =>
      round(performance.eventLoopUtilization(z, a).utilization, 3);
    const e1 = eluEnd ?? eluStart;
    const utilization = {
      broker: b ? elu(eluStart.main, e1.main) : null,
      probe: elu(eluStart.probe, e1.probe),
      generators: eluStart.gens.map((g, i) => elu(g, e1.gens[i]!)),
    };
    const measuredSeconds = durationMs / 1000;

    // ---- close generators
    await Promise.all(gens.map(async (g) => {
      const closed = onceFrom(g.worker, (m) => (m.type === 'closed' ? true : undefined), 'generator close', 10_000).catch(() => false);
      g.worker.postMessage({ type: 'close' } satisfies ToGenerator);
      await closed;
    }));
    finalGen = { ...finalGen, connectOk: sumStats(gens.map((g) => g.stats)).connectOk, connectFailed: sumStats(gens.map((g) => g.stats)).connectFailed };

    let aliveAfter = false;
    if (b) {
      const c = await WireClient.connect(target, { clientId: `aiot-bench-check-${runId}`, timeoutMs: 5000 }).catch(() => null);
      aliveAfter = c !== null;
      c?.end();
    }
    sampleMemory();

    const lost = Math.max(0, finalGen.sentMeasured - finalProbe.received);
    const report: BenchReport = {
      tool: 'aiot-sim bench', version: 1, startedAt: startedAt.toISOString(), wallSeconds: Math.round(performance.now() - t0) / 1000,
      target: { broker: b ? 'embedded' : 'external', url: targetUrl(target), transport: target.transport },
      config: {
        devices, workers, qos, rate, ratePerDevice: rate / devices, durationSeconds: durationMs / 1000, warmupSeconds: warmupMs / 1000,
        rampPerSecond, payloadSize, payloadBytes: { min: payloadMin, max: payloadMax }, eventShare, models: modelNames, reconnectJitterMs,
        measure: o.replyTopic ? 'round-trip' : 'broker', replyTopic: o.replyTopic ?? null,
      },
      connections: {
        devices, succeeded: finalGen.connectOk, failed: finalGen.connectFailed, disconnects: finalGen.disconnects,
        connectSeconds: round(connectSeconds, 3), connectRate: round(devices / Math.max(connectSeconds, 0.001), 1),
        slowestConnectMs: round(finalGen.connectMaxMs, 1), errors: finalGen.connectErrors,
      },
      messages: {
        sent: finalGen.sentMeasured, received: finalProbe.received, lost, duplicates: finalProbe.duplicates,
        lossRatio: finalGen.sentMeasured > 0 ? lost / finalGen.sentMeasured : null, notSent: finalGen.notSent, acked: finalGen.acked,
      },
      rate: { target: rate, sent: round(finalGen.sentMeasured / measuredSeconds, 1), received: round(finalProbe.received / measuredSeconds, 1) },
      latencyMs: toMs(latencyUs),
      timeline,
      broker: b ? {
        published: b.counters.published, delivered: b.counters.delivered, rejected: b.counters.rejected,
        overload: { ...b.overload.stats },
        emitter: { maxQueued: b.emitterStats.maxQueued, waited: b.emitterStats.waited },
        memory: {
          heapUsedBeforeBytes: heapBefore, heapUsedConnectedBytes: heapConnected,
          heapBytesPerConnection: Math.round((heapConnected - heapBefore) / devices), heapUsedMaxBytes: heapMax, rssMaxBytes: memMaxRss,
        },
        aliveAfter,
      } : null,
      probe: { foreign: finalProbe.foreign, negativeLatencies: finalProbe.negative },
      utilization,
      slo: null,
    };
    if (o.slo && o.slo.length) report.slo = checkSlo(o.slo, { latencyMs: report.latencyMs, messages: report.messages, rate: report.rate, connections: report.connections });
    return report;
  } finally {
    await Promise.all([...gens.map((g) => g.worker), ...probeWorkers].map((w) => w.terminate().catch(() => 0)));
    await embedded?.close();
  }
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}
