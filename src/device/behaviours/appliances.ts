/** Appliance behaviours: climate control (AC, purifier), switched loads, washer programs. */
import type { TimerHandle } from '../../contract/clock.js';
import type { Scalar } from '../../contract/wire.js';
import type { BehaviourOf } from '../../catalog/schema.js';
import type { BehaviourContext, BehaviourFactory } from './context.js';
import { reportIfMoved } from './context.js';

type WashDoor = NonNullable<BehaviourOf<'wash-cycle'>['door']>;

export const climateControl: BehaviourFactory<'climate-control'> = (spec, ctx) => {
  const tick = spec.tickSeconds * 1000;
  const minutes = spec.tickSeconds / 60;
  const setpoint = (): number => (typeof spec.setpoint === 'number' ? spec.setpoint : ctx.num(spec.setpoint));
  let watts = spec.power?.standbyW ?? 0;
  let energyKwh = spec.power?.energy ? ctx.num(spec.power.energy) : 0;
  // The physics runs on a continuous value; the property holds it snapped to the spec's step.
  let q = ctx.num(spec.quantity);
  let timer: TimerHandle | undefined;

  const update = (dtMinutes: number): void => {
    const on = ctx.get(spec.on) === true;
    const goal = on ? setpoint() : spec.ambient;
    const rate = on ? spec.approachPerMinute : spec.driftPerMinute;
    q += (goal - q) * (1 - Math.pow(1 - rate, dtMinutes)) + ctx.rng.normal(0, 0.01) * Math.min(1, dtMinutes);
    ctx.set(spec.quantity, q, { report: false });
    reportIfMoved(ctx, spec.quantity, spec.reportThreshold);
    const p = spec.power;
    if (p) {
      const effort = on ? Math.min(1, Math.abs(setpoint() - q) / p.fullEffortAt) : 0;
      watts = on ? p.minW + (p.maxW - p.minW) * effort : p.standbyW;
      if (p.property) {
        ctx.set(p.property, watts, { report: false });
        reportIfMoved(ctx, p.property, Math.max(1, p.maxW * 0.05));
      }
      if (p.energy) {
        energyKwh += (watts * dtMinutes) / 60 / 1000;
        ctx.set(p.energy, energyKwh, { report: false });
        reportIfMoved(ctx, p.energy, 0.1);
      }
    }
    // Off and settled at ambient, nothing changes any more: rest until switched on (standby
    // energy is booked when the appliance wakes up).
    if (!on && Math.abs(q - spec.ambient) < spec.reportThreshold / 4 && timer) {
      timer.cancel();
      timer = undefined;
      restingSince = ctx.clock.now();
    }
  };
  let restingSince: number | undefined;
  const wake = (): void => {
    if (timer) return;
    if (restingSince !== undefined && spec.power?.energy) {
      energyKwh += (spec.power.standbyW * (ctx.clock.now() - restingSince)) / 3_600_000 / 1000;
    }
    restingSince = undefined;
    timer = ctx.every(tick, () => update(minutes), ctx.rng.range(0, tick));
  };
  wake();
  return {
    onSet(ref) {
      if (ref === spec.on || ref === spec.setpoint) {
        wake();
        // Switching on or changing the target shows in the power draw right away.
        update(0);
      }
    },
  };
};

export const powerDraw: BehaviourFactory<'power-draw'> = (spec, ctx) => {
  const tick = spec.tickSeconds * 1000;
  let baseLoad = 0;
  let energyKwh = spec.energy ? ctx.num(spec.energy) / spec.energyScale : 0;
  let timer: TimerHandle | undefined;
  let since = ctx.clock.now();
  const on = (): boolean => ctx.get(spec.on) === true;
  const load = (): number => {
    if (!on()) return spec.standbyW;
    const level = spec.brightness ? ctx.num(spec.brightness) / 100 : 1;
    return spec.standbyW + baseLoad * level * (1 + ctx.rng.normal(0, 0.02));
  };
  let watts = spec.standbyW;
  /** Book the energy used since the last update at the last load, then take a new reading. */
  const publish = (): void => {
    const now = ctx.clock.now();
    energyKwh += (watts * (now - since)) / 3_600_000 / 1000;
    since = now;
    watts = Math.max(0, load());
    if (spec.power) {
      ctx.set(spec.power, watts * spec.scale, { report: false });
      reportIfMoved(ctx, spec.power, spec.reportThreshold);
    }
    if (spec.energy) {
      ctx.set(spec.energy, energyKwh * spec.energyScale, { report: false });
      reportIfMoved(ctx, spec.energy, spec.energyScale * 0.01);
    }
  };
  // Nothing to meter (a bulb without power properties), or switched off: no ticking.
  const metered = spec.power !== undefined || spec.energy !== undefined;
  const follow = (): void => {
    if (metered && on() && !timer) timer = ctx.every(tick, publish, ctx.rng.range(0, tick));
    if (!on() && timer) {
      timer.cancel();
      timer = undefined;
    }
  };
  baseLoad = ctx.rng.range(spec.watts[0], spec.watts[1]);
  follow();
  return {
    onSet(ref) {
      if (ref === spec.on && on()) baseLoad = ctx.rng.range(spec.watts[0], spec.watts[1]);
      if (ref === spec.on || ref === spec.brightness) {
        if (metered) publish();
        follow();
      }
    },
    onAction() {
      if (metered) publish();
      follow();
    },
  };
};

