/**
 * aiot-sim benchmark orchestrator (`npm run bench`, which builds first).
 *
 * Every measurement runs in a fresh child process (`node --expose-gc bench/worker.js TASK ARGS`),
 * one at a time, so runs neither share a heap nor compete for the two cores. Each figure is
 * measured REPS times (default 3) and reported as the median plus the individual runs.
 * Prints ONE JSON document on stdout; progress goes to stderr.
 *
 * Environment knobs (for development; the defaults are the benchmark):
 *   BENCH_REPS=N        repetitions per figure (minimum 1, default 3; fast mode uses max(N, 5))
 *   BENCH_ONLY=a,b      only these figures: connect, memory, throughput, fast, fast1000, monitor, faults, load, snapshots
 *                       (snapshots: the two 30-day snapshot scenarios in full; long, so only on request)
 *   BENCH_SNAPSHOT_SEEDS=a,b  seeds of the snapshot runs (default: each scenario's own)
 *   BENCH_SNAPSHOT_WORKERS=N  worker threads of each snapshot run (aiot-sim run --workers; default: one per core, 1 = one thread)
 */
import { fork, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log, median, now, round } from './common.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = join(HERE, '..');
const REPS = Math.max(1, Number.parseInt(process.env.BENCH_REPS ?? '3', 10) || 3);
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : null;
/** Whole-run budget: runs that would start after it are skipped (and listed in `problems`). */
const BUDGET_MS = 900_000;
const T0 = now();

const CONFIG = {
  connect: { homes: 2000 },
  memory: { homes: 5000 },
  throughput: { publishers: 8, batch: 500, messages: 200_000, warmup: 10_000, timeoutMs: 60_000 },
  fast: { duration: '24h' },
  /** Issue 3's target: 24 virtual hours of 1,000 homes (about 10,000 devices) in under 60 s. */
  fast1000Homes: { duration: '24h', scenario: 'consumer-load.yaml' },
  /** Issue 5: broker throughput without and with 100 WebSocket monitors tapping, plus a stalled one. */
  monitorLoad: { publishers: 1000, batch: 500, messages: 200_000, warmup: 10_000, monitors: 100, timeoutMs: 60_000 },
  /** Issue 7: a broker restart of N one-device homes; downMs: how long the unannounced restart stays down (wall clock). */
  faults: { homes: 3000, downMs: 1000 },
  /** Issue 6: `aiot-sim bench` figures, the same generator against the embedded broker and Mosquitto. */
  load: { devices: 8, searchStart: 20_000, searchBudgetMs: 100_000, latencySeconds: 10, connectDevices: 2000, overloadSeconds: 30 },
};

/** The published figures (shared/reference/seed-figures.md) the snapshot scenarios are calibrated to, unscaled. */
const PUBLISHED = {
  'snapshot-2019q3.yaml': { connections: 289_000_000, ownersWithMoreThan5Devices: 5_600_000, speakerMau: 78_000_000, appMau: 43_000_000 },
  // The daily figure is compared both as the last day's count and as the mean of the week before
  // it (a 1:10,000 population's single day carries about 2 % binomial noise).
  'snapshot-2018.yaml': { connections: 132_000_000, dailyActiveDevices: 20_000_000, dailyActiveDevicesWeekMean: 20_000_000 },
};

const problems = [];

/**
 * Scenario runs get the V8 flag `aiot-sim` itself runs with (bin/aiot-sim.js): a 64 MB young
 * generation, which took 10-20 % off a fast run's CPU time (scavenges were ~18 % of it).
 */
const RUN_FLAGS = ['--max-semi-space-size=64'];
const TASK_FLAGS = { fast: RUN_FLAGS, snapshot: RUN_FLAGS };

/** Run one task in a fresh child; resolves with its result, or null (recorded in `problems`). */
function runChild(task, args, timeoutMs, ignoreBudget = false) {
  return new Promise((resolve) => {
    if (!ignoreBudget && now() - T0 > BUDGET_MS) {
      problems.push(`${task}: skipped, the ${BUDGET_MS / 1000} s budget is spent`);
      resolve(null);
      return;
    }
    const child = fork(join(HERE, 'worker.js'), [task, JSON.stringify(args)], {
      cwd: ROOT,
      execArgv: ['--expose-gc', ...(TASK_FLAGS[task] ?? [])],
      // The child's stdout goes to our stderr: our stdout carries only the final JSON.
      stdio: ['ignore', 2, 2, 'ipc'],
    });
    let answer = null;
    let settled = false;
    const finish = (value, problem) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (problem) {
        problems.push(`${task} ${JSON.stringify(args)}: ${problem}`);
        log(`  ${task}: ${problem}`);
      }
      resolve(value);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(null, `timed out after ${timeoutMs / 1000} s (killed)`);
    }, timeoutMs);
    child.on('message', (m) => { answer = m; });
    child.on('error', (err) => finish(null, `could not start: ${err.message}`));
    child.on('exit', (code, signal) => {
      if (answer?.ok) finish(answer.result);
      else if (answer) finish(null, answer.error);
      else finish(null, `exited with ${signal ?? code} without a result`);
    });
  });
}

