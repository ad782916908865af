/**
 * Issue 14, item 5, on the real embedded broker: anonymous clients read device telemetry and state
 * only (by default, on loopback). What an anonymous `#` subscriber used to read is published here
 * by real account clients (an app session, a command and its reply, the broker's client list, an
 * owner's uid in device state); a wide filter is granted but delivers only what is allowed, live,
 * retained and from an offline queue; the real `mosquitto_sub -t 'device/#'` still works out of the
 * box; `--anonymous none|telemetry|all` chooses; the WebSocket listener checks Origin and Host.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import mqtt from 'mqtt';
import { beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectInProcess, connectTcp, nextMessage, subscribeGranted, until } from '../helpers/mqtt.js';

const OPERATOR_TOKEN = 'privacy-op-token';
const D1 = '100000101';
const D2 = '100000102';
const U1 = '1000000101';
const MOSQUITTO_SUB = '/usr/bin/mosquitto_sub';

describe('anonymous clients under the default policy (telemetry)', () => {
  const track = useCleanup();
  let broker: EmbeddedBroker;
  let device: MqttClient;
  let other: MqttClient;
  let app: MqttClient;
  let operator: MqttClient;
  /** Sees everything: proves each private message went through the broker before the sentinel. */
  let watcher: MqttClient;

  beforeEach(async () => {
    broker = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: OPERATOR_TOKEN }));
    broker.access.registerDevice(D1, { token: 'privacy-d1', uid: U1 });
    broker.access.registerDevice(D2, { token: 'privacy-d2', uid: U1 });
    broker.access.registerUser(U1, 'privacy-user');
    watcher = track(await connectTcp(broker, { clientId: 'privacy-watcher', username: 'operator', password: OPERATOR_TOKEN }));
    await watcher.subscribeAsync(['#', '$SYS/#'], { qos: 1 });
    device = track(await connectTcp(broker, { clientId: D1, username: D1, password: 'privacy-d1' }));
    other = track(await connectTcp(broker, { clientId: D2, username: D2, password: 'privacy-d2', clean: false }));
    await other.subscribeAsync(`device/${D2}/down/#`, { qos: 1 });
    app = track(await connectTcp(broker, { clientId: `app-${U1}`, username: `app:${U1}`, password: 'privacy-user' }));
    operator = track(await connectTcp(broker, { clientId: 'privacy-operator', username: 'operator', password: OPERATOR_TOKEN }));
  });

  /** Everything an anonymous client used to read, published by real accounts; resolves once the broker forwarded it all. */
  async function publishAll(): Promise<string[]> {
    const seen: string[] = [];
    watcher.on('message', (t) => seen.push(t));
    const topics = {
      property: `device/${D1}/up/properties_changed/2/1`,
      event: `device/${D1}/up/event_occured/3/1`,
      state: `device/${D1}/state`,
      session: `app/${U1}/session`,
      command: `device/${D2}/down/rpc`,
      reply: `device/${D2}/up/rpc`,
      hub: `appMsg/notify/iot/${D1}/property/2.1`,
    };
    await device.publishAsync(topics.property, JSON.stringify({ did: D1, siid: 2, piid: 1, value: true, ts: 1 }), { qos: 0 });
    await device.publishAsync(topics.event, JSON.stringify({ did: D1, siid: 3, eiid: 1, arguments: [], ts: 1, seq: 1 }), { qos: 1 });
    await device.publishAsync(topics.state, JSON.stringify({ did: D1, event: 'online', model: 'x.plug.1', uid: U1, ts: 1 }), { qos: 1, retain: true });
    await app.publishAsync(topics.session, JSON.stringify({ uid: U1, event: 'open', home: 'h1', ts: 1 }), { qos: 1 });
    await operator.publishAsync(topics.command, JSON.stringify({ id: `${U1}-1`, method: 'get_properties', params: [] }), { qos: 1 });
    await other.publishAsync(topics.reply, JSON.stringify({ id: `${U1}-1`, result: [] }), { qos: 1 });
    // A client connecting: the broker announces its id on $SYS/{broker}/new/clients.
    track(await connectTcp(broker, { clientId: `app-${U1}-tablet`, username: `app:${U1}`, password: 'privacy-user' }));
    const sysClients = (t: string): boolean => t.startsWith('$SYS/') && t.endsWith('/new/clients');
    await until(() => Object.values(topics).filter((t) => t !== topics.hub).every((t) => seen.includes(t)) && seen.some(sysClients), 5000, 'the watcher to see everything');
    return Object.values(topics);
  }

  /** The device publishes a last message the observer may read; resolves when the observer has it. */
  async function sentinel(observer: MqttClient): Promise<void> {
    const topic = `device/${D1}/up/properties_changed/9/9`;
    const got = nextMessage(observer, (t, p) => t === topic && p.includes('sentinel'));
    await device.publishAsync(topic, '{"sentinel":true}', { qos: 1 });
    await got;
  }

  it('grants # and device/#, and delivers device telemetry and state (without the owner uid) and nothing else', async () => {
    const observer = track(await connectTcp(broker, { clientId: 'curious' }));
    expect(await subscribeGranted(observer, '#')).toEqual([0]);
    expect(await subscribeGranted(observer, 'device/#')).toEqual([0]);
    const got: Array<{ topic: string; payload: string }> = [];
    observer.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
    await publishAll();
    await sentinel(observer);
    const topics = new Set(got.map((m) => m.topic));
    expect([...topics].sort()).toEqual([
      `device/${D1}/state`, `device/${D1}/up/event_occured/3/1`, `device/${D1}/up/properties_changed/2/1`, `device/${D1}/up/properties_changed/9/9`,
    ]);
    const state = got.find((m) => m.topic === `device/${D1}/state`)!;
    expect(JSON.parse(state.payload)).toEqual({ did: D1, event: 'online', model: 'x.plug.1', ts: 1 });
    // A filter that can match nothing it may read is refused (SUBACK 0x80), counted, and the session stays.
    expect(await subscribeGranted(observer, `app/${U1}/#`)).toEqual([128]);
    expect(await subscribeGranted(observer, '$SYS/#')).toEqual([128]);
    expect(await subscribeGranted(observer, 'device/+/down/rpc')).toEqual([128]);
    expect(observer.connected).toBe(true);
    // The retained state a new subscriber gets is stripped the same way; the operator still gets it whole.
    const late = track(await connectTcp(broker, { clientId: 'late-curious' }));
    const retained = nextMessage(late, (t) => t === `device/${D1}/state`);
    await late.subscribeAsync('device/+/state');
    expect(JSON.parse((await retained).payload)).not.toHaveProperty('uid');
    const op = track(await connectTcp(broker, { clientId: 'privacy-op-2', username: 'operator', password: OPERATOR_TOKEN }));
    const opRetained = nextMessage(op, (t) => t === `device/${D1}/state`);
    await op.subscribeAsync('device/+/state');
    expect(JSON.parse((await opRetained).payload)).toHaveProperty('uid', U1);
  });

  it('reads the central hub profile topics (appMsg/notify/iot/...) but may not publish them', async () => {
    const observer = track(await connectInProcess(broker, { clientId: 'hub-watcher' }));
    expect(await subscribeGranted(observer, 'appMsg/notify/iot/+/property/+')).toEqual([0]);
    expect(broker.access.canRead({ role: 'observer' }, `appMsg/notify/iot/${D1}/property/2.1`)).toBe(true);
    expect(broker.access.canRead({ role: 'observer' }, `appMsg/notify/iot/${D1}/event/3.1`)).toBe(true);
    expect(broker.access.canRead({ role: 'observer' }, 'appMsg/other/x')).toBe(false);
    const gone = new Promise<void>((resolve) => observer.once('close', () => resolve()));
    observer.publish(`appMsg/notify/iot/${D1}/property/2.1`, '{"forged":true}', { qos: 0 });
    await gone;
  });

  it('queues for a persistent anonymous session only what it may read', async () => {
    const first = track(await connectTcp(broker, { clientId: 'offline-curious', clean: false }));
    await first.subscribeAsync('#', { qos: 1 });
    await first.endAsync();
    await publishAll();
    const back = track(await connectTcp(broker, { clientId: 'offline-curious', clean: false }));
    const got: string[] = [];
    back.on('message', (t) => got.push(t));
    await sentinel(back);
    expect(got.filter((t) => !t.startsWith(`device/${D1}/up/`) && t !== `device/${D1}/state`)).toEqual([]);
    expect(got).toContain(`device/${D1}/up/event_occured/3/1`);
  });

  it("does not queue another device's commands for a device whose subscription to them was refused", async () => {
    // Aedes 1.2 stores a CleanSession=0 client's whole SUBSCRIBE packet once one filter in it is granted, the refused ones included.
    const nosy = track(await connectTcp(broker, { clientId: D1, username: D1, password: 'privacy-d1', clean: false }));
    const granted = await new Promise<number[]>((resolve) => {
      nosy.subscribe({ [`device/${D1}/down/#`]: { qos: 1 }, [`device/${D2}/down/#`]: { qos: 1 } }, (err, _g, packet) => {
        resolve((packet as { granted?: number[] } | undefined)?.granted ?? (err as { packet?: { granted?: number[] } } | null)?.packet?.granted ?? []);
      });
    });
    expect(granted).toEqual([1, 128]);
    await nosy.endAsync();
    await operator.publishAsync(`device/${D2}/down/rpc`, '{"id":"secret","method":"get_properties","params":[]}', { qos: 1 });
    await operator.publishAsync(`device/${D1}/down/rpc`, '{"id":"own","method":"get_properties","params":[]}', { qos: 1 });
    const back = track(await connectTcp(broker, { clientId: D1, username: D1, password: 'privacy-d1', clean: false }));
    const got: string[] = [];
    back.on('message', (t, p) => got.push(`${t} ${p.toString()}`));
    await until(() => got.some((m) => m.includes('"own"')), 5000, 'the device\'s own command');
    const tail = nextMessage(back, (_t, p) => p.includes('"tail"'));
    await operator.publishAsync(`device/${D1}/down/rpc`, '{"id":"tail"}', { qos: 1 });
    await tail;
    expect(got.filter((m) => m.includes('secret'))).toEqual([]);
  });

  it('keeps the real mosquitto_sub -t device/# working on loopback, with telemetry and state only', { timeout: 20_000 }, async () => {
    if (!existsSync(MOSQUITTO_SUB)) throw new Error(`${MOSQUITTO_SUB} is missing: apt-get install mosquitto-clients`);
    const sub = track(spawn(MOSQUITTO_SUB, ['-h', '127.0.0.1', '-p', String(broker.mqttAddress!.port), '-t', 'device/#', '-v', '-q', '1'], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let errText = '';
    sub.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    sub.stderr.setEncoding('utf8').on('data', (d: string) => { errText += d; });
    // mosquitto_sub sends an empty client id with CleanSession=1; it is subscribed once the broker counts the client.
    const clients = (): Array<{ id: string; subscriptions: Record<string, unknown> }> =>
      Object.values((broker.aedes as unknown as { clients: Record<string, { id: string; subscriptions: Record<string, unknown> }> }).clients);
    await until(() => clients().some((c) => c.id.startsWith('aedes_') && 'device/#' in c.subscriptions), 5000, `mosquitto_sub to subscribe (stderr: ${errText})`);
    await publishAll();
    const marker = `device/${D1}/up/properties_changed/9/9`;
    await device.publishAsync(marker, '{"sentinel":true}', { qos: 1 });
    await until(() => out.includes(marker), 5000, `mosquitto_sub to print the sentinel (got: ${out})`);
    const topics = out.trim().split('\n').map((line) => line.split(' ')[0]);
    expect(topics.sort()).toEqual([`device/${D1}/state`, `device/${D1}/up/event_occured/3/1`, `device/${D1}/up/properties_changed/2/1`, marker]);
    expect(errText).toBe('');
  });
});

