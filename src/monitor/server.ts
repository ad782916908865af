/**
 * The monitoring HTTP server: one port for the dashboard page, `/api`, `/metrics`, `/healthz` and
 * the `/ws` WebSocket endpoint. Everything but the page's static files and `/healthz` needs the
 * token (`?token=` or `Authorization: Bearer`; commands only the header). Every request, upgrades
 * included, passes the Host and Origin checks first (web-origin.ts: DNS rebinding, cross-site
 * pages). Binds to 127.0.0.1 by default. `start()` opens it, `stop()` closes every connection,
 * timer and listener it added.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OriginPolicy } from '../broker/web-origin.js';
import { AiotSimError } from '../errors.js';
import { logger } from '../log.js';
import { Assets } from './assets.js';
import { bearer, MonitorHub, type HubOptions } from './hub.js';
import { MonitorMetrics } from './metrics.js';
import { MAX_JSON_DEPTH, nestedDeeperThan } from './json-depth.js';
import { DeliveryProbe } from './probe.js';
import type { DeviceCommander, DeviceReading, MonitoredBroker, MonitoredPlatform, MonitorInfo, RpcMethodName } from './source.js';

const log = logger('monitor');

export interface MonitorOptions extends HubOptions {
  broker: MonitoredBroker;
  platform: MonitoredPlatform;
  /** Device list and commands for the dashboard's device view; omit when there are no devices (`serve`). */
  devices?: DeviceCommander;
  /** Interface to bind. Default 127.0.0.1. */
  host?: string;
  /** HTTP port; 0 picks a free one. Default 8080. */
  port?: number;
  /** Interval of the delivery-latency probe, ms; null turns it off. Default 1000. */
  probeIntervalMs?: number | null;
  /** Shown by the page and /api/info (e.g. the scenario's name). */
  title?: string;
  /** Web origins (`scheme://host[:port]`) whose pages may use the monitor besides its own host's. Default none. */
  allowOrigins?: readonly string[];
}

const BODY_LIMIT = 64 * 1024;
const METHODS: readonly RpcMethodName[] = ['get_properties', 'set_properties', 'action'];
/** MIoT allows at most 64 items per property request. */
const RPC_BATCH = 64;

class HttpError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

export class MonitorServer {
  readonly metrics: MonitorMetrics;
  readonly hub: MonitorHub;
  /** Where it listens, once started. */
  address: { host: string; port: number } | null = null;
  private readonly server: Server;
  private readonly assets = new Assets();
  private readonly probe: DeliveryProbe | null;
  private stopping: Promise<void> | null = null;
  private readonly stopHooks: Array<() => void> = [];
  private readonly origins: OriginPolicy;

