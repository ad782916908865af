/**
 * A running simulation: scenario -> population -> devices -> broker -> platform. This class owns
 * the lifecycle (create -> start -> running -> stop -> report) and wires the parts that do the
 * work: the provisioner (credentials, devices, households), the session pool (device sessions,
 * in-flight publishes), the cloud clients (operator, app users), the fault timeline and the clock
 * driver. Everything is validated before anything starts; then the broker opens, devices connect
 * as real MQTT sessions, and the driver advances the virtual clock until the duration is reached
 * or `stop()` is called. Also the library entry point (`createSimulation`).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { MqttClient, type IClientOptions } from 'mqtt';
import { newOperatorToken } from '../broker/access.js';
import { EmbeddedBroker, type BrokerCounters } from '../broker/broker.js';
import type { Catalog } from '../catalog/catalog.js';
import { parseDuration, type Scenario } from '../catalog/scenario.js';
import { DEFAULT_WIRE, type RpcResponse } from '../contract/wire.js';
import type { Device } from '../device/device.js';
import { AiotSimError } from '../errors.js';
import { logger } from '../log.js';
import { connectExternal, ExternalObserver, PLATFORM_SHARE_GROUP } from '../platform/external.js';
import { checkBrokerUrl } from '../platform/urls.js';
import type { RedisStore } from '../platform/redis-store.js';
import { PlatformService, type PlatformSnapshot } from '../platform/service.js';
import type { ReconnectPolicy } from './backoff.js';
import { CloudClients, OPERATOR_RECONNECT_MS } from './cloud-clients.js';
import { ClockDriver, type Speed } from './drivers.js';
import { FaultTimeline } from './faults.js';
import { checkMemory, estimateMemory, memoryRoom, sweepArrayBuffersOnMainThread, type MemoryTransport } from './memory.js';
import type { HouseholdChannel } from './household.js';
import { buildPopulation, shardPopulation, type Population } from './population.js';
import { Provisioner } from './provisioner.js';
import { buildReport, scaleUp, type RunReport } from './report.js';
import { EventScheduler } from './scheduler.js';
import type { ClientConnector, Connector } from './session.js';
import type { AppConnector } from './users.js';
import { SessionPool } from './session-pool.js';
import { resolveOptions, type SimulationOptions, type SimulationStatus } from './simulation-options.js';
import { TraceRecorder } from './trace.js';
import { within } from './waits.js';
import { WorkQueue } from './work-queue.js';

export type { SimulationOptions, SimulationStatus } from './simulation-options.js';
export type { FaultNotice, FaultRecord } from './faults.js';

const log = logger('simulation');

/** Sockets one process may open to an external broker (each costs a file descriptor; the limit is 20,000). */
export const MAX_EXTERNAL_CONNECTIONS = 15_000;
/** The platform snapshot goes to `$SYS/aiot-sim/platform` (retained) this often, in virtual time. */
const SYS_INTERVAL_MS = 5 * 60_000;
export const SYS_PLATFORM_TOPIC = '$SYS/aiot-sim/platform';
/** Above this many app users, app clients use the in-process transport (file descriptor limit). */
const MAX_WS_APP_CLIENTS = 2000;
/** How long start() waits for the first announcements to reach the broker. */
const FIRST_SETTLE_MS = 60_000;

export class Simulation {
  readonly scenario: Scenario;
  readonly seed: number;
  readonly speed: Speed;
  readonly catalog: Catalog;
  readonly population: Population;
  readonly operatorToken: string;
  readonly scheduler: EventScheduler;
  readonly platform: PlatformService;
  /** The scenario's faults: records for the report, and a 'fault' event as each starts and ends. */
  readonly faults: FaultTimeline;
  private broker_: EmbeddedBroker | null = null;
  private observer: ExternalObserver | null = null;
  private readonly driver: ClockDriver;
  private readonly fleet: Provisioner;
  private readonly pool: SessionPool;
  private readonly clients = new CloudClients();
  private readonly trace = new TraceRecorder();
  /** Commands and reconnections in progress; fast mode waits for them before moving the clock. */
  private readonly work = new WorkQueue();
  private voiceCommands = 0;
  private wallStart = 0;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopping: Promise<RunReport> | null = null;
  /** What the stop waits for now (the status and the CLI's progress say it): a function when a figure in it changes meanwhile. */
  private stopStep: string | (() => string) | null = null;
  /** Ctrl-C (`interrupt()`): a shard at its end waits for nobody. */
  private interrupted = false;
  private redisStore: RedisStore | null = null;
  /** The broker nodes count this run's traffic into the shared store; its own observer counts nothing. */
  private countsElsewhere = false;
  private readonly virtualStart: number;
  private readonly virtualEnd: number | null;

