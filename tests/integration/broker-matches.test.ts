/**
 * The broker remembers which subscriptions and which persistent sessions each topic reaches
 * (src/broker/match-cache.ts): a subscription made after a topic was published to still gets the
 * next message on it, live and queued for an offline persistent session.
 */
import { describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectTcp, nextMessage, until } from '../helpers/mqtt.js';

const DID = '500000007';
const TOPIC = `device/${DID}/up/event_occured/2/1`;
const event = (seq: number): string => JSON.stringify({ params: { did: DID, siid: 2, eiid: 1, arguments: [], ts: seq, seq } });

describe('remembered topic matches on a real broker', () => {
  const track = useCleanup();

  it('reach subscribers and offline sessions that subscribed after the topic was matched', async () => {
    const b = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: 'matches-op-token' }));
    b.access.registerDevice(DID, { token: 'dev-token', uid: '1000000007' });
    const dev = track(await connectTcp(b, { clientId: DID, username: DID, password: 'dev-token' }));
    // The topic is matched (and remembered) with nobody subscribed.
    await dev.publishAsync(TOPIC, event(1), { qos: 1 });

    // A live subscriber that came later gets the next message.
    const live = track(await connectTcp(b, { clientId: 'late-live' }));
    await live.subscribeAsync(TOPIC, { qos: 1 });
    const two = nextMessage(live, (_t, p) => p === event(2));
    await dev.publishAsync(TOPIC, event(2), { qos: 1 });
    await two;

    // A persistent session that subscribed later, now offline, has the next message queued.
    const sink = track(await connectTcp(b, { clientId: 'late-sink', clean: false }));
    await sink.subscribeAsync(TOPIC, { qos: 1 });
    await sink.endAsync();
    await dev.publishAsync(TOPIC, event(3), { qos: 1 });
    await until(() => b.limitReport().usage.queuedMessages === 1, 5000, 'the message queued for the offline session');
    const back = track(await connectTcp(b, { clientId: 'late-sink', clean: false }));
    const got: string[] = [];
    back.on('message', (_t, p) => got.push(p.toString()));
    await until(() => got.length === 1, 5000, 'the queued message delivered');
    expect(got).toEqual([event(3)]);

    // After the live subscriber leaves, it is no longer reached; the persistent one still is.
    await live.unsubscribeAsync(TOPIC);
    const four = nextMessage(back, (_t, p) => p === event(4));
    let liveGot = 0;
    live.on('message', () => liveGot++);
    await dev.publishAsync(TOPIC, event(4), { qos: 1 });
    await four;
    expect(liveGot).toBe(0);
  });
});