  private constructor(private readonly opts: MonitorOptions) {
    this.origins = new OriginPolicy({ allowOrigins: opts.allowOrigins ?? [], host: opts.host ?? '127.0.0.1' });
    let hub: MonitorHub | null = null;
    this.metrics = new MonitorMetrics(opts.broker, opts.platform, () => hub);
    this.hub = hub = new MonitorHub(opts.broker, opts.platform, opts, this.metrics);
    const probeMs = opts.probeIntervalMs === undefined ? 1000 : opts.probeIntervalMs;
    this.probe = probeMs === null ? null : new DeliveryProbe(opts.broker, probeMs, (s) => this.metrics.deliveryLatency.observe(s));
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => this.fail(res, err));
    });
    this.server.on('upgrade', (req, socket, head) => {
      socket.on('error', () => undefined);
      const refused = this.origins.check(req.headers);
      if (refused) {
        this.metrics.requestsRefused.inc({ reason: refused.header });
        socket.end(`HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(refused.message) + 1}\r\n\r\n${refused.message}\n`);
        return;
      }
      const url = parseUrl(req);
      if (url?.pathname === '/ws') this.hub.handleUpgrade(req, socket, head, url);
      else socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    });
    this.server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    });
  }

  /** Open the HTTP server. Rejects with E_PORT_IN_USE when the port is taken. */
  static async start(opts: MonitorOptions): Promise<MonitorServer> {
    if (typeof opts.token !== 'string' || opts.token.length < 8) {
      throw new AiotSimError('E_OPTIONS', 'input', 'monitor token: use at least 8 characters');
    }
    const m = new MonitorServer(opts);
    const host = opts.host ?? '127.0.0.1';
    const port = opts.port ?? 8080;
    try {
      m.hub.start();
      await new Promise<void>((resolve, reject) => {
        const onError = (err: NodeJS.ErrnoException): void => {
          reject(err.code === 'EADDRINUSE'
            ? new AiotSimError('E_PORT_IN_USE', 'environment', `HTTP port ${port} on ${host} is already in use; stop whatever holds it or choose another port (--http-port)`, { cause: err })
            : err);
        };
        m.server.once('error', onError);
        m.server.listen(port, host, () => {
          m.server.off('error', onError);
          resolve();
        });
      });
      const a = m.server.address() as AddressInfo;
      m.address = { host: a.address, port: a.port };
      await m.probe?.start();
    } catch (err) {
      await m.stop();
      throw err;
    }
    return m;
  }

  /** http://HOST:PORT/ */
  get url(): string {
    const a = this.address;
    if (!a) throw new AiotSimError('E_NOT_STARTED', 'input', 'the monitor is not listening');
    const host = a.host.includes(':') ? `[${a.host}]` : a.host;
    return `http://${host}:${a.port}/`;
  }

  /** The dashboard's address with the token, to open in a browser. */
  get dashboardUrl(): string {
    return `${this.url}?token=${encodeURIComponent(this.opts.token)}`;
  }

  /** Run `fn` when the server stops (to remove listeners it was given). */
  onStop(fn: () => void): void {
    this.stopHooks.push(fn);
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const fn of this.stopHooks.splice(0)) fn();
      await this.probe?.stop();
      await this.hub.close();
      await new Promise<void>((resolve) => {
        if (!this.server.listening) return resolve();
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
    })();
    return this.stopping;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const refused = this.origins.check(req.headers);
    if (refused) {
      this.metrics.requestsRefused.inc({ reason: refused.header });
      throw new HttpError(403, refused.message);
    }
    const url = parseUrl(req);
    if (!url) throw new HttpError(400, 'bad request URL');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/healthz') {
      expectMethod(method, 'GET');
      return json(res, 200, { status: 'ok', monitors: this.hub.clientCount });
    }
    if (this.assets.has(path)) {
      expectMethod(method, 'GET');
      const a = await this.assets.get(path);
      res.writeHead(200, {
        'content-type': a.type,
        'cache-control': 'no-cache',
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'content-security-policy': "default-src 'self'; connect-src 'self' ws: wss:; worker-src 'self' blob:; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
      });
      res.end(a.body);
      return;
    }
    if (path === '/metrics') {
      expectMethod(method, 'GET');
      this.authorise(req, url);
      const text = await this.metrics.text();
      res.writeHead(200, { 'content-type': this.metrics.contentType });
      res.end(text);
      return;
    }
    if (!path.startsWith('/api/')) throw new HttpError(404, `no such page: ${path}`);
    if (method === 'POST') {
      // Commands: the header only, so a link or a cross-site form cannot carry the token.
      if (!this.hub.authorised(bearer(req.headers.authorization))) throw new HttpError(401, 'commands need the header Authorization: Bearer TOKEN');
    } else this.authorise(req, url);
    return this.api(req, res, path, method);
  }

  private async api(req: IncomingMessage, res: ServerResponse, path: string, method: string): Promise<void> {
    if (path === '/api/snapshot') {
      expectMethod(method, 'GET');
      return json(res, 200, this.opts.platform.snapshot());
    }
    if (path === '/api/info') {
      expectMethod(method, 'GET');
      const b = this.opts.broker;
      return json(res, 200, {
        title: this.opts.title ?? 'aiot-sim',
        mqtt: b.mqttAddress ? `mqtt://${b.mqttAddress.host}:${b.mqttAddress.port}` : null,
        mqttWs: b.wsAddress ? `ws://${b.wsAddress.host}:${b.wsAddress.port}/mqtt` : null,
        devices: this.opts.devices !== undefined,
        statsIntervalMs: this.opts.statsIntervalMs ?? 1000,
      } satisfies MonitorInfo);
    }
    const devices = this.opts.devices;
    if (path === '/api/devices') {
      expectMethod(method, 'GET');
      return json(res, 200, devices ? devices.list() : []);
    }
    const m = /^\/api\/devices\/([^/]+)(\/rpc)?$/.exec(path);
    if (!m) throw new HttpError(404, `no such API: ${path}`);
    if (!devices) throw new HttpError(404, 'no devices here: the monitor runs without a simulation');
    let did: string;
    try {
      did = decodeURIComponent(m[1]!);
    } catch {
      throw new HttpError(400, `bad device id in the path: ${m[1]}`);
    }
    const device = devices.describe(did);
    if (!device) throw new HttpError(404, `no device "${did}"`);
    if (!m[2]) {
      expectMethod(method, 'GET');
      // Current values through the broker, as any client would read them (get_properties).
      const readable = device.properties.filter((p) => p.access.includes('read'));
      const values: DeviceReading['values'] = {};
      for (let i = 0; i < readable.length; i += RPC_BATCH) {
        const batch = readable.slice(i, i + RPC_BATCH).map((p) => ({ did, siid: p.siid, piid: p.piid }));
        const r = await this.rpc(devices, did, 'get_properties', batch);
        if ('error' in r) throw new HttpError(502, `get_properties: device answered ${r.error.code} ${r.error.message}`);
        if (Array.isArray(r.result)) for (const x of r.result) values[`${x.siid}.${x.piid}`] = x.value === undefined ? { code: x.code } : { code: x.code, value: x.value };
      }
      return json(res, 200, { ...device, values } satisfies DeviceReading);
    }
    expectMethod(method, 'POST');
    const body = await readJson(req);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body: expected a JSON object {"method","params"}');
    const b = body as Record<string, unknown>;
    if (!METHODS.includes(b['method'] as RpcMethodName)) throw new HttpError(400, `method: expected one of ${METHODS.join(', ')}, got ${JSON.stringify(b['method']) ?? 'nothing'}`);
    if (b['params'] === undefined) throw new HttpError(400, 'params: missing');
    return json(res, 200, await this.rpc(devices, did, b['method'] as RpcMethodName, b['params']));
  }

  private async rpc(devices: DeviceCommander, did: string, method: RpcMethodName, params: unknown): ReturnType<DeviceCommander['command']> {
    try {
      return await devices.command(did, method, params);
    } catch (err) {
      throw new HttpError(504, `${method} to ${did}: ${(err as Error).message}`);
    }
  }

  private authorise(req: IncomingMessage, url: URL): void {
    const token = url.searchParams.get('token') ?? bearer(req.headers.authorization);
    if (!this.hub.authorised(token)) throw new HttpError(401, token ? 'wrong token' : 'missing token: add ?token=TOKEN or Authorization: Bearer TOKEN');
  }

  private fail(res: ServerResponse, err: unknown): void {
    const status = err instanceof HttpError ? err.status : 500;
    if (status === 500) log.error({ err }, 'monitor request failed');
    const message = err instanceof HttpError ? err.message : 'internal error';
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers: Record<string, string> = {};
    if (status === 401) headers['www-authenticate'] = 'Bearer';
    json(res, status, { error: message }, headers);
  }
}

