/**
 * Faults and recovery through the real embedded broker: a broker restart loses no QoS 1 event,
 * redelivered events are removed by seq, sessions come back by themselves, the platform's counts
 * show the outage in event time, and every fault type runs reproducibly.
 */
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { PlatformService } from '../../src/platform/service.js';
import { createSimulation, type Simulation } from '../../src/sim/simulation.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectInProcess, connectTcp, until } from '../helpers/mqtt.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const START = Date.parse('2026-07-15T15:00:00Z');

function fleet(seed: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'faults', seed, start: '2026-07-15T15:00:00Z', duration: '12h',
    population: {
      homes: 30, regions: { es: 1, cn: 1 }, devicesPerHome: { '3': 1, '6': 1 },
      mix: { sensor: 5, speaker: 2, plug: 1, washer: 1 }, membersPerHome: [0, 1],
    },
    behaviour: { voice: { requestsPerUserPerDay: 30 }, app: { sessionsPerUserPerDay: 6 } },
    network: { reconnect: { initialDelay: '50ms', maxDelay: '1s' } },
    ...extra,
  };
}

const track = useCleanup();

const published = (sim: Simulation): number => sim.dids.reduce((n, did) => n + sim.device(did)!.lastEventSeq, 0);

/**
 * Every device's events as seen by the platform: all there (none missing), none counted twice.
 * (A PUBACK can reach the device before the broker has forwarded the message, so wait for the platform first.)
 */
async function expectNoEventLost(sim: Simulation): Promise<{ events: number; duplicates: number }> {
  await until(() => sim.platform.dedup.stats.accepted >= published(sim), 10_000, 'the platform to have every event');
  let events = 0;
  for (const did of sim.dids) {
    const d = sim.device(did)!;
    expect(d.counters.bufferOverflow, `${did} overflowed its offline buffer`).toBe(0);
    expect(sim.platform.dedup.highest(did), `latest event of ${did}`).toBe(d.lastEventSeq);
    expect(sim.platform.dedup.missing(did), `events of ${did} missing`).toBe(0);
    events += d.lastEventSeq;
  }
  const stats = sim.platform.dedup.stats;
  expect(stats.accepted).toBe(events);
  expect(stats.tooOld).toBe(0);
  expect(sim.snapshot().messages.byKind['event_occured']).toBe(events);
  return { events, duplicates: stats.duplicates };
}

/** A consumer with a persistent session (QoS 1) collecting event seqs per device. */
async function persistentConsumer(sim: Simulation): Promise<{ client: MqttClient; seqs: Map<string, Set<number>>; duplicates: () => number }> {
  const seqs = new Map<string, Set<number>>();
  let dups = 0;
  const client = track(await connectTcp(sim.broker, { clientId: `consumer-${randomBytes(3).toString('hex')}`, clean: false, reconnectPeriod: 100 }));
  client.on('message', (_topic, payload) => {
    const { did, seq } = (JSON.parse(payload.toString()) as { params: { did: string; seq: number } }).params;
    let set = seqs.get(did);
    if (!set) seqs.set(did, (set = new Set()));
    if (set.has(seq)) dups++;
    set.add(seq);
  });
  await client.subscribeAsync('device/+/up/event_occured/+/+', { qos: 1 });
  return { client, seqs, duplicates: () => dups };
}

