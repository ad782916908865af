/**
 * Gateways and their Zigbee/BLE children: one MQTT session (the gateway's) speaks for every child
 * on the child's own did topics, takes the children's commands, and takes them offline with it.
 */
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import type { Client } from 'aedes';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import type { StatePayload } from '../../src/contract/wire.js';
import type { DeviceFacts } from '../../src/platform/registry.js';
import { PlatformService } from '../../src/platform/service.js';
import { createSimulation, type Simulation } from '../../src/sim/simulation.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectTcp, nextMessage, until } from '../helpers/mqtt.js';
import { readProperty, results, rpc } from '../helpers/rpc.js';
import { tinyScenario } from '../helpers/scenario.js';

const GATEWAY = 'lumi.gateway.mgl03';

describe('gateway children in a running simulation', () => {
  const track = useCleanup();

  async function start(): Promise<Simulation> {
    return track(await createSimulation({
      scenario: tinyScenario({ homes: 2, mix: { sensor: 1 }, devicesPerHome: { '4': 1 } }),
      speed: 'manual',
      broker: { mqttPort: 0, wsPort: null },
    }));
  }

  async function operator(s: Simulation): Promise<MqttClient> {
    return track(await connectTcp(s.broker, { clientId: 'gw-test-operator', username: 'operator', password: s.operatorToken }));
  }

  it('puts the sensors behind a lumi.gateway.mgl03, and the gateway session publishes for them on their own topics', async () => {
    const s = await start();
    const gateways = s.population.sessions;
    expect(gateways).toHaveLength(2);
    for (const gw of gateways) {
      expect(gw.model.model).toBe(GATEWAY);
      expect(gw.children).toHaveLength(3); // the hub takes one of the four slots
      for (const c of gw.children) {
        expect(c.parentId).toBe(gw.did);
        expect(['zigbee', 'ble']).toContain(c.model.transport);
      }
    }
    const parentOf = new Map(gateways.flatMap((gw) => gw.children.map((c) => [c.did, gw.did] as const)));

    // Who published what, as the broker saw it.
    const fromChildTopics: Array<{ topic: string; did: string; clientId: string | null; about?: string }> = [];
    s.broker.on('message', (topic, payload, clientId) => {
      const did = topic.split('/')[1] ?? '';
      if (topic.startsWith('device/') && parentOf.has(did) && !topic.endsWith('/rpc')) {
        const body = JSON.parse(payload.toString()) as { params?: { did?: string }; device_id?: string };
        fromChildTopics.push({ topic, did, clientId, about: topic.endsWith('/state') ? body.device_id : body.params?.did });
      }
    });
    const obs = track(await connectTcp(s.broker, { clientId: 'gw-observer' }));
    await obs.subscribeAsync('device/#');
    const childUp = nextMessage(obs, (t) => parentOf.has(t.split('/')[1] ?? '') && t.includes('/up/'));
    await s.advance(3 * 3_600_000);
    const first = await childUp;
    expect(first.topic).toMatch(/^device\/[^/]+\/up\/(properties_changed|event_occured)\/\d+\/\d+$/);
    await until(() => fromChildTopics.length > 0, 5000, 'child messages at the broker');
    for (const m of fromChildTopics) {
      expect(m.clientId).toBe(parentOf.get(m.did)); // published by the gateway's session
      expect(m.about).toBe(m.did); // about the child itself
    }
  });

  it("answers an operator's RPC to a child on the child's up/rpc", async () => {
    const s = await start();
    const gw = s.population.sessions[0]!;
    const child = gw.children[0]!;
    const op = await operator(s);
    await op.subscribeAsync(`device/${child.did}/up/rpc`, { qos: 1 });
    const replies: Array<string | null> = [];
    s.broker.on('message', (topic, _p, clientId) => { if (topic === `device/${child.did}/up/rpc`) replies.push(clientId); });
    const res = await rpc(op, child.did, 'get_properties', [{ did: child.did, siid: 1, piid: 2 }, { did: child.did, siid: 1, piid: 1 }]);
    const [model, maker] = results(res);
    expect(model).toMatchObject({ did: child.did, siid: 1, piid: 2, code: 0, value: child.model.model });
    expect(maker).toMatchObject({ code: 0 });
    // The broker reports a publish once it has been handed to subscribers: wait for it.
    await until(() => replies.length > 0, 5000, 'the reply at the broker');
    expect(replies).toEqual([gw.did]);
    // The gateway itself answers on its own topic.
    await op.subscribeAsync(`device/${gw.did}/up/rpc`, { qos: 1 });
    expect(await readProperty(op, gw.did, 1, 2)).toBe(GATEWAY);
  });

  it('counts children in the platform snapshot, by their radio', async () => {
    const s = await start();
    const plans = s.population.devices;
    await until(() => s.snapshot().connections.online === plans.length, 5000, 'every device online at the platform');
    const c = s.snapshot().connections;
    const zigbee = plans.filter((d) => d.model.transport === 'zigbee').length;
    const ble = plans.filter((d) => d.model.transport === 'ble').length;
    expect(zigbee + ble).toBe(6);
    expect(c.online).toBe(8);
    expect(c.byModel[GATEWAY]).toBe(2);
    expect(c.byCategory['gateway']).toBe(2);
    expect(c.byCategory['sensor']).toBe(6);
    expect(c.byTransport['in-process']).toBe(2);
    expect(c.byTransport['zigbee'] ?? 0).toBe(zigbee);
    expect(c.byTransport['ble'] ?? 0).toBe(ble);
  });

  it('takes the children offline with their gateway when the broker drops its session, and back when it reconnects', async () => {
    const s = await start();
    const gw = s.population.sessions[0]!;
    const other = s.population.sessions[1]!;
    const reg = s.platform.registry;
    await until(() => s.snapshot().connections.online === s.population.devices.length, 5000, 'every device online');
    // The Aedes client of the gateway's session (Aedes keeps them by client id; not in its typings).
    const aedesClients = (s.broker.aedes as unknown as { clients: Record<string, Client> }).clients;
    const conn = aedesClients[gw.did]?.conn as { destroy(): void } | undefined;
    expect(conn).toBeDefined();
    conn!.destroy();
    await until(() => !reg.isOnline(gw.did) && gw.children.every((c) => !reg.isOnline(c.did)), 5000, 'gateway and children offline');
    expect(reg.isOnline(other.did)).toBe(true);
    expect(other.children.every((c) => reg.isOnline(c.did))).toBe(true);
    expect(s.snapshot().connections.online).toBe(4);
    // The device session reconnects on its own (2 s) and announces itself and its children again.
    await until(() => reg.isOnline(gw.did) && gw.children.every((c) => reg.isOnline(c.did)), 8000, 'gateway and children back online');
    expect(s.snapshot().connections.online).toBe(8);
    // The new session takes the children's commands again.
    const op = await operator(s);
    const child = gw.children[0]!;
    await op.subscribeAsync(`device/${child.did}/up/rpc`, { qos: 1 });
    expect(await readProperty(op, child.did, 1, 2)).toBe(child.model.model);
  });
});

