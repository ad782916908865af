/**
 * When each message of a replay is due. A recording's messages keep their spacing, divided by the
 * speed. `loops` plays it again after itself (the next loop starts one mean gap after the last
 * message); `copies` (rewritten device ids) plays side by side copies, copy k staggered by
 * k/copies of a mean gap so they interleave instead of arriving in bursts. Entries come out in
 * due order; within a copy always in file order, so each device's messages keep their order.
 */

export interface ScheduleEntry {
  /** Due time, ms after the replay's start. */
  due: number;
  /** Index of the message in the recording. */
  index: number;
  /** Copy, from 1 (with rewritten dids), or 0 (the recording as is). */
  copy: number;
  /** Loop, from 0. */
  loop: number;
  /** Position in the whole replay, from 0 (ties break on it). */
  n: number;
}

export interface ScheduleOptions {
  /** Virtual (recorded) ms per replayed ms; > 0. */
  speed: number;
  loops: number;
  /** Copies with rewritten dids; 0 for the recording as is. */
  copies: number;
}

interface Cursor { copy: number; loop: number; index: number; due: number; seq: number }

export class Schedule {
  /** Messages the whole replay sends. */
  readonly total: number;
  /** Due time of the last message, ms. */
  readonly lastDue: number;
  private readonly heap: Cursor[] = [];
  private readonly gapMs: number;
  private readonly periodMs: number;
  private emitted = 0;

  /** `offsets`: each message's ts minus the first's (non-decreasing), ms. */
  constructor(private readonly offsets: readonly number[], private readonly o: ScheduleOptions) {
    const n = offsets.length;
    const span = n ? offsets[n - 1]! : 0;
    this.gapMs = n > 1 ? span / (n - 1) / o.speed : 0;
    this.periodMs = span / o.speed + this.gapMs;
    const streams = Math.max(1, o.copies);
    this.total = n * o.loops * streams;
    this.lastDue = n && o.loops ? this.dueOf(o.copies, o.loops - 1, n - 1) : 0;
    if (n === 0 || o.loops === 0) return;
    for (let c = 0; c < streams; c++) {
      const copy = o.copies ? c + 1 : 0;
      this.push({ copy, loop: 0, index: 0, due: this.dueOf(copy, 0, 0), seq: 0 });
    }
  }

  /** The next entry in due order, or undefined at the end. */
  next(): ScheduleEntry | undefined {
    const top = this.heap[0];
    if (!top) return undefined;
    const entry: ScheduleEntry = { due: top.due, index: top.index, copy: top.copy, loop: top.loop, n: this.emitted++ };
    // Advance this copy's cursor to its next message (or next loop) in place, or drop it at its end.
    let { loop, index } = top;
    if (++index >= this.offsets.length) { index = 0; loop++; }
    if (loop < this.o.loops) {
      this.heap[0] = { copy: top.copy, loop, index, due: this.dueOf(top.copy, loop, index), seq: top.seq + 1 };
    } else {
      const last = this.heap.pop()!;
      if (this.heap.length === 0) return entry;
      this.heap[0] = last;
    }
    this.down(0);
    return entry;
  }

  private dueOf(copy: number, loop: number, index: number): number {
    const stagger = this.o.copies ? ((copy - 1) * this.gapMs) / this.o.copies : 0;
    return loop * this.periodMs + this.offsets[index]! / this.o.speed + stagger;
  }

  private before(a: Cursor, b: Cursor): boolean {
    if (a.due !== b.due) return a.due < b.due;
    if (a.seq !== b.seq) return a.seq < b.seq;
    return a.copy < b.copy;
  }

  private push(c: Cursor): void {
    const h = this.heap;
    h.push(c);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.before(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
