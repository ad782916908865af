/**
 * The highest sustained message rate: run short benches at increasing rates until one is not
 * sustained, then bisect between the last good and the first bad rate. Bounded in steps and time.
 *
 * A rate is sustained when, over the measured window: nothing was lost or duplicated, the
 * generators managed to send at least 95 % of it (else the broker was pushing back through TCP
 * flow control), and latency did not grow: the median per-second p99 of the window's second half
 * is at most 1.5 x that of its first half + 50 ms (a queue growing by more than ~50 ms a second),
 * and p99 stays under a cap (default 1 s). A trend, not a tight absolute bound, so that a busy
 * machine preempting a thread now and then does not pass for saturation.
 */
import { runBench, type BenchOptions } from './bench.js';
import type { BenchReport } from './report.js';

export interface SearchOptions {
  /** Everything but the rate; durations default to 1 s warm-up and 4 s measured. */
  base: BenchOptions;
  /** First rate tried, msg/s. Default 20,000. */
  start?: number;
  /** Each step multiplies the rate by this until a step fails. Default 1.5. */
  factor?: number;
  /** Bisection steps after the first failure. Default 2. */
  refine?: number;
  /** p99 latency above this (ms) means the rate is not sustained. Default 1000. */
  latencyBoundMs?: number;
  /** Stop starting new steps after this long, ms. Default 120,000. */
  budgetMs?: number;
  /** Never try more than this rate, msg/s. Default 1,000,000. */
  maxRate?: number;
  onStep?: (s: SearchStep) => void;
}

export interface SearchStep {
  rate: number;
  sustained: boolean;
  /** Why not (null when sustained). */
  reason: string | null;
  sentRate: number;
  receivedRate: number;
  lost: number;
  p99Ms: number | null;
  utilization: BenchReport['utilization'];
  loadAverage1m?: number;
}

export interface SearchResult {
  /** Highest sustained target rate (null: not even the first). */
  maxRate: number | null;
  /** What the probe received per second at that rate. */
  maxReceivedRate: number | null;
  /** The step at maxRate. */
  best: SearchStep | null;
  /** The first step that failed, and why: what limits the rate. */
  firstFailure: SearchStep | null;
  steps: SearchStep[];
  timedOut: boolean;
}

function medianOf(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const v = [...xs].sort((a, b) => a - b);
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Per-second p99 of the measured window, first half and second half (medians, ms). */
export function latencyTrend(r: BenchReport): { first: number | null; second: number | null } {
  const from = r.config.warmupSeconds;
  const until = from + r.config.durationSeconds;
  const pts = r.timeline.filter((p) => p.second > from && p.second <= until && p.p99Ms !== null).map((p) => p.p99Ms!);
  const half = Math.floor(pts.length / 2);
  return { first: medianOf(pts.slice(0, half)), second: medianOf(pts.slice(half)) };
}

/** Why the run is not sustained, or null when it is. */
export function judge(r: BenchReport, latencyBoundMs: number): string | null {
  if (r.messages.lost > 0) return `lost ${r.messages.lost} of ${r.messages.sent}`;
  if (r.messages.duplicates > 0) return `${r.messages.duplicates} duplicates`;
  if (r.rate.sent < r.rate.target * 0.95) return `generators sent only ${Math.round(r.rate.sent)} msg/s of ${r.rate.target} (backpressure)`;
  if (r.latencyMs.p99 === null) return 'nothing arrived';
  if (r.latencyMs.p99 > latencyBoundMs) return `p99 ${r.latencyMs.p99} ms > ${latencyBoundMs} ms`;
  const t = latencyTrend(r);
  if (t.first !== null && t.second !== null && t.second > 1.5 * t.first + 50) {
    return `latency growing: per-second p99 ${Math.round(t.first)} -> ${Math.round(t.second)} ms (queueing)`;
  }
  return null;
}

export async function findMaxRate(o: SearchOptions): Promise<SearchResult> {
  const t0 = performance.now();
  const factor = o.factor ?? 1.5;
  const bound = o.latencyBoundMs ?? 1000;
  const budget = o.budgetMs ?? 120_000;
  const maxRate = o.maxRate ?? 1_000_000;
  const steps: SearchStep[] = [];
  let timedOut = false;
  const step = async (rate: number): Promise<SearchStep> => {
    const r = await runBench({ warmupMs: 1000, durationMs: 4000, drainMs: 3000, ...o.base, rate, ratePerDevice: undefined });
    const reason = judge(r, bound);
    const s: SearchStep = {
      rate, sustained: reason === null, reason, sentRate: r.rate.sent, receivedRate: r.rate.received, lost: r.messages.lost, p99Ms: r.latencyMs.p99,
      utilization: r.utilization,
    };
    steps.push(s);
    o.onStep?.(s);
    return s;
  };
  const inBudget = (): boolean => {
    if (performance.now() - t0 < budget) return true;
    timedOut = true;
    return false;
  };
  let good: SearchStep | null = null;
  let bad: SearchStep | null = null;
  let rate = Math.round(o.start ?? 20_000);
  while (inBudget() && rate <= maxRate) {
    const s = await step(rate);
    if (!s.sustained) { bad = s; break; }
    good = s;
    rate = Math.round(rate * factor);
  }
  const firstFailure = bad;
  for (let i = 0; i < (o.refine ?? 2) && bad && inBudget(); i++) {
    const lo = good?.rate ?? 0;
    const mid = Math.round((lo + bad.rate) / 2 / 1000) * 1000;
    if (mid <= lo || mid >= bad.rate) break;
    const s = await step(mid);
    if (s.sustained) good = s;
    else bad = s;
  }
  return { maxRate: good?.rate ?? null, maxReceivedRate: good?.receivedRate ?? null, best: good, firstFailure, steps, timedOut };
}