describe('--anonymous none and all', () => {
  const track = useCleanup();

  it('none refuses anonymous clients; all lets them read everything (the old default)', async () => {
    const none = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: OPERATOR_TOKEN, anonymous: 'none' }));
    await expect(connectTcp(none, { clientId: 'nobody' })).rejects.toMatchObject({ code: 4 });
    const all = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: OPERATOR_TOKEN, anonymous: 'all' }));
    const observer = track(await connectTcp(all, { clientId: 'everything' }));
    expect(await subscribeGranted(observer, '$SYS/#')).toEqual([0]);
    expect(await subscribeGranted(observer, 'app/#')).toEqual([0]);
  });

  it('is none by default when the broker binds to an address other than loopback', async () => {
    // No listener opened: only the policy the host implies is looked at (tests bind to loopback only).
    const exposed = track(await EmbeddedBroker.start({ host: '0.0.0.0', mqttPort: null, operatorToken: OPERATOR_TOKEN }));
    expect(exposed.access.anonymous).toBe('none');
    await expect(connectInProcess(exposed, { clientId: 'nobody' })).rejects.toMatchObject({ code: 4 });
    const local = track(await EmbeddedBroker.start({ host: '127.0.0.1', mqttPort: null, operatorToken: OPERATOR_TOKEN }));
    expect(local.access.anonymous).toBe('telemetry');
    const chosen = track(await EmbeddedBroker.start({ host: '0.0.0.0', mqttPort: null, operatorToken: OPERATOR_TOKEN, anonymous: 'telemetry' }));
    expect(chosen.access.anonymous).toBe('telemetry');
    await expect(EmbeddedBroker.start({ mqttPort: null, operatorToken: OPERATOR_TOKEN, anonymous: 'some' as 'all' })).rejects.toThrow('anonymous: expected one of none, telemetry, all, got "some"');
  });
});

