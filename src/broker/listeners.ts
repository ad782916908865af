/**
 * The embedded broker's network listeners: MQTT over TCP, and MQTT over WebSocket on the path
 * `/mqtt`. Each hands the connections it accepts to the broker, or drops them at once while the
 * broker refuses connections (down for a restart, or closed). Each holds at most
 * `maxConnections` connections; the WebSocket listener also refuses frames over the packet limit
 * (before buffering them), upgrades that do not come within the CONNECT deadline, and pages of
 * other sites (Origin) or rebound names (Host).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { AiotSimError } from '../errors.js';
import type { LimitHits } from './limits.js';
import type { OriginPolicy } from './web-origin.js';

export type Transport = 'tcp' | 'ws' | 'in-process';

export interface Address { host: string; port: number }

/** The broker side of a listener. */
export interface Acceptor {
  /** Whether new connections are dropped at once. */
  refusing(): boolean;
  /** Serve one accepted connection. */
  accept(conn: Duplex, transport: Transport, req?: IncomingMessage): void;
  /** Count a connection or request a bound stopped. */
  hit(limit: keyof LimitHits): void;
}

/** The bounds a network listener keeps. */
export interface ListenerLimits {
  maxConnections: number;
  /** Largest WebSocket frame, bytes (the packet limit: an MQTT packet never needs a bigger one). */
  maxPacketSize: number;
  /** Time to finish the WebSocket upgrade, ms (Aedes then gives the same time for CONNECT). */
  connectTimeoutMs: number;
  /** Which web pages may open WebSocket connections. */
  origins: OriginPolicy;
}

export interface Listener {
  readonly address: Address;
  /** Connections open now. */
  readonly connections: number;
  /** Stop listening; WebSocket connections are terminated first. */
  close(): Promise<void>;
}

/** Listen for MQTT over TCP. Rejects with E_PORT_IN_USE or E_PORT_DENIED. */
export async function listenTcp(host: string, port: number, to: Acceptor, limits: ListenerLimits): Promise<Listener> {
  // Nagle off on every accepted socket: Node sets it on each one's handle as it accepts it (a
  // setsockopt per connection; Linux would let accepted sockets inherit it from the listening
  // one, but Node offers no call for that other than through its internal handle).
  const server = createServer({ noDelay: true }, (socket: Socket) => {
    if (to.refusing()) {
      socket.destroy();
      return;
    }
    to.accept(socket, 'tcp');
  });
  const count = capConnections(server, limits.maxConnections, to);
  const address = await listen(server, host, port, 'MQTT');
  return { address, get connections() { return count.open; }, close: () => closeServer(server) };
}

/** Listen for MQTT over WebSocket (subprotocol `mqtt` or `mqttv3.1`) on `/mqtt`. */
export async function listenWs(host: string, port: number, to: Acceptor, limits: ListenerLimits): Promise<Listener> {
  const wss = new WebSocketServer({
    noServer: true,
    // ws buffers a whole frame before handing it on: without this, one unfinished 100 MiB frame
    // (ws' default) is held before the packet guard sees a byte of it.
    maxPayload: limits.maxPacketSize,
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
  });
  // The upgrade request must come within the CONNECT deadline (Node checks these timeouts every
  // connectionsCheckingInterval, so that is kept well under the deadline).
  const server = createHttpServer({
    headersTimeout: limits.connectTimeoutMs, requestTimeout: limits.connectTimeoutMs + 1, keepAliveTimeout: limits.connectTimeoutMs,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.connectTimeoutMs / 4))),
  }, (_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: connect to ws://HOST:PORT/mqtt\n');
  });
  const count = capConnections(server, limits.maxConnections, to);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') to.hit('connectTimeout');
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => undefined);
    if (!(req.url ?? '').startsWith('/mqtt')) {
      socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
      return;
    }
    if (to.refusing()) {
      socket.destroy();
      return;
    }
    const refused = limits.origins.check(req.headers);
    if (refused) {
      to.hit(refused.header);
      const text = `${refused.message}\n`;
      socket.end(`HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') to.hit('packetSize');
      });
      const stream = createWebSocketStream(ws);
      stream.on('error', () => undefined);
      to.accept(stream, 'ws', req);
    });
  });
  try {
    const address = await listen(server, host, port, 'MQTT over WebSocket');
    const close = async (): Promise<void> => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await closeServer(server);
    };
    return { address, get connections() { return count.open; }, close };
  } catch (err) {
    wss.close();
    throw err;
  }
}

/** At most `max` sockets open on `server` at once; Node closes the others as they come ('drop'). */
function capConnections(server: Server | HttpServer, max: number, to: Acceptor): { open: number } {
  const count = { open: 0 };
  server.maxConnections = max;
  server.on('connection', (socket: Socket) => {
    count.open++;
    socket.once('close', () => { count.open--; });
  });
  server.on('drop', () => to.hit('connections'));
  return count;
}

function listen(server: Server | HttpServer, host: string, port: number, what: string): Promise<Address> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'EADDRINUSE') {
        reject(new AiotSimError('E_PORT_IN_USE', 'environment',
          `${what} port ${port} on ${host} is already in use; stop whatever holds it or choose another port`, { cause: err }));
      } else if (err.code === 'EACCES') {
        reject(new AiotSimError('E_PORT_DENIED', 'environment', `${what} port ${port} on ${host}: permission denied`, { cause: err }));
      } else reject(err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const a = server.address() as AddressInfo;
      resolve({ host: a.address, port: a.port });
    });
  });
}

function closeServer(server: Server | HttpServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
