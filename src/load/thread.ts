/** Talking to the bench's worker threads (generators, probe): answers awaited with a bound. */
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
