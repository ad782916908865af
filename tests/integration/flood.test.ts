/**
 * Floods. Stock Aedes 1.2 + mqemitter 7.1 overflow the stack (`RangeError: Maximum call stack
 * size exceeded`) when one read batch holds a few hundred QoS 0 messages for a subscribed topic
 * followed by ~100,000 for a topic nobody subscribes to: the queued no-subscriber messages drain
 * by recursion. The embedded broker's emitter drains by a loop; these tests hold it to that.
 */
import { describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { recordUncaught, useCleanup } from '../helpers/cleanup.js';
import { connectInProcess, connectTcp, nextMessage, until } from '../helpers/mqtt.js';
import { encode, publishPacket, rawConnectInProcess } from '../helpers/raw-mqtt.js';

const SUBSCRIBED = 300;
const UNSUBSCRIBED = 100_000;

describe('flood resistance of the embedded broker', () => {
  const track = useCleanup();

  /** A brand-new client can connect and get its own message back. */
  async function roundTrip(b: EmbeddedBroker, via: typeof connectTcp, id: string): Promise<void> {
    const c = track(await via(b, { clientId: id }));
    await c.subscribeAsync(`check/${id}`, { qos: 1 });
    const back = nextMessage(c, (t, p) => t === `check/${id}` && p === 'ping');
    await c.publishAsync(`check/${id}`, 'ping', { qos: 1 });
    await back;
  }

  it(`survives ${SUBSCRIBED} subscribed + ${UNSUBSCRIBED} unsubscribed QoS 0 messages in one in-process read batch`, async () => {
    const uncaught = recordUncaught(track);
    const b = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: 'flood-op-token' }));
    const sub = track(await connectInProcess(b, { clientId: 'flood-sub' }));
    await sub.subscribeAsync('flood/subscribed', { qos: 0 });
    const got: string[] = [];
    sub.on('message', (t, p) => { if (t === 'flood/subscribed') got.push(p.toString()); });

    const pub = track(await rawConnectInProcess(b, { clientId: 'flood-pub' }));
    const parts: Buffer[] = [];
    for (let i = 0; i < SUBSCRIBED; i++) parts.push(publishPacket('flood/subscribed', String(i)));
    const nobody = publishPacket('flood/nobody', 'x');
    for (let i = 0; i < UNSUBSCRIBED; i++) parts.push(nobody);
    const before = b.counters.published;
    pub.write(Buffer.concat(parts)); // one write: the broker reads the whole batch at once

    await until(() => got.length === SUBSCRIBED, 10_000, 'every subscribed message delivered');
    expect(got).toEqual(Array.from({ length: SUBSCRIBED }, (_, i) => String(i)));
    await until(() => b.counters.published - before === SUBSCRIBED + UNSUBSCRIBED, 10_000, 'every publish counted');
    expect(b.counters.published - before).toBe(SUBSCRIBED + UNSUBSCRIBED);
    expect(b.counters.rejected).toBe(0);
    // The batch really went through the emitter's queue (the path that recursed in stock mqemitter), and it drained.
    expect(b.emitterStats.maxQueued).toBeGreaterThan(UNSUBSCRIBED / 2);
    await until(() => b.emitterStats.queued === 0 && b.emitterStats.inFlight === 0, 5000, 'the emitter queue to drain');
    expect(uncaught).toEqual([]);

    // The flooding session itself is still served: PINGREQ gets PINGRESP.
    expect(pub.closed()).toBe(false);
    pub.write(encode({ cmd: 'pingreq' }));
    await pub.waitFor('pingresp');
    // New clients still connect and round-trip, on both transports.
    await roundTrip(b, connectInProcess, 'after-flood-inproc');
    await roundTrip(b, connectTcp, 'after-flood-tcp');
    expect(uncaught).toEqual([]);
  }, 15_000);

  it('delivers 50,000 QoS 0 messages from two TCP publishers and keeps answering', async () => {
    const PER_PUBLISHER = 25_000;
    const b = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: 'flood-op-token' }));
    const sub = track(await connectTcp(b, { clientId: 'tcp-flood-sub' }));
    await sub.subscribeAsync('flood/tcp/+', { qos: 0 });
    const next: Record<string, number> = { a: 0, b: 0 };
    let outOfOrder = 0;
    sub.on('message', (t, p) => {
      const who = t.slice('flood/tcp/'.length);
      if (Number(p.toString()) !== next[who]) outOfOrder++;
      next[who] = (next[who] ?? 0) + 1;
    });
    const pubs = await Promise.all(['a', 'b'].map((id) => connectTcp(b, { clientId: `tcp-flood-pub-${id}` })));
    for (const p of pubs) track(p);
    const before = b.counters.published;
    await Promise.all(pubs.map((p, k) => new Promise<void>((resolve, reject) => {
      const topic = `flood/tcp/${k === 0 ? 'a' : 'b'}`;
      for (let i = 0; i < PER_PUBLISHER; i++) {
        p.publish(topic, String(i), { qos: 0 }, i === PER_PUBLISHER - 1 ? (err) => (err ? reject(err) : resolve()) : undefined);
      }
    })));
    await until(() => next['a'] === PER_PUBLISHER && next['b'] === PER_PUBLISHER, 12_000, 'all 50,000 messages at the subscriber');
    expect(outOfOrder).toBe(0); // each publisher's messages arrive in order
    await until(() => b.counters.published - before === 2 * PER_PUBLISHER, 5000, 'every publish counted');
    expect(b.counters.delivered).toBeGreaterThanOrEqual(2 * PER_PUBLISHER);
    expect(pubs.every((p) => p.connected)).toBe(true);
    await roundTrip(b, connectTcp, 'after-tcp-flood');
  }, 15_000);
});
