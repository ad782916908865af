/**
 * A message emitter for Aedes that survives floods.
 *
 * Stock mqemitter 7.1 limits in-flight messages with a queue, and drains that queue by recursion:
 * when listeners finish synchronously, each completion starts the next queued message on the same
 * stack, so a burst of QoS 0 publishes overflows it (`RangeError: Maximum call stack size
 * exceeded`). Here the inner mqemitter runs unbounded (its queue is never used) and the bound is
 * kept by this wrapper, whose drain is a loop: re-entrant completions only decrement a counter.
 */
import mqemitter from 'mqemitter';
import type { TopicCache } from './match-cache.js';
import { TopicIndex, type TopicMatcher } from './topic-index.js';

export interface MqPacket { topic: string; [key: string]: unknown }
type Listener = (packet: MqPacket, done: () => void) => void;
type Done = (err?: Error | null) => void;

/** The emitter Aedes' messages go through: mqemitter in this process, or mqemitter-redis between broker nodes. */
export interface Inner {
  /** mqemitter's topic trie (qlobber); mqemitter-redis has one too. Replaced by a TopicIndex (topic-index.ts). */
  _matcher?: TopicMatcher<Listener>;
  on(topic: string, fn: Listener, done?: () => void): unknown;
  removeListener(topic: string, fn: Listener, done?: () => void): unknown;
  emit(packet: MqPacket, cb: Done): unknown;
  close(cb: () => void): unknown;
}

export interface FloodSafeEmitterStats {
  /** Messages being delivered right now. */
  inFlight: number;
  /** Messages waiting for a delivery slot. */
  queued: number;
  /** Highest queue length seen. */
  maxQueued: number;
  /** Messages that had to wait for a delivery slot, since the start. */
  waited: number;
}

export class FloodSafeEmitter {
  private readonly inner: Inner;
  private readonly limit: number;
  private queue: Array<MqPacket | Done> = [];
  private head = 0;
  private current = 0;
  private draining = false;
  private closed = false;
  /** Slots of messages delivered, for the next ones (at most `limit` are ever made). */
  private free: InFlight | null = null;
  maxQueued = 0;
  waited = 0;
  /** Called each time the last message in flight finishes with none waiting (a broker draining listens). */
  onIdle: (() => void) | null = null;
  /** Whether the emitter underneath is shared with other brokers (a cluster's, through Redis). */
  private readonly shared: boolean;
  /** What each topic's wildcard subscriptions match, as last matched (topic-index.ts); null if the inner emitter has no matcher to replace. */
  readonly matches: TopicCache<unknown> | null;

  /**
   * @param concurrency messages delivered at once before the rest wait (default 100, as Aedes).
   * @param inner the emitter underneath (default: an unbounded mqemitter in this process).
   */
  constructor(concurrency = 100, inner?: Inner) {
    this.limit = Math.max(1, concurrency);
    this.shared = inner !== undefined;
    this.inner = inner ?? (mqemitter as unknown as (o: object) => Inner)({ concurrency: 0, matchEmptyLevels: true });
    // Both mqemitter and mqemitter-redis build a qlobber with matchEmptyLevels (ours are made with
    // it) and use only its add, remove and match: it is replaced while it is still empty.
    if (this.inner._matcher) {
      const index = new TopicIndex<Listener>({ matchEmptyLevels: true });
      this.inner._matcher = index;
      this.matches = index.remembered;
    } else {
      this.matches = null;
    }
  }

  on(topic: string, fn: Listener, done?: () => void): this {
    this.inner.on(topic, fn, done);
    return this;
  }

