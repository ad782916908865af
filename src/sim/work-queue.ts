/**
 * The simulation's queue of network work (commands, app sessions, fault steps): one piece at a
 * time, in the order it was queued. While anything is queued, fast and manual mode do not advance
 * the virtual clock, so every command is sent, handled by its device and answered at the virtual
 * instant it was issued: the trace stays reproducible.
 */
import { performance } from 'node:perf_hooks';
import { logger } from '../log.js';

const log = logger('work');

export class WorkQueue {
  private tail: Promise<void> = Promise.resolve();
  pending = 0;
  failures = 0;
  /** Pieces done, and the wall time they took in all (ms): how long the clock waited for the network. */
  done = 0;
  wallMs = 0;
  /** When the piece running now started (wall clock, ms; pieces run one at a time), or null between pieces. */
  private startedAt: number | null = null;

  push(work: () => Promise<unknown>): void {
    this.pending++;
    this.tail = this.tail
      .then(() => {
        // Wall time measured, never used as simulation time: it says how fast the network answered.
        this.startedAt = performance.now();
        return work();
      })
      .then(() => undefined, (err: unknown) => {
        this.failures++;
        log.debug({ err: (err as Error).message }, 'queued work failed');
      })
      .finally(() => {
        this.wallMs += performance.now() - (this.startedAt ?? performance.now());
        this.startedAt = null;
        this.pending--;
        this.done++;
      });
  }

  /**
   * What is queued, for a stop's progress: how many pieces, how long the one running now has run,
   * and how many failed so far (each piece is bounded by its own timeout: a queue that drains
   * one timeout at a time reads differently from one that moves).
   */
  describe(): string {
    const parts = [`${this.pending} ${this.pending === 1 ? 'piece' : 'pieces'}`];
    if (this.startedAt !== null) parts.push(`the current one running ${((performance.now() - this.startedAt) / 1000).toFixed(1)} s`);
    if (this.failures > 0) parts.push(`${this.failures} failed so far`);
    return parts.join('; ');
  }

  /** Resolves when everything queued so far is done. */
  idle(): Promise<void> { return this.tail; }
}
