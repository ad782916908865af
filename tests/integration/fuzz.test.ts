/**
 * Bad input, fuzzed (fast-check, bounded runs): malformed MQTT packets over real TCP sockets to the
 * embedded broker, invalid payloads from a device account to the platform, bad RPCs to devices.
 * Nothing crashes, every rejection is counted with its reason, and a control device keeps
 * answering and stays online throughout.
 */
import fc from 'fast-check';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { connect as netConnect } from 'node:net';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_PACKET_SIZE } from '../../src/broker/packet-guard.js';
import { PlatformService } from '../../src/platform/service.js';
import { createSimulation, type Simulation } from '../../src/sim/simulation.js';
import { connectInProcess, until } from '../helpers/mqtt.js';
import { fixedHeader } from '../helpers/raw-mqtt.js';

/** Cases per property; FUZZ_RUNS scales them (e.g. FUZZ_RUNS=10 for a long local run), FUZZ_SEED picks other cases. */
const SCALE = Math.max(1, Number(process.env['FUZZ_RUNS'] ?? 1));
const runs = (n: number): number => Math.round(n * SCALE);
const SEED = Number(process.env['FUZZ_SEED'] ?? 0);
const seed = (n: number): number => SEED + n;
const FUZZ_DID = '990000001';

let sim: Simulation;
let control: string;
let fuzzDevice: MqttClient;
let casesRun = 0;

beforeAll(async () => {
  sim = await createSimulation({
    scenario: {
      name: 'fuzz', seed: 3, start: '2026-07-15T15:00:00Z', duration: '1d',
      population: { homes: 6, regions: { cn: 1 }, devicesPerHome: { '3': 1 }, mix: { plug: 1, light: 1, speaker: 1, 'air-conditioner': 1 } },
    },
    speed: 'manual', broker: { mqttPort: 0, wsPort: null },
  });
  control = sim.dids.find((d) => sim.device(d)!.category === 'plug')!;
  sim.broker.access.registerDevice(FUZZ_DID, { token: 'fuzz-token', uid: 'fuzz-owner', members: [], children: [] });
  fuzzDevice = await connectInProcess(sim.broker, { clientId: FUZZ_DID, username: FUZZ_DID, password: 'fuzz-token', reconnectPeriod: 20 });
}, 30_000);

afterAll(async () => {
  await fuzzDevice?.endAsync(true).catch(() => undefined);
  await sim?.stop();
  // Figures for the closing note (stderr, one line).
  process.stderr.write(`fuzz: ${casesRun} cases run\n`);
});

/** The control device answers a command through the broker and is online at the platform. */
async function expectControlHealthy(): Promise<void> {
  const res = await sim.command(control, 'get_properties', [{ did: control, siid: 2, piid: 1 }], 10_000);
  expect(res).toMatchObject({ result: [{ code: 0 }] });
  expect(sim.platform.registry.isOnline(control)).toBe(true);
}

/** Open a TCP connection, write `bytes`, end our side, and resolve when the socket is closed (bounded). */
function sendRaw(bytes: Uint8Array, endOurSide = true): Promise<'closed'> {
  const addr = sim.broker.mqttAddress!;
  return new Promise((resolve, reject) => {
    const s = netConnect(addr.port, addr.host);
    const timer = setTimeout(() => { s.destroy(); reject(new Error('the broker neither read nor closed within 5 s')); }, 5000);
    s.on('error', () => undefined);
    s.resume(); // read (and drop) what the broker answers, so its FIN is seen
    s.once('close', () => { clearTimeout(timer); resolve('closed'); });
    s.once('connect', () => {
      s.write(bytes);
      if (endOurSide) s.end();
    });
  });
}

const gen = (p: Packet): Buffer => mqttPacket.generate(p);
const CONNECT = gen({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'fuzz-anon', keepalive: 0 });
const VALID = [
  CONNECT,
  gen({ cmd: 'publish', topic: 'device/1/up/properties_changed/2/1', payload: Buffer.from('{"x":1}'), qos: 1, messageId: 7, retain: false, dup: false }),
  gen({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'device/#', qos: 1 }] }),
  gen({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['device/#'] }),
  gen({ cmd: 'pingreq' }),
  gen({ cmd: 'puback', messageId: 9 }),
];

