/**
 * Reconnection delays: exponential backoff with full jitter (AWS Architecture Blog, "Exponential
 * Backoff And Jitter"): attempt n waits a uniform random time in [0, min(max, initial x factor^n)].
 * Jitter spreads a fleet that lost the broker at the same instant over the window instead of
 * hitting it in lock step. The randomness comes from a seeded Rng; the waiting itself is on the
 * wall clock (it is the network's time, not the simulation's), so it never touches the trace.
 */
import type { Rng } from './rng.js';

export interface ReconnectPolicy {
  /** Upper bound of the first retry's delay, ms. */
  initialDelayMs: number;
  /** Cap of the delay window, ms. */
  maxDelayMs: number;
  /** Growth of the window per failed attempt. */
  factor: number;
  /** "full": uniform in [0, window]; "none": exactly the window (plain exponential backoff). */
  jitter: 'full' | 'none';
}

export const DEFAULT_RECONNECT: ReconnectPolicy = { initialDelayMs: 500, maxDelayMs: 10_000, factor: 2, jitter: 'full' };

export class Backoff {
  /** Failed attempts since the last successful connection. */
  attempt = 0;

  constructor(private readonly policy: ReconnectPolicy, private readonly rng: Rng) {}

  /** The delay before the next attempt (ms); each call counts one more attempt. */
  next(): number {
    const p = this.policy;
    const window = Math.min(p.maxDelayMs, p.initialDelayMs * p.factor ** Math.min(this.attempt, 60));
    this.attempt++;
    return p.jitter === 'full' ? Math.round(this.rng.range(0, window)) : Math.round(window);
  }

  reset(): void { this.attempt = 0; }
}
