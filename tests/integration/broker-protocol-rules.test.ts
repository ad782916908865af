/**
 * What MQTT 3.1.1 forbids and Aedes' parser lets through, on every transport of the real embedded
 * broker: a topic, topic filter or client id of ill-formed UTF-8 (MQTT-1.5.3-1), packet id 0
 * (MQTT-2.3.1-1), an UNSUBSCRIBE without a filter (MQTT-3.10.3-2), a password without a user name
 * (MQTT-3.1.2-22). Each is a protocol error: the broker closes the connection after serving what came before, counts the refusal under
 * its reason, delivers nothing of the bad packet to anyone (read as U+FFFD it would reach another
 * topic's subscribers), publishes the client's will, and everybody else carries on. U+FFFD sent
 * well-formed is an ordinary character.
 */
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedBroker, type Transport } from '../../src/broker/broker.js';
import { connectTcp, nextMessage, until } from '../helpers/mqtt.js';
import { encode, fixedHeader, publishPacket, rawConnect, rawStream, type RawClient } from '../helpers/raw-mqtt.js';

const OPERATOR_TOKEN = 'op-utf8-token-1';

/** A PUBLISH whose topic is `topic`'s bytes as they are (mqtt-packet would encode a string). */
function publishBytes(topic: Buffer, payload: string, qos: 0 | 1): Buffer {
  const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 0xff]), topic, qos ? Buffer.from([0, 1]) : Buffer.alloc(0), Buffer.from(payload)]);
  return Buffer.concat([fixedHeader(0x30 | (qos << 1), body.length), body]);
}

/** A SUBSCRIBE of one filter given as bytes. */
function subscribeBytes(filter: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from([0, 1, filter.length >> 8, filter.length & 0xff]), filter, Buffer.from([0])]);
  return Buffer.concat([fixedHeader(0x82, body.length), body]);
}

