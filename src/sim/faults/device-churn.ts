/**
 * `device-churn`: over `duration`, a share of the sessions leave one at a time, cleanly ("offline"
 * states, then DISCONNECT), each at a random moment, and come back `offlineFor` later.
 */
import { pickShare, type FaultHandler } from './context.js';
import { outage } from './outage.js';
import { newRecord, type DeviceChurnDetails } from './record.js';

export const deviceChurn: FaultHandler<'device-churn'> = (f, run) => {
  const { ctx, rng } = run;
  const victims = pickShare(ctx.pool.sessions, f.share, rng);
  const span = f.duration;
  const away = f.offlineFor;
  const end = run.at + span + away;
  const r = run.record(newRecord('device-churn', run.at, end, victims.length));
  const details: DeviceChurnDetails = { left: 0, returned: 0 };
  r.details = details;
  run.schedule(run.at, () => run.notify('start', r));
  for (const s of victims) {
    const leave = run.at + rng.int(0, Math.max(0, span - 1));
    outage(ctx, {
      from: leave, until: leave + away, victims: [s], how: 'leave',
      down: () => { details.left++; },
      back: (back) => { details.returned += back.withBroker ? 1 : 1 - back.notBack; },
    });
  }
  run.step(end, () => run.notify('end', r));
};
