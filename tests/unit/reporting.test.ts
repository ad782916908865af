import { describe, expect, it } from 'vitest';
import { EVENT_QUEUE_LIMIT, EventLimiter, PropertyCoalescer } from '../../src/device/reporting.js';
import { EventScheduler } from '../../src/sim/scheduler.js';

describe('properties_changed coalescing', () => {
  it('sends at most one per property per second, with the last value', () => {
    const s = new EventScheduler(0);
    const out: Array<[number, number, unknown]> = [];
    const c = new PropertyCoalescer(s, 3, (i, v) => out.push([s.now(), i, v]));
    c.report(1, 1);          // t=0: sent at once
    s.advance(100); c.report(1, 2);
    s.advance(100); c.report(1, 3);
    s.advance(100); c.report(2, 'x'); // another property is independent
    s.advance(2000);
    expect(out).toEqual([[0, 1, 1], [300, 2, 'x'], [1000, 1, 3]]);
  });

  it('never exceeds one per second under a storm of changes', () => {
    const s = new EventScheduler(0);
    const times: number[] = [];
    const c = new PropertyCoalescer(s, 1, () => times.push(s.now()));
    s.every(10, () => c.report(0, s.now()));
    s.advance(10_000);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(1000);
    expect(times.length).toBeGreaterThanOrEqual(10);
  });
});

describe('event_occured rate limit', () => {
  it('sends at most 3 per second, in order, and queues the rest', () => {
    const s = new EventScheduler(0);
    const out: Array<[number, number]> = [];
    const e = new EventLimiter(s, (_siid, eiid) => out.push([s.now(), eiid]));
    for (let i = 1; i <= 7; i++) e.emit(2, i, []);
    s.advance(5000);
    expect(out.map(([, id]) => id)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    for (let i = 3; i < out.length; i++) expect(out[i]![0] - out[i - 3]![0]).toBeGreaterThanOrEqual(1000);
  });

  it('drops (and counts) events beyond its bounded queue', () => {
    const s = new EventScheduler(0);
    let n = 0;
    const e = new EventLimiter(s, () => n++);
    for (let i = 0; i < 3 + EVENT_QUEUE_LIMIT + 5; i++) e.emit(2, 1, []);
    s.advance(60_000);
    expect(n).toBe(3 + EVENT_QUEUE_LIMIT);
    expect(e.dropped).toBe(5);
  });
});