  private constructor(private readonly opts: SimulationOptions, scenario: Scenario, catalog: Catalog) {
    this.scenario = opts.telemetry === undefined ? scenario : { ...scenario, behaviour: { ...scenario.behaviour, telemetry: opts.telemetry } };
    this.catalog = catalog;
    this.seed = opts.seed ?? scenario.seed;
    this.speed = opts.speed ?? scenario.speed;
    this.operatorToken = opts.operatorToken ?? newOperatorToken();
    this.virtualStart = Date.parse(scenario.start);
    const durationMs = typeof opts.duration === 'number' ? opts.duration
      : opts.duration !== undefined ? parseDuration(opts.duration) : scenario.duration;
    this.virtualEnd = durationMs === undefined ? null : this.virtualStart + durationMs;
    this.scheduler = new EventScheduler(this.virtualStart);
    const everyone = buildPopulation(scenario, catalog, this.seed);
    this.population = opts.shard ? shardPopulation(everyone, opts.shard.index, opts.shard.count) : everyone;
    this.fleet = new Provisioner({ population: this.population, known: everyone, scenario: this.scenario, seed: this.seed, scheduler: this.scheduler, wire: opts.wire ?? DEFAULT_WIRE });
    this.platform = new PlatformService((did) => this.fleet.facts(did), opts.threadStore);
    const reconnect = this.reconnectPolicy();
    const poolOpts: ConstructorParameters<typeof SessionPool>[0] = { clock: this.scheduler, trace: this.trace, reconnect, seed: this.seed };
    if (opts.onConnectProgress) poolOpts.onProgress = opts.onConnectProgress;
    this.pool = new SessionPool(poolOpts);
    const driverOpts: ConstructorParameters<typeof ClockDriver>[2] = {
      congested: () => this.pool.congested || this.work.pending > 0,
      uncongested: () => (this.work.pending > 0 ? this.work.idle() : this.pool.decongested()),
    };
    if (this.virtualEnd !== null) driverOpts.endTime = this.virtualEnd;
    this.driver = new ClockDriver(this.scheduler, this.speed, driverOpts);
    this.faults = new FaultTimeline({
      seed: this.seed, virtualStart: this.virtualStart, scheduler: this.scheduler, work: this.work, pool: this.pool, clients: this.clients,
      regionOf: (did) => this.fleet.regionOf(did), broker: () => this.broker_, platform: this.platform,
      platformNews: (wake) => this.onDeviceMessage(wake),
      // A session retries at most maxDelay after the broker is back, then the broker has to take them all.
      reconnectBoundMs: reconnect.maxDelayMs + 60_000,
    });
  }

  /** Validate everything (scenario, catalogue, overrides) and build the population; starts nothing. */
  static async create(opts: SimulationOptions): Promise<Simulation> {
    const { scenario, catalog } = await resolveOptions(opts);
    return new Simulation(opts, scenario, catalog);
  }

  get broker(): EmbeddedBroker {
    if (this.opts.externalBroker) throw new AiotSimError('E_EXTERNAL_BROKER', 'input', `the simulation runs on the external broker ${this.opts.externalBroker.url}, not an embedded one`);
    if (!this.broker_) throw new AiotSimError('E_NOT_STARTED', 'input', 'the simulation has not started');
    return this.broker_;
  }

  /**
   * The device traffic as it crosses the broker (`message` events): the embedded broker itself, or
   * the platform's observer client on an external one. What the live monitor taps.
   */
  get traffic(): EmbeddedBroker | ExternalObserver {
    if (this.observer) return this.observer;
    return this.broker;
  }

  /**
   * How this run's platform counts: in this process (`memory`), into a shared store from what its
   * embedded broker or its own observer sees (`store`), through the platform's shared subscription
   * on an external broker (`shared-subscription`), or not at all because the broker nodes count
   * what they take in (`broker-nodes`). Known once started.
   */
  get counting(): 'memory' | 'store' | 'shared-subscription' | 'broker-nodes' {
    if (!this.redisStore) return 'memory';
    if (this.countsElsewhere) return 'broker-nodes';
    return this.observer ? 'shared-subscription' : 'store';
  }

