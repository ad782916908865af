/**
 * Counting distinct ids in bounded memory: exact (a set) while small, then a HyperLogLog sketch
 * (precision 14: 16,384 one-byte registers, 16 KiB, standard error 1.04/sqrt(16384) = 0.81 %).
 * Counters merge (union), so a 30-day window is the union of its days.
 */

const P = 14;
const M = 1 << P;
/** Up to this many ids are kept exactly; the sketch takes over beyond. */
export const EXACT_LIMIT = 2048;
const ALPHA = 0.7213 / (1 + 1.079 / M);

/** Two independent 32-bit hashes of a string (FNV-1a and a murmur-style mix): 64 bits. */
function hash64(id: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 13;
  }
  a ^= a >>> 16; a = Math.imul(a, 0x85ebca6b); a ^= a >>> 13; a = Math.imul(a, 0xc2b2ae35); a ^= a >>> 16;
  b ^= b >>> 15; b = Math.imul(b, 0x2c1b3c6d); b ^= b >>> 12; b = Math.imul(b, 0x297a2d39); b ^= b >>> 15;
  return [a >>> 0, b >>> 0];
}

export class DistinctCounter {
  private exact: Set<string> | null = new Set();
  private registers: Uint8Array | null = null;

  /** Bytes this counter holds in its registers (0 while exact). */
  get sketchBytes(): number { return this.registers?.length ?? 0; }
  get isExact(): boolean { return this.exact !== null; }

  add(id: string): void {
    if (this.exact) {
      this.exact.add(id);
      if (this.exact.size > EXACT_LIMIT) this.toSketch();
      return;
    }
    this.addToSketch(id);
  }

  count(): number {
    if (this.exact) return this.exact.size;
    return estimate(this.registers!);
  }

  /** This counter becomes the union of itself and `other`. */
  merge(other: DistinctCounter): void {
    if (other.exact) {
      for (const id of other.exact) this.add(id);
      return;
    }
    if (this.exact) this.toSketch();
    const r = this.registers!;
    const o = other.registers!;
    for (let i = 0; i < M; i++) if (o[i]! > r[i]!) r[i] = o[i]!;
  }

  /** A new counter holding the union of `counters`. */
  static union(counters: Iterable<DistinctCounter>): DistinctCounter {
    const out = new DistinctCounter();
    for (const c of counters) out.merge(c);
    return out;
  }

  private toSketch(): void {
    const ids = this.exact!;
    this.exact = null;
    this.registers = new Uint8Array(M);
    for (const id of ids) this.addToSketch(id);
  }

  private addToSketch(id: string): void {
    const [h1, h2] = hash64(id);
    const index = h1 >>> (32 - P);
    // Rank: position of the first 1-bit in the remaining 50 bits (18 from h1, 32 from h2).
    const rest = (h1 << P) >>> 0;
    let rank: number;
    if (rest !== 0) rank = Math.clz32(rest) + 1;
    else rank = 32 - P + (h2 === 0 ? 33 : Math.clz32(h2) + 1);
    if (rank > this.registers![index]!) this.registers![index] = rank;
  }
}

function estimate(registers: Uint8Array): number {
  let sum = 0;
  let zeros = 0;
  for (let i = 0; i < M; i++) {
    const r = registers[i]!;
    sum += 2 ** -r;
    if (r === 0) zeros++;
  }
  const raw = (ALPHA * M * M) / sum;
  // Small range: linear counting is more accurate while registers are still empty.
  if (raw <= 2.5 * M && zeros > 0) return Math.round(M * Math.log(M / zeros));
  return Math.round(raw);
}
