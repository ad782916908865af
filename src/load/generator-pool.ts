/** The bench's side of its generator worker threads (generator.ts): start, run, close, sum up. */
import type { EventLoopUtilization } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { workerScript } from '../paths.js';
import { addNotSent, emptyStats, type FromGenerator, type GeneratorConfig, type GeneratorStats, type ToGenerator } from './protocol.js';
import { answer } from './thread.js';

/** One generator worker and its latest stats. */
interface Member { worker: Worker; stats: GeneratorStats | null }

export function sumStats(all: Array<GeneratorStats | null>): GeneratorStats {
  const s = emptyStats();
  for (const x of all) {
    if (!x) continue;
    s.sent += x.sent; s.sentMeasured += x.sentMeasured; s.notSent += x.notSent; s.connectOk += x.connectOk; s.connectFailed += x.connectFailed;
    s.disconnects += x.disconnects; s.connected += x.connected; s.acked += x.acked; s.inflight += x.inflight;
    s.notSentMeasured += x.notSentMeasured;
    addNotSent(s.notSentWhy, x.notSentWhy);
    addNotSent(s.notSentWhyMeasured, x.notSentWhyMeasured);
    s.connectMaxMs = Math.max(s.connectMaxMs, x.connectMaxMs);
    s.connectCpuSeconds = s.connectCpuSeconds === null || x.connectCpuSeconds === null ? null : s.connectCpuSeconds + x.connectCpuSeconds;
    for (const v of x.droppedRanges) s.droppedRanges.push(v);
    for (const [k, v] of Object.entries(x.connectErrors)) s.connectErrors[k] = (s.connectErrors[k] ?? 0) + v;
  }
  return s;
}

export class GeneratorPool {
  private readonly members: Member[] = [];

  /** `connectTimeoutMs`: how long every worker may take to connect its devices. */
  constructor(private readonly configs: GeneratorConfig[], private readonly connectTimeoutMs: number) {}

  /**
   * Start one worker per config; resolves once every one has connected its devices, with the
   * slowest one's ramp time in seconds (each worker times its own ramp from its first CONNECT,
   * so thread start-up is not counted).
   */
  async start(): Promise<number> {
    const connected = this.configs.map((cfg, w) => {
      const worker = new Worker(workerScript('load', 'generator-worker'), { workerData: cfg });
      const member: Member = { worker, stats: null };
      worker.on('message', (m: FromGenerator) => { if (m.type === 'stats' || m.type === 'connected' || m.type === 'stopped') member.stats = m.stats; });
      this.members.push(member);
      const done = answer(worker, (m) => (m.type === 'connected' ? m.seconds : undefined), `generator ${w}`, this.connectTimeoutMs);
      done.catch(() => undefined); // awaited below with the others; one failing must not leave the rest unhandled
      return done;
    });
    return Math.max(...await Promise.all(connected));
  }

  /** The workers' latest stats, summed. */
  stats(): GeneratorStats {
    return sumStats(this.members.map((m) => m.stats));
  }

  /**
   * Send traffic until `untilUs` (wall µs), counting what is sent from `fromUs` as measured;
   * `stopped` resolves with the summed final stats once every worker has stopped.
   */
  go(fromUs: number, untilUs: number, timeoutMs: number): { stopped: Promise<GeneratorStats> } {
    const each = this.members.map((m) => {
      const stopped = answer(m.worker, (msg) => (msg.type === 'stopped' ? msg.stats : undefined), 'generator', timeoutMs);
      stopped.catch(() => undefined);
      m.worker.postMessage({ type: 'go', measureFromUs: fromUs, measureUntilUs: untilUs } satisfies ToGenerator);
      return stopped;
    });
    return { stopped: Promise.all(each).then(sumStats) };
  }

  utilisation(): EventLoopUtilization[] {
    return this.members.map((m) => m.worker.performance.eventLoopUtilization());
  }

  /** Close every device connection (each worker bounded to 10 s). */
  async close(): Promise<void> {
    await Promise.all(this.members.map(async (m) => {
      const closed = answer(m.worker, (msg) => (msg.type === 'closed' ? true : undefined), 'generator close', 10_000).catch(() => false);
      m.worker.postMessage({ type: 'close' } satisfies ToGenerator);
      await closed;
    }));
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.worker.terminate().catch(() => 0)));
  }
}