async function repeat(label, task, args, reps, timeoutMs) {
  const runs = [];
  for (let i = 1; i <= reps; i++) {
    log(`${label}: run ${i}/${reps}`);
    const t = now();
    const r = await runChild(task, args, timeoutMs);
    if (r) {
      runs.push(r);
      log(`${label}: run ${i}/${reps} done in ${round((now() - t) / 1000, 1)} s`);
    }
  }
  return runs;
}

/** { median, runs } of one numeric field across runs. */
function stat(runs, key, digits = 1) {
  const values = runs.map((r) => r[key]);
  return { median: round(median(values), digits), runs: values.map((v) => round(v, digits)) };
}

// ------------------------------------------------------------------------------------------------

async function connectRate() {
  const runs = await repeat('connectRate', 'connect', CONFIG.connect, REPS, 90_000);
  if (!runs.length) return null;
  return {
    unit: 'devices/s',
    what: 'MQTT device sessions connected per second by `await sim.start()` (in-process transport, speed manual)',
    sessions: runs[0].sessions,
    median: median(runs.map((r) => r.devicesPerSecond)),
    runs: runs.map((r) => r.devicesPerSecond),
    startSeconds: stat(runs, 'startSeconds', 3),
    // start() also connects the operator and one app client per home user (owners; members: none here).
    brokerClients: runs[0].brokerClients,
    clientsPerSecond: stat(runs, 'clientsPerSecond', 1),
    allConnected: runs.every((r) => r.sessionsConnected === r.sessions),
    // start() returns before the devices' SUBSCRIBE and retained "online" state are processed.
    secondsUntilPlatformSawAllOnline: stat(runs, 'secondsUntilAllOnline', 3),
    onlineDevicesPerSecond: {
      median: round(median(runs.map((r) => r.sessions / r.secondsUntilAllOnline)), 1),
      runs: runs.map((r) => round(r.sessions / r.secondsUntilAllOnline, 1)),
    },
    allOnline: runs.every((r) => r.allOnline),
    stopSeconds: stat(runs, 'stopSeconds', 3),
    details: runs,
  };
}

async function memoryPerDevice() {
  const runs = await repeat('memoryPerDevice', 'memory', CONFIG.memory, REPS, 120_000);
  if (!runs.length) return null;
  return {
    unit: 'bytes/device',
    what: '(heapUsed after full GC with N sessions connected - heapUsed before) / N, fresh process per run',
    devices: runs[0].devices,
    median: median(runs.map((r) => r.heapBytesPerDevice)),
    runs: runs.map((r) => r.heapBytesPerDevice),
    brokerClients: runs[0].brokerClients,
    heapBytesPerClient: stat(runs, 'heapBytesPerClient', 0),
    rssBytesPerDevice: stat(runs, 'rssBytesPerDevice', 0),
    externalBytesPerDevice: stat(runs, 'externalBytesPerDevice', 0),
    heapBytesPerDevicePlan: stat(runs, 'heapBytesPerDevicePlan', 0),
    heapBytesPerDeviceSession: stat(runs, 'heapBytesPerDeviceSession', 0),
    heapBytesPerDeviceLeftAfterStop: stat(runs, 'heapBytesPerDeviceLeftAfterStop', 0),
    allOnline: runs.every((r) => r.allOnline),
    details: runs,
  };
}

async function throughputFor(qos) {
  const runs = await repeat(`throughput qos${qos}`, 'throughput', { ...CONFIG.throughput, qos }, REPS, 120_000);
  if (!runs.length) return null;
  return {
    unit: 'messages/s',
    qos,
    median: median(runs.map((r) => r.messagesPerSecond)),
    runs: runs.map((r) => r.messagesPerSecond),
    allArrived: runs.every((r) => r.allArrived),
    received: runs.map((r) => r.received),
    seconds: stat(runs, 'seconds', 3),
    publishSeconds: stat(runs, 'publishSeconds', 3),
    details: runs,
  };
}

