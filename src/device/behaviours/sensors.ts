/** Sensor behaviours: heartbeat, random walk with threshold reporting, motion, contact, battery drain. */
import type { TimerHandle } from '../../contract/clock.js';
import type { BehaviourFactory } from './context.js';
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

export const randomWalk: BehaviourFactory<'random-walk'> = (spec, ctx) => {
  const period = spec.intervalSeconds * 1000;
  // The walk runs on a continuous value; the property holds it snapped to the spec's step.
  const p = ctx.index(spec.property);
  let v = ctx.numAt(p);
  // The spec's fields read once: specs of many shapes pass through here, and reading their fields
  // at every step (a million times a simulated day) was a measurable share of the walk's time.
  const { mean, reversion, step: sd, reportThreshold } = spec;
  const slack = sd * 4;
  const rng = ctx.rng;
  const step = (): void => {
    const pull = mean === undefined ? 0 : reversion * (mean - v);
    v += pull + rng.normal(0, sd);
    ctx.setAt(p, v, false);
    const now = ctx.numAt(p);
    v = clampTo(v, now, slack);
    const last = ctx.lastReportedAt(p);
    if (typeof last !== 'number' || Math.abs(now - last) >= reportThreshold) ctx.reportAt(p);
  };
  ctx.every(period, step, ctx.rng.range(0, period));
  return { onSet(ref, value) { if (ref === spec.property && typeof value === 'number') v = value; } };
};

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
