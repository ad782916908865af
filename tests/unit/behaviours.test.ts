import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/sim/rng.js';
import type { Random } from '../../src/contract/random.js';
import { Device } from '../../src/device/device.js';
import { EventScheduler } from '../../src/sim/scheduler.js';
import { TEST_UID, devicesCatalog, makeDevice } from '../helpers/device.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('a device\'s day on the virtual clock', () => {
  it('Zigbee T/H sensor: reports on a 0.5 °C threshold or in its hourly heartbeat, never in between', async () => {
    const { device, scheduler, changes } = await makeDevice('lumi.sensor_ht.agl02');
    device.start();
    scheduler.advance(DAY);
    const temps = changes('2.1');
    expect(temps.length).toBeGreaterThanOrEqual(20);
    // Heartbeat every 3300 s + up to 600 s jitter: no silence longer than that.
    for (let i = 1; i < temps.length; i++) expect(temps[i]!.ts - temps[i - 1]!.ts).toBeLessThanOrEqual(3900_000);
    // Every value stays inside the spec range and within a plausible indoor band.
    for (const t of temps) expect(t.params['value']).toBeGreaterThan(5);
    // Between two reports the sensor does not chatter: at most one per second per property.
    const gaps = temps.slice(1).map((t, i) => t.ts - temps[i]!.ts);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(1000);
  });

  it('motion sensor: "motion detected" events, numb for 60 s after each; motion-state clears 120 s after the latest', async () => {
    const { device, scheduler, events, changes } = await makeDevice('lumi.sensor_motion.v2');
    device.start();
    scheduler.advance(2 * DAY);
    const ev = events('2.1');
    expect(ev.length).toBeGreaterThan(10);
    for (let i = 1; i < ev.length; i++) expect(ev[i]!.ts - ev[i - 1]!.ts).toBeGreaterThanOrEqual(60_000);
    expect(ev[0]!.params).toMatchObject({ did: device.did, siid: 2, eiid: 1, arguments: [] });
    // The state follows the detections: true at each, false once 120 s passed without one.
    const state = changes('2.1');
    expect(state.some((c) => c.params['value'] === false)).toBe(true);
    const stateAt = (t: number): unknown => state.filter((c) => c.ts <= t).at(-1)?.params['value'];
    for (const e of ev) expect(stateAt(e.ts)).toBe(true);
    const clears = state.filter((x, i) => x.params['value'] === false && state[i - 1]?.params['value'] === true);
    expect(clears.length).toBeGreaterThan(5);
    for (const c of clears) {
      const latest = ev.filter((e) => e.ts <= c.ts).at(-1)!;
      expect(c.ts - latest.ts).toBeGreaterThanOrEqual(120_000); // not before 120 s of quiet...
      expect(c.ts - latest.ts).toBeLessThanOrEqual(121_000); // ...and then at once (within the 1 s coalescing)
    }
    // Most of the day nobody moves: heartbeats report "no motion", not a detection from hours ago.
    const heartbeatsQuiet = state.filter((c) => ev.every((e) => c.ts - e.ts > 200_000 || c.ts < e.ts));
    expect(heartbeatsQuiet.length).toBeGreaterThan(0);
    expect(heartbeatsQuiet.every((c) => c.params['value'] === false)).toBe(true);
  });

  it('door sensor: opens and closes again, with open/close events', async () => {
    const { device, scheduler, events } = await makeDevice('lumi.sensor_magnet.v2');
    device.start();
    scheduler.advance(2 * DAY);
    const opens = events('2.2');
    const closes = events('2.1');
    expect(opens.length).toBeGreaterThan(5);
    expect(Math.abs(opens.length - closes.length)).toBeLessThanOrEqual(1);
    expect(closes[0]!.ts).toBeGreaterThan(opens[0]!.ts);
  });

  it('air conditioner: a new target is reported and the room temperature moves toward it while power is drawn', async () => {
    const { device, scheduler, set, changes } = await makeDevice('xiaomi.aircondition.mc4');
    device.start();
    scheduler.advance(HOUR);
    const warm = device.store.num('4.7');
    const energy0 = device.store.num('8.1');
    expect(set(2, 1, true)).toMatchObject({ result: [{ code: 0 }] });
    expect(set(2, 4, 22)).toMatchObject({ result: [{ code: 0 }] });
    expect(changes('2.4').at(-1)!.params['value']).toBe(22);
    scheduler.advance(30 * 60_000);
    const cooler = device.store.num('4.7');
    expect(cooler).toBeLessThan(warm);
    expect(Math.abs(cooler - 22)).toBeLessThan(Math.abs(warm - 22));
    expect(changes('4.7').at(-1)!.params['value']).toBeLessThan(warm);
    scheduler.advance(2 * HOUR);
    expect(device.store.num('4.7')).toBeCloseTo(22, 0);
    const used = device.store.num('8.1') - energy0;
    expect(used).toBeGreaterThan(0.15); // at least minimum compressor power for 2.5 h
    // Switched off, the room drifts back toward ambient and energy stops accumulating (standby only).
    set(2, 1, false);
    const e1 = device.store.num('8.1');
    scheduler.advance(3 * HOUR);
    expect(device.store.num('4.7')).toBeGreaterThan(24);
    expect(device.store.num('8.1') - e1).toBeLessThan(0.01);
  });

  it('washer: a program counts its left time down and ends with wash-end', async () => {
    const { device, scheduler, rpc, events, changes } = await makeDevice('mibx5.washer.v7');
    device.start();
    expect(rpc('set_properties', [{ did: 'x', siid: 2, piid: 3, value: 2 }])).toMatchObject({ result: [{ code: 0 }] }); // quick wash
    expect(rpc('action', { did: 'x', siid: 2, aiid: 1, in: [] })).toMatchObject({ result: { code: 0 } });
    expect(device.store.get('2.2')).toBe(2); // running
    const left0 = device.store.num('2.5');
    expect(left0).toBeGreaterThan(0);
    scheduler.advance(5 * 60_000);
    expect(device.store.num('2.5')).toBe(left0 - 5);
    rpc('action', { did: 'x', siid: 2, aiid: 2, in: [] }); // pause
    scheduler.advance(30 * 60_000);
    expect(device.store.num('2.5')).toBe(left0 - 5);
    rpc('action', { did: 'x', siid: 2, aiid: 1, in: [] }); // resume
    scheduler.advance((left0 - 5) * 60_000 + 1000);
    expect(device.store.get('2.2')).toBe(4); // wash done
    expect(events('2.1')).toHaveLength(1);
    expect(changes('2.5').at(-1)!.params['value']).toBe(0);
  });

  it('washer: the door locks while washing (water, then spin) and opens at wash-end; a hot program cools first', async () => {
    const { device, scheduler, rpc, events, changes } = await makeDevice('mibx5.washer.v7');
    device.start();
    const door = (): unknown => device.store.get('2.19');
    expect(door()).toBe(0); // idle: can open
    rpc('set_properties', [{ did: 'x', siid: 2, piid: 3, value: 1 }]); // daily wash, 55 min
    rpc('action', { did: 'x', siid: 2, aiid: 1, in: [] });
    expect(door()).toBe(3); // water in the drum
    scheduler.advance(30 * 60_000);
    expect(door()).toBe(3);
    rpc('action', { did: 'x', siid: 2, aiid: 2, in: [] }); // paused with water in: still locked
    scheduler.advance(10 * 60_000);
    expect(door()).toBe(3);
    rpc('action', { did: 'x', siid: 2, aiid: 1, in: [] });
    scheduler.advance(16 * 60_000); // 9 minutes left: spinning
    expect(door()).toBe(4);
    scheduler.advance(9 * 60_000 + 1000);
    expect(events('2.1')).toHaveLength(1);
    expect(door()).toBe(0); // released with wash-end
    expect(changes('2.19').map((c) => c.params['value'])).toEqual([3, 4, 0]);

    // Hot Wash (16): after the end the door stays locked by hot water for 5 minutes.
    rpc('set_properties', [{ did: 'x', siid: 2, piid: 3, value: 16 }]);
    rpc('action', { did: 'x', siid: 2, aiid: 1, in: [] });
    scheduler.advance(110 * 60_000 + 1000);
    expect(events('2.1')).toHaveLength(2);
    expect(door()).toBe(2);
    scheduler.advance(5 * 60_000);
    expect(door()).toBe(0);

    // Dry Only (23): locked by hot air throughout, and while cooling; switching off opens the door.
    rpc('set_properties', [{ did: 'x', siid: 2, piid: 3, value: 23 }]);
    rpc('action', { did: 'x', siid: 2, aiid: 1, in: [] });
    expect(door()).toBe(1);
    scheduler.advance(115 * 60_000);
    expect(door()).toBe(1);
    rpc('set_properties', [{ did: 'x', siid: 2, piid: 1, value: false }]);
    expect(door()).toBe(0);
  });

  it('robot vacuum: cleans, drains its battery, returns to the dock and charges back to full', async () => {
    const { device, scheduler, rpc } = await makeDevice('dreame.vacuum.p2009');
    device.start();
    const full = device.store.num('3.1');
    expect(rpc('action', { did: 'x', siid: 2, aiid: 1, in: [] })).toMatchObject({ result: { code: 0 } });
    expect(device.store.get('2.1')).toBe(1); // sweeping
    scheduler.advance(30 * 60_000);
    const drained = device.store.num('3.1');
    expect(drained).toBeLessThan(full);
    scheduler.advance(3 * HOUR);
    expect(device.store.get('2.1')).toBe(2); // idle, docked and charged
    expect(device.store.num('3.1')).toBe(100);
  });

  it('speaker: playing-state follows play and pause, and a session ends by itself', async () => {
    const { device, scheduler, rpc, changes } = await makeDevice('xiaomi.wifispeaker.lx06');
    device.start();
    rpc('action', { did: 'x', siid: 3, aiid: 1, in: [] });
    expect(device.store.get('3.1')).toBe(1);
    scheduler.advance(5000);
    rpc('action', { did: 'x', siid: 3, aiid: 2, in: [] });
    expect(device.store.get('3.1')).toBe(2);
    scheduler.advance(5000);
    rpc('action', { did: 'x', siid: 3, aiid: 1, in: [] });
    scheduler.advance(4 * HOUR);
    expect(device.store.get('3.1')).toBe(0);
    expect(changes('3.1').map((c) => c.params['value'])).toEqual([1, 2, 1, 0]);
  });

  it('speaker: changes within one second are coalesced to the last value', async () => {
    const { device, scheduler, rpc, changes } = await makeDevice('xiaomi.wifispeaker.lx06');
    device.start();
    for (const aiid of [1, 2, 1, 2]) rpc('action', { did: 'x', siid: 3, aiid, in: [] });
    scheduler.advance(2000);
    // The first change goes out at once, the rest within that second collapse into one report.
    expect(changes('3.1').map((c) => [c.ts - changes('3.1')[0]!.ts, c.params['value']])).toEqual([[0, 1], [1000, 2]]);
  });

  it('smart plug: power and energy follow the switch', async () => {
    const { device, scheduler, set } = await makeDevice('chuangmi.plug.212a01');
    device.start();
    set(2, 1, true);
    scheduler.advance(HOUR);
    expect(device.store.num('5.6')).toBeGreaterThan(0);
    expect(device.store.num('5.1')).toBeGreaterThan(0);
    set(2, 1, false);
    // Switching off books the energy used up to that instant; then the meter stands still.
    const wh = device.store.num('5.1');
    scheduler.advance(HOUR);
    expect(device.store.num('5.6')).toBe(0);
    expect(device.store.num('5.1')).toBe(wh);
  });

  it('BLE thermometer battery drains slowly over weeks', async () => {
    const { device, scheduler } = await makeDevice('miaomiaoce.sensor_ht.t2');
    const b0 = device.store.num('3.1');
    device.start();
    scheduler.advance(60 * DAY);
    const b1 = device.store.num('3.1');
    expect(b1).toBeLessThan(b0);
    expect(b0 - b1).toBeLessThan(20);
  });

  it('the same seed gives the same day, another seed a different one', async () => {
    const run = async (seed: number) => {
      const { device, scheduler, sent } = await makeDevice('lumi.sensor_ht.agl02', { seed });
      device.start();
      scheduler.advance(DAY);
      return JSON.stringify(sent);
    };
    expect(await run(5)).toBe(await run(5));
    expect(await run(6)).not.toBe(await run(5));
  });

  it('a device without a link keeps living and counts what it could not send', async () => {
    const { device, scheduler, sent } = await makeDevice('lumi.sensor_ht.agl02');
    device.detach();
    device.start();
    scheduler.advance(DAY);
    expect(sent).toHaveLength(0);
    expect(device.counters.droppedOffline).toBeGreaterThan(0);
  });

  it('stop() cancels every timer it owns', async () => {
    const { device, scheduler, sent } = await makeDevice('dreame.vacuum.p2009');
    device.start();
    device.handleRpc(JSON.stringify({ id: 1, method: 'action', params: { did: 'x', siid: 2, aiid: 1, in: [] } }));
    const before = sent.length;
    device.stop();
    scheduler.advance(DAY);
    expect(scheduler.pending).toBe(0);
    expect(sent.length).toBe(before); // nothing set before the stop ran after it
  });

  it('a stopped and restarted device runs only the timers of its new start', async () => {
    // A motion sensor draws its next detection with one-off timers; after a restart, the old
    // draws must not fire alongside the new ones (twice the events).
    const once = await makeDevice('lumi.sensor_motion.v2');
    once.device.start();
    once.scheduler.advance(2 * DAY);
    const twice = await makeDevice('lumi.sensor_motion.v2');
    twice.device.start();
    twice.scheduler.advance(1000);
    twice.device.stop();
    twice.device.start();
    twice.scheduler.advance(2 * DAY);
    const rate = (m: typeof once) => m.events('2.1').length;
    expect(rate(twice)).toBeGreaterThan(0);
    expect(rate(twice)).toBeLessThan(rate(once) * 1.5);
  });
});

