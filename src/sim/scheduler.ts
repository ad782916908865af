/**
 * The virtual clock and discrete-event scheduler. Simulation code reads time from `now()` and
 * schedules work with `at()` / `after()` / `every()`; nothing in the simulation touches the wall
 * clock. Drivers (see drivers.ts) decide how virtual time advances: by hand in tests, in step
 * with the wall clock times a speed factor, or as fast as the broker can take it.
 */

import type { Scheduler, TimerHandle } from '../contract/clock.js';

const PENDING = 0;
const CANCELLED = 1;
const DONE = 2;

interface Entry {
  time: number;
  seq: number;
  fn: () => void;
  state: number;
}

class EntryHandle implements TimerHandle {
  private stopped = false;
  constructor(private readonly owner: EventScheduler, private entry: Entry | null) {}
  get active(): boolean { return !this.stopped && this.entry !== null && this.entry.state === PENDING; }
  cancel(): void {
    this.stopped = true;
    if (this.entry) this.owner.cancelEntry(this.entry);
    this.entry = null;
  }
  /** For periodic timers: point at the next occurrence (ignored once cancelled). */
  rebind(entry: Entry): void {
    if (this.stopped) this.owner.cancelEntry(entry);
    else this.entry = entry;
  }
}

/** A binary min-heap ordered by (time, seq): events at the same instant run in the order scheduled. */
export class EventScheduler implements Scheduler {
  private heap: Entry[] = [];
  private seq = 0;
  private current: number;
  private live = 0;
  /** Called whenever an event is scheduled earlier than every pending one (drivers re-arm). */
  onEarlier: ((time: number) => void) | null = null;
  /** Events executed so far. */
  executed = 0;

  constructor(startTime: number) {
    this.current = startTime;
  }

  now(): number { return this.current; }

  /** Pending (not cancelled) events. */
  get pending(): number { return this.live; }

  at(time: number, fn: () => void): TimerHandle {
    return new EntryHandle(this, this.push(time, fn));
  }

  after(delayMs: number, fn: () => void): TimerHandle {
    return this.at(this.current + Math.max(0, delayMs), fn);
  }

  every(periodMs: number, fn: () => void, firstDelayMs = periodMs): TimerHandle {
    if (!(periodMs > 0)) throw new RangeError(`every(): period must be positive, got ${periodMs}`);
    const handle = new EntryHandle(this, null);
    const tick = (): void => {
      handle.rebind(this.push(this.current + periodMs, tick));
      if (handle.active) fn();
    };
    handle.rebind(this.push(this.current + Math.max(0, firstDelayMs), tick));
    return handle;
  }

  /** Time of the earliest pending event, or undefined. */
  nextTime(): number | undefined {
    this.dropCancelled();
    return this.heap[0]?.time;
  }

  /**
   * Run every event due at or before `time`, in order, then set the clock to `time`.
   * Stops early (returning false, the clock at the last event run) when `budget` events have run
   * or `pause()` turns true after an event (the last one due included), so drivers can yield or
   * wait for the network.
   * With `before`, events at exactly `until` wait (a run's end: it covers [start, end)).
   */
  runUntil(until: number, budget = Infinity, pause?: () => boolean, before = false): boolean {
    const time = Math.floor(until);
    let n = 0;
    for (;;) {
      this.dropCancelled();
      const top = this.heap[0];
      if (!top || top.time > time || (before && top.time === time)) break;
      if (n >= budget || (n > 0 && pause?.())) return false;
      this.pop();
      this.live--;
      if (top.time > this.current) this.current = top.time;
      top.state = DONE;
      n++;
      this.executed++;
      top.fn();
    }
    // Paused by the last event in range: the clock stays at that event, or work it set off (a
    // command, an app session) would read a later virtual time than the event that caused it.
    if (n > 0 && pause?.()) return false;
    if (time > this.current) this.current = time;
    return true;
  }

  /** Run all events at the earliest pending instant; returns that instant or undefined. */
  runNextInstant(): number | undefined {
    const t = this.nextTime();
    if (t === undefined) return undefined;
    this.runUntil(t);
    return t;
  }

  /** Advance virtual time by `ms`, running everything due (tests). */
  advance(ms: number): void {
    this.runUntil(this.current + ms);
  }

  clear(): void {
    for (const e of this.heap) e.state = CANCELLED;
    this.heap = [];
    this.live = 0;
  }

  /** @internal used by timer handles. */
  cancelEntry(entry: Entry): void {
    if (entry.state !== PENDING) return;
    entry.state = CANCELLED;
    this.live--;
  }

  private push(time: number, fn: () => void): Entry {
    // Whole milliseconds: payload timestamps are integers and ordering stays exact.
    const entry: Entry = { time: Math.max(Math.round(time), this.current), seq: this.seq++, fn, state: PENDING };
    const wasEarliest = this.heap.length === 0 || entry.time < this.heap[0]!.time;
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
    this.live++;
    if (wasEarliest && this.onEarlier) this.onEarlier(entry.time);
    return entry;
  }

  private dropCancelled(): void {
    while (this.heap.length && this.heap[0]!.state === CANCELLED) this.pop();
  }

  private pop(): Entry | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length && last) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}

function less(a: Entry, b: Entry): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
