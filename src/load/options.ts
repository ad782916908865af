/**
 * What `runBench` is asked to do (`BenchOptions`) and the checked plan it runs (`BenchConfig`).
 * `resolveBenchConfig()` is pure: it checks every option at once, names each problem (an
 * `OptionsError` listing them all), and fills in the defaults.
 */
import type { OverloadOptions } from '../broker/overload.js';
import type { Catalog } from '../catalog/catalog.js';
import { DEFAULT_WIRE, WIRE_PROFILES, type WireProfile } from '../contract/wire.js';
import { OptionsError, type OptionProblem } from '../errors.js';
import { filterProblem } from '../monitor/topic-filter.js';
import { buildTemplate, shapesOf, type MessageShape } from './payloads.js';
import type { SloTerm } from './slo.js';
import { parseBrokerUrl, targetUrl, type WireTarget } from './wire.js';

/** QoS levels bench generates and subscribes with, and why no other. */
export const QOS_LEVELS = [0, 1] as const;
export const QOS_NOTE = 'bench speaks MQTT 3.1.1 and generates no QoS 2';
/** How devices and probe reach the embedded broker. */
export const TRANSPORTS = ['tcp', 'ws'] as const;

export interface BenchOptions {
  /** External broker URL (mqtt://HOST:PORT or ws://HOST:PORT/PATH); absent: start the embedded broker. */
  broker?: string;
  /** Embedded broker: transport the devices and probe use. Default tcp. */
  transport?: (typeof TRANSPORTS)[number];
  /** Embedded broker: interface to bind. Default 127.0.0.1. */
  host?: string;
  /** Embedded broker TCP port (0 = any free one). Default 0. */
  mqttPort?: number;
  /** Embedded broker WebSocket port (0 = any); default: off unless transport is ws. */
  wsPort?: number | null;
  /** Embedded broker: Aedes delivery concurrency. Default 100. */
  concurrency?: number;
  /** Embedded broker: shedding bounds (see broker/overload.ts). */
  overload?: OverloadOptions;
  /** External broker running on this machine: its process id, to report its CPU time per message (Linux). */
  brokerPid?: number;
  /** External broker credentials for devices and probe (default anonymous). */
  username?: string;
  password?: string;
  /** Device connections, 1 to 1,000,000. Default 100. */
  devices?: number;
  /** Total message rate, msg/s (default 1000). Exclusive with ratePerDevice. */
  rate?: number;
  /** Message rate of each device, msg/s. Exclusive with rate. */
  ratePerDevice?: number;
  /** QoS of device publishes and of the probe's subscription. Default 0. */
  qos?: (typeof QOS_LEVELS)[number];
  /** Measured time, ms. Default 10,000. */
  durationMs?: number;
  /** Traffic before measuring, ms. Default 2,000. */
  warmupMs?: number;
  /** Connections per second while connecting; 0 = as fast as possible. Default 0. */
  rampPerSecond?: number;
  /** Pad payloads to at least this many bytes (up to 262,144). Default 0. */
  payloadSize?: number;
  /** Share of event_occured messages (0..1). Default 0.05. */
  eventShare?: number;
  /**
   * Xiaomi format of the messages: "cloud" (`device/{did}/up/...`, keys in `params`) or
   * "local-hub" (`appMsg/notify/iot/...`, flat). Default "cloud".
   */
  wire?: WireProfile;
  /** Device models to draw devices from (round robin). Default: every Wi-Fi model of the catalogue. */
  models?: string[];
  /** A dropped connection reconnects after 50 ms + a random 0..this many ms. Default 1,000. */
  reconnectJitterMs?: number;
  /** Generator worker threads, 1 to 64 (at most one per device). Default 1 (2 on 4+ cores). */
  workers?: number;
  /** Measure the round trip through a consumer that republishes bench messages on this topic filter. */
  replyTopic?: string;
  /** Wait this long after the broker is up before connecting devices (time to start a consumer), ms. Default 0. */
  waitMs?: number;
  /** After the window, wait at most this long for messages still on their way, ms. Default 5,000. */
  drainMs?: number;
  /** QoS 1 PUBLISHes in flight per connection. Default 100. */
  inflight?: number;
  /** SLO terms checked into the report. */
  slo?: SloTerm[];
  /** Seed of the generators' random choices (a non-negative integer). Default 1. */
  seed?: number;
  catalog?: Catalog;
  /** Called once the embedded broker listens (or with the external URL). */
  onBroker?: (info: { url: string; mqttUrl: string | null; wsUrl: string | null; embedded: boolean }) => void;
  /** Called about once a second while running. */
  onProgress?: (p: BenchProgress) => void;
}

export interface BenchProgress {
  phase: 'connecting' | 'warm-up' | 'measuring' | 'draining';
  seconds: number;
  connected: number;
  devices: number;
  sendRate: number;
  receiveRate: number;
  p99Ms: number | null;
  /** Connect failures + dropped connections so far. */
  errors: number;
}

