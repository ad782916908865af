/**
 * Drivers advance the virtual clock. This file is the one place in the simulation that reads
 * the wall clock and sets wall timers: it is the clock itself.
 *
 * - manual: virtual time moves only when asked (`advance`), for tests and library users;
 * - real-time: virtual time = start + wall elapsed x speed;
 * - fast: no waiting; events run as fast as the broker takes their messages (backpressure).
 *
 * A run with an end covers [start, end): what is due exactly at the end belongs to the next
 * period and does not run (30 days from midnight end with a whole last day, not with its first ms).
 */
import { performance } from 'node:perf_hooks';
import type { EventScheduler } from './scheduler.js';

export type Speed = number | 'fast' | 'manual';

/** Fast mode runs up to this much virtual time, or this many events, between yields to I/O. */
const FAST_SLICE_MS = 60_000;
const FAST_SLICE_EVENTS = 2000;

export interface DriverOptions {
  /** Virtual time at which to stop, or undefined to run until stopped. */
  endTime?: number;
  /** True while the broker is behind or network work is under way: the clock waits. */
  congested?: () => boolean;
  /**
   * Fast mode: resolves when what made `congested()` true may be over (the driver checks again).
   * Default: the next turn of the event loop.
   */
  uncongested?: () => Promise<unknown>;
}

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

export class ClockDriver {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private wallStart = 0;
  private virtualStart = 0;
  private resolveDone!: () => void;
  /** Resolves when the end time is reached or the driver is stopped. */
  readonly done: Promise<void>;

  constructor(
    private readonly scheduler: EventScheduler,
    readonly speed: Speed,
    private readonly opts: DriverOptions = {},
  ) {
    this.done = new Promise((resolve) => { this.resolveDone = resolve; });
  }

  get endTime(): number | undefined { return this.opts.endTime; }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.wallStart = performance.now();
    this.virtualStart = this.scheduler.now();
    if (this.speed === 'manual') return;
    if (this.speed === 'fast') {
      setImmediate(() => void this.fastLoop());
      return;
    }
    this.scheduler.onEarlier = () => this.arm();
    this.tick();
  }

  stop(): void {
    if (!this.running) return;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.scheduler.onEarlier = null;
    this.resolveDone();
  }

  /**
   * Manual mode: run everything due in the next `ms` virtual milliseconds. Like fast mode, it
   * waits at each instant where commands or reconnections are under way (`waitIdle`), so they
   * happen at the virtual time they were issued.
   */
  async advance(ms: number, waitIdle: () => Promise<void>): Promise<void> {
    if (this.speed !== 'manual') throw new Error(`advance() needs speed "manual", this simulation runs at ${String(this.speed)}`);
    const end = this.opts.endTime;
    const target = Math.floor(end === undefined ? this.scheduler.now() + ms : Math.min(this.scheduler.now() + ms, end));
    const congested = this.opts.congested ?? (() => false);
    for (;;) {
      await waitIdle();
      if (this.runTo(target, Infinity, congested)) break;
    }
    await waitIdle();
    if (end !== undefined && this.scheduler.now() >= end) this.stop();
  }

  /** Run the scheduler up to `until`; at the run's end, what is due exactly then does not run. */
  private runTo(until: number, budget = Infinity, pause?: () => boolean): boolean {
    return this.scheduler.runUntil(until, budget, pause, until === this.opts.endTime);
  }

  private virtualNow(): number {
    const speed = typeof this.speed === 'number' ? this.speed : 1;
    return this.virtualStart + (performance.now() - this.wallStart) * speed;
  }

  private tick(): void {
    this.timer = null;
    if (!this.running) return;
    const end = this.opts.endTime;
    const now = this.virtualNow();
    this.runTo(end === undefined ? now : Math.min(now, end));
    if (end !== undefined && this.scheduler.now() >= end) {
      this.stop();
      return;
    }
    this.arm();
  }

  /** Wake at the wall time of the next event (at least every 250 ms, so the clock keeps moving). */
  private arm(): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    const speed = typeof this.speed === 'number' ? this.speed : 1;
    const next = this.scheduler.nextTime();
    const waitVirtual = next === undefined ? Infinity : next - this.virtualNow();
    const wait = Math.max(0, Math.min(250, waitVirtual / speed));
    this.timer = setTimeout(() => this.tick(), wait);
  }

  private async fastLoop(): Promise<void> {
    const end = this.opts.endTime ?? Infinity;
    const congested = this.opts.congested ?? (() => false);
    const uncongested = this.opts.uncongested ?? nextTurn;
    while (this.running) {
      if (congested()) {
        // Wait for the work or the backlog to clear, then let I/O run once before checking again.
        await uncongested();
        await nextTurn();
        continue;
      }
      const next = this.scheduler.nextTime();
      if (next === undefined || next >= end) {
        if (end !== Infinity) this.runTo(end);
        this.stop();
        return;
      }
      // Run a slice of virtual time (bounded in events), pausing as soon as a command or a
      // reconnection is under way, then let I/O flow so messages reach the broker in order.
      this.runTo(Math.min(end, next + FAST_SLICE_MS), FAST_SLICE_EVENTS, congested);
      await nextTurn();
    }
  }
}
