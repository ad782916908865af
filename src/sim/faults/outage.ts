/**
 * Sessions off the network for a while, and the faults that are nothing more: `devices-offline`
 * (a random share), `region-outage` (every session of a region), `gateway-reboot` (a share of the
 * hubs, with their children). `outage()` is also the building block of churn (clean leaves) and
 * OTA rollouts (reboot waves).
 */
import { performance } from 'node:perf_hooks';
import type { DeviceSession } from '../session.js';
import { pickShare, round, type FaultContext, type FaultHandler, type FaultRun } from './context.js';
import { measureDip } from './dip.js';
import { newRecord, type FaultRecord, type OutageDetails } from './record.js';

/** How an outage's sessions came back. */
export type OutageEnd =
  /** The network was back while the broker was down: the sessions retry by themselves, and the broker's restart announces them. */
  | { withBroker: true }
  | {
    withBroker: false;
    /** Wall-clock time until every session reconnected (or gave up), to a tenth of a millisecond. */
    reconnectMs: number;
    /** Sessions not back within the bound. */
    notBack: number;
    /** The platform's online count just before the sessions went down. */
    onlineBefore: number;
  };

export interface OutageOptions {
  /** Virtual times the sessions go down and come back (epoch ms). */
  from: number;
  until: number;
  victims: readonly DeviceSession[];
  /** `network`: the connection drops without DISCONNECT (wills fire); `leave`: "offline" states, then DISCONNECT. */
  how: 'network' | 'leave';
  /** Called for each session just before it goes down (an OTA update installs its firmware). */
  beforeDown?: (s: DeviceSession) => void;
  /** Called once every session is down. */
  down?: () => void;
  /** Called once they are back (awaited: the clock waits for it). */
  back?: (end: OutageEnd) => Promise<void> | void;
}

/**
 * Sessions go down at `from` and come back at `until`, announcing themselves in population order.
 * Both steps run on the work queue, after what devices already sent has been written.
 */
export function outage(ctx: FaultContext, o: OutageOptions): void {
  let before = 0;
  ctx.scheduler.at(o.from, () => {
    ctx.work.push(async () => {
      await ctx.pool.settle();
      before = ctx.platform.online;
      for (const v of o.victims) {
        o.beforeDown?.(v);
        if (o.how === 'leave') await v.leave();
        else v.suspend();
      }
      o.down?.();
    });
  });
  ctx.scheduler.at(o.until, () => {
    ctx.work.push(async () => {
      if (ctx.broker()?.isDown) {
        // The network is back but the broker is not (a restart overlaps): the sessions retry by
        // themselves, and the restart announces them when the broker is back.
        for (const v of o.victims) v.resume(ctx.reconnectBoundMs).catch(() => undefined);
        await o.back?.({ withBroker: true });
        return;
      }
      const t0 = performance.now();
      const results = await Promise.allSettled(o.victims.map((v) => v.resume(ctx.reconnectBoundMs)));
      const reconnectMs = round(performance.now() - t0);
      for (const v of o.victims) v.goOnline();
      await ctx.pool.settle();
      const notBack = results.filter((x) => x.status === 'rejected').length;
      await o.back?.({ withBroker: false, reconnectMs, notBack, onlineBefore: before });
    });
  });
}

/**
 * `victims` lose their network from the fault's start until `until`; the fault is announced as
 * they are down and as they are back, `fill` taking what was measured.
 */
function networkLoss(run: FaultRun, r: FaultRecord, victims: readonly DeviceSession[], until: number, fill: (d: OutageDetails) => void): void {
  outage(run.ctx, {
    from: run.at, until, victims, how: 'network',
    down: () => run.notify('start', r),
    back: async (end) => {
      fill(end.withBroker ? { backWithBroker: true }
        : { reconnectMs: end.reconnectMs, notBack: end.notBack, ...(await measureDip(run.ctx, run.at, end.onlineBefore)) });
      run.notify('end', r);
    },
  });
}

export const devicesOffline: FaultHandler<'devices-offline'> = (f, run) => {
  const victims = pickShare(run.ctx.pool.sessions, f.share, run.rng);
  const until = run.at + f.duration;
  const r = run.record(newRecord('devices-offline', run.at, until, victims.length));
  networkLoss(run, r, victims, until, (d) => { r.details = { ...r.details, ...d }; });
};

export const regionOutage: FaultHandler<'region-outage'> = (f, run) => {
  const victims = run.ctx.pool.sessions.filter((s) => run.ctx.regionOf(s.did) === f.region);
  const until = run.at + f.duration;
  const r = run.record(newRecord('region-outage', run.at, until, victims.length));
  r.region = f.region;
  networkLoss(run, r, victims, until, (d) => { r.details = { ...r.details, ...d }; });
};

export const gatewayReboot: FaultHandler<'gateway-reboot'> = (f, run) => {
  const gateways = run.ctx.pool.sessions.filter((s) => s.device.category === 'gateway');
  const victims = pickShare(gateways, f.share, run.rng);
  const until = run.at + f.duration;
  const r = run.record(newRecord('gateway-reboot', run.at, until, victims.length));
  const children = victims.reduce((n, s) => n + s.children.length, 0);
  r.details = { children };
  networkLoss(run, r, victims, until, (d) => { r.details = { children, ...d }; });
};
