/** Waits that resolve on events: a Gauge's until(), when() on a signal, within() a bound (timeouts on fake timers). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Gauge, when, within, type Signal } from '../../src/sim/waits.js';

afterEach(() => { vi.useRealTimers(); });

/** A signal the test fires by hand, counting who listens. */
function manualSignal(): { signal: Signal; fire: () => void; listeners: () => number } {
  const wakes = new Set<() => void>();
  return {
    signal: (wake) => {
      wakes.add(wake);
      return () => { wakes.delete(wake); };
    },
    fire: () => { for (const w of [...wakes]) w(); },
    listeners: () => wakes.size,
  };
}

const settled = async <T>(p: Promise<T>): Promise<{ done: boolean; value?: T }> => {
  let out: { done: boolean; value?: T } = { done: false };
  void p.then((value) => { out = { done: true, value }; });
  await new Promise((r) => setImmediate(r));
  return out;
};

describe('Gauge', () => {
  it('resolves a waiter when a change makes its test true, and only then', async () => {
    const g = new Gauge();
    g.add(3);
    const zero = g.until((n) => n === 0);
    const low = g.until((n) => n <= 1);
    g.add(-1);
    expect(await settled(zero)).toEqual({ done: false });
    expect(await settled(low)).toEqual({ done: false });
    g.add(-1);
    expect(await settled(low)).toEqual({ done: true, value: true });
    expect(await settled(zero)).toEqual({ done: false });
    g.add(-1);
    expect(await zero).toBe(true);
    expect(g.value).toBe(0);
  });

  it('resolves at once when the test already holds', async () => {
    const g = new Gauge();
    expect(await g.until((n) => n === 0)).toBe(true);
  });

  it('resolves false when the bound passes first, and forgets the waiter', async () => {
    vi.useFakeTimers();
    const g = new Gauge();
    g.add(1);
    const p = g.until((n) => n === 0, 1000);
    vi.advanceTimersByTime(999);
    g.add(1);
    vi.advanceTimersByTime(1);
    expect(await p).toBe(false);
    g.add(-2); // nobody waits any more
    expect(g.value).toBe(0);
  });
});

describe('when', () => {
  it('checks the condition again each time the signal fires, and stops listening once true', async () => {
    const s = manualSignal();
    let ready = false;
    const p = when(() => ready, s.signal, 10_000);
    expect(s.listeners()).toBe(1);
    s.fire();
    expect(await settled(p)).toEqual({ done: false });
    ready = true;
    s.fire();
    expect(await p).toBe(true);
    expect(s.listeners()).toBe(0);
  });

  it('resolves at once without listening when the condition holds', async () => {
    const s = manualSignal();
    expect(await when(() => true, s.signal, 10)).toBe(true);
    expect(s.listeners()).toBe(0);
  });

  it('resolves false after the bound and stops listening', async () => {
    vi.useFakeTimers();
    const s = manualSignal();
    const p = when(() => false, s.signal, 500);
    s.fire();
    vi.advanceTimersByTime(500);
    expect(await p).toBe(false);
    expect(s.listeners()).toBe(0);
  });
});

describe('within', () => {
  it('tells whether a promise settled (a rejection counts) within the bound', async () => {
    vi.useFakeTimers();
    expect(await within(Promise.resolve(1), 100)).toBe(true);
    expect(await within(Promise.reject(new Error('gone')), 100)).toBe(true);
    const never = within(new Promise(() => undefined), 100);
    vi.advanceTimersByTime(100);
    expect(await never).toBe(false);
  });
});