describe('a random walk computed ahead', () => {
  /**
   * A model's first behaviour, a random walk, stepped one step at a time from the same random
   * stream (with `sets`: written by set_properties at those times): the values the property must
   * hold, and from when.
   */
  async function reference(model: string, start: number, steps: number, sets: Array<{ ts: number; value: number }> = []) {
    const { device } = await makeDevice(model, { start });
    const spec = device.model.behaviours[0]!;
    if (spec.use !== 'random-walk') throw new Error('expected the walk first');
    const rng = Rng.from(1, 'test', model).fork('behaviour', 0, 'random-walk');
    const period = spec.intervalSeconds * 1000;
    let t = Math.max(Math.round(start + rng.range(0, period)), start);
    let v = device.store.num(spec.property);
    const out: Array<{ ts: number; value: number }> = [];
    // What the walk itself reports (and a write): when a step moves the threshold from the last report.
    const reports: Array<{ ts: number; value: number }> = [];
    const pending = [...sets];
    for (let i = 0; i < steps; i++) {
      while (pending.length && pending[0]!.ts < t) {
        const w = pending.shift()!;
        v = w.value;
        const stored = device.store.conformed(spec.property, w.value) as number;
        out.push({ ts: w.ts, value: stored });
        reports.push({ ts: w.ts, value: stored });
      }
      v += (spec.mean === undefined ? 0 : spec.reversion * (spec.mean - v)) + rng.normal(0, spec.step);
      const stored = device.store.conformed(spec.property, v) as number;
      v = Math.min(stored + spec.step * 4, Math.max(stored - spec.step * 4, v));
      out.push({ ts: t, value: stored });
      const last = reports.at(-1)?.value;
      if (last === undefined || Math.abs(stored - last) >= spec.reportThreshold) reports.push({ ts: t, value: stored });
      t = Math.round(t + period);
    }
    const valueAt = (now: number): number | undefined => out.filter((s) => s.ts <= now).at(-1)?.value;
    return Object.assign(valueAt, { reportsUntil: (now: number) => reports.filter((r) => r.ts <= now) });
  }

  it('holds the value a step-by-step walk would, at any time, and reports it', async () => {
    const start = Date.UTC(2026, 6, 15, 16);
    const expected = await reference('lumi.sensor_ht.agl02', start, 2 * 288 + 10);
    const { device, scheduler, changes } = await makeDevice('lumi.sensor_ht.agl02', { start });
    device.start();
    // Read at random moments, and at the very instants of steps, over two days.
    const probe = Rng.from(7, 'probe');
    let reads = 0;
    let t = Math.max(Math.round(start + Rng.from(1, 'test', 'lumi.sensor_ht.agl02').fork('behaviour', 0, 'random-walk').range(0, 300_000)), start);
    while (scheduler.now() < start + 2 * DAY) {
      while (t <= scheduler.now()) t += 300_000;
      scheduler.advance(probe.chance(0.3) ? t - scheduler.now() : Math.floor(probe.range(1, 900_000)));
      const want = expected(scheduler.now());
      if (want !== undefined) {
        expect(device.store.num('2.1'), `at ${new Date(scheduler.now()).toISOString()}`).toBe(want);
        reads++;
      }
    }
    expect(reads).toBeGreaterThan(200);
    // Every report of the temperature (its own on the threshold, and the heartbeat's) carries that value.
    const temps = changes('2.1');
    expect(temps.length).toBeGreaterThan(10);
    for (const r of temps) expect(r.params['value']).toBe(expected(r.ts));
  });

  it('a written value is where the walk goes on from (TV volume by set_properties)', async () => {
    const start = Date.UTC(2026, 6, 15, 16);
    const sets = [{ ts: start + 5 * HOUR + 1234, value: 80 }, { ts: start + 11 * HOUR + 77, value: 5 }];
    const expected = await reference('xiaomi.tv.esh1', start, 60, sets);
    const { device, scheduler, set, changes } = await makeDevice('xiaomi.tv.esh1', { start });
    device.start();
    for (const w of sets) {
      scheduler.advance(w.ts - scheduler.now());
      expect(set(4, 1, w.value)).toMatchObject({ result: [{ code: 0 }] });
    }
    for (let h = 0; h < 24; h++) {
      scheduler.advance(start + 12 * HOUR + h * 1_111_111 - scheduler.now());
      expect(device.store.num('4.1')).toBe(expected(scheduler.now()));
    }
    // The TV has no heartbeat: its reports are the walk's own and the writes', exactly those.
    const volumes = changes('4.1').map((c) => ({ ts: c.ts, value: c.params['value'] }));
    expect(volumes.some((c) => c.value === 80)).toBe(true);
    expect(volumes).toEqual(expected.reportsUntil(scheduler.now()));
  });

  it('with a random stream that cannot be copied (a library user\'s own), steps each as an event, to the same values', async () => {
    const start = Date.UTC(2026, 6, 15, 16);
    const model = 'lumi.sensor_ht.agl02';
    const expected = await reference(model, start, 500);
    // Rng's numbers behind the Random interface without copy().
    const plain = (r: Rng): Random => ({
      fork: (...labels) => plain(r.fork(...labels)), next: () => r.next(), range: (a, b) => r.range(a, b), int: (a, b) => r.int(a, b),
      chance: (p) => r.chance(p), normal: (m, sd) => r.normal(m, sd), exponential: (m) => r.exponential(m), gamma: (k, m) => r.gamma(k, m),
      poisson: (l) => r.poisson(l), pick: (items) => r.pick(items), weighted: (items) => r.weighted(items), hex: (n) => r.hex(n),
    });
    const scheduler = new EventScheduler(start);
    const device = new Device({ did: '100000001', model: (await devicesCatalog()).require(model), uid: TEST_UID, scheduler, rng: plain(Rng.from(1, 'test', model)) });
    device.start();
    for (let i = 0; i < 40; i++) {
      scheduler.advance(3_333_333);
      expect(device.store.num('2.1')).toBe(expected(scheduler.now()));
    }
    // 40 × 3,333,333 ms is 444 steps of the temperature's walk alone.
    expect(scheduler.executed).toBeGreaterThan(444);
  });

  it('runs as events only the steps that report, not every step', async () => {
    const { device, scheduler, changes } = await makeDevice('lumi.sensor_ht.agl02');
    device.start();
    const before = scheduler.executed;
    scheduler.advance(DAY);
    // 288 + 288 + 144 steps a day for the three walks; their reports and timers, the heartbeat and
    // the battery's ticks are far fewer events.
    const stepsPerDay = 288 + 288 + 144;
    expect(changes('2.1').length + changes('2.2').length).toBeGreaterThan(5);
    expect(scheduler.executed - before).toBeLessThan(stepsPerDay / 3);
  });
});
