/**
 * What the bench records while it runs, once a second: the timeline (sent, received, p99,
 * connections, broker heap), the live progress for `onProgress`, and the peak memory of this
 * thread (the embedded broker's).
 */
import type { BenchProgress } from './options.js';
import { wallUs, type GeneratorStats, type ProbeStats } from './protocol.js';
import type { TimelinePoint } from './report.js';

export interface MeterSources {
  devices: number;
  /** Record the broker's heap in the timeline (it runs on this thread). */
  embedded: boolean;
  /** performance.now() when the bench started (progress counts seconds from there). */
  t0: number;
  generators: () => GeneratorStats;
  probe: () => ProbeStats | null;
  onProgress?: ((p: BenchProgress) => void) | undefined;
}

export class BenchMeter {
  readonly timeline: TimelinePoint[] = [];
  private ticker: NodeJS.Timeout | null = null;
  private rssMax = 0;
  private heapMax = 0;
  /** Sent so far at the last timeline point. */
  private sentAtPoint = 0;
  /** Sent so far and when, at the last progress report (for the rates). */
  private readonly last = { sent: 0, at: 0 };

  constructor(private readonly src: MeterSources) {}

  /** Report progress every second while devices connect. */
  connecting(): void {
    this.every(() => {
      this.last.sent = 0;
      this.last.at = performance.now() - 1000;
      this.progress('connecting');
    });
  }

  /** Record a timeline point and report progress every second of traffic (warm-up from now, measured from `fromUs` until `untilUs`). */
  traffic(fromUs: number, untilUs: number): void {
    this.last.sent = 0;
    this.last.at = performance.now();
    this.every(() => {
      this.sampleMemory();
      this.point(this.src.generators(), this.src.probe()?.interval ?? null);
      const now = wallUs();
      this.progress(now < fromUs ? 'warm-up' : now < untilUs ? 'measuring' : 'draining');
    });
  }

  stop(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
  }

  /** The last, partial second of the timeline (since the last tick), from the final stats. */
  lastPoint(generators: GeneratorStats, probe: ProbeStats): void {
    this.point(generators, probe.interval);
  }

  sampleMemory(): void {
    const m = process.memoryUsage();
    this.rssMax = Math.max(this.rssMax, m.rss);
    this.heapMax = Math.max(this.heapMax, m.heapUsed);
  }

  /** Peaks of this thread's memory over the samples so far. */
  get memory(): { heapUsedMaxBytes: number; rssMaxBytes: number } {
    return { heapUsedMaxBytes: this.heapMax, rssMaxBytes: this.rssMax };
  }

  private every(fn: () => void): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = setInterval(fn, 1000);
  }

  private point(g: GeneratorStats, interval: ProbeStats['interval'] | null): void {
    this.timeline.push({
      second: this.timeline.length + 1, sent: g.sent - this.sentAtPoint, received: interval?.received ?? 0,
      p99Ms: interval?.p99Us != null ? interval.p99Us / 1000 : null, connected: g.connected,
      brokerHeapBytes: this.src.embedded ? process.memoryUsage().heapUsed : null,
    });
    this.sentAtPoint = g.sent;
  }

  private progress(phase: BenchProgress['phase']): void {
    if (!this.src.onProgress) return;
    const s = this.src.generators();
    const ps = this.src.probe();
    const now = performance.now();
    const dt = Math.max(0.001, (now - this.last.at) / 1000);
    this.src.onProgress({
      phase, seconds: (now - this.src.t0) / 1000, connected: s.connected, devices: this.src.devices, sendRate: (s.sent - this.last.sent) / dt,
      receiveRate: ps ? ps.interval.received / dt : 0, p99Ms: ps?.interval.p99Us != null ? ps.interval.p99Us / 1000 : null,
      errors: s.connectFailed + s.disconnects,
    });
    this.last.sent = s.sent;
    this.last.at = now;
  }
}
