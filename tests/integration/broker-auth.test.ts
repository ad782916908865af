/**
 * Authentication and ACL of the embedded broker (DESIGN.md "Security defaults"), through real
 * MQTT.js clients over both TCP and the in-process pipe.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedBroker, type ClientInfo } from '../../src/broker/broker.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectInProcess, connectTcp, nextMessage, refusalCode, subscribeGranted, until } from '../helpers/mqtt.js';

const OPERATOR_TOKEN = 'op-secret-0123';
const D1 = '100000001';
const D2 = '100000002';
const TOKEN1 = 'tok-d1-aaaaaaaa';
const TOKEN2 = 'tok-d2-bbbbbbbb';
const U1 = '1000000001';
const U2 = '1000000002';
const U1_TOKEN = 'user-1-token';
const U2_TOKEN = 'user-2-token';

type Connect = (broker: EmbeddedBroker, opts?: IClientOptions) => Promise<MqttClient>;

/** Resolves when the client's connection is closed (by the broker); call before the action that closes it. */
function closed(client: MqttClient, ms = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`connection not closed within ${ms} ms`)), ms);
    client.once('close', () => { clearTimeout(t); resolve(); });
  });
}

describe.each<[string, Connect]>([
  ['tcp', connectTcp],
  ['in-process', connectInProcess],
])('broker auth and ACL over %s', (transport, connect) => {
  const track = useCleanup();
  let broker: EmbeddedBroker;
  const open = async (opts: IClientOptions = {}): Promise<MqttClient> => track(await connect(broker, opts));
  const device = (did: string, token: string, extra: IClientOptions = {}): Promise<MqttClient> =>
    open({ clientId: did, username: did, password: token, ...extra });
  const operator = (): Promise<MqttClient> => open({ clientId: `op-${transport}`, username: 'operator', password: OPERATOR_TOKEN });
  const observer = (id = 'observer'): Promise<MqttClient> => open({ clientId: `${id}-${transport}` });

  /**
   * Publish a sentinel after something that must not be delivered, and wait for it: the broker
   * handles one client's packets in order and delivers in emit order, so anything the earlier
   * publish had produced would have arrived before the sentinel.
   */
  async function sentinel(from: MqttClient, to: MqttClient, topic: string): Promise<void> {
    const marker = `sentinel-${Math.random()}`;
    const got = nextMessage(to, (t, p) => t === topic && p === marker);
    await from.publishAsync(topic, marker, { qos: 1 });
    await got;
  }

  beforeEach(async () => {
    broker = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: OPERATOR_TOKEN }));
    broker.access.registerDevice(D1, { token: TOKEN1, uid: U1 });
    broker.access.registerDevice(D2, { token: TOKEN2, uid: U2 });
    broker.access.registerUser(U1, U1_TOKEN);
    broker.access.registerUser(U2, U2_TOKEN);
  });


  it('accepts a registered device (client id = username = did, password = token) as a device principal', async () => {
    const ready: ClientInfo[] = [];
    broker.on('clientReady', (info) => ready.push(info));
    const obs = await observer();
    await obs.subscribeAsync('device/#');
    const d1 = await device(D1, TOKEN1);
    expect(d1.connected).toBe(true);
    await until(() => ready.some((r) => r.clientId === D1), 2000, 'clientReady for the device');
    const info = ready.find((r) => r.clientId === D1)!;
    expect(info.principal).toEqual({ role: 'device', did: D1 });
    expect(info.transport).toBe(transport);
    // It may publish under its own up/ topics.
    const got = nextMessage(obs, (t) => t === `device/${D1}/up/properties_changed/2/1`);
    const payload = JSON.stringify({ params: { did: D1, siid: 2, piid: 1, value: true, ts: 1 } });
    await d1.publishAsync(`device/${D1}/up/properties_changed/2/1`, payload, { qos: 1 });
    expect((await got).payload).toBe(payload);
    expect(broker.counters.rejected).toBe(0);
  });

  it('refuses a device with a wrong token at CONNECT', async () => {
    const code = await refusalCode(connect(broker, { clientId: D1, username: D1, password: 'wrong-token' }));
    expect(code).toBe(4); // bad username or password
    expect(broker.counters.rejectedConnects).toBe(1);
    expect(broker.counters.rejected).toBe(1);
    expect(broker.connectedClients).toBe(0);
  });

  it('refuses a device that connects with a client id other than its did', async () => {
    const code = await refusalCode(connect(broker, { clientId: 'someone-else', username: D1, password: TOKEN1 }));
    expect([2, 4]).toContain(code); // identifier rejected / not authorized
    expect(broker.counters.rejectedConnects).toBe(1);
    expect(broker.connectedClients).toBe(0);
  });

  it("closes a device that publishes under another device's topic; nobody receives the message", async () => {
    const obs = await observer();
    await obs.subscribeAsync('device/#');
    const seen: string[] = [];
    obs.on('message', (t) => seen.push(t));
    const d1 = await device(D1, TOKEN1);
    const d2 = await device(D2, TOKEN2);
    const rejectedBefore = broker.counters.rejected;
    const forged = `device/${D2}/up/properties_changed/2/1`;
    const gone = closed(d1);
    d1.publish(forged, JSON.stringify({ params: { did: D2, siid: 2, piid: 1, value: false, ts: 1 } }), { qos: 0 });
    await gone; // MQTT-3.3.5-2: no negative PUBACK in 3.1.1, the connection is closed
    expect(broker.counters.rejected).toBe(rejectedBefore + 1);
    await sentinel(d2, obs, `device/${D2}/up/properties_changed/2/2`);
    expect(seen).not.toContain(forged);
    // Forging another device's state is refused the same way.
    const d1again = await device(D1, TOKEN1);
    const gone2 = closed(d1again);
    d1again.publish(`device/${D2}/state`, JSON.stringify({ device_id: D2, device_name: 'x', event: 'offline', model: 'x', timestamp: 1, uid: Number(U2) }), { qos: 1 });
    await gone2;
    await sentinel(d2, obs, `device/${D2}/up/properties_changed/2/3`);
    expect(seen).not.toContain(`device/${D2}/state`);
    expect(broker.counters.rejected).toBe(rejectedBefore + 2);
    // And another device's central-hub notification (local-hub profile).
    await obs.subscribeAsync('appMsg/notify/iot/#');
    const d1third = await device(D1, TOKEN1);
    const gone3 = closed(d1third);
    const forgedHub = `appMsg/notify/iot/${D2}/property/2.1`;
    d1third.publish(forgedHub, JSON.stringify({ did: D2, siid: 2, piid: 1, value: false, ts: 1 }), { qos: 1 });
    await gone3;
    await sentinel(d2, obs, `appMsg/notify/iot/${D2}/property/2.4`);
    expect(seen).not.toContain(forgedHub);
    expect(broker.counters.rejected).toBe(rejectedBefore + 3);
  });

  it("ends a gateway's right to a child's topics when the child moves to another gateway, on a session that published there already", async () => {
    // Rights are decided per message, not per session: a session open before the move keeps none of the child's.
    const GW1 = '100000011';
    const GW2 = '100000012';
    const CHILD = '100000013';
    broker.access.registerDevice(GW1, { token: 'gw1-token', uid: U1, children: [CHILD] });
    broker.access.registerDevice(GW2, { token: 'gw2-token', uid: U1 });
    const obs = await observer();
    await obs.subscribeAsync('device/#');
    const seen: string[] = [];
    obs.on('message', (t, p) => seen.push(`${t} ${p.toString()}`));
    const topic = `device/${CHILD}/up/properties_changed/2/1`;
    const gw2 = await device(GW2, 'gw2-token');
    const sent = async (from: MqttClient, payload: string, qos: 0 | 1): Promise<void> => {
      const got = nextMessage(obs, (t, p) => t === topic && p === payload);
      await from.publishAsync(topic, payload, { qos });
      await got;
    };
    for (const qos of [0, 1] as const) {
      // GW1 has the child (again): it publishes for it on both paths (QoS 0 and 1), more than once.
      if (qos === 1) broker.access.addChild(GW1, CHILD);
      const gw1 = await device(GW1, 'gw1-token');
      for (let i = 0; i < 3; i++) {
        await sent(gw1, `gw1 qos0 ${qos}.${i}`, 0);
        await sent(gw1, `gw1 qos1 ${qos}.${i}`, 1);
      }
      // The child is registered under GW2: GW1's next message there is refused, and closes it.
      broker.access.registerDevice(GW2, { token: 'gw2-token', uid: U1, children: [CHILD] });
      const rejectedBefore = broker.counters.rejected;
      const gone = closed(gw1);
      gw1.publish(topic, `forged after the move ${qos}`, { qos });
      await gone;
      expect(broker.counters.rejected).toBe(rejectedBefore + 1);
      await sent(gw2, `gw2 ${qos}`, qos);
      expect(seen.filter((s) => s.includes('forged'))).toEqual([]);
    }
  });

  it("answers SUBACK 0x80 to a device subscribing to another device's down/#, which then receives nothing", async () => {
    const d1 = await device(D1, TOKEN1);
    const rejectedBefore = broker.counters.rejected;
    expect(await subscribeGranted(d1, `device/${D2}/down/#`)).toEqual([128]);
    expect(broker.counters.rejected).toBe(rejectedBefore + 1);
    expect(await subscribeGranted(d1, `device/${D1}/down/#`)).toEqual([0]);
    const seen: string[] = [];
    d1.on('message', (t) => seen.push(t));
    const op = await operator();
    await op.publishAsync(`device/${D2}/down/rpc`, '{"id":1,"method":"get_properties","params":[]}', { qos: 1 });
    await sentinel(op, d1, `device/${D1}/down/rpc`);
    expect(seen).toEqual([`device/${D1}/down/rpc`]);
    expect(d1.connected).toBe(true); // a refused subscription does not end the session
  });

  it('lets an anonymous observer subscribe to device/# and $SYS/# but not publish to device/ (anonymous: all)', async () => {
    broker.access.anonymous = 'all'; // the default before issue 14; private-by-default is tested in broker-privacy.test.ts
    const obs = await observer();
    expect(await subscribeGranted(obs, 'device/#')).toEqual([0]);
    expect(await subscribeGranted(obs, '$SYS/#')).toEqual([0]);
    // $SYS/# really is delivered: the broker announces new clients there.
    const announced = nextMessage(obs, (t, p) => t.startsWith('$SYS/') && t.endsWith('/new/clients') && p === D1);
    const d1 = await device(D1, TOKEN1);
    await announced;
    await d1.subscribeAsync(`device/${D1}/down/#`);
    const seen: string[] = [];
    d1.on('message', (t, p) => seen.push(`${t} ${p.toString()}`));
    const rejectedBefore = broker.counters.rejected;
    const intruder = await observer('intruder');
    const gone = closed(intruder);
    intruder.publish(`device/${D1}/down/rpc`, 'forged', { qos: 0 });
    await gone;
    expect(broker.counters.rejected).toBe(rejectedBefore + 1);
    const op = await operator();
    await sentinel(op, d1, `device/${D1}/down/rpc`);
    expect(seen.some((s) => s.endsWith(' forged'))).toBe(false);
  });

  it("lets the operator publish to any device's down/rpc, and the device receives it", async () => {
    const d1 = await device(D1, TOKEN1);
    const d2 = await device(D2, TOKEN2);
    await d1.subscribeAsync(`device/${D1}/down/#`, { qos: 1 });
    await d2.subscribeAsync(`device/${D2}/down/#`, { qos: 1 });
    const op = await operator();
    const cmd = JSON.stringify({ id: 7, method: 'get_properties', params: [{ did: D2, siid: 2, piid: 1 }] });
    const at2 = nextMessage(d2, (t) => t === `device/${D2}/down/rpc`);
    await op.publishAsync(`device/${D2}/down/rpc`, cmd, { qos: 1 });
    expect((await at2).payload).toBe(cmd);
    const at1 = nextMessage(d1, (t) => t === `device/${D1}/down/rpc`);
    await op.publishAsync(`device/${D1}/down/rpc`, 'x', { qos: 1 });
    expect((await at1).payload).toBe('x');
    expect(op.connected).toBe(true);
    expect(broker.counters.rejected).toBe(0);
  });

  it('refuses a wrong operator token', async () => {
    const code = await refusalCode(connect(broker, { clientId: 'op', username: 'operator', password: 'not-the-token' }));
    expect(code).toBe(4);
    expect(broker.counters.rejectedConnects).toBe(1);
  });

  // A client id that is a registered did is usable only with that device's credentials: otherwise
  // anyone could CONNECT with it and Aedes would close the device's session (MQTT-3.1.4-2 takeover).
  it("does not let an anonymous client take over a device's client id (session takeover)", async () => {
    const obs = await observer('takeover-watch');
    await obs.subscribeAsync(['device/+/state', 'check/#'], { qos: 1 });
    const seen: string[] = [];
    obs.on('message', (t, p) => seen.push(`${t} ${p.toString()}`));
    const d1 = await device(D1, TOKEN1, { will: { topic: `device/${D1}/state`, payload: Buffer.from('offline-will'), qos: 1, retain: true } });
    let d1Closed = false;
    d1.on('close', () => { d1Closed = true; });
    const code = await refusalCode(connect(broker, { clientId: D1 })); // no username, no password
    expect(code).toBeGreaterThan(0);
    const op = await operator();
    await sentinel(op, obs, 'check/takeover');
    expect(d1Closed).toBe(false);
    expect(d1.connected).toBe(true);
    expect(seen.some((s) => s.endsWith(' offline-will'))).toBe(false);
  });

  it("lets an app user command its own device but not another user's", async () => {
    const d1 = await device(D1, TOKEN1);
    const d2 = await device(D2, TOKEN2);
    await d1.subscribeAsync(`device/${D1}/down/#`, { qos: 1 });
    await d2.subscribeAsync(`device/${D2}/down/#`, { qos: 1 });
    const seen2: string[] = [];
    d2.on('message', (t, p) => seen2.push(`${t} ${p.toString()}`));
    const app = await open({ clientId: `app-${U1}-${transport}`, username: `app:${U1}`, password: U1_TOKEN });
    const own = nextMessage(d1, (t, p) => t === `device/${D1}/down/rpc` && p === 'from-owner');
    await app.publishAsync(`device/${D1}/down/rpc`, 'from-owner', { qos: 1 });
    await own;
    const rejectedBefore = broker.counters.rejected;
    const gone = closed(app);
    app.publish(`device/${D2}/down/rpc`, 'from-stranger', { qos: 0 });
    await gone;
    expect(broker.counters.rejected).toBe(rejectedBefore + 1);
    const op = await operator();
    await sentinel(op, d2, `device/${D2}/down/rpc`);
    expect(seen2.some((s) => s.endsWith(' from-stranger'))).toBe(false);
    // A wrong app token is refused at CONNECT.
    expect(await refusalCode(connect(broker, { clientId: 'app-bad', username: `app:${U1}`, password: U2_TOKEN }))).toBe(4);
  });
});

