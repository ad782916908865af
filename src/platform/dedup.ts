/**
 * Removing the duplicates QoS 1 makes. QoS 1 is "at least once": a device whose PUBACK was lost
 * in a broker restart sends the event again. Each device numbers its events (`seq`, from 1); the
 * platform keeps, per device, the highest number seen and a bitmap of the `window` numbers below
 * it, so memory stays bounded (window / 8 bytes per device) however long the run.
 *
 * An event more than `window` numbers behind the highest cannot be told apart from a duplicate;
 * it is dropped and counted as `tooOld`. Numbers skipped over and never filled are `missing`
 * (events that never arrived: lost, or still on their way).
 */

export type SeqVerdict = 'new' | 'duplicate' | 'too-old';

interface DeviceSeqs { high: number; bits: Uint8Array; missing: number }

export interface DedupStats {
  /** Events accepted once. */
  accepted: number;
  /** Events seen again and removed. */
  duplicates: number;
  /** Events too far behind the device's latest to check (dropped). */
  tooOld: number;
  /** Sequence numbers skipped over and not (yet) filled, over all devices. */
  missing: number;
}

export class EventDeduper {
  private readonly devices = new Map<string, DeviceSeqs>();
  private readonly stats_: DedupStats = { accepted: 0, duplicates: 0, tooOld: 0, missing: 0 };

  /** `window`: how far behind its latest event a device's event may arrive and still be checked (a multiple of 8). */
  constructor(readonly window = 512) {
    if (!(Number.isInteger(window) && window > 0 && window % 8 === 0)) throw new RangeError(`window must be a positive multiple of 8, got ${window}`);
  }

  get stats(): DedupStats { return { ...this.stats_ }; }

  /** Highest sequence number seen from `did` (0 if none). */
  highest(did: string): number { return this.devices.get(did)?.high ?? 0; }

  /** Sequence numbers of `did` below its highest that have not arrived. */
  missing(did: string): number { return this.devices.get(did)?.missing ?? 0; }

  /** Check one event's sequence number (a positive integer) and remember it. */
  check(did: string, seq: number): SeqVerdict {
    let d = this.devices.get(did);
    if (!d) {
      // The first number seen is the baseline: a device may have counted before the platform watched.
      this.devices.set(did, (d = { high: seq - 1, bits: new Uint8Array(this.window / 8), missing: 0 }));
    }
    if (seq > d.high) {
      const gap = seq - d.high - 1;
      // Slots of the numbers the window moves past are reused for the new ones: clear them.
      if (seq - d.high >= this.window) d.bits.fill(0);
      else for (let s = d.high + 1; s <= seq; s++) this.clear(d, s);
      d.missing += gap;
      this.stats_.missing += gap;
      d.high = seq;
      this.set(d, seq);
      this.stats_.accepted++;
      return 'new';
    }
    if (seq <= d.high - this.window) {
      this.stats_.tooOld++;
      return 'too-old';
    }
    if (this.has(d, seq)) {
      this.stats_.duplicates++;
      return 'duplicate';
    }
    this.set(d, seq);
    d.missing--;
    this.stats_.missing--;
    this.stats_.accepted++;
    return 'new';
  }

  // A number's slot is bit (i & 7) of byte (i >> 3), i = seq % window, computed in place in each
  // of has/set/clear (they run for every event the platform counts).
  private has(d: DeviceSeqs, seq: number): boolean {
    const i = seq % this.window;
    return (d.bits[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  private set(d: DeviceSeqs, seq: number): void {
    const i = seq % this.window;
    d.bits[i >> 3]! |= 1 << (i & 7);
  }

  private clear(d: DeviceSeqs, seq: number): void {
    const i = seq % this.window;
    d.bits[i >> 3]! &= ~(1 << (i & 7));
  }
}
