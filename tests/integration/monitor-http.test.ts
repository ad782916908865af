/**
 * The monitor's HTTP side on a running simulation: /healthz, token-guarded /api and /metrics,
 * the device API reading and commanding devices through the broker, and the page's files.
 * Real `fetch` against port 0, loopback only.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MonitorServer } from '../../src/monitor/server.js';
import { monitorSimulation } from '../../src/monitor/simulation.js';
import type { PlatformSnapshot } from '../../src/platform/service.js';
import { createSimulation, type Simulation } from '../../src/sim/simulation.js';
import { connectTcp, until } from '../helpers/mqtt.js';
import { tinyScenario } from '../helpers/scenario.js';
import { openMonitor, wsUrl } from '../helpers/ws.js';

const LIGHT = 'yeelink.light.mono6';

/** Prometheus text exposition -> { "name{labels}": value }; throws on a line that is neither a comment nor a sample. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** An HTTP request exactly as given (fetch will not send a request target like `//app.js` or set `Host`). */
function raw(base: string, target: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method: init.method ?? 'GET', path: target, headers: init.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('monitor HTTP server on a simulation', () => {
  let sim: Simulation;
  let monitor: MonitorServer;
  let did: string;
  const get = (path: string, init: RequestInit = {}): Promise<Response> => fetch(new URL(path, monitor.url), init);
  const auth = (): Record<string, string> => ({ authorization: `Bearer ${sim.operatorToken}` });

  beforeAll(async () => {
    sim = await createSimulation({
      scenario: tinyScenario({ homes: 3, mix: { [LIGHT]: 1, plug: 1 }, devicesPerHome: { '2': 1 }, regions: { es: 1, cn: 1 } }),
      speed: 'manual', broker: { mqttPort: 0, wsPort: null },
    });
    monitor = await monitorSimulation(sim, { port: 0, probeIntervalMs: 50 });
    did = sim.population.devices.find((d) => d.model.model === LIGHT)!.did;
  });

  afterAll(async () => {
    await monitor?.stop();
    await sim?.stop();
  });

  it('answers /healthz without a token and binds to loopback', async () => {
    const res = await get('/healthz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', monitors: 0 });
    expect(monitor.address?.host).toBe('127.0.0.1');
  });

  it('guards /api and /metrics with the token, by query or Bearer header', async () => {
    for (const path of ['/api/snapshot', '/api/devices', '/metrics', `/api/devices/${did}`]) {
      const none = await get(path);
      expect(none.status, path).toBe(401);
      expect(((await none.json()) as { error: string }).error).toMatch(/missing token/);
      expect((await get(`${path}?token=wrong-token-123`)).status, path).toBe(401);
    }
    const q = await get(`/api/snapshot?token=${sim.operatorToken}`);
    expect(q.status).toBe(200);
    const snap = (await q.json()) as PlatformSnapshot;
    expect(snap.connections.online).toBe(sim.snapshot().connections.online);
    expect((await get('/api/snapshot', { headers: auth() })).status).toBe(200);
    expect((await get('/api/nothing', { headers: auth() })).status).toBe(404);
  });

  it('serves Prometheus metrics that parse and move with the traffic', async () => {
    await until(() => sim.snapshot().connections.online === sim.population.devices.length, 10_000, 'every device online');
    const read = async (): Promise<Map<string, number>> => {
      const res = await get('/metrics', { headers: auth() });
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      return parseMetrics(await res.text());
    };
    const a = await read();
    expect(a.get('aiot_sim_devices_online')).toBe(sim.population.devices.length);
    const conn = sim.snapshot().connections;
    for (const [region, n] of Object.entries(conn.byRegion)) expect(a.get(`aiot_sim_devices_online_by_region{region="${region}"}`)).toBe(n);
    for (const [category, n] of Object.entries(conn.byCategory)) expect(a.get(`aiot_sim_devices_online_by_category{category="${category}"}`)).toBe(n);
    expect(a.get('aiot_sim_devices_online_by_category{category="light"}')).toBeGreaterThan(0);
    expect(a.get('aiot_sim_broker_clients')).toBe(sim.broker.connectedClients);
    expect(a.get('aiot_sim_active_users{window="mau"}')).toBe(sim.snapshot().activeUsers.mau);
    expect(a.get('aiot_sim_messages_published_total')).toBeGreaterThan(0);
    // Traffic that does not depend on what the tiny population happens to do: plugs switched on
    // report their power and the clock moves on.
    for (const did of sim.dids.filter((d) => sim.device(d)?.category === 'plug')) {
      await sim.command(did, 'set_properties', [{ did, siid: 2, piid: 1, value: true }]);
    }
    await sim.advance(2 * 3600_000);
    await until(() => sim.broker.counters.published > a.get('aiot_sim_messages_published_total')!, 5000, 'more traffic');
    const b = await read();
    expect(b.get('aiot_sim_messages_published_total')).toBeGreaterThan(a.get('aiot_sim_messages_published_total')!);
    expect(b.get('aiot_sim_messages_delivered_total')).toBeGreaterThanOrEqual(a.get('aiot_sim_messages_delivered_total')!);
    expect(b.get('aiot_sim_platform_event_time_seconds')).toBeGreaterThan(a.get('aiot_sim_platform_event_time_seconds')!);
    // The probe measures the broker's delivery latency several times a second here.
    let c = b;
    for (let i = 0; i < 100 && !(c.get('aiot_sim_broker_delivery_seconds_count')! > 0); i++) {
      await new Promise((r) => setTimeout(r, 50));
      c = await read();
    }
    expect(c.get('aiot_sim_broker_delivery_seconds_count')).toBeGreaterThan(0);
    expect(c.get('aiot_sim_broker_delivery_seconds_bucket{le="+Inf"}')).toBe(c.get('aiot_sim_broker_delivery_seconds_count'));
  });

  it('lists devices, reads one through the broker and changes it with set_properties', async () => {
    const list = (await (await get('/api/devices', { headers: auth() })).json()) as Array<{ did: string; category: string; model: string }>;
    expect(list.map((d) => d.did).sort()).toEqual([...sim.dids].sort());
    expect(list.find((d) => d.did === did)).toMatchObject({ model: LIGHT, category: 'light', name: expect.any(String) });

    const detail = (await (await get(`/api/devices/${did}`, { headers: auth() })).json()) as {
      did: string; properties: Array<{ siid: number; piid: number; name: string; access: string[] }>; values: Record<string, { code: number; value?: unknown }>;
    };
    expect(detail.did).toBe(did);
    expect(detail.properties.find((p) => p.siid === 2 && p.piid === 1)).toMatchObject({ name: 'on', access: ['read', 'write', 'notify'] });
    expect(detail.values['2.1']).toEqual({ code: 0, value: sim.device(did)!.store.get('2.1') });
    expect(detail.values['1.2']).toEqual({ code: 0, value: LIGHT });

    const want = !(sim.device(did)!.store.get('2.1') as boolean);
    const res = await get(`/api/devices/${did}/rpc`, {
      method: 'POST', headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ method: 'set_properties', params: [{ did, siid: 2, piid: 1, value: want }, { did, siid: 2, piid: 3, value: 42 }] }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ result: [{ siid: 2, piid: 1, code: 0 }, { siid: 2, piid: 3, code: 0 }] });
    expect(sim.device(did)!.store.get('2.1')).toBe(want);
    expect(sim.device(did)!.store.get('2.3')).toBe(42);
    // A value out of range is the device's answer, passed through.
    const bad = await get(`/api/devices/${did}/rpc`, {
      method: 'POST', headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ method: 'set_properties', params: [{ did, siid: 2, piid: 3, value: 500 }] }),
    });
    expect(await bad.json()).toMatchObject({ result: [{ code: -4005 }] });
    expect(sim.device(did)!.store.get('2.3')).toBe(42);
  });

  it('refuses commands without the header, with a bad body or for an unknown device, naming the problem', async () => {
    const post = (path: string, body: string, headers: Record<string, string> = { ...auth(), 'content-type': 'application/json' }): Promise<Response> =>
      get(path, { method: 'POST', headers, body });
    const rpcPath = `/api/devices/${did}/rpc`;
    const ok = JSON.stringify({ method: 'set_properties', params: [{ did, siid: 2, piid: 1, value: true }] });
    const cases: Array<[Promise<Response>, number, RegExp]> = [
      [post(`${rpcPath}?token=${sim.operatorToken}`, ok, { 'content-type': 'application/json' }), 401, /Authorization: Bearer/],
      [post(rpcPath, ok, auth()), 415, /Content-Type: application\/json/],
      [post(rpcPath, '{"method":'), 400, /not valid JSON/],
      [post(rpcPath, '[]'), 400, /JSON object/],
      [post(rpcPath, JSON.stringify({ method: 'reboot', params: [] })), 400, /method: expected one of get_properties, set_properties, action, got "reboot"/],
      [post(rpcPath, JSON.stringify({ method: 'set_properties' })), 400, /params: missing/],
      [post('/api/devices/nope/rpc', ok), 404, /no device "nope"/],
      [post('/api/devices/%E0%A4%A/rpc', ok), 400, /bad device id/],
      [post(rpcPath, 'x'.repeat(70_000)), 413, /at most/],
      [get(rpcPath, { headers: auth() }), 405, /method GET not allowed here; use POST/],
    ];
    for (const [p, status, re] of cases) {
      const res = await p;
      expect(res.status, String(re)).toBe(status);
      expect(((await res.json()) as { error: string }).error).toMatch(re);
    }
  });

  it('serves the dashboard page and its libraries from the package, nothing from elsewhere', async () => {
    const page = await get('/');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\//);
    for (const path of ['/app.js', '/style.css', '/vendor/uPlot.iife.min.js', '/vendor/uPlot.min.css', '/vendor/mqtt.esm.js']) {
      const res = await get(path);
      expect(res.status, path).toBe(200);
      expect((await res.arrayBuffer()).byteLength, path).toBeGreaterThan(100);
    }
    expect((await get('/../package.json')).status).toBe(404);
    expect((await get('/vendor/../../package.json')).status).toBe(404);
  });

  it('reports the broker\'s bounds, what they stopped and what its stores hold', async () => {
    const read = async (): Promise<Map<string, number>> => parseMetrics(await (await get('/metrics', { headers: auth() })).text());
    const a = await read();
    expect(a.get('aiot_sim_broker_limit{limit="connections"}')).toBe(10_000);
    expect(a.get('aiot_sim_broker_limit{limit="packet_size_bytes"}')).toBe(256 * 1024);
    expect(a.get('aiot_sim_broker_limit{limit="keepalive_seconds"}')).toBe(300);
    expect(a.get('aiot_sim_broker_limit{limit="queued_messages"}')).toBe(1000);
    expect(a.get('aiot_sim_broker_limit{limit="retained_bytes"}')).toBe(64 * 1024 * 1024);
    expect(a.get('aiot_sim_broker_connections{listener="tcp"}')).toBe(0);
    expect(a.get('aiot_sim_broker_retained_messages')).toBe(0); // devices' state is outside the bound
    const hits = a.get('aiot_sim_broker_limit_hits_total{limit="client_id_length"}')!;
    expect(hits).toBe(0);
    await expect(connectTcp(sim.broker, { clientId: 'x'.repeat(500) })).rejects.toMatchObject({ code: 2 });
    const b = await read();
    expect(b.get('aiot_sim_broker_limit_hits_total{limit="client_id_length"}')).toBe(hits + 1);
  });

  // Issue 14, item 1: a body nested 10,000 deep answered 504 and left a timer that ended the process 10 s later.
  it('refuses a command body nested deeper than any request before parsing it, and keeps serving', async () => {
    const params = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    const res = await get(`/api/devices/${did}/rpc`, {
      method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body: `{"method":"get_properties","params":${params}}`,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/body: arrays or objects nested more than 32 deep/);
    const ok = await get(`/api/devices/${did}/rpc`, {
      method: 'POST', headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ method: 'get_properties', params: [{ did, siid: 2, piid: 1 }] }),
    });
    expect(ok.status).toBe(200);
  });

  it('answers a /ws frame nested too deep with an error frame and keeps the connection', async () => {
    const m = await openMonitor(wsUrl(monitor.url, sim.operatorToken));
    try {
      await m.next('snapshot');
      m.send(`{"type":${'['.repeat(30_000)}${']'.repeat(30_000)}}`);
      const err = await m.next('error');
      expect(err).toMatchObject({ code: 'E_JSON', message: 'the frame nests arrays or objects more than 32 deep' });
      m.send({ type: 'ping' });
      await m.next('pong');
    } finally {
      await m.close();
    }
  });

  // Issue 14, item 6: `//app.js` was parsed as a URL with `app.js` as its host (and served the page).
  it('takes a request target that starts with // as a path', async () => {
    const res = await raw(monitor.url, '//app.js');
    expect(res.status).toBe(404);
    expect(JSON.parse(res.body)).toEqual({ error: 'no such page: //app.js' });
    expect((await raw(monitor.url, 'http://elsewhere/app.js')).status).toBe(400);
  });

  // Issue 14, item 5: DNS rebinding (a foreign name resolving to 127.0.0.1) and cross-site pages.
  it('serves only Host names that cannot be rebound, and pages of its own host', async () => {
    const port = monitor.address!.port;
    const refused0 = (await (await get('/metrics', { headers: auth() })).text()).match(/aiot_sim_monitor_refused_requests_total\{reason="host"\} (\d+)/)?.[1] ?? '0';
    const rebound = await raw(monitor.url, '/healthz', { headers: { host: `rebind.example:${port}` } });
    expect(rebound.status).toBe(403);
    expect(JSON.parse(rebound.body).error).toMatch(/Host "rebind.example:\d+" is not served here \(DNS rebinding guard\)/);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
      expect((await raw(monitor.url, '/healthz', { headers: { host } })).status, host).toBe(200);
    }
    const token = { authorization: `Bearer ${sim.operatorToken}` };
    const cross = await raw(monitor.url, '/api/snapshot', { headers: { ...token, origin: 'http://evil.example' } });
    expect(cross.status).toBe(403);
    expect(JSON.parse(cross.body).error).toMatch(/Origin "http:\/\/evil.example" may not use this listener/);
    expect((await raw(monitor.url, '/api/snapshot', { headers: { ...token, origin: 'null' } })).status).toBe(403);
    expect((await raw(monitor.url, '/api/snapshot', { headers: { ...token, origin: `http://127.0.0.1:${port}` } })).status).toBe(200);
    expect((await raw(monitor.url, '/api/snapshot', { headers: { ...token, origin: 'http://localhost:3000' } })).status).toBe(200);
    // The WebSocket endpoint: refused at the upgrade, before the token is even looked at.
    await expect(openMonitor(wsUrl(monitor.url, sim.operatorToken), { origin: 'http://evil.example' })).rejects.toMatchObject({ status: 403 });
    await expect(openMonitor(wsUrl(monitor.url, sim.operatorToken), { headers: { host: `rebind.example:${port}` } })).rejects.toMatchObject({ status: 403 });
    const own = await openMonitor(wsUrl(monitor.url, sim.operatorToken), { origin: `http://127.0.0.1:${port}` });
    await own.close();
    const metrics = await (await get('/metrics', { headers: auth() })).text();
    expect(Number(metrics.match(/aiot_sim_monitor_refused_requests_total\{reason="host"\} (\d+)/)?.[1])).toBe(Number(refused0) + 2);
    expect(Number(metrics.match(/aiot_sim_monitor_refused_requests_total\{reason="origin"\} (\d+)/)?.[1])).toBeGreaterThanOrEqual(3);
  });
});