describe('the MQTT-over-WebSocket listener and web pages', () => {
  const track = useCleanup();

  /** Open ws://.../mqtt with these headers; resolves with the HTTP status of a refusal, or 101. */
  function upgrade(port: number, headers: Record<string, string>): Promise<number> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, 'mqtt', { headers });
      ws.once('open', () => { ws.terminate(); resolve(101); });
      ws.once('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode ?? 0); });
      ws.once('error', reject);
    });
  }

  it('refuses pages of other sites (Origin) and rebound names (Host), and serves its own host', async () => {
    const broker = track(await EmbeddedBroker.start({ mqttPort: null, wsPort: 0, operatorToken: OPERATOR_TOKEN, allowOrigins: ['http://dashboard.example:3000'] }));
    const port = broker.wsAddress!.port;
    expect(await upgrade(port, { origin: 'http://evil.example' })).toBe(403);
    expect(await upgrade(port, { host: `rebind.example:${port}` })).toBe(403);
    expect(await upgrade(port, { origin: 'null' })).toBe(403);
    expect(broker.limitReport().hits).toMatchObject({ origin: 2, host: 1 });
    // The dashboard on the monitor's port (same host), an allowed origin, and clients that send no Origin.
    expect(await upgrade(port, { origin: 'http://127.0.0.1:8080' })).toBe(101);
    expect(await upgrade(port, { origin: 'http://dashboard.example:3000' })).toBe(101);
    expect(await upgrade(port, {})).toBe(101);
    const client = track(await mqtt.connectAsync(`ws://127.0.0.1:${port}/mqtt`, { clientId: 'ws-observer', reconnectPeriod: 0, connectTimeout: 5000 }));
    expect(client.connected).toBe(true);
  });
});