  /** Resolves with the report when the run ends (duration reached, or stop()). */
  get finished(): Promise<RunReport> {
    return this.driver.done.then(() => this.stop());
  }

  /** Open the broker, connect every device, announce them online at the virtual start, start the clock. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new AiotSimError('E_STATE', 'input', `start(): simulation is ${this.state}`);
    this.state = 'starting';
    this.wallStart = performance.now();
    if (this.opts.traceFile) this.trace.writeTo(this.opts.traceFile);
    try {
      this.checkMemory();
      sweepArrayBuffersOnMainThread(this.population.devices.length);
      if (this.opts.platform) await this.connectStore(this.opts.platform);
      if (this.opts.externalBroker) await this.connectExternal(this.opts.externalBroker);
      else await this.connectEmbedded();
      await this.goLive();
    } catch (err) {
      await this.markFailed();
      await this.shutdown();
      this.state = 'stopped';
      throw err;
    }
  }

  /**
   * A shard that cannot start says so in the store, so that the run's other shards do not wait
   * for it at their end (for up to `shardWaitMs`). Bounded: the store may be what failed.
   */
  private async markFailed(): Promise<void> {
    const sh = this.opts.shard;
    if (!sh || !this.redisStore) return;
    let marked = false;
    await within(this.redisStore.markShard(this.runKey, sh.index, 'failed').then(() => { marked = true; }), 2000);
    if (!marked) log.warn({ shard: `${sh.index + 1}/${sh.count}` }, 'could not tell the other shards that this one failed to start');
  }

  /** Count into the shared store at `url`; its figures (everyone's) are the run's, and so are fault records. */
  private async connectStore(url: string): Promise<void> {
    const sh = this.opts.shard;
    // Redis' client loads only for a run that counts into it (and the cluster's, below).
    const { RedisStore } = await import('../platform/redis-store.js');
    const store = await RedisStore.connect(url, sh ? { writer: `shard ${sh.index + 1}/${sh.count}` } : {});
    this.redisStore = store;
    this.platform.useStore(store);
    this.faults.on('fault', (n) => store.recordFault(n.index, n.record));
    if (sh) await store.markShard(this.runKey, sh.index, 'started');
  }

  /** What the shards of one run share (scenario, seed, shard count, start): the key of their marks in the store. */
  private get runKey(): string {
    return `${this.scenario.name}:${this.seed}:${this.opts.shard?.count ?? 1}:${this.virtualStart}`;
  }

  /** Refuse (E_MEMORY) a population that would not fit in this process, before anything connects. */
  private checkMemory(): void {
    const t = this.opts.deviceTransport;
    const transport: MemoryTransport = this.opts.externalBroker || t === 'tcp' ? 'socket' : t === 'in-process-clients' ? 'in-process-clients' : 'in-process';
    // Every person of every home at most uses the app (each app user has a client).
    const people = this.population.homes.reduce((n, h) => n + 1 + h.memberUids.length, 0);
    checkMemory(estimateMemory(this.population.devices.length, people, transport), memoryRoom(this.opts.memoryLimit));
  }

