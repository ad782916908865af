/**
 * Waiting on the network side of a run (publishes written, sessions connected or gone, the
 * platform caught up): a promise that resolves when its condition becomes true, woken by the
 * events that can make it true, never by polling. The bound, where there is one, is wall-clock
 * time, like the network's: it never touches the virtual clock or the trace.
 */

/** Subscribes `wake` to whatever may make a condition true; returns how to unsubscribe. */
export type Signal = (wake: () => void) => () => void;

/**
 * Resolves true once `cond()` holds (at once if it already does), checked again each time
 * `signal` fires; resolves false after `timeoutMs` without it.
 */
export function when(cond: () => boolean, signal: Signal, timeoutMs: number): Promise<boolean> {
  if (cond()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      unsubscribe();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    const unsubscribe = signal(() => { if (cond()) finish(true); });
  });
}

/** Resolves true when `p` settles within `timeoutMs`, false otherwise (a rejection counts as settled). */
export function within(p: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs); });
  return Promise.race([p.then(() => true, () => true), gaveUp]).finally(() => clearTimeout(timer));
}

interface Waiter { test: (n: number) => boolean; resolve: (ok: boolean) => void; timer: NodeJS.Timeout | null }

/**
 * A count others can wait on (publishes in flight, sessions connected, work queued): `until()`
 * resolves when a change makes its test true. Changing the count costs one comparison while
 * nobody waits, so it can sit on the publish path.
 */
export class Gauge {
  private n = 0;
  private waiters: Waiter[] = [];

  get value(): number { return this.n; }

  add(delta: number): void {
    this.n += delta;
    if (this.waiters.length) this.wake();
  }

  /**
   * Resolves true once `test(value)` holds (at once if it already does); with `timeoutMs`,
   * resolves false if it does not hold within that time.
   */
  until(test: (n: number) => boolean, timeoutMs?: number): Promise<boolean> {
    if (test(this.n)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w: Waiter = { test, resolve, timer: null };
      if (timeoutMs !== undefined) w.timer = setTimeout(() => this.settle(w, false), timeoutMs);
      this.waiters.push(w);
    });
  }

  private wake(): void {
    for (let i = 0; i < this.waiters.length;) {
      const w = this.waiters[i]!;
      if (w.test(this.n)) this.settle(w, true);
      else i++;
    }
  }

  private settle(w: Waiter, ok: boolean): void {
    if (w.timer) clearTimeout(w.timer);
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
    w.resolve(ok);
  }
}