async function throughput() {
  const q0 = await throughputFor(0);
  const q1 = await throughputFor(1);
  const c = CONFIG.throughput;
  return {
    what: `${c.messages} properties_changed messages from ${c.publishers} in-process device sessions `
      + `(batches of ${c.batch} each, all at once) through the embedded broker to one anonymous TCP observer `
      + 'subscribed to device/# in a separate process; first publish -> last message received',
    publishers: c.publishers,
    batch: c.batch,
    messages: c.messages,
    warmupMessages: c.warmup,
    qos0: q0,
    qos1: q1,
  };
}

async function fastMode() {
  const runs = await repeat('fastMode', 'fast', CONFIG.fast, Math.max(REPS, 5), 120_000);
  if (!runs.length) return null;
  return {
    what: 'scenarios/default.yaml, speed "fast", duration 24h; figures over report.wallSeconds (includes connecting)',
    duration: CONFIG.fast.duration,
    devices: runs[0].devices,
    sessions: runs[0].sessions,
    virtualSecondsPerWallSecond: stat(runs, 'virtualSecondsPerWallSecond', 0),
    eventsPerSecond: stat(runs, 'eventsPerSecond', 0),
    events: stat(runs, 'events', 0),
    messagesPerSecond: stat(runs, 'messagesPerSecond', 0),
    wallSeconds: stat(runs, 'wallSeconds', 3),
    sameTraceEveryRun: new Set(runs.map((r) => r.traceDigest)).size === 1,
    details: runs,
  };
}

/** One run (about 100 s on 2 cores): the figure is that run, listed as its own median. */
async function fastMode1000Homes() {
  const runs = await repeat('fastMode1000Homes', 'fast', CONFIG.fast1000Homes, 1, 300_000);
  if (!runs.length) return null;
  const r = runs[0];
  return {
    what: 'scenarios/consumer-load.yaml (1,000 homes), speed "fast", 24 virtual hours through the embedded broker; one run',
    goalWallSeconds: 60,
    devices: r.devices,
    sessions: r.sessions,
    wallSeconds: r.wallSeconds,
    startSeconds: r.startSeconds,
    virtualSecondsPerWallSecond: r.virtualSecondsPerWallSecond,
    eventsPerSecond: r.eventsPerSecond,
    events: r.events,
    messagesPublished: r.messagesPublished,
    messagesPerSecond: r.messagesPerSecond,
    details: runs,
  };
}

/**
 * Issue 4: each snapshot scenario in full (30 virtual days), against the published figures; goal
 * under 120 s each. One run per seed (BENCH_SNAPSHOT_SEEDS, default the scenario's own seed): the
 * behavioural figures must hold for any seed, so `worstDeviationPercent` is over all of them.
 */
async function snapshots() {
  const seeds = (process.env.BENCH_SNAPSHOT_SEEDS ?? '').split(',').filter(Boolean).map(Number);
  const workers = Math.max(1, Number.parseInt(process.env.BENCH_SNAPSHOT_WORKERS ?? '', 10) || Math.min(8, os.availableParallelism()));
  const out = {};
  for (const scenario of Object.keys(PUBLISHED)) {
    const runs = [];
    for (const seed of seeds.length ? seeds : [undefined]) {
      const r = await runChild('snapshot', seed === undefined ? { scenario, workers } : { scenario, seed, workers }, 3 * 3600_000, true);
      if (!r) continue;
      const deviationPercent = {};
      for (const [k, target] of Object.entries(PUBLISHED[scenario])) {
        deviationPercent[k] = round(((r.scaled[k] - target) / target) * 100, 2);
      }
      runs.push({ ...r, deviationPercent });
    }
    if (!runs.length) continue;
    const worst = {};
    for (const k of Object.keys(PUBLISHED[scenario])) {
      worst[k] = runs.map((r) => r.deviationPercent[k]).reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a));
    }
    out[scenario] = {
      goalWallSeconds: 120, published: PUBLISHED[scenario], seeds: runs.map((r) => r.seed), workers,
      wallSeconds: median(runs.map((r) => r.wallSeconds)), worstDeviationPercent: worst, runs,
    };
  }
  return out;
}

