/**
 * The embedded MQTT broker: Aedes 1.x (MQTT 3.1.1) behind three listeners (TCP, MQTT over
 * WebSocket, in-process byte pipes), with our authentication and ACL (gatekeeper.ts), a flood-safe
 * emitter, bounds on every listener and session (limits.ts) and counters of what it published,
 * delivered and rejected (with reasons).
 *
 * It can be restarted in place (`restart()`, or `goDown()` then `comeUp()`): the Aedes instance
 * closes, dropping every session, and a new one takes over the same listeners and the same
 * persistence, so persistent sessions (clean session off), their subscriptions and their QoS 1
 * queues survive. The EmbeddedBroker object keeps its identity: whoever listens to its events
 * keeps hearing the new instance.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { BrokerConnection, DirectLane } from './connection.js';
import { Aedes, type Client, type Connection, type PublishPacket } from 'aedes';
import { AiotSimError } from '../errors.js';
import { logger } from '../log.js';
import { AccessDirectory, anonymousAccessFor, type AnonymousAccess, type Principal } from './access.js';
import { leanDeliveries, type LeanDeliveries } from './deliveries.js';
import { createDuplexPair } from './duplex-pair.js';
import type { BrokerCluster, ClusterHealth, ClusterLink } from './cluster.js';
import { FloodSafeEmitter } from './emitter.js';
import { frontParser, offerPublish, type MqttPacketParser } from './frame-parser.js';
import { Gatekeeper, OWN_ERROR } from './gatekeeper.js';
import { noHits, resolveLimits, type BrokerLimits, type LimitHits, type LimitReport, type ResolvedLimits } from './limits.js';
import { listenTcp, listenWs, type Acceptor, type Address, type Listener, type ListenerLimits, type Transport } from './listeners.js';
import { admitsWhole, guardConnection, type ConnectionGuard } from './packet-guard.js';
import { OverloadGuard, type OverloadOptions } from './overload.js';
import { boundedMemoryPersistence, type PersistenceStats } from './persistence.js';
import { settle } from './settle.js';
import { Slot } from './slot.js';
import { OriginPolicy } from './web-origin.js';
import { coalesceWrites, outboxOf, type Outbox } from './write-batching.js';

export type { Address, Transport } from './listeners.js';

const log = logger('broker');

export interface BrokerOptions extends BrokerLimits {
  /** Interface to bind listeners to. Default 127.0.0.1 (loopback only). */
  host?: string;
  /** MQTT over TCP port; 0 picks a free one; null disables TCP. Default 1883. */
  mqttPort?: number | null;
  /** MQTT over WebSocket port (path /mqtt); 0 picks a free one; null disables it. Default null. */
  wsPort?: number | null;
  /** Password of the `operator` account. */
  operatorToken: string;
  /**
   * What clients without a user name may do: `none` (refused), `telemetry` (read device telemetry
   * and state, and topics outside device/, app/, appMsg/, $SYS/), `all` (read everything).
   * Default `telemetry` on a loopback `host`, `none` on any other.
   */
  anonymous?: AnonymousAccess;
  /** Old form of `anonymous`: false is `none`, true `telemetry` (on any host). */
  allowAnonymous?: boolean;
  /** Web origins (`scheme://host[:port]`) whose pages may use the WebSocket listener besides its own host's. Default none. */
  allowOrigins?: readonly string[];
  /** Messages Aedes delivers at once before the rest wait. Default 100. */
  concurrency?: number;
  /** Close a connection whose socket stays unwritable this long (a frozen or too slow reader), ms. Default 60,000. */
  drainTimeoutMs?: number;
  /** When to shed deliveries to subscribers that cannot keep up (overload.ts). Default: 1 MiB for QoS 0, 16 MiB for QoS 1. */
  overload?: OverloadOptions;
  /** Be a node of a cluster on Redis: messages, sessions and retained messages shared with its other nodes (cluster.ts). */
  cluster?: BrokerCluster;
}

