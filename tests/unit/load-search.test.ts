/** When a bench step counts as a sustained rate (src/load/search.ts), on synthetic reports. */
import { describe, expect, it } from 'vitest';
import type { BenchReport } from '../../src/load/report.js';
import { judge, latencyTrend } from '../../src/load/search.js';

function report(p99s: number[], over: { lost?: number; sentRate?: number; p99?: number } = {}): BenchReport {
  return {
    config: { warmupSeconds: 1, durationSeconds: p99s.length },
    rate: { target: 1000, sent: over.sentRate ?? 1000, received: over.sentRate ?? 1000 },
    messages: { sent: 4000, received: 4000 - (over.lost ?? 0), lost: over.lost ?? 0, duplicates: 0 },
    latencyMs: { p99: over.p99 ?? Math.max(...p99s) },
    // second 1 is warm-up (not measured), then one point per measured second
    timeline: [{ second: 1, p99Ms: 900 }, ...p99s.map((p, i) => ({ second: i + 2, p99Ms: p }))],
  } as unknown as BenchReport;
}

describe('judge', () => {
  it('accepts flat latency, even with a spike (a preempted thread is not saturation)', () => {
    expect(judge(report([5, 6, 40, 5]), 1000)).toBeNull();
  });

  it('rejects latency that grows through the window (a queue building up)', () => {
    expect(latencyTrend(report([100, 200, 300, 400]))).toEqual({ first: 150, second: 350 });
    expect(judge(report([100, 200, 300, 400]), 1000)).toMatch(/latency growing: per-second p99 150 -> 350 ms/);
  });

  it('rejects loss, backpressure and latency over the cap, saying which', () => {
    expect(judge(report([5, 5, 5, 5], { lost: 3 }), 1000)).toBe('lost 3 of 4000');
    expect(judge(report([5, 5, 5, 5], { sentRate: 900 }), 1000)).toMatch(/sent only 900 msg\/s of 1000/);
    expect(judge(report([5, 5, 5, 5], { p99: 1500 }), 1000)).toBe('p99 1500 ms > 1000 ms');
  });
});