describe('broker auth over MQTT/WebSocket', () => {
  const track = useCleanup();

  it('authenticates devices on ws://HOST:PORT/mqtt with the same rules', async () => {
    const b = track(await EmbeddedBroker.start({ mqttPort: 0, wsPort: 0, operatorToken: OPERATOR_TOKEN }));
    b.access.registerDevice(D1, { token: TOKEN1, uid: U1 });
    expect(b.wsAddress?.host).toBe('127.0.0.1'); // loopback by default
    const url = `ws://${b.wsAddress!.host}:${b.wsAddress!.port}/mqtt`;
    const ready: ClientInfo[] = [];
    b.on('clientReady', (info) => ready.push(info));
    const d1 = track(await mqtt.connectAsync(url, { clientId: D1, username: D1, password: TOKEN1, reconnectPeriod: 0, connectTimeout: 5000 }));
    await until(() => ready.length === 1, 2000, 'clientReady');
    expect(ready[0]).toMatchObject({ clientId: D1, principal: { role: 'device', did: D1 }, transport: 'ws' });
    await expect(mqtt.connectAsync(url, { clientId: D1, username: D1, password: 'nope', reconnectPeriod: 0, connectTimeout: 5000 }))
      .rejects.toMatchObject({ code: 4 });
    expect(b.counters.rejectedConnects).toBe(1);
    const gone = new Promise<void>((resolve) => d1.once('close', () => resolve()));
    d1.publish(`device/${D2}/up/rpc`, '{}', { qos: 0 });
    await gone;
    expect(b.counters.rejected).toBe(2);
  });
});
