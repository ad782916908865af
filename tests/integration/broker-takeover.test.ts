/**
 * Issue 14, items 3 and 4, on the real embedded broker with real MQTT.js clients over TCP: a client
 * id that belongs to an account is usable only with that account's credentials (an anonymous
 * CONNECT with an app user's `app-{uid}`, or with the id the operator is using, used to close the
 * holder's session, again and again), and CONNECTs MQTT 3.1.1 refuses are refused.
 */
import type { MqttClient } from 'mqtt';
import { beforeEach, describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectTcp, nextMessage, refusalCode } from '../helpers/mqtt.js';
import { connectPacket, rawTcp } from '../helpers/raw-mqtt.js';

const OPERATOR_TOKEN = 'takeover-op-token';
const DID = '100000077';
const UID = '1000000077';
const OTHER_UID = '1000000078';

describe('client ids belong to accounts', () => {
  const track = useCleanup();
  let broker: EmbeddedBroker;

  beforeEach(async () => {
    broker = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: OPERATOR_TOKEN }));
    broker.access.registerDevice(DID, { token: 'takeover-device', uid: UID });
    broker.access.registerUser(UID, 'user-token-77');
    broker.access.registerUser(OTHER_UID, 'user-token-78');
  });

  /** A connected client that records whether the broker ever closed it. */
  async function holder(opts: Parameters<typeof connectTcp>[1]): Promise<{ client: MqttClient; closes: () => number }> {
    const client = track(await connectTcp(broker, opts));
    let closes = 0;
    client.on('close', () => { closes++; });
    return { client, closes: () => closes };
  }

  /** Proves the holder still has its session: a message it publishes comes back to it. */
  async function stillServed(client: MqttClient, topic: string): Promise<void> {
    await client.subscribeAsync(topic, { qos: 1 });
    const back = nextMessage(client, (t) => t === topic);
    await client.publishAsync(topic, 'still here', { qos: 1 });
    await back;
  }

  it("refuses an anonymous CONNECT with an app user's client id, however often, and the user stays connected", async () => {
    const app = await holder({ clientId: `app-${UID}`, username: `app:${UID}`, password: 'user-token-77' });
    for (let i = 0; i < 3; i++) {
      expect(await refusalCode(connectTcp(broker, { clientId: `app-${UID}` }))).toBe(2);
    }
    // Nor may another user, or anyone, use an id of the app namespace.
    expect(await refusalCode(connectTcp(broker, { clientId: `app-${UID}`, username: `app:${OTHER_UID}`, password: 'user-token-78' }))).toBe(2);
    expect(await refusalCode(connectTcp(broker, { clientId: 'app-anything' }))).toBe(2);
    await stillServed(app.client, `app/${UID}/check`);
    expect(app.closes()).toBe(0);
    expect([...broker.rejectReasons].filter(([reason]) => reason.includes('belong to app users')).map(([, n]) => n)).toEqual([5]);
    // The user's own suffixed ids are its own.
    track(await connectTcp(broker, { clientId: `app-${UID}-tablet`, username: `app:${UID}`, password: 'user-token-77' }));
  });

  it("refuses an anonymous CONNECT with the client id the operator is using, and the operator stays connected", async () => {
    const op = await holder({ clientId: 'ops-console', username: 'operator', password: OPERATOR_TOKEN });
    for (let i = 0; i < 3; i++) expect(await refusalCode(connectTcp(broker, { clientId: 'ops-console' }))).toBe(2);
    // An app user may not take it either; the simulator's own operator ids are the operator's even when unused.
    expect(await refusalCode(connectTcp(broker, { clientId: 'ops-console', username: `app:${UID}`, password: 'user-token-77' }))).toBe(2);
    expect(await refusalCode(connectTcp(broker, { clientId: 'aiot-sim-operator-1a2b3c4d' }))).toBe(2);
    await stillServed(op.client, 'ops/check');
    expect(op.closes()).toBe(0);
    // The operator itself may take its own id over (MQTT-3.1.4-2), as before.
    const again = track(await connectTcp(broker, { clientId: 'ops-console', username: 'operator', password: OPERATOR_TOKEN }));
    expect(again.connected).toBe(true);
  });

  it("keeps a persistent session's id its owner's after it disconnects: nobody else resumes it", async () => {
    const op = track(await connectTcp(broker, { clientId: 'ops-persistent', clean: false, username: 'operator', password: OPERATOR_TOKEN }));
    await op.subscribeAsync('ops/queue', { qos: 1 });
    await op.endAsync();
    expect(await refusalCode(connectTcp(broker, { clientId: 'ops-persistent', clean: false }))).toBe(2);
    expect(await refusalCode(connectTcp(broker, { clientId: 'ops-persistent', clean: true }))).toBe(2);
    const back = track(await connectTcp(broker, { clientId: 'ops-persistent', clean: false, username: 'operator', password: OPERATOR_TOKEN }));
    expect(back.connected).toBe(true);
  });

  it('frees a clean session\'s id when it ends', async () => {
    const op = track(await connectTcp(broker, { clientId: 'ops-once', username: 'operator', password: OPERATOR_TOKEN }));
    await op.endAsync();
    const anon = track(await connectTcp(broker, { clientId: 'ops-once' }));
    expect(anon.connected).toBe(true);
  });

  it('lets a device take its own session over (MQTT-3.1.4-2): the first connection closes, the broker announces each on $SYS', async () => {
    const op = track(await connectTcp(broker, { clientId: 'ops-watch', username: 'operator', password: OPERATOR_TOKEN }));
    await op.subscribeAsync('$SYS/+/new/clients', { qos: 0 });
    const announced: string[] = [];
    op.on('message', (_t, p) => { if (p.toString() === DID) announced.push(DID); });
    const first = await holder({ clientId: DID, username: DID, password: 'takeover-device' });
    const second = await holder({ clientId: DID, username: DID, password: 'takeover-device' });
    await expect.poll(() => first.closes()).toBe(1);
    await stillServed(op, 'ops/after-takeover');
    expect(second.client.connected).toBe(true);
    expect(second.closes()).toBe(0);
    expect(announced).toEqual([DID, DID]);
  });

  it("refuses a device's did to anyone but that device (as before)", async () => {
    const device = await holder({ clientId: DID, username: DID, password: 'takeover-device' });
    expect(await refusalCode(connectTcp(broker, { clientId: DID }))).toBe(2);
    expect(await refusalCode(connectTcp(broker, { clientId: DID, username: 'operator', password: OPERATOR_TOKEN }))).toBe(2);
    expect(device.closes()).toBe(0);
  });
});

