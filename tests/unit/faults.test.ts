/** The pure parts of faults and recovery: backoff with jitter, seq de-duplication, packet framing, fault validation. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PacketFramer } from '../../src/broker/packet-guard.js';
import { loadCatalog } from '../../src/catalog/catalog.js';
import { EventDeduper } from '../../src/platform/dedup.js';
import { OnlineHistory } from '../../src/platform/history.js';
import { Backoff } from '../../src/sim/backoff.js';
import { Rng } from '../../src/sim/rng.js';
import { checkScenario } from '../../src/catalog/scenario.js';
import { fixedHeader } from '../helpers/raw-mqtt.js';

describe('Backoff', () => {
  const policy = { initialDelayMs: 100, maxDelayMs: 1000, factor: 2, jitter: 'full' as const };

  it('draws each delay from [0, min(max, initial x factor^attempt)], reproducibly from the seed', () => {
    const a = new Backoff(policy, Rng.from(1, 'reconnect', 'd1'));
    const b = new Backoff(policy, Rng.from(1, 'reconnect', 'd1'));
    const windows = [100, 200, 400, 800, 1000, 1000, 1000];
    const delays = windows.map(() => a.next());
    delays.forEach((d, i) => {
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(windows[i]!);
    });
    expect(windows.map(() => b.next())).toEqual(delays);
    a.reset();
    expect(a.attempt).toBe(0);
    expect(a.next()).toBeLessThanOrEqual(100);
  });

  it('spreads a fleet over the window (full jitter), or waits the whole window without jitter', () => {
    const first = Array.from({ length: 2000 }, (_, i) => new Backoff(policy, Rng.from(1, 'reconnect', i)).next());
    const mean = first.reduce((s, x) => s + x, 0) / first.length;
    expect(mean).toBeGreaterThan(40);
    expect(mean).toBeLessThan(60);
    expect(new Set(first).size).toBeGreaterThan(90);
    const plain = new Backoff({ ...policy, jitter: 'none' }, Rng.from(1));
    expect([plain.next(), plain.next(), plain.next(), plain.next(), plain.next()]).toEqual([100, 200, 400, 800, 1000]);
  });
});

describe('EventDeduper', () => {
  it('accepts each (did, seq) once, counts duplicates, gaps and late arrivals', () => {
    const d = new EventDeduper(16);
    expect([1, 2, 3].map((s) => d.check('a', s))).toEqual(['new', 'new', 'new']);
    expect(d.check('a', 2)).toBe('duplicate');
    expect(d.check('b', 2)).toBe('new'); // per device
    expect(d.check('a', 6)).toBe('new'); // 4 and 5 skipped
    expect(d.missing('a')).toBe(2);
    expect(d.check('a', 5)).toBe('new'); // late, within the window
    expect(d.check('a', 5)).toBe('duplicate');
    expect(d.missing('a')).toBe(1);
    expect(d.check('a', 40)).toBe('new');
    expect(d.check('a', 20)).toBe('too-old'); // 40 - 16 and below cannot be checked
    expect(d.check('a', 30)).toBe('new');
    expect(d.check('a', 30)).toBe('duplicate');
    expect(d.highest('a')).toBe(40);
    expect(d.stats).toEqual({ accepted: 8, duplicates: 3, tooOld: 1, missing: 1 + 33 - 1 });
  });

  it('remembers the window correctly as it slides (bitmap slots reused)', () => {
    const d = new EventDeduper(64);
    for (let s = 1; s <= 1000; s++) expect(d.check('x', s)).toBe('new');
    for (let s = 1000 - 63; s <= 1000; s++) expect(d.check('x', s)).toBe('duplicate');
    expect(d.check('x', 1000 - 64)).toBe('too-old');
    expect(d.stats.missing).toBe(0);
  });
});

describe('OnlineHistory', () => {
  it('keeps the lowest, highest and last online count per event-time minute, bounded', () => {
    const h = new OnlineHistory(3);
    const t = Date.UTC(2026, 6, 15, 16);
    h.note(t, 10);
    h.note(t + 10_000, 0);
    h.note(t + 20_000, 4);
    h.note(t + 60_000, 10);
    expect(h.range()).toEqual([{ t, min: 0, max: 10, last: 4 }, { t: t + 60_000, min: 10, max: 10, last: 10 }]);
    h.note(t + 120_000, 9);
    h.note(t + 180_000, 8);
    expect(h.range().map((b) => b.t)).toEqual([t + 60_000, t + 120_000, t + 180_000]);
    expect(h.range(t + 130_000, t + 170_000).map((b) => b.t)).toEqual([t + 120_000]);
  });
});

describe('PacketFramer', () => {
  const header = (first: number, length: number): number[] => [...fixedHeader(first, length)];

  it('follows packets across chunks and refuses one above the limit, keeping the packets before it', () => {
    const f = new PacketFramer(1000);
    const ok = [...header(0x30, 10), ...new Array<number>(10).fill(1)];
    expect(f.feed(Uint8Array.from([...ok, ...ok.slice(0, 5)]))).toBeNull();
    expect(f.feed(Uint8Array.from(ok.slice(5)))).toBeNull();
    const big = Uint8Array.from([...ok, 0xc0, 0x00, ...header(0x30, 5000)]);
    expect(f.feed(big)).toBe('packet too large');
    expect(f.goodBytes).toBe(ok.length + 2);
    expect(f.feed(Uint8Array.from([1]))).toBe('packet too large'); // stays refused
  });

  it('refuses a Remaining Length longer than four bytes', () => {
    const f = new PacketFramer(1 << 28);
    expect(f.feed(Uint8Array.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe('malformed remaining length');
  });
});

describe('fault and network validation', async () => {
  const catalog = await loadCatalog(join(import.meta.dirname, '..', '..', 'devices'));
  const base = {
    name: 'x', start: '2026-07-15T15:00:00Z', duration: '2h',
    population: { homes: 2, regions: { cn: 1 }, devicesPerHome: { '2': 1 }, mix: { plug: 1 } },
  };

  it('accepts every fault type with its defaults, durations in milliseconds', () => {
    const res = checkScenario('x.yaml', {
      ...base,
      faults: [
        { type: 'broker-restart', at: '10m' }, { type: 'gateway-reboot', at: '20m' }, { type: 'reconnect-storm', at: '30m' },
        { type: 'device-churn', share: 0.5, at: '40m', duration: '10m' }, { type: 'slow-consumer', at: '50m', duration: '5m' },
        { type: 'ota-rollout', firmware: '2.0.0_0001', model: 'chuangmi.plug.212a01', at: '1h' },
      ],
    }, catalog);
    expect(res.problems).toEqual([]);
    expect(res.scenario!.faults[0]).toEqual({ type: 'broker-restart', at: 600_000, duration: 60_000 });
    expect(res.scenario!.faults[5]).toMatchObject({ waves: 3, interval: 600_000, rebootFor: 60_000, share: 1 });
    expect(res.scenario!.network).toEqual({ reconnect: { initialDelay: 500, maxDelay: 10_000, factor: 2, jitter: 'full' }, offlineBuffer: 100 });
  });

  it('names every problem with its path', () => {
    const res = checkScenario('x.yaml', {
      ...base,
      network: { reconnect: { initialDelay: '20s', maxDelay: '5s', jitter: 'some' }, offlineBuffer: -1 },
      faults: [
        { type: 'ota-rollout', firmware: '2', model: 'toaster', at: '1h' },
        { type: 'broker-restart', at: '3h' },
        { type: 'reconnect-storm', at: '1h', share: 2 },
        { type: 'meteor', at: '1h' },
      ],
    }, catalog);
    const paths = res.problems.map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining([
      'faults[0].model', 'faults[1].at', 'faults[2].share', 'faults[3].type',
      'network.offlineBuffer', 'network.reconnect.initialDelay', 'network.reconnect.jitter',
    ]));
    expect(res.problems.find((p) => p.path === 'faults[0].model')!.message).toContain('unknown device model "toaster"');
  });
});
