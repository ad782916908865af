/** Things people use by hand at home: door locks (comings and goings), kettles and cookers (heating cycles). */
import type { TimerHandle } from '../../contract/clock.js';
import type { BehaviourFactory } from './context.js';
import { poissonNext, reportIfMoved } from './context.js';

export const doorLock: BehaviourFactory<'door-lock'> = (spec, ctx) => {
  /** Fill the event's argument properties (silently: they have no access of their own), then emit. */
  const operate = (operation: number, position: number, method: number): void => {
    ctx.set(spec.operation, operation, { report: false });
    ctx.set(spec.position, position, { report: false });
    ctx.set(spec.method, method, { report: false });
    if (spec.time) ctx.set(spec.time, Math.floor(ctx.clock.now() / 1000), { report: false });
    if (spec.operator) ctx.set(spec.operator, ctx.rng.int(1, 6), { report: false });
    ctx.emit(spec.event);
  };
  const m = spec.methodValues;
  const p = spec.positionValues;
  const next = (): void => {
    poissonNext(ctx, spec.meanIntervalSeconds, () => {
      // Someone arrives (a way in from outside) or leaves (the handle button inside), half each.
      const arriving = ctx.rng.chance(0.5);
      operate(spec.operationValues.unlock, arriving ? p.outside : p.inside, arriving ? ctx.rng.pick(m.outside) : m.inside);
      ctx.set(spec.state, spec.stateValues.unlocked);
      ctx.after(ctx.rng.range(spec.openSeconds[0], spec.openSeconds[1]) * 1000, () => {
        // The door is shut and the lock locks itself.
        operate(spec.operationValues.lock, p.inside, m.auto ?? m.inside);
        ctx.set(spec.state, spec.stateValues.locked);
        next();
      });
    });
  };
  ctx.set(spec.state, spec.stateValues.locked, { report: false });
  next();
  return {};
};

export const heatingCycle: BehaviourFactory<'heating-cycle'> = (spec, ctx) => {
  const target = (): number => (typeof spec.target === 'number' ? spec.target : ctx.num(spec.target));
  const setStatus = (key: 'idle' | 'heating' | 'keepWarm'): void => {
    const value = spec.statusValues?.[key];
    if (spec.status && value !== undefined) ctx.set(spec.status, value);
  };
  let phase: 'idle' | 'heating' | 'warm' | 'cooling' = 'idle';
  let t = ctx.num(spec.temperature);
  let timer: TimerHandle | undefined;
  let phaseTimer: TimerHandle | undefined;
  const stop = (): void => {
    timer?.cancel();
    timer = undefined;
    phaseTimer?.cancel();
    phaseTimer = undefined;
  };
  /** The temperature now; reported when it moved enough (readings on) or where it settles (`settled`). */
  const show = (settled: boolean): void => {
    ctx.set(spec.temperature, t, { report: false });
    if (settled) ctx.report(spec.temperature);
    else if (ctx.readings) reportIfMoved(ctx, spec.temperature, spec.reportThreshold);
  };
  /** Minutes for the water to get within half a degree (or half a threshold) of the room. */
  const coolMinutes = (): number => {
    const gap = Math.abs(t - spec.ambient);
    const close = Math.max(0.5, spec.reportThreshold / 2);
    return gap <= close ? 0 : Math.ceil(Math.log(close / gap) / Math.log(1 - spec.coolPerMinute));
  };

  const cool = (): void => {
    stop();
    phase = 'cooling';
    setStatus('idle');
    const settle = (): void => {
      stop();
      t = spec.ambient;
      show(true);
      phase = 'idle';
    };
    if (!ctx.readings) {
      // Without readings, the water is simply back at room temperature once it has cooled.
      phaseTimer = ctx.after(Math.max(1, coolMinutes()) * 60_000, settle);
      return;
    }
    timer = ctx.every(60_000, () => {
      t += (spec.ambient - t) * spec.coolPerMinute;
      if (coolMinutes() === 0) settle();
      else show(false);
    });
  };
  const heated = (): void => {
    stop();
    t = target();
    show(true);
    if (spec.endEvent) ctx.emit(spec.endEvent);
    const warm = ctx.rng.range(spec.keepWarmMinutes[0], spec.keepWarmMinutes[1]);
    if (warm >= 1 && spec.statusValues?.keepWarm !== undefined) {
      phase = 'warm';
      setStatus('keepWarm');
      phaseTimer = ctx.after(warm * 60_000, cool);
    } else cool();
  };
  const start = (): void => {
    if (phase === 'heating' || phase === 'warm') return;
    stop();
    phase = 'heating';
    setStatus('heating');
    const minutes = Math.max(1, Math.round(ctx.rng.range(spec.heatMinutes[0], spec.heatMinutes[1])));
    if (!ctx.readings) {
      phaseTimer = ctx.after(minutes * 60_000, heated);
      return;
    }
    const from = t;
    let done = 0;
    timer = ctx.every(60_000, () => {
      done++;
      if (done >= minutes) heated();
      else {
        t = from + ((target() - from) * done) / minutes;
        show(false);
      }
    });
  };
  const next = (): void => {
    poissonNext(ctx, spec.meanIntervalSeconds, () => {
      start();
      next();
    });
  };
  setStatus('idle');
  next();
  return {
    onAction(ref) {
      if (ref === spec.cancelAction && (phase === 'heating' || phase === 'warm')) cool();
    },
  };
};
