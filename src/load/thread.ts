/** Talking to the bench's worker threads (generators, probe): answers awaited with a bound. */
import { readFileSync } from 'node:fs';
import type { EventLoopUtilization } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import { AiotSimError } from '../errors.js';
import type { FromGenerator, FromProbe } from './protocol.js';

/** The bench could not run (`environment`: a worker failed, the broker is unreachable...) or was misused (`input`). */
export class BenchError extends AiotSimError {
  constructor(message: string, kind: 'input' | 'environment' = 'input') { super(kind === 'input' ? 'E_BENCH_INPUT' : 'E_BENCH', kind, message); }
}

/**
 * The first message of `w` that `pick` maps to a value. Rejects with a BenchError naming `what`
 * when the worker reports a fatal error, fails or exits first; after `timeoutMs` it rejects too,
 * or resolves with `onTimeout()` when given (a bound that is not a failure).
 */
export function answer<T>(
  w: Worker, pick: (m: FromGenerator | FromProbe) => T | undefined, what: string, timeoutMs: number, onTimeout?: () => T,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const fail = (message: string): void => { cleanup(); reject(new BenchError(`${what}: ${message}`, 'environment')); };
    const timer = setTimeout(() => {
      if (onTimeout) { cleanup(); resolve(onTimeout()); } else fail(`no answer within ${Math.round(timeoutMs / 1000)} s`);
    }, timeoutMs);
    const onMsg = (m: FromGenerator | FromProbe): void => {
      if (m.type === 'fatal') { fail(m.error); return; }
      const v = pick(m);
      if (v !== undefined) { cleanup(); resolve(v); }
    };
    const onExit = (code: number): void => fail(`worker exited (${code})`);
    const onError = (err: Error): void => fail(err.message);
    const cleanup = (): void => { clearTimeout(timer); w.off('message', onMsg); w.off('exit', onExit); w.off('error', onError); };
    w.on('message', onMsg);
    w.once('exit', onExit);
    w.once('error', onError);
  });
}

/** Event-loop utilisation (0..1, three decimals) between two readings of one thread. */
export function utilisationBetween(start: EventLoopUtilization, end: EventLoopUtilization): number {
  return Math.round(performance.eventLoopUtilization(end, start).utilization * 1000) / 1000;
}

/**
 * CPU seconds (user + system) the calling thread has used, from Linux's /proc/thread-self/stat;
 * null elsewhere. Unlike event-loop utilisation, it does not count time the thread waited for a
 * core, so it stays meaningful on a busy machine.
 */
export function threadCpuSeconds(): number | null {
  return procCpuSeconds('/proc/thread-self/stat');
}

/** CPU seconds (user + system) process `pid` has used (all its threads), from /proc; null when unreadable. */
export function processCpuSeconds(pid: number): number | null {
  return procCpuSeconds(`/proc/${pid}/stat`);
}

function procCpuSeconds(path: string): number | null {
  try {
    // Fields after the command name (which may contain spaces, so split after its closing parenthesis).
    const f = readFileSync(path, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS; // utime, stime
  } catch {
    return null;
  }
}

/** USER_HZ: Linux reports /proc times in 1/100 s on every architecture Node runs on. */
const CLOCK_TICKS = 100;