export interface BrokerCounters {
  /** PUBLISH packets accepted from clients. */
  published: number;
  /** Messages forwarded to subscribers (one per receiving client). */
  delivered: number;
  /** Publishes and subscriptions refused by the ACL, and refused CONNECTs. */
  rejected: number;
  rejectedConnects: number;
  /** Connections closed for a bad packet (malformed, too large, protocol violation, no CONNECT in time). */
  rejectedPackets: number;
  /** Times the broker went down (restarts). */
  restarts: number;
}

/** `connId` tells sessions apart when a client id reconnects (the broker closes the older one). */
export interface ClientInfo { clientId: string; connId: number; principal: Principal; transport: Transport }

export interface BrokerEvents {
  clientReady: [ClientInfo];
  clientGone: [ClientInfo];
  message: [topic: string, payload: Buffer, clientId: string | null];
  rejected: [reason: string, clientId: string];
  /** The broker stopped serving (restart or outage): every session was dropped. */
  down: [];
  /** The broker serves again after going down. */
  up: [];
}

/** At most this many distinct rejection reasons are kept; others count under "other". */
const MAX_REASONS = 200;
/** A restart waits for acknowledged publishes at most this long, and gives up on them once none finished for DRAIN_STALL_MS. */
const DRAIN_MAX_MS = 5000;
const DRAIN_STALL_MS = 250;

/** One listener for every connection's event: the emitter calls it with the connection as `this`. */
function perConnection(fn: (conn: BrokerConnection) => void): (this: BrokerConnection) => void {
  return function onConnectionEvent(this: BrokerConnection): void { fn(this); };
}

/**
 * A cluster node's link to its Redis, once that answers. The cluster's packages (ioredis, Aedes'
 * Redis emitter and persistence) load here, so a broker alone never loads them.
 */
async function openClusterLink(cluster: BrokerCluster): Promise<ClusterLink> {
  const { checkClusterStore, ClusterLink } = await import('./cluster.js');
  await checkClusterStore(cluster);
  return new ClusterLink(cluster);
}

interface AedesSettings { concurrency: number; drainTimeout: number; connectTimeout: number; cluster: ClusterLink | null }

export class EmbeddedBroker extends EventEmitter<BrokerEvents> {
  readonly access: AccessDirectory;
  readonly counters: BrokerCounters = { published: 0, delivered: 0, rejected: 0, rejectedConnects: 0, rejectedPackets: 0, restarts: 0 };
  /** Sheds deliveries to subscribers that cannot keep up; `overload.stats` counts what was shed or delayed. */
  readonly overload = new OverloadGuard();
  readonly rejectReasons = new Map<string, number>();
  mqttAddress: Address | null = null;
  wsAddress: Address | null = null;
  /** The bounds in force (options with defaults filled in). */
  readonly limits: ResolvedLimits;
  /** What the bounds stopped, by bound. */
  readonly limitHits: LimitHits = noHits();
  private aedes_: Aedes;
  private emitter: FloodSafeEmitter;
  /** Kept across restarts: sessions, subscriptions, QoS 1 queues, retained messages. */
  private readonly persistence: object;
  private readonly stored: PersistenceStats;
  /** A cluster's persistence holds a Redis connection, closed with the broker. */
  private readonly closePersistence: (() => Promise<void>) | null;
  private readonly settings: AedesSettings;
  private readonly gate: Gatekeeper;
  private down = false;
  private transition: Promise<void> = Promise.resolve();
  /**
   * Client publishes authorised and not yet published. Aedes 1.2 sends a QoS 1 PUBACK *before* it
   * stores, queues and forwards the message, so a restart must let these finish or it loses
   * messages the publisher already considers delivered.
   */
  private publishing = 0;
  /** Told each time one of `publishing` is published (a restart waiting for them listens). */
  private onPublished: (() => void) | null = null;
  private readonly connIds = new Slot<Client, number>('aiot-sim connection id');
  private nextConnId = 1;
  private readonly transports = new Slot<BrokerConnection, Transport>('aiot-sim transport');
  /** Each client's lean deliveries (deliveries.ts), released when its CONNACK is written. */
  private readonly deliveries = new Slot<Client, LeanDeliveries>('aiot-sim deliveries');
  /** Open connections (every transport) and their packet guards. */
  private readonly connections = new Map<BrokerConnection, ConnectionGuard>();
  private readonly servers: Listener[] = [];
  private tcp: Listener | null = null;
  private ws: Listener | null = null;
  private closed = false;
  /** Logged once: this Aedes lacks what the lean deliveries replace (deliveries.ts). */
  private warnedStock = false;

