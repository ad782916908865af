/** Waiting for work in flight to finish, on fake timers: quiet, stalled, capped. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { settle, type SettleOutcome } from '../../src/broker/settle.js';

describe('settle', () => {
  beforeEach(() => { vi.useFakeTimers(); });
  afterEach(() => { vi.useRealTimers(); });

  /** The outcome once settled, or null while still waiting. */
  function outcome(p: Promise<SettleOutcome>): () => SettleOutcome | null {
    let o: SettleOutcome | null = null;
    void p.then((v) => { o = v; });
    return () => o;
  }

  it('resolves at once when there is nothing in flight', async () => {
    const s = settle(() => true, 250, 5000);
    await expect(s.done).resolves.toBe('quiet');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('resolves when the last item finishes, not before', async () => {
    let pending = 3;
    const s = settle(() => pending === 0, 250, 5000);
    const got = outcome(s.done);
    for (let i = 0; i < 2; i++) {
      pending--;
      s.moved();
    }
    await vi.advanceTimersByTimeAsync(100);
    expect(got()).toBe(null);
    pending--;
    s.moved();
    await vi.advanceTimersByTimeAsync(0);
    expect(got()).toBe('quiet');
    expect(vi.getTimerCount()).toBe(0);
  });

  it('check() re-reads the condition without counting as progress', async () => {
    let idle = false;
    const s = settle(() => idle, 250, 5000);
    const got = outcome(s.done);
    await vi.advanceTimersByTimeAsync(200);
    s.check();
    await vi.advanceTimersByTimeAsync(0);
    expect(got()).toBe(null);
    await vi.advanceTimersByTimeAsync(60);
    expect(got()).toBe('stalled');
    idle = true;
    s.check(); // after the end: nothing changes
    await vi.advanceTimersByTimeAsync(0);
    expect(got()).toBe('stalled');
  });

  it('gives up once nothing moved for the stall bound, counted from the last progress', async () => {
    const s = settle(() => false, 250, 5000);
    const got = outcome(s.done);
    await vi.advanceTimersByTimeAsync(200);
    s.moved();
    await vi.advanceTimersByTimeAsync(200);
    expect(got()).toBe(null);
    await vi.advanceTimersByTimeAsync(50);
    expect(got()).toBe('stalled');
  });

  it('gives up at the cap however steadily work moves', async () => {
    const s = settle(() => false, 250, 5000);
    const got = outcome(s.done);
    for (let t = 0; t < 4900; t += 100) {
      await vi.advanceTimersByTimeAsync(100);
      s.moved();
    }
    expect(got()).toBe(null);
    await vi.advanceTimersByTimeAsync(100);
    expect(got()).toBe('timeout');
    expect(vi.getTimerCount()).toBe(0);
  });
});
