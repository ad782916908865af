/** The behaviours of things people use by hand at home (door locks, kettles, cookers) and the new models' own. */
import { describe, expect, it } from 'vitest';
import { makeDevice } from '../helpers/device.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const arg = (params: Record<string, unknown>, piid: number): unknown =>
  (params['arguments'] as Array<{ piid: number; value: unknown }>).find((a) => a.piid === piid)?.value;

describe('door lock (xiaomi.lock.m30fa)', () => {
  it('each coming or going unlocks and locks again, as lock events carrying how, where and when', async () => {
    const { device, scheduler, events, changes } = await makeDevice('xiaomi.lock.m30fa');
    device.start();
    scheduler.advance(2 * DAY);
    const ev = events('2.1020');
    expect(ev.length).toBeGreaterThan(10);
    // Unlock, then lock, in turn; the door state follows (2 unlocked, 1 locked).
    ev.forEach((e, i) => expect(arg(e.params, 6)).toBe(i % 2 === 0 ? 2 : 1));
    const states = changes('3.1021').map((c) => c.params['value']);
    expect(states.slice(0, 4)).toEqual([2, 1, 2, 1]);
    for (const e of ev) {
      // Unix seconds of the virtual clock; a way in from outside, the handle button inside.
      expect(arg(e.params, 4)).toBe(Math.floor(e.ts / 1000));
      const outside = arg(e.params, 5) === 2;
      if (arg(e.params, 6) === 2) expect(outside ? [2, 3, 4] : [9]).toContain(arg(e.params, 2));
    }
    // The door stays unlocked 5-60 s.
    for (let i = 1; i < ev.length; i += 2) {
      const open = ev[i]!.ts - ev[i - 1]!.ts;
      expect(open).toBeGreaterThanOrEqual(5000);
      expect(open).toBeLessThanOrEqual(60_000);
    }
  });

  it('is read-only: a write to the door state is refused', async () => {
    const { device, set } = await makeDevice('xiaomi.lock.m30fa');
    device.start();
    expect(set(3, 1021, 2)).toMatchObject({ result: [{ code: -4002 }] });
  });
});

describe('heating cycles (kettle, rice cooker)', () => {
  it('a kettle boils now and then: status and temperature climb to 100 °C and fall back to the room', async () => {
    const { device, scheduler, changes } = await makeDevice('yunmi.kettle.r3');
    device.start();
    scheduler.advance(2 * DAY);
    const modes = changes('2.3').map((c) => c.params['value']);
    // Heating is "Boiled Water" (2); it may keep warm (1); then back to "Common" (0).
    expect(modes.filter((m) => m === 2).length).toBeGreaterThan(2);
    const temps = changes('2.1').map((c) => c.params['value'] as number);
    expect(Math.max(...temps)).toBe(100);
    expect(temps.some((t) => t > 25 && t < 100)).toBe(true);
    expect(device.store.num('2.1')).toBeLessThanOrEqual(100);
    expect(Math.min(...temps)).toBeGreaterThanOrEqual(25);
  });

  it('a rice cooker ends each cooking with cooking-finished, keeps warm, and can be cancelled', async () => {
    const { device, scheduler, events, changes, rpc } = await makeDevice('chunmi.cooker.eh1');
    device.start();
    scheduler.advance(3 * DAY);
    const finished = events('2.1');
    expect(finished.length).toBeGreaterThan(2);
    const statuses = changes('2.1');
    // Running (2) comes before each finish; keep warm (3) right at it.
    for (const f of finished) {
      const before = statuses.filter((s) => s.ts < f.ts).at(-1);
      expect(before?.params['value']).toBe(2);
      expect(statuses.find((s) => s.ts >= f.ts)?.params['value']).toBe(3);
    }
    // Cancel while cooking: it goes idle without finishing.
    while (device.store.num('2.1') !== 2) scheduler.advance(60_000);
    const n = events('2.1').length;
    expect(rpc('action', { did: device.did, siid: 2, aiid: 1, in: [] })).toMatchObject({ result: { code: 0 } });
    expect(device.store.num('2.1')).toBe(1);
    // Shorter than any cooking (35 min): whatever starts next cannot have finished.
    scheduler.advance(30 * 60_000);
    expect(events('2.1').length).toBe(n);
  });

  it('without readings (telemetry off) a cycle reports only where the temperature lands, at the same times', async () => {
    const run = async (telemetry: boolean) => {
      const { device, scheduler, events, changes } = await makeDevice('chunmi.cooker.eh1', { telemetry });
      device.start();
      scheduler.advance(4 * DAY);
      return { finished: events('2.1').map((e) => e.ts), statuses: changes('2.1').map((c) => [c.ts, c.params['value']]), temps: changes('2.2') };
    };
    const on = await run(true);
    const off = await run(false);
    expect(on.finished.length).toBeGreaterThan(1);
    expect(off.finished).toEqual(on.finished);
    expect(off.statuses).toEqual(on.statuses);
    expect(off.temps.length).toBeLessThan(on.temps.length / 2);
    expect(new Set(off.temps.map((t) => t.params['value']))).toEqual(new Set([100, 25]));
  });
});

