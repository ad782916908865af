/**
 * The fast paths `npm install` gives Aedes and its parser (scripts/patch-aedes.mjs), on the real
 * embedded broker with real MQTT.js clients over TCP: a CONNECT with nothing queued and a
 * SUBSCRIBE nothing retained matches are answered without a stream, and everything the streams
 * delivered before is still delivered: a persistent session's queued QoS 1 messages, in order,
 * and retained messages on literal and wildcard filters. The parser's plain buffer list is checked
 * by tests/unit/frame-parser.test.ts, which runs mqtt-packet on packets split anywhere.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectTcp, nextMessage, tcpUrl } from '../helpers/mqtt.js';
import { connectPacket, encode, rawTcp } from '../helpers/raw-mqtt.js';
import mqttPacket, { type Packet } from 'mqtt-packet';

const OPERATOR_TOKEN = 'fast-path-op-token';
const MARKER = 'aiot-sim fast path';
const AEDES = dirname(fileURLToPath(import.meta.resolve('aedes')));
const SCRIPT = fileURLToPath(new URL('../../scripts/patch-aedes.mjs', import.meta.url));
const HANDLERS = ['lib/handlers/connect.js', 'lib/handlers/subscribe.js', 'lib/handlers/unsubscribe.js', 'aedes.js', 'lib/client.js', 'lib/write.js'];
const PARSER = dirname(createRequire(fileURLToPath(import.meta.resolve('aedes'))).resolve('mqtt-packet'));

/** Every message `client` receives from now on, in order. */
function record(client: MqttClient): string[] {
  const got: string[] = [];
  client.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
  return got;
}

