/**
 * The /ws monitoring endpoint on a real broker: token on upgrade, snapshot first, stats, topic
 * filter taps, malformed frames, a stalled client's bounded queue with exact drop accounting, and
 * dead clients cleaned up. Real `ws` and `mqtt` clients on port 0, loopback only.
 */
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { MonitorServer, type MonitorOptions } from '../../src/monitor/server.js';
import type { MessageFrame } from '../../src/monitor/protocol.js';
import type { DeviceFacts } from '../../src/platform/registry.js';
import { PlatformService } from '../../src/platform/service.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectTcp, until } from '../helpers/mqtt.js';
import { openMonitor, wsUrl, type MonitorClient } from '../helpers/ws.js';

const TOKEN = 'monitor-test-token';
const DID = '500000001';
const FACTS: Record<string, DeviceFacts> = { [DID]: { model: 'chuangmi.plug.212a01', category: 'plug', region: 'es' } };

describe('/ws monitoring endpoint', () => {
  const track = useCleanup();

  async function setup(opts: Partial<MonitorOptions> = {}): Promise<{ b: EmbeddedBroker; m: MonitorServer; platform: PlatformService }> {
    const b = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: 'operator-token-1' }));
    b.access.registerDevice(DID, { token: 'plug-token', uid: '1000000005' });
    const platform = new PlatformService((did) => FACTS[did]);
    platform.observe(b);
    const m = track(await MonitorServer.start({ broker: b, platform, token: TOKEN, port: 0, probeIntervalMs: null, ...opts }));
    return { b, m, platform };
  }

  async function open(m: MonitorServer, extra = '', opts = {}): Promise<MonitorClient> {
    return track(await openMonitor(wsUrl(m.url, TOKEN, extra), opts));
  }

  async function device(b: EmbeddedBroker): Promise<MqttClient> {
    return track(await connectTcp(b, { clientId: DID, username: DID, password: 'plug-token' }));
  }

  it('refuses a missing or wrong token with 401 on upgrade, and a bad interval with 400', async () => {
    const { m } = await setup();
    await expect(openMonitor(wsUrl(m.url, null))).rejects.toMatchObject({ status: 401 });
    await expect(openMonitor(wsUrl(m.url, 'monitor-test-tokeN'))).rejects.toMatchObject({ status: 401 });
    await expect(openMonitor(wsUrl(m.url, 'short'))).rejects.toMatchObject({ status: 401 });
    await expect(openMonitor(wsUrl(m.url, TOKEN, '&interval=5'))).rejects.toMatchObject({ status: 400, body: expect.stringContaining('interval') });
    await expect(openMonitor(`${m.url.replace('http', 'ws')}elsewhere?token=${TOKEN}`)).rejects.toMatchObject({ status: 404 });
    expect(m.hub.clientCount).toBe(0);
    // The same token in an Authorization header is accepted (non-browser clients).
    const c = track(await openMonitor(wsUrl(m.url, null), { headers: { authorization: `Bearer ${TOKEN}` } }));
    await c.next('snapshot');
  });

  it('sends a snapshot first, then stats at the interval asked for, with rates that follow the traffic', async () => {
    const { b, m } = await setup();
    const dev = await device(b);
    const ts = Date.UTC(2026, 6, 15, 12);
    await dev.publishAsync(`device/${DID}/state`, JSON.stringify({ device_id: DID, device_name: 'plug', event: 'online', model: FACTS[DID]!.model, timestamp: ts, uid: 1000000005 }), { qos: 1, retain: true });
    const c = await open(m, '&interval=100');
    const snap = await c.next('snapshot');
    expect(c.frames[0]).toBe(snap);
    await until(() => snap.data.connections.online === 1 || c.frames.some((f) => f.type === 'stats' && f.online === 1), 5000, 'the device online');
    expect(snap.data).toMatchObject({ activeUsers: { dau: 0 }, stats: { monitors: 1, messages: { published: expect.any(Number) } } });
    for (let i = 0; i < 20; i++) await dev.publishAsync(`device/${DID}/up/properties_changed/2/1`, JSON.stringify({ params: { did: DID, siid: 2, piid: 1, value: i % 2 === 0, ts: ts + i } }), { qos: 1 });
    const stats = await c.next('stats', (s) => s.messages.published >= 21);
    expect(stats).toMatchObject({ online: 1, byCategory: { plug: 1 }, byRegion: { es: 1 }, virtualTime: ts + 19, clients: 1, monitors: 1 });
    expect(c.frames.filter((f) => f.type === 'stats').some((f) => f.type === 'stats' && f.rates.publishedPerSecond > 0)).toBe(true);
    // Several stats frames, never a second snapshot.
    await until(() => c.frames.filter((f) => f.type === 'stats').length >= 3, 5000, 'three stats frames');
    // One event-time day so far: no whole day to average yet.
    expect(c.frames.find((f) => f.type === 'stats')).toMatchObject({ dailyActiveDevices: expect.any(Number), dailyActiveDevicesWeekMean: null });
    expect(c.frames.filter((f) => f.type === 'snapshot')).toHaveLength(1);
  });

  it('taps device messages through MQTT topic filters: only matching ones, once each, until unsubscribed', async () => {
    const { b, m } = await setup();
    const dev = await device(b);
    const c = await open(m);
    await c.next('snapshot');
    c.send({ type: 'subscribe', topics: [`device/${DID}/up/properties_changed/2/+`, `device/${DID}/up/#`] });
    expect((await c.next('subscribed')).topics).toHaveLength(2);
    const other = await open(m);
    other.send({ type: 'subscribe', topics: ['device/+/state'] });
    await other.next('subscribed');

    const up = (siid: number, piid: number, v: number): Promise<unknown> => dev.publishAsync(`device/${DID}/up/properties_changed/${siid}/${piid}`, JSON.stringify({ params: { did: DID, siid, piid, value: v, ts: v } }), { qos: 1 });
    await up(2, 1, 1);
    await up(3, 1, 2);
    await dev.publishAsync(`device/${DID}/state`, JSON.stringify({ device_id: DID, device_name: 'n', event: 'online', model: 'm', timestamp: 3, uid: 1 }), { qos: 1 });
    const taps = (mc: MonitorClient): MessageFrame[] => mc.frames.filter((f): f is MessageFrame => f.type === 'message');
    await until(() => taps(c).length >= 2 && taps(other).length >= 1, 5000, 'the tapped messages');
    expect(taps(c).map((f) => f.topic)).toEqual([`device/${DID}/up/properties_changed/2/1`, `device/${DID}/up/properties_changed/3/1`]);
    expect(JSON.parse(taps(c)[0]!.payload)).toEqual({ params: { did: DID, siid: 2, piid: 1, value: 1, ts: 1 } });
    expect(taps(c)[0]!.ts).toBeGreaterThan(Date.now() - 60_000);
    expect(taps(other).map((f) => f.topic)).toEqual([`device/${DID}/state`]);

    c.send({ type: 'unsubscribe', topics: [`device/${DID}/up/#`] });
    await c.next('unsubscribed');
    await up(3, 1, 4); // only the removed filter matched this one
    await up(2, 1, 5);
    await until(() => taps(c).length >= 3, 5000, 'the message still matching');
    c.send({ type: 'ping' }); // frames arrive in order: once the pong is here, nothing else is coming
    await c.next('pong');
    expect(taps(c).map((f) => JSON.parse(f.payload).params.value)).toEqual([1, 2, 5]);
    expect(m.hub.clientInfo().map((i) => i.filters.join(' ')).sort()).toEqual(['device/+/state', `device/${DID}/up/properties_changed/2/+`]);
  });

  it('frames tapped messages whole at each WebSocket length form, multi-byte UTF-8 and non-UTF-8 payloads included', async () => {
    const { b, m } = await setup();
    const dev = await device(b);
    const c = await open(m);
    await c.next('snapshot');
    c.send({ type: 'subscribe', topics: [`device/${DID}/up/#`] });
    await c.next('subscribed');
    // Frames under 126 bytes (7-bit length), under 65,536 (16-bit), above (64-bit); characters of
    // three bytes each (a length counted in characters would cut the frame short); bytes that are
    // not UTF-8 (sent as base64).
    const sent = [
      Buffer.from('1'),
      Buffer.from(JSON.stringify({ params: { did: DID, siid: 2, piid: 1, value: 'x'.repeat(200), ts: 2 } })),
      Buffer.from(JSON.stringify({ params: { did: DID, siid: 2, piid: 1, value: '客厅的灯'.repeat(300), ts: 3 } })),
      Buffer.from(JSON.stringify({ params: { did: DID, siid: 2, piid: 1, value: 'y'.repeat(60_000), ts: 4 } })),
      Buffer.from(JSON.stringify({ params: { did: DID, siid: 2, piid: 1, value: 'z'.repeat(70_000), ts: 5 } })),
      Buffer.from([0xff, 0xfe, 0x00, 0x80]),
    ];
    for (const p of sent) await dev.publishAsync(`device/${DID}/up/properties_changed/2/1`, p, { qos: 1 });
    const taps = (): MessageFrame[] => c.frames.filter((f): f is MessageFrame => f.type === 'message');
    await until(() => taps().length >= sent.length, 5000, 'every tapped message');
    c.send({ type: 'ping' }); // frames arrive in order: once the pong is here, nothing else is coming
    await c.next('pong');
    const got = taps().map((f) => Buffer.from(f.payload, f.encoding === 'base64' ? 'base64' : 'utf8'));
    expect(got).toEqual(sent);
    expect(taps().map((f) => f.encoding ?? 'utf8')).toEqual(['utf8', 'utf8', 'utf8', 'utf8', 'utf8', 'base64']);
    // Stats frames (sent by ws) and tapped ones (framed by the hub) share the socket: both still parse.
    await c.next('stats', undefined, 5000, c.frames.length);
  });

  it('answers malformed frames with an error naming the problem and stays up', async () => {
    const { b, m } = await setup({ maxFilters: 3 });
    const c = await open(m);
    await c.next('snapshot');
    const cases: Array<[unknown, string, RegExp]> = [
      ['{"type":', 'E_JSON', /not valid JSON/],
      ['[1,2]', 'E_FRAME', /JSON object/],
      [{ type: 'publish', topics: ['a'] }, 'E_TYPE', /"publish"/],
      [{ topics: ['a'] }, 'E_TYPE', /got nothing/],
      [{ type: 'subscribe' }, 'E_TOPICS', /topics/],
      [{ type: 'subscribe', topics: [] }, 'E_TOPICS', /non-empty/],
      [{ type: 'subscribe', topics: ['ok/#', 7] }, 'E_FILTER', /topics\[1\]: expected a string/],
      [{ type: 'subscribe', topics: ['device/#/up'] }, 'E_FILTER', /topics\[0\]: "device\/#\/up": "#" must be a whole level and the last one/],
      [{ type: 'subscribe', topics: ['device/a+/up'] }, 'E_FILTER', /"\+" must be a whole level/],
      [{ type: 'subscribe', topics: [''] }, 'E_FILTER', /empty/],
      [{ type: 'subscribe', topics: ['a', 'b', 'c', 'd'] }, 'E_TOO_MANY_FILTERS', /at most 3/],
    ];
    for (const [frame, code, re] of cases) {
      const from = c.frames.length;
      c.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
      const err = await c.next('error', () => true, 5000, from);
      expect(err.code, JSON.stringify(frame)).toBe(code);
      expect(err.message).toMatch(re);
    }
    const from = c.frames.length;
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await c.next('error', () => true, 5000, from)).code).toBe('E_FRAME');
    // Nothing was subscribed by the refused requests; the connection and the server carry on.
    expect(m.hub.clientInfo()[0]!.filters).toEqual([]);
    c.send({ type: 'subscribe', topics: ['test/#'] });
    await c.next('subscribed');
    const obs = track(await connectTcp(b));
    await obs.publishAsync('test/after', 'still here');
    expect((await c.next('message')).payload).toBe('still here');
    // A frame over the size limit closes that client only.
    const big = await open(m);
    big.send({ type: 'subscribe', topics: ['x'.repeat(70_000)] });
    await until(() => big.closed(), 5000, 'the oversized client closed');
    expect(c.closed()).toBe(false);
    expect((await fetch(new URL('/healthz', m.url))).status).toBe(200);
  });

  it('bounds a stalled client: queue and socket buffer stay capped, the rest is dropped and counted exactly', async () => {
    const { b, m } = await setup({ maxQueue: 50, maxBufferedBytes: 64 * 1024, maxMessagesPerSecond: 1e9 });
    const slow = await open(m);
    await slow.next('snapshot');
    slow.send({ type: 'subscribe', topics: ['flood/#'] });
    await slow.next('subscribed');
    const fast = await open(m);
    fast.send({ type: 'subscribe', topics: ['flood/#'] });
    await fast.next('subscribed');
    slow.pause();

    const obs = track(await connectTcp(b));
    const N = 1500;
    const payload = 'x'.repeat(16 * 1024);
    for (let i = 0; i < N; i++) obs.publish(`flood/${i}`, payload);
    await obs.publishAsync('flood/end', 'end', { qos: 1 });
    const total = N + 1;
    const count = (mc: MonitorClient): number => mc.frames.filter((f) => f.type === 'message').length;
    const dropped = (mc: MonitorClient): number => mc.frames.reduce((n, f) => n + (f.type === 'dropped' ? f.count : 0), 0);
    // The reading client is not held up by the stalled one: every message is either delivered
    // or reported dropped to it (a flood this fast fills its queue of 50 between two write rounds).
    await until(() => count(fast) + dropped(fast) === total, 20_000, 'the reading client\'s messages accounted for');
    expect(count(fast)).toBeGreaterThan(50);
    expect(count(slow)).toBe(0); // paused: nothing read yet
    const info = (): ReturnType<MonitorServer['hub']['clientInfo']>[number] => m.hub.clientInfo().find((i) => i.sent < total)!;
    await until(() => info().dropped > 0, 10_000, 'the stalled client to drop messages');
    expect(info().queued).toBeLessThanOrEqual(50);
    expect(info().bufferedAmount).toBeLessThan(64 * 1024 + 2 * payload.length);

    slow.resume();
    await until(() => count(slow) + dropped(slow) === total, 20_000, 'every message either delivered or reported dropped');
    expect(dropped(slow)).toBeGreaterThan(0);
    const last = slow.frames.filter((f) => f.type === 'dropped').at(-1);
    expect(last).toMatchObject({ type: 'dropped', total: dropped(slow) });
    expect(count(slow)).toBeGreaterThan(0);
    const metrics = await (await fetch(new URL(`/metrics?token=${TOKEN}`, m.url))).text();
    expect(metrics).toMatch(new RegExp(`^aiot_sim_monitor_dropped_total ${dropped(slow) + dropped(fast)}$`, 'm'));
  });

  it('limits each client\'s tap rate and reports what it dropped', async () => {
    // The hub's clock stands still while the burst goes through, so the bucket refills by the
    // same nothing however fast or slow this machine is; it moves on once the hub has every message.
    let clock = 0;
    const { b, m } = await setup({ maxMessagesPerSecond: 10, now: () => clock });
    const c = await open(m);
    c.send({ type: 'subscribe', topics: ['burst/#'] });
    await c.next('subscribed');
    const obs = track(await connectTcp(b));
    for (let i = 0; i < 100; i++) obs.publish(`burst/${i}`, String(i));
    await obs.publishAsync('burst/end', 'end', { qos: 1 });
    const seen = (): number => m.hub.clientInfo().reduce((n, i) => n + i.sent + i.queued + i.dropped, 0);
    await until(() => seen() === 101, 5000, 'the hub to take or drop every message');
    clock += 1000; // drop reports go out at most four a (hub) second
    const got = (): number => c.frames.filter((f) => f.type === 'message').length;
    const dropped = (): number => c.frames.reduce((n, f) => n + (f.type === 'dropped' ? f.count : 0), 0);
    await until(() => got() + dropped() === 101, 5000, 'all accounted for');
    expect(got()).toBeLessThanOrEqual(12); // one second of burst, and what refilled meanwhile
    expect(got()).toBeGreaterThanOrEqual(10);
  });

  it('terminates clients that stop answering pings and forgets their filters; live ones stay', async () => {
    const { b, m } = await setup({ heartbeatMs: 100 });
    const live = await open(m);
    const dead = await open(m, '', { autoPong: false });
    dead.send({ type: 'subscribe', topics: ['gone/#'] });
    live.send({ type: 'subscribe', topics: ['gone/#'] });
    await dead.next('subscribed');
    await live.next('subscribed');
    expect(m.hub.clientCount).toBe(2);
    await until(() => dead.closed(), 5000, 'the unresponsive client terminated');
    await until(() => m.hub.clientCount === 1, 5000, 'the hub to forget it');
    expect(live.closed()).toBe(false);
    // A client that vanishes without a close frame is forgotten too.
    const vanished = await open(m);
    await until(() => m.hub.clientCount === 2, 5000, 'the third client');
    vanished.socket.destroy();
    await until(() => m.hub.clientCount === 1, 5000, 'the vanished client forgotten');
    const obs = track(await connectTcp(b));
    await obs.publishAsync('gone/1', 'x', { qos: 1 });
    await live.next('message');
    expect(m.hub.clientInfo()).toEqual([expect.objectContaining({ filters: ['gone/#'], sent: 1 })]);
  });
});