/**
 * Runs without and with the monitor alternate (off, on, off, on, ...) so drifting load from other
 * processes hits both alike; each run records the 1-minute load average at its end.
 */
async function monitorLoad() {
  const c = CONFIG.monitorLoad;
  const off = [];
  const on = [];
  for (let i = 1; i <= REPS; i++) {
    off.push(...await repeat(`monitorLoad without monitor (${i}/${REPS})`, 'monitorLoad', { ...c, monitors: 0 }, 1, 120_000));
    on.push(...await repeat(`monitorLoad with ${c.monitors} monitors (${i}/${REPS})`, 'monitorLoad', c, 1, 120_000));
  }
  if (!off.length || !on.length) return null;
  const base = median(off.map((r) => r.messagesPerSecond));
  const loaded = median(on.map((r) => r.messagesPerSecond));
  const cpuBase = median(off.map((r) => r.messagesPerCpuSecond));
  const cpuLoaded = median(on.map((r) => r.messagesPerCpuSecond));
  return {
    what: `${c.messages} properties_changed messages (QoS 0) from ${c.publishers} in-process device sessions through the embedded broker, `
      + 'with the platform observing, to one TCP observer in another process (as `throughput`); once without the monitor and once with '
      + `the monitor serving ${c.monitors} WebSocket clients in another process: ${c.monitors - 2} tapping one device each (device/{did}/#), `
      + 'one tapping device/# and reading, one tapping device/# that stops reading once subscribed; all get stats every second',
    goal: 'throughput with monitors at least 90 % of throughput without; server heap does not grow with the stalled client',
    // Messages per CPU-second of the broker's process: its capacity, robust to other processes' load.
    capacity: {
      unit: 'messages per CPU-second of the broker process',
      withoutMonitor: { median: cpuBase, runs: off.map((r) => r.messagesPerCpuSecond) },
      withMonitors: { median: cpuLoaded, runs: on.map((r) => r.messagesPerCpuSecond) },
      ratio: cpuBase ? round(cpuLoaded / cpuBase, 3) : null,
    },
    // Wall-clock throughput: the user-visible figure, noisy when the machine is busy (see loadAverage1m).
    throughput: {
      unit: 'messages/s',
      withoutMonitor: { median: base, runs: off.map((r) => r.messagesPerSecond) },
      withMonitors: { median: loaded, runs: on.map((r) => r.messagesPerSecond) },
      ratio: base ? round(loaded / base, 3) : null,
    },
    heapGrowthBytesWithMonitors: stat(on, 'heapGrowthBytes', 0),
    heapGrowthBytesWithoutMonitor: stat(off, 'heapGrowthBytes', 0),
    serverMaxQueued: Math.max(...on.map((r) => r.serverMaxQueued)),
    serverMaxBufferedBytes: Math.max(...on.map((r) => r.serverMaxBufferedBytes)),
    tapMessagesReceived: stat(on, 'tapMessagesReceived', 0),
    tapMessagesDropped: stat(on, 'tapMessagesDropped', 0),
    allArrived: [...off, ...on].every((r) => r.allArrived),
    loadAverage1m: { without: off.map((r) => r.loadAverage1m), with: on.map((r) => r.loadAverage1m) },
    details: { without: off, with: on },
  };
}

/** Issue 7: reconnect time after a broker restart of N devices, QoS 1 events lost (must be 0), duplicates removed. */
async function faultRecovery() {
  const runs = await repeat('faultRecovery', 'faults', CONFIG.faults, REPS, 240_000);
  if (!runs.length) return null;
  const pick = (r, path) => path.split('.').reduce((o, k) => o[k], r);
  const statOf = (path, digits = 3) => ({ median: round(median(runs.map((r) => pick(r, path))), digits), runs: runs.map((r) => round(pick(r, path), digits)) });
  return {
    unit: 'seconds',
    what: `broker restart with ${runs[0].sessions} in-process device sessions (one device per home; speakers send QoS 1 voice events). `
      + 'scenarioRestart: the broker-restart fault (down 5 virtual minutes); seconds from the broker being back until every session '
      + 'reconnected by itself (backoff 500 ms doubling to 10 s, full jitter), and until every device was announced online again. '
      + `unannouncedRestart: sim.broker.restart(${CONFIG.faults.downMs}) in the middle of the traffic; seconds from the broker being back. `
      + 'Events: every QoS 1 event devices published vs. what the platform accepted after de-duplication by (did, seq).',
    sessions: runs[0].sessions,
    median: round(median(runs.map((r) => r.scenarioRestart.reconnectSeconds)), 3),
    runs: runs.map((r) => r.scenarioRestart.reconnectSeconds),
    reconnectBoundSeconds: runs[0].scenarioRestart.boundSeconds,
    scenarioRestartOnlineSeconds: statOf('scenarioRestart.onlineSeconds'),
    unannouncedReconnectSeconds: statOf('unannouncedRestart.reconnectSeconds'),
    unannouncedOnlineSeconds: statOf('unannouncedRestart.onlineSeconds'),
    eventsPublished: runs.map((r) => r.eventsPublished),
    eventsLost: runs.map((r) => r.eventsLost),
    duplicatesRemoved: runs.map((r) => r.duplicatesRemoved),
    noEventLost: runs.every((r) => r.eventsLost === 0 && r.eventsMissing === 0 && r.bufferOverflow === 0),
    everySessionBack: runs.every((r) => r.scenarioRestart.notBack === 0 && r.unannouncedRestart.allBack && r.unannouncedRestart.allOnline),
    details: runs,
  };
}

