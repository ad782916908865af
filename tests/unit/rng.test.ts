import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/sim/rng.js';

const take = (r: Rng, n: number): number[] => Array.from({ length: n }, () => r.next());

describe('Rng', () => {
  it('gives the same stream for the same seed and labels', () => {
    expect(take(Rng.from(42, 'device', 'a'), 20)).toEqual(take(Rng.from(42, 'device', 'a'), 20));
  });

  it('gives different streams for another seed or label', () => {
    const a = take(Rng.from(42, 'x'), 5);
    expect(take(Rng.from(43, 'x'), 5)).not.toEqual(a);
    expect(take(Rng.from(42, 'y'), 5)).not.toEqual(a);
  });

  it('forks independent children: drawing from one does not shift another', () => {
    const parent = Rng.from(7);
    const a1 = take(parent.fork('a'), 5);
    const parent2 = Rng.from(7);
    take(parent2.fork('b'), 1000);
    expect(take(parent2.fork('a'), 5)).toEqual(a1);
  });

  it('copies a stream where it stands: the copy gives the next numbers, and leaves the original alone', () => {
    const r = Rng.from(9, 'walk');
    take(r, 7);
    const c = r.copy();
    const ahead = [c.normal(0, 1), c.next(), c.int(1, 6)];
    expect([r.normal(0, 1), r.next(), r.int(1, 6)]).toEqual(ahead);
    expect(take(r.copy(), 5)).toEqual(take(r, 5));
  });

  it('has sane distributions (fixed seed, so these are exact and not flaky)', () => {
    const r = Rng.from(1);
    const n = 100_000;
    const u = take(r, n);
    expect(Math.min(...u)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...u)).toBeLessThan(1);
    expect(u.reduce((a, b) => a + b, 0) / n).toBeCloseTo(0.5, 2);
    const e = Array.from({ length: n }, () => r.exponential(30));
    expect(e.reduce((a, b) => a + b, 0) / n).toBeGreaterThan(29);
    expect(e.reduce((a, b) => a + b, 0) / n).toBeLessThan(31);
    const g = Array.from({ length: n }, () => r.normal(10, 2));
    const mean = g.reduce((a, b) => a + b, 0) / n;
    const sd = Math.sqrt(g.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
    expect(mean).toBeCloseTo(10, 1);
    expect(sd).toBeCloseTo(2, 1);
    const ints = new Set(Array.from({ length: 1000 }, () => r.int(3, 6)));
    expect([...ints].sort()).toEqual([3, 4, 5, 6]);
  });

  it('picks by weight', () => {
    const r = Rng.from(3);
    const counts = { a: 0, b: 0 };
    for (let i = 0; i < 40_000; i++) counts[r.weighted([['a', 1], ['b', 3]] as const)]++;
    expect(counts.b / counts.a).toBeGreaterThan(2.8);
    expect(counts.b / counts.a).toBeLessThan(3.2);
  });
});