describe('CONNECTs that MQTT 3.1.1 refuses', () => {
  const track = useCleanup();

  it('answers an empty client id with CleanSession=0 with return code 2 and closes (MQTT-3.1.3-8)', async () => {
    const broker = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: OPERATOR_TOKEN }));
    const raw = track(await rawTcp(broker.mqttAddress!.port));
    // By hand: mqtt-packet will not encode this CONNECT. Protocol "MQTT" level 4, flags 0 (CleanSession=0), keep-alive 0, client id "".
    raw.write(Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0, 0, 0, 0, 0]));
    expect(await raw.waitFor('connack')).toMatchObject({ returnCode: 2 });
    await raw.whenClosed();
    expect(broker.rejectReasons.get('connect refused: an empty client id needs CleanSession=1 (MQTT-3.1.3-8)')).toBe(1);
    // With CleanSession=1 the broker assigns an id (MQTT-3.1.3-6), as mosquitto_sub relies on.
    const ok = track(await rawTcp(broker.mqttAddress!.port));
    ok.write(connectPacket({ clientId: '', clean: true, keepalive: 60 }));
    expect(await ok.waitFor('connack')).toMatchObject({ returnCode: 0 });
  });

  it('refuses a client id longer than the cap with return code 2 (a 65,000-character one was accepted)', async () => {
    const broker = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: OPERATOR_TOKEN }));
    expect(await refusalCode(connectTcp(broker, { clientId: 'x'.repeat(65_000) }))).toBe(2);
    expect(await refusalCode(connectTcp(broker, { clientId: 'x'.repeat(129) }))).toBe(2);
    expect(broker.limitReport().hits.clientIdLength).toBe(2);
    track(await connectTcp(broker, { clientId: 'x'.repeat(128) }));
  });

  it('closes a CONNECT with U+0000 in its client id or will topic (MQTT-1.5.3-2)', async () => {
    const broker = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: OPERATOR_TOKEN }));
    for (const packet of [connectPacket({ clientId: 'nul\u0000id' }), connectPacket({ clientId: 'nul-will', will: { topic: 'last/\u0000words', payload: 'x' } })]) {
      const raw = track(await rawTcp(broker.mqttAddress!.port));
      raw.write(packet);
      await raw.whenClosed();
      expect(raw.packets.filter((p) => p.cmd === 'connack' && p.returnCode === 0)).toEqual([]);
    }
    expect(broker.counters.rejectedPackets).toBe(2);
  });

  it('refuses a will the client could not publish itself with return code 5', async () => {
    const broker = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: OPERATOR_TOKEN }));
    broker.access.registerDevice(DID, { token: 'takeover-device', uid: UID });
    const forged = { topic: `device/${DID}/state`, payload: '{"event":"offline"}', qos: 1 as const, retain: true };
    expect(await refusalCode(connectTcp(broker, { clientId: 'forger', will: forged }))).toBe(5);
    track(await connectTcp(broker, { clientId: DID, username: DID, password: 'takeover-device', will: forged }));
  });
});
