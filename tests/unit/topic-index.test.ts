/**
 * The broker's subscription index (src/broker/topic-index.ts) and the persistence's subscription
 * store (src/broker/subscription-store.ts) against what they replace, on random sequences of
 * subscriptions: qlobber's trie as mqemitter builds it, and aedes-persistence's memory store.
 * Every match must be the same, in the same order.
 */
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SubscriptionStore, type SubscriptionRequest } from '../../src/broker/subscription-store.js';
import { firstWildcard, TopicIndex } from '../../src/broker/topic-index.js';

const require = createRequire(import.meta.url);
interface Trie { add(f: string, v: unknown): unknown; remove(f: string, v?: unknown): unknown; match(t: string): unknown[] }
const { Qlobber } = require('qlobber') as { Qlobber: new (o: object) => Trie };
interface MemoryStore {
  addSubscriptions(client: { id: string }, subs: SubscriptionRequest[]): Promise<void>;
  removeSubscriptions(client: { id: string }, topics: string[]): Promise<void>;
  cleanSubscriptions(client: { id: string }): Promise<void>;
  subscriptionsByTopic(topic: string): Promise<unknown[]>;
  subscriptionsByClient(client: { id: string }): Promise<unknown[]>;
  countOffline(): Promise<{ subsCount: number; clientsCount: number }>;
}
const MemoryStore = require('aedes-persistence/asyncPersistence.js') as new () => MemoryStore;

const level = fc.constantFrom('device', 'a', 'b', '');
const topic = fc.array(level, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('/'));
const filter = fc
  .tuple(fc.array(fc.constantFrom('device', 'a', 'b', '', '+'), { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([ls, hash]) => (hash ? [...ls.slice(0, -1), '#'] : ls).join('/'));
/** Several literal filters for each wildcard one, as in a simulation. */
const anyFilter = fc.oneof({ weight: 1, arbitrary: filter }, { weight: 2, arbitrary: topic });
const TOPICS = ['device', 'device/a', 'device/a/b', 'a/b', 'a//b', 'a/', '/a', 'device/b/a/b', 'b', ''];

describe('the subscription index', () => {
  it('matches as a qlobber trie does, in the same order, through adds and removes', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), filter: anyFilter, value: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant('remove' as const), filter: anyFilter, value: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant('removeAll' as const), filter: anyFilter, value: fc.constant(0) }),
      fc.record({ kind: fc.constant('match' as const), filter: topic, value: fc.constant(0) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const index = new TopicIndex<number>({ matchEmptyLevels: true });
      const trie = new Qlobber({ separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true });
      for (const o of ops) {
        if (o.kind === 'add') { index.add(o.filter, o.value); trie.add(o.filter, o.value); }
        else if (o.kind === 'remove') { index.remove(o.filter, o.value); trie.remove(o.filter, o.value); }
        else if (o.kind === 'removeAll') { index.remove(o.filter); trie.remove(o.filter); }
        else expect(index.match(o.filter)).toEqual(trie.match(o.filter));
        for (const t of TOPICS) expect(index.match(t), `after ${o.kind} ${o.filter}: ${t}`).toEqual(trie.match(t));
      }
    }), { numRuns: 400 });
  });

  it('skips wildcard filters only for topics none of them can reach, with few filters or many', () => {
    for (const n of [2, 20]) {
      const index = new TopicIndex<string>({ matchEmptyLevels: true });
      const trie = new Qlobber({ separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true });
      const filters = [...Array.from({ length: n }, (_, i) => `device/+/up/l${i}`), ...Array.from({ length: n }, (_, i) => `f${i}/#`), '+/x/+'];
      for (const f of filters) { index.add(f, f); trie.add(f, f); }
      const topics = ['device/1/up/l1', 'device/1/up/l1x', 'device/1/up/xl1', 'f1', 'f1/a', 'xf1/a', 'a/x/b', 'a/x', 'device/1/state', 'l1', ''];
      for (const t of topics) expect(index.match(t), `${n} filters: ${t}`).toEqual(trie.match(t));
      index.remove('+/x/+');
      trie.remove('+/x/+');
      for (const t of topics) expect(index.match(t), `${n} filters, one removed: ${t}`).toEqual(trie.match(t));
    }
  });

  it('finds literal filters by any last level, with few of them or many, as they come and go', () => {
    for (const n of [2, 20]) {
      const index = new TopicIndex<string>({ matchEmptyLevels: true });
      const trie = new Qlobber({ separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: true });
      const filters = [...Array.from({ length: n }, (_, i) => `device/${i}/down/l${i}`), 'l1', 'a/', 'device/+/up/l1'];
      for (const f of filters) { index.add(f, f); trie.add(f, `${f}`); }
      index.add('device/1/down/l1', 'again');
      trie.add('device/1/down/l1', 'again');
      const topics = ['device/1/down/l1', 'device/1/down/xl1', 'device/1/down/l1x', 'device/0/down/l1', 'device/1/up/l1', 'l1', 'xl1', 'a/', 'b/', 'a', ''];
      const same = (when: string): void => { for (const t of topics) expect(index.match(t), `${n} levels, ${when}: ${t}`).toEqual(trie.match(t)); };
      same('added');
      index.remove('device/1/down/l1', 'device/1/down/l1');
      trie.remove('device/1/down/l1', 'device/1/down/l1');
      same('one value removed');
      for (const f of ['device/1/down/l1', 'a/', 'l1']) { index.remove(f); trie.remove(f); }
      same('filters removed');
      index.add('a/', 'back');
      trie.add('a/', 'back');
      same('one back');
    }
  });

  it('returns a match that later subscriptions do not change', () => {
    const index = new TopicIndex<string>();
    index.add('device/1/down/rpc', 'device');
    const before = index.match('device/1/down/rpc');
    index.add('device/1/down/rpc', 'second');
    index.remove('device/1/down/rpc', 'device');
    expect(before).toEqual(['device']);
    expect(index.match('device/1/down/rpc')).toEqual(['second']);
  });

  it('knows a wildcard by its level, not by a character inside one', () => {
    expect(firstWildcard('device/1/down/rpc')).toBeNull();
    expect(firstWildcard('device/+/up/#')).toBe('+');
    expect(firstWildcard('device/1/#')).toBe('#');
    expect(firstWildcard('a+b/c#')).toBeNull();
  });
});