describe('monitor with allowed origins', () => {
  let sim: Simulation;
  let monitor: MonitorServer;

  beforeAll(async () => {
    sim = await createSimulation({ scenario: tinyScenario({ homes: 1, mix: { plug: 1 }, devicesPerHome: { '1': 1 }, regions: { es: 1 } }), speed: 'manual', broker: { mqttPort: 0, wsPort: null } });
    monitor = await monitorSimulation(sim, { port: 0, probeIntervalMs: null, allowOrigins: ['https://dashboard.example:8443'] });
  });

  afterAll(async () => {
    await monitor?.stop();
    await sim?.stop();
  });

  it('lets pages of an allowed origin in, under their own host name too', async () => {
    const port = monitor.address!.port;
    const headers = { authorization: `Bearer ${sim.operatorToken}` };
    expect((await raw(monitor.url, '/api/snapshot', { headers: { ...headers, origin: 'https://dashboard.example:8443' } })).status).toBe(200);
    expect((await raw(monitor.url, '/api/snapshot', { headers: { ...headers, origin: 'https://dashboard.example' } })).status).toBe(403);
    expect((await raw(monitor.url, '/healthz', { headers: { host: `dashboard.example:${port}` } })).status).toBe(200);
    expect((await raw(monitor.url, '/healthz', { headers: { host: `other.example:${port}` } })).status).toBe(403);
  });

  it('refuses an allowed origin that is not an origin, naming it', async () => {
    await expect(monitorSimulation(sim, { port: 0, probeIntervalMs: null, allowOrigins: ['dashboard.example'] }))
      .rejects.toThrow('allowOrigins: "dashboard.example" is not an origin');
  });
});
