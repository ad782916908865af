/**
 * The embedded MQTT broker: Aedes 1.x (MQTT 3.1.1) behind three listeners (TCP, MQTT over
 * WebSocket, in-process byte pipes), with our authentication and ACL, a flood-safe emitter and
 * counters of what it published, delivered and rejected.
 */
import { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Aedes, type AedesPublishPacket, type Client, type Connection, type PublishPacket, type Subscription } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { AiotSimError } from '../errors.js';
import { AccessDirectory, type Principal } from './access.js';
import { createDuplexPair } from './duplex-pair.js';
import { FloodSafeEmitter } from './emitter.js';
import { OverloadGuard, type OverloadOptions } from './overload.js';
import { indexedMemoryPersistence } from './retained-index.js';
import { coalesceWrites } from './write-batching.js';

export type Transport = 'tcp' | 'ws' | 'in-process';

export interface BrokerOptions {
  /** Interface to bind listeners to. Default 127.0.0.1 (loopback only). */
  host?: string;
  /** MQTT over TCP port; 0 picks a free one; null disables TCP. Default 1883. */
  mqttPort?: number | null;
  /** MQTT over WebSocket port (path /mqtt); 0 picks a free one; null disables it. Default null. */
  wsPort?: number | null;
  /** Password of the `operator` account. */
  operatorToken: string;
  /** Let clients without a username connect as read-only observers. Default true. */
  allowAnonymous?: boolean;
  /** Messages Aedes delivers at once before the rest wait. Default 100. */
  concurrency?: number;
  /** When to shed deliveries to subscribers that cannot keep up (overload.ts). Default: 1 MiB for QoS 0, 16 MiB for QoS 1. */
  overload?: OverloadOptions;
}

export interface BrokerCounters {
  /** PUBLISH packets accepted from clients. */
  published: number;
  /** Messages forwarded to subscribers (one per receiving client). */
  delivered: number;
  /** Publishes and subscriptions refused by the ACL, and refused CONNECTs. */
  rejected: number;
  rejectedConnects: number;
}

/** `connId` tells sessions apart when a client id reconnects (the broker closes the older one). */
export interface ClientInfo { clientId: string; connId: number; principal: Principal; transport: Transport }

export interface BrokerEvents {
  clientReady: [ClientInfo];
  clientGone: [ClientInfo];
  message: [topic: string, payload: Buffer, clientId: string | null];
  rejected: [reason: string, clientId: string];
}

export interface Address { host: string; port: number }

export class EmbeddedBroker extends EventEmitter<BrokerEvents> {
  readonly aedes: Aedes;
  readonly access: AccessDirectory;
  readonly counters: BrokerCounters = { published: 0, delivered: 0, rejected: 0, rejectedConnects: 0 };
  /** Sheds deliveries to subscribers that cannot keep up; `overload.stats` counts what was shed or delayed. */
  readonly overload = new OverloadGuard();
  readonly rejectReasons = new Map<string, number>();
  mqttAddress: Address | null = null;
  wsAddress: Address | null = null;
  private readonly emitter: FloodSafeEmitter;
  private readonly principals = new WeakMap<Client, Principal>();
  private readonly connIds = new WeakMap<Client, number>();
  private nextConnId = 1;
  private readonly transports = new WeakMap<Connection, Transport>();
  private readonly pipes = new Set<Duplex>();
  private tcp: Server | null = null;
  private ws: WebSocketServer | null = null;
  private wsHttp: HttpServer | null = null;
  private closed = false;

  private constructor(aedes: Aedes, access: AccessDirectory, emitter: FloodSafeEmitter) {
    super();
    this.aedes = aedes;
    this.access = access;
    this.emitter = emitter;
  }

  /** Create the broker and open its listeners. Rejects with E_PORT_IN_USE when a port is taken. */
  static async start(opts: BrokerOptions): Promise<EmbeddedBroker> {
    const access = new AccessDirectory(opts.operatorToken);
    access.allowAnonymous = opts.allowAnonymous ?? true;
    const emitter = new FloodSafeEmitter(opts.concurrency ?? 100);
    const aedes = await Aedes.createBroker({
      mq: emitter, persistence: indexedMemoryPersistence(), maxClientsIdLength: 64, heartbeatInterval: 60_000,
    });
    const broker = new EmbeddedBroker(aedes, access, emitter);
    if (opts.overload) broker.overload.configure(opts.overload);
    broker.installHooks();
    const host = opts.host ?? '127.0.0.1';
    try {
      const mqttPort = opts.mqttPort === undefined ? 1883 : opts.mqttPort;
      if (mqttPort !== null) await broker.listenTcp(host, mqttPort);
      if (opts.wsPort !== undefined && opts.wsPort !== null) await broker.listenWs(host, opts.wsPort);
    } catch (err) {
      await broker.close();
      throw err;
    }
    return broker;
  }

  /** Open an in-process connection: returns the client's end of a byte pipe the broker serves. */
  connectInProcess(): Duplex {
    const [clientEnd, brokerEnd] = createDuplexPair();
    this.transports.set(brokerEnd, 'in-process');
    this.pipes.add(brokerEnd);
    brokerEnd.once('close', () => this.pipes.delete(brokerEnd));
    this.aedes.handle(brokerEnd);
    return clientEnd;
  }

