import { describe, expect, it } from 'vitest';
import { ActivityWindow } from '../../src/platform/activity.js';
import { DistinctCounter, EXACT_LIMIT } from '../../src/platform/distinct.js';

const DAY = 86_400_000;

describe('distinct counting', () => {
  it('is exact for small populations, duplicates included', () => {
    const c = new DistinctCounter();
    for (let i = 0; i < EXACT_LIMIT; i++) { c.add(`d${i}`); c.add(`d${i}`); }
    expect(c.count()).toBe(EXACT_LIMIT);
    expect(c.isExact).toBe(true);
  });

  it('counts a million distinct ids within about 1 % in a 16 KiB sketch', () => {
    // Fixed id sets, so this is exact and not flaky; HLL's standard error at p=14 is 0.81 %.
    const errors: number[] = [];
    for (let set = 0; set < 4; set++) {
      const c = new DistinctCounter();
      for (let i = 0; i < 1_000_000; i++) c.add(`blt.3.${set}.${i}`);
      expect(c.sketchBytes).toBe(16_384);
      errors.push(Math.abs(c.count() - 1_000_000) / 1_000_000);
    }
    expect(errors.reduce((a, b) => a + b, 0) / errors.length).toBeLessThan(0.01);
    expect(Math.max(...errors)).toBeLessThan(0.025);
  });

  it('merges into unions (exact with exact, sketch with sketch)', () => {
    const a = new DistinctCounter();
    const b = new DistinctCounter();
    for (let i = 0; i < 1000; i++) a.add(`u${i}`);
    for (let i = 500; i < 1500; i++) b.add(`u${i}`);
    expect(DistinctCounter.union([a, b]).count()).toBe(1500);
    const big1 = new DistinctCounter();
    const big2 = new DistinctCounter();
    for (let i = 0; i < 200_000; i++) big1.add(`x${i}`);
    for (let i = 100_000; i < 300_000; i++) big2.add(`x${i}`);
    const u = DistinctCounter.union([big1, big2]).count();
    expect(Math.abs(u - 300_000) / 300_000).toBeLessThan(0.03);
  });
});

describe('activity windows in event time', () => {
  it('counts daily, weekly and monthly actives as unions of days', () => {
    const w = new ActivityWindow();
    const t0 = Date.UTC(2026, 5, 1, 12);
    for (let day = 0; day < 40; day++) {
      w.add('everyday', t0 + day * DAY);
      w.add(`only-day-${day}`, t0 + day * DAY);
    }
    expect(w.count(1)).toBe(2);
    expect(w.count(7)).toBe(8);
    expect(w.count(30)).toBe(31);
    // Old days are forgotten; asking about a past day uses that day's window.
    expect(w.count(1, t0 + 35 * DAY)).toBe(2);
  });

  it('averages daily counts over the whole days before the latest', () => {
    const w = new ActivityWindow();
    const t0 = Date.UTC(2026, 5, 1);
    expect(w.averageDaily(7)).toBeNull();
    // Day d has d + 1 active ids; the latest day (10) is still going and is left out.
    for (let d = 0; d <= 10; d++) for (let i = 0; i <= d; i++) w.add(`id-${i}`, t0 + d * DAY + i * 1000);
    expect(w.averageDaily(7)).toBe((4 + 5 + 6 + 7 + 8 + 9 + 10) / 7);
    // Early in a run, fewer days; a day without activity counts as zero.
    const early = new ActivityWindow();
    early.add('a', t0);
    expect(early.averageDaily(7)).toBeNull();
    early.add('b', t0 + 2 * DAY);
    expect(early.averageDaily(7)).toBe(0.5);
  });

  it('ignores events older than the 30-day window', () => {
    const w = new ActivityWindow();
    const t0 = Date.UTC(2026, 0, 1);
    w.add('late', t0 + 40 * DAY);
    w.add('ancient', t0);
    expect(w.count(30)).toBe(1);
  });

  it('counts the same with snapshots every few minutes as when asked once, late events included', () => {
    // Small ids per day stay exact; large ones become sketches: both must count identically
    // whether windows were asked all along (cached unions of past days) or only at the end.
    for (const perDay of [300, 5000]) {
      const live = new ActivityWindow();
      const once = new ActivityWindow();
      const truth = new Map<number, Set<string>>();
      const t0 = Date.UTC(2026, 0, 1);
      let seed = 1;
      const rand = (): number => ((seed = (Math.imul(seed, 48271) >>> 0) % 2147483647) / 2147483647);
      const seen: number[][] = [];
      for (let day = 0; day < 40; day++) {
        for (let i = 0; i < perDay; i++) {
          // Most events are today's; some arrive a few days late.
          const late = rand() < 0.05 ? 1 + Math.floor(rand() * 5) : 0;
          const d = Math.max(0, day - late);
          const id = `u${Math.floor(rand() * perDay * 4)}`;
          const ts = t0 + d * DAY + Math.floor(rand() * DAY);
          live.add(id, ts);
          once.add(id, ts);
          if (d > day - 31) {
            if (!truth.has(d)) truth.set(d, new Set());
            truth.get(d)!.add(id);
          }
          if (i % 97 === 0) seen.push([live.count(1), live.count(7), live.count(30)]);
        }
      }
      expect(seen.length).toBeGreaterThan(100);
      expect([live.count(1), live.count(7), live.count(30)]).toEqual([once.count(1), once.count(7), once.count(30)]);
      if (perDay === 300) {
        const exact = (days: number): number => {
          const u = new Set<string>();
          for (const [d, ids] of truth) if (d > 39 - days) for (const id of ids) u.add(id);
          return u.size;
        };
        expect(exact(30)).toBeLessThanOrEqual(EXACT_LIMIT);
        expect([live.count(1), live.count(7), live.count(30)]).toEqual([exact(1), exact(7), exact(30)]);
      }
    }
  });
});