/** Issue 6: max sustained rates (embedded vs Mosquitto), connect rate, memory per device, latency at half max, overload. */
async function load() {
  const c = CONFIG.load;
  const search = async (target, qos) => {
    log(`load: highest sustained rate, ${target}, QoS ${qos}`);
    return runChild('loadSearch', { target, qos, devices: c.devices, start: c.searchStart, budgetMs: c.searchBudgetMs }, c.searchBudgetMs + 60_000);
  };
  const q0 = await search('embedded', 0);
  const q1 = await search('embedded', 1);
  const m0 = await search('mosquitto', 0);
  const m1 = await search('mosquitto', 1);
  const connect = await repeat('load connect', 'loadConnect', { devices: c.connectDevices }, REPS, 90_000);
  const half = q0?.maxRate ? Math.round(q0.maxRate / 2) : null;
  const latency = half ? await repeat('load latency at half max', 'loadLatency', { rate: half, qos: 0, devices: c.devices, seconds: c.latencySeconds }, REPS, 60_000) : [];
  const overloadRate = q0?.maxRate ? q0.maxRate * 2 : null;
  if (overloadRate) log(`load: overload, ${overloadRate} msg/s for ${c.overloadSeconds} s`);
  const overload = overloadRate ? await runChild('loadOverload', { rate: overloadRate, seconds: c.overloadSeconds, devices: c.devices }, 120_000) : null;
  const pct = (k) => ({ median: median(latency.map((r) => r[k])), runs: latency.map((r) => r[k]) });
  const limit = (s) => (s?.firstFailure ? { atRate: s.firstFailure.rate, reason: s.firstFailure.reason, utilization: s.firstFailure.utilization, mosquittoCpu: s.firstFailure.mosquittoCpu ?? null } : null);
  return {
    what: 'aiot-sim bench: device connections in a generator worker thread, pre-serialised Mijia PUBLISHes at a token-bucket rate; '
      + 'a probe worker subscribed to device/+/up/# measures latency from the send time in each payload and loss from per-device sequence numbers. '
      + 'Highest sustained rate = highest rate with zero loss, >= 95 % of it sent, and latency not growing through the window, p99 <= 1 s (src/load/search.ts); one search per figure.',
    devices: c.devices,
    qos0MaxRate: q0?.maxRate ?? null,
    qos1MaxRate: q1?.maxRate ?? null,
    mosquittoQos0MaxRate: m0?.maxRate ?? null,
    mosquittoQos1MaxRate: m1?.maxRate ?? null,
    mosquittoVersion: m0?.mosquittoVersion ?? m1?.mosquittoVersion ?? null,
    limitedBy: { qos0: limit(q0), qos1: limit(q1), mosquittoQos0: limit(m0), mosquittoQos1: limit(m1) },
    connectRate: connect.length ? { unit: 'devices/s', devices: c.connectDevices, median: median(connect.map((r) => r.connectRate)), runs: connect.map((r) => r.connectRate) } : null,
    heapBytesPerConnectedDevice: connect.length ? { median: median(connect.map((r) => r.heapBytesPerConnection)), runs: connect.map((r) => r.heapBytesPerConnection) } : null,
    latencyAtHalfMax: half ? { rate: half, unit: 'ms', p50: pct('p50'), p90: pct('p90'), p99: pct('p99'), p999: pct('p999'), max: pct('max'), lost: latency.map((r) => r.lost) } : null,
    overload: overload ? {
      rate: overload.rate, seconds: overload.seconds, brokerStayedUp: overload.brokerStayedUp,
      sentRate: overload.sentRate, receivedRate: overload.receivedRate,
      notSent: overload.messages.notSent, lost: overload.messages.lost, shed: overload.shed, emitterWaited: overload.emitter.waited,
      emitterMaxQueued: overload.emitter.maxQueued, heapUsedMaxBytes: overload.heapUsedMaxBytes, rssMaxBytes: overload.rssMaxBytes,
      heapMaxFirstHalfBytes: overload.heapMaxFirstHalfBytes, heapMaxSecondHalfBytes: overload.heapMaxSecondHalfBytes,
      heapMinFirstHalfBytes: overload.heapMinFirstHalfBytes, heapMinSecondHalfBytes: overload.heapMinSecondHalfBytes,
      latencyMs: overload.latencyMs, utilization: overload.utilization,
    } : null,
    details: { searches: { qos0: q0, qos1: q1, mosquittoQos0: m0, mosquittoQos1: m1 }, connect, latency, overload },
  };
}

