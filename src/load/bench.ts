/**
 * `aiot-sim bench` as a library call: drive a broker (the embedded one, or any MQTT 3.1.1 broker by
 * URL) with realistic Mijia device traffic from generator worker threads, measure it with a probe
 * worker, and return the report.
 *
 * Threads: the embedded broker (when used) runs on the calling thread, which otherwise only
 * records the timeline once a second; generators and the probe each have their own worker thread.
 * Phases: connect (ramped) -> warm-up (traffic, not measured) -> measured window -> drain (until
 * every measured message arrived or none came for a second, bounded) -> report.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { EmbeddedBroker } from '../broker/broker.js';
import { HUB_PREFIX } from '../contract/wire.js';
import { loadCatalog } from '../catalog/catalog.js';
import { PACKAGE_ROOT } from '../paths.js';
import { GeneratorPool } from './generator-pool.js';
import { BenchMeter } from './meter.js';
import { resolveBenchConfig, type BenchConfig, type BenchOptions } from './options.js';
import { benchDid } from './payloads.js';
import { ProbeThread } from './probe-thread.js';
import { wallUs, type BenchDevice, type GeneratorConfig, type GeneratorStats, type ProbeConfig } from './protocol.js';
import { buildBenchReport, type BenchOutcome, type BenchReport } from './report.js';
import { BenchError, processCpuSeconds, threadCpuSeconds, utilisationBetween } from './thread.js';
import { targetUrl, WireClient, type WireTarget } from './wire.js';

export { BenchError } from './thread.js';
export type { BenchOptions, BenchProgress } from './options.js';

/** The drain ends when no measured message arrived for this long. */
const DRAIN_QUIET_MS = 1000;

/** The broker the run talks to, and the device accounts it uses there. */
interface Target {
  wire: WireTarget;
  embedded: EmbeddedBroker | null;
  devices: BenchDevice[];
  info: { url: string; mqttUrl: string | null; wsUrl: string | null; embedded: boolean };
}

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

/** Run one bench and return its report. Throws OptionsError on bad options, BenchError when the bench cannot run. */
export async function runBench(o: BenchOptions = {}): Promise<BenchReport> {
  const startedAt = new Date();
  const t0 = performance.now();
  const catalog = o.catalog ?? await loadCatalog(join(PACKAGE_ROOT, 'devices'));
  const cfg = resolveBenchConfig(o, { catalog, cores: availableParallelism(), runId: randomBytes(3).toString('base64url').slice(0, 4) });
  const target = await openTarget(cfg);
  const probe = new ProbeThread(probeConfig(cfg, target));
  const pool = new GeneratorPool(generatorConfigs(cfg, target), connectTimeoutMs(cfg));
  const meter = new BenchMeter({
    devices: cfg.devices, embedded: target.embedded !== null, t0, generators: () => pool.stats(), probe: () => probe.stats, onProgress: o.onProgress,
  });
  try {
    o.onBroker?.(target.info);
    await probe.start();
    if (cfg.waitMs > 0) await sleep(cfg.waitMs);
    const brokerCpu = brokerCpuReader(target, o.brokerPid);
    const conn = await connectDevices(pool, meter, brokerCpu);
    const cpuBefore = brokerCpu();
    const traffic = await runTraffic(cfg, pool, probe, meter);
    await probe.drain(traffic.generators.sentMeasured, DRAIN_QUIET_MS, cfg.drainMs);
    const cpuAfter = brokerCpu();
    const final = await probe.finish(traffic.generators.droppedRanges);
    meter.stop();
    meter.lastPoint(traffic.generators, final.stats);
    await pool.close();
    const afterClose = pool.stats();
    const generators = { ...traffic.generators, connectOk: afterClose.connectOk, connectFailed: afterClose.connectFailed };
    const b = target.embedded;
    const aliveAfter = b ? await acceptsClients(target.wire, cfg.runId) : false;
    meter.sampleMemory();
    return buildBenchReport({
      config: cfg, startedAt, wallSeconds: Math.round(performance.now() - t0) / 1000,
      target: { broker: b ? 'embedded' : 'external', url: targetUrl(target.wire), transport: target.wire.transport },
      connectSeconds: conn.connectSeconds, generatorConnectCpu: conn.generatorCpuSeconds === null ? null : { seconds: conn.generatorCpuSeconds, connections: conn.connections },
      generators, probe: final.stats, latencyUs: final.latencyUs, timeline: meter.timeline,
      broker: b && {
        counters: b.counters, overload: b.overload.stats, emitter: b.emitterStats, heapBefore: conn.before, heapConnected: conn.connected,
        heapMax: meter.memory.heapUsedMaxBytes, rssMax: meter.memory.rssMaxBytes, aliveAfter,
      },
      utilization: traffic.utilization,
      brokerCpu: cpuBefore === null || cpuAfter === null || conn.cpuSeconds === null ? null
        : { connectSeconds: conn.cpuSeconds, connections: conn.connections, trafficSeconds: cpuAfter - cpuBefore },
    });
  } finally {
    meter.stop();
    await Promise.all([pool.stop(), probe.stop()]);
    await target.embedded?.close();
  }
}