describe('Aedes fast paths', () => {
  const track = useCleanup();
  const start = async (): Promise<EmbeddedBroker> => track(await EmbeddedBroker.start({ mqttPort: 0, wsPort: null, operatorToken: OPERATOR_TOKEN }));
  const operator = (b: EmbeddedBroker, opts: Parameters<typeof connectTcp>[1] = {}): Promise<MqttClient> =>
    connectTcp(b, { username: 'operator', password: OPERATOR_TOKEN, ...opts }).then((c) => track(c));

  it('are in the installed Aedes (npm install runs scripts/patch-aedes.mjs)', () => {
    for (const file of HANDLERS) {
      expect(readFileSync(join(AEDES, file), 'utf8'), `${join(AEDES, file)}: run npm install, or node scripts/patch-aedes.mjs`).toContain(MARKER);
    }
    expect(readFileSync(join(PARSER, 'parser.js'), 'utf8'), `${join(PARSER, 'parser.js')}: run npm install, or node scripts/patch-aedes.mjs`).toContain(MARKER);
  });

  it('answer connects with nothing queued without a stream, and a resumed session still gets its queued QoS 1 messages in order', async () => {
    const b = await start();
    const before = b.fastPaths.connects;
    const session = await operator(b, { clientId: 'ops-queue', clean: false });
    expect(b.fastPaths.connects).toBe(before + 1);
    await session.subscribeAsync('ops/queue', { qos: 1 });
    await session.endAsync();

    const publisher = await operator(b, { clientId: 'ops-publisher' });
    for (let i = 1; i <= 3; i++) await publisher.publishAsync('ops/queue', `m${i}`, { qos: 1 });
    const connectsBefore = b.fastPaths.connects;
    // Queued: the old path sends them, in order.
    // (The client listens before it connects: the queued messages follow the CONNACK at once.)
    const back = track(mqtt.connect(tcpUrl(b), { clientId: 'ops-queue', clean: false, username: 'operator', password: OPERATOR_TOKEN, reconnectPeriod: 0 }));
    const got = record(back);
    await expect.poll(() => got.length).toBe(3);
    expect(got).toEqual(['ops/queue m1', 'ops/queue m2', 'ops/queue m3']);
    expect(b.fastPaths.connects).toBe(connectsBefore);
    await back.endAsync();

    // Nothing queued now (all acknowledged): the fast path, and the session is still there.
    const again = await operator(b, { clientId: 'ops-queue', clean: false });
    expect(b.fastPaths.connects).toBe(connectsBefore + 1);
    const next = nextMessage(again, (t) => t === 'ops/queue');
    await publisher.publishAsync('ops/queue', 'm4', { qos: 1 });
    expect((await next).payload).toBe('m4');
  });

  it('answer subscribes nothing retained matches without a stream, and retained messages still come on literal and wildcard filters', async () => {
    const b = await start();
    const publisher = await operator(b, { clientId: 'ops-retainer' });
    await publisher.publishAsync('ops/state/a', 'kept', { qos: 1, retain: true });
    const reader = await operator(b, { clientId: 'ops-reader' });
    const got = record(reader);

    const subs0 = b.fastPaths.subscribes;
    await reader.subscribeAsync('ops/state/none', { qos: 0 });
    expect(b.fastPaths.subscribes).toBe(subs0 + 1);

    await reader.subscribeAsync('ops/state/a', { qos: 0 });
    await expect.poll(() => got).toEqual(['ops/state/a kept']);
    await reader.subscribeAsync('ops/+/a', { qos: 0 });
    await expect.poll(() => got).toEqual(['ops/state/a kept', 'ops/state/a kept']);
    // A filter list with one retained topic among several goes the old way, and gets it once.
    await reader.subscribeAsync(['ops/state/none', 'ops/state/a'], { qos: 0 });
    await expect.poll(() => got.length).toBe(3);
    expect(b.fastPaths.subscribes).toBe(subs0 + 1);
    // Cleared: nothing retained any more, so the fast path again, and nothing comes.
    await reader.unsubscribeAsync(['ops/state/a', 'ops/+/a']);
    await publisher.publishAsync('ops/state/a', '', { qos: 1, retain: true });
    await reader.subscribeAsync('ops/state/a', { qos: 0 });
    expect(b.fastPaths.subscribes).toBe(subs0 + 2);
    const late = nextMessage(reader, (t) => t === 'ops/state/a', 300).then(() => 'message', () => 'none');
    expect(await late).toBe('none');
    expect(got).toHaveLength(3);
  });

  it('write each acknowledgement as the bytes mqtt-packet writes for it, in order, over TCP', async () => {
    const b = await start();
    b.access.registerDevice('fp-acks', { token: 'fp-acks-token', uid: 'fp-user' });
    const raw = track(await rawTcp(b.mqttAddress!.port));
    const bytes: Buffer[] = [];
    raw.socket.on('data', (d: Buffer) => bytes.push(d));
    const send = (p: Packet): void => raw.write(encode(p));
    raw.write(connectPacket({ clientId: 'fp-acks', username: 'fp-acks', password: 'fp-acks-token' }));
    await raw.waitFor('connack');
    // Granted QoS 0, 1 and 2, and a refusal (128: another device's topics).
    send({ cmd: 'subscribe', messageId: 0x12b4, subscriptions: [
      { topic: 'device/fp-acks/down/a', qos: 0 }, { topic: 'device/fp-acks/down/b', qos: 1 },
      { topic: 'device/fp-acks/down/c', qos: 2 }, { topic: 'device/fp-other/down/#', qos: 1 },
    ] });
    await raw.waitFor('suback');
    send({ cmd: 'publish', topic: 'device/fp-acks/up/x', payload: Buffer.from('one'), qos: 1, messageId: 0xfffe, retain: false, dup: false });
    await raw.waitFor('puback');
    send({ cmd: 'publish', topic: 'device/fp-acks/up/x', payload: Buffer.from('two'), qos: 2, messageId: 1, retain: false, dup: false });
    await raw.waitFor('pubrec');
    send({ cmd: 'pubrel', messageId: 1 });
    await raw.waitFor('pubcomp');
    send({ cmd: 'unsubscribe', messageId: 0x00ff, unsubscriptions: ['device/fp-acks/down/a', 'device/fp-acks/down/b'] });
    await raw.waitFor('unsuback');
    send({ cmd: 'pingreq' });
    await raw.waitFor('pingresp');
    expect(raw.closed()).toBe(false);
    const granted = (raw.packets.find((p) => p.cmd === 'suback') as { granted: number[] }).granted;
    expect(granted).toHaveLength(4);
    expect(granted[3]).toBe(128);
    // What mqtt-packet writes for the same packets, as Aedes asked it before (no options: MQTT 3.1.1).
    const expected = Buffer.concat(([
      { cmd: 'connack', returnCode: 0, sessionPresent: false },
      { cmd: 'suback', messageId: 0x12b4, granted },
      { cmd: 'puback', messageId: 0xfffe },
      { cmd: 'pubrec', messageId: 1 },
      { cmd: 'pubcomp', messageId: 1 },
      { cmd: 'unsuback', messageId: 0x00ff },
      { cmd: 'pingresp' },
    ] as Packet[]).map((p) => mqttPacket.generate(p)));
    expect(Buffer.concat(bytes).toString('hex')).toBe(expected.toString('hex'));
  });

  it("announce clients and subscriptions on $SYS only while something listens, and then each one", async () => {
    const b = await start();
    b.access.registerDevice('fp-dev', { token: 'fp-dev-token', uid: 'fp-user' });
    const announced: string[] = [];
    b.aedes.on('publish', (packet) => { if (packet.topic.startsWith('$SYS/') && !packet.topic.endsWith('/heartbeat')) announced.push(packet.topic.split('/').slice(2).join('/')); });
    const device = async (): Promise<void> => {
      const d = await connectTcp(b, { clientId: 'fp-dev', username: 'fp-dev', password: 'fp-dev-token' });
      await d.subscribeAsync('device/fp-dev/down/rpc', { qos: 1 });
      await d.unsubscribeAsync('device/fp-dev/down/rpc');
      await d.endAsync();
      await expect.poll(() => b.aedes.connectedClients).toBe(watching ? 1 : 0);
    };
    let watching = false;
    await device();
    expect(announced).toEqual([]);

    const op = await operator(b, { clientId: 'fp-watch' });
    watching = true;
    const heard: string[] = [];
    op.on('message', (topic, payload) => { if (payload.toString().includes('fp-dev')) heard.push(topic.split('/').slice(2).join('/')); });
    await op.subscribeAsync(['$SYS/+/new/clients', '$SYS/+/disconnect/clients', '$SYS/+/new/subscribes', '$SYS/+/new/unsubscribes'], { qos: 0 });
    announced.length = 0;
    await device();
    const each = ['new/clients', 'new/subscribes', 'new/unsubscribes', 'disconnect/clients'];
    await expect.poll(() => heard).toEqual(each);
    expect(announced).toEqual(each);
  });

  it('are applied once however often the script runs, and a package that does not read as expected is left alone with a warning', async () => {
    type Change = { file: string; before: string; after: string };
    const { CHANGES, PARSER_CHANGES } = (await import(SCRIPT)) as { CHANGES: Change[]; PARSER_CHANGES: Change[] };
    const dir = mkdtempSync(join(tmpdir(), 'aiot-aedes-'));
    const pdir = mkdtempSync(join(tmpdir(), 'aiot-mqtt-packet-'));
    const run = (): { status: number | null; stderr: string } => spawnSync(process.execPath, [SCRIPT, dir, pdir], { encoding: 'utf8' });
    const read = (at: string, file: string): string => readFileSync(join(at, file), 'utf8');
    try {
      // Each package as it is published: the installed copy with the changes taken out again.
      // (A file with several changes has each taken out in turn.)
      for (const [from, to, changes] of [[AEDES, dir, CHANGES], [PARSER, pdir, PARSER_CHANGES]] as const) {
        cpSync(join(from, 'package.json'), join(to, 'package.json'));
        const undone = new Set<string>();
        for (const { file, before, after } of changes) {
          mkdirSync(dirname(join(to, file)), { recursive: true });
          const text = undone.has(file) ? read(to, file) : read(from, file);
          expect(text).toContain(after);
          writeFileSync(join(to, file), text.replace(after, before));
          undone.add(file);
        }
        for (const file of undone) expect(read(to, file)).not.toContain(MARKER);
      }
      for (let i = 0; i < 2; i++) expect(run()).toMatchObject({ status: 0, stderr: '' });
      for (const { file } of CHANGES) expect(read(dir, file)).toBe(read(AEDES, file));
      for (const { file } of PARSER_CHANGES) expect(read(pdir, file)).toBe(read(PARSER, file));

      // A file that changed upstream is left as it is and named; the install goes on (exit 0).
      const changed = CHANGES[0]!.file;
      writeFileSync(join(dir, changed), '// another connect handler\n');
      writeFileSync(join(pdir, 'parser.js'), '// another parser\n');
      const r = run();
      expect(r.status).toBe(0);
      expect(r.stderr).toContain(`Aedes fast path not applied to ${join(dir, changed)}: the handler does not read as expected`);
      expect(r.stderr).toContain(`mqtt-packet fast path not applied to ${join(pdir, 'parser.js')}: the parser does not read as expected`);
      expect(read(dir, changed)).toBe('// another connect handler\n');
      expect(read(pdir, 'parser.js')).toBe('// another parser\n');
      // Other versions: nothing is touched.
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'aedes', version: '9.9.9' }));
      writeFileSync(join(pdir, 'package.json'), JSON.stringify({ name: 'mqtt-packet', version: '10.0.0' }));
      const other = run().stderr;
      expect(other).toContain('Aedes 9.9.9, the fast paths are written for 1.2.0');
      expect(other).toContain('mqtt-packet 10.0.0, the fast paths are written for 9.0.2');
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(pdir, { recursive: true, force: true });
    }
  });
});
