/**
 * Retained messages are kept as copies of their bytes (src/broker/persistence.ts keeps them as
 * one-byte strings, not as views into the bytes they were read from): every byte value comes back
 * as it was published, with its QoS and the retain flag, on literal and wildcard filters, through
 * the real embedded broker and real MQTT.js clients over TCP; and a retained message does not
 * change when the buffer it came in is written over afterwards.
 */
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { boundedMemoryPersistence } from '../../src/broker/persistence.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectTcp } from '../helpers/mqtt.js';

const OPERATOR_TOKEN = 'retained-bytes-op-token';

/** Every byte value, then bytes that are not UTF-8 (a lone continuation byte, a cut sequence). */
const BINARY = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from([0x80, 0xe2, 0x82, 0xff, 0x00])]);
const TEXT = Buffer.from('{"did":"1234","value":"café ☕ 温度"}', 'utf8');

interface Got { topic: string; payload: Buffer; qos: number; retain: boolean }

/** Collect `n` messages `client` receives after subscribing to `filter`. */
async function retainedOn(client: MqttClient, filter: string, n: number): Promise<Got[]> {
  const got: Got[] = [];
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${got.length} of ${n} retained messages on ${filter} within 5 s`)), 5000);
    client.on('message', (topic, payload, packet) => {
      got.push({ topic, payload: Buffer.from(payload), qos: packet.qos, retain: packet.retain });
      if (got.length === n) { clearTimeout(timer); resolve(); }
    });
  });
  await client.subscribeAsync(filter, { qos: 1 });
  await done;
  return got.sort((a, b) => a.topic.localeCompare(b.topic));
}

describe('retained messages', () => {
  const track = useCleanup();

  it('come back byte for byte, with their QoS, on literal and wildcard filters', async () => {
    const b = track(await EmbeddedBroker.start({ mqttPort: 0, wsPort: null, operatorToken: OPERATOR_TOKEN }));
    const op = (clientId: string): Promise<MqttClient> => connectTcp(b, { clientId, username: 'operator', password: OPERATOR_TOKEN }).then((c) => track(c));
    const publisher = await op('ops-retained-publisher');
    await publisher.publishAsync('ops/kept/binary', BINARY, { qos: 1, retain: true });
    await publisher.publishAsync('ops/kept/text', TEXT, { qos: 0, retain: true });
    // Replaced: the second one is what stays.
    await publisher.publishAsync('ops/kept/text', Buffer.concat([TEXT, Buffer.from([0xfe])]), { qos: 0, retain: true });
    await publisher.publishAsync('ops/kept/text', TEXT, { qos: 0, retain: true });

    const literal = await retainedOn(await op('ops-retained-literal'), 'ops/kept/binary', 1);
    expect(literal).toEqual([{ topic: 'ops/kept/binary', payload: BINARY, qos: 1, retain: true }]);

    const wild = await retainedOn(await op('ops-retained-wild'), 'ops/kept/+', 2);
    expect(wild).toEqual([
      { topic: 'ops/kept/binary', payload: BINARY, qos: 1, retain: true },
      { topic: 'ops/kept/text', payload: TEXT, qos: 0, retain: true },
    ]);
    expect(b.limitReport().usage).toMatchObject({ retainedMessages: 2, retainedBytes: 'ops/kept/binary'.length + BINARY.length + 'ops/kept/text'.length + TEXT.length });
  });

  it('do not change when the buffer they were read from is written over', async () => {
    const { persistence } = boundedMemoryPersistence({ maxRetainedMessages: 10, maxRetainedBytes: 1 << 20, maxMessages: 10, maxBytes: 1 << 20 }, (_id, p) => p);
    const store = persistence as {
      storeRetained(p: { topic: string; payload: Buffer; qos: number; cmd: string; retain: boolean }): Promise<void>;
      createRetainedStreamCombi(patterns: string[]): AsyncIterable<{ topic: string; payload: Buffer; qos: number }>;
    };
    // A chunk of a connection's bytes with the payload in the middle, as Aedes' parser hands it over.
    const chunk = Buffer.concat([Buffer.from('before'), BINARY, Buffer.from('after')]);
    await store.storeRetained({ cmd: 'publish', topic: 'ops/view', payload: chunk.subarray(6, 6 + BINARY.length), qos: 1, retain: true });
    chunk.fill(0x41);
    const got: Array<{ topic: string; payload: Buffer; qos: number }> = [];
    for await (const p of store.createRetainedStreamCombi(['ops/view', 'ops/#'])) got.push({ topic: p.topic, payload: Buffer.from(p.payload), qos: p.qos });
    expect(got).toEqual([{ topic: 'ops/view', payload: BINARY, qos: 1 }, { topic: 'ops/view', payload: BINARY, qos: 1 }]);
  });
});
