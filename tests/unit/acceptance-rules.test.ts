/**
 * The acceptance rules the wire test judges runs with (tests/helpers/xiaomi-acceptance.ts) refuse
 * what Xiaomi's client refuses: among it, the payloads aiot-sim sent before it spoke Xiaomi's format.
 */
import { describe, expect, it } from 'vitest';
import { judge } from '../helpers/xiaomi-acceptance.js';

const j = (topic: string, body: unknown): ReturnType<typeof judge> => judge(topic, typeof body === 'string' ? body : JSON.stringify(body));

describe('Xiaomi acceptance rules (test helper)', () => {
  it('accepts the formats Xiaomi\'s cloud and hub clients read', () => {
    expect(j('device/1/up/properties_changed/2/1', { params: { did: '1', siid: 2, piid: 1, value: true } })).toEqual({ accepted: 'cloud-property' });
    expect(j('device/1/up/event_occured/2/1', { params: { did: '1', siid: 2, eiid: 1, arguments: [] } })).toEqual({ accepted: 'cloud-event' });
    expect(j('appMsg/notify/iot/1/property/2.1', { did: '1', siid: 2, piid: 1, value: 3 })).toEqual({ accepted: 'hub-property' });
    expect(j('appMsg/notify/iot/1/event/2.1', { did: '1', siid: 2, eiid: 1, arguments: [{ piid: 1, value: 'x' }] })).toEqual({ accepted: 'hub-event' });
    const state = { device_id: '1', device_name: 'Mi Smart Plug', event: 'online', model: 'cuco.plug.v3', timestamp: 1709001070828, uid: 123 };
    expect(j('device/1/state', state)).toEqual({ accepted: 'state-online' });
    expect(j('device/1/state', { ...state, event: 'offline' })).toEqual({ accepted: 'state-offline' });
    expect(j('device/1/down/rpc', 'anything')).toBeNull();
    expect(j('app/1/session', 'anything')).toBeNull();
  });

  it('rejects the bare payloads aiot-sim used to send, and other shapes a real consumer drops', () => {
    expect(j('device/1/up/properties_changed/2/1', { did: '1', siid: 2, piid: 1, value: true, ts: 1 })).toHaveProperty('rejected');
    expect(j('device/1/up/event_occured/2/1', { did: '1', siid: 2, eiid: 1, arguments: [], ts: 1, seq: 1 })).toHaveProperty('rejected');
    expect(j('device/1/state', { did: '1', event: 'online', model: 'm', uid: '1', ts: 1 })).toHaveProperty('rejected');
    expect(j('device/1/up/properties_changed/2/1', { params: { siid: 2, piid: 1, value: true } })).toHaveProperty('rejected'); // no did
    expect(j('device/1/up/properties_changed/2/1', { params: { did: '1', siid: 2, piid: 9, value: true } })).toHaveProperty('rejected'); // not the topic's piid
    expect(j('device/1/up/event_occured/2/1', { params: { did: '1', siid: 2, eiid: 1, arguments: {} } })).toHaveProperty('rejected');
    expect(j('appMsg/notify/iot/1/property/2.1', { params: { did: '1', siid: 2, piid: 1, value: 3 } })).toHaveProperty('rejected');
    expect(j('device/blt.3.0123456789ab/state', { device_id: 'blt.3.0123456789ab', event: 'online' })).toHaveProperty('rejected');
    expect(j('device/1/up/whatever', {})).toHaveProperty('rejected');
    expect(j('device/1/up/properties_changed/2/1', '{not json')).toHaveProperty('rejected');
  });
});
