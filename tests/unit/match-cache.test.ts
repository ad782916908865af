/**
 * Remembered topic matches (src/broker/match-cache.ts) in the broker's emitter: what a topic
 * reaches follows every subscription change, and the cache stays bounded.
 */
import { describe, expect, it } from 'vitest';
import { FloodSafeEmitter, type MqPacket } from '../../src/broker/emitter.js';
import { MAX_TOPICS, TopicCache } from '../../src/broker/match-cache.js';

/** Who received `topic` when emitted once. */
function reach(e: FloodSafeEmitter, got: string[], topic: string): string[] {
  got.length = 0;
  e.emit({ topic });
  return [...got].sort();
}

describe('remembered topic matches', () => {
  it('follow subscriptions added and removed after a topic was matched', async () => {
    const e = new FloodSafeEmitter();
    // mqemitter removes a listener on the next turn: wait for it.
    const off = (topic: string, fn: (p: MqPacket, done: () => void) => void): Promise<void> => new Promise((r) => e.removeListener(topic, fn, r));
    const got: string[] = [];
    const listener = (name: string) => (_p: MqPacket, done: () => void): void => { got.push(name); done(); };
    const a = listener('a');
    const b = listener('b');
    const c = listener('c');
    e.on('device/+/up/#', a);
    expect(reach(e, got, 'device/1/up/x')).toEqual(['a']);
    expect(reach(e, got, 'device/1/up/x')).toEqual(['a']);
    expect(e.matches!.size).toBe(1);
    e.on('device/1/up/x', b);
    expect(reach(e, got, 'device/1/up/x')).toEqual(['a', 'b']);
    e.on('#', c);
    expect(reach(e, got, 'device/1/up/x')).toEqual(['a', 'b', 'c']);
    await off('device/+/up/#', a);
    expect(reach(e, got, 'device/1/up/x')).toEqual(['b', 'c']);
    await off('#', c);
    await off('device/1/up/x', b);
    expect(reach(e, got, 'device/1/up/x')).toEqual([]);
    expect(reach(e, got, 'device/2/up/x')).toEqual([]);
  });

  it('keeps no match computed before a change, and at most MAX_TOPICS topics', () => {
    const cache = new TopicCache<number>();
    const asOf = cache.version;
    cache.clear(); // a subscription changed while the match was computed
    cache.set('t', 1, asOf);
    expect(cache.get('t')).toBeUndefined();
    cache.set('t', 2);
    expect(cache.get('t')).toBe(2);
    for (let i = 0; i < MAX_TOPICS + 10; i++) cache.set(`topic/${i}`, i);
    expect(cache.size).toBeLessThanOrEqual(MAX_TOPICS);
    expect(cache.get(`topic/${MAX_TOPICS + 9}`)).toBe(MAX_TOPICS + 9);
  });
});