const badPackets = fc.oneof(
  { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 400 }), weight: 4 },
  { arbitrary: fc.tuple(fc.constantFrom(...VALID), fc.nat()).map(([p, n]) => p.subarray(0, n % p.length)), weight: 3 },
  { arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([CONNECT, b])), weight: 3 },
  { arbitrary: fc.tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: DEFAULT_MAX_PACKET_SIZE, max: 268_435_455 })).map(([t, len]) => Buffer.concat([CONNECT, fixedHeader(t << 4, len)])), weight: 1 },
  { arbitrary: fc.integer({ min: 1000, max: 65_000 }).map((len) => Buffer.concat([CONNECT, gen({ cmd: 'publish', topic: `device/${'x'.repeat(len)}`, payload: Buffer.alloc(0), qos: 0, retain: false, dup: false })])), weight: 1 },
  { arbitrary: fc.constant(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])), weight: 1 },
);

describe('fuzz: malformed MQTT packets over TCP', () => {
  it('a packet above the maximum size closes the connection at once and is counted', async () => {
    const before = sim.broker.rejectReasons.get('bad packet: packet too large') ?? 0;
    await sendRaw(fixedHeader(0x10, 100 * 1024 * 1024), false);
    expect(sim.broker.rejectReasons.get('bad packet: packet too large')).toBe(before + 1);
  });

  it('random, truncated, oversize and malformed packets never crash the broker', { timeout: 120_000 }, async () => {
    const before = sim.broker.counters.rejectedPackets;
    await fc.assert(fc.asyncProperty(badPackets, async (bytes) => {
      casesRun++;
      await sendRaw(bytes);
    }), { numRuns: runs(1500), seed: seed(42) });
    await expectControlHealthy();
    expect(sim.broker.counters.rejectedPackets).toBeGreaterThan(before + 50);
    const reasons = [...sim.broker.rejectReasons.keys()];
    expect(reasons).toContain('bad packet: packet too large');
    expect(reasons).toContain('bad packet: malformed remaining length');
    expect(reasons.filter((r) => r.startsWith('bad packet:')).length).toBeGreaterThan(3);
    expect(sim.broker.rejectReasons.size).toBeLessThanOrEqual(201);
  });
});

const did = fc.constantFrom(FUZZ_DID, 'other', '');
const num = fc.oneof(fc.integer(), fc.double(), fc.constant(Number.MAX_SAFE_INTEGER), fc.constant(-1), fc.constant(0));
const junk = fc.oneof(num, fc.string({ maxLength: 30 }), fc.boolean(), fc.constant(null), fc.array(fc.jsonValue(), { maxLength: 3 }), fc.jsonValue());
const fields = fc.record({
  did, siid: junk, piid: junk, eiid: junk, value: junk, arguments: junk, event: fc.oneof(fc.constantFrom('online', 'offline'), junk),
  ts: fc.oneof(junk, fc.integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2026, 11, 31) })), seq: junk,
}, { requiredKeys: [] });
const stateFields = fc.record({
  device_id: did, device_name: junk, event: fc.oneof(fc.constantFrom('online', 'offline'), junk), model: junk,
  timestamp: fc.oneof(junk, fc.integer({ min: Date.UTC(2026, 0, 1), max: Date.UTC(2026, 11, 31) })), uid: junk, parent_id: junk,
}, { requiredKeys: [] });
const payloads = fc.oneof(
  fc.string({ maxLength: 200 }).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  // Central-hub shape (flat) and cloud shape (in params), each on either family of topics.
  fields.map((o) => Buffer.from(JSON.stringify(o))),
  fc.record({ params: fc.oneof(fields, junk) }, { requiredKeys: [] }).map((o) => Buffer.from(JSON.stringify(o))),
  stateFields.map((o) => Buffer.from(JSON.stringify(o))),
);
const deviceTopics = fc.constantFrom(
  `device/${FUZZ_DID}/up/properties_changed/2/1`, `device/${FUZZ_DID}/up/event_occured/2/1`, `device/${FUZZ_DID}/state`,
  `device/${FUZZ_DID}/up/rpc`, `device/${FUZZ_DID}/up/event_occured/x/1`, `device/${FUZZ_DID}/up/properties_changed/99999/0`,
  `appMsg/notify/iot/${FUZZ_DID}/property/2.1`, `appMsg/notify/iot/${FUZZ_DID}/event/2.1`, `appMsg/notify/iot/${FUZZ_DID}/event/2.x`,
);