describe.each<Transport>(['tcp', 'ws', 'in-process'])('what MQTT 3.1.1 forbids and Aedes lets through, over %s', (transport) => {
  let broker: EmbeddedBroker | null = null;
  const clients: MqttClient[] = [];
  const raws: RawClient[] = [];

  afterEach(async () => {
    for (const r of raws.splice(0)) r.destroy();
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
    await broker?.close();
    broker = null;
  });

  /** A broker, a watcher of `utf8/#` and the topics it received, and a raw client connected as the operator. */
  async function setUp(): Promise<{ b: EmbeddedBroker; watcher: MqttClient; seen: string[]; raw: RawClient & { whenClosed(ms?: number): Promise<void> } }> {
    const b = await EmbeddedBroker.start({ mqttPort: 0, wsPort: 0, operatorToken: OPERATOR_TOKEN });
    broker = b;
    const watcher = await connectTcp(b, { clientId: 'utf8-watcher', username: 'operator', password: OPERATOR_TOKEN });
    clients.push(watcher);
    await watcher.subscribeAsync('utf8/#');
    const seen: string[] = [];
    watcher.on('message', (topic) => seen.push(topic));
    const raw = await rawConnect(b, transport, { clientId: `utf8-${transport}`, username: 'operator', password: OPERATOR_TOKEN });
    raws.push(raw);
    return { b, watcher, seen, raw };
  }

  const cases: Array<[string, Buffer, RegExp]> = [
    ['a byte never in UTF-8', Buffer.from([0x75, 0x74, 0x66, 0x38, 0x2f, 0xff]), /^bad packet: ill-formed UTF-8 in the PUBLISH topic$/],
    ['an encoded surrogate', Buffer.concat([Buffer.from('utf8/'), Buffer.from([0xed, 0xa0, 0x80])]), /^bad packet: ill-formed UTF-8 in the PUBLISH topic$/],
    ['a sequence cut short', Buffer.concat([Buffer.from('utf8/'), Buffer.from([0xe2, 0x82]), Buffer.from('/x')]), /^bad packet: ill-formed UTF-8 in the PUBLISH topic$/],
  ];
  for (const qos of [0, 1] as const) {
    it.each(cases)(`closes a client publishing at QoS ${qos} to a topic with %s, after serving what came before`, async (_what, topic, reason) => {
      const { b, watcher, seen, raw } = await setUp();
      const before = b.counters.rejectedPackets;
      const served = nextMessage(watcher, (t) => t === 'utf8/before');
      raw.write(Buffer.concat([publishPacket('utf8/before', 'fine'), publishBytes(topic, 'bad', qos), publishPacket('utf8/after-bad', 'never read')]));
      expect((await served).payload).toBe('fine');
      await raw.whenClosed();
      expect(b.counters.rejectedPackets).toBe(before + 1);
      expect([...b.rejectReasons.keys()].filter((k) => reason.test(k))).toHaveLength(1);
      await until(() => b.connectedClients === 1, 5000, 'the refused client gone from the broker');
      // Nobody got the bad packet (as U+FFFD or otherwise) nor what followed it; the watcher carries on.
      const marker = nextMessage(watcher, (t) => t === 'utf8/marker');
      await watcher.publishAsync('utf8/marker', 'still here');
      expect((await marker).payload).toBe('still here');
      expect(seen).toEqual(['utf8/before', 'utf8/marker']);
    });
  }

  it('closes a client subscribing to a filter of ill-formed UTF-8, and delivers U+FFFD sent well-formed', async () => {
    const { b, watcher, seen, raw } = await setUp();
    const refusals: Array<[string, string]> = [];
    b.on('rejected', (reason: string, clientId: string) => refusals.push([reason, clientId]));
    // U+FFFD as such (EF BF BD) is a character like any other.
    const delivered = nextMessage(watcher, (t) => t === 'utf8/\uFFFD');
    raw.write(publishPacket('utf8/\uFFFD', 'replacement character'));
    expect((await delivered).payload).toBe('replacement character');
    raw.write(subscribeBytes(Buffer.from([0x75, 0x74, 0x66, 0x38, 0x2f, 0xc0, 0xaf])));
    await raw.whenClosed();
    expect(raw.packets.some((p) => p.cmd === 'suback')).toBe(false);
    expect(b.rejectReasons.get('bad packet: ill-formed UTF-8 in the SUBSCRIBE topic filter')).toBe(1);
    expect(refusals).toContainEqual(['bad packet: ill-formed UTF-8 in the SUBSCRIBE topic filter: 757466382fc0af', `utf8-${transport}`]);
    expect(seen).toEqual(['utf8/\uFFFD']);
  });

  it('closes a client unsubscribing from a filter MQTT does not allow (no Aedes hook sees an UNSUBSCRIBE), after serving a valid one', async () => {
    const { b, raw } = await setUp();
    raw.write(encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'utf8/+', qos: 0 }] }));
    await raw.waitFor('suback');
    raw.write(encode({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['utf8/+'] }));
    await raw.waitFor('unsuback');
    raw.write(encode({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['utf8/\u0000'] }));
    await raw.whenClosed();
    expect(raw.packets.filter((p) => p.cmd === 'unsuback')).toHaveLength(1);
    expect(b.rejectReasons.get('bad packet: unsubscribe: a topic filter must not contain U+0000')).toBe(1);
  });

  it('closes a client sending a QoS 1 PUBLISH with packet id 0, unacknowledged and undelivered, and one sending an empty UNSUBSCRIBE', async () => {
    const { b, seen, raw } = await setUp();
    const idZero = Buffer.concat([Buffer.from([0, 6]), Buffer.from('utf8/z'), Buffer.from([0, 0]), Buffer.from('x')]);
    raw.write(Buffer.concat([fixedHeader(0x32, idZero.length), idZero]));
    await raw.whenClosed();
    expect(raw.packets.some((p) => p.cmd === 'puback')).toBe(false);
    expect(b.rejectReasons.get('bad packet: publish: packet identifier 0 (MQTT-2.3.1-1)')).toBe(1);
    const other = await rawConnect(b, transport, { clientId: `utf8-${transport}-2`, username: 'operator', password: OPERATOR_TOKEN });
    raws.push(other);
    other.write(Buffer.concat([fixedHeader(0xa2, 2), Buffer.from([0, 9])]));
    await other.whenClosed();
    expect(other.packets.some((p) => p.cmd === 'unsuback')).toBe(false);
    expect(b.rejectReasons.get('bad packet: unsubscribe: no topic filter (MQTT-3.10.3-2)')).toBe(1);
    expect(seen).toEqual([]);
  });

  /** What the broker sent to a raw connection that wrote the CONNECT of `body`, once it closed it. */
  async function answerToConnect(b: EmbeddedBroker, body: Buffer): Promise<Buffer> {
    const s = await rawStream(b, transport);
    const got: Buffer[] = [];
    let closed = false;
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => undefined);
    s.on('end', () => { closed = true; });
    s.on('close', () => { closed = true; });
    s.write(Buffer.concat([fixedHeader(0x10, body.length), body]));
    await until(() => closed, 5000, 'the connection closed');
    s.destroy();
    return Buffer.concat(got);
  }

  it('refuses a CONNECT whose client id is ill-formed UTF-8, or with a password and no user name, without a CONNACK, and serves the next client', async () => {
    const b = await EmbeddedBroker.start({ mqttPort: 0, wsPort: 0, operatorToken: OPERATOR_TOKEN });
    broker = b;
    const clientId = Buffer.from([0x64, 0x65, 0x76, 0x2d, 0xed, 0xa0, 0x80]); // "dev-" and an encoded surrogate
    const mqtt = Buffer.concat([Buffer.from([0, 4]), Buffer.from('MQTT')]);
    expect(await answerToConnect(b, Buffer.concat([mqtt, Buffer.from([4, 0x02, 0, 60, 0, clientId.length]), clientId]))).toHaveLength(0);
    expect(b.rejectReasons.get('bad packet: ill-formed UTF-8 in the client identifier')).toBe(1);
    // A password without a user name (MQTT-3.1.2-22) is refused alike: not taken for an anonymous client.
    expect(await answerToConnect(b, Buffer.concat([mqtt, Buffer.from([4, 0x42, 0, 60, 0, 2]), Buffer.from('c9'), Buffer.from([0, 2]), Buffer.from('pw')]))).toHaveLength(0);
    expect(b.rejectReasons.get('bad packet: CONNECT: a password without a username (MQTT-3.1.2-22)')).toBe(1);
    expect(b.connectedClients).toBe(0);
    const next = await rawConnect(b, transport, { clientId: 'dev-ok', username: 'operator', password: OPERATOR_TOKEN });
    raws.push(next);
    expect(b.connectedClients).toBe(1);
  });
});