  private constructor(access: AccessDirectory, limits: ResolvedLimits, settings: AedesSettings) {
    super();
    this.access = access;
    this.limits = limits;
    this.settings = settings;
    this.gate = new Gatekeeper(access, limits, this.limitHits, this.overload, (client) => this.transportOf(client), (client) => this.outboxOf(client), {
      refused: (reason, clientId, connect) => {
        if (connect) this.counters.rejectedConnects++;
        this.reject(reason, clientId);
      },
      badPacket: (reason, clientId) => this.rejectPacket(reason, clientId),
      publishing: () => { this.publishing++; },
      delivered: () => { this.counters.delivered++; },
    });
    const link = settings.cluster;
    if (link) {
      // A CONNECT needs the session store: while the cluster's Redis is away it is refused (CONNACK 3) rather than left hanging.
      this.gate.unavailable = () => {
        if (link.up) return null;
        link.refusedConnect();
        return 'the cluster store (Redis) is unreachable';
      };
    }
    const { persistence, stats, close } = settings.cluster ? settings.cluster.persistence(limits.maxQueuedMessages) : { ...boundedMemoryPersistence(
      { maxMessages: limits.maxQueuedMessages, maxBytes: limits.maxQueuedBytes, maxRetainedMessages: limits.maxRetainedMessages, maxRetainedBytes: limits.maxRetainedBytes },
      (clientId, packet) => this.gate.admitQueued(clientId, packet),
    ), close: null };
    this.persistence = persistence;
    this.closePersistence = close;
    this.stored = stats;
    // Replaced by start() before anyone sees the broker.
    this.aedes_ = null as unknown as Aedes;
    this.emitter = null as unknown as FloodSafeEmitter;
  }

  /**
   * Create the broker and open its listeners. Rejects with E_PORT_IN_USE when a port is taken,
   * E_OPTIONS on a bad option, E_REDIS when a cluster's Redis does not answer (within 5 s).
   */
  static async start(opts: BrokerOptions): Promise<EmbeddedBroker> {
    const limits = resolveLimits(opts);
    const cluster = opts.cluster ? await openClusterLink(opts.cluster) : null;
    const host = opts.host ?? '127.0.0.1';
    const access = new AccessDirectory(opts.operatorToken);
    access.anonymous = anonymousAccessFor(opts, host);
    const origins = new OriginPolicy({ allowOrigins: opts.allowOrigins ?? [], host });
    const settings: AedesSettings = { concurrency: opts.concurrency ?? 100, drainTimeout: opts.drainTimeoutMs ?? 60_000, connectTimeout: limits.connectTimeoutMs, cluster };
    const broker = new EmbeddedBroker(access, limits, settings);
    ({ aedes: broker.aedes_, emitter: broker.emitter } = await EmbeddedBroker.createAedes(broker.persistence, settings));
    broker.overload.configure({ ...opts.overload, totalBytes: limits.maxBacklogBytes });
    broker.installHooks();
    const acceptor: Acceptor = {
      refusing: () => broker.down || broker.closed,
      accept: (conn, transport, req) => broker.handle(conn, transport, req),
      hit: (limit) => { broker.limitHits[limit]++; },
    };
    const listenerLimits: ListenerLimits = { maxConnections: limits.maxConnections, maxPacketSize: limits.maxPacketSize, connectTimeoutMs: limits.connectTimeoutMs, origins };
    try {
      const mqttPort = opts.mqttPort === undefined ? 1883 : opts.mqttPort;
      if (mqttPort !== null) {
        const tcp = await listenTcp(host, mqttPort, acceptor, listenerLimits);
        broker.servers.push(tcp);
        broker.tcp = tcp;
        broker.mqttAddress = tcp.address;
      }
      if (opts.wsPort !== undefined && opts.wsPort !== null) {
        const ws = await listenWs(host, opts.wsPort, acceptor, listenerLimits);
        broker.servers.unshift(ws); // closed first: its connections are terminated before the TCP listener goes
        broker.ws = ws;
        broker.wsAddress = ws.address;
      }
    } catch (err) {
      await broker.close();
      throw err;
    }
    return broker;
  }

