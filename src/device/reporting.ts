/**
 * MIoT reporting rules (module serial protocol): properties_changed is aggregated per second and
 * only the last value of a property within that second is forwarded; events go out immediately
 * but at most 3 per second. Both limits are per device and run on the virtual clock.
 */
import type { Scheduler, TimerHandle } from '../contract/clock.js';
import type { EventArgument, Scalar } from '../contract/wire.js';

export const PROPERTY_WINDOW_MS = 1000;
export const EVENTS_PER_SECOND = 3;
/** Events waiting for the rate limit beyond this many are dropped (and counted). */
export const EVENT_QUEUE_LIMIT = 30;

interface PendingProperty { value: Scalar; timer: TimerHandle | null }

/**
 * At most one properties_changed per property per second; last value wins. Properties are
 * numbered by the caller (0 to count-1); the state is two small arrays, made at the first report.
 */
export class PropertyCoalescer {
  /** When each property was last sent (-Infinity: never since the start). */
  private sentAt: number[] | null = null;
  /** A value waiting for its property's second to end, with the timer that sends it. */
  private waiting: Array<PendingProperty | undefined> | null = null;

  constructor(
    private readonly clock: Scheduler,
    private readonly count: number,
    private readonly send: (i: number, value: Scalar) => void,
  ) {}

  report(i: number, value: Scalar): void {
    const now = this.clock.now();
    const sentAt = (this.sentAt ??= new Array<number>(this.count).fill(-Infinity));
    const waiting = (this.waiting ??= new Array<PendingProperty | undefined>(this.count).fill(undefined));
    const pending = waiting[i];
    if (pending) {
      pending.value = value;
      return;
    }
    const last = sentAt[i]!;
    if (now - last >= PROPERTY_WINDOW_MS) {
      sentAt[i] = now;
      this.send(i, value);
      return;
    }
    const entry: PendingProperty = { value, timer: null };
    waiting[i] = entry;
    entry.timer = this.clock.at(last + PROPERTY_WINDOW_MS, () => {
      waiting[i] = undefined;
      sentAt[i] = this.clock.now();
      this.send(i, entry.value);
    });
  }

  stop(): void {
    for (const w of this.waiting ?? []) w?.timer?.cancel();
    this.sentAt = null;
    this.waiting = null;
  }
}

interface QueuedEvent { siid: number; eiid: number; args: EventArgument[] }

/** At most 3 events per second, in order; a bounded queue absorbs bursts. */
export class EventLimiter {
  private readonly sent: number[] = [];
  private readonly queue: QueuedEvent[] = [];
  private timer: TimerHandle | undefined;
  dropped = 0;

  constructor(
    private readonly clock: Scheduler,
    private readonly send: (siid: number, eiid: number, args: EventArgument[]) => void,
  ) {}

  emit(siid: number, eiid: number, args: EventArgument[]): void {
    if (this.queue.length === 0 && this.canSend()) {
      this.doSend(siid, eiid, args);
      return;
    }
    if (this.queue.length >= EVENT_QUEUE_LIMIT) {
      this.dropped++;
      return;
    }
    this.queue.push({ siid, eiid, args });
    this.arm();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.queue.length = 0;
  }

  private canSend(): boolean {
    const now = this.clock.now();
    while (this.sent.length && now - this.sent[0]! >= 1000) this.sent.shift();
    return this.sent.length < EVENTS_PER_SECOND;
  }

  private doSend(siid: number, eiid: number, args: EventArgument[]): void {
    this.sent.push(this.clock.now());
    this.send(siid, eiid, args);
  }

  private arm(): void {
    if (this.timer?.active) return;
    this.timer = this.clock.at(this.sent[0]! + 1000, () => {
      this.timer = undefined;
      while (this.queue.length && this.canSend()) {
        const e = this.queue.shift()!;
        this.doSend(e.siid, e.eiid, e.args);
      }
      if (this.queue.length) this.arm();
    });
  }
}
