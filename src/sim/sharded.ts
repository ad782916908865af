/**
 * A fast-mode run split over worker threads: the homes are dealt into shards, each shard runs in
 * a worker with its own in-process embedded broker, devices and platform, and every shard's
 * platform sends its writes, in batches, to one merged store here (platform/thread-store.ts), so
 * the run's figures are live while the shards run (`snapshot()`, what the monitor shows) and, at
 * the end, the report's. Homes never talk to each other, every random stream is keyed by home,
 * device or region, and each shard sends exactly the writes its own figures are made of, so the
 * merged figures are those of a single platform that saw all the traffic (the only approximation:
 * a command, which carries no time, counts at its own shard's latest event time).
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { newOperatorToken } from '../broker/access.js';
import { AiotSimError, type ErrorKind } from '../errors.js';
import { workerScript } from '../paths.js';
import { MemoryStore } from '../platform/memory-store.js';
import type { PlatformSnapshot } from '../platform/snapshot.js';
import type { PlatformBatch } from '../platform/store.js';
import { checkMemory, estimateMemory, memoryRoom, sweepArrayBuffersOnMainThread } from './memory.js';
import type { Population } from './population.js';
import { scaleUp, type RunReport } from './report.js';
import { scenarioFile, type Scenario } from '../catalog/scenario.js';
import { Simulation, type SimulationOptions, type SimulationStatus } from './simulation.js';

/** What a shard needs: the run's options, as plain data. */
export interface ShardJob {
  options: Pick<SimulationOptions, 'seed' | 'duration' | 'telemetry' | 'operatorToken' | 'wire'> & { scenario: string | Record<string, unknown>; catalog?: string };
  index: number;
  count: number;
}

export type ToShard = { type: 'stop' };

export type FromShard =
  | { type: 'connecting'; connected: number; total: number }
  | { type: 'started'; status: SimulationStatus }
  | { type: 'status'; status: SimulationStatus }
  | { type: 'batch'; batch: PlatformBatch }
  | { type: 'done'; report: RunReport }
  | { type: 'error'; code: string; kind: ErrorKind; message: string };

export interface ShardedOptions extends Omit<SimulationOptions, 'shard' | 'broker' | 'externalBroker' | 'traceFile' | 'deviceTransport' | 'catalog'> {
  /** Worker threads (shards), at least 2. */
  workers: number;
  /** Device catalogue folder (a path: each worker loads it). */
  catalog?: string;
}

interface Shard {
  worker: Worker;
  connecting: { connected: number; total: number };
  status: SimulationStatus | null;
  done: RunReport | null;
}

export class ShardedSimulation {
  readonly scenario: Scenario;
  readonly seed: number;
  readonly speed = 'fast' as const;
  /** The whole population (each worker simulates its share of the homes). */
  readonly population: Population;
  readonly operatorToken: string;
  readonly workers: number;
  private shards: Shard[] = [];
  /** Every shard's platform writes, applied in each shard's order as they arrive. */
  private readonly merged = new MemoryStore();
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private wallStart = 0;
  private settle!: { resolve: (r: RunReport) => void; reject: (e: Error) => void };
  private readonly result: Promise<RunReport>;
  private failure: AiotSimError | null = null;
  /** Callers of `reached()` waiting for the shards' virtual time to get somewhere. */
  private waiting: Array<{ t: number; resolve: (t: number) => void; reject: (e: Error) => void }> = [];

  private constructor(
    private readonly opts: ShardedOptions,
    whole: Simulation,
  ) {
    this.scenario = whole.scenario;
    this.seed = whole.seed;
    this.population = whole.population;
    this.operatorToken = whole.operatorToken;
    this.workers = opts.workers;
    this.result = new Promise<RunReport>((resolve, reject) => { this.settle = { resolve, reject }; });
    this.result.catch(() => undefined); // rejections reach whoever awaits `finished` or `start()`
  }

