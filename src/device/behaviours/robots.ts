/** Behaviours with a life of their own: robot vacuums and speakers. */
import type { TimerHandle } from '../../contract/clock.js';
import type { BehaviourFactory } from './context.js';

export const vacuum: BehaviourFactory<'vacuum'> = (spec, ctx) => {
  const s = spec.statusValues;
  let timer: TimerHandle | undefined;
  let cleanLeftMin = 0;
  const stop = (): void => { timer?.cancel(); timer = undefined; };
  const setCharging = (charging: boolean): void => {
    if (spec.chargingState && spec.chargingStateValues) {
      ctx.set(spec.chargingState, charging ? spec.chargingStateValues.charging : spec.chargingStateValues.notCharging);
    }
  };
  const charge = (): void => {
    stop();
    ctx.set(spec.status, s.charging);
    setCharging(true);
    timer = ctx.every(60_000, () => {
      const b = Math.min(100, ctx.num(spec.battery) + spec.chargePerMinute);
      ctx.set(spec.battery, b);
      if (b >= 100) {
        stop();
        ctx.set(spec.status, s.idle);
        setCharging(false);
      }
    });
  };
  const goHome = (lowBattery: boolean): void => {
    stop();
    if (lowBattery && spec.lowBatteryEvent) ctx.emit(spec.lowBatteryEvent);
    ctx.set(spec.status, s.goCharging);
    setCharging(false);
    timer = ctx.after(spec.returnMinutes * 60_000, charge);
  };
  const sweep = (): void => {
    stop();
    cleanLeftMin = ctx.rng.range(spec.cleanMinutes[0], spec.cleanMinutes[1]);
    ctx.set(spec.status, s.sweeping);
    setCharging(false);
    timer = ctx.every(60_000, () => {
      const b = Math.max(0, ctx.num(spec.battery) - spec.drainPerMinute);
      ctx.set(spec.battery, b);
      cleanLeftMin -= 1;
      if (b <= spec.returnAtPercent) goHome(true);
      else if (cleanLeftMin <= 0) {
        if (spec.completedEvent) ctx.emit(spec.completedEvent);
        goHome(false);
      }
    });
  };
  return {
    onAction(ref): number | void {
      if (ref === spec.startAction) {
        if (ctx.num(spec.battery) <= spec.returnAtPercent) return -4004;
        sweep();
      } else if (ref === spec.stopAction) {
        stop();
        ctx.set(spec.status, s.idle);
      } else if (ref === spec.chargeAction) {
        goHome(false);
      }
    },
  };
};

export const mediaPlayer: BehaviourFactory<'media-player'> = (spec, ctx) => {
  const st = spec.stateValues;
  let end: TimerHandle | undefined;
  const play = (): void => {
    end?.cancel();
    ctx.set(spec.playingState, st.playing);
    const minutes = ctx.rng.range(spec.sessionMinutes[0], spec.sessionMinutes[1]);
    end = ctx.after(minutes * 60_000, () => ctx.set(spec.playingState, st.stopped));
  };
  return {
    onAction(ref) {
      if (ref === spec.playAction || ref === spec.nextAction) play();
      else if (ref === spec.pauseAction) {
        end?.cancel();
        if (ctx.num(spec.playingState) === st.playing) ctx.set(spec.playingState, st.paused);
      }
    },
  };
};

export const voiceAssistant: BehaviourFactory<'voice-assistant'> = (spec, ctx) => ({
  onUser(input) {
    if (input.kind !== 'voice') return;
    ctx.set(spec.textProperty, input.text, { report: false });
    ctx.set(spec.userProperty, input.uid, { report: false });
    ctx.emit(spec.event);
    if (input.music && spec.musicAction) ctx.act(spec.musicAction);
  },
});