  private static async createAedes(persistence: object, settings: AedesSettings): Promise<{ aedes: Aedes; emitter: FloodSafeEmitter }> {
    const emitter = new FloodSafeEmitter(settings.concurrency, settings.cluster?.emitter());
    const aedes = await Aedes.createBroker({
      mq: emitter, persistence: persistence as never, maxClientsIdLength: 64, heartbeatInterval: 60_000, drainTimeout: settings.drainTimeout,
      connectTimeout: settings.connectTimeout,
    });
    if (!settings.cluster) await emitter.dropTakeoverListener();
    return { aedes, emitter };
  }

  /** The Aedes instance serving now (a new one after each restart). */
  get aedes(): Aedes { return this.aedes_; }

  /** Whether the broker is down (between `goDown()` and `comeUp()`). */
  get isDown(): boolean { return this.down; }

  /**
   * Open an in-process connection: returns the client's end of a byte pipe the broker serves.
   * While the broker is down the pipe closes at once (as a refused TCP connection would).
   * `asOperator`: a CONNECT without a user name on it is the operator's (for this process' own
   * clients, such as the monitor's probe; no peer on the network can open one).
   */
  connectInProcess(opts: { asOperator?: boolean } = {}): Duplex {
    const [clientEnd, brokerEnd] = createDuplexPair();
    if (this.down || this.closed) {
      setImmediate(() => brokerEnd.destroy());
      return clientEnd;
    }
    if (opts.asOperator) this.gate.trust(brokerEnd);
    this.handle(brokerEnd, 'in-process');
    return clientEnd;
  }

  /**
   * Serve a connection the caller made itself (the fleet engine's in-process links, whose device
   * end is not a stream): returns false, serving nothing, while the broker is down or closed.
   */
  serveInProcess(conn: BrokerConnection): boolean {
    if (this.down || this.closed) return false;
    this.handle(conn, 'in-process');
    return true;
  }

  /**
   * Stop serving, as a broker going down for a restart: the Aedes instance closes and drops every
   * session (wills of sessions that did not DISCONNECT are published as it closes them), new
   * connections are dropped at once. Persistent sessions and their queues stay in the persistence.
   */
  goDown(): Promise<void> {
    this.transition = this.transition.then(async () => {
      if (this.down || this.closed) return;
      this.down = true;
      this.counters.restarts++;
      const aedes = this.aedes_;
      await this.drain();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      // Connections Aedes had not taken as clients yet (no CONNECT so far) go too.
      for (const conn of this.connections.keys()) conn.destroy();
      this.emit('down');
    });
    return this.transition;
  }

  /**
   * A graceful stop: no more packets are read, and what was already acknowledged is published.
   * Bounded: gives up once no publish finished for DRAIN_STALL_MS, or after DRAIN_MAX_MS.
   */
  private async drain(): Promise<void> {
    for (const guard of this.connections.values()) guard.hold();
    const emitter = this.emitter;
    const wait = settle(() => this.publishing === 0 && emitter.idle, DRAIN_STALL_MS, DRAIN_MAX_MS);
    this.onPublished = wait.moved;
    emitter.onIdle = wait.check;
    const outcome = await wait.done;
    this.onPublished = null;
    emitter.onIdle = null;
    if (outcome !== 'quiet') log.info({ outcome, publishing: this.publishing, emitter: emitter.stats }, 'going down with publishes unfinished');
    this.publishing = 0;
  }