  /** Open the embedded broker; the operator, devices and app users connect to it. */
  private async connectEmbedded(): Promise<void> {
    const broker = await EmbeddedBroker.start({ ...this.opts.broker, operatorToken: this.operatorToken });
    this.broker_ = broker;
    this.platform.observe(broker);
    this.fleet.provision(broker.access, this.channel());
    const url = broker.wsAddress ? `ws://${broker.wsAddress.host}:${broker.wsAddress.port}/mqtt` : null;
    const inProcess: ClientConnector = { kind: 'in-process', open: () => broker.connectInProcess() };
    const tcp = broker.mqttAddress;
    if (this.opts.deviceTransport === 'tcp' && !tcp) {
      throw new AiotSimError('E_OPTIONS', 'input', 'deviceTransport "tcp" needs the TCP listener (mqttPort is null)');
    }
    const transport = this.opts.deviceTransport ?? 'in-process';
    const devices: Connector = transport === 'tcp' && tcp ? { kind: 'url', url: `mqtt://${tcp.host}:${tcp.port}` }
      : transport === 'in-process-clients' ? inProcess
      : { kind: 'fleet', attach: (conn) => broker.serveInProcess(conn) };
    await this.pool.open(this.fleet.sessionPlans(), devices);
    // The operator, in process: a session of the devices' fleet engine when they have one.
    const engine = this.pool.fleetEngine;
    const op = this.operatorOptions();
    if (engine) await this.clients.connectOperatorSession(engine, op.clientId!, this.operatorToken);
    else await this.clients.connectOperator(new MqttClient(() => broker.connectInProcess(), op));
    // App clients speak MQTT over WebSocket, like a phone; a socket costs two file descriptors in
    // this process, so large populations use the in-process transport instead: as sessions of the
    // devices' fleet engine when the devices have one, each still its own MQTT session.
    const users = this.fleet.appUsers();
    const apps: AppConnector = url && users.length <= MAX_WS_APP_CLIENTS ? { kind: 'url', url } : engine ? { kind: 'fleet', engine } : inProcess;
    await this.clients.connectUsers(users, apps, this.scheduler);
  }

  /** Devices, app users, operator and platform all connect to a broker we do not own. */
  private async connectExternal(ext: NonNullable<SimulationOptions['externalBroker']>): Promise<void> {
    checkBrokerUrl(ext.url);
    const creds = ext.username !== undefined ? { username: ext.username, password: ext.password ?? '' } : { username: 'operator', password: this.operatorToken };
    const directory = ext.cluster ? new (await import('../broker/cluster.js')).DirectoryWriter() : null;
    this.fleet.provision(directory, this.channel());
    if (directory && ext.cluster) await directory.write(ext.cluster);
    // Broker nodes counting at ingress know these devices from the bindings in the store.
    if (this.redisStore) await this.redisStore.bind(this.population.devices.flatMap((d) => { const f = this.fleet.facts(d.did); return f ? [[d.did, f] as const] : []; }));
    const users = this.fleet.appUsers();
    const sockets = this.population.sessions.length + users.length + 2;
    if (sockets > MAX_EXTERNAL_CONNECTIONS) {
      throw new AiotSimError('E_OPTIONS', 'input',
        `--broker: this scenario needs ${sockets} connections to ${ext.url} (device sessions, app users, platform, operator); one process opens at most ${MAX_EXTERNAL_CONNECTIONS}. Use fewer homes, or the embedded broker (its in-process transport needs no sockets)`);
    }
    const failover = ext.failover ?? [];
    this.observer = await ExternalObserver.connect(ext.url, creds, (topic, payload) => this.platform.onMessage(topic, payload), { ...(await this.observing()), failover });
    await this.clients.connectOperator(await connectExternal(ext.url, `aiot-sim-operator-${randomBytes(4).toString('hex')}`, creds, 10_000, failover));
    const connector: ClientConnector = { kind: 'url', url: ext.url, failover };
    await this.pool.open(this.fleet.sessionPlans(), connector);
    await this.clients.connectUsers(users, connector, this.scheduler);
  }

  /**
   * How the platform observes an external broker. With a shared store, each message must be
   * counted once however many processes observe: when broker nodes count what they take in
   * (aiot-sim nodes with the same --platform), this run counts nothing itself; otherwise its
   * observer joins the platform's shared subscription, so the broker hands each message to one
   * observer of the group.
   */
  private async observing(): Promise<{ share?: string; filters?: string[] }> {
    const store = this.redisStore;
    if (!store) return {};
    const addresses = [this.opts.externalBroker!.url, ...(this.opts.externalBroker!.failover ?? [])].map((u) => new URL(u).host);
    if ((await Promise.all(addresses.map((a) => store.countsAtIngressFor(a)))).some(Boolean)) {
      this.countsElsewhere = true;
      return { filters: [] };
    }
    return { share: PLATFORM_SHARE_GROUP };
  }