  /**
   * Remove Aedes' listener for other brokers' announcements of a new client (`$SYS/+/new/clients`,
   * which closes this broker's session with the same client id: a takeover across a cluster).
   * An emitter in this process alone hears only its own broker's announcements, which that
   * listener ignores, yet it ran on every CONNECT (about 4 µs each over TCP). The announcement is
   * still published, to any client subscribed to it. Resolves with whether it was found.
   */
  async dropTakeoverListener(): Promise<boolean> {
    const fn = this.inner._matcher?.match('$SYS/-/new/clients').find((l) => l.name === 'closeSameClients');
    if (!fn) return false;
    await new Promise<void>((resolve) => { this.inner.removeListener('$SYS/+/new/clients', fn, resolve); });
    return true;
  }

  /**
   * Whether a message on `topic` would reach any listener: a client's subscription or the broker's
   * own. Aedes asks before each of its `$SYS` announcements of a client or a subscription
   * (scripts/patch-aedes.mjs), which nothing listens for unless a client subscribed to them. On an
   * emitter shared with other brokers always true: their listeners are not all here.
   */
  hasListeners(topic: string): boolean {
    const matcher = this.inner._matcher;
    return this.shared || !matcher || matcher.match(topic).length > 0;
  }

  removeListener(topic: string, fn: Listener, done?: () => void): this {
    this.inner.removeListener(topic, fn, done);
    return this;
  }

  emit(packet: MqPacket, cb?: Done): this {
    const done = cb ?? noop;
    if (this.closed) {
      done(new Error('emitter is closed'));
      return this;
    }
    if (this.current < this.limit && this.queued === 0) this.start(packet, done);
    else {
      this.queue.push(packet, done);
      this.waited++;
      if (this.queued > this.maxQueued) this.maxQueued = this.queued;
      this.drain();
    }
    return this;
  }

  close(cb: () => void): this {
    this.closed = true;
    this.inner.close(cb);
    return this;
  }

  get queued(): number { return (this.queue.length - this.head) / 2; }
  /** Nothing in flight and nothing waiting. */
  get idle(): boolean { return this.current === 0 && this.head === this.queue.length; }
  get stats(): FloodSafeEmitterStats { return { inFlight: this.current, queued: this.queued, maxQueued: this.maxQueued, waited: this.waited }; }

  private start(packet: MqPacket, done: Done): void {
    this.current++;
    if (this.shared) {
      // mqemitter-redis completes a message again, with an error, when its completion throws
      // (`.then(done).catch(done)`): a reused slot could then complete another message. Its own closure each.
      this.inner.emit(packet, (err) => this.completed(done, err));
      return;
    }
    const slot = this.free ?? new InFlight(this);
    this.free = slot.next;
    slot.next = null;
    slot.done = done;
    this.inner.emit(packet, slot.complete);
  }

  /** @internal A message in flight is delivered (`InFlight.complete`): its slot is free again. */
  finish(slot: InFlight, err: Error | null | undefined): void {
    const done = slot.done!;
    slot.done = null;
    slot.next = this.free;
    this.free = slot;
    this.completed(done, err);
  }

  private completed(done: Done, err: Error | null | undefined): void {
    this.current--;
    done(err);
    this.drain();
    if (this.onIdle && this.idle) this.onIdle();
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.current < this.limit && this.head < this.queue.length) {
        const packet = this.queue[this.head] as MqPacket;
        const done = this.queue[this.head + 1] as Done;
        this.queue[this.head] = this.queue[this.head + 1] = undefined as unknown as Done;
        this.head += 2;
        this.start(packet, done);
      }
      if (this.head > 4096 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
    } finally {
      this.draining = false;
    }
  }
}

function noop(): void {}

/**
 * One message in flight and its completion, made once and reused: a closure a message was most
 * of what the emitter allocated. Used with the in-process mqemitter, which calls a completion once
 * per emit (a listener that throws throws out of `emit`); not with a cluster's (see `start`).
 */
class InFlight {
  done: Done | null = null;
  next: InFlight | null = null;
  readonly complete: Done;
  constructor(emitter: FloodSafeEmitter) {
    this.complete = (err) => {
      if (this.done !== null) emitter.finish(this, err);
    };
  }
}
