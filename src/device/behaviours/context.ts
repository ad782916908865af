/** What a behaviour may touch: its device's properties, events, the virtual clock and its own RNG. */
import type { BehaviourOf, BehaviourSpec } from '../../catalog/schema.js';
import type { Random } from '../../contract/random.js';
import type { Scheduler, TimerHandle } from '../../contract/clock.js';
import type { Scalar } from '../../contract/wire.js';
import type { DeferredValue, NumberRule } from '../property-store.js';

export interface BehaviourContext {
  readonly clock: Scheduler;
  readonly rng: Random;
  get(ref: string): Scalar;
  num(ref: string): number;
  /**
   * Update a property. By default a changed value of a notify property is reported; pass
   * `report: false` to keep it silent (thresholded sensors) or `true` to report it anyway.
   */
  set(ref: string, value: Scalar, opts?: { report?: boolean }): void;
  /** Report the current value (heartbeat), subject to the per-second coalescing. */
  report(ref: string): void;
  /** The value last reported for a property, or undefined if never. */
  lastReported(ref: string): Scalar | undefined;
  /**
   * A property's index, for the `...At` forms of the calls above: a behaviour that touches the
   * same property on every step resolves its key once.
   */
  index(ref: string): number;
  numAt(i: number): number;
  setAt(i: number, value: Scalar, report?: boolean): void;
  reportAt(i: number): void;
  lastReportedAt(i: number): Scalar | undefined;
  /**
   * Hand property `i`'s value to `source`, which computes it ahead (undefined: back to the
   * store); `putAt` is its own write, bringing the value up to now, and `conformedAt` what the
   * store would make of a value.
   */
  defer(i: number, source: DeferredValue | undefined): void;
  putAt(i: number, value: Scalar): Scalar;
  conformedAt(i: number, value: Scalar): Scalar;
  /** Property `i`'s rule when it holds numbers, for `conformNumber` (property-store.ts), else null. */
  numberRuleAt(i: number): NumberRule | null;
  /** Emit an event; arguments default to the current values of the event's argument properties. */
  emit(ref: string, args?: Scalar[]): void;
  /** Timers owned by the device: all cancelled when it stops. */
  after(ms: number, fn: () => void): TimerHandle;
  every(ms: number, fn: () => void, firstDelayMs?: number): TimerHandle;
  /** Run one of the device's own actions (as its firmware would), with the usual effects. */
  act(ref: string): void;
  /** How lively the household is right now (1 = typical); scenarios modulate it by local time. */
  activity(): number;
  /** The most `activity()` ever returns (the peak of the daily rhythm). */
  readonly peakActivity: number;
  /**
   * Whether readings run (the scenario's telemetry). A behaviour that is use, not readings, but
   * moves a quantity as it goes (a kettle's water temperature) reports only where it lands when off.
   */
  readonly readings: boolean;
}

/** Something a person does to the device itself (not through the network). */
export type UserInput = { kind: 'voice'; uid: string; text: string; music: boolean };

export interface Behaviour {
  /** Called when a person interacts with the device directly. */
  onUser?(input: UserInput): void;
  /** Called after an accepted set_properties write. */
  onSet?(ref: string, value: Scalar): void;
  /** Called for an action; return a MIoT code to refuse (default 0). */
  onAction?(ref: string, args: Scalar[]): number | void;
  /** Called when the device stops (its timers are cancelled next). */
  onStop?(): void;
}

export type BehaviourFactory<U extends BehaviourSpec['use']> = (spec: BehaviourOf<U>, ctx: BehaviourContext) => Behaviour;
export type AnyBehaviourFactory = (spec: BehaviourSpec, ctx: BehaviourContext) => Behaviour;

/**
 * Call `fire` at the next event of a Poisson process that averages one per `meanSeconds` at
 * typical activity and follows the household's liveliness: candidates come at the peak rate and
 * each is kept with probability activity / peak (thinning, exact for any daily rhythm). (Drawing
 * one delay from the rate at the moment of drawing would strand a process drawn at night, when
 * the home is quiet, for days.)
 */
export function poissonNext(ctx: BehaviourContext, meanSeconds: number, fire: () => void): void {
  const peak = Math.max(ctx.peakActivity, Number.MIN_VALUE);
  const meanMs = (meanSeconds * 1000) / peak;
  // One closure for the decision, not one per candidate (most candidates are thinned away).
  const decide = (): void => {
    if (ctx.rng.next() * peak < ctx.activity()) fire();
    else candidate();
  };
  const candidate = (): void => {
    ctx.after(ctx.rng.exponential(meanMs), decide);
  };
  candidate();
}

/** Report `ref` when it moved at least `threshold` since its last report. */
export function reportIfMoved(ctx: BehaviourContext, ref: string, threshold: number): void {
  const last = ctx.lastReported(ref);
  if (typeof last !== 'number' || Math.abs(ctx.num(ref) - last) >= threshold) ctx.report(ref);
}
