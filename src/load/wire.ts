/**
 * A lean MQTT 3.1.1 client for the load generator and the latency probe: a TCP or WebSocket byte
 * stream, CONNECT/CONNACK and keep-alive via mqtt-packet, and raw writes of pre-serialised packets.
 * mqtt.js would cost more per message than the broker under test; this costs a Buffer copy.
 */
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { WebSocket, createWebSocketStream } from 'ws';

export interface WireTarget {
  transport: 'tcp' | 'ws';
  host: string;
  port: number;
  /** WebSocket path, e.g. "/mqtt". */
  path: string;
}

export interface WireConnectOptions {
  clientId: string;
  username?: string;
  password?: string;
  /** Keep-alive in seconds (PINGREQ every half of it). Default 60. */
  keepalive?: number;
  /** CONNECT must be answered within this many ms. Default 10,000. */
  timeoutMs?: number;
  will?: { topic: string; payload: Buffer; qos: 0 | 1; retain: boolean };
}

/** Parse `mqtt://host:port` or `ws://host:port/path` into a target. */
export function parseBrokerUrl(url: string): WireTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RangeError(`not a URL: "${url}"; expected mqtt://HOST:PORT or ws://HOST:PORT/PATH`);
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (scheme === 'mqtt' || scheme === 'tcp') {
    return { transport: 'tcp', host: stripBrackets(u.hostname), port: u.port ? Number(u.port) : 1883, path: '' };
  }
  if (scheme === 'ws') {
    return { transport: 'ws', host: stripBrackets(u.hostname), port: u.port ? Number(u.port) : 80, path: u.pathname === '' || u.pathname === '/' ? '/mqtt' : u.pathname };
  }
  throw new RangeError(`unsupported scheme "${scheme}:" in "${url}"; use mqtt:// or ws:// (TLS is not supported by bench)`);
}

function stripBrackets(h: string): string { return h.startsWith('[') ? h.slice(1, -1) : h; }

export function targetUrl(t: WireTarget): string {
  return t.transport === 'tcp' ? `mqtt://${t.host}:${t.port}` : `ws://${t.host}:${t.port}${t.path}`;
}

/** Open the byte stream to the broker (resolves once it is connected). */
export function openStream(t: WireTarget, timeoutMs: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`no connection to ${targetUrl(t)} within ${timeoutMs} ms`)), timeoutMs);
    const done = (s: Duplex): void => { if (!settled) { settled = true; clearTimeout(timer); resolve(s); } };
    function fail(err: Error): void { if (!settled) { settled = true; clearTimeout(timer); reject(err); } }
    if (t.transport === 'tcp') {
      const s: Socket = netConnect({ host: t.host, port: t.port });
      s.setNoDelay(true);
      s.once('connect', () => { s.off('error', fail); done(s); });
      s.once('error', fail);
    } else {
      const ws = new WebSocket(`ws://${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}${t.path}`, 'mqtt', { perMessageDeflate: false });
      ws.once('open', () => {
        ws.off('error', fail);
        const stream = createWebSocketStream(ws);
        done(stream);
      });
      ws.once('error', fail);
    }
  });
}

const PINGREQ = Buffer.from([0xc0, 0x00]);

/**
 * One MQTT session over a raw stream. The hot packets are decoded inline, without allocating a
 * packet object: PUBLISH goes to `onPublish` (when set) and PUBACK to `onPuback`. Everything else
 * (and PUBLISH when `onPublish` is not set) goes through mqtt-packet's parser to `onPacket`.
 */
export class WireClient {
  onPacket: (p: Packet) => void = () => undefined;
  onPublish: ((payload: Buffer, qos: number, messageId: number) => void) | null = null;
  onPuback: ((messageId: number) => void) | null = null;
  onClose: (err: Error | null) => void = () => undefined;
  private closed = false;
  private ping: NodeJS.Timeout | null = null;
  private readonly parser = mqttPacket.parser({ protocolVersion: 4 });
  private pending: Buffer | null = null;

  private constructor(readonly stream: Duplex) {
    this.parser.on('packet', (p: Packet) => this.onPacket(p));
    this.parser.on('error', (err: Error) => this.destroy(err));
    stream.on('data', (b: Buffer) => this.frames(b));
    stream.on('error', (err: Error) => this.finish(err));
    stream.on('close', () => this.finish(null));
  }

