/**
 * The platform service observing a real broker: it learns only from what devices publish, counts
 * malformed payloads and drops them, and never lets them break anything.
 */
import { describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import type { DeviceFacts } from '../../src/platform/registry.js';
import { PlatformService } from '../../src/platform/service.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectInProcess, connectTcp, nextMessage, until } from '../helpers/mqtt.js';

const DID = '500000001';
const FACTS: Record<string, DeviceFacts> = { [DID]: { model: 'chuangmi.plug.212a01', category: 'plug', region: 'es' } };

describe('platform service on a real broker', () => {
  const track = useCleanup();

  it('counts and drops malformed device payloads; the device, the broker and the platform carry on', async () => {
    const b = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: 'platform-op-token' }));
    const platform = new PlatformService((did) => FACTS[did]);
    platform.observe(b);
    b.access.registerDevice(DID, { token: 'plug-token', uid: '1000000005' });
    const obs = track(await connectInProcess(b, { clientId: 'platform-observer' }));
    await obs.subscribeAsync('device/#');
    const dev = track(await connectTcp(b, { clientId: DID, username: DID, password: 'plug-token' }));

    const up = `device/${DID}/up/properties_changed/2/1`;
    const bad: Array<[string, string | Buffer]> = [
      [up, '{"did":'], // invalid JSON
      [up, '[1,2,3]'], // not an object
      [up, JSON.stringify({ params: { did: '999', siid: 2, piid: 1, value: true, ts: 1 } })], // did does not match the topic
      [up, JSON.stringify({ params: { did: DID, siid: 2, piid: 1, value: true } })], // no ts
      [up, JSON.stringify({ did: DID, siid: 2, piid: 1, value: true, ts: 1 })], // the hub's flat shape on a cloud topic: no params
      [`appMsg/notify/iot/${DID}/property/2.1`, JSON.stringify({ params: { did: DID, siid: 2, piid: 1, value: true, ts: 1 } })], // cloud shape on a hub topic
      [`device/${DID}/state`, JSON.stringify({ device_id: DID, device_name: 'x', event: 'rebooting', model: 'x', timestamp: 2, uid: 1 })], // unknown event
      [up, Buffer.from([0xff, 0xfe, 0x00, 0x80])], // not even text
    ];
    for (const [topic, payload] of bad) await dev.publishAsync(topic, payload, { qos: 1 });
    await until(() => platform.snapshot().messages.malformed === bad.length, 5000, 'every malformed payload counted');
    expect(platform.registry.size).toBe(0);
    expect(b.counters.rejected).toBe(0); // the ACL allowed them: they are the device's own topics
    expect(dev.connected).toBe(true);

    // Valid messages after the garbage are used as usual.
    const ts = Date.UTC(2026, 6, 15, 12);
    const online = nextMessage(obs, (t) => t === `device/${DID}/state`);
    const state = { device_id: DID, device_name: 'Mi Smart Plug', event: 'online', model: FACTS[DID]!.model, timestamp: ts, uid: 1000000005 };
    await dev.publishAsync(`device/${DID}/state`, JSON.stringify(state), { qos: 1, retain: true });
    await online;
    await dev.publishAsync(up, JSON.stringify({ params: { did: DID, siid: 2, piid: 1, value: true, ts: ts + 5000 } }), { qos: 1 });
    await until(() => platform.registry.isOnline(DID) && platform.snapshot().eventTime === ts + 5000, 5000, 'the valid messages used');
    // The central hub's flat shape on its own topics is read too.
    await dev.publishAsync(`appMsg/notify/iot/${DID}/property/2.1`, JSON.stringify({ did: DID, siid: 2, piid: 1, value: false, ts: ts + 6000 }), { qos: 1 });
    await until(() => platform.snapshot().eventTime === ts + 6000, 5000, 'the hub message used');
    const snap = platform.snapshot();
    expect(snap.connections).toMatchObject({ online: 1, byCategory: { plug: 1 }, byRegion: { es: 1 }, byTransport: { tcp: 1 } });
    expect(snap.messages.byKind['properties_changed']).toBe(2);
    expect(snap.messages.malformed).toBe(bad.length);
    expect(snap.messages.byKind['state']).toBeGreaterThanOrEqual(1);

    // A clean DISCONNECT ends the session: the platform marks the device offline.
    await dev.endAsync();
    await until(() => !platform.registry.isOnline(DID), 5000, 'the device offline after its session ended');
  });
});