  /** Serve again after `goDown()`: a new Aedes instance on the same listeners and persistence. */
  comeUp(): Promise<void> {
    this.transition = this.transition.then(async () => {
      if (!this.down || this.closed) return;
      const { aedes, emitter } = await EmbeddedBroker.createAedes(this.persistence, this.settings);
      this.aedes_ = aedes;
      this.emitter = emitter;
      this.installHooks();
      this.down = false;
      this.emit('up');
    });
    return this.transition;
  }

  /** Go down, stay down `downMs` (wall clock), come back up. */
  async restart(downMs = 0): Promise<void> {
    await this.goDown();
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.comeUp();
  }

  /** How this node's link to the cluster's Redis is doing; null when the broker is not a cluster node. */
  clusterHealth(): ClusterHealth | null { return this.settings.cluster?.health ?? null; }

  get connectedClients(): number { return this.down ? 0 : this.aedes_.connectedClients; }
  get emitterStats(): FloodSafeEmitter['stats'] { return this.emitter.stats; }
  /**
   * CONNECTs and SUBSCRIBEs Aedes answered without building a stream, because nothing was queued
   * or retained for them (the fast paths scripts/patch-aedes.mjs gives Aedes at install; both stay
   * 0 when it did not run, and on a cluster node, whose Redis persistence does not offer them).
   */
  get fastPaths(): { connects: number; subscribes: number } { return { ...this.stored.fastPaths }; }
  /** Largest MQTT packet accepted, bytes. */
  get maxPacketSize(): number { return this.limits.maxPacketSize; }

  /** The bounds, what they stopped and what the bounded stores hold now (for /metrics). */
  limitReport(): LimitReport {
    const q = this.stored.queues;
    this.limitHits.queueDropped = q.dropped;
    this.limitHits.retained = this.stored.retainedRefused;
    this.limitHits.backlog = this.overload.shedOverTotal;
    return {
      limits: { ...this.limits },
      hits: { ...this.limitHits },
      usage: {
        connections: { tcp: this.tcp?.connections ?? 0, ws: this.ws?.connections ?? 0 },
        queuedMessages: q.messages, queuedBytes: q.bytes, anonymousSessions: this.gate.ids.anonymousSessions,
        retainedMessages: this.stored.retainedMessages, retainedBytes: this.stored.retainedBytes, backlogBytes: this.overload.totalBacklog,
      },
    };
  }

  /** Publish as the broker itself (platform statistics, $SYS topics); bypasses the ACL. */
  publish(topic: string, payload: string | Buffer, opts: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    if (this.down) return Promise.reject(new AiotSimError('E_BROKER_DOWN', 'environment', `publish to ${topic}: the broker is down`));
    const packet: PublishPacket = {
      cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
      qos: opts.qos ?? 0, retain: opts.retain ?? false, dup: false,
    };
    return new Promise((resolve, reject) => this.aedes_.publish(packet, (err) => (err ? reject(err) : resolve())));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.transition;
    this.closed = true;
    for (const conn of this.connections.keys()) if (this.transports.get(conn) === 'in-process') conn.destroy();
    const aedes = this.aedes_;
    if (!this.down) await new Promise<void>((resolve) => aedes.close(() => resolve()));
    // What Aedes had not taken as a client (no CONNECT yet) would hold the listeners' close up.
    for (const conn of this.connections.keys()) conn.destroy();
    for (const l of this.servers.splice(0)) await l.close();
    await this.closePersistence?.();
  }