  /** Announce every session online, then start devices, households, faults and the clock. */
  private async goLive(): Promise<void> {
    // First announcements in population order, at the virtual start: a reproducible trace.
    await this.pool.goOnline();
    // Resolve only once the broker has them (subscriptions, retained "online" states), so a
    // command sent right after start() finds its device listening.
    await this.pool.settle(FIRST_SETTLE_MS);
    if (this.observer) await this.observer.quiet();
    for (const d of this.fleet.devices.values()) d.start();
    for (const h of this.fleet.households) h.start();
    this.faults.schedule(this.scenario.faults);
    // A shard of a run over worker threads has a broker nobody can reach (no ports, no clients of
    // its own): its figures go to the run's merged store, and publishing them every five virtual
    // minutes (8,640 times in 30 days, each estimating every distinct count) was about 2 % of a
    // shard's time.
    if (!this.opts.threadStore) this.scheduler.every(SYS_INTERVAL_MS, () => this.publishPlatform(), 0);
    this.state = 'running';
    this.driver.start();
  }

  /**
   * Manual speed only: run the next `ms` of virtual time; resolves when it has run and what it
   * set off (commands, reconnections, device messages) has reached the broker.
   */
  advance(ms: number): Promise<void> {
    return this.driver.advance(ms, () => this.idle());
  }

  /** Resolves when queued commands and reconnections are done and device messages are written. */
  async idle(): Promise<void> {
    while (this.work.pending > 0) await this.work.idle();
    await this.pool.settle();
  }

  /** Platform figures as observed on the broker. */
  snapshot(): PlatformSnapshot {
    return this.platform.snapshot();
  }

  status(): SimulationStatus {
    const c = this.counters();
    return {
      virtualTime: this.scheduler.now(),
      virtualStart: this.virtualStart,
      virtualEnd: this.virtualEnd,
      devices: this.fleet.devices.size,
      sessions: this.pool.sessions.length,
      sessionsConnected: this.pool.connected.value,
      online: this.platform.online,
      published: c.published,
      delivered: c.delivered,
      rejected: c.rejected,
      events: this.scheduler.executed,
      reconnectAttempts: this.pool.reconnectAttempts,
      stopping: this.state === 'stopping',
      ...(this.state === 'stopping' && this.stopStep !== null ? { stopStep: typeof this.stopStep === 'string' ? this.stopStep : this.stopStep() } : {}),
    };
  }

  /** What the simulated people did (simulator-side counts; the platform measures its own). */
  activity(): RunReport['activity'] {
    const households = this.fleet.households;
    const sum = (k: keyof (typeof households)[number]['counters']): number => households.reduce((n, h) => n + h.counters[k], 0);
    return {
      people: households.reduce((n, h) => n + 1 + h.home.memberUids.length, 0),
      appUsers: households.reduce((n, h) => n + h.appUsers.length, 0),
      voiceUsers: households.reduce((n, h) => n + h.voiceUsers.length, 0),
      appSessions: sum('appSessions'),
      appCommands: this.clients.apps?.counters.appCommands ?? 0,
      voiceInteractions: sum('voiceInteractions'),
      voiceCommands: this.voiceCommands,
      automations: sum('automations'),
      byHand: sum('byHand'),
      skippedOffline: sum('skippedOffline'),
      failedCommands: this.work.failures,
    };
  }

  /** A device by did (for inspection; commands go through `command()` and the broker). */
  device(did: string): Device | undefined {
    return this.fleet.devices.get(did);
  }

  /** Dids of every simulated device, children included. */
  get dids(): string[] {
    return [...this.fleet.devices.keys()];
  }

  /** Send an RPC to a device as the operator, through the broker, and await its reply on up/rpc. */
  async command(did: string, method: 'get_properties' | 'set_properties' | 'action', params: unknown, timeoutMs = 10_000): Promise<RpcResponse> {
    const op = this.clients.operator;
    if (!op || this.state !== 'running') throw new AiotSimError('E_STATE', 'input', 'command(): the simulation is not running');
    if (!this.fleet.devices.has(did)) throw new AiotSimError('E_UNKNOWN_DEVICE', 'input', `command(): no device "${did}" in this simulation`);
    return op.request(did, method, params, timeoutMs);
  }

  /** Stop everything cleanly (devices say offline, sessions disconnect, broker closes); returns the report. */
  stop(): Promise<RunReport> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  /**
   * Stop as `stop()` does, now (Ctrl-C): a shard at its end stops waiting for the run's other
   * shards, and reports the figures of the fleet so far.
   */
  interrupt(): Promise<RunReport> {
    this.interrupted = true;
    return this.stop();
  }

