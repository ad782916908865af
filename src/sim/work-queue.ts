/**
 * The simulation's queue of network work (commands, app sessions, fault steps): one piece at a
 * time, in the order it was queued. While anything is queued, fast and manual mode do not advance
 * the virtual clock, so every command is sent, handled by its device and answered at the virtual
 * instant it was issued: the trace stays reproducible.
 */
import { logger } from '../log.js';

const log = logger('work');

export class WorkQueue {
  private tail: Promise<void> = Promise.resolve();
  pending = 0;
  failures = 0;

  push(work: () => Promise<unknown>): void {
    this.pending++;
    this.tail = this.tail
      .then(work)
      .then(() => undefined, (err: unknown) => {
        this.failures++;
        log.debug({ err: (err as Error).message }, 'queued work failed');
      })
      .finally(() => { this.pending--; });
  }

  /** Resolves when everything queued so far is done. */
  idle(): Promise<void> { return this.tail; }
}
