/**
 * Retained device states and last wills: what a fresh observer learns from the broker, and what
 * the broker says when a device session dies without DISCONNECT.
 */
import type { IClientOptions, MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import type { StatePayload } from '../../src/contract/wire.js';
import { createSimulation } from '../../src/sim/simulation.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectInProcess, connectTcp, nextMessage, until } from '../helpers/mqtt.js';
import { TEST_START, tinyScenario } from '../helpers/scenario.js';

interface Received { topic: string; body: StatePayload; retain: boolean }

function collectStates(client: MqttClient): Received[] {
  const out: Received[] = [];
  client.on('message', (topic, payload, packet) => {
    if (topic.endsWith('/state')) out.push({ topic, body: JSON.parse(payload.toString()) as StatePayload, retain: packet.retain });
  });
  return out;
}

// What each test starts (a simulation or a broker, and clients), torn down after it.
const track = useCleanup();
// The observers here read device state as the operator: anonymous clients get it without the owner's uid (issue 14).

describe('retained states of a running simulation', () => {
  it('gives a fresh observer a retained "online" state for every device but BLE children, Zigbee children with parent_id', async () => {
    const s = track(await createSimulation({
      scenario: tinyScenario({ homes: 3, mix: { sensor: 2, 'xiaomi.aircondition.mc4': 1, light: 1 }, devicesPerHome: { '4': 1 } }),
      speed: 'manual',
      broker: { mqttPort: 0, wsPort: null },
    }));
    const plans = s.population.devices;
    const children = plans.filter((d) => d.parentId);
    expect(children.length).toBeGreaterThan(0); // the mix guarantees Zigbee/BLE sensors behind gateways
    expect(s.population.sessions.length).toBeLessThan(plans.length);
    // The platform has seen every announcement, so the broker has stored them all.
    await until(() => s.snapshot().connections.online === plans.length, 5000, 'every device online at the platform');

    // The cloud publishes no state for BLE children (blt.*): the platform counted them online
    // through their gateway (above), and a fresh observer finds a state for everyone else.
    const stated = plans.filter((d) => d.model.transport !== 'ble');
    expect(stated.length).toBeLessThan(plans.length); // the mix has BLE children too
    const obs = track(await connectTcp(s.broker, { clientId: 'fresh-observer', username: 'operator', password: s.operatorToken }));
    const states = collectStates(obs);
    await obs.subscribeAsync('device/+/state');
    await until(() => states.length >= stated.length, 5000, 'a retained state per device');
    expect(states).toHaveLength(stated.length);
    const byDid = new Map(states.map((r) => [r.body.device_id, r]));
    expect([...byDid.keys()].sort()).toEqual(stated.map((d) => d.did).sort());
    for (const plan of stated) {
      const r = byDid.get(plan.did)!;
      expect(r.topic).toBe(`device/${plan.did}/state`);
      expect(r.retain).toBe(true);
      expect(r.body).toEqual({
        device_id: plan.did, device_name: plan.model.name, event: 'online', model: plan.model.model, timestamp: Date.parse(TEST_START),
        uid: Number(plan.uid), ...(plan.parentId ? { parent_id: plan.parentId } : {}),
      });
    }
  });
});

describe('stopping a simulation', () => {
  // A clean DISCONNECT fires no will, so a stopping session must say "offline" itself (self and
  // children), or retained states would stay "online" (on an external broker, for good).
  it('has every device (and Zigbee child) publish a retained "offline" state before its session disconnects', async () => {
    const s = track(await createSimulation({
      scenario: tinyScenario({ homes: 2, mix: { sensor: 1, light: 1 }, devicesPerHome: { '3': 1 } }),
      speed: 'manual',
      broker: { mqttPort: 0, wsPort: null },
    }));
    const all = s.population.devices;
    expect(all.some((d) => d.parentId)).toBe(true);
    await until(() => s.snapshot().connections.online === all.length, 5000, 'every device online');
    const plans = all.filter((d) => d.model.transport !== 'ble');
    const atBroker: StatePayload[] = [];
    s.broker.on('message', (topic, payload) => {
      if (topic.endsWith('/state')) atBroker.push(JSON.parse(payload.toString()) as StatePayload);
    });
    const obs = track(await connectTcp(s.broker, { clientId: 'stop-observer', username: 'operator', password: s.operatorToken }));
    const states = collectStates(obs);
    await obs.subscribeAsync('device/+/state', { qos: 1 });
    await until(() => states.length === plans.length, 5000, 'the retained online states');
    const report = await s.stop();
    const offline = (list: StatePayload[]): Map<string, StatePayload> => new Map(list.filter((b) => b.event === 'offline').map((b) => [b.device_id, b]));
    expect([...offline(atBroker).keys()].sort()).toEqual(plans.map((d) => d.did).sort());
    const seen = offline(states.map((r) => r.body));
    expect([...seen.keys()].sort()).toEqual(plans.map((d) => d.did).sort());
    for (const plan of plans) {
      expect(seen.get(plan.did)).toMatchObject({ device_id: plan.did, model: plan.model.model, uid: Number(plan.uid) });
      if (plan.parentId) expect(seen.get(plan.did)!.parent_id).toBe(plan.parentId);
    }
    expect(report.messages.published).toBeGreaterThanOrEqual(2 * plans.length);
  });
});

describe('last will of a simulated device session', () => {
  it('has the broker announce a dropped Wi-Fi device offline with the will its session registered', async () => {
    const s = track(await createSimulation({
      scenario: tinyScenario({ homes: 2, mix: { light: 1 }, devicesPerHome: { '1': 1 } }),
      speed: 'manual',
      broker: { mqttPort: 0, wsPort: null },
    }));
    const plan = s.population.sessions[0]!;
    await until(() => s.platform.registry.isOnline(plan.did), 5000, 'the device online');
    const obs = track(await connectTcp(s.broker, { clientId: 'sim-will-observer', username: 'operator', password: s.operatorToken }));
    const will = nextMessage(obs, (t, p) => t === `device/${plan.did}/state` && p.includes('"offline"'));
    await obs.subscribeAsync(`device/${plan.did}/state`, { qos: 1 });
    // Drop the device's connection at the broker, as a lost network would (no DISCONNECT).
    const aedesClients = (s.broker.aedes as unknown as { clients: Record<string, { conn: { destroy(): void } }> }).clients;
    aedesClients[plan.did]!.conn.destroy();
    expect(JSON.parse((await will).payload)).toEqual({
      device_id: plan.did, device_name: plan.model.name, event: 'offline', model: plan.model.model, timestamp: Date.parse(TEST_START), uid: Number(plan.uid),
    });
    await until(() => !s.platform.registry.isOnline(plan.did), 5000, 'the platform to see it offline');
  });
});

describe.each<[string, (b: EmbeddedBroker, o?: IClientOptions) => Promise<MqttClient>]>([
  ['tcp', connectTcp],
  ['in-process', connectInProcess],
])('last will over %s', (_transport, connect) => {
  const DID = '300000001';
  const CLEAN = '300000002';
  const state = (did: string, event: 'online' | 'offline', ts: number): string =>
    JSON.stringify({ device_id: did, device_name: 'Yeelight Smart LED Bulb (mono6)', event, model: 'yeelink.light.mono6', timestamp: ts, uid: 1000000009 });
  const withWill = (did: string): IClientOptions => ({
    clientId: did, username: did, password: `token-${did}`,
    will: { topic: `device/${did}/state`, payload: Buffer.from(state(did, 'offline', 1000)), qos: 1, retain: true },
  });

  it('publishes the will (retained "offline") when a device session drops without DISCONNECT, not on a clean one', async () => {
    const broker = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: 'op-token-xyz' }));
    broker.access.registerDevice(DID, { token: `token-${DID}`, uid: '1000000009' });
    broker.access.registerDevice(CLEAN, { token: `token-${CLEAN}`, uid: '1000000009' });
    const obs = track(await connect(broker, { clientId: 'will-observer', username: 'operator', password: 'op-token-xyz' }));
    const seen = collectStates(obs);
    await obs.subscribeAsync('device/+/state', { qos: 1 });

    const dev = await connect(broker, withWill(DID));
    const clean = await connect(broker, withWill(CLEAN));
    track(dev);
    track(clean);
    const online = nextMessage(obs, (t, p) => t === `device/${DID}/state` && p.includes('"online"'));
    await dev.publishAsync(`device/${DID}/state`, state(DID, 'online', 1000), { qos: 1, retain: true });
    await online;

    // A clean DISCONNECT: no will.
    const gone: string[] = [];
    broker.on('clientGone', (info) => gone.push(info.clientId));
    await clean.endAsync();
    await until(() => gone.includes(CLEAN), 5000, 'the clean session to end');

    // The device loses its connection: the broker publishes its will.
    const will = nextMessage(obs, (t, p) => t === `device/${DID}/state` && p.includes('"offline"'));
    dev.stream.destroy();
    const msg = await will;
    expect(JSON.parse(msg.payload)).toEqual(JSON.parse(state(DID, 'offline', 1000)));
    await until(() => gone.includes(DID), 5000, 'the dropped session to end');
    expect(seen.some((r) => r.body.device_id === CLEAN && r.body.event === 'offline')).toBe(false);

    // The will was retained: a later observer learns the device is offline.
    const late = track(await connect(broker, { clientId: 'late-observer', username: 'operator', password: 'op-token-xyz' }));
    const lateStates = collectStates(late);
    await late.subscribeAsync(`device/${DID}/state`);
    await until(() => lateStates.length > 0, 5000, 'the retained state');
    expect(lateStates[0]).toMatchObject({ retain: true, body: { device_id: DID, event: 'offline' } });
  });
});