/** Where the traffic goes: a broker of the user's, or an embedded one bench starts. */
export type BenchTargetPlan =
  | { kind: 'external'; target: WireTarget; url: string; username?: string; password?: string }
  | {
    kind: 'embedded'; transport: (typeof TRANSPORTS)[number]; host: string; mqttPort: number; wsPort: number | null;
    concurrency?: number; overload?: OverloadOptions;
  };

export interface ModelShapes { properties: MessageShape[]; events: MessageShape[] }

/** A bench run, checked and with every default filled in. */
export interface BenchConfig {
  target: BenchTargetPlan;
  devices: number;
  /** Generator threads (never more than devices). */
  workers: number;
  qos: 0 | 1;
  /** Total rate, msg/s. */
  rate: number;
  durationMs: number;
  warmupMs: number;
  rampPerSecond: number;
  payloadSize: number;
  /** Smallest and largest whole PUBLISH packet of the run. */
  payloadBytes: { min: number; max: number };
  eventShare: number;
  /** The wire profile of every message (the probe subscribes to its topics). */
  wire: WireProfile;
  models: string[];
  shapes: Record<string, ModelShapes>;
  reconnectJitterMs: number;
  drainMs: number;
  inflight: number;
  seed: number;
  /** Marks this run's messages (4 characters). */
  runId: string;
  replyTopic: string | null;
  waitMs: number;
  slo: SloTerm[];
}

/** What a config depends on besides the options: the device catalogue, the machine, the run's id. */
export interface BenchEnvironment { catalog: Catalog; cores: number; runId: string }

const DEFAULTS = {
  devices: 100, rate: 1000, durationMs: 10_000, warmupMs: 2000, reconnectJitterMs: 1000, drainMs: 5000, inflight: 100,
  eventShare: 0.05, seed: 1,
};
const MAX_PAYLOAD = 256 * 1024;

/** Collects problems; each check returns the value to go on with (bench and replay options). */
export class Problems {
  readonly list: OptionProblem[] = [];
  add(option: string, message: string): void {
    this.list.push({ option, message });
  }
  reject(option: string, message: string, value: unknown): void {
    this.list.push({ option, message, value });
  }
  /** `given ?? fallback`, recorded as a problem unless `ok` (the fallbacks always are). */
  check<T>(option: string, given: T | undefined, fallback: T, ok: (v: T) => boolean, message: string): T {
    const v = given ?? fallback;
    if (!ok(v)) this.reject(option, message, v);
    return v;
  }
}

export const isInt = (min: number, max: number) => (v: number): boolean => Number.isInteger(v) && v >= min && v <= max;
export const atLeast = (min: number) => (v: number): boolean => Number.isFinite(v) && v >= min;
export const positive = (v: number): boolean => Number.isFinite(v) && v > 0;

/** Check every option (all problems at once, as an OptionsError) and fill in the defaults. */
export function resolveBenchConfig(o: BenchOptions, env: BenchEnvironment): BenchConfig {
  const p = new Problems();
  const target = resolveTarget(o, p);
  if (o.brokerPid !== undefined) {
    if (target.kind === 'embedded') p.add('brokerPid', 'is for an external broker ({broker}); the embedded one runs on this thread');
    else if (!isInt(1, 0x7fffffff)(o.brokerPid)) p.reject('brokerPid', 'expected a process id (a positive integer)', o.brokerPid);
  }
  const devices = p.check('devices', o.devices, DEFAULTS.devices, isInt(1, 1_000_000), 'expected an integer from 1 to 1000000');
  const qos = p.check<number>('qos', o.qos, 0, (v) => (QOS_LEVELS as readonly number[]).includes(v),
    `expected 0 or 1 (${QOS_NOTE})`) === 1 ? 1 : 0;
  const workers = p.check('workers', o.workers, env.cores >= 4 ? 2 : 1, isInt(1, 64), 'expected an integer from 1 to 64');
  const wire = p.check<string>('wire', o.wire, DEFAULT_WIRE, (v) => (WIRE_PROFILES as readonly string[]).includes(v),
    `expected ${WIRE_PROFILES.map((w) => `"${w}"`).join(' or ')}`) === 'local-hub' ? 'local-hub' : 'cloud';
  const { models, shapes } = resolveModels(o.models, env.catalog, wire, p);
  const payloadSize = p.check('payloadSize', o.payloadSize, 0, isInt(0, MAX_PAYLOAD), `expected 0 to ${MAX_PAYLOAD} bytes`);
  let replyTopic: string | null = null;
  if (o.replyTopic !== undefined) {
    const why = filterProblem(o.replyTopic);
    if (why) p.reject('replyTopic', `expected an MQTT topic filter (${why})`, o.replyTopic);
    replyTopic = o.replyTopic;
  }
  const config: BenchConfig = {
    target, devices, workers: Math.min(devices, workers), qos, rate: resolveRate(o, devices, p),
    durationMs: p.check('durationMs', o.durationMs, DEFAULTS.durationMs, positive, 'expected a positive duration'),
    warmupMs: p.check('warmupMs', o.warmupMs, DEFAULTS.warmupMs, atLeast(0), 'expected a duration of zero or more'),
    rampPerSecond: p.check('rampPerSecond', o.rampPerSecond, 0, atLeast(0), 'expected connections per second >= 0'),
    payloadSize, payloadBytes: { min: 0, max: 0 },
    eventShare: p.check('eventShare', o.eventShare, DEFAULTS.eventShare, (v) => v >= 0 && v <= 1, 'expected a share from 0 to 1'),
    wire, models, shapes,
    reconnectJitterMs: p.check('reconnectJitterMs', o.reconnectJitterMs, DEFAULTS.reconnectJitterMs, atLeast(0), 'expected a duration of zero or more'),
    drainMs: p.check('drainMs', o.drainMs, DEFAULTS.drainMs, atLeast(0), 'expected a duration of zero or more'),
    inflight: p.check('inflight', o.inflight, DEFAULTS.inflight, isInt(1, 65_535), 'expected an integer from 1 to 65535'),
    seed: p.check('seed', o.seed, DEFAULTS.seed, isInt(0, Number.MAX_SAFE_INTEGER), 'expected a non-negative integer'),
    runId: env.runId, replyTopic,
    waitMs: p.check('waitMs', o.waitMs, 0, atLeast(0), 'expected a duration of zero or more'),
    slo: o.slo ?? [],
  };
  if (p.list.length) throw new OptionsError('E_BENCH_INPUT', p.list);
  config.payloadBytes = packetSizes(config);
  return config;
}