  private reject(reason: string, clientId: string): void {
    this.counters.rejected++;
    let key = reason.replace(/device [^ ]+|user [^ ]+|device\/[^/ ]+/g, (m) => m.split(/[ /]/)[0] + ' *');
    key = key.replace(/client id "[^"]*"/g, 'client id *').replace(/client id of \d+ characters/, 'client id too long');
    // Refused topics come from the network: keep the reason short and the set of reasons bounded.
    key = key.replace(/(publish to|subscribe to) (.{0,40}).* refused/su, '$1 $2 refused');
    key = key.replace(/(ill-formed UTF-8 in the [^:]+): [0-9a-f]+…?$/, '$1');
    if (!this.rejectReasons.has(key) && this.rejectReasons.size >= MAX_REASONS) key = 'other';
    this.rejectReasons.set(key, (this.rejectReasons.get(key) ?? 0) + 1);
    this.emit('rejected', reason, clientId);
  }

  /** A connection closed for what it sent (not for going away). */
  private rejectPacket(reason: string, clientId: string): void {
    this.counters.rejectedPackets++;
    this.reject(`bad packet: ${reason}`, clientId);
  }

  /**
   * Serve one connection: the packet size check in front of everything that reads it, writes
   * coalesced per turn (write-batching.ts), and Aedes' client with the lean parser front and
   * deliveries (frame-parser.ts, deliveries.ts).
   */
  private handle(conn: BrokerConnection, transport: Transport, req?: IncomingMessage): void {
    this.transports.set(conn, transport);
    const outbox = coalesceWrites(conn);
    this.connections.set(conn, guardConnection(conn, this.maxPacketSize, this.onBadPacket));
    // The overload guard's total backlog follows each connection as it drains and closes. Every
    // connection shares these listeners, as it shares the guard's and the outbox's functions
    // (`this` in them is the connection): no closures made per connection.
    conn.on('drain', this.onConnectionDrain);
    conn.on('close', this.forgetConnection);
    const client = this.aedes_.handle(conn as Connection, req);
    const parser = (client as unknown as { _parser?: MqttPacketParser })._parser;
    // A QoS 0 PUBLISH goes straight to the broker when the client is Aedes' as the install step
    // leaves it (its keep-alive kept by the last packet's time, which the shortcut sets too).
    if (parser && typeof parser.parse === 'function') {
      const shortcut = '_lastPacketAt' in client ? this.gate.publishDirect : null;
      frontParser(parser, shortcut);
      // An in-process peer that writes whole packets (a fleet link) may offer its QoS 0 PUBLISHes first.
      if (shortcut !== null && transport === 'in-process' && 'direct' in conn) (conn as BrokerConnection & DirectLane).direct = this.takeDirect;
    }
    const deliveries = leanDeliveries(client, outbox);
    if (deliveries) {
      // What came before the CONNACK goes out after it (deliveries.ts); on a close, it is failed.
      this.deliveries.set(client, deliveries);
      conn.on('close', this.failEarlyDeliveries);
    } else if (!this.warnedStock) {
      this.warnedStock = true;
      log.warn('this Aedes version lacks the client internals the lean deliveries replace: delivering through Aedes as is');
    }
  }

  /**
   * A whole packet an in-process peer offers before pushing it (connection.ts, `DirectLane`): a
   * QoS 0 PUBLISH goes to the gate's `publishDirect` now, as the frame parser would hand it over
   * once Aedes read it, when that would be its turn anyway: Aedes is handling nothing of this
   * client (`_parsingBatch`, each packet it handles counts until done) and is not holding its reads
   * (`_paused`), and the packet guard is between packets and admits its size. The peer has nothing
   * unread in the connection (its part of the bargain). Anything else is pushed and read as usual.
   */
  private readonly takeDirect = (conn: BrokerConnection, packet: Buffer): boolean => {
    const client = EmbeddedBroker.clientOf(conn) as (Client & { _parsingBatch: number; _paused?: boolean; _parser?: MqttPacketParser }) | undefined;
    if (client === undefined || client._parsingBatch !== 0 || client._paused || client._parser === undefined) return false;
    return admitsWhole(conn, packet.length) && offerPublish(client._parser, packet);
  };

