/**
 * The embedded broker's network listeners: MQTT over TCP, and MQTT over WebSocket on the path
 * `/mqtt`. Each hands the connections it accepts to the broker, or drops them at once while the
 * broker refuses connections (down for a restart, or closed).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { AiotSimError } from '../errors.js';
import { coalesceWrites } from './write-batching.js';

export type Transport = 'tcp' | 'ws' | 'in-process';

export interface Address { host: string; port: number }

/** The broker side of a listener. */
export interface Acceptor {
  /** Whether new connections are dropped at once. */
  refusing(): boolean;
  /** Serve one accepted connection. */
  accept(conn: Duplex, transport: Transport, req?: IncomingMessage): void;
}

export interface Listener {
  readonly address: Address;
  /** Stop listening; WebSocket connections are terminated first. */
  close(): Promise<void>;
}

/** Listen for MQTT over TCP. Rejects with E_PORT_IN_USE or E_PORT_DENIED. */
export async function listenTcp(host: string, port: number, to: Acceptor): Promise<Listener> {
  const server = createServer((socket: Socket) => {
    socket.setNoDelay(true);
    if (to.refusing()) {
      socket.destroy();
      return;
    }
    coalesceWrites(socket);
    to.accept(socket, 'tcp');
  });
  const address = await listen(server, host, port, 'MQTT');
  return { address, close: () => closeServer(server) };
}

/** Listen for MQTT over WebSocket (subprotocol `mqtt` or `mqttv3.1`) on `/mqtt`. */
export async function listenWs(host: string, port: number, to: Acceptor): Promise<Listener> {
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
  });
  const server = createHttpServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: connect to ws://HOST:PORT/mqtt\n');
  });
  server.on('upgrade', (req, socket, head) => {
    if (!(req.url ?? '').startsWith('/mqtt')) {
      socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
      return;
    }
    if (to.refusing()) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
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
    return { address, close };
  } catch (err) {
    wss.close();
    throw err;
  }
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
