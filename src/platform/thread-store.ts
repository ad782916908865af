/**
 * The store of a `--workers` thread. The shard counts in its own thread, as a platform always did
 * (a `MemoryStore`: its reads are its own figures, exact at once), and every write also goes into
 * a `BatchBuilder`, whose batches it hands on (the shard worker posts them to the main thread,
 * which applies every shard's, in order, to the run's one merged `MemoryStore`: `apply`).
 *
 * Its reads stay its own on purpose: the thread's status adds up with the other shards' (online
 * devices), a command counts at the shard's own event time (the merged one would depend on how
 * far the other threads happen to be), and the shard's report is its own. What the main thread
 * merges is exactly what these reads are made of, up to `close()`: the shard closes the store as
 * it takes its figures at the end, so devices going offline as it stops are not sent.
 */
import { BatchBuilder, type Known, type PlatformBatch, type SharedStore, type WindowName } from './store.js';
import { MemoryStore } from './memory-store.js';
import type { OnlineBucket } from './history.js';
import type { PlatformSnapshot } from './snapshot.js';

export interface ThreadStoreOptions {
  /** A batch goes out at most this long after its first write, ms. Default 100. */
  intervalMs?: number;
  /** ... and as soon as it holds this many writes. Default 20,000. */
  maxWrites?: number;
}

export class ThreadStore implements SharedStore {
  /** This thread's counts: what every read gives. */
  private readonly own = new MemoryStore();
  private readonly out = new BatchBuilder();
  private readonly maxWrites: number;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly viewers = new Set<() => void>();

  /** `send` gets each batch, in the order they were written (it must keep that order). */
  constructor(private readonly send: (batch: PlatformBatch) => void, opts: ThreadStoreOptions = {}) {
    this.maxWrites = opts.maxWrites ?? 20_000;
    this.intervalMs = opts.intervalMs ?? 100;
  }

  sessionUp(did: string, transport: string, connId: number): void {
    this.own.sessionUp(did, transport, connId);
    if (this.batching()) this.out.sessionUp(did, transport, connId);
  }

  sessionDown(did: string, connId: number): void {
    this.own.sessionDown(did, connId);
    if (this.batching()) this.out.sessionDown(did, connId);
  }

  online(device: Known, ts: number, parent: string | undefined, children: readonly Known[]): void {
    this.own.online(device, ts, parent, children);
    if (this.batching()) this.out.online(device, ts, parent, children);
  }

  offline(did: string, ts: number): void {
    this.own.offline(did, ts);
    if (this.batching()) this.out.offline(did, ts);
  }

  time(ts: number): void {
    this.own.time(ts);
    if (this.batching()) this.out.timeAt(ts);
  }

  kind(kind: string): void {
    this.own.kind(kind);
    if (this.batching()) this.out.kind(kind);
  }

  event(did: string, seq: number): boolean {
    // The merged store removes the same duplicates: it sees this device's numbers in the same order.
    if (this.batching()) this.out.event(did, seq);
    return this.own.event(did, seq);
  }

  active(window: WindowName, id: string, ts: number): void {
    this.own.active(window, id, ts);
    if (this.batching()) this.out.active(window, id, ts);
  }

  malformed(reason: string): void {
    this.own.malformed(reason);
    if (this.batching()) this.out.bad(reason);
  }

  get eventTime(): number | null { return this.own.eventTime; }
  get onlineCount(): number { return this.own.onlineCount; }
  snapshot(): PlatformSnapshot { return this.own.snapshot(); }
  onlineHistory(from?: number, to?: number): OnlineBucket[] { return this.own.onlineHistory(from, to); }

  /** Hand on what is batched (at once: `send` has it when this resolves). */
  flush(): Promise<void> {
    this.sendBatch();
    return Promise.resolve();
  }

  /** Flush; the view (this thread's own counts) is always current. */
  async refresh(): Promise<void> {
    await this.flush();
    for (const fn of this.viewers) fn();
  }

  /** Hand on what is batched and stop: later writes count in this thread only. Idempotent. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.sendBatch();
    this.closed = true;
    return Promise.resolve();
  }

  onView(fn: () => void): () => void {
    this.viewers.add(fn);
    return () => { this.viewers.delete(fn); };
  }

  /**
   * Whether a write goes into the batch too (not once closed); a full batch goes out first, and
   * the first write of a batch sets the time it goes out by.
   */
  private batching(): boolean {
    if (this.closed) return false;
    if (this.out.size >= this.maxWrites) this.sendBatch();
    if (this.timer === null) {
      this.timer = setTimeout(() => this.sendBatch(), this.intervalMs);
      this.timer.unref();
    }
    return true;
  }

  private sendBatch(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.closed || this.out.empty) return;
    this.send(this.out.take());
  }
}
