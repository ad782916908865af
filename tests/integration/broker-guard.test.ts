/**
 * The maximum packet size on every transport of the real embedded broker (TCP, MQTT over
 * WebSocket, the in-process pipe): a client announcing a packet over the limit is cut off at
 * once and counted, what it sent before is served, its will is published, and other clients carry on.
 */
import type { MqttClient } from 'mqtt';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedBroker, type Transport } from '../../src/broker/broker.js';
import { connectTcp, nextMessage, until } from '../helpers/mqtt.js';
import { encode, fixedHeader, publishPacket, rawStream } from '../helpers/raw-mqtt.js';

const OPERATOR_TOKEN = 'op-guard-token-1';

describe.each<Transport>(['tcp', 'ws', 'in-process'])('the packet size guard over %s', (transport) => {
  let broker: EmbeddedBroker | null = null;
  const clients: MqttClient[] = [];
  const streams: Duplex[] = [];

  afterEach(async () => {
    for (const s of streams.splice(0)) s.destroy();
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true).catch(() => undefined)));
    await broker?.close();
    broker = null;
  });

  it('cuts off a client announcing a packet over the limit, after serving what came before', async () => {
    const b = await EmbeddedBroker.start({ mqttPort: 0, wsPort: 0, operatorToken: OPERATOR_TOKEN, maxPacketSize: 4096 });
    broker = b;
    const watcher = await connectTcp(b, { clientId: 'guard-watcher', username: 'operator', password: OPERATOR_TOKEN });
    clients.push(watcher);
    await watcher.subscribeAsync('guard/#');

    const raw = await rawStream(b, transport);
    streams.push(raw);
    const received: Buffer[] = [];
    let closed = false;
    raw.on('data', (d: Buffer) => received.push(d));
    raw.on('error', () => undefined);
    // The broker's end closing shows as 'end' or 'close' depending on the stream (a WebSocket stream emits no 'close').
    raw.on('end', () => { closed = true; });
    raw.on('close', () => { closed = true; });
    raw.write(encode({
      cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `guard-${transport}`, keepalive: 0, username: 'operator', password: Buffer.from(OPERATOR_TOKEN),
      will: { topic: `guard/will/${transport}`, payload: Buffer.from('gone'), qos: 0, retain: false },
    }));
    await until(() => Buffer.concat(received).includes(Buffer.from([0x20, 0x02, 0x00, 0x00])), 5000, 'CONNACK accepted');

    expect(b.connectedClients).toBe(2);
    const before = b.counters.rejectedPackets;
    const served = nextMessage(watcher, (topic) => topic === `guard/${transport}`);
    const will = nextMessage(watcher, (topic) => topic === `guard/will/${transport}`);
    // One write: a packet within the limit, then a header announcing one far over it.
    raw.write(Buffer.concat([publishPacket(`guard/${transport}`, 'before the bad one'), fixedHeader(0x30, 5000), Buffer.alloc(64, 0x41)]));
    expect((await served).payload).toBe('before the bad one');
    await until(() => closed, 5000, 'the offending connection closed');
    expect(b.counters.rejectedPackets).toBe(before + 1);
    expect(b.rejectReasons.get('bad packet: packet too large')).toBe(1);
    // The guard destroys the connection without an error: Aedes hears of it all the same (a
    // socket by its 'close' alone), publishes the will and lets the client go.
    expect((await will).payload).toBe('gone');
    await until(() => b.connectedClients === 1, 5000, 'the cut-off client gone from the broker');

    // Everybody else carries on.
    const after = nextMessage(watcher, (topic) => topic === 'guard/after');
    await watcher.publishAsync('guard/after', 'still here');
    expect((await after).payload).toBe('still here');
  });
});

describe('connections that never sent CONNECT', () => {
  let broker: EmbeddedBroker | null = null;
  afterEach(async () => {
    await broker?.close();
    broker = null;
  });

  /** Resolves when `s` has seen the broker's end of the connection. */
  const ended = (s: Duplex): Promise<void> => new Promise((resolve) => {
    s.on('error', () => undefined);
    s.once('end', () => resolve());
    s.once('close', () => resolve());
    s.resume();
  });

  it.each<Transport>(['tcp', 'ws', 'in-process'])('are closed when the broker goes down, and do not hold close() up (%s)', async (transport) => {
    const b = await EmbeddedBroker.start({ mqttPort: 0, wsPort: 0, operatorToken: OPERATOR_TOKEN });
    broker = b;
    const first = await rawStream(b, transport);
    const firstEnded = ended(first);
    await b.goDown();
    await firstEnded;
    await b.comeUp();
    const second = await rawStream(b, transport);
    const secondEnded = ended(second);
    await b.close();
    await secondEnded;
    broker = null;
  });
});
