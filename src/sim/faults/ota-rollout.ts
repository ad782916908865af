/**
 * `ota-rollout`: devices (of `model`, or all; a share of their sessions) get `firmware` in
 * `waves`, `interval` apart; each wave's sessions reboot for `rebootFor` (wills fire). A Zigbee/BLE
 * child's update goes through its gateway, whose session reboots with it.
 */
import type { Device } from '../../device/device.js';
import { pickShare, type FaultHandler } from './context.js';
import { outage } from './outage.js';
import { newRecord, type OtaRolloutDetails } from './record.js';

export const otaRollout: FaultHandler<'ota-rollout'> = (f, run) => {
  const { ctx } = run;
  const matches = (d: Device): boolean => !f.model || d.model.model === f.model;
  const eligible = ctx.pool.sessions.filter((s) => matches(s.device) || s.children.some(matches));
  const victims = pickShare(eligible, f.share, run.rng);
  const waves = Math.min(f.waves, Math.max(1, victims.length));
  const end = run.at + (waves - 1) * f.interval + f.rebootFor;
  const r = run.record(newRecord('ota-rollout', run.at, end, victims.length));
  const details: OtaRolloutDetails = { firmware: f.firmware, waves, updatedDevices: 0 };
  r.details = details;
  run.schedule(run.at, () => run.notify('start', r));
  for (let w = 0; w < waves; w++) {
    const t = run.at + w * f.interval;
    outage(ctx, {
      from: t, until: t + f.rebootFor, victims: victims.filter((_, k) => k % waves === w), how: 'network',
      beforeDown: (s) => {
        for (const d of [s.device, ...s.children]) {
          if (!matches(d)) continue;
          d.setFirmware(f.firmware);
          details.updatedDevices++;
        }
      },
    });
  }
  run.step(end, () => run.notify('end', r));
};