  /**
   * Validate everything in this thread first (scenario, catalogue, options), so a bad run fails
   * before any worker starts; starts nothing.
   */
  static async create(opts: ShardedOptions): Promise<ShardedSimulation> {
    if (!(Number.isInteger(opts.workers) && opts.workers >= 2 && opts.workers <= 64)) {
      throw new AiotSimError('E_OPTIONS', 'input', `workers: expected an integer from 2 to 64, got ${opts.workers}`);
    }
    if (opts.speed !== undefined && opts.speed !== 'fast') {
      throw new AiotSimError('E_OPTIONS', 'input', `workers: a run split over worker threads runs in fast mode, not speed ${String(opts.speed)}`);
    }
    const token = opts.operatorToken ?? newOperatorToken();
    const whole = await Simulation.create({ ...opts, speed: 'fast', operatorToken: token, broker: { mqttPort: null, wsPort: null } });
    const problems: string[] = [];
    if (whole.scenario.faults.length > 0) {
      const file = typeof opts.scenario === 'string' ? `${opts.scenario}: ` : '';
      problems.push(`${file}faults: a run split over worker threads cannot run faults (each acts on the whole population at once); run it in one thread`);
    }
    if (whole.population.homes.length < opts.workers) {
      problems.push(`workers: ${opts.workers} worker threads for ${whole.population.homes.length} homes; use at most one per home`);
    }
    if (problems.length) throw new AiotSimError('E_OPTIONS', 'input', problems.join('\n'));
    return new ShardedSimulation({ ...opts, operatorToken: token }, whole);
  }

  /** Start every worker; resolves once every shard has connected its devices and started its clock. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new AiotSimError('E_STATE', 'input', `start(): simulation is ${this.state}`);
    this.state = 'starting';
    this.wallStart = performance.now();
    const o = this.opts;
    try {
      // The shards share this process's memory: the whole population must fit, before any worker starts.
      const people = this.population.homes.reduce((n, h) => n + 1 + h.memberUids.length, 0);
      checkMemory(estimateMemory(this.population.devices.length, people, 'in-process'), memoryRoom(o.memoryLimit));
      sweepArrayBuffersOnMainThread(this.population.devices.length);
    } catch (err) {
      this.state = 'stopped';
      throw err;
    }
    const options: ShardJob['options'] = {
      // A renamed scenario was announced once, here: the workers read its new file.
      scenario: typeof o.scenario === 'string' ? scenarioFile(o.scenario, { warn: false }) : { ...this.scenario },
      operatorToken: this.operatorToken,
      seed: this.seed,
    };
    if (o.catalog !== undefined) options.catalog = o.catalog;
    if (o.duration !== undefined) options.duration = o.duration;
    if (o.telemetry !== undefined) options.telemetry = o.telemetry;
    if (o.wire !== undefined) options.wire = o.wire;
    let started = 0;
    const allStarted = new Promise<void>((resolve, reject) => {
      for (let index = 0; index < this.workers; index++) {
        const job: ShardJob = { options, index, count: this.workers };
        const shard: Shard = { worker: new Worker(workerScript('sim', 'shard-worker'), { workerData: job }), connecting: { connected: 0, total: 0 }, status: null, done: null };
        this.shards.push(shard);
        shard.worker.on('message', (m: FromShard) => {
          switch (m.type) {
            case 'connecting':
              shard.connecting = { connected: m.connected, total: m.total };
              this.reportConnecting();
              break;
            case 'started':
              shard.status = m.status;
              if (++started === this.workers) {
                this.state = 'running';
                resolve();
              }
              this.wakeWaiting();
              break;
            case 'status':
              shard.status = m.status;
              this.wakeWaiting();
              break;
            case 'batch':
              try {
                this.merged.apply(m.batch);
              } catch (e) {
                this.fail(new AiotSimError('E_SHARD', 'internal', `worker ${index + 1} of ${this.workers}: ${(e as Error).message}`, { cause: e }), reject);
              }
              break;
            case 'done':
              shard.done = m.report;
              if (shard.status) shard.status = finalStatus(shard.status, m.report);
              this.wakeWaiting();
              if (this.shards.every((s) => s.done)) this.finish();
              break;
            case 'error':
              this.fail(new AiotSimError(m.code, m.kind, `worker ${index + 1} of ${this.workers}: ${m.message}`), reject);
              break;
          }
        });
        shard.worker.on('error', (e) => this.fail(new AiotSimError('E_SHARD', 'internal', `worker ${index + 1} of ${this.workers} crashed: ${e.message}`, { cause: e }), reject));
        shard.worker.on('exit', (code) => {
          if (!shard.done && !this.failure) this.fail(new AiotSimError('E_SHARD', 'internal', `worker ${index + 1} of ${this.workers} exited (code ${code}) before finishing`), reject);
        });
      }
    });
    await allStarted;
  }

  /** Resolves with the merged report when every shard has run to the end (or been stopped). */
  get finished(): Promise<RunReport> {
    return this.result;
  }

