/**
 * What a fault handler works with: the running simulation's parts it may touch (`FaultContext`),
 * and its own run (`FaultRun`: when it starts, its random stream, how it records and announces
 * itself, how it puts steps on the timeline).
 */
import type { EmbeddedBroker } from '../../broker/broker.js';
import type { PlatformService } from '../../platform/service.js';
import type { Rng } from '../rng.js';
import type { EventScheduler } from '../scheduler.js';
import type { DeviceSession } from '../session.js';
import type { Signal } from '../waits.js';
import type { WorkQueue } from '../work-queue.js';
import type { FaultNotice, FaultRecord, FaultSpecs, FaultType } from './record.js';

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

/** One scheduled fault, as its handler sees it. */
export interface FaultRun {
  readonly ctx: FaultContext;
  /** Index of the fault in the scenario's `faults`. */
  readonly index: number;
  /** Virtual time the fault starts (epoch ms). */
  readonly at: number;
  /** The fault's own random stream (by seed and index). */
  readonly rng: Rng;
  /** Enter the fault's record in the report (once, as it is scheduled); returns it. */
  record<R extends FaultRecord>(r: R): R;
  /** Announce the fault's start or end ('fault' event). */
  notify(phase: FaultNotice['phase'], r: FaultRecord): void;
  /** Run `fn` at virtual time `t`, as the scheduler reaches it (not queued: for announcements). */
  schedule(t: number, fn: () => void): void;
  /**
   * At virtual time `t`, queue `step` on the work queue: the clock waits while it runs (what
   * devices already sent reaches the broker first, sessions drop and reconnect).
   */
  step(t: number, step: () => Promise<void> | void): void;
}

/** Schedules one fault of type `T` on the timeline. */
export type FaultHandler<T extends FaultType> = (spec: FaultSpecs[T], run: FaultRun) => void;

/** A reproducible random share of `pool`, kept in pool order. */
export function pickShare<T>(pool: readonly T[], share: number, rng: Rng): T[] {
  const n = Math.round(pool.length * share);
  const left = pool.map((s, i) => [s, i] as const);
  const picked: Array<readonly [T, number]> = [];
  for (let k = 0; k < n && left.length; k++) picked.push(left.splice(rng.int(0, left.length - 1), 1)[0]!);
  return picked.sort((a, b) => a[1] - b[1]).map(([s]) => s);
}

export function sum<T>(items: readonly T[], f: (x: T) => number): number {
  let n = 0;
  for (const x of items) n += f(x);
  return n;
}

/** Wall-clock milliseconds to a tenth. */
export const round = (ms: number): number => Math.round(ms * 10) / 10;