/** Start the embedded broker (and provision a device account per device) or point at the external one. */
async function openTarget(cfg: BenchConfig): Promise<Target> {
  const plan = cfg.target;
  if (plan.kind === 'external') {
    const creds = { ...(plan.username !== undefined ? { username: plan.username } : {}), ...(plan.password !== undefined ? { password: plan.password } : {}) };
    const devices = Array.from({ length: cfg.devices }, (_, i) => ({ index: i, did: benchDid(i), model: modelOf(cfg, i), ...creds }));
    return { wire: plan.target, embedded: null, devices, info: { url: plan.url, mqttUrl: null, wsUrl: null, embedded: false } };
  }
  const b = await EmbeddedBroker.start({
    host: plan.host, mqttPort: plan.mqttPort, wsPort: plan.wsPort, operatorToken: randomBytes(16).toString('hex'), allowAnonymous: true,
    ...(plan.concurrency !== undefined ? { concurrency: plan.concurrency } : {}),
    ...(plan.overload ? { overload: plan.overload } : {}),
  });
  const addr = plan.transport === 'ws' ? b.wsAddress : b.mqttAddress;
  if (!addr) {
    await b.close();
    throw new BenchError(`the embedded broker has no ${plan.transport} listener`, 'environment');
  }
  const wire: WireTarget = { transport: plan.transport, host: addr.host, port: addr.port, path: plan.transport === 'ws' ? '/mqtt' : '' };
  const devices = Array.from({ length: cfg.devices }, (_, i) => {
    const did = benchDid(i);
    const token = randomBytes(12).toString('hex');
    b.access.registerDevice(did, { token, uid: String(1_900_000_000 + i) });
    return { index: i, did, model: modelOf(cfg, i), username: did, password: token };
  });
  const mqttUrl = b.mqttAddress ? `mqtt://${b.mqttAddress.host}:${b.mqttAddress.port}` : null;
  const wsUrl = b.wsAddress ? `ws://${b.wsAddress.host}:${b.wsAddress.port}/mqtt` : null;
  return { wire, embedded: b, devices, info: { url: targetUrl(wire), mqttUrl, wsUrl, embedded: true } };
}

/** Devices take the models in turn. */
const modelOf = (cfg: BenchConfig, i: number): string => cfg.models[i % cfg.models.length]!;

function probeConfig(cfg: BenchConfig, target: Target): ProbeConfig {
  const plan = cfg.target;
  return {
    target: target.wire, clientId: `aiot-bench-probe-${cfg.runId}`, filters: cfg.replyTopic !== null ? [cfg.replyTopic] : [cfg.wire === 'cloud' ? 'device/+/up/#' : `${HUB_PREFIX}#`],
    qos: cfg.qos, runId: cfg.runId, devices: cfg.devices,
    ...(plan.kind === 'external' && plan.username !== undefined ? { username: plan.username, password: plan.password ?? '' } : {}),
  };
}

