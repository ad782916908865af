/**
 * aiot-sim benchmark orchestrator (`npm run bench`, which builds the package and the benchmark first).
 *
 * Every measurement runs in a fresh child process, one at a time (runner.ts). Each figure is
 * measured REPS times (default 3) and reported as the median plus the individual runs.
 * Prints ONE JSON document on stdout; progress goes to stderr.
 *
 * Environment knobs (for development; the defaults are the benchmark):
 *   BENCH_REPS=N        repetitions per figure (minimum 1, default 3; fast mode uses max(N, 5))
 *   BENCH_ONLY=a,b      only these figures: connect, memory, throughput, fast, fast1000, monitor, faults, load, broker, soak, platform, snapshots
 *                       (snapshots: the two 30-day snapshot scenarios in full; long, so only on request)
 *                       permessage, fleet: fast mode's CPU per message and the 100k/500k-device fleet, each
 *                       beside the baseline build (baseline.ts); long, so only on request
 *                       external: fast mode on Mosquitto (--broker) beside the baseline build; only on request
 *                       population: fast mode's CPU per message at 100, 1,000 and 4,000 homes; only on request
 *                       marginal: fast mode's CPU per message past a run's fixed costs (consumer-load 24h and 72h); only on request
 *   BENCH_BASELINE_REF=REF    the commit those figures compare with (default: main before the fleet engine)
 *   BENCH_PERMESSAGE=a,b      only these cases of permessage: consumerLoad24h, snapshot2020q3Workers2
 *   BENCH_FLEET=a,b           only these sizes of fleet: devices106k, devices500k
 *   BENCH_SNAPSHOT_SEEDS=a,b  seeds of the snapshot runs (default: each scenario's own)
 *   BENCH_SNAPSHOT_WORKERS=N  worker threads of each snapshot run (aiot-sim run --workers; default: one per core, 1 = one thread)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from 'aiot-sim';
import { log, now, round } from './common.js';
import { brokerVsMosquitto, CONFIG, connectRate, externalFastMode, fastMode, fastMode1000Homes, faultRecovery, fleetFigure, load, memoryPerDevice, monitorLoad, perMessage, perMessageByPopulation, perMessageMarginal, platformInRedis, snapshots, soak, throughput } from './figures.js';
import { problems, REPS, startBudget, T0 } from './runner.js';

const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : null;

/** BENCH_ONLY key, name in the JSON, and the figure. */
const STEPS: Array<[string, string, () => Promise<unknown>]> = [
  ['connect', 'connectRate', connectRate],
  ['memory', 'memoryPerDevice', memoryPerDevice],
  ['throughput', 'throughput', throughput],
  ['fast', 'fastMode', fastMode],
  ['fast1000', 'fastMode1000Homes', fastMode1000Homes],
  ['monitor', 'monitorLoad', monitorLoad],
  ['snapshots', 'snapshots', snapshots],
  ['permessage', 'fastModePerMessage', perMessage],
  ['population', 'perMessageByPopulation', perMessageByPopulation],
  ['marginal', 'perMessageMarginal', perMessageMarginal],
  ['fleet', 'fleet', fleetFigure],
  ['external', 'externalFastMode', externalFastMode],
  ['faults', 'faultRecovery', faultRecovery],
  ['load', 'load', load],
  ['broker', 'brokerVsMosquitto', brokerVsMosquitto],
  ['soak', 'soak', soak],
  ['platform', 'platformInRedis', platformInRedis],
];
/** Figures that run only when BENCH_ONLY names them. */
const ON_REQUEST = new Set(['snapshots', 'permessage', 'population', 'marginal', 'fleet', 'external']);

function fdLimit(): number | null {
  try {
    return Number(execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim()) || null;
  } catch {
    return null;
  }
}

/** sha256 of the compiled library (every .js file under dist/): tells whether it was rebuilt during the run. */
function distDigest(): string | null {
  const h = createHash('sha256');
  const dir = join(PACKAGE_ROOT, 'dist');
  try {
    const files = readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.js')).sort();
    for (const f of files) h.update(f).update('\0').update(readFileSync(join(dir, f))).update('\0');
    return h.digest('hex').slice(0, 16);
  } catch {
    return null;
  }
}

function environment() {
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { name: string; version: string; dependencies: Record<string, string> };
  const cpus = os.cpus();
  return {
    package: `${pkg.name}@${pkg.version}`,
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform} ${os.release()} ${process.arch}`,
    cpus: cpus.length,
    availableParallelism: os.availableParallelism(),
    cpuModel: cpus[0]?.model ?? null,
    totalMemoryGiB: round(os.totalmem() / 2 ** 30, 1),
    fileDescriptorLimit: fdLimit(),
    // Other work on the machine skews every figure: compare these before trusting a run.
    loadAverage1mAtStart: round(os.loadavg()[0]!, 2),
    dependencies: { aedes: pkg.dependencies.aedes, mqtt: pkg.dependencies.mqtt },
  };
}

async function main(): Promise<void> {
  const date = new Date().toISOString();
  const env = environment();
  const distAtStart = distDigest();
  if (!distAtStart) throw new Error('dist/ is missing: build first (npm run bench:build), or use npm run bench');
  log(`aiot-sim bench: ${REPS} repetitions, node ${env.node}, ${env.cpus} cpus`);
  const figures: Record<string, unknown> = {};
  for (const [key, name, fn] of STEPS) {
    if (ONLY ? !ONLY.has(key) : ON_REQUEST.has(key)) continue;
    startBudget();
    figures[name] = await fn();
  }
  if (distDigest() !== distAtStart) problems.push('dist/ was rebuilt during the benchmark (by another process?): the runs mix two builds; run it again');
  const out = {
    benchmark: 'aiot-sim',
    date,
    environment: env,
    distDigest: distAtStart,
    repetitions: REPS,
    config: CONFIG,
    ...figures,
    totalSeconds: round((now() - T0) / 1000, 1),
    loadAverage1mAtEnd: round(os.loadavg()[0]!, 2),
    problems,
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  log(`done in ${out.totalSeconds} s${problems.length ? `, ${problems.length} problem(s)` : ''}`);
  process.exitCode = problems.length ? 1 : 0;
}

main().catch((err: unknown) => {
  log(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exitCode = 1;
});
