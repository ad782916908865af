/** A real `ws` monitor client for the /ws endpoint, recording every frame from the first; bounded waits only. */
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import type { ClientFrame, ServerFrame } from '../../src/monitor/protocol.js';
import { until } from './mqtt.js';

export interface MonitorClient {
  ws: WebSocket;
  /** The TCP connection under `ws` (from its upgrade response). */
  socket: Socket;
  frames: ServerFrame[];
  /** Resolve with the first frame (already received or to come) after index `from` matching `pred`. */
  next<T extends ServerFrame['type']>(type: T, pred?: (f: Extract<ServerFrame, { type: T }>) => boolean, ms?: number, from?: number): Promise<Extract<ServerFrame, { type: T }>>;
  send(frame: ClientFrame | Record<string, unknown> | string): void;
  /** Stop reading from the socket (the kernel buffers fill, then the server's side backs up). */
  pause(): void;
  resume(): void;
  closed(): boolean;
  close(): Promise<void>;
}

export function wsUrl(base: string, token: string | null, extra = ''): string {
  const u = new URL('/ws', base.replace(/^http/, 'ws'));
  if (token !== null) u.searchParams.set('token', token);
  return u.toString() + extra;
}

/** Open a monitor; rejects with the HTTP status when the upgrade is refused. */
export function openMonitor(url: string, opts: WebSocket.ClientOptions = {}): Promise<MonitorClient> {
  const ws = new WebSocket(url, opts);
  const frames: ServerFrame[] = [];
  let isClosed = false;
  ws.on('message', (data) => frames.push(JSON.parse(String(data)) as ServerFrame));
  ws.on('close', () => { isClosed = true; });
  let socket: Socket | null = null;
  ws.once('upgrade', (res) => { socket = res.socket as Socket; });
  const tcp = (): Socket => {
    if (!socket) throw new Error('the monitor is not connected yet');
    return socket;
  };
  const client: MonitorClient = {
    ws,
    get socket() { return tcp(); },
    frames,
    async next(type, pred = () => true, ms = 5000, from = 0) {
      type F = Extract<ServerFrame, { type: typeof type }>;
      const find = (): F | undefined => frames.slice(from).find((f): f is F => f.type === type && pred(f as F));
      await until(() => find() !== undefined || isClosed, ms, `a "${type}" frame`);
      const f = find();
      if (!f) throw new Error(`socket closed before a matching "${type}" frame`);
      return f;
    },
    send(frame) { ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)); },
    pause() { tcp().pause(); },
    resume() { tcp().resume(); },
    closed: () => isClosed,
    close() {
      if (isClosed) return Promise.resolve();
      return new Promise((resolve) => {
        ws.once('close', () => resolve());
        ws.terminate();
      });
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => reject(Object.assign(new Error(`refused with HTTP ${res.statusCode}: ${body.trim()}`), { status: res.statusCode, body })));
    });
    ws.once('error', (err) => reject(err));
  });
}
