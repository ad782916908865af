/**
 * Remembered topic matches (src/broker/match-cache.ts) in the broker's emitter: what a topic
 * reaches follows every subscription change, and the cache stays bounded.
 */
import { describe, expect, it } from 'vitest';
import { FloodSafeEmitter, type MqPacket } from '../../src/broker/emitter.js';
import { filterGroup, MAX_TOPICS, TopicCache } from '../../src/broker/match-cache.js';

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

  it('forgets only the topics a changed subscription can match', async () => {
    const e = new FloodSafeEmitter();
    const got: string[] = [];
    const listener = (name: string) => (_p: MqPacket, done: () => void): void => { got.push(name); done(); };
    const ops = listener('ops');
    e.on('device/+/up/#', ops);
    expect(reach(e, got, 'device/1/up/x')).toEqual(['ops']);
    expect(reach(e, got, 'device/2/up/x')).toEqual(['ops']);
    expect(reach(e, got, 'device/2/up')).toEqual(['ops']);
    expect(e.matches!.size).toBe(3);
    // An app subscribing to one device's topics: that device's remembered topics go, the others stay.
    const app = listener('app');
    e.on('device/2/up/#', app);
    expect(e.matches!.size).toBe(1);
    expect(reach(e, got, 'device/2/up/x')).toEqual(['app', 'ops']);
    expect(reach(e, got, 'device/2/up')).toEqual(['app', 'ops']); // '#' matches its parent level too
    expect(reach(e, got, 'device/1/up/x')).toEqual(['ops']);
    await new Promise<void>((r) => e.removeListener('device/2/up/#', app, r));
    expect(reach(e, got, 'device/2/up/x')).toEqual(['ops']);
    expect(reach(e, got, 'device/2/up')).toEqual(['ops']);
    // A wildcard in the first two levels can match any group: everything goes.
    const all = listener('all');
    e.on('+/1/#', all);
    expect(e.matches!.size).toBe(0);
    expect(reach(e, got, 'device/1/up/x')).toEqual(['all', 'ops']);
    expect(reach(e, got, 'x/1/y')).toEqual(['all']);
  });

  it('groups filters by their first two levels, or none when a wildcard or a share is there', () => {
    expect(filterGroup('device/abc/down/rpc')).toBe('device/abc');
    expect(filterGroup('device/abc')).toBe('device/abc');
    expect(filterGroup('device')).toBe('device');
    expect(filterGroup('device/+/up/#')).toBeNull();
    expect(filterGroup('device/#')).toBeNull();
    expect(filterGroup('#')).toBeNull();
    expect(filterGroup('$share/g/device/abc/up/#')).toBeNull();
    const cache = new TopicCache<number>();
    cache.set('device/a/up/x', 1);
    cache.set('device/b/up/x', 2);
    const asOf = cache.version;
    cache.forget('device/a/down/rpc');
    expect(cache.get('device/a/up/x')).toBeUndefined();
    expect(cache.get('device/b/up/x')).toBe(2);
    cache.set('device/a/up/y', 3, asOf); // computed before the change: not kept
    expect(cache.get('device/a/up/y')).toBeUndefined();
  });
});
