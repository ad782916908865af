/** The broker's overload policy (src/broker/overload.ts), on plain objects standing for connections. */
import { describe, expect, it } from 'vitest';
import { OverloadGuard } from '../../src/broker/overload.js';

describe('OverloadGuard', () => {
  it('delivers everything while the backlog is under the QoS 0 bound', () => {
    const g = new OverloadGuard({ qos0Bytes: 1000, qos1Bytes: 5000 });
    const conn = { writableLength: 1000 };
    expect(g.admit(conn, 0)).toBe(true);
    expect(g.admit(conn, 1)).toBe(true);
    expect(g.stats).toEqual({ shedQos0: 0, shedQos1: 0, delayedQos1: 0, slowEpisodes: 0, maxBacklogBytes: 1000 });
  });

  it('sheds QoS 0 over the first bound, delays then sheds QoS 1, and counts episodes per connection', () => {
    const g = new OverloadGuard({ qos0Bytes: 1000, qos1Bytes: 5000 });
    const slow = { writableLength: 2000 };
    const other = { writableLength: 10 };
    expect(g.admit(slow, 0)).toBe(false);
    expect(g.admit(slow, 1)).toBe(true);
    expect(g.admit(other, 0)).toBe(true);
    slow.writableLength = 6000;
    expect(g.admit(slow, 1)).toBe(false);
    expect(g.admit(slow, 0)).toBe(false);
    slow.writableLength = 0; // drained: the episode ends
    expect(g.admit(slow, 0)).toBe(true);
    slow.writableLength = 1500; // and a new one starts
    expect(g.admit(slow, 0)).toBe(false);
    expect(g.stats).toEqual({ shedQos0: 3, shedQos1: 1, delayedQos1: 1, slowEpisodes: 2, maxBacklogBytes: 6000 });
    expect(g.shed).toBe(4);
  });

  it('keeps the QoS 1 bound at least the QoS 0 bound, and has 1 MiB / 16 MiB defaults', () => {
    expect(new OverloadGuard({ qos0Bytes: 10_000, qos1Bytes: 10 }).qos1Bytes).toBe(10_000);
    const d = new OverloadGuard();
    expect([d.qos0Bytes, d.qos1Bytes]).toEqual([1 << 20, 16 << 20]);
  });

  it('stops feeding subscribers that are behind once all backlogs together pass the total bound (issue 14)', () => {
    const g = new OverloadGuard({ qos0Bytes: 1 << 20, qos1Bytes: 16 << 20, totalBytes: 1 << 20 });
    const stalled = Array.from({ length: 4 }, () => ({ writableLength: 300 * 1024 }));
    const fast = { writableLength: 0 };
    // Under the total, each stalled one still gets messages (each is under its own bounds).
    expect(g.admit(stalled[0]!, 1)).toBe(true);
    expect(g.admit(stalled[1]!, 1)).toBe(true);
    expect(g.admit(stalled[2]!, 1)).toBe(true);
    expect(g.totalBacklog).toBe(900 * 1024);
    // The fourth takes the total over 1 MiB: it, and every other one behind, gets nothing; a subscriber keeping up still does.
    expect(g.admit(stalled[3]!, 0)).toBe(false);
    expect(g.admit(stalled[0]!, 1)).toBe(false);
    expect(g.admit(fast, 0)).toBe(true);
    expect(g.shedOverTotal).toBe(2);
    expect(g.stats.shedQos0 + g.stats.shedQos1).toBe(2);
    // Two drain or close: the total falls under the bound and deliveries resume.
    stalled[0]!.writableLength = 0;
    g.refresh(stalled[0]!);
    g.forget(stalled[1]!);
    expect(g.totalBacklog).toBe(600 * 1024);
    expect(g.admit(stalled[2]!, 1)).toBe(true);
  });
});
