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

interface PendingProperty { lastSentAt: number; value?: Scalar; timer?: TimerHandle }

/** At most one properties_changed per property per second; last value wins. */
export class PropertyCoalescer {
  private readonly state = new Map<string, PendingProperty>();

  constructor(
    private readonly clock: Scheduler,
    private readonly send: (key: string, value: Scalar) => void,
  ) {}

  report(key: string, value: Scalar): void {
    const now = this.clock.now();
    let st = this.state.get(key);
    if (!st) {
      st = { lastSentAt: -Infinity };
      this.state.set(key, st);
    }
    if (st.timer) {
      st.value = value;
      return;
    }
    if (now - st.lastSentAt >= PROPERTY_WINDOW_MS) {
      st.lastSentAt = now;
      this.send(key, value);
      return;
    }
    st.value = value;
    const entry = st;
    st.timer = this.clock.at(st.lastSentAt + PROPERTY_WINDOW_MS, () => {
      entry.timer = undefined;
      entry.lastSentAt = this.clock.now();
      const v = entry.value!;
      entry.value = undefined;
      this.send(key, v);
    });
  }

  stop(): void {
    for (const st of this.state.values()) st.timer?.cancel();
    this.state.clear();
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
      this.doSend({ siid, eiid, args });
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

  private doSend(e: QueuedEvent): void {
    this.sent.push(this.clock.now());
    this.send(e.siid, e.eiid, e.args);
  }

  private arm(): void {
    if (this.timer?.active) return;
    this.timer = this.clock.at(this.sent[0]! + 1000, () => {
      this.timer = undefined;
      while (this.queue.length && this.canSend()) this.doSend(this.queue.shift()!);
      if (this.queue.length) this.arm();
    });
  }
}