  private async doStop(): Promise<RunReport> {
    this.state = 'stopping';
    this.driver.stop();
    for (const h of this.fleet.households) h.stop();
    this.stopStep = () => `queued network work (${this.work.describe()})`;
    await this.work.idle();
    // Let messages already handed to the broker arrive, then take the platform's figures as the run ends.
    this.stopStep = 'messages in flight';
    await this.pool.settle();
    this.stopStep = 'the broker to go quiet';
    if (this.observer) await this.observer.quiet();
    this.stopStep = 'the platform store';
    await this.platform.settle();
    const sh = this.redisStore && this.opts.shard;
    // Events this run's devices sent (each numbers its own from 1), added up over the shards:
    // beside the events the platform counted, they say how many it never saw.
    let eventsSent: number | null = null;
    if (this.redisStore) {
      let sent = 0;
      for (const d of this.fleet.devices.values()) sent += d.lastEventSeq;
      await this.redisStore.setShardCount(this.runKey, 'eventsSent', this.opts.shard?.index ?? 0, sent);
    }
    if (sh) this.stopStep = 'the other shards to end';
    if (sh) await this.waitForShards(this.redisStore!, sh, 'done');
    else if (this.redisStore) await this.redisStore.still();
    if (this.redisStore) eventsSent = await this.redisStore.runCount(this.runKey, 'eventsSent', this.opts.shard?.count ?? 1);
    const snapshot = this.platform.snapshot();
    // Nobody stops its devices before every shard has read the figures with everyone online.
    if (sh) {
      this.stopStep = 'the other shards to read the figures';
      await this.waitForShards(this.redisStore!, sh, 'read');
    }
    this.stopStep = 'the platform store';
    // A worker thread's store: the run's merged store gets what these figures are made of, and nothing after.
    await this.opts.threadStore?.close();
    await this.publishPlatform();
    for (const d of this.fleet.devices.values()) d.stop();
    this.stopStep = 'device sessions to go offline';
    await this.pool.stop();
    this.stopStep = 'app clients to close';
    await this.clients.closeApps();
    this.stopStep = 'the trace and the broker';
    const counters = this.counters();
    const digest = await this.trace.finish();
    await this.shutdown();
    const store = this.redisStore ? { kind: 'redis' as const, ...this.redisStore.health } : null;
    this.state = 'stopped';
    const report = buildReport({
      scenario: this.scenario, seed: this.seed, speed: this.speed, virtualStart: this.virtualStart,
      virtualEnd: this.scheduler.now(), wallSeconds: (performance.now() - this.wallStart) / 1000,
      counters, traceDigest: digest, traceMessages: this.trace.count, platform: snapshot,
      devices: this.fleet.devices.size, sessions: this.pool.sessions.length, operatorToken: this.operatorToken,
      activity: this.activity(), networkWork: { pieces: this.work.done, wallSeconds: this.work.wallMs / 1000 }, faults: this.faults.records,
    });
    if (store) {
      const counted = snapshot.messages.byKind['event_occured'] ?? 0;
      report.platformStore = eventsSent === null ? store : { ...store, eventsSent, eventsNotCounted: Math.max(0, eventsSent - counted) };
    }
    return report;
  }

  /**
   * A shard at its end waits (bounded) for the run's other shards to reach theirs, then for the
   * store to have everyone's counts: its report then gives the whole fleet's figures at the end.
   */
  private async waitForShards(store: RedisStore, sh: { index: number; count: number }, mark: 'done' | 'read'): Promise<void> {
    await store.markShard(this.runKey, sh.index, mark);
    if (sh.count > 1) {
      const waitMs = mark === 'done' ? this.opts.shardWaitMs ?? 600_000 : 30_000;
      // Said at the default log level: the process would look stuck for up to 10 minutes otherwise.
      if (mark === 'done') log.warn({ shard: `${sh.index + 1}/${sh.count}` }, `at the end: waiting for the run's other shards, up to ${Math.round(waitMs / 1000)} s (Ctrl-C stops waiting)`);
      const since = Date.now() - (performance.now() - this.wallStart);
      const all = await store.waitForShards(this.runKey, sh.count, mark, since, waitMs, () => this.interrupted);
      if (all === 'timeout') log.warn({ shard: `${sh.index + 1}/${sh.count}`, mark }, 'not every shard of the run got there in time: the figures are those of the fleet so far');
      if (all === 'failed') log.warn({ shard: `${sh.index + 1}/${sh.count}`, mark }, 'a shard of the run could not start: the figures are those of the others');
      if (all === 'interrupted') log.warn({ shard: `${sh.index + 1}/${sh.count}`, mark }, 'interrupted while waiting for the other shards: the figures are those of the fleet so far');
    }
    if (mark === 'done') await store.still();
  }

