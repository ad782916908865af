/**
 * The fault timeline: things going wrong on purpose, at virtual times, the way real fleets break.
 *
 * Every fault step runs through the simulation's WorkQueue: what devices already sent reaches the
 * broker first, the virtual clock waits while sessions drop and reconnect, and sessions that come
 * back together announce themselves in population order. So what a fault cuts off, and the trace,
 * do not depend on wall-clock timing (same seed, same trace digest), while reconnection itself
 * (backoff, jitter, the broker's work) runs on the wall clock and is measured there.
 *
 * Each fault leaves a record (the run report's `faults`) and is announced as it starts and ends
 * (`'fault'` events, for monitors).
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import mqttPacket from 'mqtt-packet';
import type { Duplex } from 'node:stream';
import type { EmbeddedBroker } from '../broker/broker.js';
import type { PlatformService } from '../platform/service.js';
import { Rng } from './rng.js';
import type { FaultSpec } from '../catalog/scenario.js';
import type { EventScheduler } from './scheduler.js';
import type { DeviceSession } from './session.js';
import type { WorkQueue } from './work-queue.js';
import { when, type Signal } from './waits.js';

export type FaultType = FaultSpec['type'];

export interface FaultRecord {
  type: FaultType;
  /** Virtual times (ISO 8601). */
  from: string;
  to: string;
  /** Device sessions the fault took down. */
  sessions: number;
  region?: string;
  /** What happened, as measured (see README "Faults"); wall-clock figures end in `Ms`. */
  details?: Record<string, number | string | boolean>;
}

/** A fault starting or ending, as announced on `FaultTimeline` ('fault' event). */
export interface FaultNotice {
  phase: 'start' | 'end';
  /** Index of the fault in the scenario's `faults`. */
  index: number;
  /** Virtual time of the notice (epoch ms). */
  ts: number;
  record: FaultRecord;
}

/** The device sessions as faults see them (the simulation's session pool). */
export interface FaultSessions {
  /** Every device session, in population order. */
  readonly sessions: readonly DeviceSession[];
  /** Wait (bounded) until device publishes handed to sessions have been written. */
  settle(): Promise<void>;
  /** Resolves true once no session is connected; false after `timeoutMs`. */
  allDown(timeoutMs: number): Promise<boolean>;
  /** Connection attempts sessions made after losing the broker, so far. */
  readonly reconnectAttempts: number;
}

/** The MQTT clients that are not devices (the operator, the app users). */
export interface FaultClients {
  /** Resolves once they have all noticed they lost the broker (bounded). */
  gone(timeoutMs: number): Promise<void>;
  /** Resolves once they are all connected again (bounded). */
  back(timeoutMs: number): Promise<void>;
}

/** What the timeline needs from the running simulation. */
export interface FaultContext {
  seed: number;
  virtualStart: number;
  scheduler: EventScheduler;
  work: WorkQueue;
  pool: FaultSessions;
  clients: FaultClients;
  regionOf(did: string): string | undefined;
  /** The embedded broker, or null on an external one. */
  broker(): EmbeddedBroker | null;
  platform: PlatformService;
  /** Fires whenever the platform may have seen something new (a device message). */
  platformNews: Signal;
  /** Longest wait for a session to reconnect after the network or the broker is back (ms, wall clock). */
  reconnectBoundMs: number;
}

export class FaultTimeline extends EventEmitter<{ fault: [FaultNotice] }> {
  /** Faults scheduled so far, in scenario order; details fill in as they run. */
  readonly records: FaultRecord[] = [];

  constructor(private readonly ctx: FaultContext) {
    super();
  }

  /** Put the scenario's faults on the virtual timeline. */
  schedule(faults: readonly FaultSpec[]): void {
    faults.forEach((f, i) => this.scheduleOne(f, i));
  }

