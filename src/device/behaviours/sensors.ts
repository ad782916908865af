/** Sensor behaviours: heartbeat, random walk with threshold reporting, motion, contact, battery drain. */
import type { BehaviourOf } from '../../catalog/schema.js';
import type { TimerHandle } from '../../contract/clock.js';
import type { Random } from '../../contract/random.js';
import type { Scalar } from '../../contract/wire.js';
import { conformNumber, type DeferredValue, type NumberRule } from '../property-store.js';
import type { Behaviour, BehaviourContext, BehaviourFactory } from './context.js';
import { poissonNext } from './context.js';

export const heartbeat: BehaviourFactory<'heartbeat'> = (spec, ctx) => {
  const period = spec.intervalSeconds * 1000;
  const beat = (): void => {
    for (const ref of spec.properties) ctx.report(ref);
    ctx.after(period + ctx.rng.range(0, spec.jitterSeconds * 1000), beat);
  };
  // Devices join at random points of their cycle, so a population does not beat in unison.
  ctx.after(ctx.rng.range(0, period), beat);
  return {};
};

/**
 * Steps a random walk computes ahead at a time; one that has not reached its threshold by then
 * runs the last of them as an event of its own and looks further from there.
 */
const LOOKAHEAD_STEPS = 32;

export const randomWalk: BehaviourFactory<'random-walk'> = (spec, ctx) => new RandomWalk(spec, ctx);

/**
 * A reading that wanders (a mean-reverting random walk), stepping every `intervalSeconds` and
 * reporting when it has moved `reportThreshold` from the value last reported.
 *
 * Most steps report nothing (in a day of `consumer-load`, 26,000 of 1.45 million did), so the walk
 * does not run each step as an event: that touched the device's state, cold in the cache, once a
 * step. It computes its next steps' values ahead, on a copy of its random stream, and the
 * scheduler runs only the first step that will report (or the last one computed), and one step
 * before it a timer that schedules it, so it takes its place among events at the same instant
 * about as a step scheduled by the step before would. The steps in between are applied when the
 * value is next read, written or reported (the store asks, see `DeferredValue`), or at that
 * event: the same draws from the same stream in the same order, so the values and the reports
 * are those of stepping each. A report of the property by anything else (a heartbeat) moves the
 * threshold's base: the walk picks its reporting step again from the values it computed. Events
 * at the very same millisecond as a step of a walk that was not run as an event may come in
 * another order than before (see docs/scenarios.md).
 */
class RandomWalk implements Behaviour, DeferredValue {
  private readonly ref: string;
  private readonly p: number;
  private readonly period: number;
  private readonly mean: number | undefined;
  private readonly reversion: number;
  private readonly sd: number;
  private readonly threshold: number;
  private readonly slack: number;
  /** The property's rule when it holds numbers: steps computed ahead are made to fit it here. */
  private readonly rule: NumberRule | null;
  /** The continuous value; the property holds it snapped to the spec's step. */
  private v: number;
  /** The value the last `step` stored (or would have). */
  private stored = 0;
  /** The first step not yet applied: its number, its time, and when stepping each would have scheduled it. */
  private stepNo = 0;
  private due: number;
  private dueScheduledAt: number;
  /** Stored values of the steps computed ahead, from step number `aheadFrom` (a plain array: lighter than a typed one). */
  private readonly ahead: number[] = [];
  private aheadFrom = 0;
  private aheadCount = 0;
  /** The step that runs as an event (the reporting one, or the last computed), and its timer. */
  private eventAt = Infinity;
  private timer: TimerHandle | null = null;
  /** Inside a step of the walk's own: reads and reports of the property leave the walk alone. */
  private busy = false;
  private stopped = false;

