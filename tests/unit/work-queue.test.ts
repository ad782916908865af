/**
 * The simulation's queue of network work: pieces run one at a time, in order, a failure does not
 * stop the queue, and `describe()` (a stop's progress) says what is queued while it drains.
 */
import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../src/sim/work-queue.js';

describe('WorkQueue', () => {
  it('runs pieces in order, one at a time, and says how many are queued, how long the current one has run, and how many failed', async () => {
    const q = new WorkQueue();
    expect(q.describe()).toBe('0 pieces');
    const ran: string[] = [];
    let release!: () => void;
    q.push(async () => {
      ran.push('a');
      await new Promise<void>((r) => { release = r; });
    });
    q.push(async () => {
      ran.push('b');
      throw new Error('no reply within 5000 ms');
    });
    q.push(async () => { ran.push('c'); });
    await new Promise((r) => setTimeout(r, 120));
    // The first piece holds the rest back.
    expect(ran).toEqual(['a']);
    const during = q.describe();
    expect(during).toMatch(/^3 pieces; the current one running (\d+\.\d) s$/);
    expect(Number(/running (\d+\.\d) s/.exec(during)![1])).toBeGreaterThanOrEqual(0.1);
    release();
    await q.idle();
    expect(ran).toEqual(['a', 'b', 'c']);
    expect(q.done).toBe(3);
    expect(q.failures).toBe(1);
    expect(q.describe()).toBe('0 pieces; 1 failed so far');
  });
});
