/**
 * Write batching on every transport (src/broker/write-batching.ts): deliveries to an
 * MQTT-over-WebSocket subscriber go out coalesced, several PUBLISHes to a WebSocket frame (each
 * was five frames before: mqtt-packet writes a PUBLISH in five pieces), complete and in order.
 */
import mqttPacket, { type Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectInProcess, until } from '../helpers/mqtt.js';
import { connectPacket, encode } from '../helpers/mqtt-bytes.js';

const DID = '500000009';
const N = 200;

describe('write batching over MQTT-over-WebSocket', () => {
  const track = useCleanup();

  it('delivers a burst in fewer WebSocket frames than messages, every message whole and in order', async () => {
    const b = track(await EmbeddedBroker.start({ mqttPort: 0, wsPort: 0, operatorToken: 'batching-op-token' }));
    b.access.registerDevice(DID, { token: 'dev-token', uid: '1000000009' });
    const ws = new WebSocket(`ws://127.0.0.1:${b.wsAddress!.port}/mqtt`, 'mqtt');
    track(() => ws.terminate());
    const packets: Packet[] = [];
    let frames = 0;
    const parser = mqttPacket.parser();
    parser.on('packet', (p: Packet) => packets.push(p));
    ws.on('message', (data: Buffer) => {
      frames++;
      parser.parse(data);
    });
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    ws.send(connectPacket({ clientId: 'ws-batching-sub', keepalive: 60 }));
    ws.send(encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `device/${DID}/up/#`, qos: 0 }] }));
    await until(() => packets.some((p) => p.cmd === 'suback'), 5000, 'SUBACK');
    const framesBefore = frames;
    const packetsBefore = packets.length;

    const dev = track(await connectInProcess(b, { clientId: DID, username: DID, password: 'dev-token' }));
    const topic = `device/${DID}/up/properties_changed/2/1`;
    for (let i = 0; i < N; i++) dev.publish(topic, `{"n":${i}}`, { qos: 0 });
    await until(() => packets.length - packetsBefore === N, 10_000, `${N} PUBLISHes over WebSocket`);

    const got = packets.slice(packetsBefore).map((p) => (p.cmd === 'publish' ? `${p.topic} ${p.payload.toString()}` : p.cmd));
    expect(got).toEqual(Array.from({ length: N }, (_, i) => `${topic} {"n":${i}}`));
    expect(frames - framesBefore).toBeLessThan(N);
  });
});
