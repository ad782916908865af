/**
 * Measurements of the device fleet and of fast mode per message (each in a fresh process, see
 * worker.ts). Each can run against another build of aiot-sim (`dist`: the baseline, see
 * baseline.ts), loaded by path, so a figure and its baseline are measured in the same run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_ROOT } from 'aiot-sim';
import { parse as parseYaml } from 'yaml';
import { startMosquitto } from '../../tests/helpers/mosquitto.js';
import { log, now, procCpuSeconds, round, sleep, waitFor } from '../common.js';

type Library = typeof import('aiot-sim');

/** The library of this build, or of the build in `dist` (a baseline). */
async function library(dist: string | undefined): Promise<Library> {
  if (!dist) return import('aiot-sim');
  return (await import(pathToFileURL(join(dist, 'index.js')).href)) as Library;
}

/** The process's peak resident set (VmHWM), bytes; null where /proc is not there. */
function peakRss(): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** CPU seconds of the whole process (every thread) since `from`. */
function cpuSince(from: NodeJS.CpuUsage): number {
  const c = process.cpuUsage(from);
  return (c.user + c.system) / 1e6;
}

export interface FleetArgs {
  /** Homes of scenarios/consumer-load.yaml's population (10 homes ~ 106 devices). */
  homes: number;
  /** Seconds to run once every device is online, checking that heartbeats flow. */
  runSeconds: number;
  /** Longest wait for every device to be online, seconds. */
  onlineWithinSeconds: number;
  /** Keep the scenario's app users (each a session of the same fleet engine); default false: the figure is the devices'. */
  apps?: boolean;
  /** Another build's dist/ (the baseline); default: this one. */
  dist?: string;
}

/**
 * fleet: scenarios/consumer-load.yaml's population at `homes` homes, in real time (speed 1, no
 * faults) on the embedded broker without listeners: every Wi-Fi device and gateway its own MQTT
 * session over the in-process transport; without app users unless `apps` (the figure is about
 * the devices; with `apps`, each user is a session of the same engine). Devices per second until the platform has every device
 * online, peak RSS, heartbeats while it runs, and a clean stop.
 */
export async function fleet(args: FleetArgs) {
  const lib = await library(args.dist);
  // The catalog and scenario that build ships: an older baseline's loader refuses keys added since.
  const root = args.dist ? dirname(args.dist) : PACKAGE_ROOT;
  const catalog = await lib.loadCatalog(join(root, 'devices'));
  const scenario = parseYaml(readFileSync(join(root, 'scenarios', 'consumer-load.yaml'), 'utf8')) as Record<string, unknown>;
  const population = { ...(scenario['population'] as Record<string, unknown>), homes: args.homes };
  const { duration: _duration, ...rest } = scenario;
  const behaviour = { ...(rest['behaviour'] as Record<string, unknown> | undefined), ...(args.apps ? {} : { app: { userShare: 0 } }) };
  const doc = { ...rest, name: `fleet-${args.homes}`, speed: 1, population, behaviour, faults: [] };
  const load0 = loadavg()[0]!;
  const t0 = now();
  const cpu0 = process.cpuUsage();
  const sim = await lib.Simulation.create({ scenario: doc, catalog, speed: 1, broker: { mqttPort: null, wsPort: null } });
  const devices = sim.population.devices.length;
  const createSeconds = (now() - t0) / 1000;
  log(`fleet: ${devices} devices, ${sim.population.sessions.length} sessions; connecting`);
  let lastLog = now();
  const progress = (): void => {
    if (now() - lastLog < 10_000) return;
    lastLog = now();
    log(`fleet: ${sim.status().online} of ${devices} online, rss ${round(process.memoryUsage().rss / 2 ** 30, 2)} GiB`);
  };
  const t1 = now();
  const started = sim.start();
  const allOnline = await waitFor(() => {
    progress();
    return sim.status().online >= devices;
  }, args.onlineWithinSeconds * 1000, 50);
  await started;
  const onlineSeconds = (now() - t1) / 1000;
  const cpuToOnline = cpuSince(cpu0);
  log(`fleet: ${sim.status().online} online after ${round(onlineSeconds, 1)} s`);
  // Heartbeats flowing: device messages keep crossing the broker while it runs.
  const published0 = sim.status().published;
  const samples: number[] = [];
  for (let s = 0; s < args.runSeconds; s++) {
    await sleep(1000);
    samples.push(sim.status().published);
  }
  const publishedWhileRunning = sim.status().published - published0;
  const stillOnline = sim.status().online;
  const t2 = now();
  const report = await sim.stop();
  const stopSeconds = (now() - t2) / 1000;
  const peak = peakRss();
  return {
    build: args.dist ?? 'current',
    homes: args.homes,
    apps: args.apps === true,
    devices,
    sessions: report.devices.sessions,
    createSeconds: round(createSeconds, 2),
    allOnline,
    onlineSeconds: round(onlineSeconds, 2),
    devicesPerSecondToOnline: round(devices / onlineSeconds, 0),
    cpuSecondsToOnline: round(cpuToOnline, 1),
    peakRssBytes: peak,
    peakRssBytesPerDevice: peak === null ? null : round(peak / devices, 0),
    heartbeatsFlowing: publishedWhileRunning > 0 && samples.every((n, i) => i === 0 || n >= samples[i - 1]!),
    messagesPerSecondWhileRunning: round(publishedWhileRunning / args.runSeconds, 0),
    onlineAfterRunning: stillOnline,
    stopSeconds: round(stopSeconds, 2),
    // Every session said goodbye and disconnected: none connected once stop() resolved.
    stoppedCleanly: sim.status().sessionsConnected === 0,
    loadAverage1m: round(load0, 2),
  };
}

