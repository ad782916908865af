/**
 * Seeded randomness as simulation code sees it (implemented by sim/rng.ts). Every stream is keyed
 * by labels (a device, a home, a behaviour), so the same seed gives the same numbers to the same
 * thing whatever else the population holds.
 */
export interface Random {
  /** An independent child stream; the same labels always give the same child. */
  fork(...labels: Array<string | number>): Random;
  /**
   * A copy of this stream where it stands: it gives the numbers this one gives next (to look
   * ahead). Optional for streams of your own: without it, a random walk runs each step as an event.
   */
  copy?(): Random;
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [min, max). */
  range(min: number, max: number): number;
  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  normal(mean?: number, sd?: number): number;
  exponential(mean: number): number;
  /** Gamma distributed with this shape and mean. */
  gamma(shape: number, mean: number): number;
  poisson(lambda: number): number;
  pick<T>(items: readonly T[]): T;
  weighted<T>(items: ReadonlyArray<readonly [T, number]>): T;
  /** `n` hex digits. */
  hex(n: number): string;
}