  /** Split the byte stream into MQTT frames; decode PUBLISH and PUBACK inline. */
  private frames(chunk: Buffer): void {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let at = 0;
    const n = buf.length;
    while (at < n) {
      if (n - at < 2) break;
      const type = buf[at]! >> 4;
      // Remaining length: 1 to 4 bytes, 7 bits each.
      let len = 0;
      let mul = 1;
      let i = at + 1;
      let complete = false;
      for (let k = 0; k < 4 && i < n; k++, i++) {
        const byte = buf[i]!;
        len += (byte & 0x7f) * mul;
        mul *= 128;
        if ((byte & 0x80) === 0) { complete = true; i++; break; }
      }
      if (!complete) {
        if (i - at > 4) { this.destroy(new Error('malformed remaining length from the broker')); return; }
        break;
      }
      const end = i + len;
      if (end > n) break;
      if (type === 3 && this.onPublish) {
        const qos = (buf[at]! >> 1) & 3;
        const topicLen = (buf[i]! << 8) | buf[i + 1]!;
        let p = i + 2 + topicLen;
        let messageId = 0;
        if (qos > 0) { messageId = (buf[p]! << 8) | buf[p + 1]!; p += 2; }
        this.onPublish(buf.subarray(p, end), qos, messageId);
      } else if (type === 4 && this.onPuback && len === 2) {
        this.onPuback((buf[i]! << 8) | buf[i + 1]!);
      } else {
        this.parser.parse(buf.subarray(at, end));
      }
      if (this.closed) return;
      at = end;
    }
    if (at < n) {
      // Keep the partial frame (copied: the chunk's memory may be reused).
      this.pending = Buffer.from(buf.subarray(at));
    }
  }

  /** Connect and wait for CONNACK; rejects with the broker's return code when refused. */
  static async connect(target: WireTarget, o: WireConnectOptions): Promise<WireClient> {
    return WireClient.over(await openStream(target, o.timeoutMs ?? 10_000), o);
  }

  /** CONNECT over a stream already open (a socket, or an embedded broker's in-process pipe) and wait for CONNACK. */
  static async over(stream: Duplex, o: WireConnectOptions): Promise<WireClient> {
    const timeoutMs = o.timeoutMs ?? 10_000;
    const c = new WireClient(stream);
    const keepalive = o.keepalive ?? 60;
    const connect: Packet = {
      cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: o.clientId, keepalive,
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: Buffer.from(o.password) } : {}),
      ...(o.will ? { will: o.will } : {}),
    };
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { c.destroy(); reject(new Error(`no CONNACK within ${timeoutMs} ms`)); }, timeoutMs);
      c.onPacket = (p) => {
        if (p.cmd !== 'connack') return;
        clearTimeout(timer);
        if (p.returnCode === 0) resolve();
        else { c.destroy(); reject(new Error(`connection refused by the broker (CONNACK return code ${p.returnCode ?? '?'})`)); }
      };
      c.onClose = (err) => { clearTimeout(timer); reject(err ?? new Error('connection closed before CONNACK')); };
      stream.write(mqttPacket.generate(connect));
    });
    c.onPacket = () => undefined;
    c.onClose = () => undefined;
    if (keepalive > 0) {
      c.ping = setInterval(() => { if (!c.closed) c.stream.write(PINGREQ); }, (keepalive * 1000) / 2);
      c.ping.unref();
    }
    return c;
  }

  get isClosed(): boolean { return this.closed; }
  /** Bytes written but not yet handed to the kernel. */
  get buffered(): number { return this.stream.writableLength; }

  write(buf: Buffer): boolean {
    if (this.closed) return false;
    return this.stream.write(buf);
  }

  /** SUBSCRIBE and wait for the SUBACK; rejects when a filter is refused (0x80). */
  subscribe(filters: string[], qos: 0 | 1, timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const prev = this.onPacket;
      const timer = setTimeout(() => { this.onPacket = prev; reject(new Error(`no SUBACK within ${timeoutMs} ms`)); }, timeoutMs);
      this.onPacket = (p) => {
        if (p.cmd !== 'suback') return prev(p);
        clearTimeout(timer);
        this.onPacket = prev;
        const refused = (p.granted as number[]).findIndex((g) => g === 0x80);
        if (refused >= 0) reject(new Error(`the broker refused the subscription to "${filters[refused]}"`));
        else resolve();
      };
      this.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: filters.map((topic) => ({ topic, qos })) }));
    });
  }

  /** DISCONNECT and close. */
  end(): void {
    if (this.closed) return;
    this.stream.end(Buffer.from([0xe0, 0x00]));
    setTimeout(() => this.destroy(), 1000).unref();
  }

  destroy(err?: Error): void {
    this.stream.destroy(err);
    this.finish(err ?? null);
  }

  private finish(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ping) clearInterval(this.ping);
    this.onClose(err);
  }
}
