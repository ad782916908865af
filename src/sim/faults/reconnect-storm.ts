/**
 * `reconnect-storm`: a share of the sessions drop at once without DISCONNECT and reconnect by
 * themselves (backoff with jitter); they are announced together once all are back.
 */
import { performance } from 'node:perf_hooks';
import { pickShare, round, sum, type FaultHandler } from './context.js';
import { measureDip } from './dip.js';
import { newRecord } from './record.js';

export const reconnectStorm: FaultHandler<'reconnect-storm'> = (f, run) => {
  const { ctx } = run;
  const victims = pickShare(ctx.pool.sessions, f.share, run.rng);
  const r = run.record(newRecord('reconnect-storm', run.at, run.at, victims.length));
  run.step(run.at, async () => {
    if (ctx.broker()?.isDown) {
      r.details = { skipped: 'the broker is down' };
      return;
    }
    await ctx.pool.settle();
    run.notify('start', r);
    const before = ctx.platform.online;
    const attempts0 = sum(victims, (s) => s.reconnectAttempts);
    const t0 = performance.now();
    for (const s of victims) {
      s.holdAnnouncement();
      s.drop();
    }
    const results = await Promise.allSettled(victims.map((s) => s.whenConnected(ctx.reconnectBoundMs)));
    const reconnectMs = performance.now() - t0;
    for (const s of victims) s.goOnline();
    await ctx.pool.settle();
    r.details = {
      reconnectMs: round(reconnectMs), boundMs: ctx.reconnectBoundMs,
      notBack: results.filter((x) => x.status === 'rejected').length,
      reconnectAttempts: sum(victims, (s) => s.reconnectAttempts) - attempts0,
      ...(await measureDip(ctx, run.at, before)),
    };
    run.notify('end', r);
  });
};