  /**
   * Resolves with the run's virtual time (the slowest shard's) once every shard has run to virtual
   * time `t`, as their statuses tell (each sends one every half second), or once the run is over
   * short of it; rejects if the run fails first.
   */
  reached(t: number): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    const reached = new Promise<number>((resolve, reject) => this.waiting.push({ t, resolve, reject }));
    this.wakeWaiting();
    return reached;
  }

  /** Settle the `reached()` waiters that the latest statuses (or the end of the run) satisfy. */
  private wakeWaiting(): void {
    const over = this.state === 'stopped';
    if (!this.waiting.length || (!over && (this.shards.length < this.workers || this.shards.some((s) => !s.status)))) return;
    const now = this.status().virtualTime;
    const due = this.waiting.filter((w) => over || now >= w.t);
    this.waiting = this.waiting.filter((w) => !due.includes(w));
    for (const w of due) w.resolve(now);
  }

  /** Stop every shard now; resolves with the merged report of what ran. */
  stop(): Promise<RunReport> {
    if (this.state === 'new') return Promise.reject(new AiotSimError('E_STATE', 'input', 'stop(): the simulation was never started'));
    if (this.state === 'running' || this.state === 'starting') {
      this.state = 'stopping';
      for (const s of this.shards) if (!s.done) s.worker.postMessage({ type: 'stop' } satisfies ToShard);
    }
    return this.result;
  }

  /**
   * The run's platform figures: every shard's writes so far (each shard's as of its latest batch,
   * at most about 100 ms old); while shards are at different virtual times, the event time is the
   * furthest one's. Once the run is over, those of the report.
   */
  snapshot(): PlatformSnapshot {
    return this.merged.snapshot();
  }

  /** The shards' statuses together: counts add up, virtual time is the slowest shard's. */
  status(): SimulationStatus {
    const all = this.shards.map((s) => s.status).filter((s): s is SimulationStatus => s !== null);
    const sum = (k: keyof SimulationStatus): number => all.reduce((n, s) => n + ((s[k] as number | null) ?? 0), 0);
    const first = all[0];
    return {
      virtualTime: all.length === this.workers ? Math.min(...all.map((s) => s.virtualTime)) : (first?.virtualStart ?? 0),
      virtualStart: first?.virtualStart ?? 0,
      virtualEnd: first?.virtualEnd ?? null,
      devices: this.population.devices.length,
      sessions: this.population.sessions.length,
      sessionsConnected: sum('sessionsConnected'),
      online: sum('online'),
      published: sum('published'),
      delivered: sum('delivered'),
      rejected: sum('rejected'),
      events: sum('events'),
      reconnectAttempts: sum('reconnectAttempts'),
      stopping: all.some((s) => s.stopping),
    };
  }

  private reportConnecting(): void {
    const cb = this.opts.onConnectProgress;
    if (!cb) return;
    cb(this.shards.reduce((n, s) => n + s.connecting.connected, 0), this.population.sessions.length);
  }

  private fail(e: AiotSimError, reject: (e: Error) => void): void {
    if (this.failure || this.state === 'stopped') return;
    this.failure = e;
    this.state = 'stopped';
    for (const s of this.shards) void s.worker.terminate();
    reject(e);
    this.settle.reject(e);
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  private finish(): void {
    this.state = 'stopped';
    // Their work is done and reported: nothing left in a worker may keep the process alive.
    for (const s of this.shards) void s.worker.terminate();
    const done = this.shards.map((s) => s.done!);
    this.wakeWaiting();
    // Each shard's batches came before its report, on the same port: the merged store has them all.
    this.settle.resolve(mergeReports(done, this.merged.snapshot(), this.scenario.scale, (performance.now() - this.wallStart) / 1000));
  }
}

