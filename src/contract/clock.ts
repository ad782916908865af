/**
 * Virtual time as simulation code sees it. Devices and the simulation read `now()` and schedule
 * work on a `Scheduler`; only a driver (sim/drivers.ts) decides how virtual time advances, so no
 * simulated behaviour ever reads the wall clock.
 */

export interface Clock {
  /** Virtual time, epoch milliseconds. */
  now(): number;
}

export interface TimerHandle {
  cancel(): void;
  readonly active: boolean;
}

export interface Scheduler extends Clock {
  /** Run `fn` at virtual time `time` (or now, if that is in the past). */
  at(time: number, fn: () => void): TimerHandle;
  /** Run `fn` after `delayMs` virtual milliseconds. */
  after(delayMs: number, fn: () => void): TimerHandle;
  /** Run `fn` every `periodMs` virtual milliseconds, first after `firstDelayMs` (default: one period). */
  every(periodMs: number, fn: () => void, firstDelayMs?: number): TimerHandle;
  /**
   * Whether an event due at `time`, scheduled at virtual time `scheduledAt`, would have run by
   * now (events run in order of time, then of scheduling): for work computed ahead instead of
   * scheduled step by step, to tell at a step's very instant whether it has happened yet.
   * Optional for schedulers of your own: without it, such a step counts as not run yet.
   */
  ranBefore?(time: number, scheduledAt: number): boolean;
  /**
   * `after`, for an owner that outlives its timers: `fn` runs only if `owner.generation` is what it
   * was when the timer was set (the owner stopped and started meanwhile: nothing runs). Optional
   * for schedulers of your own: without it, owners wrap `fn` in a check of their own.
   */
  afterWhile?(delayMs: number, fn: () => void, owner: { readonly generation: number }): TimerHandle;
}
