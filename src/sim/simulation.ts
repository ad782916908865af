/**
 * A running simulation: scenario -> population -> devices -> broker -> platform.
 * Everything is validated before anything starts; then the broker opens, devices connect as real
 * MQTT sessions, and the driver advances the virtual clock until the duration is reached or
 * `stop()` is called. Also the library entry point (`createSimulation`).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { MqttClient, type IClientOptions } from 'mqtt';
import type { AccessDirectory } from '../broker/access.js';
import { EmbeddedBroker, type BrokerCounters } from '../broker/broker.js';
import { Catalog, loadCatalog } from '../catalog/catalog.js';
import { announcesState, Device } from '../device/device.js';
import { WIRE_PROFILES, type RpcResponse, type WireProfile } from '../contract/wire.js';
import { AiotSimError, ValidationError } from '../errors.js';
import { PACKAGE_ROOT } from '../paths.js';
import type { DeviceFacts } from '../platform/registry.js';
import { PlatformService, type PlatformSnapshot, type PlatformState } from '../platform/service.js';
import type { DeviceModel } from '../catalog/schema.js';
import { ClockDriver, type Speed } from './drivers.js';
import { buildPopulation, shardPopulation, type DevicePlan, type Population } from './population.js';
import { buildReport, scaleUp, type RunReport } from './report.js';
import { Rng } from './rng.js';
import { checkScenario, loadScenario, parseDuration, type Scenario } from '../catalog/scenario.js';
import { EventScheduler } from './scheduler.js';
import { FaultTimeline } from './faults.js';
import { Household, type HouseholdChannel } from './household.js';
import { region as regionOf } from '../catalog/regions.js';
import { DEFAULT_CURVE, LocalTime, normaliseCurve } from './rhythm.js';
import type { ReconnectPolicy } from './backoff.js';
import { DeviceSession, type Connector } from './session.js';
import { AppUsers, RpcClient, WorkQueue, type AppUser } from './users.js';
import { TraceRecorder } from './trace.js';
import { checkBrokerUrl, connectExternal, ExternalObserver } from '../platform/external.js';

export interface SimulationOptions {
  /** A scenario file path, or a scenario object (validated the same way). */
  scenario: string | Scenario | Record<string, unknown>;
  /** Device catalogue folder or a loaded catalogue. Default: the package's `devices/`. */
  catalog?: string | Catalog;
  /** Overrides the scenario's seed. */
  seed?: number;
  /** Overrides the scenario's speed: a real-time multiplier, "fast", or "manual" (advance by hand). */
  speed?: Speed;
  /** Overrides the scenario's duration ("15m", "24h") or milliseconds. */
  duration?: string | number;
  /** Overrides the scenario's `behaviour.telemetry` (periodic readings on or off). */
  telemetry?: boolean;
  /**
   * Xiaomi format devices speak: "cloud" (the cloud push, `device/{did}/up/...` with `params`) or
   * "local-hub" (the central hub's `appMsg/notify/iot/...`, flat payloads). Default "cloud".
   */
  wire?: WireProfile;
  /**
   * Simulate only shard `index` of `count` of the population's homes (see `ShardedSimulation`, which
   * runs every shard in a worker thread and merges what their platforms saw).
   */
  shard?: { index: number; count: number };
  /** Embedded broker listeners. Ports: 0 = any free port, null = off. Defaults: TCP 1883, WebSocket off. */
  broker?: { host?: string; mqttPort?: number | null; wsPort?: number | null };
  /**
   * Run against a broker you operate instead of the embedded one (`mqtt://`, `ws://`, ...). Devices
   * and app users connect to it over sockets; the platform and the operator connect as clients
   * (with `username`/`password` if given, else as `operator` with the operator token) and the
   * platform counts connections from state messages and last wills.
   */
  externalBroker?: { url: string; username?: string; password?: string };
  /** How device sessions reach the embedded broker. Default "in-process" (no socket per device). */
  deviceTransport?: 'in-process' | 'tcp';
  /** Password of the `operator` account; random when omitted. */
  operatorToken?: string;
  /** Write the device-side trace as NDJSON to this file. */
  traceFile?: string;
  /** Called while devices connect. */
  onConnectProgress?: (connected: number, total: number) => void;
}