  constructor(spec: BehaviourOf<'random-walk'>, private readonly ctx: BehaviourContext) {
    this.ref = spec.property;
    this.p = ctx.index(spec.property);
    this.period = spec.intervalSeconds * 1000;
    // The spec's fields read once: specs of many shapes pass through here.
    this.mean = spec.mean;
    this.reversion = spec.reversion;
    this.sd = spec.step;
    this.threshold = spec.reportThreshold;
    this.slack = spec.step * 4;
    this.rule = ctx.numberRuleAt(this.p);
    this.v = ctx.numAt(this.p);
    const now = ctx.clock.now();
    // Where the scheduler would place a first run after a random part of the period.
    this.due = Math.max(Math.round(now + ctx.rng.range(0, this.period)), now);
    this.dueScheduledAt = now;
    ctx.defer(this.p, this);
    this.lookAhead();
  }

  onSet(ref: string, value: Scalar): void {
    if (this.stopped || ref !== this.ref || typeof value !== 'number') return;
    this.settle();
    this.v = value;
    this.lookAhead();
  }

  onStop(): void {
    this.settle();
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    this.ctx.defer(this.p, undefined);
  }

  settle(): void {
    if (this.busy || this.stopped) return;
    const clock = this.ctx.clock;
    const now = clock.now();
    // Steps before now have happened, and one at this very instant if it comes before the event
    // running now; the event's own step is left to it (it reports).
    this.busy = true;
    try {
      while (this.due < this.eventAt && (this.due < now || (this.due === now && clock.ranBefore?.(this.due, this.dueScheduledAt) === true))) this.apply();
    } finally {
      this.busy = false;
    }
  }

  reported(): void {
    if (this.busy || this.stopped) return;
    this.settle();
    this.choose();
  }

  /** One step from `v`: the new continuous value and the value stored. */
  private step(rng: Random, v: number, store: boolean): number {
    const pull = this.mean === undefined ? 0 : this.reversion * (this.mean - v);
    v += pull + rng.normal(0, this.sd);
    if (!store && this.rule !== null) this.stored = conformNumber(this.rule, v);
    else {
      const c = store ? this.ctx.putAt(this.p, v) : this.ctx.conformedAt(this.p, v);
      this.stored = typeof c === 'number' ? c : Number(c);
    }
    return clampTo(v, this.stored, this.slack);
  }

  /** Apply the step due (the real draws) and move to the next. */
  private apply(): void {
    this.v = this.step(this.ctx.rng, this.v, true);
    this.stepNo++;
    this.dueScheduledAt = this.due;
    this.due = Math.round(this.due + this.period);
  }

  /**
   * Compute the next steps' values from where the walk stands, up to the first that reports from
   * the value last reported (or LOOKAHEAD_STEPS), then choose the event's step.
   */
  private lookAhead(): void {
    const rng = this.ctx.rng.copy?.();
    if (rng === undefined) {
      // A stream that cannot be copied: the next step runs as an event, as every step then does.
      this.ahead[0] = NaN;
      this.aheadFrom = this.stepNo;
      this.aheadCount = 1;
      this.choose();
      return;
    }
    const last = this.ctx.lastReportedAt(this.p);
    let v = this.v;
    let k = 0;
    while (k < LOOKAHEAD_STEPS) {
      v = this.step(rng, v, false);
      this.ahead[k++] = this.stored;
      if (typeof last !== 'number' || Math.abs(this.stored - last) >= this.threshold) break;
    }
    this.aheadFrom = this.stepNo;
    this.aheadCount = k;
    this.choose();
  }

  /** Schedule the first step computed ahead that reports from the value last reported, or the last one. */
  private choose(): void {
    const first = this.stepNo - this.aheadFrom;
    if (first >= this.aheadCount) {
      this.lookAhead();
      return;
    }
    const last = this.ctx.lastReportedAt(this.p);
    let t = this.due;
    let before = this.dueScheduledAt;
    for (let k = first; k < this.aheadCount - 1; k++) {
      if (typeof last !== 'number' || Math.abs(this.ahead[k]! - last) >= this.threshold) break;
      before = t;
      t = Math.round(t + this.period);
    }
    // An event already coming no later stays: if its step does not report after all, it runs
    // like any other and chooses again (a heartbeat's report of the reading mostly moves the
    // reporting step later, and moving the timer each time cost more than that step).
    if (this.timer !== null && t >= this.eventAt) return;
    this.timer?.cancel();
    this.eventAt = t;
    const clock = this.ctx.clock;
    // Scheduled as a walk stepping each would schedule it: by the step before, or now if that is past.
    this.timer = before > clock.now() ? clock.at(before, this.relay) : clock.at(t, this.fire);
  }