describe('broker restart', () => {
  it('drops every session, keeps persistent sessions and QoS 1 queues, and loses no event', { timeout: 90_000 }, async () => {
    const sim = track(await createSimulation({
      scenario: fleet(31, { faults: [{ type: 'broker-restart', at: '1h', duration: '10m' }] }),
      speed: 'manual', broker: { mqttPort: 0, wsPort: null },
    }));
    const total = sim.population.devices.length;
    const notices: string[] = [];
    sim.faults.on('fault', (n) => notices.push(`${n.phase} ${n.record.type}`));
    const consumer = await persistentConsumer(sim);
    await until(() => sim.snapshot().connections.online === total, 10_000, 'everyone online');

    await sim.advance(HOUR + 30_000);
    expect(sim.broker.isDown).toBe(true);
    expect(sim.broker.connectedClients).toBe(0);
    expect(sim.snapshot().connections.online).toBe(0);
    expect(notices).toEqual(['start broker-restart']);
    // While it is down, sessions keep trying, with exponential backoff (50 ms doubling to 1 s, full
    // jitter): a few attempts each per second, not a fixed period and not a busy loop.
    const sessions = sim.status().sessions;
    const attempts0 = sim.status().reconnectAttempts;
    const t0 = Date.now();
    await until(() => sim.status().reconnectAttempts - attempts0 >= 3 * sessions, 20_000, 'sessions to retry');
    const perSessionPerSecond = (sim.status().reconnectAttempts - attempts0) / sessions / ((Date.now() - t0) / 1000);
    expect(perSessionPerSecond).toBeLessThan(40);

    // Devices keep producing while the broker is away; their QoS 1 events wait in the offline buffers.
    await sim.advance(9 * MIN);
    const buffered = sim.dids.reduce((n, did) => n + sim.device(did)!.bufferedNow, 0);
    expect(buffered).toBeGreaterThan(0);

    await sim.advance(MIN);
    expect(sim.broker.isDown).toBe(false);
    expect(notices).toEqual(['start broker-restart', 'end broker-restart']);
    expect(sim.status().sessionsConnected).toBe(sim.status().sessions);
    await until(() => sim.snapshot().connections.online === total, 10_000, 'everyone back online');
    const rec = sim.faults.recordsOf('broker-restart')[0]!;
    expect(rec.details).toMatchObject({ notBack: 0, onlineBefore: total, onlineDuring: 0, onlineAfter: total });
    expect(rec.details!['reconnectMs']).toBeLessThanOrEqual(rec.details!['boundMs'] as number);
    // ... and in event time: the dip at the fault's start, the recovery at its end.
    expect(rec.details!['onlineLowest']).toBe(0);
    expect(Date.parse(rec.details!['onlineLowestAt'] as string)).toBeGreaterThanOrEqual(START + HOUR - 5 * MIN);
    expect(Date.parse(rec.details!['onlineLowestAt'] as string)).toBeLessThanOrEqual(START + HOUR);
    expect(rec.details!['onlineBackAt']).toBe('2026-07-15T16:10:00.000Z');

    await sim.advance(2 * HOUR);
    const { events } = await expectNoEventLost(sim);
    expect(events).toBeGreaterThan(100);

    // The persistent consumer was away too: the broker kept its QoS 1 queue across the restart.
    await until(() => [...consumer.seqs.values()].reduce((n, s) => n + s.size, 0) === events, 15_000, 'the consumer to get every event');
    for (const did of sim.dids) expect(consumer.seqs.get(did)?.size ?? 0).toBe(sim.device(did)!.lastEventSeq);

    // The platform's online count shows the outage and the recovery at their event times.
    const at = START + HOUR;
    const down = sim.platform.onlineHistory(at - 5 * MIN, at);
    expect(Math.min(...down.map((b) => b.min))).toBe(0);
    expect(sim.platform.onlineHistory(at + MIN, at + 10 * MIN - 1)).toEqual([]);
    const back = sim.platform.onlineHistory(at + 10 * MIN, at + 11 * MIN);
    expect(back.length).toBeGreaterThan(0);
    expect(back[back.length - 1]!.last).toBe(total);

    const report = await sim.stop();
    expect(report.faults[0]).toMatchObject({ type: 'broker-restart', sessions: sim.status().sessions, from: '2026-07-15T16:00:00.000Z', to: '2026-07-15T16:10:00.000Z' });
  });

  it('device sessions over TCP find the restarted broker too', { timeout: 60_000 }, async () => {
    const sim = track(await createSimulation({
      scenario: fleet(71, { population: { homes: 8, regions: { cn: 1 }, devicesPerHome: { '3': 1 }, mix: { sensor: 2, plug: 1, speaker: 1 } }, faults: [{ type: 'broker-restart', at: '30m', duration: '5m' }] }),
      speed: 'manual', deviceTransport: 'tcp', broker: { mqttPort: 0, wsPort: null },
    }));
    const total = sim.population.devices.length;
    await sim.advance(HOUR);
    await until(() => sim.snapshot().connections.online === total, 10_000, 'everyone back online');
    expect(sim.snapshot().connections.byTransport['tcp']).toBeGreaterThan(0);
    expect(sim.faults.records[0]!.details).toMatchObject({ notBack: 0, onlineAfter: total });
    await expectNoEventLost(sim);
  });

  it('devices cut off mid-flight resend what was not acknowledged; the platform removes the duplicates', { timeout: 60_000 }, async () => {
    const broker = track(await EmbeddedBroker.start({ operatorToken: 'op', mqttPort: null }));
    const platform = new PlatformService(() => undefined);
    platform.observe(broker);
    let seen = 0;
    broker.on('message', (topic) => { if (topic.includes('/event_occured/')) seen++; });
    const dids = ['910000001', '910000002', '910000003', '910000004'];
    for (const did of dids) broker.access.registerDevice(did, { token: `t-${did}`, uid: 'u1', members: [], children: [] });
    const devs = await Promise.all(dids.map((did) => connectInProcess(broker, { clientId: did, username: did, password: `t-${did}`, clean: false, reconnectPeriod: 50 })));
    for (const d of devs) track(d);
    const N = 1500;
    const acked: Array<Promise<unknown>> = [];
    const event = (did: string, seq: number): string => JSON.stringify({ params: { did, siid: 2, eiid: 1, arguments: [], ts: START + seq, seq } });
    for (let seq = 1; seq <= N; seq++) {
      devs.forEach((c, k) => acked.push(c.publishAsync(`device/${dids[k]}/up/event_occured/2/1`, event(dids[k]!, seq), { qos: 1 })));
      // The broker restarts while a third of the events are on their way.
      if (seq === Math.floor(N / 3)) void broker.restart(20);
    }
    await Promise.all(acked);
    // A device that lost a PUBACK sends the event again: the same seq, marked dup.
    await devs[0]!.publishAsync(`device/${dids[0]}/up/event_occured/2/1`, event(dids[0]!, N - 7), { qos: 1, dup: true });
    await until(() => platform.dedup.stats.accepted === N * dids.length, 10_000, 'every event at the platform');
    // Aedes acknowledges before it publishes: the resent event may reach the platform after its PUBACK.
    await until(() => platform.dedup.stats.duplicates >= 1 && seen === platform.dedup.stats.accepted + platform.dedup.stats.duplicates, 5000,
      `every copy counted (seen ${seen}, ${JSON.stringify(platform.dedup.stats)}, ${JSON.stringify(platform.snapshot().messages)})`);
    expect(broker.counters.restarts).toBe(1);
    for (const did of dids) {
      expect(platform.dedup.highest(did)).toBe(N);
      expect(platform.dedup.missing(did)).toBe(0);
    }
    expect(platform.dedup.stats.duplicates).toBeGreaterThanOrEqual(1);
    expect(platform.snapshot().messages).toMatchObject({ duplicatesRemoved: platform.dedup.stats.duplicates, eventsMissing: 0 });
    expect(platform.snapshot().messages.byKind['event_occured']).toBe(N * dids.length);
  });
});

