/** Helpers of the benchmark's orchestrator (run.ts) and its measurements (worker.ts, tasks/). */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises';

export { sleep, tick };

/** Median of the finite numbers in a list (mean of the two middle ones for an even count); null when there are none. */
export function median(xs: ReadonlyArray<number | null | undefined>): number | null {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Round to `d` decimals; null stays null. */
export function round(x: number, d?: number): number;
export function round(x: number | null, d?: number): number | null;
export function round(x: number | null, d = 1): number | null {
  if (x === null || !Number.isFinite(x)) return x;
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

export function log(...args: unknown[]): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${args.join(' ')}\n`);
}

export const now = (): number => performance.now();

/**
 * Wait until `cond()` is true, checking every `everyMs`, for at most `maxMs`: the figures that
 * time a state nothing announces (every device online at the platform, the broker's emitter idle)
 * are measured to that resolution. Resolves true when the condition held, false on timeout.
 */
export async function waitFor(cond: () => boolean, maxMs: number, everyMs = 5): Promise<boolean> {
  const until = now() + maxMs;
  while (!cond()) {
    if (now() > until) return false;
    await sleep(everyMs);
  }
  return true;
}

/** Full garbage collection, repeated so finalizers and weak maps settle. Needs --expose-gc. */
export async function fullGc(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') throw new Error('run with node --expose-gc');
  for (let i = 0; i < 4; i++) {
    gc();
    await tick();
  }
}

export interface Memory { heapUsed: number; rss: number; external: number; arrayBuffers: number }

export function memory(): Memory {
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers };
}

/**
 * CPU seconds (user + system) from a /proc stat file (Linux): `/proc/PID/stat` for a process (all
 * its threads), `/proc/thread-self/stat` for the calling thread; null when unreadable.
 */
export function procCpuSeconds(statPath: string): number | null {
  try {
    const f = readFileSync(statPath, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (100/s on Linux)
  } catch {
    return null;
  }
}