  private scheduleOne(f: FaultSpec, index: number): void {
    const c = this.ctx;
    const at = c.virtualStart + f.at;
    const rng = Rng.from(c.seed, 'fault', index);
    const record = (to: number, sessions: number): FaultRecord => {
      const r: FaultRecord = { type: f.type, from: iso(at), to: iso(to), sessions };
      this.records.push(r);
      return r;
    };
    const notify = (phase: FaultNotice['phase'], r: FaultRecord): void => {
      this.emit('fault', { phase, index, ts: c.scheduler.now(), record: r });
    };
    switch (f.type) {
      case 'devices-offline': {
        const victims = pickShare(c.pool.sessions, f.share, rng);
        this.outage(at, at + f.duration, victims, record(at + f.duration, victims.length), notify, 'network');
        return;
      }
      case 'region-outage': {
        const victims = c.pool.sessions.filter((s) => c.regionOf(s.did) === f.region);
        const until = at + f.duration;
        const r = record(until, victims.length);
        r.region = f.region;
        this.outage(at, until, victims, r, notify, 'network');
        return;
      }
      case 'gateway-reboot': {
        const gateways = c.pool.sessions.filter((s) => s.device.category === 'gateway');
        const victims = pickShare(gateways, f.share, rng);
        const until = at + f.duration;
        const r = record(until, victims.length);
        r.details = { children: victims.reduce((n, s) => n + s.children.length, 0) };
        this.outage(at, until, victims, r, notify, 'network');
        return;
      }
      case 'broker-restart':
        this.brokerRestart(at, at + f.duration, record(at + f.duration, c.pool.sessions.length), notify);
        return;
      case 'reconnect-storm': {
        const victims = pickShare(c.pool.sessions, f.share, rng);
        this.storm(at, victims, record(at, victims.length), notify);
        return;
      }
      case 'device-churn': {
        const victims = pickShare(c.pool.sessions, f.share, rng);
        const span = f.duration;
        const away = f.offlineFor;
        const r = record(at + span + away, victims.length);
        r.details = { left: 0, returned: 0 };
        c.scheduler.at(at, () => notify('start', r));
        victims.forEach((s) => {
          const leave = at + rng.int(0, Math.max(0, span - 1));
          this.outage(leave, leave + away, [s], null, null, 'leave', r);
        });
        c.scheduler.at(at + span + away, () => c.work.push(async () => notify('end', r)));
        return;
      }
      case 'ota-rollout': {
        // A Zigbee/BLE child's update goes through its gateway, whose session reboots with it.
        const matches = (d: DeviceSession['device']): boolean => !f.model || d.model.model === f.model;
        const eligible = c.pool.sessions.filter((s) => matches(s.device) || s.children.some(matches));
        const victims = pickShare(eligible, f.share, rng);
        const interval = f.interval;
        const reboot = f.rebootFor;
        const waves = Math.min(f.waves, Math.max(1, victims.length));
        const end = at + (waves - 1) * interval + reboot;
        const r = record(end, victims.length);
        r.details = { firmware: f.firmware, waves, updatedDevices: 0 };
        c.scheduler.at(at, () => notify('start', r));
        for (let w = 0; w < waves; w++) {
          const wave = victims.filter((_, k) => k % waves === w);
          const t = at + w * interval;
          this.outage(t, t + reboot, wave, null, null, 'network', r, (s) => {
            for (const d of [s.device, ...s.children]) {
              if (!matches(d)) continue;
              d.setFirmware(f.firmware);
              (r.details!['updatedDevices'] as number)++;
            }
          });
        }
        c.scheduler.at(end, () => c.work.push(async () => notify('end', r)));
        return;
      }
      case 'slow-consumer':
        this.slowConsumer(at, at + f.duration, record(at + f.duration, 0), notify);
        return;
    }
  }

