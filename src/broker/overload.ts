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
 * So per subscriber at most about `qos1Bytes` (plus one read batch) is buffered. Over all
 * subscribers together, once more than `totalBytes` wait unwritten, a subscriber already more
 * than BUSY_BYTES behind gets nothing more (either QoS) until the total falls again: many
 * stalled subscribers cannot add up to `connections x qos1Bytes`.
 */

export interface OverloadOptions {
  /** QoS 0 deliveries are shed while a subscriber has more than this many bytes unwritten. Default 1 MiB. */
  qos0Bytes?: number;
  /** QoS 1 deliveries are shed while a subscriber has more than this many bytes unwritten. Default 16 MiB. */
  qos1Bytes?: number;
  /** Bytes unwritten to all subscribers together over which those more than 64 KiB behind get nothing more. Default 256 MiB. */
  totalBytes?: number;
}

/** A subscriber this far behind counts as backed up when the total is over its bound. */
export const BUSY_BYTES = 64 * 1024;

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
  totalBytes = 256 << 20;
  readonly stats: OverloadStats = { shedQos0: 0, shedQos1: 0, delayedQos1: 0, slowEpisodes: 0, maxBacklogBytes: 0 };
  /** Deliveries shed because the total backlog was over `totalBytes` (also counted in shedQos0/shedQos1). */
  shedOverTotal = 0;
  private readonly slow = new WeakSet<object>();
  /** The backlog each connection had when last seen (only those with one), and their sum. */
  private readonly backlogs = new Map<Backlogged, number>();
  private total = 0;

  constructor(opts: OverloadOptions = {}) { this.configure(opts); }

  /** Change the bounds (the counters stay). */
  configure(opts: OverloadOptions): void {
    if (opts.qos0Bytes !== undefined) this.qos0Bytes = opts.qos0Bytes;
    if (opts.qos1Bytes !== undefined) this.qos1Bytes = opts.qos1Bytes;
    if (opts.totalBytes !== undefined) this.totalBytes = opts.totalBytes;
    this.qos1Bytes = Math.max(this.qos0Bytes, this.qos1Bytes);
  }

  /** Bytes unwritten to all subscribers, as last seen (a connection's figure is refreshed as it drains). */
  get totalBacklog(): number { return this.total; }

  /** Look at a connection's backlog again (it drained). */
  refresh(conn: Backlogged): void {
    this.note(conn, conn.writableLength);
  }

  /** The connection closed: its backlog is gone. */
  forget(conn: Backlogged): void {
    this.note(conn, 0);
  }

  get shed(): number { return this.stats.shedQos0 + this.stats.shedQos1; }

  /** Whether to deliver a message of `qos` to the subscriber on `conn` now. */
  admit(conn: Backlogged, qos: number): boolean {
    const backlog = conn.writableLength;
    this.note(conn, backlog);
    if (backlog > this.stats.maxBacklogBytes) this.stats.maxBacklogBytes = backlog;
    if (backlog > BUSY_BYTES && this.total > this.totalBytes) {
      this.shedOverTotal++;
      if (qos === 0) this.stats.shedQos0++;
      else this.stats.shedQos1++;
      return false;
    }
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

  private note(conn: Backlogged, backlog: number): void {
    const before = this.backlogs.get(conn) ?? 0;
    if (backlog === before) return;
    this.total += backlog - before;
    if (backlog > 0) this.backlogs.set(conn, backlog);
    else this.backlogs.delete(conn);
  }
}
