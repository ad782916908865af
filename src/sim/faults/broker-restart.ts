/**
 * `broker-restart`: the embedded broker goes down at the fault's start (every session drops, wills
 * fire) and comes back `duration` later; sessions find it again by themselves (backoff with jitter)
 * and are announced together, in population order, once every one is back.
 */
import { performance } from 'node:perf_hooks';
import { round, type FaultHandler } from './context.js';
import { measureDip } from './dip.js';
import { newRecord } from './record.js';

/** How long every client gets to notice that the broker went away. */
const NOTICE_MS = 5000;

export const brokerRestart: FaultHandler<'broker-restart'> = (f, run) => {
  const { ctx } = run;
  const until = run.at + f.duration;
  const r = run.record(newRecord('broker-restart', run.at, until, ctx.pool.sessions.length));
  let before = 0;
  run.step(run.at, async () => {
    const broker = ctx.broker();
    if (!broker || broker.isDown) {
      r.details = { skipped: broker ? 'the broker is already down' : 'no embedded broker to restart' };
      return;
    }
    await ctx.pool.settle();
    before = ctx.platform.online;
    for (const s of ctx.pool.sessions) s.holdAnnouncement();
    await broker.goDown();
    // Every client notices before the clock moves on, so what households do next (skip an
    // app session, fail a command) does not depend on how fast closes propagate.
    await ctx.pool.allDown(NOTICE_MS);
    await ctx.clients.gone(NOTICE_MS);
    r.details = { onlineBefore: before, onlineDuring: ctx.platform.online };
    run.notify('start', r);
  });
  run.step(until, async () => {
    const broker = ctx.broker();
    if (!broker || !broker.isDown || r.details?.skipped) return;
    const attempts0 = ctx.pool.reconnectAttempts;
    const t0 = performance.now();
    await broker.comeUp();
    // Sessions a network fault holds down come back with their own fault.
    const waiting = ctx.pool.sessions.filter((s) => !s.held);
    const results = await Promise.allSettled(waiting.map((s) => s.whenConnected(ctx.reconnectBoundMs)));
    const reconnectMs = performance.now() - t0;
    await ctx.clients.back(ctx.reconnectBoundMs);
    for (const s of waiting) s.goOnline();
    await ctx.pool.settle();
    const onlineMs = performance.now() - t0;
    r.details = {
      ...r.details,
      reconnectMs: round(reconnectMs), onlineMs: round(onlineMs), boundMs: ctx.reconnectBoundMs,
      notBack: results.filter((x) => x.status === 'rejected').length,
      reconnectAttempts: ctx.pool.reconnectAttempts - attempts0,
      ...(await measureDip(ctx, run.at, before)),
    };
    run.notify('end', r);
  });
};