  /**
   * Sessions go down at `at` (network loss: no DISCONNECT, last wills fire; or a clean leave:
   * "offline" states then DISCONNECT) and come back at `until`, announcing in population order.
   */
  private outage(
    at: number, until: number, victims: DeviceSession[], r: FaultRecord | null, notify: ((p: FaultNotice['phase'], r: FaultRecord) => void) | null,
    how: 'network' | 'leave', churn?: FaultRecord, beforeDown?: (s: DeviceSession) => void,
  ): void {
    const c = this.ctx;
    let before = 0;
    c.scheduler.at(at, () => {
      c.work.push(async () => {
        await c.pool.settle();
        before = c.platform.registry.size;
        for (const v of victims) {
          beforeDown?.(v);
          if (how === 'leave') await v.leave();
          else v.suspend();
        }
        if (churn?.details && how === 'leave') (churn.details['left'] as number) += victims.length;
        if (r && notify) notify('start', r);
      });
    });
    c.scheduler.at(until, () => {
      c.work.push(async () => {
        if (c.broker()?.isDown) {
          // The network is back but the broker is not (a restart overlaps): the sessions retry by
          // themselves, and the restart announces them when the broker is back.
          for (const v of victims) v.resume(c.reconnectBoundMs).catch(() => undefined);
          if (churn?.details && how === 'leave') (churn.details['returned'] as number) += victims.length;
          if (r) {
            r.details = { ...r.details, backWithBroker: true };
            if (notify) notify('end', r);
          }
          return;
        }
        const t0 = performance.now();
        const results = await Promise.allSettled(victims.map((v) => v.resume(c.reconnectBoundMs)));
        const ms = performance.now() - t0;
        for (const v of victims) v.goOnline();
        await c.pool.settle();
        const failed = results.filter((x) => x.status === 'rejected').length;
        if (churn?.details && how === 'leave') (churn.details['returned'] as number) += victims.length - failed;
        if (r) {
          r.details = { ...r.details, reconnectMs: round(ms), notBack: failed, ...(await this.dip(at, before)) };
          if (notify) notify('end', r);
        }
      });
    });
  }

  /**
   * The fault as the platform saw it, in event time: its lowest online count and the event-time
   * minute of it, and the minute the count was back to `before` (waits, bounded, for the platform
   * to see the announcements: a PUBACK can reach a device before the broker forwarded the message).
   */
  private async dip(from: number, before: number): Promise<Record<string, number | string>> {
    const c = this.ctx;
    await when(() => c.platform.registry.size >= before, c.platformNews, 5000);
    const buckets = c.platform.onlineHistory(from - 60_000, c.scheduler.now() + 60_000);
    const out: Record<string, number | string> = { onlineBefore: before, onlineAfter: c.platform.registry.size };
    if (!buckets.length) return out;
    let low = buckets[0]!;
    for (const b of buckets) if (b.min < low.min) low = b;
    out['onlineLowest'] = low.min;
    out['onlineLowestAt'] = iso(low.t);
    const back = buckets.find((b) => b.t >= low.t && b.last >= before);
    if (back) out['onlineBackAt'] = iso(back.t);
    return out;
  }

  /** The broker goes down at `at` and comes back at `until`; sessions find it again by themselves. */
  private brokerRestart(at: number, until: number, r: FaultRecord, notify: (p: FaultNotice['phase'], r: FaultRecord) => void): void {
    const c = this.ctx;
    let before = 0;
    c.scheduler.at(at, () => {
      c.work.push(async () => {
        const broker = c.broker();
        if (!broker || broker.isDown) {
          r.details = { skipped: broker ? 'the broker is already down' : 'no embedded broker to restart' };
          return;
        }
        await c.pool.settle();
        before = c.platform.registry.size;
        for (const s of c.pool.sessions) s.holdAnnouncement();
        await broker.goDown();
        // Every client notices before the clock moves on, so what households do next (skip an
        // app session, fail a command) does not depend on how fast closes propagate.
        await c.pool.allDown(5000);
        await c.clients.gone(5000);
        r.details = { onlineBefore: before, onlineDuring: c.platform.registry.size };
        notify('start', r);
      });
    });
    c.scheduler.at(until, () => {
      c.work.push(async () => {
        const broker = c.broker();
        if (!broker || !broker.isDown || r.details?.['skipped']) return;
        const attempts0 = c.pool.reconnectAttempts;
        const t0 = performance.now();
        await broker.comeUp();
        const waiting = c.pool.sessions.filter((s) => !s.held);
        const results = await Promise.allSettled(waiting.map((s) => s.whenConnected(c.reconnectBoundMs)));
        const reconnectMs = performance.now() - t0;
        await c.clients.back(c.reconnectBoundMs);
        for (const s of waiting) s.goOnline();
        await c.pool.settle();
        const onlineMs = performance.now() - t0;
        r.details = {
          ...r.details,
          reconnectMs: round(reconnectMs), onlineMs: round(onlineMs), boundMs: c.reconnectBoundMs,
          notBack: results.filter((x) => x.status === 'rejected').length,
          reconnectAttempts: c.pool.reconnectAttempts - attempts0,
          ...(await this.dip(at, before)),
        };
        notify('end', r);
      });
    });
  }