export interface SimulationStatus {
  virtualTime: number;
  virtualStart: number;
  virtualEnd: number | null;
  devices: number;
  sessions: number;
  sessionsConnected: number;
  online: number;
  published: number;
  delivered: number;
  rejected: number;
  events: number;
  /** Connection attempts device sessions made after losing the broker (backoff with jitter). */
  reconnectAttempts: number;
}

const CONNECT_CONCURRENCY = 200;
/** Sockets one process may open to an external broker (each costs a file descriptor; the limit is 20,000). */
export const MAX_EXTERNAL_CONNECTIONS = 15_000;
/** The platform snapshot goes to `$SYS/aiot-sim/platform` (retained) this often, in virtual time. */
const SYS_INTERVAL_MS = 5 * 60_000;
export const SYS_PLATFORM_TOPIC = '$SYS/aiot-sim/platform';
/** Above this many app users, app clients use the in-process transport (file descriptor limit). */
const MAX_WS_APP_CLIENTS = 2000;

export type { FaultNotice, FaultRecord } from './faults.js';

export class Simulation {
  readonly scenario: Scenario;
  readonly seed: number;
  readonly speed: Speed;
  readonly catalog: Catalog;
  readonly population: Population;
  readonly operatorToken: string;
  readonly scheduler: EventScheduler;
  readonly platform: PlatformService;
  private broker_: EmbeddedBroker | null = null;
  private readonly driver: ClockDriver;
  private readonly devices = new Map<string, Device>();
  private readonly sessions: DeviceSession[] = [];
  private readonly tokens = new Map<string, string>();
  private readonly trace = new TraceRecorder();
  private readonly inflight = { count: 0 };
  /** Commands and reconnections in progress; fast mode waits for them before moving the clock. */
  private readonly work = new WorkQueue();
  private readonly households: Household[] = [];
  private readonly userTokens = new Map<string, string>();
  private readonly locals = new Map<string, LocalTime>();
  private apps: AppUsers | null = null;
  /** The scenario's faults: records for the report, and a 'fault' event as each starts and ends. */
  readonly faults: FaultTimeline;
  private voiceCommands = 0;
  private operator: RpcClient | null = null;
  private observer: ExternalObserver | null = null;
  private wallStart = 0;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private readonly virtualStart: number;
  private readonly virtualEnd: number | null;

  private constructor(
    private readonly opts: SimulationOptions,
    scenario: Scenario,
    catalog: Catalog,
  ) {
    this.scenario = opts.telemetry === undefined ? scenario : { ...scenario, behaviour: { ...scenario.behaviour, telemetry: opts.telemetry } };
    this.catalog = catalog;
    this.seed = opts.seed ?? scenario.seed;
    this.speed = opts.speed ?? scenario.speed;
    this.operatorToken = opts.operatorToken ?? randomBytes(12).toString('base64url');
    this.virtualStart = Date.parse(scenario.start);
    const durationMs = typeof opts.duration === 'number' ? opts.duration
      : opts.duration !== undefined ? parseDuration(opts.duration) : scenario.duration;
    this.virtualEnd = durationMs === undefined ? null : this.virtualStart + durationMs;
    this.scheduler = new EventScheduler(this.virtualStart);
    const everyone = buildPopulation(scenario, catalog, this.seed);
    this.population = opts.shard ? shardPopulation(everyone, opts.shard.index, opts.shard.count) : everyone;
    this.platform = new PlatformService((did) => this.facts(did));
    const driverOpts: ConstructorParameters<typeof ClockDriver>[2] = {
      congested: () => this.inflight.count > 20_000 || this.work.pending > 0,
    };
    if (this.virtualEnd !== null) driverOpts.endTime = this.virtualEnd;
    this.driver = new ClockDriver(this.scheduler, this.speed, driverOpts);
    const reconnect = this.reconnectPolicy();
    this.faults = new FaultTimeline({
      seed: this.seed, virtualStart: this.virtualStart, scheduler: this.scheduler, work: this.work, sessions: this.sessions,
      regionOf: (did) => this.planByDid.get(did)?.region, broker: () => this.broker_, platform: this.platform,
      settle: () => this.settle(), clientsBack: (ms) => this.clientsBack(ms), clientsGone: (ms) => this.clientsGone(ms),
      // A session retries at most maxDelay after the broker is back, then the broker has to take them all.
      reconnectBoundMs: reconnect.maxDelayMs + 60_000,
    });
  }