describe('the new appliances', () => {
  it('outdoor camera: motion alerts from its vendor service, no closer than its 5-minute alarm interval', async () => {
    const { device, scheduler, events } = await makeDevice('isa.camera.hlc7');
    device.start();
    scheduler.advance(2 * DAY);
    for (const key of ['6.4', '6.5']) {
      const ev = events(key);
      expect(ev.length, key).toBeGreaterThan(2);
      for (let i = 1; i < ev.length; i++) expect(ev[i]!.ts - ev[i - 1]!.ts).toBeGreaterThanOrEqual(300_000);
    }
  });

  it('EU plug: power follows the switch; its energy counter stays 0, as on the real firmware', async () => {
    const { device, scheduler, set, changes } = await makeDevice('cuco.plug.v2eur');
    device.start();
    expect(set(2, 1, true)).toMatchObject({ result: [{ code: 0 }] });
    scheduler.advance(HOUR);
    expect(changes('11.2').at(-1)!.params['value']).toBeGreaterThanOrEqual(5);
    expect(device.store.num('11.1')).toBe(0);
    set(2, 1, false);
    expect(changes('11.2').at(-1)!.params['value']).toBe(0);
  });

  it('air conditioner ma1: its own layout (target 2.3, room 4.1) cools the room when on', async () => {
    const { device, scheduler, set } = await makeDevice('xiaomi.aircondition.ma1');
    device.start();
    scheduler.advance(HOUR);
    const warm = device.store.num('4.1');
    set(2, 1, true);
    set(2, 3, 22);
    scheduler.advance(2 * HOUR);
    expect(device.store.num('4.1')).toBeLessThan(warm);
    expect(device.store.num('4.1')).toBeCloseTo(22, 0);
  });
});

describe('Poisson streams that follow the home\'s rhythm', () => {
  it('keep their daily count day after day: a quiet night does not strand a slow one', async () => {
    // Quiet from 22:00 to 08:00 (virtual UTC hours), lively by day; the cooker cooks about once a
    // day at typical activity. Drawing each delay from the rate at the moment would strand a
    // cooker whose draw fell in the night for days; thinning against the peak keeps days alike.
    const hour = (t: number) => new Date(t).getUTCHours();
    const start = Date.UTC(2026, 6, 15, 0);
    const { device, scheduler, events } = await makeDevice('chunmi.cooker.eh1', {
      start, activity: () => (hour(scheduler.now()) >= 8 && hour(scheduler.now()) < 22 ? 1.6 : 0.1), peakActivity: 1.6,
    });
    device.start();
    scheduler.advance(40 * DAY);
    const finished = events('2.1');
    // The day's mean activity is (14 h x 1.6 + 10 h x 0.1) / 24 = 0.975: about 19 cookings in each
    // twenty days (a little fewer: one cannot start while another cooks or keeps warm).
    const early = finished.filter((e) => e.ts - start < 20 * DAY).length;
    const late = finished.length - early;
    for (const n of [early, late]) {
      expect(n).toBeGreaterThan(12);
      expect(n).toBeLessThan(27);
    }
    // And they come by day: hardly any start in the quiet hours.
    const nightly = finished.filter((e) => { const h = hour(e.ts); return h >= 23 || h < 8; }).length;
    expect(nightly).toBeLessThan(finished.length / 4);
  });
});

