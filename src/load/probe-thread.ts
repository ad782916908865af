/** The bench's side of the latency probe (probe.ts), which runs in a worker thread of its own. */
import type { EventLoopUtilization } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { workerScript } from '../paths.js';
import type { FromProbe, LatencySummaryUs, ProbeConfig, ProbeStats, ToProbe } from './protocol.js';
import { answer, BenchError } from './thread.js';

export class ProbeThread {
  private worker: Worker | null = null;
  private latest: ProbeStats | null = null;
  private failure: string | null = null;

  constructor(private readonly cfg: ProbeConfig) {}

  /** Start the worker; resolves once it is subscribed. */
  async start(): Promise<void> {
    const w = new Worker(workerScript('load', 'probe-worker'), { workerData: this.cfg });
    this.worker = w;
    w.on('message', (m: FromProbe) => {
      if (m.type === 'stats' || m.type === 'finished') this.latest = m.stats;
      if (m.type === 'fatal') this.failure = m.error;
    });
    w.on('error', (err) => { this.failure = err.message; });
    await answer(w, (m) => (m.type === 'ready' ? true : undefined), 'probe', 15_000);
  }

  /** The latest stats (about once a second), null before the first. */
  get stats(): ProbeStats | null { return this.latest; }

  /** Count messages sent from `fromUs` until `untilUs` (wall µs) as measured. */
  window(fromUs: number, untilUs: number): void {
    this.send({ type: 'window', fromUs, untilUs });
  }

  /**
   * Resolves once `expected` measured messages arrived or none arrived for `quietMs`, or after
   * `maxMs` at the latest; rejects when the probe failed.
   */
  async drain(expected: number, quietMs: number, maxMs: number): Promise<void> {
    this.throwIfFailed();
    const drained = answer(this.running(), (m) => (m.type === 'drained' ? true : undefined), 'probe', maxMs, () => false);
    this.send({ type: 'drain', expected, quietMs });
    await drained;
  }

  /** The final stats and the latency summary of the measured window; the probe disconnects. */
  async finish(droppedRanges: number[] = []): Promise<{ stats: ProbeStats; latencyUs: LatencySummaryUs | null }> {
    this.throwIfFailed();
    const fin = answer(this.running(), (m) => (m.type === 'finished' ? m : undefined), 'probe', 10_000);
    this.send({ type: 'finish', droppedRanges });
    const { stats, latencyUs } = await fin;
    this.throwIfFailed();
    return { stats, latencyUs };
  }

  utilisation(): EventLoopUtilization {
    return this.running().performance.eventLoopUtilization();
  }

  async stop(): Promise<void> {
    await this.worker?.terminate().catch(() => 0);
    this.worker = null;
  }

  private throwIfFailed(): void {
    if (this.failure !== null) throw new BenchError(`probe: ${this.failure}`, 'environment');
  }

  private running(): Worker {
    if (!this.worker) throw new BenchError('probe: not started', 'environment');
    return this.worker;
  }

  private send(m: ToProbe): void {
    this.running().postMessage(m);
  }
}