describe('fault timeline', () => {
  const everything = [
    { type: 'reconnect-storm', at: '30m' },
    { type: 'gateway-reboot', at: '1h', duration: '2m' },
    { type: 'device-churn', share: 0.3, at: '90m', duration: '30m', offlineFor: '10m' },
    { type: 'ota-rollout', firmware: '2.0.1_0100', at: '150m', waves: 3, interval: '5m', rebootFor: '1m' },
    { type: 'ota-rollout', firmware: '1.9.0_0042', model: 'lumi.sensor_motion.v2', at: '160m', waves: 1, rebootFor: '1m' },
    { type: 'broker-restart', at: '210m', duration: '5m' },
    { type: 'region-outage', region: 'es', at: '4h', duration: '15m' },
    { type: 'slow-consumer', at: '270m', duration: '10m' },
  ];

  it('runs every fault type, reports each, and everything comes back', { timeout: 120_000 }, async () => {
    const sim = track(await createSimulation({ scenario: fleet(41, { faults: everything }), speed: 'manual', broker: { mqttPort: null, wsPort: null } }));
    const total = sim.population.devices.length;
    const ended: string[] = [];
    sim.faults.on('fault', (n) => { if (n.phase === 'end') ended.push(n.record.type); });
    await sim.advance(5 * HOUR);
    await until(() => sim.snapshot().connections.online === total, 10_000, 'everyone back online');
    expect(new Set(ended)).toEqual(new Set(everything.map((f) => f.type)));
    expect(ended).toHaveLength(everything.length);
    const byType = new Map(sim.faults.records.map((r) => [r.type, r]));
    expect(byType.get('reconnect-storm')).toMatchObject({ sessions: sim.status().sessions, details: { notBack: 0 } });
    expect(byType.get('gateway-reboot')!.sessions).toBeGreaterThan(0);
    expect(sim.faults.recordsOf('gateway-reboot')[0]!.details!['children']).toBeGreaterThan(0);
    expect(byType.get('device-churn')!.details).toMatchObject({ left: byType.get('device-churn')!.sessions, returned: byType.get('device-churn')!.sessions });
    const [allOta, motionOta] = sim.faults.records.filter((r) => r.type === 'ota-rollout');
    expect(allOta!.details).toMatchObject({ waves: 3, updatedDevices: total });
    const motion = sim.dids.filter((d) => sim.device(d)!.model.model === 'lumi.sensor_motion.v2');
    expect(motion.length).toBeGreaterThan(0);
    expect(motionOta!.details).toMatchObject({ waves: 1, updatedDevices: motion.length });
    expect(motionOta!.sessions).toBe(new Set(motion.map((d) => sim.device(d)!.parentId)).size);
    expect(byType.get('broker-restart')!.details).toMatchObject({ notBack: 0, onlineAfter: total });
    expect(byType.get('slow-consumer')!.details).toHaveProperty('publishesRead');
    // The rollout reached every device: firmware-revision reads the new version through the broker.
    const plug = sim.dids.find((d) => sim.device(d)!.category === 'plug')!;
    const res = await sim.command(plug, 'get_properties', [{ did: plug, siid: 1, piid: 4 }]);
    expect(res).toMatchObject({ result: [{ code: 0, value: '2.0.1_0100' }] });
    await expectNoEventLost(sim);
    expect(sim.activity().failedCommands).toBeGreaterThanOrEqual(0);
  });

  it('an outage that ends while the broker is down comes back with the broker', { timeout: 60_000 }, async () => {
    const sim = track(await createSimulation({
      scenario: fleet(61, { faults: [{ type: 'region-outage', region: 'es', at: '60m', duration: '20m' }, { type: 'broker-restart', at: '70m', duration: '20m' }, { type: 'reconnect-storm', at: '75m' }] }),
      speed: 'manual', broker: { mqttPort: null, wsPort: null },
    }));
    const total = sim.population.devices.length;
    await sim.advance(2 * HOUR);
    await until(() => sim.snapshot().connections.online === total, 10_000, 'everyone back online');
    const [outage, restart, storm] = sim.faults.records;
    expect(outage!.details).toMatchObject({ backWithBroker: true });
    expect(restart!.details).toMatchObject({ notBack: 0, onlineAfter: total });
    expect(storm!.details).toMatchObject({ skipped: 'the broker is down' });
    await expectNoEventLost(sim);
  });

  it('same scenario and seed give the same trace with every fault type, in fast mode', { timeout: 120_000 }, async () => {
    const run = async (seed: number) => {
      const sim = track(await createSimulation({ scenario: fleet(seed, { faults: everything, speed: 'fast', duration: '6h' }), broker: { mqttPort: null, wsPort: null } }));
      return sim.finished;
    };
    const a = await run(51);
    const b = await run(51);
    expect(a.faults.map((f) => f.type)).toEqual(everything.map((f) => f.type));
    expect(a.faults.every((f) => f.sessions > 0 || f.type === 'slow-consumer')).toBe(true);
    expect(b.traceMessages).toBe(a.traceMessages);
    expect(b.traceDigest).toBe(a.traceDigest);
    expect(a.platform.messages.eventsMissing).toBe(0);
  });
});
