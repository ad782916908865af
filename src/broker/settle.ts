/**
 * Waiting for work in flight to finish without polling: whoever moves the work calls `moved()`
 * (one item finished) or `check()` (something `quiet()` reads changed), and `done` resolves as soon
 * as `quiet()` holds. Bounded two ways: `stallMs` after the last `moved()` (work that will never
 * finish, such as a publish whose client vanished, must not hold a restart up) and `maxMs` in all.
 */

export type SettleOutcome = 'quiet' | 'stalled' | 'timeout';

export interface Settling {
  /** One item of work finished: check `quiet()` and start the stall bound again. */
  readonly moved: () => void;
  /** Something `quiet()` depends on changed: check it. */
  readonly check: () => void;
  /** How the wait ended; once settled, later calls do nothing. */
  readonly done: Promise<SettleOutcome>;
}

export function settle(quiet: () => boolean, stallMs: number, maxMs: number): Settling {
  let finish: (how: SettleOutcome) => void = () => undefined;
  const done = new Promise<SettleOutcome>((resolve) => {
    let ended = false;
    finish = (how) => {
      if (ended) return;
      ended = true;
      clearTimeout(stall);
      clearTimeout(cap);
      resolve(how);
    };
  });
  let stall = setTimeout(() => finish('stalled'), stallMs);
  const cap = setTimeout(() => finish('timeout'), maxMs);
  const check = (): void => {
    if (quiet()) finish('quiet');
  };
  const moved = (): void => {
    clearTimeout(stall);
    stall = setTimeout(() => finish('stalled'), stallMs);
    check();
  };
  check();
  return { moved, check, done };
}