  /** The scenario's reconnection settings as a backoff policy (milliseconds). */
  private reconnectPolicy(): ReconnectPolicy {
    const r = this.scenario.network.reconnect;
    return { initialDelayMs: r.initialDelay, maxDelayMs: r.maxDelay, factor: r.factor, jitter: r.jitter };
  }

  /** Resolves once the operator and every app client have seen their connection close (bounded). */
  private async clientsGone(timeoutMs: number): Promise<void> {
    const end = performance.now() + timeoutMs;
    while (performance.now() < end && ((this.operator?.client.connected ?? false) || (this.apps?.anyConnected() ?? false))) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Resolves once the operator and every app client are connected (bounded; they reconnect by themselves). */
  private async clientsBack(timeoutMs: number): Promise<void> {
    const end = performance.now() + timeoutMs;
    while (performance.now() < end && !((this.operator?.client.connected ?? true) && (this.apps?.allConnected() ?? true))) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Validate everything (scenario, catalogue, overrides) and build the population; starts nothing. */
  static async create(opts: SimulationOptions): Promise<Simulation> {
    const catalog = opts.catalog instanceof Catalog ? opts.catalog : await loadCatalog(opts.catalog ?? join(PACKAGE_ROOT, 'devices'));
    let scenario: Scenario;
    if (typeof opts.scenario === 'string') scenario = await loadScenario(opts.scenario, catalog);
    else {
      const res = checkScenario('<scenario>', opts.scenario, catalog);
      if (!res.scenario) throw new ValidationError(res.problems);
      scenario = res.scenario;
    }
    const problems: string[] = [];
    if (opts.seed !== undefined && !(Number.isInteger(opts.seed) && opts.seed >= 0)) problems.push(`seed: expected a non-negative integer, got ${opts.seed}`);
    if (typeof opts.speed === 'number' && !(opts.speed > 0)) problems.push(`speed: expected a positive number, "fast" or "manual", got ${opts.speed}`);
    if (typeof opts.duration === 'string' && parseDuration(opts.duration) === undefined) problems.push(`duration: expected e.g. "90s", "15m", "24h", "30d", got "${opts.duration}"`);
    if (typeof opts.duration === 'number' && !(opts.duration > 0)) problems.push(`duration: expected positive milliseconds, got ${opts.duration}`);
    const speed = opts.speed ?? scenario.speed;
    if (speed === 'fast' && opts.duration === undefined && !scenario.duration) problems.push('duration: fast mode needs a duration');
    if (opts.wire !== undefined && !WIRE_PROFILES.includes(opts.wire)) problems.push(`wire: expected ${WIRE_PROFILES.map((w) => `"${w}"`).join(' or ')}, got "${String(opts.wire)}"`);
    const sh = opts.shard;
    if (sh && !(Number.isInteger(sh.count) && sh.count >= 1 && Number.isInteger(sh.index) && sh.index >= 0 && sh.index < sh.count)) {
      problems.push(`shard: expected integers 0 <= index < count, got index ${sh.index} of count ${sh.count}`);
    }
    if (problems.length) throw new AiotSimError('E_OPTIONS', 'input', problems.join('\n'));
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
    if (this.opts.externalBroker) return this.startExternal(this.opts.externalBroker);
    const b = this.opts.broker ?? {};
    const brokerOpts: Parameters<typeof EmbeddedBroker.start>[0] = { operatorToken: this.operatorToken };
    if (b.host !== undefined) brokerOpts.host = b.host;
    if (b.mqttPort !== undefined) brokerOpts.mqttPort = b.mqttPort;
    if (b.wsPort !== undefined) brokerOpts.wsPort = b.wsPort;
    const broker = await EmbeddedBroker.start(brokerOpts);
    this.broker_ = broker;
    try {
      this.platform.observe(broker);
      this.provision(broker.access);
      const url = broker.wsAddress ? `ws://${broker.wsAddress.host}:${broker.wsAddress.port}/mqtt` : null;
      const inProcess: Connector = { kind: 'in-process', open: () => broker.connectInProcess() };
      await this.connectOperator(new MqttClient(() => broker.connectInProcess(), this.operatorOptions()));
      if (this.opts.deviceTransport === 'tcp' && !broker.mqttAddress) {
        throw new AiotSimError('E_OPTIONS', 'input', 'deviceTransport "tcp" needs the TCP listener (mqttPort is null)');
      }
      await this.connectAll(this.opts.deviceTransport === 'tcp'
        ? { kind: 'url', url: `mqtt://${broker.mqttAddress!.host}:${broker.mqttAddress!.port}` } : inProcess);
      // App clients speak MQTT over WebSocket, like a phone; a socket costs two file descriptors in
      // this process, so large populations use the in-process transport instead.
      await this.connectUsers((n) => (url && n <= MAX_WS_APP_CLIENTS ? { kind: 'url', url } : inProcess));
      await this.goLive();
    } catch (err) {
      await this.shutdown();
      this.state = 'stopped';
      throw err;
    }
  }

  /** Devices, app users, operator and platform all connect to a broker we do not own. */
  private async startExternal(ext: NonNullable<SimulationOptions['externalBroker']>): Promise<void> {
    checkBrokerUrl(ext.url);
    const creds = ext.username !== undefined ? { username: ext.username, password: ext.password ?? '' } : { username: 'operator', password: this.operatorToken };
    try {
      this.provision(null);
      const sockets = this.population.sessions.length + this.households.reduce((n, h) => n + h.appUsers.length, 0) + 2;
      if (sockets > MAX_EXTERNAL_CONNECTIONS) {
        throw new AiotSimError('E_OPTIONS', 'input',
          `--broker: this scenario needs ${sockets} connections to ${ext.url} (device sessions, app users, platform, operator); one process opens at most ${MAX_EXTERNAL_CONNECTIONS}. Use fewer homes, or the embedded broker (its in-process transport needs no sockets)`);
      }
      this.observer = await ExternalObserver.connect(ext.url, creds, (topic, payload) => this.platform.onMessage(topic, payload));
      await this.connectOperator(await connectExternal(ext.url, `aiot-sim-operator-${randomBytes(4).toString('hex')}`, creds));
      const connector: Connector = { kind: 'url', url: ext.url };
      await this.connectAll(connector);
      await this.connectUsers(() => connector);
      await this.goLive();
    } catch (err) {
      await this.shutdown();
      this.state = 'stopped';
      throw err;
    }
  }

  /** Announce every session online, then start devices, households, faults and the clock. */
  private async goLive(): Promise<void> {
    // First announcements in population order, at the virtual start: a reproducible trace.
    for (const s of this.sessions) s.goOnline();
    // Resolve only once the broker has them (subscriptions, retained "online" states), so a
    // command sent right after start() finds its device listening.
    await this.settle(60_000);
    if (this.observer) await this.observer.quiet();
    for (const d of this.devices.values()) d.start();
    for (const h of this.households) h.start();
    this.scheduleFaults();
    this.scheduler.every(SYS_INTERVAL_MS, () => this.publishPlatform(), 0);
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
    await this.settle();
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
      devices: this.devices.size,
      sessions: this.sessions.length,
      sessionsConnected: this.sessions.filter((s) => s.connected).length,
      online: this.platform.registry.size,
      published: c?.published ?? 0,
      delivered: c?.delivered ?? 0,
      rejected: c?.rejected ?? 0,
      events: this.scheduler.executed,
      reconnectAttempts: this.sessions.reduce((n, s) => n + s.reconnectAttempts, 0),
    };
  }

  /** What the simulated people did (simulator-side counts; the platform measures its own). */
  activity(): { appUsers: number; appSessions: number; appCommands: number; voiceInteractions: number; voiceCommands: number; automations: number; skippedOffline: number; failedCommands: number } {
    const sum = (k: keyof Household['counters']): number => this.households.reduce((n, h) => n + h.counters[k], 0);
    return {
      appUsers: this.households.reduce((n, h) => n + h.appUsers.length, 0),
      appSessions: sum('appSessions'),
      appCommands: this.apps?.counters.appCommands ?? 0,
      voiceInteractions: sum('voiceInteractions'),
      voiceCommands: this.voiceCommands,
      automations: sum('automations'),
      skippedOffline: sum('skippedOffline'),
      failedCommands: this.work.failures,
    };
  }

  /** A device by did (for inspection; commands go through `command()` and the broker). */
  device(did: string): Device | undefined {
    return this.devices.get(did);
  }

  /** Dids of every simulated device, children included. */
  get dids(): string[] {
    return [...this.devices.keys()];
  }

  /** Send an RPC to a device as the operator, through the broker, and await its reply on up/rpc. */
  async command(did: string, method: 'get_properties' | 'set_properties' | 'action', params: unknown, timeoutMs = 10_000): Promise<RpcResponse> {
    const op = this.operator;
    if (!op || this.state !== 'running') throw new AiotSimError('E_STATE', 'input', 'command(): the simulation is not running');
    if (!this.devices.has(did)) throw new AiotSimError('E_UNKNOWN_DEVICE', 'input', `command(): no device "${did}" in this simulation`);
    return op.request(did, method, params, timeoutMs);
  }

  /** Stop everything cleanly (devices say offline, sessions disconnect, broker closes); returns the report. */
  stop(): Promise<RunReport> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private stopping: Promise<RunReport> | null = null;
  private shardState: PlatformState | null = null;

  /** A shard's platform state as its run ended (what its report's figures came from), for merging; null otherwise. */
  get shardPlatformState(): PlatformState | null {
    return this.shardState;
  }

  private async doStop(): Promise<RunReport> {
    this.state = 'stopping';
    this.driver.stop();
    for (const h of this.households) h.stop();
    await this.work.idle();
    // Let messages already handed to the broker arrive, then take the platform's figures as the run ends.
    await this.settle();
    if (this.observer) await this.observer.quiet();
    const snapshot = this.platform.snapshot();
    if (this.opts.shard) this.shardState = this.platform.exportState();
    await this.publishPlatform();
    for (const d of this.devices.values()) d.stop();
    await Promise.all(this.sessions.map((s) => s.stop()));
    await this.apps?.close();
    const counters = this.counters();
    const digest = await this.trace.finish();
    await this.shutdown();
    this.state = 'stopped';
    return buildReport({
      scenario: this.scenario, seed: this.seed, speed: this.speed, virtualStart: this.virtualStart,
      virtualEnd: this.scheduler.now(), wallSeconds: (performance.now() - this.wallStart) / 1000,
      counters, traceDigest: digest, traceMessages: this.trace.count, platform: snapshot,
      devices: this.devices.size, sessions: this.sessions.length, operatorToken: this.operatorToken,
      activity: this.activity(), faults: this.faults.records,
    });
  }

  /**
   * Message counts: the embedded broker's own; on an external broker, what the devices sent and
   * what the platform received (the broker's refusals are not visible from outside).
   */
  private counters(): BrokerCounters {
    if (this.broker_) return { ...this.broker_.counters };
    return { published: this.trace.count, delivered: this.observer?.received ?? 0, rejected: 0, rejectedConnects: 0, rejectedPackets: 0, restarts: 0 };
  }

  /** What the platform knows of a device from its binding: model, category, region, owner. */
  private facts(did: string): DeviceFacts | undefined {
    const d = this.planByDid.get(did);
    if (!d) return undefined;
    const f: DeviceFacts = { model: d.model.model, category: d.model.category, region: d.region, uid: d.uid };
    if (d.model.transport !== 'wifi') f.radio = d.model.transport;
    const stateless = d.children.filter((c) => !announcesState(c.model)).map((c) => c.did);
    if (stateless.length) f.statelessChildren = stateless;
    const voice = voiceEventOf(d.model);
    if (voice) f.voice = voice;
    return f;
  }

  private readonly planByDid = new Map<string, DevicePlan>();

  /**
   * Give every device and user its credentials and register them (and ownership) with the
   * embedded broker's access rules, as the cloud provisions them; an external broker applies its own.
   */
  private provision(access: AccessDirectory | null): void {
    const rng = Rng.from(this.seed, 'devices');
    for (const plan of this.population.devices) this.planByDid.set(plan.did, plan);
    const homes = new Map(this.population.homes.map((h) => [h.id, h]));
    for (const plan of this.population.sessions) {
      const token = randomBytes(16).toString('hex');
      this.tokens.set(plan.did, token);
      const members = homes.get(plan.homeId)?.memberUids ?? [];
      access?.registerDevice(plan.did, { token, uid: plan.uid, members, children: plan.children.map((c) => c.did) });
    }
    const beh = this.scenario.behaviour;
    const curve = beh.rhythm ? normaliseCurve(beh.rhythm) : DEFAULT_CURVE;
    const householdOf = new Map<string, Household>();
    for (const plan of this.population.devices) {
      const opts: ConstructorParameters<typeof Device>[0] = {
        did: plan.did, model: plan.model, uid: plan.uid, scheduler: this.scheduler, rng: rng.fork(plan.did),
        activity: () => householdOf.get(plan.homeId)?.activity() ?? 1, offlineBuffer: this.scenario.network.offlineBuffer,
        telemetry: beh.telemetry,
      };
      if (this.opts.wire) opts.wire = this.opts.wire;
      if (plan.parentId) opts.parentId = plan.parentId;
      this.devices.set(plan.did, new Device(opts));
    }
    const channel = this.channel();
    for (const home of this.population.homes) {
      for (const uid of [home.ownerUid, ...home.memberUids]) {
        const token = randomBytes(12).toString('hex');
        this.userTokens.set(uid, token);
        access?.registerUser(uid, token);
      }
      let local = this.locals.get(home.region);
      if (!local) this.locals.set(home.region, (local = new LocalTime(regionOf(home.region).timeZone)));
      const h = new Household({
        home, devices: this.devices, scheduler: this.scheduler, seed: this.seed, local, curve, behaviour: beh, channel,
      });
      householdOf.set(home.id, h);
      this.households.push(h);
    }
  }

  /** What households do through the network, queued in order (see WorkQueue). */
  private channel(): HouseholdChannel {
    return {
      appSession: (uid) => this.work.push(() => this.apps!.openSession(uid)),
      appCommand: (uid, did, method, params) => this.work.push(() => this.apps!.command(uid, did, method, params)),
      voiceCommand: (did, method, params) => {
        this.voiceCommands++;
        this.work.push(() => this.command(did, method, params, 5000));
      },
      automationCommand: (did, method, params) => this.work.push(() => this.command(did, method, params, 5000)),
    };
  }

  private async connectUsers(connectorFor: (users: number) => Connector): Promise<void> {
    // Only people who use the app have an app client.
    const users: AppUser[] = this.households.flatMap((h) => h.appUsers.map((uid) => ({
      uid, token: this.userTokens.get(uid)!, homeId: h.home.id, dids: h.home.devices.map((d) => d.did),
    })));
    const apps = new AppUsers(connectorFor(users.length), this.scheduler);
    this.apps = apps;
    await apps.connectAll(users);
  }

  /** Put the scenario's faults on the virtual timeline (see faults.ts). */
  private scheduleFaults(): void {
    this.faults.schedule(this.scenario.faults);
  }

  private operatorOptions(): IClientOptions {
    return {
      clientId: `aiot-sim-operator-${randomBytes(4).toString('hex')}`, username: 'operator', password: this.operatorToken,
      protocolVersion: 4, reconnectPeriod: 1000,
    };
  }

  /** The operator's client (commands from `command()`, the voice cloud and automations). */
  private async connectOperator(op: MqttClient): Promise<void> {
    if (!op.connected) await new Promise<void>((resolve, reject) => {
      op.once('connect', () => resolve());
      op.once('error', reject);
    });
    await op.subscribeAsync('device/+/up/rpc', { qos: 1 });
    this.operator = new RpcClient(op);
  }

  private async connectAll(connector: Connector): Promise<void> {
    const hooks = { clock: this.scheduler, trace: this.trace, inflight: this.inflight, reconnect: this.reconnectPolicy(), seed: this.seed };
    for (const plan of this.population.sessions) {
      const device = this.devices.get(plan.did)!;
      const children = plan.children.map((c) => this.devices.get(c.did)!);
      this.sessions.push(new DeviceSession(device, children, this.tokens.get(plan.did)!, connector, hooks));
    }
    let done = 0;
    const queue = [...this.sessions];
    const worker = async (): Promise<void> => {
      for (let s = queue.shift(); s; s = queue.shift()) {
        await s.connect();
        done++;
        this.opts.onConnectProgress?.(done, this.sessions.length);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, queue.length) }, worker));
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
    const op = this.operator?.client;
    if (!op?.connected) return Promise.resolve();
    return op.publishAsync(SYS_PLATFORM_TOPIC, body, { qos: 0, retain: true }).then(() => undefined, () => undefined);
  }

  /** Wait (bounded) until device publishes handed to sessions have been written to the broker. */
  private async settle(maxMs = 5000): Promise<void> {
    const until = performance.now() + maxMs;
    while (this.inflight.count > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setImmediate(r));
  }

  private async shutdown(): Promise<void> {
    const op = this.operator;
    this.operator = null;
    if (op) await op.client.endAsync(true).catch(() => undefined);
    const obs = this.observer;
    this.observer = null;
    if (obs) await obs.close();
    if (this.broker_) await this.broker_.close();
  }
}

/** A speaker model's voice-interaction event and the argument that carries the user id. */
function voiceEventOf(model: DeviceModel): DeviceFacts['voice'] | undefined {
  for (const svc of model.services) {
    const ev = svc.events.find((e) => e.name === 'voice-interaction');
    const user = svc.properties.find((p) => p.name === 'user-id');
    if (ev && user && ev.arguments.includes(user.piid)) return { siid: svc.siid, eiid: ev.eiid, userPiid: user.piid };
  }
  return undefined;
}

/** Validate, build and start a simulation (see SimulationOptions). */
export async function createSimulation(opts: SimulationOptions): Promise<Simulation> {
  const sim = await Simulation.create(opts);
  await sim.start();
  return sim;
}

