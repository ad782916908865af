/** The wire contract (src/contract/wire.ts): both Xiaomi profiles written and read back. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeEvent, encodeProperty, parseDeviceTopic, PropertyFrame, readDeviceMessage, topics, type DeviceTopic } from '../../src/contract/wire.js';

const change = { did: 'lumi.158d0001a2b3c4', siid: 2, piid: 1, value: 21.5, ts: 1_763_900_000_123 };
const event = { did: '267090026', siid: 5, eiid: 101, arguments: [{ piid: 1, value: 'hi' }, { piid: 101, value: '1000000001' }], ts: 1_763_900_000_456, seq: 7 };

function read(topic: string, payload: string): ReturnType<typeof readDeviceMessage> {
  return readDeviceMessage(parseDeviceTopic(topic)!, payload);
}

describe('wire profiles', () => {
  it('cloud: properties_changed and event_occured topics with the keys inside params', () => {
    expect(encodeProperty('cloud', change)).toEqual({
      topic: 'device/lumi.158d0001a2b3c4/up/properties_changed/2/1',
      payload: '{"params":{"did":"lumi.158d0001a2b3c4","siid":2,"piid":1,"value":21.5,"ts":1763900000123}}',
    });
    expect(encodeEvent('cloud', event)).toEqual({
      topic: 'device/267090026/up/event_occured/5/101',
      payload: '{"params":{"did":"267090026","siid":5,"eiid":101,"arguments":[{"piid":1,"value":"hi"},{"piid":101,"value":"1000000001"}],"ts":1763900000456,"seq":7}}',
    });
  });

  it('local-hub: appMsg/notify/iot topics named siid.piid / siid.eiid, flat payloads', () => {
    expect(encodeProperty('local-hub', change)).toEqual({
      topic: 'appMsg/notify/iot/lumi.158d0001a2b3c4/property/2.1',
      payload: '{"did":"lumi.158d0001a2b3c4","siid":2,"piid":1,"value":21.5,"ts":1763900000123}',
    });
    expect(encodeEvent('local-hub', event).topic).toBe('appMsg/notify/iot/267090026/event/5.101');
    expect(JSON.parse(encodeEvent('local-hub', event).payload)).toEqual(event);
  });

  it('parses device topics of both profiles, and nothing else', () => {
    expect(parseDeviceTopic('device/1/up/properties_changed/2/1')).toEqual<DeviceTopic>({ did: '1', kind: 'properties_changed', profile: 'cloud', siid: 2, iid: 1 });
    expect(parseDeviceTopic('appMsg/notify/iot/blt.3.abc/event/3.1012')).toEqual<DeviceTopic>({ did: 'blt.3.abc', kind: 'event_occured', profile: 'local-hub', siid: 3, iid: 1012 });
    expect(parseDeviceTopic('device/1/state')).toEqual({ did: '1', kind: 'state' });
    for (const t of ['appMsg/notify/iot/1/property/2', 'appMsg/notify/iot/1/property/2.x', 'appMsg/notify/iot/1/property/.1',
      'appMsg/notify/iot/1/other/2.1', 'appMsg/notify/iot//property/2.1', 'appMsg/devListChange', 'device/1/up/properties_changed/2']) {
      expect(parseDeviceTopic(t), t).toBeUndefined();
    }
  });

  it('reads back what it writes, in both profiles', () => {
    for (const profile of ['cloud', 'local-hub'] as const) {
      const p = encodeProperty(profile, change);
      expect(read(p.topic, p.payload)).toEqual({ kind: 'properties_changed', did: change.did, ts: change.ts, siid: 2, piid: 1, value: 21.5 });
      const e = encodeEvent(profile, event);
      expect(read(e.topic, e.payload)).toEqual({ kind: 'event_occured', did: event.did, ts: event.ts, siid: 5, eiid: 101, arguments: event.arguments, seq: 7 });
    }
    const state = { device_id: '1', device_name: 'x', event: 'online', model: 'm', timestamp: 5, uid: 2, parent_id: 'g' };
    expect(read('device/1/state', JSON.stringify(state))).toEqual({ kind: 'state', did: '1', ts: 5, event: 'online', parentId: 'g' });
  });

  it('names the problem of a payload in the wrong shape', () => {
    const flat = JSON.stringify(change);
    const wrapped = JSON.stringify({ params: change });
    expect(read(`device/${change.did}/up/properties_changed/2/1`, flat)).toEqual({ problem: 'params is not an object' });
    expect(read(`appMsg/notify/iot/${change.did}/property/2.1`, wrapped)).toEqual({ problem: 'did in payload does not match topic' });
    expect(read('device/2/up/properties_changed/2/1', wrapped)).toEqual({ problem: 'did in payload does not match topic' });
    expect(read(`device/${change.did}/up/properties_changed/2/1`, JSON.stringify({ params: { ...change, ts: 'now' } }))).toEqual({ problem: 'missing or invalid ts' });
    expect(read('device/1/state', JSON.stringify({ did: '1', event: 'online', ts: 1 }))).toEqual({ problem: 'did in payload does not match topic' });
    expect(read('device/1/state', JSON.stringify({ device_id: '1', event: 'online' }))).toEqual({ problem: 'missing or invalid ts' });
    expect(read('device/1/state', '{')).toEqual({ problem: 'invalid JSON' });
    expect(read('device/1/state', '[]')).toEqual({ problem: 'payload is not an object' });
  });

  it('writes a property change byte for byte as JSON.stringify of the change, in both profiles', () => {
    const scalar = fc.oneof(fc.boolean(), fc.string(), fc.string({ unit: 'binary' }), fc.double(), fc.integer(), fc.constantFrom(0, -0, 1e21, 1e-7, NaN, Infinity));
    const changes = fc.record({
      did: fc.oneof(fc.stringMatching(/^[0-9a-z.]{1,20}$/), fc.string()),
      siid: fc.integer({ min: 0, max: 1000 }), piid: fc.integer({ min: 0, max: 1000 }),
      value: scalar, ts: fc.oneof(fc.integer({ min: 0, max: 4_102_444_800_000 }), fc.double()),
    }, { noNullPrototype: true });
    fc.assert(fc.property(changes, (c) => {
      expect(encodeProperty('cloud', c).payload).toBe(JSON.stringify({ params: c }));
      expect(encodeProperty('local-hub', c).payload).toBe(JSON.stringify(c));
      expect(encodeProperty('cloud', c).topic).toBe(topics.propertiesChanged(c.did, c.siid, c.piid));
      expect(encodeProperty('local-hub', c).topic).toBe(topics.hubProperty(c.did, c.siid, c.piid));
      // What devices send: the same bytes, from a frame kept per model property and the did quoted once.
      for (const profile of ['cloud', 'local-hub'] as const) {
        const frame = new PropertyFrame(profile, c.siid, c.piid);
        expect({ topic: frame.topic(c.did), payload: frame.payload(JSON.stringify(c.did), c.value, c.ts) }).toEqual(encodeProperty(profile, c));
      }
    }), { numRuns: 2000 });
  });
});