describe("the persistence's subscription store", () => {
  it("keeps and matches subscriptions as aedes-persistence's memory store does", async () => {
    const sub = fc.record({ topic: anyFilter, qos: fc.constantFrom(0, 1, 2) });
    const client = fc.constantFrom('c1', 'c2', 'c3');
    const op = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), client, subs: fc.array(sub, { minLength: 1, maxLength: 3 }) }),
      fc.record({ kind: fc.constant('remove' as const), client, topics: fc.array(anyFilter, { minLength: 1, maxLength: 2 }) }),
      fc.record({ kind: fc.constant('clean' as const), client }),
    );
    await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
      const store = new SubscriptionStore();
      const reference = new MemoryStore();
      for (const o of ops) {
        const c = { id: o.client };
        if (o.kind === 'add') {
          store.add(o.client, o.subs);
          await reference.addSubscriptions(c, o.subs);
        } else if (o.kind === 'remove') {
          store.remove(o.client, o.topics);
          await reference.removeSubscriptions(c, o.topics);
        } else {
          store.clean(o.client);
          await reference.cleanSubscriptions(c);
        }
        for (const t of TOPICS) expect(store.match(t), `after ${o.kind}: ${t}`).toEqual(await reference.subscriptionsByTopic(t));
        for (const id of ['c1', 'c2', 'c3']) expect(store.of(id)).toEqual(await reference.subscriptionsByClient({ id }));
        expect(store.count()).toEqual(await reference.countOffline());
      }
    }), { numRuns: 300 });
  });
});