describe('fuzz: invalid payloads from a device account to the platform', () => {
  it('the platform counts every unusable message by reason and never throws', { timeout: 60_000 }, async () => {
    // Directly, many cases: the same code the broker feeds.
    const platform = new PlatformService((d) => (d === FUZZ_DID ? { model: 'chuangmi.plug.212a01', category: 'plug', region: 'cn', uid: 'u' } : undefined));
    fc.assert(fc.property(deviceTopics, payloads, (topic, payload) => {
      casesRun++;
      platform.onMessage(topic, payload);
      const snap = platform.snapshot();
      expect(snap.connections.online).toBeLessThanOrEqual(1);
      expect(snap.eventTime === null || (snap.eventTime >= 0 && snap.eventTime <= Date.UTC(2100, 0, 1))).toBe(true);
    }), { numRuns: runs(5000), seed: seed(7) });
    const reasons = [...platform.malformedReasons.keys()];
    expect(reasons).toEqual(expect.arrayContaining([
      'invalid JSON', 'payload is not an object', 'params is not an object', 'did in payload does not match topic', 'missing or invalid ts',
    ]));
    expect(platform.snapshot().messages.malformed).toBe([...platform.malformedReasons.values()].reduce((a, b) => a + b, 0));

    // Through the broker, from a device's own account: counted at the simulation's platform.
    const malformed0 = sim.platform.snapshot().messages.malformed;
    const sent = fc.sample(fc.tuple(deviceTopics, payloads), { numRuns: runs(1000), seed: seed(8) });
    for (const [topic, payload] of sent) fuzzDevice.publish(topic, payload, { qos: 0 });
    casesRun += sent.length;
    // An oversize payload: the broker closes the connection (counted); the device reconnects.
    const closes0 = sim.broker.rejectReasons.get('bad packet: packet too large') ?? 0;
    fuzzDevice.publish(`device/${FUZZ_DID}/up/properties_changed/2/1`, Buffer.alloc(DEFAULT_MAX_PACKET_SIZE + 1, 0x41), { qos: 0 });
    await until(() => (sim.broker.rejectReasons.get('bad packet: packet too large') ?? 0) > closes0, 10_000, 'the oversize publish to be refused');
    await until(() => fuzzDevice.connected, 10_000, 'the fuzzing device to reconnect');
    await until(() => sim.platform.snapshot().messages.malformed > malformed0 + 100, 10_000, 'malformed messages counted');
    await expectControlHealthy();
  });
});

const iid = fc.oneof(fc.integer({ min: -2, max: 12 }), fc.integer({ min: 100, max: 70_000 }), fc.string({ maxLength: 3 }), fc.constant(null));
const item = fc.record({ did: fc.string({ maxLength: 12 }), siid: iid, piid: iid, value: junk }, { requiredKeys: [] });
const rpcRequests = fc.oneof(
  { arbitrary: fc.string({ maxLength: 100 }), weight: 1 },
  { arbitrary: fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'), weight: 1 },
  {
    arbitrary: fc.record({
      id: fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.constant(null)),
      method: fc.oneof(fc.constantFrom('get_properties', 'set_properties', 'action'), fc.string({ maxLength: 10 })),
      params: fc.oneof(fc.array(item, { maxLength: 80 }), fc.record({ did: fc.string(), siid: iid, aiid: iid, in: fc.array(junk, { maxLength: 4 }) }, { requiredKeys: [] }), junk),
    }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
    weight: 6,
  },
);

describe('fuzz: bad RPCs to devices', () => {
  it('devices answer every request (an error for bad ones), never throw, and keep working', { timeout: 60_000 }, async () => {
    const victims = sim.dids.filter((d) => d !== control);
    const codes = new Map<number, number>();
    fc.assert(fc.property(fc.constantFrom(...victims), rpcRequests, (d, raw) => {
      casesRun++;
      const res = sim.device(d)!.handleRpc(raw);
      const code = 'error' in res ? res.error.code
        : Array.isArray(res.result) ? (res.result.find((r) => r.code !== 0)?.code ?? 0) : res.result.code;
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }), { numRuns: runs(5000), seed: seed(9) });
    // Unknown siids, wrong types, invalid JSON and bad requests each got their MIoT / JSON-RPC code.
    expect([...codes.keys()]).toEqual(expect.arrayContaining([-32700, -32600, -32602, -32601, -4003]));
    expect(victims.reduce((n, d) => n + sim.device(d)!.counters.rpcErrors, 0)).toBeGreaterThan(1000);

    // The same through the broker, as an operator would send them.
    const op = await connectInProcess(sim.broker, { clientId: 'fuzz-op', username: 'operator', password: sim.operatorToken });
    const sent = fc.sample(fc.tuple(fc.constantFrom(...victims), rpcRequests), { numRuns: runs(500), seed: seed(10) });
    const errors0 = victims.reduce((n, d) => n + sim.device(d)!.counters.rpcRequests, 0);
    for (const [d, raw] of sent) op.publish(`device/${d}/down/rpc`, raw, { qos: 0 });
    casesRun += sent.length;
    await until(() => victims.reduce((n, d) => n + sim.device(d)!.counters.rpcRequests, 0) === errors0 + sent.length, 15_000, 'every fuzzed RPC handled');
    await op.endAsync();
    await sim.advance(60_000);
    await expectControlHealthy();
  });
});
