/**
 * Seeded randomness. `Rng.from(seed, ...labels)` gives an independent stream per label (a device,
 * a home, a behaviour), so adding a device does not shift every other device's numbers.
 * Generator: sfc32 (small fast counter), seeded from a 128-bit string hash.
 */

import type { Random } from '../contract/random.js';

function hash128(text: string): [number, number, number, number] {
  // cyrb128: a fast, well-mixed non-cryptographic string hash.
  let h1 = 1779033703, h2 = 3144134277, h3 = 1013904242, h4 = 2773480762;
  for (let i = 0; i < text.length; i++) {
    const k = text.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4; h2 ^= h1; h3 ^= h1; h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

const SEP = '\u241f';

export class Rng implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /**
   * The stream's key is its parent's key and its own labels (`parent` null: `label` is the whole
   * key). Only the labels are kept: a fleet forks a stream per behaviour of every device, and each
   * full key held in memory cost more than the generator itself.
   */
  private readonly parent: Rng | null;
  private readonly label: string;

  /** `from`: a copy of that stream where it stands, instead of a stream seeded from the key. */
  private constructor(parent: Rng | null, label: string, from?: Rng) {
    this.parent = parent;
    this.label = label;
    if (from) {
      this.a = from.a;
      this.b = from.b;
      this.c = from.c;
      this.d = from.d;
      return;
    }
    [this.a, this.b, this.c, this.d] = hash128(this.key);
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** The key the stream was seeded from. */
  private get key(): string {
    return this.parent === null ? this.label : `${this.parent.key}${SEP}${this.label}`;
  }

  /** A stream for `seed` and a path of labels, e.g. `Rng.from(42, 'device', did)`. */
  static from(seed: number | string, ...labels: Array<string | number>): Rng {
    return new Rng(null, [String(seed), ...labels.map(String)].join(SEP));
  }

  /** An independent child stream; the same label always gives the same child. */
  fork(...labels: Array<string | number>): Rng {
    if (labels.length === 0) return new Rng(this.parent, this.label);
    return new Rng(this, labels.map(String).join(SEP));
  }

  /** A copy where this stream stands (made by the constructor: the same shape as any stream, for the hot paths that draw from it). */
  copy(): Rng {
    return new Rng(this.parent, this.label, this);
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform float in [min, max). */
  range(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** Uniform integer in [min, max], both inclusive. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Normal deviate (Box-Muller). */
  normal(mean = 0, sd = 1): number {
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Exponential deviate with the given mean (Poisson inter-arrival times). */
  exponential(mean: number): number {
    let u = 0;
    while (u === 0) u = this.next();
    return -Math.log(u) * mean;
  }

  /**
   * Gamma deviate with the given shape and mean (Marsaglia-Tsang; shapes below 1 by the boost
   * U^(1/shape)). Spreads a rate across people: shape 1 is exponential, smaller is more skewed.
   */
  gamma(shape: number, mean: number): number {
    if (!(shape > 0) || !(mean > 0)) return 0;
    const boost = shape < 1 ? Math.pow(this.nextNonZero(), 1 / shape) : 1;
    const d = (shape < 1 ? shape + 1 : shape) - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do { x = this.normal(); v = 1 + c * x; } while (v <= 0);
      v = v * v * v;
      const u = this.nextNonZero();
      if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v * boost * (mean / shape);
    }
  }

  private nextNonZero(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return u;
  }

  /** Poisson-distributed count with mean `lambda` (Knuth for small, normal approximation for large). */
  poisson(lambda: number): number {
    if (lambda <= 0) return 0;
    if (lambda > 50) return Math.max(0, Math.round(this.normal(lambda, Math.sqrt(lambda))));
    const l = Math.exp(-lambda);
    let k = 0;
    let p = 1;
    do { k++; p *= this.next(); } while (p > l);
    return k - 1;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick(): empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Pick by weight; weights need not sum to 1. */
  weighted<T>(items: ReadonlyArray<readonly [T, number]>): T {
    let total = 0;
    for (const [, w] of items) total += Math.max(0, w);
    if (!(total > 0)) throw new RangeError('weighted(): weights must include a positive value');
    let r = this.next() * total;
    for (const [item, w] of items) {
      r -= Math.max(0, w);
      if (r < 0) return item;
    }
    return items[items.length - 1]![0];
  }

  /** `n` lowercase hex characters. */
  hex(n: number): string {
    let s = '';
    while (s.length < n) s += this.nextUint32().toString(16).padStart(8, '0');
    return s.slice(0, n);
  }
}
