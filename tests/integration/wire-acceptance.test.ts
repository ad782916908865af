/**
 * Xiaomi's acceptance rules over whole runs, in both wire profiles: a consumer on `#` (as the
 * operator: anonymous clients get neither RPC replies nor owners' uids) over a real TCP socket
 * judges every device-side message it gets with rules written from Xiaomi's client
 * (tests/helpers/xiaomi-acceptance.ts), and so does a pass over the run's trace
 * file (which also holds what devices said while the broker closed at the end). None may be
 * rejected, and every kind must have been seen, so the test cannot pass on an empty stream.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import type { WireProfile } from '../../src/contract/wire.js';
import type { PlatformSnapshot } from '../../src/platform/service.js';
import { createSimulation } from '../../src/sim/simulation.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectTcp, until } from '../helpers/mqtt.js';
import { SCENARIOS } from '../helpers/scenario.js';
import { AcceptanceTally, type AcceptedKind } from '../helpers/xiaomi-acceptance.js';

const track = useCleanup();
const MIN = 60_000;

interface Judged { live: AcceptanceTally; trace: AcceptanceTally; traceMessages: number; platform: PlatformSnapshot }

/**
 * Run `scenario` for `durationMs` in steps of `stepMs` with a consumer on `#`; after each step the
 * consumer must have every device message the broker accepted (small steps keep its backlog under
 * the broker's shedding bound, which the run asserts was never reached).
 */
async function judgedRun(scenario: string | Record<string, unknown>, wire: WireProfile, durationMs: number, stepMs: number): Promise<Judged> {
  const traceFile = join(tmpdir(), `aiot-sim-acceptance-${wire}-${randomBytes(4).toString('hex')}.ndjson`);
  track(() => rm(traceFile, { force: true }));
  const sim = track(await createSimulation({ scenario, wire, speed: 'manual', broker: { mqttPort: 0, wsPort: null }, traceFile }));
  const live = new AcceptanceTally();
  let atBroker = 0;
  let liveSeen = 0;
  const consumer = track(await connectTcp(sim.broker, { clientId: `xiaomi-consumer-${wire}`, username: 'operator', password: sim.operatorToken }));
  // Retained states arrive on subscribing: judged too, but only live messages are counted against the broker's.
  consumer.on('message', (topic, payload, packet) => {
    if (live.add(topic, payload.toString('utf8')) && !packet.retain) liveSeen++;
  });
  sim.broker.on('message', (topic) => {
    if (topic.startsWith('appMsg/') || (topic.startsWith('device/') && !topic.includes('/down/'))) atBroker++;
  });
  await consumer.subscribeAsync('#', { qos: 0 });
  for (let t = 0; t < durationMs; t += stepMs) {
    await sim.advance(Math.min(stepMs, durationMs - t));
    await until(() => liveSeen === atBroker, 30_000, `the consumer to catch up (${liveSeen} of ${atBroker})`);
  }
  expect(sim.broker.overload.stats.shedQos0).toBe(0);
  const report = await sim.stop();

  const trace = new AcceptanceTally();
  for await (const line of createInterface({ input: createReadStream(traceFile, 'utf8'), crlfDelay: Infinity })) {
    const { topic, payload } = JSON.parse(line) as { topic: string; payload: string };
    expect(trace.add(topic, payload), topic).toBe(true); // the trace holds device-side messages only
  }
  return { live, trace, traceMessages: report.traceMessages, platform: report.platform };
}

function expectAccepted(j: Judged, wire: WireProfile, kinds: { live: AcceptedKind[]; trace: AcceptedKind[] }): void {
  for (const tally of [j.live, j.trace]) {
    expect(tally.examples).toEqual([]);
    expect(tally.rejected).toBe(0);
  }
  expect(j.trace.total).toBe(j.traceMessages);
  for (const k of kinds.live) expect(j.live.count(k), `${k} seen by the consumer`).toBeGreaterThan(0);
  for (const k of kinds.trace) expect(j.trace.count(k), `${k} in the trace`).toBeGreaterThan(0);
  // One profile at a time: the other's telemetry topics carry nothing.
  const other: AcceptedKind[] = wire === 'cloud' ? ['hub-property', 'hub-event'] : ['cloud-property', 'cloud-event'];
  for (const k of other) expect(j.trace.count(k) + j.live.count(k), k).toBe(0);
}

const telemetry = (wire: WireProfile): AcceptedKind[] => (wire === 'cloud' ? ['cloud-property', 'cloud-event'] : ['hub-property', 'hub-event']);
const platforms = new Map<WireProfile, PlatformSnapshot>();

/** consumer-load with fewer homes (its device-count weights and everything else as written). */
function consumerLoad(homes: number): Record<string, unknown> {
  const doc = parse(readFileSync(join(SCENARIOS, 'consumer-load.yaml'), 'utf8')) as { population: Record<string, unknown> } & Record<string, unknown>;
  return { ...doc, population: { ...doc.population, homes } };
}

describe.each<WireProfile>(['cloud', 'local-hub'])('Xiaomi acceptance rules, %s profile', (wire) => {
  it('accept every device message of a full default run', { timeout: 120_000 }, async () => {
    const j = await judgedRun(join(SCENARIOS, 'default.yaml'), wire, 15 * MIN, MIN);
    expectAccepted(j, wire, {
      live: [...telemetry(wire), 'state-online', 'rpc-reply'],
      // Stopping, every device says offline before its session disconnects.
      trace: [...telemetry(wire), 'state-online', 'state-offline', 'rpc-reply'],
    });
  });

  // A quarter of consumer-load's homes (about 250, 2,600 devices): the full thousand takes minutes per profile.
  it('accept every device message of a day of consumer-load, its fault included', { timeout: 300_000 }, async () => {
    const j = await judgedRun(consumerLoad(250), wire, 24 * 60 * MIN, 10 * MIN);
    const kinds: AcceptedKind[] = [...telemetry(wire), 'state-online', 'state-offline', 'rpc-reply'];
    expectAccepted(j, wire, { live: kinds, trace: kinds });
    platforms.set(wire, j.platform);
  });
});

describe('both profiles', () => {
  it('give the platform the same figures for the same seed', () => {
    expect(platforms.size).toBe(2);
    const [cloud, hub] = [platforms.get('cloud')!, platforms.get('local-hub')!];
    expect(hub).toEqual(cloud);
  });
});
