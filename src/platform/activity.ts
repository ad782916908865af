/**
 * Activity in event time: distinct ids per UTC day (the virtual `ts` of the messages, never the
 * wall clock), and rolling windows as unions of days: daily, 7-day and 30-day actives.
 */
import { DistinctCounter } from './distinct.js';

const DAY = 86_400_000;
/** Days kept: the 30-day window plus the current day. */
const KEEP_DAYS = 31;

export class ActivityWindow {
  private readonly days = new Map<number, DistinctCounter>();
  private latestDay: number | null = null;
  private firstDay: number | null = null;
  /** Bumped whenever a day before the latest one changes (a late event), invalidating `past`. */
  private pastVersion = 0;
  /**
   * Per window length: the union of the window's days before the latest one. Snapshots come every
   * few virtual minutes and only the latest day usually moves, so a window's count is this union
   * plus the latest day, not a union of up to 30 days each time. (Unions do not depend on how
   * they are grouped, so the count is the same either way.)
   */
  private readonly past = new Map<number, { end: number; version: number; union: DistinctCounter }>();

  /** `id` was active at event time `ts`. */
  add(id: string, ts: number): void {
    const day = Math.floor(ts / DAY);
    if (this.latestDay !== null && day <= this.latestDay - KEEP_DAYS) return; // too old to matter
    if (this.firstDay === null || day < this.firstDay) this.firstDay = day;
    let c = this.days.get(day);
    if (!c) {
      this.days.set(day, (c = new DistinctCounter()));
      if (this.latestDay === null || day > this.latestDay) {
        this.latestDay = day;
        for (const d of this.days.keys()) if (d <= day - KEEP_DAYS) this.days.delete(d);
      }
    }
    if (day !== this.latestDay) this.pastVersion++;
    c.add(id);
  }

  /**
   * The mean of the daily counts over the `days` whole days before the latest one (fewer when
   * less has been seen), or null while the latest day is the only one. The latest day is left
   * out because it is usually still going.
   */
  averageDaily(days: number): number | null {
    if (this.latestDay === null || this.firstDay === null) return null;
    const from = Math.max(this.firstDay, this.latestDay - days);
    if (from >= this.latestDay) return null;
    let sum = 0;
    for (let d = from; d < this.latestDay; d++) sum += this.days.get(d)?.count() ?? 0;
    return sum / (this.latestDay - from);
  }

  /** Distinct ids active in the `days` days ending with the day of `asOf` (default: the latest day seen). */
  count(days: number, asOf?: number): number {
    const end = asOf === undefined ? this.latestDay : Math.floor(asOf / DAY);
    if (end === null) return 0;
    if (end === this.latestDay && days > 1) {
      let cached = this.past.get(days);
      if (!cached || cached.end !== end || cached.version !== this.pastVersion) {
        const before: DistinctCounter[] = [];
        for (const [d, c] of this.days) if (d > end - days && d < end) before.push(c);
        cached = { end, version: this.pastVersion, union: DistinctCounter.union(before) };
        this.past.set(days, cached);
      }
      const today = this.days.get(end);
      return today ? DistinctCounter.unionCount(cached.union, today) : cached.union.count();
    }
    const inWindow: DistinctCounter[] = [];
    for (const [d, c] of this.days) if (d > end - days && d <= end) inWindow.push(c);
    if (inWindow.length === 1) return inWindow[0]!.count();
    return DistinctCounter.union(inWindow).count();
  }
}