  /** The scenario's reconnection settings as a backoff policy (milliseconds). */
  private reconnectPolicy(): ReconnectPolicy {
    const r = this.scenario.network.reconnect;
    return { initialDelayMs: r.initialDelay, maxDelayMs: r.maxDelay, factor: r.factor, jitter: r.jitter };
  }

  /**
   * Message counts: the embedded broker's own; on an external broker, what the devices sent and
   * what the platform received (the broker's refusals are not visible from outside).
   */
  private counters(): BrokerCounters {
    if (this.broker_) return { ...this.broker_.counters };
    return { published: this.trace.count, delivered: this.observer?.received ?? 0, rejected: 0, rejectedConnects: 0, rejectedPackets: 0, restarts: 0 };
  }

  /** Calls `wake` after each device message the platform observes (its figures may have moved); returns how to stop. */
  private onDeviceMessage(wake: () => void): () => void {
    // A shared store's figures move when its view is read again.
    const offView = this.redisStore?.onView(wake);
    const observer = this.observer;
    if (observer) {
      observer.on('message', wake);
      return () => { observer.off('message', wake); offView?.(); };
    }
    const broker = this.broker_;
    broker?.on('message', wake);
    return () => { broker?.off('message', wake); offView?.(); };
  }

  /** What households do through the network, queued in order (see WorkQueue). */
  private channel(): HouseholdChannel {
    return {
      appSession: (uid) => this.work.push(() => this.clients.apps!.openSession(uid)),
      appCommand: (uid, did, method, params) => this.work.push(() => this.clients.apps!.command(uid, did, method, params)),
      voiceCommand: (did, method, params) => {
        this.voiceCommands++;
        this.work.push(() => this.command(did, method, params, 5000));
      },
      automationCommand: (did, method, params) => this.work.push(() => this.command(did, method, params, 5000)),
    };
  }

  private operatorOptions(): IClientOptions {
    return {
      clientId: `aiot-sim-operator-${randomBytes(4).toString('hex')}`, username: 'operator', password: this.operatorToken,
      protocolVersion: 4, reconnectPeriod: OPERATOR_RECONNECT_MS, log: () => undefined,
    };
  }

  /**
   * The platform's figures (and the scaled ones), retained on `$SYS/aiot-sim/platform`; on an
   * external broker the operator publishes them (a broker that reserves `$SYS` drops them).
   */
  private publishPlatform(): Promise<void> {
    const snapshot = this.platform.snapshot();
    const body = JSON.stringify({
      ...snapshot, scale: this.scenario.scale, scaled: scaleUp(snapshot, this.scenario.scale), scenario: this.scenario.name,
      faults: this.faults.records,
    });
    if (this.broker_) {
      if (this.broker_.isDown) return Promise.resolve();
      return this.broker_.publish(SYS_PLATFORM_TOPIC, body, { retain: true }).catch(() => undefined);
    }
    // aiot-sim broker nodes reserve $SYS (a refused publish would cost the operator its
    // connection, and its commands with it); they serve the platform's figures themselves.
    if (this.opts.externalBroker?.cluster) return Promise.resolve();
    const op = this.clients.operatorClient;
    if (!op?.connected) return Promise.resolve();
    return op.publishAsync(SYS_PLATFORM_TOPIC, body, { qos: 0, retain: true }).then(() => undefined, () => undefined);
  }

  private async shutdown(): Promise<void> {
    this.pool.close();
    await this.clients.closeOperator();
    const obs = this.observer;
    this.observer = null;
    if (obs) await obs.close();
    if (this.broker_) await this.broker_.close();
    // Last: what the broker's last sessions left (their offline states) is counted too.
    await this.redisStore?.close();
  }
}

/** Validate, build and start a simulation (see SimulationOptions). */
export async function createSimulation(opts: SimulationOptions): Promise<Simulation> {
  const sim = await Simulation.create(opts);
  await sim.start();
  return sim;
}
