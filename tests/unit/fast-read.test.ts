/**
 * The platform's hot path (src/platform/fast-read.ts) against the full read
 * (`parseDeviceTopic` + `readDeviceMessage`): whenever the fast read gives a time, the full read
 * gives a property change with that time; and what devices write is read fast.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeEvent, encodeProperty, parseDeviceTopic, readDeviceMessage, type WireProfile } from '../../src/contract/wire.js';
import { propertyChangeTime } from '../../src/platform/fast-read.js';
import { PlatformService } from '../../src/platform/service.js';

/** What the full read makes of a message: the property change's time, or why it is not one. */
function fullRead(topic: string, payload: Buffer): number | string {
  const t = parseDeviceTopic(topic);
  if (!t) return 'not a device topic';
  if (t.kind === 'rpc_down') return 'command';
  const m = readDeviceMessage(t, payload.toString('utf8'));
  if ('problem' in m) return m.problem;
  return m.kind === 'properties_changed' ? m.ts : m.kind;
}

const did = fc.oneof(fc.stringMatching(/^[0-9]{1,12}$/), fc.stringMatching(/^[a-z]{1,6}\.[0-9a-f]{1,14}$/), fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !s.includes('/')));
const scalar = fc.oneof(fc.boolean(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string(), fc.string({ unit: 'binary', maxLength: 8 }));
const change = fc.record({
  did, siid: fc.nat(1000), piid: fc.nat(1000), value: scalar,
  ts: fc.oneof(fc.integer({ min: 0, max: 4_102_444_800_000 }), fc.double({ noNaN: true, noDefaultInfinity: true })),
});
const profile = fc.constantFrom<WireProfile>('cloud', 'local-hub');

/** `bytes` with a few bytes replaced, inserted or removed. */
const mutated = (bytes: Buffer) => fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')), { minLength: 1, maxLength: 3 })
  .map((edits) => {
    const b = [...bytes];
    for (const [at, byte, how] of edits) {
      const i = at % (b.length + 1);
      if (how === 'set' && i < b.length) b[i] = byte;
      else if (how === 'insert') b.splice(i, 0, byte);
      else b.splice(i, 1);
    }
    return Buffer.from(b);
  });

describe('propertyChangeTime', () => {
  it('reads what devices write, in both profiles, as the full read does', () => {
    fc.assert(fc.property(profile, change, (p, c) => {
      const m = encodeProperty(p, c);
      const payload = Buffer.from(m.payload);
      const fast = propertyChangeTime(m.topic, payload);
      const full = fullRead(m.topic, payload);
      if (fast !== undefined) expect(fast).toBe(full);
      // Plain devices (a did without quotes or escapes, an integer time of at most 15 digits) always take the fast path.
      if (/^[\x20-\x7e]+$/.test(c.did) && !/["\\]/.test(c.did) && Number.isInteger(c.ts) && c.ts >= 0 && c.ts < 1e15) expect(fast).toBe(c.ts + 0); // + 0: -0 is written as 0
    }), { numRuns: 2000 });
  });

  it('never reads a time the full read would not: mutated messages', () => {
    const base = fc.tuple(profile, change).map(([p, c]) => encodeProperty(p, c));
    fc.assert(fc.property(base.chain((m) => fc.tuple(fc.constant(m.topic), mutated(Buffer.from(m.payload)))), ([topic, payload]) => {
      const fast = propertyChangeTime(topic, payload);
      if (fast !== undefined) expect(fast).toBe(fullRead(topic, payload));
    }), { numRuns: 5000 });
    fc.assert(fc.property(base.chain((m) => fc.tuple(mutated(Buffer.from(m.topic)).map((b) => b.toString('utf8')), fc.constant(Buffer.from(m.payload)))), ([topic, payload]) => {
      const fast = propertyChangeTime(topic, payload);
      if (fast !== undefined) expect(fast).toBe(fullRead(topic, payload));
    }), { numRuns: 3000 });
  });

  it('leaves everything else to the full read', () => {
    const ok = (t: string, p: string) => propertyChangeTime(t, Buffer.from(p));
    const body = '{"params":{"did":"1","siid":2,"piid":1,"value":true,"ts":5}}';
    expect(ok('device/1/up/properties_changed/2/1', body)).toBe(5);
    expect(ok('appMsg/notify/iot/1/property/2.1', '{"did":"1","siid":2,"piid":1,"value":"a\\u00e9\\n","ts":5}')).toBe(5);
    for (const [t, p] of [
      ['device/1/up/properties_changed/2/1', '{"params":{"did":"1","siid":2,"piid":1,"value":true,"ts":5}} '], // trailing space
      ['device/1/up/properties_changed/2/1', '{"params":{"did":"1","piid":1,"siid":2,"value":true,"ts":5}}'], // other key order
      ['device/1/up/properties_changed/2/1', '{"params":{"did":"1","siid":2,"piid":1,"value":true,"ts":5.5}}'], // fractional ts
      ['device/1/up/properties_changed/2/1', '{"params":{"did":"1","siid":2,"piid":1,"value":true,"ts":05}}'], // not JSON
      ['device/1/up/properties_changed/2/1', '{"params":{"did":"1","siid":2,"piid":1,"value":{"a":1},"ts":5}}'], // not a scalar
      ['device/1/up/properties_changed/2/1', '{"params":{"did":"2","siid":2,"piid":1,"value":true,"ts":5}}'], // another did
      ['device/1/up/properties_changed/2/1', '{"did":"1","siid":2,"piid":1,"value":true,"ts":5}'], // hub shape on a cloud topic
      ['device/1/up/event_occured/2/1', body],
      ['device/1/up/properties_changed/2', body],
      ['device//up/properties_changed/2/1', body],
      ['app/1/session', body],
    ] as const) expect(ok(t, p), `${t} ${p}`).toBeUndefined();
  });
});

describe('the platform on the hot path', () => {
  it('counts what it reads fast exactly as what it reads in full', () => {
    // Two platforms fed the same messages, one of them each property change re-encoded with a space
    // (valid JSON the fast read leaves to the full read): the same snapshot.
    const fast = new PlatformService(() => undefined);
    const full = new PlatformService(() => undefined);
    const feed = (topic: string, payload: string): void => {
      fast.onMessage(topic, Buffer.from(payload));
      full.onMessage(topic, Buffer.from(payload.replace(/^\{/, '{ ')));
    };
    for (let i = 0; i < 200; i++) {
      const p: WireProfile = i % 3 ? 'cloud' : 'local-hub';
      const m = encodeProperty(p, { did: `${100 + (i % 7)}`, siid: 2, piid: 1, value: i % 2 === 0, ts: 1_763_900_000_000 + i * 1000 - (i % 5) * 3000 });
      expect(propertyChangeTime(m.topic, Buffer.from(m.payload))).toBeDefined();
      feed(m.topic, m.payload);
      if (i % 10 === 0) {
        const e = encodeEvent(p, { did: `${100 + (i % 7)}`, siid: 3, eiid: 1, arguments: [], ts: 1_763_900_000_000 + i * 1000, seq: i + 1 });
        feed(e.topic, e.payload);
      }
    }
    feed('device/100/up/properties_changed/2/1', '{"params":{"did":"100","siid":2,"piid":1,"value":1,"ts":9999999999999}}'); // year 2286
    expect(fast.snapshot()).toEqual(full.snapshot());
    expect(fast.snapshot().messages).toMatchObject({ byKind: { properties_changed: 200, event_occured: 20 }, malformed: 1 });
    expect([...fast.malformedReasons]).toEqual([['ts out of range', 1]]);
  });
});
