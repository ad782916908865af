/**
 * Daily rhythms in local time. A home's liveliness follows the hour of day where it is (morning
 * bump, evening peak 18:00-22:00, quiet nights), normalised so the day averages 1.
 *
 * Default curve: survey figures on smart-speaker use put 31 % of use in 18:00-22:00 and 7 % after
 * 22:00 (shared/reference/mijia-miot.md §6); the other hours are an estimate.
 */
const DEFAULT_WEIGHTS = [
  // 0    1    2    3    4    5    6    7    8    9    10   11
  0.25, 0.12, 0.08, 0.06, 0.06, 0.1, 0.45, 1.1, 1.15, 0.85, 0.8, 0.85,
  // 12  13   14   15   16   17   18   19   20   21   22   23
  1.0, 0.95, 0.75, 0.75, 0.85, 1.2, 1.85, 2.05, 2.05, 1.9, 1.15, 0.58,
];

export type HourlyCurve = readonly number[];

/** Scale 24 weights so their mean is 1. */
export function normaliseCurve(weights: readonly number[]): HourlyCurve {
  if (weights.length !== 24) throw new RangeError(`a daily curve needs 24 hourly weights, got ${weights.length}`);
  const mean = weights.reduce((a, b) => a + b, 0) / 24;
  return weights.map((w) => w / mean);
}

export const DEFAULT_CURVE: HourlyCurve = normaliseCurve(DEFAULT_WEIGHTS);

/** Local clock readings for a time zone, cached per UTC quarter-hour (Intl is slow per call). */
export class LocalTime {
  private readonly fmt: Intl.DateTimeFormat;
  private readonly cache = new Map<number, { hour: number; month: number; day: number; weekday: number }>();
  /** The quarter-hour read last, and its reading: nearly every read in a run is of the current one. */
  private lastKey = NaN;
  private last: { hour: number; month: number; day: number; weekday: number } | null = null;

  constructor(readonly timeZone: string) {
    this.fmt = new Intl.DateTimeFormat('en-US', {
      timeZone, hourCycle: 'h23', hour: 'numeric', month: 'numeric', day: 'numeric', year: 'numeric', weekday: 'short',
    });
  }

  private read(ts: number): { hour: number; month: number; day: number; weekday: number } {
    // Cache on the UTC quarter-hour so zones with 30/45-minute offsets stay right.
    const key = Math.floor(ts / 900_000);
    if (key === this.lastKey) return this.last!;
    let v = this.cache.get(key);
    if (!v) {
      const parts = Object.fromEntries(this.fmt.formatToParts(new Date(key * 900_000)).map((p) => [p.type, p.value]));
      const year = Number(parts['year']);
      const month = Number(parts['month']);
      const dayOfMonth = Number(parts['day']);
      v = {
        hour: Number(parts['hour']),
        month,
        day: Math.floor(Date.UTC(year, month - 1, dayOfMonth) / 86_400_000),
        weekday: ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(parts['weekday'] ?? ''),
      };
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(key, v);
    }
    this.lastKey = key;
    this.last = v;
    return v;
  }

  /** Local hour 0..23. */
  hour(ts: number): number { return this.read(ts).hour; }
  /** Local month 1..12. */
  month(ts: number): number { return this.read(ts).month; }
  /** Local calendar day as days since 1970-01-01 (a stable key for "today"). */
  day(ts: number): number { return this.read(ts).day; }
  /** 0 = Sunday. */
  weekday(ts: number): number { return this.read(ts).weekday; }

  /**
   * The next instant at or after `ts` when the local clock shows `hour` (fractional: 18.5 = 18:30).
   * Steps through hours, so it is right across DST changes.
   */
  nextAt(ts: number, hour: number): number {
    const whole = Math.floor(hour);
    const minutes = Math.round((hour - whole) * 60);
    let t = Math.floor(ts / 3_600_000) * 3_600_000;
    for (let i = 0; i < 50; i++, t += 3_600_000) {
      // Align to the local hour start (offsets can be a half or three quarters of an hour).
      for (const q of [0, 900_000, 1_800_000, 2_700_000]) {
        const c = t + q;
        if (this.hour(c) === whole && this.hour(c - 900_000) !== whole) {
          const at = c + minutes * 60_000;
          if (at >= ts) return at;
        }
      }
    }
    return ts + 86_400_000;
  }
}

/** Mean daily high (°C) by month, per region: an estimate for appliance use (AC on hot afternoons). */
const MONTHLY_HIGHS: Record<string, readonly number[]> = {
  cn: [8, 10, 15, 21, 26, 29, 33, 32, 28, 23, 17, 11],
  es: [10, 12, 16, 18, 23, 29, 33, 32, 27, 20, 14, 10],
  it: [12, 14, 17, 20, 25, 29, 32, 32, 27, 22, 16, 13],
  fr: [7, 9, 13, 16, 20, 23, 26, 26, 22, 16, 11, 8],
  de: [3, 5, 10, 15, 19, 22, 25, 24, 20, 14, 8, 4],
  gb: [8, 9, 12, 15, 18, 21, 23, 23, 20, 16, 11, 9],
  pl: [1, 2, 7, 14, 19, 22, 24, 24, 19, 13, 6, 2],
  mx: [22, 24, 26, 27, 27, 25, 24, 24, 23, 23, 23, 22],
  br: [30, 31, 30, 28, 26, 25, 25, 26, 27, 28, 29, 30],
  co: [20, 20, 20, 20, 20, 19, 19, 19, 20, 19, 19, 19],
  cl: [30, 29, 27, 23, 18, 15, 15, 17, 19, 22, 26, 29],
  in: [24, 27, 32, 36, 38, 35, 31, 30, 31, 31, 28, 25],
  us: [4, 6, 11, 17, 22, 27, 30, 29, 25, 18, 12, 7],
};

export function monthlyHigh(region: string, month: number): number {
  return (MONTHLY_HIGHS[region] ?? MONTHLY_HIGHS['es']!)[month - 1]!;
}
