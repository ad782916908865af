/**
 * What a simulation is asked to run (`SimulationOptions`), how it reports where it is
 * (`SimulationStatus`), and the check of it all before anything is built: the scenario (a file or
 * an object), the catalogue and every override, each problem named.
 */
import { join } from 'node:path';
import { Catalog, loadCatalog } from '../catalog/catalog.js';
import { checkScenario, loadScenario, parseDuration, type Scenario } from '../catalog/scenario.js';
import { WIRE_PROFILES, type WireProfile } from '../contract/wire.js';
import { OptionsError, ValidationError, type OptionProblem } from '../errors.js';
import { PACKAGE_ROOT } from '../paths.js';
import type { BrokerOptions } from '../broker/broker.js';
import { limitProblems } from '../broker/limits.js';
import type { ThreadStore } from '../platform/thread-store.js';
import type { Speed } from './drivers.js';

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
  /**
   * The embedded broker: listeners (ports: 0 = any free port, null = off; defaults TCP 1883,
   * WebSocket off), what anonymous clients may do, allowed web origins and bounds (BrokerOptions).
   * The operator token is the simulation's.
   */
  broker?: Omit<BrokerOptions, 'operatorToken'>;
  /**
   * Run against a broker you operate instead of the embedded one (`mqtt://`, `ws://`, ...). Devices
   * and app users connect to it over sockets; the platform and the operator connect as clients
   * (with `username`/`password` if given, else as `operator` with the operator token) and the
   * platform counts connections from state messages and last wills.
   */
  externalBroker?: {
    url: string; username?: string; password?: string;
    /**
     * More brokers (a cluster's other nodes): each client starts at its own place in the list
     * (url first, then these) and reconnects to the next broker each time its connection is lost.
     */
    failover?: string[];
    /**
     * The brokers are aiot-sim nodes of a cluster on this Redis (`serve --cluster`): the devices'
     * and app users' credentials are written to the cluster's shared access directory before
     * they connect.
     */
    cluster?: string;
  };
  /**
   * Count the platform's figures into a store shared with other processes: `redis://HOST:PORT[/DB]`
   * (see RedisStore). Every process naming the same Redis counts into one store, and the run's
   * figures (report, monitor) are everyone's. Default: this process' own in-memory store.
   */
  platform?: string;
  /**
   * With `shard` and `platform`: how long a shard that has reached its end waits for the other
   * shards of the run to reach theirs (as their marks in the store tell), so that the figures it
   * reports are those of the whole fleet at the end. Default 10 minutes.
   */
  shardWaitMs?: number;
  /**
   * Count into this worker thread's store (a shard of `ShardedSimulation`): the figures are this
   * run's own, and every write also goes, in batches, to the run's merged store in the main thread.
   * The run closes it as it takes its figures at the end, so the merged store gets exactly what its
   * report's figures are made of. Not with `platform`.
   */
  threadStore?: ThreadStore;
  /**
   * How device sessions reach the embedded broker: "in-process" (default), the fleet engine's lean
   * sessions, no socket or client per device; "in-process-clients", an mqtt.js client per device
   * over an in-process byte pipe (how it was before the fleet engine, for comparison); "tcp", an
   * mqtt.js client per device over a socket to the broker's TCP listener.
   */
  deviceTransport?: 'in-process' | 'in-process-clients' | 'tcp';
  /**
   * Memory this run may use, bytes. Before connecting anything the run estimates what its
   * population needs (sim/memory.ts) and refuses (E_MEMORY) what does not fit in this limit, in
   * V8's heap limit or in the machine's available memory. Default: no limit but those two.
   */
  memoryLimit?: number;
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
  /** The run is stopping: devices say goodbye and sessions disconnect (`sessionsConnected` falls to 0). */
  stopping: boolean;
  /** While stopping: what the stop waits for now (queued network work, the other shards, ...). */
  stopStep?: string;
}

/**
 * Load and validate the scenario and the catalogue, and check the overrides; throws a
 * ValidationError (scenario) or an E_OPTIONS error naming every bad option.
 */
export async function resolveOptions(opts: SimulationOptions): Promise<{ scenario: Scenario; catalog: Catalog }> {
  const catalog = opts.catalog instanceof Catalog ? opts.catalog : await loadCatalog(opts.catalog ?? join(PACKAGE_ROOT, 'devices'));
  let scenario: Scenario;
  if (typeof opts.scenario === 'string') scenario = await loadScenario(opts.scenario, catalog);
  else {
    const res = checkScenario('<scenario>', opts.scenario, catalog);
    if (!res.scenario) throw new ValidationError(res.problems);
    scenario = res.scenario;
  }
  const problems = optionProblems(opts, scenario);
  if (problems.length) throw new OptionsError('E_OPTIONS', problems);
  return { scenario, catalog };
}

function optionProblems(opts: SimulationOptions, scenario: Scenario): OptionProblem[] {
  const problems: OptionProblem[] = [];
  if (opts.seed !== undefined && !(Number.isInteger(opts.seed) && opts.seed >= 0)) problems.push({ option: 'seed', message: 'expected a non-negative integer', value: opts.seed });
  if (typeof opts.speed === 'number' && !(opts.speed > 0)) problems.push({ option: 'speed', message: 'expected a positive number, "fast" or "manual"', value: opts.speed });
  if (typeof opts.duration === 'string' && parseDuration(opts.duration) === undefined) problems.push({ option: 'duration', message: 'expected e.g. "90s", "15m", "24h", "30d"', value: opts.duration });
  if (typeof opts.duration === 'number' && !(opts.duration > 0)) problems.push({ option: 'duration', message: 'expected positive milliseconds', value: opts.duration });
  const speed = opts.speed ?? scenario.speed;
  if (speed === 'fast' && opts.duration === undefined && !scenario.duration) problems.push({ option: 'duration', message: 'fast mode needs a duration' });
  if (opts.wire !== undefined && !WIRE_PROFILES.includes(opts.wire)) {
    problems.push({ option: 'wire', message: `expected ${WIRE_PROFILES.map((w) => `"${w}"`).join(' or ')}`, value: opts.wire });
  }
  if (opts.memoryLimit !== undefined && !(Number.isFinite(opts.memoryLimit) && opts.memoryLimit > 0)) {
    problems.push({ option: 'memoryLimit', message: 'expected a positive number of bytes', value: opts.memoryLimit });
  }
  const sh = opts.shard;
  if (sh && !(Number.isInteger(sh.count) && sh.count >= 1 && Number.isInteger(sh.index) && sh.index >= 0 && sh.index < sh.count)) {
    problems.push({ option: 'shard', message: `expected integers 0 <= index < count, got index ${sh.index} of count ${sh.count}` });
  }
  if (opts.threadStore && opts.platform !== undefined) {
    problems.push({ option: 'threadStore', message: 'a worker thread\'s store and a shared platform store (platform) exclude each other' });
  }
  for (const p of limitProblems(opts.broker ?? {})) problems.push({ ...p, option: `broker.${p.option}` });
  return problems;
}