  /** The timer one step before the event's: it schedules the event. */
  private readonly relay = (): void => {
    this.timer = this.ctx.clock.at(this.eventAt, this.fire);
  };

  private readonly fire = (): void => this.run();

  /** The event's step: the steps before it applied, it runs as a step-by-step walk's would, then the next is chosen. */
  private run(): void {
    this.timer = null;
    this.settle();
    const ctx = this.ctx;
    this.busy = true;
    try {
      this.apply();
      const last = ctx.lastReportedAt(this.p);
      if (typeof last !== 'number' || Math.abs(this.stored - last) >= this.threshold) ctx.reportAt(this.p);
    } finally {
      this.busy = false;
    }
    this.eventAt = Infinity;
    this.choose();
  }
}

/** Keep a continuous value within `slack` of the stored one (so range clamping holds it in bounds). */
function clampTo(v: number, stored: number, slack: number): number {
  return Math.min(stored + slack, Math.max(stored - slack, v));
}

export const motion: BehaviourFactory<'motion'> = (spec, ctx) => {
  let lastTrigger = -Infinity;
  let clear: TimerHandle | undefined;
  const next = (): void => {
    poissonNext(ctx, spec.meanIntervalSeconds, () => {
      const now = ctx.clock.now();
      if (now - lastTrigger >= spec.numbSeconds * 1000) {
        lastTrigger = now;
        // The sensor reports motion only; the state clears once no motion came for clearSeconds.
        if (spec.property) {
          const property = spec.property;
          ctx.set(property, true);
          if (spec.clearSeconds !== undefined) {
            clear?.cancel();
            clear = ctx.after(spec.clearSeconds * 1000, () => ctx.set(property, false));
          }
        }
        ctx.emit(spec.event);
      }
      next();
    });
  };
  next();
  return {};
};

export const contact: BehaviourFactory<'contact'> = (spec, ctx) => {
  const setOpen = (open: boolean): void => {
    ctx.set(spec.property, open ? spec.openValue : !spec.openValue);
    const ev = open ? spec.openEvent : spec.closeEvent;
    if (ev) ctx.emit(ev);
  };
  const next = (): void => {
    poissonNext(ctx, spec.meanIntervalSeconds, () => {
      setOpen(true);
      ctx.after(ctx.rng.range(spec.openSeconds[0], spec.openSeconds[1]) * 1000, () => {
        setOpen(false);
        next();
      });
    });
  };
  ctx.set(spec.property, !spec.openValue, { report: false });
  next();
  return {};
};

export const batteryDrain: BehaviourFactory<'battery-drain'> = (spec, ctx) => {
  let warned = false;
  const period = spec.tickSeconds * 1000;
  let v = ctx.num(spec.property);
  ctx.every(period, () => {
    v = Math.max(spec.min, v - (spec.perDay * spec.tickSeconds) / 86400);
    ctx.set(spec.property, v, { report: false });
    const now = ctx.num(spec.property);
    const last = ctx.lastReported(spec.property);
    if (typeof last !== 'number' || Math.abs(now - last) >= spec.reportThreshold) ctx.report(spec.property);
    if (spec.lowThreshold !== undefined && !warned && now < spec.lowThreshold) {
      warned = true;
      if (spec.lowEvent) ctx.emit(spec.lowEvent);
    }
  }, ctx.rng.range(0, period));
  return {};
};