/** The request's path and query. A request target must be a path: `//app.js` is the path `//app.js`, not a host. */
function parseUrl(req: IncomingMessage): URL | null {
  const target = req.url ?? '/';
  if (!target.startsWith('/')) return null;
  try {
    return new URL(`http://monitor${target}`);
  } catch {
    return null;
  }
}

function expectMethod(method: string, want: string): void {
  if (method !== want && !(want === 'GET' && method === 'HEAD')) throw new HttpError(405, `method ${method} not allowed here; use ${want}`);
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(text);
}

function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) return Promise.reject(new HttpError(415, 'body: send Content-Type: application/json'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      // Over the limit: keep reading (and discarding) so the client gets its 413, within reason.
      if (size > BODY_LIMIT * 16) req.destroy();
      else if (size <= BODY_LIMIT) chunks.push(c);
    });
    req.on('error', reject);
    req.on('close', () => reject(new HttpError(400, 'body: the request was cut off')));
    req.on('end', () => {
      if (size > BODY_LIMIT) return reject(new HttpError(413, `body: at most ${BODY_LIMIT} bytes`));
      const text = Buffer.concat(chunks).toString('utf8');
      if (nestedDeeperThan(text)) return reject(new HttpError(400, `body: arrays or objects nested more than ${MAX_JSON_DEPTH} deep`));
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new HttpError(400, 'body: not valid JSON'));
      }
    });
  });
}
