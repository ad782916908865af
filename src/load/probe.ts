/**
 * The latency probe, run in its own worker thread (probe-worker.ts) so it competes neither with
 * the generator nor with an embedded broker on the main thread. It subscribes (device topics, or
 * a consumer's reply topic), reads the bench header of every message, and keeps:
 * - an HDR histogram of publish-to-receive latency (µs) over the measured window;
 * - a bitset of seen sequence numbers per device, so duplicates are counted and loss is
 *   "sent in the window - unique received in the window";
 * - per-interval counts and p99 for the live view and the timeline.
 */
import * as hdr from 'hdr-histogram-js';
import { readBenchHeader } from './payloads.js';
import { wallUs, type FromProbe, type LatencySummaryUs, type ProbeConfig, type ProbeStats, type ToProbe } from './protocol.js';
import { WireClient } from './wire.js';

export function newHistogram(): hdr.Histogram {
  return hdr.build({ bitBucketSize: 32, autoResize: true, lowestDiscernibleValue: 1, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

export function summarise(h: hdr.Histogram): LatencySummaryUs | null {
  if (h.totalCount === 0) return null;
  return {
    count: h.totalCount,
    p50: h.getValueAtPercentile(50),
    p90: h.getValueAtPercentile(90),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
    mean: h.mean,
  };
}

/** Seen sequence numbers of one device (grows as needed). */
class SeqSet {
  private bits = new Uint8Array(1024);
  /** true if `seq` was new. */
  add(seq: number): boolean {
    const byte = seq >>> 3;
    if (byte >= this.bits.length) {
      let n = this.bits.length * 2;
      while (n <= byte) n *= 2;
      const b = new Uint8Array(n);
      b.set(this.bits);
      this.bits = b;
    }
    const mask = 1 << (seq & 7);
    if (this.bits[byte]! & mask) return false;
    this.bits[byte]! |= mask;
    return true;
  }

  has(seq: number): boolean {
    const byte = seq >>> 3;
    return byte < this.bits.length && (this.bits[byte]! & (1 << (seq & 7))) !== 0;
  }
}

export class Probe {
  private client: WireClient | null = null;
  private readonly seen: SeqSet[] = [];
  private readonly hist = newHistogram();
  private readonly intervalHist = newHistogram();
  private fromUs = Infinity;
  private untilUs = Infinity;
  private received = 0;
  private receivedAll = 0;
  private duplicates = 0;
  private foreign = 0;
  private negative = 0;
  private lostOnDropped = 0;
  private intervalReceived = 0;
  private reporter: NodeJS.Timeout | null = null;
  /** While draining: the measured count that ends it, when the last one arrived, and the quiet timer. */
  private drain: { expected: number; quietMs: number; lastAt: number; timer: NodeJS.Timeout | null } | null = null;

  constructor(private readonly cfg: ProbeConfig, private readonly post: (m: FromProbe) => void) {}

  async start(): Promise<void> {
    const c = await WireClient.connect(this.cfg.target, {
      clientId: this.cfg.clientId, keepalive: 60,
      ...(this.cfg.username !== undefined ? { username: this.cfg.username } : {}),
      ...(this.cfg.password !== undefined ? { password: this.cfg.password } : {}),
    });
    this.client = c;
    await c.subscribe(this.cfg.filters, this.cfg.qos);
    let acks: Buffer[] = [];
    let flush = false;
    c.onPublish = (payload, qos, messageId) => {
      if (qos === 1) {
        acks.push(Buffer.from([0x40, 0x02, messageId >> 8, messageId & 0xff]));
        if (!flush) {
          flush = true;
          queueMicrotask(() => { flush = false; const b = Buffer.concat(acks); acks = []; c.write(b); });
        }
      }
      this.onMessage(payload);
    };
    c.onClose = (err) => this.post({ type: 'fatal', error: `probe connection lost${err ? `: ${err.message}` : ''}` });
    this.reporter = setInterval(() => this.post({ type: 'stats', stats: this.stats(true) }), 1000);
    this.post({ type: 'ready' });
  }

  handle(m: ToProbe): void {
    if (m.type === 'window') {
      this.fromUs = m.fromUs;
      this.untilUs = m.untilUs;
    } else if (m.type === 'drain') {
      this.drain = { expected: m.expected, quietMs: m.quietMs, lastAt: performance.now(), timer: null };
      if (!this.drainedYet()) this.armQuietTimer(m.quietMs);
    } else if (m.type === 'finish') {
      if (this.reporter) clearInterval(this.reporter);
      this.endDrain();
      this.lostOnDropped = this.missingIn(m.droppedRanges ?? []);
      const stats = this.stats(true);
      const c = this.client;
      if (c) { c.onClose = () => undefined; c.end(); }
      this.post({ type: 'finished', stats, latencyUs: summarise(this.hist) });
    }
  }

  private onMessage(payload: Buffer): void {
    const h = readBenchHeader(payload);
    if (!h || h.run !== this.cfg.runId || h.dev >= this.cfg.devices) {
      this.foreign++;
      return;
    }
    let lat = wallUs() - h.t;
    if (lat < 0) { this.negative++; lat = 0; }
    this.receivedAll++;
    this.intervalReceived++;
    this.intervalHist.recordValue(lat);
    const set = (this.seen[h.dev] ??= new SeqSet());
    const fresh = set.add(h.seq);
    if (h.t < this.fromUs || h.t >= this.untilUs) return;
    if (!fresh) {
      this.duplicates++;
      return;
    }
    this.received++;
    this.hist.recordValue(lat);
    if (this.drain) {
      this.drain.lastAt = performance.now();
      this.drainedYet();
    }
  }

  /** How many of the (device, from, to) ranges' sequence numbers never arrived. */
  private missingIn(ranges: number[]): number {
    let missing = 0;
    for (let i = 0; i + 2 < ranges.length; i += 3) {
      const set = this.seen[ranges[i]!];
      for (let seq = ranges[i + 1]!; seq < ranges[i + 2]!; seq++) if (!set?.has(seq)) missing++;
    }
    return missing;
  }

  /** Answers `drained` (and stops draining) once every expected message is in. */
  private drainedYet(): boolean {
    if (!this.drain || this.received < this.drain.expected) return false;
    this.endDrain();
    this.post({ type: 'drained', stats: this.stats(false) });
    return true;
  }

  /** Fires `quietMs` after the last measured arrival: re-armed for the rest when one came meanwhile. */
  private armQuietTimer(ms: number): void {
    const d = this.drain;
    if (!d) return;
    d.timer = setTimeout(() => {
      const quiet = performance.now() - d.lastAt;
      if (quiet < d.quietMs) { this.armQuietTimer(d.quietMs - quiet); return; }
      this.endDrain();
      this.post({ type: 'drained', stats: this.stats(false) });
    }, ms);
  }

  private endDrain(): void {
    if (this.drain?.timer) clearTimeout(this.drain.timer);
    this.drain = null;
  }

  private stats(resetInterval: boolean): ProbeStats {
    const interval = { received: this.intervalReceived, p99Us: this.intervalHist.totalCount ? this.intervalHist.getValueAtPercentile(99) : null };
    if (resetInterval) {
      this.intervalReceived = 0;
      this.intervalHist.reset();
    }
    return { received: this.received, receivedAll: this.receivedAll, duplicates: this.duplicates, foreign: this.foreign, negative: this.negative, lostOnDroppedConnections: this.lostOnDropped, interval };
  }
}
