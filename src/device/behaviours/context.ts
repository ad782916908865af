/** What a behaviour may touch: its device's properties, events, the virtual clock and its own RNG. */
import type { BehaviourOf, BehaviourSpec } from '../../catalog/schema.js';
import type { Random } from '../../contract/random.js';
import type { Scheduler, TimerHandle } from '../../contract/clock.js';
import type { Scalar } from '../../contract/wire.js';

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
  /** Emit an event; arguments default to the current values of the event's argument properties. */
  emit(ref: string, args?: Scalar[]): void;
  /** Timers owned by the device: all cancelled when it stops. */
  after(ms: number, fn: () => void): TimerHandle;
  every(ms: number, fn: () => void, firstDelayMs?: number): TimerHandle;
  /** Run one of the device's own actions (as its firmware would), with the usual effects. */
  act(ref: string): void;
  /** How lively the household is right now (1 = typical); scenarios modulate it by local time. */
  activity(): number;
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
}

export type BehaviourFactory<U extends BehaviourSpec['use']> = (spec: BehaviourOf<U>, ctx: BehaviourContext) => Behaviour;
export type AnyBehaviourFactory = (spec: BehaviourSpec, ctx: BehaviourContext) => Behaviour;

/** Next delay of a Poisson process whose rate scales with household activity. */
export function poissonDelayMs(ctx: BehaviourContext, meanSeconds: number): number {
  const activity = Math.max(0.05, ctx.activity());
  return ctx.rng.exponential((meanSeconds * 1000) / activity);
}

/** Report `ref` when it moved at least `threshold` since its last report. */
export function reportIfMoved(ctx: BehaviourContext, ref: string, threshold: number): void {
  const last = ctx.lastReported(ref);
  if (typeof last !== 'number' || Math.abs(ctx.num(ref) - last) >= threshold) ctx.report(ref);
}