/** Device i goes to generator i % workers, with its share of the rate and the ramp. */
function generatorConfigs(cfg: BenchConfig, target: Target): GeneratorConfig[] {
  return Array.from({ length: cfg.workers }, (_, w) => {
    const mine = target.devices.filter((d) => d.index % cfg.workers === w);
    return {
      target: target.wire, devices: mine, shapes: cfg.shapes, eventShare: cfg.eventShare, qos: cfg.qos,
      ratePerSecond: (cfg.rate * mine.length) / cfg.devices, rampPerSecond: cfg.rampPerSecond / cfg.workers,
      payloadSize: cfg.payloadSize, runId: cfg.runId, reconnectJitterMs: cfg.reconnectJitterMs, inflight: cfg.inflight,
      maxBufferedBytes: 1 << 20, seed: cfg.seed * 7919 + w, keepalive: 60,
    };
  });
}

/** How long connecting may take: the ramp (or 20 ms a device) plus 30 s. */
function connectTimeoutMs(cfg: BenchConfig): number {
  return 30_000 + (cfg.rampPerSecond > 0 ? (cfg.devices / cfg.rampPerSecond) * 1000 : cfg.devices * 20);
}

/**
 * Connect every device; the main thread's heap (the broker's) after a full GC before and after,
 * and the broker's CPU seconds meanwhile (the full GCs left out), with the connections made.
 */
async function connectDevices(pool: GeneratorPool, meter: BenchMeter, brokerCpu: () => number | null): Promise<{ connectSeconds: number; before: number; connected: number; cpuSeconds: number | null; connections: number; generatorCpuSeconds: number | null }> {
  gc();
  const before = process.memoryUsage().heapUsed;
  const cpu0 = brokerCpu();
  meter.connecting();
  let connectSeconds: number;
  try {
    connectSeconds = await pool.start();
  } finally {
    meter.stop();
  }
  // A moment for the broker to finish what the last CONNACKs started, so the reading below is of settled state.
  await sleep(50);
  const cpu1 = brokerCpu();
  const { connectOk: connections, connectCpuSeconds: generatorCpuSeconds } = pool.stats();
  gc();
  meter.sampleMemory();
  return { connectSeconds, before, connected: process.memoryUsage().heapUsed, cpuSeconds: cpu0 === null || cpu1 === null ? null : cpu1 - cpu0, connections, generatorCpuSeconds };
}

/** Warm-up and measured window; resolves once every generator has stopped, with their stats and every thread's utilisation meanwhile. */
async function runTraffic(
  cfg: BenchConfig, pool: GeneratorPool, probe: ProbeThread, meter: BenchMeter,
): Promise<{ generators: GeneratorStats; utilization: BenchReport['utilization'] }> {
  const fromUs = wallUs() + cfg.warmupMs * 1000;
  const untilUs = fromUs + cfg.durationMs * 1000;
  probe.window(fromUs, untilUs);
  const { stopped } = pool.go(fromUs, untilUs, cfg.warmupMs + cfg.durationMs + 30_000);
  meter.traffic(fromUs, untilUs);
  // Event-loop utilisation of every thread over the traffic: the one near 1 is what limits the rate.
  const start = { main: performance.eventLoopUtilization(), probe: probe.utilisation(), gens: pool.utilisation() };
  const generators = await stopped;
  const end = { main: performance.eventLoopUtilization(), probe: probe.utilisation(), gens: pool.utilisation() };
  const utilization: BenchOutcome['utilization'] = {
    broker: cfg.target.kind === 'embedded' ? utilisationBetween(start.main, end.main) : null,
    probe: utilisationBetween(start.probe, end.probe),
    generators: start.gens.map((g, i) => utilisationBetween(g, end.gens[i]!)),
  };
  return { generators, utilization };
}

/**
 * The broker's CPU seconds so far: the embedded broker's thread (this one), or the external
 * broker's process when its pid is given; null when unknown (no pid, not Linux).
 */
function brokerCpuReader(target: Target, pid: number | undefined): () => number | null {
  if (target.embedded) return threadCpuSeconds;
  return pid === undefined ? () => null : () => processCpuSeconds(pid);
}

/** A fresh client can connect (the broker survived the run). */
async function acceptsClients(wire: WireTarget, runId: string): Promise<boolean> {
  const c = await WireClient.connect(wire, { clientId: `aiot-bench-check-${runId}`, timeoutMs: 5000 }).catch(() => null);
  c?.end();
  return c !== null;
}
