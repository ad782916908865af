/**
 * Helpers shared by the benchmark's orchestrator (run.js) and its workers.
 * Plain ESM; imports nothing from the library.
 */
import { performance } from 'node:perf_hooks';

/** Median of a list of numbers (mean of the two middle ones for an even count). */
export function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** Round to `d` decimals (numbers only). */
export function round(x, d = 1) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return x;
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

export function log(...args) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${args.join(' ')}\n`);
}

export const now = () => performance.now();

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const tick = () => new Promise((r) => setImmediate(r));

/**
 * Wait until `cond()` is true, polling every `everyMs`, for at most `maxMs`.
 * Resolves true when the condition held, false on timeout.
 */
export async function waitFor(cond, maxMs, everyMs = 5) {
  const until = now() + maxMs;
  while (!cond()) {
    if (now() > until) return false;
    await sleep(everyMs);
  }
  return true;
}

/** Full garbage collection, repeated so finalizers and weak maps settle. Needs --expose-gc. */
export async function fullGc() {
  if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');
  for (let i = 0; i < 4; i++) {
    globalThis.gc();
    await tick();
  }
}

export function memory() {
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers };
}
