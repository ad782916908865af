/**
 * A fleet link's direct lane (broker/connection.ts `DirectLane`, sim/fleet/link.ts `offer`): the
 * embedded broker takes a device's QoS 0 PUBLISH from a real fleet link at once, and takes it only
 * where reading it would have done the same, so that nothing overtakes what the device sent before
 * and every check and refusal stays the broker's: a packet behind unread bytes, a QoS 1 PUBLISH, a
 * publish to another device's topic, a packet above the size limit and a broker going down are all
 * left to be pushed and read as usual.
 */
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { FleetLink, type LinkOwner } from '../../src/sim/fleet/link.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectInProcess, until } from '../helpers/mqtt.js';

const OPERATOR_TOKEN = 'direct-lane-op';
const DID = 'dl-dev';

/** A real fleet link served by `b`, with what the broker wrote to it parsed (mqtt-packet). */
function link(b: EmbeddedBroker): { l: FleetLink; got: Packet[]; closed: () => boolean } {
  const got: Packet[] = [];
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  parser.on('packet', (p) => got.push(p));
  let closed = false;
  const owner: LinkOwner = {
    received: (_l, bytes) => { parser.parse(bytes); },
    readable: () => undefined,
    linkClosed: () => { closed = true; },
  };
  const l = new FleetLink(owner, 0);
  expect(b.serveInProcess(l)).toBe(true);
  return { l, got, closed: () => closed };
}

const publish = (topic: string, payload: string | Buffer, qos: 0 | 1 = 0, messageId?: number): Buffer =>
  mqttPacket.generate({ cmd: 'publish', topic, payload, qos, retain: false, dup: false, ...(qos ? { messageId } : {}) } as Packet);

describe('a fleet link\'s direct lane', () => {
  const track = useCleanup();

  async function connected(opts: { maxPacketSize?: number } = {}): Promise<{ b: EmbeddedBroker; dev: ReturnType<typeof link>; seen: string[]; watcher: MqttClient }> {
    const b = track(await EmbeddedBroker.start({ mqttPort: null, wsPort: null, operatorToken: OPERATOR_TOKEN, ...opts }));
    b.access.registerDevice(DID, { token: 'dl-token', uid: 'dl-user' });
    const watcher = track(await connectInProcess(b, { username: 'operator', password: OPERATOR_TOKEN, clientId: 'dl-watch' }));
    const seen: string[] = [];
    watcher.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
    await watcher.subscribeAsync('device/#', { qos: 1 });
    const dev = link(b);
    dev.l.push(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: DID, keepalive: 30, username: DID, password: Buffer.from('dl-token') }));
    await until(() => dev.got.some((p) => p.cmd === 'connack'), 5000, 'CONNACK');
    return { b, dev, seen, watcher };
  }

  it('takes a QoS 0 PUBLISH at once, counted and delivered as one read would be', async () => {
    const { b, dev, seen } = await connected();
    const published = b.counters.published;
    // Aedes handles the CONNECT's last steps after the CONNACK: the lane opens once it is done.
    await until(() => dev.l.offer(publish(`device/${DID}/up/props`, 'p1')), 2000, 'the lane to take a publish');
    expect(dev.l.offer(publish(`device/${DID}/up/props`, 'p2'))).toBe(true);
    await until(() => seen.length === 2, 2000, 'both messages');
    expect(b.counters.published).toBe(published + 2);
    expect(seen).toEqual([`device/${DID}/up/props p1`, `device/${DID}/up/props p2`]);
  });

  it('leaves to be read what would overtake bytes unread, a QoS 1 PUBLISH, and a publish the broker refuses', async () => {
    const { b, dev, seen } = await connected();
    await until(() => dev.l.offer(publish(`device/${DID}/up/props`, 'first')), 2000, 'the lane to take a publish');
    // A QoS 0 PUBLISH pushed waits unread until the next turn; one offered behind it must wait too.
    dev.l.push(publish(`device/${DID}/up/props`, 'second'));
    expect(dev.l.offer(publish(`device/${DID}/up/props`, 'third'))).toBe(false);
    dev.l.push(publish(`device/${DID}/up/props`, 'third'));
    await until(() => seen.length === 3, 2000, 'three messages');
    expect(seen).toEqual([`device/${DID}/up/props first`, `device/${DID}/up/props second`, `device/${DID}/up/props third`]);
    // A QoS 1 PUBLISH is not the lane's: pushed, it is read, published and acknowledged as usual.
    await until(() => dev.l.offer(publish(`device/${DID}/up/props`, 'fourth')), 2000, 'the lane to open again');
    expect(dev.l.offer(publish(`device/${DID}/up/event`, 'fifth', 1, 7))).toBe(false);
    dev.l.push(publish(`device/${DID}/up/event`, 'fifth', 1, 7));
    await until(() => dev.got.some((p) => p.cmd === 'puback' && p.messageId === 7), 2000, 'the PUBACK');
    await until(() => seen.length === 5, 2000, 'five messages');
    expect(seen.slice(3)).toEqual([`device/${DID}/up/props fourth`, `device/${DID}/up/event fifth`]);

    // Another device's topic: refused by the broker as if read (the connection closes, counted).
    await until(() => dev.l.offer(publish(`device/${DID}/up/props`, 'sixth')), 2000, 'the lane to open again');
    const rejected = b.counters.rejected;
    const forged = publish('device/someone-else/up/props', 'forged');
    expect(dev.l.offer(forged)).toBe(false);
    dev.l.push(forged);
    await until(dev.closed, 2000, 'the connection to close');
    expect(b.counters.rejected).toBe(rejected + 1);
    expect(seen.some((m) => m.includes('forged'))).toBe(false);
  });

  it('leaves a packet above the size limit to the packet guard, and takes nothing once the broker goes down', async () => {
    const { b, dev } = await connected({ maxPacketSize: 1024 });
    await until(() => dev.l.offer(publish(`device/${DID}/up/props`, 'small')), 2000, 'the lane to take a publish');
    const big = publish(`device/${DID}/up/props`, Buffer.alloc(2000, 0x61));
    expect(dev.l.offer(big)).toBe(false);
    dev.l.push(big);
    await until(dev.closed, 2000, 'the connection to close');
    expect(b.limitReport().hits.packetSize).toBe(1);

    const again = link(b);
    again.l.push(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: DID, keepalive: 30, username: DID, password: Buffer.from('dl-token') }));
    await until(() => again.l.offer(publish(`device/${DID}/up/props`, 'back')), 2000, 'the lane on a new connection');
    await b.goDown();
    expect(again.l.offer(publish(`device/${DID}/up/props`, 'after going down'))).toBe(false);
  });
});