function resolveRate(o: BenchOptions, devices: number, p: Problems): number {
  if (o.rate !== undefined && o.ratePerDevice !== undefined) p.add('ratePerDevice', 'excludes {rate}: give one of them');
  if (o.ratePerDevice !== undefined) {
    return p.check('ratePerDevice', o.ratePerDevice, 0, positive, 'expected a positive number of messages/s') * devices;
  }
  return p.check('rate', o.rate, DEFAULTS.rate, positive, 'expected a positive number of messages/s');
}

/** The target options bench and replay share. */
export type TargetOptions = Pick<BenchOptions, 'broker' | 'transport' | 'host' | 'mqttPort' | 'wsPort' | 'username' | 'password' | 'concurrency' | 'overload'>;

/** The external broker's URL, or the embedded broker's listeners; options for the other one are refused. */
export function resolveTarget(o: TargetOptions, p: Problems): BenchTargetPlan {
  if (o.broker !== undefined) {
    for (const k of ['transport', 'host', 'mqttPort', 'wsPort'] as const) {
      if (o[k] !== undefined) p.add(k, 'configures the embedded broker; with {broker} the URL says it all');
    }
    let target: WireTarget = { transport: 'tcp', host: '', port: 0, path: '' };
    try {
      target = parseBrokerUrl(o.broker);
    } catch (e) {
      p.add('broker', (e as Error).message);
    }
    if (o.password !== undefined && o.username === undefined) p.add('password', 'needs {username}: MQTT 3.1.1 sends no password without a user name (MQTT-3.1.2-22)');
    return {
      kind: 'external', target, url: targetUrl(target),
      ...(o.username !== undefined ? { username: o.username } : {}), ...(o.password !== undefined ? { password: o.password } : {}),
    };
  }
  for (const k of ['username', 'password'] as const) {
    if (o[k] !== undefined) p.add(k, 'is for an external broker ({broker}); the embedded broker gets device accounts provisioned for the run');
  }
  const transport = p.check<string>('transport', o.transport, 'tcp', (v) => (TRANSPORTS as readonly string[]).includes(v), 'expected "tcp" or "ws"') === 'ws' ? 'ws' : 'tcp';
  return {
    kind: 'embedded', transport, host: o.host ?? '127.0.0.1', mqttPort: o.mqttPort ?? 0, wsPort: o.wsPort ?? (transport === 'ws' ? 0 : null),
    ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}), ...(o.overload ? { overload: o.overload } : {}),
  };
}

/** The models to draw devices from, each with something to send. */
function resolveModels(given: string[] | undefined, catalog: Catalog, wire: WireProfile, p: Problems): { models: string[]; shapes: Record<string, ModelShapes> } {
  const models = given ?? catalog.models.filter((m) => m.transport === 'wifi').map((m) => m.model).sort();
  if (models.length === 0) p.add('models', 'none given');
  const shapes: Record<string, ModelShapes> = {};
  for (const name of models) {
    const m = catalog.get(name);
    if (!m) {
      p.add('models', `unknown device model "${name}" (aiot-sim devices lists them)`);
      continue;
    }
    const s = shapesOf(m, wire);
    if (s.properties.length + s.events.length === 0) p.add('models', `${name} has no notify property or event to send`);
    shapes[name] = s;
  }
  return { models, shapes };
}

/** Smallest and largest PUBLISH packet the run's templates make. */
function packetSizes(c: BenchConfig): { min: number; max: number } {
  let min = Infinity;
  let max = 0;
  for (const s of Object.values(c.shapes)) {
    for (const shape of [...s.properties, ...s.events]) {
      const len = buildTemplate(shape, c.runId, c.qos, c.payloadSize).buf.length;
      min = Math.min(min, len);
      max = Math.max(max, len);
    }
  }
  return { min, max };
}
