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

/**
 * A pending event, and the handle its scheduler gave for it (one object per timer: its time and
 * order live in the heap's key arrays).
 */
class Entry implements TimerHandle {
  state = PENDING;
  /** A periodic timer's period (0: runs once). */
  period = 0;
  /** The virtual time at which its current occurrence was scheduled (see `EventScheduler.ranBefore`). */
  scheduledAt = 0;
  constructor(private readonly owner: EventScheduler, readonly fn: () => void) {}
  get active(): boolean { return this.state === PENDING; }
  cancel(): void { this.owner.cancelEntry(this); }
  run(): void { this.fn(); }
}

/** An entry of `afterWhile`: it runs only while its owner's generation is the one it was set in. */
class GuardedEntry extends Entry {
  constructor(owner: EventScheduler, fn: () => void, private readonly guard: { readonly generation: number }, private readonly generation: number) {
    super(owner, fn);
  }
  override run(): void {
    if (this.guard.generation === this.generation) this.fn();
  }
}

/**
 * A 4-ary min-heap ordered by (time, seq): events at the same instant run in the order scheduled.
 * The keys sit in two arrays of plain numbers beside the entries, so sifting compares contiguous
 * doubles instead of following a pointer to an entry per comparison: with a fleet's hundreds of
 * thousands of pending timers, those entries are cold in the cache and the comparisons were most
 * of the scheduler's time. Four children a node (their keys side by side, mostly one cache line)
 * make the heap half as deep as a binary one, so taking the earliest event touches half as many
 * cold lines. A periodic timer keeps its entry, moved in place to its next occurrence (one sift
 * instead of a removal and an insertion). Order is (time, seq) whatever the heap's shape.
 */
export class EventScheduler implements Scheduler {
  /** The heap's first `size` slots are its entries; the arrays never shrink (see `pop`). */
  private items: Array<Entry | null> = [];
  private times: number[] = [];
  private seqs: number[] = [];
  private seq = 0;
  private size = 0;
  private current: number;
  private live = 0;
  /** Called whenever an event is scheduled earlier than every pending one (drivers re-arm). */
  onEarlier: ((time: number) => void) | null = null;
  /** Events executed so far. */
  executed = 0;
  /** The time of the event running now or run last, and when that occurrence was scheduled. */
  private lastTime = -Infinity;
  private lastScheduledAt = -Infinity;

  constructor(startTime: number) {
    this.current = startTime;
  }

  now(): number { return this.current; }

  /** Pending (not cancelled) events. */
  get pending(): number { return this.live; }

  at(time: number, fn: () => void): TimerHandle {
    return this.push(time, fn);
  }

  after(delayMs: number, fn: () => void): TimerHandle {
    return this.at(this.current + Math.max(0, delayMs), fn);
  }

  afterWhile(delayMs: number, fn: () => void, owner: { readonly generation: number }): TimerHandle {
    const entry = new GuardedEntry(this, fn, owner, owner.generation);
    this.schedule(entry, this.current + Math.max(0, delayMs));
    return entry;
  }

  every(periodMs: number, fn: () => void, firstDelayMs = periodMs): TimerHandle {
    if (!(periodMs > 0)) throw new RangeError(`every(): period must be positive, got ${periodMs}`);
    const entry = this.push(this.current + Math.max(0, firstDelayMs), fn);
    entry.period = periodMs;
    return entry;
  }

  /**
   * Whether an event due at `time` and scheduled at virtual time `scheduledAt` would have run by
   * now, had it been scheduled: it would be earlier in the order (time, then order scheduled) than
   * the event running now or run last. A behaviour that computes its steps ahead instead of
   * scheduling each (a random walk) asks this to tell, at the very instant of a step, whether a
   * reader comes before or after it. Two events scheduled at the same instant are told apart by
   * the order in which they were scheduled, which is not known here: such a step counts as not run.
   */
  ranBefore(time: number, scheduledAt: number): boolean {
    return time < this.lastTime || (time === this.lastTime && scheduledAt < this.lastScheduledAt);
  }