export const washCycle: BehaviourFactory<'wash-cycle'> = (spec, ctx) => {
  const v = spec.statusValues;
  let timer: { cancel(): void } | undefined;
  const mode = (): string => (spec.mode ? String(ctx.get(spec.mode)) : 'default');
  const programMinutes = (): number => spec.programMinutes[mode()] ?? spec.programMinutes['default'] ?? 60;
  const door = doorLock(spec.door, ctx, mode);
  const stopTimer = (): void => { timer?.cancel(); timer = undefined; };
  const run = (): void => {
    stopTimer();
    ctx.set(spec.status, v.running);
    door.running(ctx.num(spec.leftTime));
    timer = ctx.every(60_000, () => {
      const left = ctx.num(spec.leftTime) - 1;
      ctx.set(spec.leftTime, Math.max(0, left));
      if (left <= 0) {
        stopTimer();
        ctx.set(spec.status, v.done);
        door.ended();
        ctx.emit(spec.endEvent);
      } else door.running(left);
    });
  };
  return {
    onAction(ref): number | void {
      const status = ctx.num(spec.status);
      if (ref === spec.startAction) {
        if (status === v.running) return;
        ctx.set(spec.on, true);
        if (status !== v.paused || ctx.num(spec.leftTime) <= 0) ctx.set(spec.leftTime, programMinutes());
        run();
      } else if (ref === spec.pauseAction && status === v.running) {
        // Paused, the drum keeps its water: the door stays locked.
        stopTimer();
        ctx.set(spec.status, v.paused);
      }
    },
    onSet(ref, value: Scalar) {
      if (ref === spec.on && value === false) {
        stopTimer();
        ctx.set(spec.status, v.standby);
        ctx.set(spec.leftTime, 0);
        door.open();
      } else if (ref === spec.on && value === true && ctx.num(spec.status) !== v.running) {
        ctx.set(spec.status, v.standby);
      }
    },
  };
};

interface DoorLock {
  /** Running with `left` minutes to go. */
  running(left: number): void;
  /** The program ended: a hot one stays locked while it cools, then the door opens. */
  ended(): void;
  /** Switched off: the door opens. */
  open(): void;
}

const NO_DOOR: DoorLock = { running: () => undefined, ended: () => undefined, open: () => undefined };

/** The washer's door interlock (see the wash-cycle schema's `door`). */
function doorLock(spec: WashDoor | undefined, ctx: BehaviourContext, mode: () => string): DoorLock {
  if (!spec) return NO_DOOR;
  const dv = spec.values;
  let cooling: TimerHandle | undefined;
  const set = (value: number): void => {
    cooling?.cancel();
    cooling = undefined;
    ctx.set(spec.property, value);
  };
  const open = (): void => set(dv.open);
  return {
    open,
    running(left) {
      set(spec.dryModes.includes(mode()) ? dv.hotAir : left <= spec.spinMinutes ? dv.spinning : dv.waterLevel);
    },
    ended() {
      const hot = spec.dryModes.includes(mode()) ? dv.hotAir : spec.hotModes.includes(mode()) ? dv.hotWater : undefined;
      if (hot === undefined || spec.coolMinutes === 0) return open();
      set(hot);
      cooling = ctx.after(spec.coolMinutes * 60_000, open);
    },
  };
}