// ------------------------------------------------------------------------------------------------

function fdLimit() {
  try {
    return Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim()) || null;
  } catch {
    return null;
  }
}

/** sha256 of the compiled library (every .js file under dist/): tells whether it was rebuilt during the run. */
function distDigest() {
  const h = createHash('sha256');
  const dir = join(ROOT, 'dist');
  try {
    const files = readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.js')).sort();
    for (const f of files) h.update(f).update('\0').update(readFileSync(join(dir, f))).update('\0');
    return h.digest('hex').slice(0, 16);
  } catch {
    return null;
  }
}

function environment() {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const cpus = os.cpus();
  return {
    package: `${pkg.name}@${pkg.version}`,
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform} ${os.release()} ${process.arch}`,
    cpus: cpus.length,
    availableParallelism: os.availableParallelism?.() ?? cpus.length,
    cpuModel: cpus[0]?.model ?? null,
    totalMemoryGiB: round(os.totalmem() / 2 ** 30, 1),
    fileDescriptorLimit: fdLimit(),
    // Other work on the machine skews every figure: compare these before trusting a run.
    loadAverage1mAtStart: round(os.loadavg()[0], 2),
    dependencies: { aedes: pkg.dependencies.aedes, mqtt: pkg.dependencies.mqtt },
  };
}

const STEPS = [
  ['connect', 'connectRate', connectRate],
  ['memory', 'memoryPerDevice', memoryPerDevice],
  ['throughput', 'throughput', throughput],
  ['fast', 'fastMode', fastMode],
  ['fast1000', 'fastMode1000Homes', fastMode1000Homes],
  ['monitor', 'monitorLoad', monitorLoad],
  ['snapshots', 'snapshots', snapshots],
  ['faults', 'faultRecovery', faultRecovery],
  ['load', 'load', load],
];
/** Figures that run only when BENCH_ONLY names them. */
const ON_REQUEST = new Set(['snapshots']);

async function main() {
  const date = new Date().toISOString();
  const env = environment();
  const distAtStart = distDigest();
  if (!distAtStart) throw new Error('dist/ is missing: build first (npm run build), or use npm run bench');
  log(`aiot-sim bench: ${REPS} repetitions, node ${env.node}, ${env.cpus} cpus`);
  const figures = {};
  for (const [key, name, fn] of STEPS) {
    if (ONLY ? !ONLY.has(key) : ON_REQUEST.has(key)) continue;
    figures[name] = await fn();
  }
  const distAtEnd = distDigest();
  if (distAtEnd !== distAtStart) problems.push('dist/ was rebuilt during the benchmark (by another process?): the runs mix two builds; run it again');
  const out = {
    benchmark: 'aiot-sim',
    date,
    environment: env,
    distDigest: distAtStart,
    repetitions: REPS,
    config: CONFIG,
    ...figures,
    totalSeconds: round((now() - T0) / 1000, 1),
    loadAverage1mAtEnd: round(os.loadavg()[0], 2),
    problems,
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  log(`done in ${out.totalSeconds} s${problems.length ? `, ${problems.length} problem(s)` : ''}`);
  process.exitCode = problems.length ? 1 : 0;
}

main().catch((err) => {
  log(`bench failed: ${err?.stack ?? err}`);
  process.exitCode = 1;
});
