/**
 * Which web pages may talk to a listener that browsers can reach: the broker's MQTT-over-WebSocket
 * port and the monitor. Two checks on each HTTP request (and WebSocket upgrade):
 *
 * - `Host` (DNS rebinding): a page on `evil.example` whose name is made to resolve to 127.0.0.1
 *   reaches the listener as a same-origin request, with `Host: evil.example:PORT`. Only names that
 *   cannot be rebound are served: IP literals, `localhost`, the name the listener was bound to, and
 *   the hosts of the allowed origins. A request without `Host` (not a browser) passes.
 * - `Origin` (cross-site pages): browsers send it on every WebSocket handshake and cross-origin
 *   request. It must name the same host as `Host` (any port or scheme: the dashboard on :8080 uses
 *   the broker's :8083; `localhost`, 127.x.x.x and ::1 count as one host), or be one of the
 *   allowed origins (`--allow-origin`). A request without
 *   `Origin` (MQTT.js in Node, mosquitto, curl) passes; `Origin: null` (sandboxed frames, files) does not.
 */
import { isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { AiotSimError, OptionsError, type OptionProblem } from '../errors.js';

export interface OriginOptions {
  /** Origins (`scheme://host[:port]`) allowed besides the listener's own host. Default none. */
  allowOrigins?: readonly string[];
  /** The interface the listener binds to (a name given there is served). */
  host?: string;
}

/** Why a request was refused: which header, and the text to answer with. */
export interface OriginRefusal { header: 'host' | 'origin'; message: string }

/** `scheme://host[:port]` in the form browsers send it; throws E_OPTIONS saying what is wrong with `value` otherwise. */
export function normaliseOrigin(value: string): string {
  let url: URL | null = null;
  try {
    url = new URL(value);
  } catch {
    // reported below
  }
  if (!url || !/^https?:$/.test(url.protocol) || url.username || url.password || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    throw new AiotSimError('E_OPTIONS', 'input', `"${value}" is not an origin: expected http(s)://host[:port] with nothing after it, e.g. http://dashboard.lan:3000`);
  }
  return url.origin;
}

export class OriginPolicy {
  private readonly origins: ReadonlySet<string>;
  private readonly hosts: ReadonlySet<string>;

  /** Throws an OptionsError (E_OPTIONS) naming each allowed origin that is not one. */
  constructor(opts: OriginOptions = {}) {
    const problems: OptionProblem[] = [];
    const origins: string[] = [];
    for (const o of opts.allowOrigins ?? []) {
      try {
        origins.push(normaliseOrigin(o));
      } catch (e) {
        problems.push({ option: 'allowOrigins', message: (e as Error).message });
      }
    }
    if (problems.length) throw new OptionsError('E_OPTIONS', problems);
    this.origins = new Set(origins);
    const hosts = new Set(['localhost']);
    for (const o of origins) hosts.add(new URL(o).hostname);
    if (opts.host && isIP(opts.host) === 0) hosts.add(opts.host.toLowerCase());
    this.hosts = hosts;
  }

  /** Null when the request may go on; otherwise which header failed and why. */
  check(headers: IncomingHttpHeaders): OriginRefusal | null {
    const host = headers.host;
    let hostname: string | null = null;
    if (host !== undefined) {
      hostname = hostnameOf(`http://${host}`);
      if (hostname === null || !this.servesHost(hostname)) {
        return { header: 'host', message: `Host "${host.slice(0, 100)}" is not served here (DNS rebinding guard): use an IP address or localhost, or allow the page's origin with --allow-origin` };
      }
    }
    const origin = headers.origin;
    if (origin === undefined) return null;
    if (this.origins.has(origin)) return null;
    const originHost = origin === 'null' ? null : hostnameOf(origin);
    if (originHost !== null && hostname !== null && (originHost === hostname || (isLoopback(originHost) && isLoopback(hostname)))) return null;
    return { header: 'origin', message: `Origin "${origin.slice(0, 100)}" may not use this listener: only pages from this host, or origins allowed with --allow-origin` };
  }

  private servesHost(hostname: string): boolean {
    const bare = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
    return isIP(bare) !== 0 || this.hosts.has(hostname);
  }
}

/** Whether a host name or address (`[::1]` as in URLs, or `::1`) is this machine's loopback. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function hostnameOf(url: string): string | null {
  try {
    const u = new URL(url);
    return u.hostname === '' ? null : u.hostname;
  } catch {
    return null;
  }
}