  /** Sessions drop at once and reconnect by themselves (backoff with jitter); announced together once all are back. */
  private storm(at: number, victims: DeviceSession[], r: FaultRecord, notify: (p: FaultNotice['phase'], r: FaultRecord) => void): void {
    const c = this.ctx;
    c.scheduler.at(at, () => {
      c.work.push(async () => {
        if (c.broker()?.isDown) {
          r.details = { skipped: 'the broker is down' };
          return;
        }
        await c.pool.settle();
        notify('start', r);
        const before = c.platform.registry.size;
        const attempts0 = sum(victims, (s) => s.reconnectAttempts);
        const t0 = performance.now();
        for (const s of victims) { s.holdAnnouncement(); s.drop(); }
        const results = await Promise.allSettled(victims.map((s) => s.whenConnected(c.reconnectBoundMs)));
        const reconnectMs = performance.now() - t0;
        for (const s of victims) s.goOnline();
        await c.pool.settle();
        r.details = {
          reconnectMs: round(reconnectMs), boundMs: c.reconnectBoundMs,
          notBack: results.filter((x) => x.status === 'rejected').length,
          reconnectAttempts: sum(victims, (s) => s.reconnectAttempts) - attempts0,
          ...(await this.dip(at, before)),
        };
        notify('end', r);
      });
    });
  }

  /**
   * An anonymous observer subscribes to `device/#` and stops reading its connection until
   * `until`: the broker's writes to it back up. Records what reached it and whether the broker
   * cut it off (Aedes closes a connection that does not drain within its drain timeout).
   */
  private slowConsumer(at: number, until: number, r: FaultRecord, notify: (p: FaultNotice['phase'], r: FaultRecord) => void): void {
    const c = this.ctx;
    let pipe: Duplex | null = null;
    let cutOff = false;
    let maxQueued0 = 0;
    c.scheduler.at(at, () => {
      c.work.push(async () => {
        const broker = c.broker();
        if (!broker || broker.isDown) {
          r.details = { skipped: broker ? 'the broker is down' : 'no embedded broker' };
          return;
        }
        maxQueued0 = broker.emitterStats.maxQueued;
        const p = broker.connectInProcess();
        pipe = p;
        p.on('error', () => undefined);
        p.once('close', () => { cutOff = true; });
        p.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `aiot-sim-slow-consumer-${c.seed}`, keepalive: 0 }));
        p.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'device/#', qos: 1 }] }));
        // Nothing reads `p` until the fault ends: the pipe's buffer fills and the broker must wait or give up.
        notify('start', r);
      });
    });
    c.scheduler.at(until, () => {
      c.work.push(async () => {
        const p = pipe;
        const broker = c.broker();
        if (!p) return;
        let bytes = 0;
        let publishes = 0;
        const parser = mqttPacket.parser({ protocolVersion: 4 });
        parser.on('packet', (pk) => { if (pk.cmd === 'publish') publishes++; });
        parser.on('error', () => undefined);
        p.on('data', (d: Buffer) => { bytes += d.length; parser.parse(d); });
        await new Promise((res) => setTimeout(res, 50));
        const wasCut = cutOff;
        p.destroy();
        r.details = {
          cutOffByBroker: wasCut, bytesRead: bytes, publishesRead: publishes,
          emitterMaxQueuedDuring: Math.max(0, (broker?.emitterStats.maxQueued ?? 0) - maxQueued0),
        };
        notify('end', r);
      });
    });
  }
}

/** A reproducible random share of `pool`, kept in pool order. */
function pickShare<T>(pool: readonly T[], share: number, rng: Rng): T[] {
  const n = Math.round(pool.length * share);
  const left = pool.map((s, i) => [s, i] as const);
  const picked: Array<readonly [T, number]> = [];
  for (let k = 0; k < n && left.length; k++) picked.push(left.splice(rng.int(0, left.length - 1), 1)[0]!);
  return picked.sort((a, b) => a[1] - b[1]).map(([s]) => s);
}

function sum<T>(items: readonly T[], f: (x: T) => number): number {
  let n = 0;
  for (const x of items) n += f(x);
  return n;
}

const iso = (t: number): string => new Date(t).toISOString();
const round = (ms: number): number => Math.round(ms * 10) / 10;