/** A finished shard's status as its run ended (online at the end, not after it stopped). */
function finalStatus(last: SimulationStatus, r: RunReport): SimulationStatus {
  return {
    ...last,
    virtualTime: Date.parse(r.virtualEnd), online: r.platform.connections.online,
    published: r.messages.published, delivered: r.messages.delivered, rejected: r.messages.rejected,
  };
}

/**
 * One report for the whole run from the shards' reports and the merged store's figures: counts
 * add up, and the trace digest is the digest of the shards' digests in shard order (the same seed
 * and worker count give the same digest).
 */
export function mergeReports(reports: readonly RunReport[], merged: PlatformSnapshot, scale: number, wallSeconds: number): RunReport {
  const first = reports[0]!;
  // Message kinds in the order the shards' own figures list them, shard by shard, not in the order
  // their batches happened to arrive: the same run writes the same report.
  const kinds = merged.messages.byKind;
  const order = new Set([...reports.flatMap((r) => Object.keys(r.platform.messages.byKind)), ...Object.keys(kinds)]);
  const byKind = Object.fromEntries([...order].filter((k) => k in kinds).map((k) => [k, kinds[k]!]));
  const platform: PlatformSnapshot = { ...merged, messages: { ...merged.messages, byKind } };
  const sum = (f: (r: RunReport) => number): number => reports.reduce((n, r) => n + f(r), 0);
  const activity = { ...first.activity };
  for (const k of Object.keys(activity) as Array<keyof RunReport['activity']>) activity[k] = sum((r) => r.activity[k]);
  const digest = createHash('sha256');
  for (const r of reports) digest.update(`${r.traceDigest}\n`);
  // Shards stopped early (stop()) end at slightly different virtual times: every home ran this far.
  const end = reports.reduce((a, r) => (r.virtualEnd < a.virtualEnd ? r : a));
  return {
    ...first,
    virtualEnd: end.virtualEnd,
    virtualSeconds: end.virtualSeconds,
    workers: reports.length,
    wallSeconds: Math.round(wallSeconds * 1000) / 1000,
    devices: { total: sum((r) => r.devices.total), sessions: sum((r) => r.devices.sessions) },
    messages: { published: sum((r) => r.messages.published), delivered: sum((r) => r.messages.delivered), rejected: sum((r) => r.messages.rejected) },
    traceDigest: digest.digest('hex'),
    traceMessages: sum((r) => r.traceMessages),
    activity,
    // The shards wait at the same time: their pieces and wall times added up.
    networkWork: { pieces: sum((r) => r.networkWork?.pieces ?? 0), wallSeconds: Math.round(sum((r) => r.networkWork?.wallSeconds ?? 0) * 1000) / 1000 },
    faults: [],
    platform: { ...platform, scale, scaled: scaleUp(platform, scale) },
  };
}

/** Create and start a run over `workers` threads. */
export async function createShardedSimulation(opts: ShardedOptions): Promise<ShardedSimulation> {
  const sim = await ShardedSimulation.create(opts);
  await sim.start();
  return sim;
}
