/**
 * `aiot-sim bench` figures through its library API (each in a fresh process, see worker.ts): the
 * highest sustained rate of the embedded broker and of Mosquitto, connect rate and heap per
 * connection, latency at a fixed rate, and the embedded broker held above its saturation.
 */
import { loadavg } from 'node:os';
import { findMaxRate, runBench, type SearchStep } from 'aiot-sim';
import { startMosquitto, type Mosquitto } from '../../tests/helpers/mosquitto.js';
import { startBareBroker } from '../bare-broker.js';
import { log, now, procCpuSeconds, round } from '../common.js';

/** Mosquitto's outgoing QoS 1 window and queue, raised from the defaults (20, 1000) which drop QoS 1 at a few 10k msg/s; Aedes has no such window. */
export const MOSQUITTO_CONFIG = ['max_inflight_messages 1000', 'max_queued_messages 100000'];

const load1m = (): number => round(loadavg()[0]!, 2);

/** CPU seconds (user + system) a process has used, from /proc. */
const cpuSeconds = (pid: number): number | null => procCpuSeconds(`/proc/${pid}/stat`);

type Step = SearchStep & { mosquittoCpu?: number | null };

/** Logs each step; against Mosquitto, adds its share of a core since the previous step (from /proc). */
function stepLogger(target: string, qos: number, mosq: Mosquitto | null): (s: Step) => void {
  let cpu = mosq ? cpuSeconds(mosq.pid) : null;
  let t = now();
  return (s) => {
    s.loadAverage1m = load1m();
    if (mosq) {
      const c = cpuSeconds(mosq.pid);
      s.mosquittoCpu = c === null || cpu === null ? null : round((c - cpu) / ((now() - t) / 1000), 3);
      cpu = c;
      t = now();
    }
    log(`  ${target} qos${qos} ${s.rate} msg/s: ${s.sustained ? 'sustained' : `not sustained (${s.reason})`}, p99 ${s.p99Ms} ms, ` +
      `utilisation broker ${s.utilization.broker ?? '-'} probe ${s.utilization.probe} generators ${s.utilization.generators.join('/')}` +
      `${s.mosquittoCpu != null ? ` mosquitto cpu ${s.mosquittoCpu}` : ''}`);
  };
}

interface SearchArgs { target: 'embedded' | 'mosquitto'; qos: 0 | 1; devices: number; start: number; budgetMs: number }

/** Highest sustained rate with zero loss (see src/load/search.ts) against `target`. */
export async function loadSearch({ target, qos, devices, start, budgetMs }: SearchArgs) {
  const mosq = target === 'mosquitto' ? await startMosquitto(MOSQUITTO_CONFIG) : null;
  try {
    const loadAtStart = load1m();
    const res = await findMaxRate({
      base: { devices, qos, ...(mosq ? { broker: mosq.url } : {}) }, start, budgetMs, onStep: stepLogger(target, qos, mosq),
    });
    return {
      target, qos, devices, mosquittoVersion: mosq?.version ?? null, loadAverage1mAtStart: loadAtStart, loadAverage1mAtEnd: load1m(),
      ...res, best: res.best as Step | null, firstFailure: res.firstFailure as Step | null,
    };
  } finally {
    await mosq?.stop();
  }
}

/** One bench at a fixed rate (latency at half the maximum). */
export async function loadLatency({ rate, qos, devices, seconds }: { rate: number; qos: 0 | 1; devices: number; seconds: number }) {
  const r = await runBench({ devices, qos, rate, durationMs: seconds * 1000, warmupMs: 2000 });
  return { rate, qos, devices, loadAverage1m: load1m(), ...r.latencyMs, sentRate: r.rate.sent, receivedRate: r.rate.received, lost: r.messages.lost, utilization: r.utilization };
}

/** Connect `devices` device sessions (TCP, as fast as possible) and weigh them on the broker's heap. */
export async function loadConnect({ devices }: { devices: number }) {
  const r = await runBench({ devices, rate: Math.max(1, devices / 10), durationMs: 1000, warmupMs: 0, workers: 1 });
  const m = r.broker!.memory;
  return {
    devices, connectRate: r.connections.connectRate, connectSeconds: r.connections.connectSeconds, slowestConnectMs: r.connections.slowestConnectMs,
    failed: r.connections.failed, heapBytesPerConnection: m.heapBytesPerConnection, heapUsedBeforeBytes: m.heapUsedBeforeBytes, heapUsedConnectedBytes: m.heapUsedConnectedBytes,
    loadAverage1m: load1m(),
  };
}