  /** Time of the earliest pending event, or undefined. */
  nextTime(): number | undefined {
    this.dropCancelled();
    return this.size ? this.times[0] : undefined;
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
      if (!this.size) break;
      const t = this.times[0]!;
      if (t > time || (before && t === time)) break;
      if (n >= budget || (n > 0 && pause?.())) return false;
      const top = this.items[0]!;
      if (t > this.current) this.current = t;
      this.lastTime = t;
      this.lastScheduledAt = top.scheduledAt;
      // A periodic timer's next occurrence is scheduled before it runs, as its own event.
      if (top.period > 0) this.requeueTop(top, this.current + top.period);
      else {
        this.pop();
        this.live--;
        top.state = DONE;
      }
      n++;
      this.executed++;
      top.run();
    }
    // Paused by the last event in range: the clock stays at that event, or work it set off (a
    // command, an app session) would read a later virtual time than the event that caused it.
    if (n > 0 && pause?.()) return false;
    if (time > this.current) this.current = time;
    // Everything due at `time` has run (unless it waits), whether or not there was anything.
    if (!before && time >= this.lastTime) {
      this.lastTime = time;
      this.lastScheduledAt = Infinity;
    }
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
    for (let i = 0; i < this.size; i++) this.items[i]!.state = CANCELLED;
    this.items = [];
    this.size = 0;
    this.times = [];
    this.seqs = [];
    this.live = 0;
  }

  /** @internal used by timer handles. */
  cancelEntry(entry: Entry): void {
    if (entry.state !== PENDING) return;
    entry.state = CANCELLED;
    this.live--;
  }

  private push(time: number, fn: () => void): Entry {
    const entry = new Entry(this, fn);
    this.schedule(entry, time);
    return entry;
  }

  /** Put `entry` on the heap at `time` (whole milliseconds, not before now) with the next seq. */
  private schedule(entry: Entry, time: number): void {
    // Whole milliseconds: payload timestamps are integers and ordering stays exact.
    const t = Math.max(Math.round(time), this.current);
    const seq = this.seq++;
    entry.state = PENDING;
    entry.scheduledAt = this.current;
    const { items, times, seqs } = this;
    const wasEarliest = this.size === 0 || t < times[0]!;
    let i = this.size++;
    if (i === items.length) {
      items.push(entry);
      times.push(t);
      seqs.push(seq);
    }
    while (i > 0) {
      const parent = (i - 1) >> 2;
      const pt = times[parent]!;
      if (pt < t || (pt === t && seqs[parent]! < seq)) break;
      items[i] = items[parent]!;
      times[i] = pt;
      seqs[i] = seqs[parent]!;
      i = parent;
    }
    items[i] = entry;
    times[i] = t;
    seqs[i] = seq;
    this.live++;
    if (wasEarliest && this.onEarlier) this.onEarlier(t);
  }

  private dropCancelled(): void {
    while (this.size && this.items[0]!.state === CANCELLED) this.pop();
  }

  /** Move the earliest entry, `entry`, to `time` (not before now) with the next seq, in place. */
  private requeueTop(entry: Entry, time: number): void {
    const t = Math.max(Math.round(time), this.current);
    const seq = this.seq++;
    entry.scheduledAt = this.current;
    if (this.siftDown(0, entry, t, seq) === 0 && this.onEarlier) this.onEarlier(t);
  }

  /**
   * Remove and return the earliest entry (the heap is not empty). The last slot is emptied, not
   * popped: the three arrays keep their length, so an event does not shrink three arrays by one
   * only for the next to grow them again.
   */
  private pop(): Entry {
    const { items, times, seqs } = this;
    const top = items[0]!;
    const n = --this.size;
    const last = items[n]!;
    items[n] = null;
    if (n > 0) this.siftDown(0, last, times[n]!, seqs[n]!);
    return top;
  }

  /** Place `entry` (key `t`, `s`) at `i` or below, moving smaller children up; returns where it went. */
  private siftDown(i: number, entry: Entry, t: number, s: number): number {
    const { items, times, seqs } = this;
    const n = this.size;
    for (;;) {
      const first = 4 * i + 1;
      if (first >= n) break;
      // The least of up to four children.
      let m = first;
      let mt = times[first]!;
      let ms = seqs[first]!;
      const last = Math.min(first + 4, n);
      for (let c = first + 1; c < last; c++) {
        const ct = times[c]!;
        if (ct < mt || (ct === mt && seqs[c]! < ms)) {
          m = c;
          mt = ct;
          ms = seqs[c]!;
        }
      }
      if (t < mt || (t === mt && s < ms)) break;
      items[i] = items[m]!;
      times[i] = mt;
      seqs[i] = ms;
      i = m;
    }
    items[i] = entry;
    times[i] = t;
    seqs[i] = s;
    return i;
  }
}
