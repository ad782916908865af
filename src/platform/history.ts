/**
 * The platform's online count over event time, one bucket per event-time minute (lowest, highest
 * and last count in it), so an outage and the recovery show as a dip at the virtual times they
 * happened. Bounded: the oldest buckets go beyond `maxBuckets`.
 */

export interface OnlineBucket {
  /** Start of the event-time minute (virtual epoch ms). */
  t: number;
  min: number;
  max: number;
  last: number;
}

const MINUTE = 60_000;

export class OnlineHistory {
  private readonly buckets: OnlineBucket[] = [];

  constructor(private readonly maxBuckets = 2 * 24 * 60) {}

  /** The online count is `online` at event time `ts`. */
  note(ts: number, online: number): void {
    const t = Math.floor(ts / MINUTE) * MINUTE;
    let b = this.buckets[this.buckets.length - 1];
    // Event time only moves forward at the platform; a late minute folds into the latest bucket.
    if (!b || t > b.t) {
      b = { t, min: online, max: online, last: online };
      this.buckets.push(b);
      if (this.buckets.length > this.maxBuckets) this.buckets.shift();
      return;
    }
    b.min = Math.min(b.min, online);
    b.max = Math.max(b.max, online);
    b.last = online;
  }

  /** Buckets whose minute overlaps [from, to] (virtual epoch ms; both optional). */
  range(from = -Infinity, to = Infinity): OnlineBucket[] {
    return this.buckets.filter((b) => b.t + MINUTE > from && b.t <= to).map((b) => ({ ...b }));
  }
}
