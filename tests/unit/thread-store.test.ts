/**
 * The store of a `--workers` thread: it counts in its thread and hands every write on in batches,
 * which one MemoryStore applies in order (as the main thread does with every shard's). Batches
 * are structured-cloned here, as they are posted from a worker.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/platform/memory-store.js';
import type { DeviceFacts } from '../../src/platform/registry.js';
import type { PlatformBatch } from '../../src/platform/store.js';
import { ThreadStore } from '../../src/platform/thread-store.js';

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);

/** A thread store whose batches reach `merged` (counted in `sent`), with a small size bound so several go out. */
function shard(merged: MemoryStore, maxWrites = 1000): { store: ThreadStore; sent: PlatformBatch[] } {
  const sent: PlatformBatch[] = [];
  const store = new ThreadStore((b) => {
    sent.push(b);
    merged.apply(structuredClone(b));
  }, { maxWrites });
  return { store, sent };
}

const facts = (category: string, uid: string, radio?: string): DeviceFacts => ({ category, model: `m.${category}`, region: 'es', uid, ...(radio ? { radio } : {}) });

describe('the store of a worker thread', () => {
  it('merges the activity of stores fed in parts (shards) into the counts of one store fed everything', async () => {
    // Ids split over 3 stores as homes are split over worker threads: every id goes to one part.
    // Small days stay exact, big ones are sketches; both merge to exactly the whole's counts,
    // whether the parts run side by side or one runs far ahead of the others.
    for (const [perDay, aheadFirst] of [[200, false], [4000, false], [4000, true]] as const) {
      const whole = new MemoryStore();
      const merged = new MemoryStore();
      const parts = [shard(merged), shard(merged), shard(merged)];
      const writes: Array<[part: number, id: string, ts: number]> = [];
      for (let day = 0; day < 35; day++) {
        for (let i = 0; i < perDay; i++) {
          const n = (i * 7919 + day * 104729) % (perDay * 3);
          writes.push([n % 3, `d${n}`, T0 + day * DAY + ((i * 65537) % DAY)]);
        }
      }
      // A part far ahead: its writes all come first.
      if (aheadFirst) writes.sort((a, b) => (a[0] === 0 ? 0 : 1) - (b[0] === 0 ? 0 : 1));
      for (const [part, id, ts] of writes) {
        for (const s of [whole, parts[part]!.store]) {
          s.time(ts);
          s.active('activeDevices', id, ts);
          s.active('activeUsers', id, ts);
        }
      }
      for (const p of parts) await p.store.close();
      const counts = (s: MemoryStore | ThreadStore): unknown => {
        const f = s.snapshot();
        return [f.dailyActiveDevices, f.dailyActiveDevicesWeekMean, f.activeUsers, f.eventTime];
      };
      expect(counts(merged)).toEqual(counts(whole));
      // Each part alone counts less than the whole, and sent more than one batch.
      for (const p of parts) {
        expect(p.store.snapshot().activeUsers.mau).toBeLessThan(whole.snapshot().activeUsers.mau);
        expect(p.sent.length).toBeGreaterThan(1);
      }
    }
  });

  it('hands on connections, gateways\' stateless children, events, kinds and owners, and nothing after close()', async () => {
    const merged = new MemoryStore();
    const { store, sent } = shard(merged);
    store.sessionUp('gw1', 'in-process', 1);
    store.time(T0);
    store.online(['gw1', facts('gateway', 'u1')], T0, undefined, [['ble1', facts('sensor', 'u1', 'ble')], ['ble2', facts('sensor', 'u1', 'ble')]]);
    store.online(['zb1', facts('light', 'u1', 'zigbee')], T0, 'gw1', []);
    for (const did of ['p1', 'p2', 'p3']) {
      store.sessionUp(did, 'tcp', 2);
      store.online([did, facts('plug', 'u1')], T0, undefined, []);
    }
    store.sessionUp('orphan', 'tcp', 3); // a session whose state never came
    expect(store.event('p1', 1)).toBe(true);
    expect(store.event('p1', 1)).toBe(false); // a QoS 1 duplicate
    expect(store.event('p1', 3)).toBe(true); // 2 is missing
    store.kind('properties_changed');
    store.malformed('invalid JSON');
    store.active('activeDevices', 'p1', T0 + 1000);
    store.offline('p3', T0 + 2000);
    expect(sent).toHaveLength(0); // batched: nothing out before the interval, the size bound or a flush
    await store.flush();
    expect(sent).toHaveLength(1);

    const figures = store.snapshot();
    expect(figures.connections.online).toBe(6); // gw1, ble1, ble2, zb1, p1, p2 (and not the orphan)
    expect(figures.connections.byTransport).toEqual({ 'in-process': 1, ble: 2, zigbee: 1, tcp: 2 });
    expect(figures.ownersWithMoreThan5Devices).toBe(1); // u1's seven devices
    expect(figures.messages).toEqual({ byKind: { event_occured: 2, properties_changed: 1 }, malformed: 1, duplicatesRemoved: 1, eventsMissing: 1 });
    expect(merged.snapshot()).toEqual(figures);
    expect(merged.malformedReasons.get('invalid JSON')).toBe(1);

    // The shard takes its figures and closes: what comes after (devices going offline as it stops) stays in its thread.
    await store.close();
    store.sessionDown('gw1', 1);
    store.kind('properties_changed');
    await store.flush();
    expect(store.snapshot().connections.online).toBe(2);
    expect(merged.snapshot()).toEqual(figures);
    expect(sent).toHaveLength(1);
  });

  it('sends a batch once it holds maxWrites writes, without waiting for the interval', () => {
    const merged = new MemoryStore();
    const { store, sent } = shard(merged, 10);
    for (let i = 0; i < 25; i++) store.kind('properties_changed');
    expect(sent.map((b) => b.size)).toEqual([10, 10]);
    expect(merged.snapshot().messages.byKind).toEqual({ properties_changed: 20 });
    expect(store.snapshot().messages.byKind).toEqual({ properties_changed: 25 });
  });

  it('sends what it holds within the interval', async () => {
    const merged = new MemoryStore();
    let arrived: () => void = () => undefined;
    const got = new Promise<void>((resolve) => { arrived = resolve; });
    const store = new ThreadStore((b) => { merged.apply(b); arrived(); }, { intervalMs: 10 });
    store.kind('properties_changed');
    await got;
    expect(merged.snapshot().messages.byKind).toEqual({ properties_changed: 1 });
    await store.close();
  });

  it('refuses a batch with an op it does not know, naming it', () => {
    const bad: PlatformBatch = { ops: ['X', 'did'], activity: [], kinds: [], malformed: [], time: null, size: 1 };
    expect(() => new MemoryStore().apply(bad)).toThrow('platform batch: unknown op "X" at 0');
  });
});