/** The embedded broker at `rate` (twice its saturation) for `seconds`: survival, memory, shed and delayed. */
export async function loadOverload({ rate, seconds, devices }: { rate: number; seconds: number; devices: number }) {
  const r = await runBench({ devices, qos: 0, rate, durationMs: seconds * 1000, warmupMs: 2000, drainMs: 5000 });
  const b = r.broker!;
  const heap = r.timeline.map((p) => p.brokerHeapBytes).filter((x): x is number => typeof x === 'number');
  const half = Math.floor(heap.length / 2);
  const maxOf = (xs: number[]): number => xs.reduce((a, x) => Math.max(a, x), 0);
  return {
    rate, seconds, devices, loadAverage1m: load1m(),
    brokerStayedUp: b.aliveAfter,
    sentRate: r.rate.sent, receivedRate: r.rate.received,
    messages: r.messages,
    latencyMs: r.latencyMs,
    shed: b.overload,
    emitter: b.emitter,
    heapUsedMaxBytes: b.memory.heapUsedMaxBytes,
    rssMaxBytes: b.memory.rssMaxBytes,
    // Bounded memory: the heap saw-tooths with GC; neither its peaks nor its floors (after GC) climb from the first half to the second.
    heapMaxFirstHalfBytes: maxOf(heap.slice(0, half)),
    heapMaxSecondHalfBytes: maxOf(heap.slice(half)),
    heapMinFirstHalfBytes: Math.min(...heap.slice(0, half)),
    heapMinSecondHalfBytes: Math.min(...heap.slice(half)),
    utilization: r.utilization,
    timeline: r.timeline,
  };
}

interface PairArgs { target: 'embedded' | 'mosquitto'; qos: 0 | 1; rate: number; devices: number; seconds: number }

/**
 * One bench at a fixed rate against `target` (the embedded broker, or a Mosquitto started for
 * the run with MOSQUITTO_CONFIG): latency, loss, what the generators held back, and the broker's
 * own CPU time per message (its thread, or Mosquitto's process by pid).
 */
export async function loadAtRate({ target, qos, rate, devices, seconds }: PairArgs) {
  const mosq = target === 'mosquitto' ? await startMosquitto(MOSQUITTO_CONFIG) : null;
  try {
    const r = await runBench({ devices, qos, rate, durationMs: seconds * 1000, warmupMs: 2000, ...(mosq ? { broker: mosq.url, brokerPid: mosq.pid } : {}) });
    return {
      target, qos, rate, devices, seconds, mosquittoVersion: mosq?.version ?? null, loadAverage1m: load1m(),
      latencyMs: r.latencyMs, sent: r.messages.sent, lost: r.messages.lost, heldBack: r.messages.notSent, heldBackWhy: r.messages.notSentWhy, heldBackWarmup: r.messages.notSentWarmup, duplicates: r.messages.duplicates,
      sentRate: r.rate.sent, receivedRate: r.rate.received, brokerCpuUsPerMessage: r.brokerCpu?.microsPerMessage ?? null,
      utilization: r.utilization, overload: r.broker?.overload ?? null,
    };
  } finally {
    await mosq?.stop();
  }
}

const bareCpu = (us: number | null): number | null => (us === null ? null : round(us, 1));

/**
 * Connect `devices` device sessions over TCP as fast as one generator can, against `target`: the
 * embedded broker, Mosquitto, or `bare`, the least a Node.js server does per connection (see
 * bare-broker.ts; on this thread, where the embedded broker runs), the floor under the embedded one.
 * Twice, each time against a broker started for it: first in a fresh process (`cold`: the first
 * connections a broker takes, while V8 compiles its connect path), then once more in the same
 * process (`warm`: its code compiled, as in a broker that has been running, say when its devices
 * come back after a network outage). Mosquitto has no JIT, so its two differ by noise only.
 */
export async function connectAtRate({ target, devices }: { target: 'embedded' | 'mosquitto' | 'bare'; devices: number }) {
  const cold = await connectRound(target, devices);
  const warm = await connectRound(target, devices);
  return {
    target, devices, mosquittoVersion: cold.mosquittoVersion, loadAverage1m: load1m(),
    brokerCpuUsPerConnection: cold.brokerCpuUsPerConnection, connectRate: cold.connectRate, connectSeconds: cold.connectSeconds,
    slowestConnectMs: cold.slowestConnectMs, failed: cold.failed, generatorCpuUsPerConnection: cold.generatorCpuUsPerConnection,
    warm: {
      connectRate: warm.connectRate, brokerCpuUsPerConnection: warm.brokerCpuUsPerConnection, generatorCpuUsPerConnection: warm.generatorCpuUsPerConnection,
      slowestConnectMs: warm.slowestConnectMs, failed: warm.failed,
    },
  };
}

/** One connect round of `connectAtRate` against a broker started for it. */
async function connectRound(target: 'embedded' | 'mosquitto' | 'bare', devices: number) {
  const mosq = target === 'mosquitto' ? await startMosquitto(MOSQUITTO_CONFIG) : null;
  const bare = target === 'bare' ? await startBareBroker(devices) : null;
  const external = mosq ? { broker: mosq.url, brokerPid: mosq.pid } : bare ? { broker: bare.url } : {};
  try {
    const r = await runBench({ devices, rate: Math.max(1, devices / 10), durationMs: 1000, warmupMs: 0, workers: 1, ...external });
    return {
      mosquittoVersion: mosq?.version ?? null, brokerCpuUsPerConnection: bare ? bareCpu(bare.cpuUsPerConnection) : r.brokerCpu?.microsPerConnection ?? null,
      connectRate: r.connections.connectRate, connectSeconds: r.connections.connectSeconds, slowestConnectMs: r.connections.slowestConnectMs, failed: r.connections.failed,
      generatorCpuUsPerConnection: r.connections.generatorCpuMicrosPerConnection,
    };
  } finally {
    await mosq?.stop();
    await bare?.close();
  }
}