/** The scenario file's document with its population at `homes` homes. */
function withHomes(file: string, homes: number): Record<string, unknown> {
  const doc = parseYaml(readFileSync(file, 'utf8')) as Record<string, unknown>;
  return { ...doc, population: { ...(doc['population'] as Record<string, unknown>), homes } };
}

export interface PerMessageArgs {
  /** A file under the build's scenarios/ (or several names: the first it has). */
  scenario: string | string[];
  duration?: string;
  /** Worker threads (ShardedSimulation) when above 1. */
  workers?: number;
  /** The scenario's population at this many homes instead of its own (the rest as it is). */
  homes?: number;
  dist?: string;
}

/**
 * perMessage: a scenario in fast mode through the embedded broker; CPU time of the whole process
 * (every thread: devices, broker, platform) per message the broker accepted from devices and apps,
 * over the whole run (connecting included) and once running. Also the main thread's share (Linux):
 * in a one-thread run the rest is V8's own threads (the optimizing compiler, the garbage
 * collector's helpers), which a CPU profile of the main thread does not show.
 */
export async function perMessage(args: PerMessageArgs) {
  const lib = await library(args.dist);
  // The scenario as that build ships it: the first of the names its scenarios/ folder has (the
  // 289 M snapshot was snapshot-2019q3.yaml before it was renamed; an older baseline has only that).
  const folder = join(args.dist ? dirname(args.dist) : PACKAGE_ROOT, 'scenarios');
  const names = Array.isArray(args.scenario) ? args.scenario : [args.scenario];
  const name = names.find((n) => existsSync(join(folder, n)));
  if (!name) throw new Error(`perMessage: none of ${names.join(', ')} in ${folder}`);
  const scenario = join(folder, name);
  const load0 = loadavg()[0]!;
  const cpu0 = process.cpuUsage();
  const main0 = procCpuSeconds('/proc/thread-self/stat');
  const t0 = now();
  const doc = args.homes === undefined ? scenario : withHomes(scenario, args.homes);
  const opts = { scenario: doc, ...(args.duration ? { duration: args.duration } : {}) };
  const sim = (args.workers ?? 1) > 1
    ? await lib.ShardedSimulation.create({ ...opts, speed: 'fast', workers: args.workers! })
    : await lib.Simulation.create({ ...opts, speed: 'fast', broker: { mqttPort: null, wsPort: null } });
  await sim.start();
  const cpuStart = cpuSince(cpu0);
  const report = await sim.finished;
  const cpu = cpuSince(cpu0);
  const main1 = procCpuSeconds('/proc/thread-self/stat');
  const wall = (now() - t0) / 1000;
  const messages = report.messages.published;
  const mainThread = main0 !== null && main1 !== null ? main1 - main0 : null;
  return {
    build: args.dist ?? 'current',
    scenario: name,
    homes: args.homes ?? null,
    devices: report.devices.total,
    duration: args.duration ?? null,
    workers: args.workers ?? 1,
    wallSeconds: round(wall, 1),
    cpuSeconds: round(cpu, 1),
    messages,
    traceMessages: report.traceMessages,
    traceDigest: report.traceDigest,
    cpuMicrosPerMessage: round((1e6 * cpu) / messages, 1),
    cpuSecondsStarting: round(cpuStart, 1),
    cpuMicrosPerMessageRunning: round((1e6 * (cpu - cpuStart)) / messages, 1),
    mainThreadCpuSeconds: mainThread === null ? null : round(mainThread, 1),
    mainThreadShare: mainThread === null || cpu <= 0 ? null : round(mainThread / cpu, 3),
    loadAverage1m: round(load0, 2),
  };
}

export interface ExternalFastArgs {
  duration: string;
  /** mosquitto.conf lines beyond the listener's. */
  mosquittoConfig: string[];
  dist?: string;
}

/**
 * externalFast: scenarios/consumer-load.yaml in fast mode on a Mosquitto started for the run
 * (`--broker`): every device session, app user, the operator and the platform are its clients over
 * TCP. Wall and CPU time (this process, every thread; Mosquitto's apart), messages, trace digest.
 */
export async function externalFast(args: ExternalFastArgs) {
  const lib = await library(args.dist);
  const scenario = join(args.dist ? dirname(args.dist) : PACKAGE_ROOT, 'scenarios', 'consumer-load.yaml');
  const mosq = await startMosquitto(args.mosquittoConfig);
  try {
    const load0 = loadavg()[0]!;
    const cpu0 = process.cpuUsage();
    const mosqCpu0 = procCpuSeconds(`/proc/${mosq.pid}/stat`);
    const t0 = now();
    const sim = await lib.Simulation.create({ scenario, speed: 'fast', duration: args.duration, externalBroker: { url: mosq.url } });
    await sim.start();
    const report = await sim.finished;
    const wall = (now() - t0) / 1000;
    const cpu = cpuSince(cpu0);
    const mosqCpu1 = procCpuSeconds(`/proc/${mosq.pid}/stat`);
    const messages = report.messages.published;
    return {
      build: args.dist ?? 'current',
      mosquittoConfig: args.mosquittoConfig,
      mosquittoVersion: mosq.version,
      duration: args.duration,
      wallSeconds: round(wall, 1),
      cpuSeconds: round(cpu, 1),
      mosquittoCpuSeconds: mosqCpu0 === null || mosqCpu1 === null ? null : round(mosqCpu1 - mosqCpu0, 1),
      messages,
      messagesPerSecond: round(messages / wall, 0),
      cpuMicrosPerMessage: round((1e6 * cpu) / messages, 1),
      traceDigest: report.traceDigest,
      activity: report.activity,
      loadAverage1m: round(load0, 2),
    };
  } finally {
    await mosq.stop();
  }
}