describe('platform registry and a gateway over TCP', () => {
  const track = useCleanup();

  it('counts a BLE child (no state of its own) online with its gateway; marks the children offline when the gateway socket dies (last will, session end)', async () => {
    const b = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: 'op-token-gw' }));
    const GW = '400000001';
    const CHILD = 'lumi.158d0001aabbcc';
    const BLE = 'blt.3.0123456789ab';
    const facts: Record<string, DeviceFacts> = {
      [GW]: { model: GATEWAY, category: 'gateway', region: 'cn', statelessChildren: [BLE] },
      [CHILD]: { model: 'lumi.sensor_magnet.v2', category: 'sensor', region: 'cn', radio: 'zigbee' },
      [BLE]: { model: 'miaomiaoce.sensor_ht.t2', category: 'sensor', region: 'cn', radio: 'ble' },
    };
    const platform = new PlatformService((did) => facts[did]);
    platform.observe(b);
    b.access.registerDevice(GW, { token: 'gw-token', uid: '1000000001', children: [CHILD, BLE] });
    const state = (did: string, event: 'online' | 'offline', parent?: string): string => {
      const p: StatePayload = { device_id: did, device_name: 'test', event, model: facts[did]!.model, timestamp: 5000, uid: 1000000001 };
      if (parent) p.parent_id = parent;
      return JSON.stringify(p);
    };
    const gw = track(await connectTcp(b, {
      clientId: GW, username: GW, password: 'gw-token',
      will: { topic: `device/${GW}/state`, payload: Buffer.from(state(GW, 'offline')), qos: 1, retain: true },
    }));
    await gw.publishAsync(`device/${GW}/state`, state(GW, 'online'), { qos: 1, retain: true });
    await gw.publishAsync(`device/${CHILD}/state`, state(CHILD, 'online', GW), { qos: 1, retain: true });
    await until(() => platform.registry.isOnline(GW) && platform.registry.isOnline(CHILD) && platform.registry.isOnline(BLE), 5000, 'all online');
    expect(platform.snapshot().connections.byTransport).toEqual({ ble: 1, tcp: 1, zigbee: 1 });
    expect(b.counters.rejected).toBe(0); // a gateway may speak for its children

    gw.stream.destroy();
    await until(() => !platform.registry.isOnline(CHILD), 5000, 'the child offline');
    expect(platform.registry.isOnline(BLE)).toBe(false);
    expect(platform.registry.isOnline(GW)).toBe(false);
    expect(platform.snapshot().connections.online).toBe(0);
    expect(platform.snapshot().messages.malformed).toBe(0);
  });
});
