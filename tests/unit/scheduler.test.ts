import { describe, expect, it } from 'vitest';
import { ClockDriver } from '../../src/sim/drivers.js';
import { Gauge } from '../../src/sim/waits.js';
import { EventScheduler } from '../../src/sim/scheduler.js';
import { Rng } from '../../src/sim/rng.js';

describe('EventScheduler', () => {
  it('runs events in time order, ties in the order scheduled', () => {
    const s = new EventScheduler(1000);
    const seen: string[] = [];
    s.at(1300, () => seen.push('c'));
    s.at(1100, () => seen.push('a'));
    s.at(1300, () => seen.push('d'));
    s.after(100, () => seen.push('b'));
    s.advance(500);
    expect(seen).toEqual(['a', 'b', 'c', 'd']);
    expect(s.now()).toBe(1500);
  });

  it('sets the clock to each event time while it runs', () => {
    const s = new EventScheduler(0);
    const times: number[] = [];
    s.at(250, () => times.push(s.now()));
    s.at(700, () => times.push(s.now()));
    s.runUntil(1000);
    expect(times).toEqual([250, 700]);
  });

  it('a run covers [start, end): what is due exactly at the end does not run, in any mode', async () => {
    for (const speed of ['fast', 'manual', 1000] as const) {
      const s = new EventScheduler(0);
      const seen: number[] = [];
      for (const t of [0, 500, 999, 1000, 1500]) s.at(t, () => seen.push(t));
      const driver = new ClockDriver(s, speed, { endTime: 1000 });
      driver.start();
      if (speed === 'manual') await driver.advance(5000, async () => {});
      await driver.done;
      expect(seen, String(speed)).toEqual([0, 500, 999]);
      expect(s.now()).toBe(1000);
    }
  });

  it('cancels one-shot and periodic timers', () => {
    const s = new EventScheduler(0);
    let once = 0;
    let periodic = 0;
    const h = s.after(10, () => once++);
    const p = s.every(100, () => { periodic++; if (periodic === 3) p.cancel(); });
    h.cancel();
    expect(h.active).toBe(false);
    s.advance(10_000);
    expect(once).toBe(0);
    expect(periodic).toBe(3);
    expect(s.pending).toBe(0);
  });

  it('afterWhile() runs only while its owner is in the generation it was set in, in the order after() would', () => {
    const s = new EventScheduler(0);
    const owner = { generation: 0 };
    const ran: string[] = [];
    s.after(5, () => ran.push('plain-5'));
    s.afterWhile(5, () => ran.push('owned-5'), owner);
    s.afterWhile(10, () => ran.push('owned-10'), owner);
    const cancelled = s.afterWhile(12, () => ran.push('cancelled'), owner);
    s.after(15, () => ran.push('plain-15'));
    s.afterWhile(20, () => ran.push('stale-20'), owner);
    s.advance(5);
    expect(ran).toEqual(['plain-5', 'owned-5']);
    cancelled.cancel();
    expect(cancelled.active).toBe(false);
    s.advance(5);
    owner.generation++; // the owner stopped: what it set before does nothing
    const fresh = s.afterWhile(10, () => ran.push('fresh-20'), owner);
    expect(fresh.active).toBe(true);
    s.advance(20);
    expect(ran).toEqual(['plain-5', 'owned-5', 'owned-10', 'plain-15', 'fresh-20']);
    expect(s.pending).toBe(0);
  });

  it('every() fires on its period after the first delay', () => {
    const s = new EventScheduler(0);
    const at: number[] = [];
    s.every(1000, () => at.push(s.now()), 250);
    s.advance(3500);
    expect(at).toEqual([250, 1250, 2250, 3250]);
  });

  it('events scheduled while running at the same instant still run in this pass', () => {
    const s = new EventScheduler(0);
    const seen: number[] = [];
    s.at(10, () => { seen.push(1); s.after(0, () => seen.push(2)); });
    s.runUntil(10);
    expect(seen).toEqual([1, 2]);
  });

  it('stops after a budget of events so a driver can yield', () => {
    const s = new EventScheduler(0);
    let n = 0;
    for (let i = 0; i < 10; i++) s.at(5, () => n++);
    expect(s.runUntil(5, 4)).toBe(false);
    expect(n).toBe(4);
    expect(s.runUntil(5)).toBe(true);
    expect(n).toBe(10);
  });

  it('leaves the clock at the event that paused it, even the last one due', () => {
    const s = new EventScheduler(0);
    let busy = false;
    s.at(100, () => { busy = true; });
    expect(s.runUntil(1000, Infinity, () => busy)).toBe(false);
    expect(s.now()).toBe(100);
    busy = false;
    expect(s.runUntil(1000, Infinity, () => busy)).toBe(true);
    expect(s.now()).toBe(1000);
  });

  it('fast mode: work an event sets off reads the virtual time of that event', async () => {
    // An app session opened by the last event of a slice used to be stamped up to a slice (60 s)
    // later, and at the end of a run on the end instant itself, outside the run.
    const s = new EventScheduler(0);
    let pending = 0;
    const stamped: Array<[number, number]> = [];
    for (const t of [1_000, 30_000, 59_999, 119_999, 179_999]) {
      s.at(t, () => {
        pending++;
        setImmediate(() => { stamped.push([t, s.now()]); pending--; });
      });
    }
    const driver = new ClockDriver(s, 'fast', { endTime: 180_000, congested: () => pending > 0 });
    driver.start();
    await driver.done;
    expect(stamped).toEqual([[1_000, 1_000], [30_000, 30_000], [59_999, 59_999], [119_999, 119_999], [179_999, 179_999]]);
    expect(s.now()).toBe(180_000);
  });

  it('fast mode: waits on uncongested() while congested instead of checking every turn', async () => {
    const s = new EventScheduler(0);
    const pending = new Gauge();
    let release: (() => void) | null = null;
    let checks = 0;
    s.at(1_000, () => {
      pending.add(1);
      release = () => pending.add(-1);
    });
    const ran: number[] = [];
    s.at(2_000, () => ran.push(s.now()));
    const driver = new ClockDriver(s, 'fast', {
      endTime: 3_000,
      congested: () => { checks++; return pending.value > 0; },
      uncongested: () => pending.until((n) => n === 0),
    });
    driver.start();
    // Many turns of the event loop go by while the work is under way: the clock stays put.
    for (let i = 0; i < 100 && !release; i++) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 100; i++) await new Promise((r) => setImmediate(r));
    expect(s.now()).toBe(1_000);
    const checksWhileWaiting = checks;
    release!();
    await driver.done;
    expect(ran).toEqual([2_000]);
    expect(s.now()).toBe(3_000);
    expect(checksWhileWaiting).toBeLessThan(10);
  });

  it('rounds times to whole milliseconds and never schedules in the past', () => {
    const s = new EventScheduler(100);
    const at: number[] = [];
    s.at(150.6, () => at.push(s.now()));
    s.at(50, () => at.push(s.now()));
    s.advance(100);
    expect(at).toEqual([100, 151]);
  });

  it('simulates a month of minute ticks in a blink', () => {
    const s = new EventScheduler(0);
    let ticks = 0;
    s.every(60_000, () => ticks++);
    s.advance(30 * 86_400_000);
    expect(ticks).toBe(30 * 24 * 60);
  });
  it('runs thousands of timers (ties, cancellations, periodic ones, events scheduling events) in exactly (time, order scheduled)', () => {
    // A reference: every run is checked against the order a sort by (time, seq) gives.
    const rng = Rng.from(7, 'scheduler-order');
    const s = new EventScheduler(0);
    const ran: Array<[number, number]> = [];
    let seq = 0;
    const live = new Map<number, { time: number; seq: number; handle: { cancel(): void } }>();
    const add = (time: number): void => {
      const id = seq++;
      const at = Math.max(Math.round(time), s.now());
      const handle = s.at(at, () => {
        ran.push([s.now(), id]);
        live.delete(id);
        // A quarter of the events schedule another, some at this very instant.
        if (rng.chance(0.25)) add(s.now() + (rng.chance(0.3) ? 0 : rng.int(0, 50)));
      });
      live.set(id, { time: at, seq: id, handle });
    };
    for (let i = 0; i < 5000; i++) add(rng.int(0, 2000)); // many ties: 5,000 events on 2,001 instants
    for (const [id, e] of [...live]) if (rng.chance(0.2)) { e.handle.cancel(); live.delete(id); }
    const periodic: number[] = [];
    s.every(37, () => periodic.push(s.now()), 5);
    s.advance(2100);
    // Time never goes back, and within an instant events run in the order they were scheduled.
    for (let i = 1; i < ran.length; i++) {
      const [t0, id0] = ran[i - 1]!;
      const [t1, id1] = ran[i]!;
      expect(t1 > t0 || (t1 === t0 && id1 > id0)).toBe(true);
    }
    expect(ran.length).toBeGreaterThan(4000);
    expect(live.size).toBe([...live.values()].filter((e) => e.time > 2100).length); // all due ones ran
    expect(periodic).toEqual(Array.from({ length: periodic.length }, (_, k) => 5 + 37 * k));
    expect(periodic[periodic.length - 1]! + 37).toBeGreaterThan(2100);
  });

  it('keeps (time, order scheduled) over days: events from 0 ms to days ahead, on the edges of power-of-two intervals, periodic ones, cancellations, stops by budget', () => {
    // Checked against a model of the pending events: every event run is the least (time, seq) of
    // those pending and due, nothing due is left behind, and nextTime() is the least time pending.
    const rng = Rng.from(11, 'scheduler-wheel');
    const start = 1_700_000_123_457; // not on any block's edge
    const s = new EventScheduler(start);
    interface Pending { time: number; seq: number; period: number; handle: { cancel(): void } }
    const pending = new Map<number, Pending>();
    let seq = 0;
    let id = 0;
    let limit = start;
    let ran = 0;
    const delay = (): number => {
      const k = rng.int(0, 11);
      if (k === 0) return 0;
      // Near a whole multiple of 1,024 ms of absolute time, where any power-of-two bucketing has its edges.
      if (k >= 10) return Math.max(0, (Math.floor(s.now() / 1024) + rng.int(1, k === 10 ? 64 : 100_000)) * 1024 - s.now() + rng.int(-1, 1));
      if (k <= 3) return rng.int(1, 20_000); // this block or the next
      if (k <= 6) return rng.int(20_000, 4 * 3_600_000); // level 1
      if (k <= 8) return rng.int(18 * 3_600_000, 20 * 3_600_000); // about a span ahead
      return rng.int(1, 4) * 86_400_000 + rng.int(0, 1000); // days ahead: the far heap
    };
    const leastPending = (): Pending | undefined => {
      let best: Pending | undefined;
      for (const e of pending.values()) if (!best || e.time < best.time || (e.time === best.time && e.seq < best.seq)) best = e;
      return best;
    };
    const add = (at: number, period = 0): void => {
      const me = id++;
      const time = Math.max(Math.round(at), s.now());
      const fn = (): void => {
        const e = pending.get(me)!;
        expect(e, `event ${me} ran once too often`).toBeDefined();
        expect(s.now()).toBe(e.time);
        expect(e.time).toBeLessThanOrEqual(limit);
        expect(leastPending()).toBe(e);
        ran++;
        if (e.period > 0) {
          // Its next occurrence was scheduled before it ran, after everything scheduled so far.
          e.time = Math.max(Math.round(s.now() + e.period), s.now());
          e.seq = seq++;
        } else pending.delete(me);
        // Some events schedule others, cancel one, or both.
        if (rng.chance(0.35)) add(s.now() + delay());
        if (rng.chance(0.01)) add(s.now() + delay(), rng.int(30 * 60_000, 30 * 3_600_000));
        if (rng.chance(0.1)) cancelOne();
      };
      const handle = period > 0 ? s.every(period, fn, time - s.now()) : s.at(time, fn);
      pending.set(me, { time, seq: seq++, period, handle });
    };
    const cancelOne = (): void => {
      const ids = [...pending.keys()];
      if (!ids.length) return;
      const victim = ids[rng.int(0, ids.length - 1)]!;
      pending.get(victim)!.handle.cancel();
      pending.delete(victim);
    };
    for (let i = 0; i < 8000; i++) add(start + delay());
    for (let i = 0; i < 20; i++) add(start + delay(), rng.int(10 * 60_000, 40 * 3_600_000));
    const end = start + 5 * 86_400_000;
    while (s.now() < end) {
      expect(s.nextTime()).toBe(leastPending()?.time);
      const step = rng.chance(0.5) ? rng.int(0, 30_000) : rng.int(0, 12 * 3_600_000);
      const before = rng.chance(0.2);
      limit = before ? Math.floor(s.now() + step) - 1 : Math.floor(s.now() + step);
      const budget = rng.chance(0.3) ? rng.int(1, 50) : Infinity;
      const done = s.runUntil(s.now() + step, budget, undefined, before);
      const least = leastPending();
      if (done) expect(least === undefined || least.time > limit).toBe(true);
      else expect(least!.time).toBeLessThanOrEqual(limit);
      if (rng.chance(0.3)) cancelOne();
      if (rng.chance(0.5)) add(s.now() + delay());
      expect(s.pending).toBe(pending.size);
    }
    expect(ran).toBeGreaterThan(10_000);
  });
});