  /** The Aedes client serving a connection (Aedes keeps it on the connection as `client`). */
  private static clientOf(conn: BrokerConnection): Client | undefined {
    return (conn as BrokerConnection & { client?: Client }).client;
  }

  private readonly onBadPacket = (reason: string, conn: BrokerConnection): void => {
    if (reason === 'packet too large') this.limitHits.packetSize++;
    this.rejectPacket(reason, EmbeddedBroker.clientOf(conn)?.id ?? '');
  };

  private readonly onConnectionDrain = perConnection((conn) => {
    const outbox = outboxOf(conn);
    if (outbox) this.overload.refresh(outbox);
  });

  /** Before Aedes hears of the close: the connection's bookkeeping goes. */
  private readonly forgetConnection = perConnection((conn) => {
    this.connections.delete(conn);
    const outbox = outboxOf(conn);
    if (outbox) this.overload.forget(outbox);
    const client = EmbeddedBroker.clientOf(conn);
    if (client) this.gate.release(client);
  });

  /** After Aedes heard of the close: deliveries still waiting for the CONNACK fail. */
  private readonly failEarlyDeliveries = perConnection((conn) => {
    const client = EmbeddedBroker.clientOf(conn);
    if (client) this.deliveries.get(client)?.release();
  });

  /** Count a client's or connection's error when it is about what the peer sent. */
  private onConnectionError(clientId: string | null, err: Error): void {
    if ((err as { [OWN_ERROR]?: boolean })[OWN_ERROR]) return;
    if ((err as NodeJS.ErrnoException).code) return; // the peer went away (ECONNRESET, EPIPE): not a rejection
    const msg = err.message || 'unknown error';
    if (/connection closed|premature close/i.test(msg)) return;
    if (msg === 'connect did not arrive in time') this.limitHits.connectTimeout++;
    this.rejectPacket(msg.length > 80 ? `${msg.slice(0, 80)}…` : msg, clientId ?? '');
  }

  private installHooks(): void {
    const aedes = this.aedes_;
    this.gate.install(aedes);
    aedes.on('client', (client) => { this.connIds.set(client, this.nextConnId++); });
    aedes.on('publish', (packet, client) => {
      if (!client) {
        if (!packet.topic.startsWith('$SYS/')) this.emit('message', packet.topic, packet.payload as Buffer, null);
        return;
      }
      this.counters.published++;
      if (this.publishing > 0) {
        this.publishing--;
        this.onPublished?.();
      }
      this.emit('message', packet.topic, packet.payload as Buffer, client.id);
    });
    aedes.on('connackSent', (_connack, client) => { this.deliveries.get(client)?.release(); });
    aedes.on('clientReady', (client) => {
      const principal = this.gate.principalOf(client);
      if (principal) this.emit('clientReady', { clientId: client.id, connId: this.connIds.get(client) ?? 0, principal, transport: this.transportOf(client) });
    });
    aedes.on('clientDisconnect', (client) => {
      const principal = this.gate.principalOf(client);
      if (principal) this.emit('clientGone', { clientId: client.id, connId: this.connIds.get(client) ?? 0, principal, transport: this.transportOf(client) });
    });
    // Errors from one client (bad packets, ACL closes) never reach the process; bad packets are counted.
    aedes.on('clientError', (client, err) => this.onConnectionError(client.id, err));
    aedes.on('connectionError', (_client, err) => this.onConnectionError(null, err));
  }

  private transportOf(client: Client): Transport {
    return this.transports.get(client.conn as BrokerConnection) ?? 'tcp';
  }

  /** What is still to be written to `client` (its connection's outbox). */
  private outboxOf(client: Client): Outbox | BrokerConnection {
    return outboxOf(client.conn as BrokerConnection) ?? (client.conn as BrokerConnection);
  }
}

