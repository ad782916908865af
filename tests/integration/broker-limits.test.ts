/**
 * Issue 14, item 2, on the real embedded broker over real sockets: every listener and session has a
 * bound, and each attack the review made is reproduced and stopped. An unfinished WebSocket frame
 * over the packet limit, a keep-alive of 0 followed by silence, connections past the cap or without
 * CONNECT, an offline (or never acknowledging) QoS 1 session, retained messages without end, and
 * what MQTT 3.1.1 forbids in topics and filters.
 */
import type { Socket } from 'node:net';
import type { MqttClient } from 'mqtt';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { EmbeddedBroker, type BrokerOptions } from '../../src/broker/broker.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectTcp, nextMessage, until } from '../helpers/mqtt.js';
import { connectPacket, encode, publishPacket, rawTcp } from '../helpers/raw-mqtt.js';

const OPERATOR_TOKEN = 'limits-op-token';
const DID = '100000201';

describe('broker bounds', () => {
  const track = useCleanup();
  const start = async (opts: Partial<BrokerOptions> = {}): Promise<EmbeddedBroker> => {
    const b = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: OPERATOR_TOKEN, ...opts }));
    b.access.registerDevice(DID, { token: 'limits-device', uid: 'u1' });
    return b;
  };
  const device = async (b: EmbeddedBroker): Promise<MqttClient> => track(await connectTcp(b, { clientId: DID, username: DID, password: 'limits-device' }));

  /** A WebSocket to /mqtt and the TCP socket under it (to write frames ws would not send). */
  async function wsSocket(b: EmbeddedBroker): Promise<{ ws: WebSocket; socket: Socket; closed: Promise<void> }> {
    const ws = new WebSocket(`ws://127.0.0.1:${b.wsAddress!.port}/mqtt`, 'mqtt');
    let socket: Socket | null = null;
    ws.once('upgrade', (res) => { socket = res.socket as Socket; });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', () => reject(new Error('upgrade refused')));
      ws.once('error', reject); // the connection was closed before the upgrade
    });
    ws.on('error', () => undefined);
    track(() => ws.terminate());
    const s = socket!;
    return { ws, socket: s, closed: new Promise<void>((resolve) => s.once('close', () => resolve())) };
  }

  it('closes a WebSocket announcing a frame over the packet limit before buffering it (ws kept 100 MiB per frame)', async () => {
    const b = await start({ mqttPort: null, wsPort: 0 });
    const { socket, closed } = await wsSocket(b);
    // A masked binary frame announcing 100 MiB, then its first 64 KiB: the rest never comes.
    const header = Buffer.alloc(14);
    header[0] = 0x82;
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(100n * 1024n * 1024n, 2);
    socket.write(Buffer.concat([header, Buffer.alloc(64 * 1024, 0x41)]));
    await Promise.race([closed, new Promise((_r, reject) => setTimeout(() => reject(new Error('the connection was held open')), 5000))]);
    expect(b.limitReport().hits.packetSize).toBe(1);
  });

  it('holds network clients asking for keep-alive 0 (or above the ceiling) to the ceiling, and closes them when they go silent', async () => {
    const b = await start({ maxKeepAliveSeconds: 1 });
    const silent = track(await rawTcp(b.mqttAddress!.port));
    silent.write(connectPacket({ clientId: 'stall-0', keepalive: 0 }));
    expect(await silent.waitFor('connack')).toMatchObject({ returnCode: 0 });
    const greedy = track(await rawTcp(b.mqttAddress!.port));
    greedy.write(connectPacket({ clientId: 'stall-3600', keepalive: 3600 }));
    expect(await greedy.waitFor('connack')).toMatchObject({ returnCode: 0 });
    // Silent for 1.5 times the ceiling: closed (it was held forever).
    await silent.whenClosed(5000);
    await greedy.whenClosed(5000);
    expect(b.limitReport().hits.keepAlive).toBe(2);
    // A client keeping within the ceiling stays.
    const fine = track(await connectTcp(b, { clientId: 'pinging', keepalive: 1 }));
    await new Promise<void>((resolve) => fine.once('packetreceive', (p) => { if (p.cmd === 'pingresp') resolve(); }));
    await new Promise<void>((resolve) => fine.once('packetreceive', (p) => { if (p.cmd === 'pingresp') resolve(); }));
    expect(fine.connected).toBe(true);
  });

  it('closes a client 1.5 keep-alives after its last packet: not before, and not a whole interval later', async () => {
    const b = await start();
    const c = track(await rawTcp(b.mqttAddress!.port));
    c.write(connectPacket({ clientId: 'pings-once', keepalive: 1 }));
    expect(await c.waitFor('connack')).toMatchObject({ returnCode: 0 });
    // One packet 0.3 s in, then silence.
    await new Promise((r) => setTimeout(r, 300));
    const last = performance.now();
    c.write(encode({ cmd: 'pingreq' }));
    await c.waitFor('pingresp');
    await c.whenClosed(5000);
    const after = performance.now() - last;
    expect(after).toBeGreaterThanOrEqual(1490);
    // The deadline follows the last packet (1.5 s), not the timer's first firing plus a whole
    // interval (1.5 s + 1.5 s after the CONNECT, 2.7 s after the ping).
    expect(after).toBeLessThan(2100);
  });

  it('keeps a client alive by its QoS 0 publishes alone, delivers them, and closes one publishing where it may not', async () => {
    const b = await start();
    const watcher = track(await connectTcp(b, { clientId: 'watcher', username: 'operator', password: OPERATOR_TOKEN }));
    const seen: string[] = [];
    watcher.on('message', (_t, payload) => seen.push(payload.toString()));
    await watcher.subscribeAsync(`device/${DID}/up/#`);
    const c = track(await rawTcp(b.mqttAddress!.port));
    c.write(connectPacket({ clientId: DID, username: DID, password: 'limits-device', keepalive: 1 }));
    expect(await c.waitFor('connack')).toMatchObject({ returnCode: 0 });
    // Nothing but QoS 0 PUBLISHes, one every 0.4 s for 2.4 s: past 1.5 keep-alives since the CONNECT.
    const topic = `device/${DID}/up/properties_changed/2/1`;
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 400));
      c.write(publishPacket(topic, `{"n":${i}}`));
    }
    const last = performance.now();
    await until(() => seen.length === 6, 5000);
    expect(c.closed()).toBe(false);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5].map((i) => `{"n":${i}}`));
    // Then silence: closed 1.5 s after the last publish.
    await c.whenClosed(5000);
    expect(performance.now() - last).toBeGreaterThanOrEqual(1490);
    // A publish under another device's topic is refused, counted, and closes the connection.
    const rejected = b.counters.rejected;
    const d = track(await rawTcp(b.mqttAddress!.port));
    d.write(connectPacket({ clientId: DID, username: DID, password: 'limits-device', keepalive: 60 }));
    expect(await d.waitFor('connack')).toMatchObject({ returnCode: 0 });
    d.write(publishPacket('device/999999999/up/properties_changed/2/1', '{}'));
    await d.whenClosed(5000);
    expect(b.counters.rejected).toBe(rejected + 1);
    expect(seen).toHaveLength(6);
  });

  it('caps connections per listener: one past the cap is closed at once and counted', async () => {
    const b = await start({ wsPort: 0, maxConnections: 2 });
    const held = [track(await rawTcp(b.mqttAddress!.port)), track(await rawTcp(b.mqttAddress!.port))];
    const third = await rawTcp(b.mqttAddress!.port).catch(() => null);
    if (third) await third.whenClosed(5000);
    expect(held.map((h) => h.closed())).toEqual([false, false]);
    await until(() => b.limitReport().hits.connections === 1, 5000, 'the refusal counted');
    expect(b.limitReport().usage.connections.tcp).toBe(2);
    held[0]!.destroy();
    await until(() => b.limitReport().usage.connections.tcp === 1, 5000, 'one connection left');
    const again = track(await rawTcp(b.mqttAddress!.port));
    again.write(connectPacket({ clientId: 'after-cap', keepalive: 60 }));
    expect(await again.waitFor('connack')).toMatchObject({ returnCode: 0 });
    // The WebSocket listener has its own cap.
    await wsSocket(b);
    await wsSocket(b);
    await expect(wsSocket(b)).rejects.toThrow();
    expect(b.limitReport().hits.connections).toBe(2);
  });

  it('closes connections that send no CONNECT within the deadline, on TCP and WebSocket (before and after the upgrade)', async () => {
    const b = await start({ wsPort: 0, connectTimeoutMs: 300 });
    const tcp = track(await rawTcp(b.mqttAddress!.port));
    const preUpgrade = track(await rawTcp(b.wsAddress!.port)); // TCP to the WebSocket port, no HTTP request
    const upgraded = await wsSocket(b);
    await tcp.whenClosed(5000);
    await preUpgrade.whenClosed(5000);
    await Promise.race([upgraded.closed, new Promise((_r, reject) => setTimeout(() => reject(new Error('upgraded connection held open')), 5000))]);
    expect(b.limitReport().hits.connectTimeout).toBe(3);
  });

  it('bounds an offline persistent session\'s QoS 1 queue: the oldest go, counted, the newest are delivered', async () => {
    const b = await start({ maxQueuedMessages: 10 });
    const sub = track(await connectTcp(b, { clientId: 'offline-sink', clean: false }));
    await sub.subscribeAsync('device/+/up/event_occured/#', { qos: 1 });
    await sub.endAsync();
    const d = await device(b);
    for (let seq = 1; seq <= 25; seq++) {
      await d.publishAsync(`device/${DID}/up/event_occured/2/1`, JSON.stringify({ did: DID, siid: 2, eiid: 1, arguments: [], ts: seq, seq }), { qos: 1 });
    }
    const queued = (): number => b.limitReport().usage.queuedMessages;
    const back = track(await connectTcp(b, { clientId: 'offline-sink', clean: false }));
    const seqs: number[] = [];
    back.on('message', (_t, p) => seqs.push((JSON.parse(p.toString()) as { seq: number }).seq));
    await until(() => seqs.length >= 10, 5000, 'the queued events');
    const tail = nextMessage(back, (_t, p) => p.includes('"seq":26'));
    await d.publishAsync(`device/${DID}/up/event_occured/2/1`, JSON.stringify({ did: DID, siid: 2, eiid: 1, arguments: [], ts: 26, seq: 26 }), { qos: 1 });
    await tail;
    expect(seqs).toEqual([16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26]);
    expect(b.limitReport().hits.queueDropped).toBe(15);
    await until(() => queued() === 0, 5000, 'the queue emptied by acknowledgements');
  });

  it('bounds a queue in bytes too, and a connected session that never acknowledges', async () => {
    const b = await start({ maxQueuedMessages: 1000, maxQueuedBytes: 4096 });
    const sink = track(await rawTcp(b.mqttAddress!.port)); // reads everything, acknowledges nothing
    sink.write(connectPacket({ clientId: 'qos1-sink', clean: false, keepalive: 60 }));
    await sink.waitFor('connack');
    sink.write(encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'device/#', qos: 1 }] }));
    await sink.waitFor('suback');
    const d = await device(b);
    const payload = JSON.stringify({ did: DID, siid: 2, eiid: 1, arguments: [{ piid: 1, value: 'x'.repeat(1000) }], ts: 1, seq: 1 });
    for (let i = 0; i < 20; i++) await d.publishAsync(`device/${DID}/up/event_occured/2/1`, payload, { qos: 1 });
    await until(() => sink.packets.filter((p) => p.cmd === 'publish').length === 20, 5000, 'every event written to the sink');
    expect(sink.closed()).toBe(false);
    const usage = b.limitReport().usage;
    expect(usage.queuedBytes).toBeLessThanOrEqual(4096);
    expect(usage.queuedMessages).toBeLessThanOrEqual(4);
    expect(b.limitReport().hits.queueDropped).toBeGreaterThanOrEqual(16);
  });

  it('caps persistent anonymous sessions (a resumed one does not count twice)', async () => {
    const b = await start({ maxAnonymousSessions: 2 });
    for (const id of ['anon-keep-1', 'anon-keep-2']) await (track(await connectTcp(b, { clientId: id, clean: false }))).endAsync();
    await expect(connectTcp(b, { clientId: 'anon-keep-3', clean: false })).rejects.toMatchObject({ code: 3 });
    track(await connectTcp(b, { clientId: 'anon-keep-1', clean: false }));
    track(await connectTcp(b, { clientId: 'anon-clean', clean: true }));
    expect(b.limitReport().hits.anonymousSessions).toBe(1);
    expect(b.limitReport().usage.anonymousSessions).toBe(2);
  });

  it('bounds the retained store in messages and bytes; devices\' own state is outside the bound', async () => {
    const b = await start({ maxRetainedMessages: 5, maxRetainedBytes: 4096 });
    const anon = track(await connectTcp(b, { clientId: 'retainer' }));
    for (let i = 0; i < 8; i++) await anon.publishAsync(`retain/${i}`, `value ${i}`, { qos: 1, retain: true });
    await anon.publishAsync('retain/big', 'x'.repeat(5000), { qos: 1, retain: true });
    await anon.publishAsync('retain/0', 'value 0 updated', { qos: 1, retain: true }); // an update takes no new slot
    const d = await device(b);
    await d.publishAsync(`device/${DID}/state`, JSON.stringify({ did: DID, event: 'online', model: 'm', uid: 'u1', ts: 1 }), { qos: 1, retain: true });
    const reader = track(await connectTcp(b, { clientId: 'reader', username: 'operator', password: OPERATOR_TOKEN }));
    const got = new Map<string, string>();
    reader.on('message', (t, p) => got.set(t, p.toString()));
    await reader.subscribeAsync(['retain/#', 'device/+/state'], { qos: 1 });
    await until(() => got.size === 6, 5000, 'the retained messages');
    expect([...got.keys()].sort()).toEqual([`device/${DID}/state`, 'retain/0', 'retain/1', 'retain/2', 'retain/3', 'retain/4']);
    expect(got.get('retain/0')).toBe('value 0 updated');
    expect(b.limitReport().usage.retainedMessages).toBe(5);
    expect(b.limitReport().hits.retained).toBe(4);
    // Clearing one frees its place.
    await anon.publishAsync('retain/4', '', { qos: 1, retain: true });
    await anon.publishAsync('retain/7', 'value 7', { qos: 1, retain: true });
    expect(b.limitReport().usage.retainedMessages).toBe(5);
    expect(b.limitReport().hits.retained).toBe(4);
  });

  it('closes a client whose filter or topic breaks MQTT 3.1.1 (MQTT-4.7.1-2, 4.7.1-3, 1.5.3-2)', async () => {
    const b = await start();
    for (const filter of ['a+/b', 'a#', '+a/b', 'a/\u0000']) {
      const raw = track(await rawTcp(b.mqttAddress!.port));
      raw.write(connectPacket({ clientId: `bad-filter-${filter.length}`, keepalive: 60 }));
      await raw.waitFor('connack');
      raw.write(encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] }));
      await raw.whenClosed();
      expect(raw.packets.some((p) => p.cmd === 'suback'), filter).toBe(false);
    }
    const nul = track(await rawTcp(b.mqttAddress!.port));
    nul.write(connectPacket({ clientId: 'bad-topic', keepalive: 60 }));
    await nul.waitFor('connack');
    nul.write(encode({ cmd: 'publish', topic: 'a/\u0000b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }));
    await nul.whenClosed();
    const reasons = [...b.rejectReasons.keys()];
    expect(reasons).toContain('bad packet: subscribe: "+" must be a whole level');
    expect(reasons).toContain('bad packet: subscribe: "#" must be a whole level and the last one');
    expect(reasons).toContain('bad packet: subscribe: a topic filter must not contain U+0000');
    expect(reasons).toContain('bad packet: publish: a topic name must not contain U+0000');
    expect(b.counters.rejectedPackets).toBe(5);
    // Valid filters are still fine, over WebSocket too.
    const ok = track(await mqtt.connectAsync(`mqtt://127.0.0.1:${b.mqttAddress!.port}`, { clientId: 'good-filter', reconnectPeriod: 0 }));
    await ok.subscribeAsync(['a/+/b', 'a/#', '+']);
  });
});
