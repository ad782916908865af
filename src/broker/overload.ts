/**
 * Overload policy of the embedded broker: what happens when a subscriber cannot keep up.
 *
 * Aedes writes each delivery to the subscriber's socket; when the socket is full it waits for
 * `drain`, and the whole publish pipeline (and, through TCP flow control, every publisher) waits
 * with it. One slow consumer then slows everybody, and a QoS 1 backlog grows memory without bound.
 * The guard is asked before each delivery (Aedes' authorizeForward) and sheds instead:
 * - a QoS 0 delivery to a client with more than `qos0Bytes` waiting in its socket is dropped
 *   (QoS 0 is at-most-once: dropping it is allowed, and it is counted);
 * - a QoS 1 delivery is still written while the backlog is under `qos1Bytes` (counted as delayed
 *   when over `qos0Bytes`), and dropped above it, like Mosquitto's max_queued_bytes.
 * So per subscriber at most about `qos1Bytes` (plus one read batch) is buffered.
 */

export interface OverloadOptions {
  /** QoS 0 deliveries are shed while a subscriber has more than this many bytes unwritten. Default 1 MiB. */
  qos0Bytes?: number;
  /** QoS 1 deliveries are shed while a subscriber has more than this many bytes unwritten. Default 16 MiB. */
  qos1Bytes?: number;
}

export interface OverloadStats {
  /** QoS 0 deliveries dropped because the subscriber was backed up. */
  shedQos0: number;
  /** QoS 1 deliveries dropped because the subscriber was backed up past the hard bound. */
  shedQos1: number;
  /** QoS 1 deliveries written behind a backlog over the QoS 0 bound. */
  delayedQos1: number;
  /** Times a subscriber went from under to over the QoS 0 bound. */
  slowEpisodes: number;
  /** Largest unwritten backlog seen on a subscriber connection, bytes. */
  maxBacklogBytes: number;
}

/** The part of a connection the guard reads: bytes queued for writing. */
export interface Backlogged { writableLength: number }

export class OverloadGuard {
  qos0Bytes = 1 << 20;
  qos1Bytes = 16 << 20;
  readonly stats: OverloadStats = { shedQos0: 0, shedQos1: 0, delayedQos1: 0, slowEpisodes: 0, maxBacklogBytes: 0 };
  private readonly slow = new WeakSet<object>();

  constructor(opts: OverloadOptions = {}) { this.configure(opts); }

  /** Change the bounds (the counters stay). */
  configure(opts: OverloadOptions): void {
    if (opts.qos0Bytes !== undefined) this.qos0Bytes = opts.qos0Bytes;
    if (opts.qos1Bytes !== undefined) this.qos1Bytes = opts.qos1Bytes;
    this.qos1Bytes = Math.max(this.qos0Bytes, this.qos1Bytes);
  }

  get shed(): number { return this.stats.shedQos0 + this.stats.shedQos1; }

  /** Whether to deliver a message of `qos` to the subscriber on `conn` now. */
  admit(conn: Backlogged, qos: number): boolean {
    const backlog = conn.writableLength;
    if (backlog > this.stats.maxBacklogBytes) this.stats.maxBacklogBytes = backlog;
    if (backlog <= this.qos0Bytes) {
      if (this.slow.has(conn)) this.slow.delete(conn);
      return true;
    }
    if (!this.slow.has(conn)) {
      this.slow.add(conn);
      this.stats.slowEpisodes++;
    }
    if (qos === 0) {
      this.stats.shedQos0++;
      return false;
    }
    if (backlog > this.qos1Bytes) {
      this.stats.shedQos1++;
      return false;
    }
    this.stats.delayedQos1++;
    return true;
  }
}