  get connectedClients(): number { return this.aedes.connectedClients; }
  get emitterStats(): FloodSafeEmitter['stats'] { return this.emitter.stats; }

  /** Publish as the broker itself (platform statistics, $SYS topics); bypasses the ACL. */
  publish(topic: string, payload: string | Buffer, opts: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    const packet: PublishPacket = {
      cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
      qos: opts.qos ?? 0, retain: opts.retain ?? false, dup: false,
    };
    return new Promise((resolve, reject) => this.aedes.publish(packet, (err) => (err ? reject(err) : resolve())));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pipes) p.destroy();
    const tcp = this.tcp;
    const ws = this.ws;
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    if (ws) {
      for (const c of ws.clients) c.terminate();
      await new Promise<void>((resolve) => ws.close(() => resolve()));
    }
    const wsHttp = this.wsHttp;
    if (wsHttp) await new Promise<void>((resolve) => wsHttp.close(() => resolve()));
    if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()));
  }

  private reject(reason: string, clientId: string): void {
    this.counters.rejected++;
    const key = reason.replace(/device [^ ]+|user [^ ]+|device\/[^/ ]+/g, (m) => m.split(/[ /]/)[0] + ' *');
    this.rejectReasons.set(key, (this.rejectReasons.get(key) ?? 0) + 1);
    this.emit('rejected', reason, clientId);
  }

  private installHooks(): void {
    const aedes = this.aedes;
    aedes.authenticate = (client, username, password, done) => {
      const res = this.access.authenticate(client.id, username, password?.toString('utf8'));
      if ('refused' in res) {
        this.counters.rejectedConnects++;
        this.reject(`connect refused: ${res.refused}`, client.id);
        const err = Object.assign(new Error(res.refused), { returnCode: res.returnCode });
        done(err, false);
        return;
      }
      this.principals.set(client, res);
      this.connIds.set(client, this.nextConnId++);
      done(null, true);
    };
    aedes.authorizePublish = (client, packet, done) => {
      if (!client) return done(null); // stored wills of clients that are gone
      const p = this.principals.get(client);
      const ok = p ? this.access.canPublish(p, packet.topic) : 'unauthenticated client';
      if (ok !== true) {
        // MQTT 3.1.1 has no negative PUBACK: the connection is closed (MQTT-3.3.5-2).
        this.reject(`publish to ${packet.topic} refused: ${ok}`, client.id);
        return done(new Error(ok));
      }
      done(null);
    };
    aedes.authorizeSubscribe = (client, sub: Subscription, done) => {
      const p = this.principals.get(client);
      const ok = p ? this.access.canSubscribe(p, sub.topic) : 'unauthenticated client';
      if (ok !== true) {
        this.reject(`subscribe to ${sub.topic} refused: ${ok}`, client.id);
        return done(null, null); // SUBACK 0x80 for this filter; the session stays up
      }
      done(null, sub);
    };
    aedes.authorizeForward = (client, packet: AedesPublishPacket) => {
      if (!this.overload.admit(client.conn, packet.qos)) return null;
      this.counters.delivered++;
      return packet;
    };
    aedes.on('publish', (packet, client) => {
      if (!client) {
        if (!packet.topic.startsWith('$SYS/')) this.emit('message', packet.topic, packet.payload as Buffer, null);
        return;
      }
      this.counters.published++;
      this.emit('message', packet.topic, packet.payload as Buffer, client.id);
    });
    aedes.on('clientReady', (client) => {
      const principal = this.principals.get(client);
      if (principal) this.emit('clientReady', { clientId: client.id, connId: this.connIds.get(client) ?? 0, principal, transport: this.transportOf(client) });
    });
    aedes.on('clientDisconnect', (client) => {
      const principal = this.principals.get(client);
      if (principal) this.emit('clientGone', { clientId: client.id, connId: this.connIds.get(client) ?? 0, principal, transport: this.transportOf(client) });
    });
    // Errors from one client (bad packets, ACL closes) never reach the process.
    aedes.on('clientError', () => undefined);
    aedes.on('connectionError', () => undefined);
  }

  private transportOf(client: Client): Transport {
    return this.transports.get(client.conn) ?? 'tcp';
  }

  private listenTcp(host: string, port: number): Promise<void> {
    const server = createServer((socket: Socket) => {
      socket.setNoDelay(true);
      coalesceWrites(socket);
      this.transports.set(socket, 'tcp');
      this.aedes.handle(socket);
    });
    this.tcp = server;
    return listen(server, host, port, 'MQTT').then((addr) => { this.mqttAddress = addr; });
  }

  private listenWs(host: string, port: number): Promise<void> {
    const wss = new WebSocketServer({
      noServer: true,
      handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
    });
    this.ws = wss;
    const server = createHttpServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: connect to ws://HOST:PORT/mqtt\n');
    });
    server.on('upgrade', (req, socket, head) => {
      if (!(req.url ?? '').startsWith('/mqtt')) {
        socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        const stream = createWebSocketStream(ws);
        stream.on('error', () => undefined);
        this.transports.set(stream, 'ws');
        this.aedes.handle(stream, req);
      });
    });
    this.wsHttp = server;
    return listen(server, host, port, 'MQTT over WebSocket').then((addr) => { this.wsAddress = addr; });
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
