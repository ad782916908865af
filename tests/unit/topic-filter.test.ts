/** MQTT topic filters: validation, and the filter index against a plain matcher on random filters and topics. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FilterIndex, filterProblem } from '../../src/monitor/topic-filter.js';

/** The MQTT 3.1.1 matching rules, level by level (the reference the index must agree with). */
function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '#' || f[0] === '+')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

describe('topic filters', () => {
  it('accepts valid filters and names what is wrong with invalid ones', () => {
    for (const ok of ['#', '+', 'device/#', 'device/+/up/#', '+/+', 'a//b', '/', '$SYS/#', 'device/1/state']) expect(filterProblem(ok), ok).toBeNull();
    expect(filterProblem('')).toMatch(/empty/);
    expect(filterProblem('a/#/b')).toMatch(/"#" must be a whole level and the last one/);
    expect(filterProblem('a#')).toMatch(/"#"/);
    expect(filterProblem('a/b+')).toMatch(/"\+" must be a whole level/);
    expect(filterProblem('a\u0000b')).toMatch(/U\+0000/);
  });

  it('matches like the MQTT rules: "a/#" covers "a", wildcards at the start skip "$" topics, one call per owner', () => {
    const idx = new FilterIndex<string>();
    idx.add('a/#', 'x');
    idx.add('a/+', 'x');
    idx.add('#', 'all');
    idx.add('$SYS/#', 'sys');
    const hits = (t: string): string[] => {
      const out: string[] = [];
      idx.match(t, (o) => out.push(o));
      return out.sort();
    };
    expect(hits('a')).toEqual(['all', 'x']);
    expect(hits('a/b')).toEqual(['all', 'x']);
    expect(hits('$SYS/broker')).toEqual(['sys']);
    expect(idx.remove('a/#', 'x')).toBe(true);
    expect(idx.remove('a/#', 'x')).toBe(false);
    expect(hits('a')).toEqual(['all']);
    expect(idx.size).toBe(3);
  });

  it('agrees with the plain matcher on random filters and topics, through adds and removes', () => {
    const level = fc.constantFrom('a', 'b', 'c', '', '$x');
    const topic = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/'));
    const filter = fc.tuple(fc.array(fc.oneof(level, fc.constant('+')), { minLength: 1, maxLength: 4 }), fc.boolean())
      .map(([l, hash]) => (hash ? [...l, '#'] : l).join('/'));
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(5), filter), { maxLength: 20 }), fc.array(fc.nat(19), { maxLength: 5 }), fc.array(topic, { maxLength: 10 }),
      (subs, removals, topics) => {
        const idx = new FilterIndex<number>();
        const live = new Set<string>();
        for (const [o, f] of subs) { idx.add(f, o); live.add(`${o}\u0001${f}`); }
        for (const r of removals) {
          const s = subs[r];
          if (s) { idx.remove(s[1], s[0]); live.delete(`${s[0]}\u0001${s[1]}`); }
        }
        expect(idx.size).toBe(live.size);
        for (const t of topics) {
          const got: number[] = [];
          idx.match(t, (o) => got.push(o));
          const want = new Set([...live].map((k) => k.split('\u0001') as [string, string]).filter(([, f]) => matches(f, t)).map(([o]) => Number(o)));
          expect(got.sort()).toEqual([...want].sort());
        }
      }), { numRuns: 300 });
  });

  it('remembers each topic\'s matches and forgets those a filter can change when it comes or goes: lookups between changes agree with the plain matcher', () => {
    const level = fc.constantFrom('a', 'b', '$x');
    const topic = fc.array(level, { minLength: 1, maxLength: 3 }).map((l) => l.join('/'));
    const filter = fc.tuple(fc.array(fc.oneof(level, fc.constant('+')), { minLength: 1, maxLength: 3 }), fc.boolean())
      .map(([l, hash]) => (hash ? [...l, '#'] : l).join('/'));
    const step = fc.oneof(
      fc.record({ op: fc.constant('add' as const), owner: fc.nat(3), filter }),
      fc.record({ op: fc.constant('remove' as const), pick: fc.nat(100) }),
      fc.record({ op: fc.constant('match' as const), topic }),
    );
    fc.assert(fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
      const idx = new FilterIndex<number>();
      const live = new Map<string, [number, string]>();
      for (const s of steps) {
        if (s.op === 'add') { idx.add(s.filter, s.owner); live.set(`${s.owner}\u0001${s.filter}`, [s.owner, s.filter]); }
        else if (s.op === 'remove') {
          // One of the filters there (a random one would rarely be).
          const entries = [...live];
          if (entries.length === 0) continue;
          const [key, [owner, f]] = entries[s.pick % entries.length]!;
          expect(idx.remove(f, owner)).toBe(true);
          live.delete(key);
        }
        else {
          const got: number[] = [];
          idx.match(s.topic, (o) => got.push(o));
          const want = new Set([...live.values()].filter(([, f]) => matches(f, s.topic)).map(([o]) => o));
          expect(got.sort()).toEqual([...want].sort());
        }
      }
    }), { numRuns: 500 });
    // And it does remember: a topic looked up twice is one entry; a change forgets it.
    const idx = new FilterIndex<string>();
    idx.add('device/#', 'all');
    idx.match('device/1/up', () => undefined);
    idx.match('device/1/up', () => undefined);
    expect(idx.rememberedTopics).toBe(1);
    idx.add('device/1/#', 'one');
    expect(idx.rememberedTopics).toBe(0);
    const got: string[] = [];
    idx.match('device/1/up', (o) => got.push(o));
    expect(got.sort()).toEqual(['all', 'one']);
    idx.remove('device/1/#', 'one');
    expect(idx.rememberedTopics).toBe(0);
    const after: string[] = [];
    idx.match('device/1/up', (o) => after.push(o));
    expect(after).toEqual(['all']);
  });
});
