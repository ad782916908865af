/**
 * The bench's latency probe (src/load/probe.ts) on the real embedded broker, fed by a real device
 * connection: its drain ends when every measured message is in, or when none came for a while.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { benchDid, buildTemplate, stamp, writeDid } from '../../src/load/payloads.js';
import { Probe } from '../../src/load/probe.js';
import { wallUs, type FromProbe } from '../../src/load/protocol.js';
import { WireClient, type WireTarget } from '../../src/load/wire.js';

const RUN = 'tst1';
let broker: EmbeddedBroker | null = null;
let probe: Probe | null = null;
const clients: WireClient[] = [];

afterEach(async () => {
  probe?.handle({ type: 'finish' });
  probe = null;
  for (const c of clients.splice(0)) c.end();
  await broker?.close();
  broker = null;
});

/** A broker, a probe on it (its messages to the bench collected), and one bench device that sends message `seq` on demand. */
async function setup(): Promise<{ probe: Probe; next: (type: FromProbe['type']) => Promise<FromProbe>; send: (seq: number) => void }> {
  const b = await EmbeddedBroker.start({ operatorToken: randomBytes(8).toString('hex'), mqttPort: 0, wsPort: null, allowAnonymous: true });
  broker = b;
  const target: WireTarget = { transport: 'tcp', host: b.mqttAddress!.host, port: b.mqttAddress!.port, path: '' };
  const waiting: Array<{ type: FromProbe['type']; resolve: (m: FromProbe) => void }> = [];
  const p = new Probe({ target, clientId: `aiot-bench-probe-${RUN}`, filters: ['device/+/up/#'], qos: 0, runId: RUN, devices: 1 }, (m) => {
    const i = waiting.findIndex((w) => w.type === m.type);
    if (i >= 0) waiting.splice(i, 1)[0]!.resolve(m);
  });
  probe = p;
  const next = (type: FromProbe['type']): Promise<FromProbe> => new Promise((resolve) => waiting.push({ type, resolve }));
  const ready = next('ready');
  await p.start();
  await ready;
  const did = benchDid(0);
  const token = randomBytes(8).toString('hex');
  b.access.registerDevice(did, { token, uid: '1900000000' });
  const device = await WireClient.connect(target, { clientId: did, username: did, password: token });
  clients.push(device);
  const t = buildTemplate({ kind: 'properties_changed', wire: 'cloud', siid: 2, iid: 1, fields: '"siid":2,"piid":1,"value":true,' }, RUN, 0, 0);
  const send = (seq: number): void => {
    const packet = Buffer.from(t.buf);
    writeDid(packet, t, 0, did);
    stamp(packet, 0, t, 0, seq, wallUs(), 0);
    device.write(packet);
  };
  return { probe: p, next, send };
}

const statsOf = (m: FromProbe): { received: number; duplicates: number } => {
  if (m.type !== 'drained' && m.type !== 'finished') throw new Error(`no stats in ${m.type}`);
  return m.stats;
};

describe('the bench probe drain', () => {
  it('answers once every expected measured message has arrived', async () => {
    const { probe: p, next, send } = await setup();
    p.handle({ type: 'window', fromUs: wallUs() - 1_000_000, untilUs: wallUs() + 3_600_000_000 });
    // A minute of quiet would also end it: well past this test's time limit, so only the count can.
    const drained = next('drained');
    p.handle({ type: 'drain', expected: 5, quietMs: 60_000 });
    for (let seq = 0; seq < 5; seq++) send(seq);
    expect(statsOf(await drained)).toMatchObject({ received: 5, duplicates: 0 });
  });

  it('answers after a quiet spell when fewer arrive than expected, and at once when all are already in', async () => {
    const { probe: p, next, send } = await setup();
    p.handle({ type: 'window', fromUs: wallUs() - 1_000_000, untilUs: wallUs() + 3_600_000_000 });
    const three = next('drained');
    p.handle({ type: 'drain', expected: 3, quietMs: 60_000 });
    for (let seq = 0; seq < 3; seq++) send(seq);
    expect(statsOf(await three).received).toBe(3);
    // Seven more were expected but none comes: 100 ms without a measured message ends the drain.
    const quiet = next('drained');
    p.handle({ type: 'drain', expected: 10, quietMs: 100 });
    expect(statsOf(await quiet).received).toBe(3);
    const again = next('drained');
    p.handle({ type: 'drain', expected: 3, quietMs: 60_000 });
    expect(statsOf(await again).received).toBe(3);
  });
});
