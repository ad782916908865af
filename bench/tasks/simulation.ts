/**
 * Measurements of whole simulations (each in a fresh process, see worker.ts): connecting N device
 * sessions, the heap per device, fast mode, a snapshot scenario in full, recovery from a broker restart.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { loadCatalog, PACKAGE_ROOT, ShardedSimulation, Simulation, type Catalog, type SimulationOptions } from 'aiot-sim';
import { fullGc, log, memory, now, round, sleep, waitFor } from '../common.js';

type ScenarioObject = Record<string, unknown>;

/** A Wi-Fi-only population of `homes` homes with one device each (one MQTT session per device). */
function wifiScenario(name: string, homes: number): ScenarioObject {
  return {
    name,
    seed: 7,
    start: '2026-07-15T18:00:00+02:00',
    speed: 1,
    population: {
      homes,
      regions: { cn: 1, es: 1, mx: 1 },
      devicesPerHome: { 1: 1 },
      mix: { plug: 1, light: 1, speaker: 1 },
      membersPerHome: [0, 0],
    },
  };
}

/** No TCP or WebSocket listener: every session uses the in-process transport. */
const NO_LISTENERS = { mqttPort: null, wsPort: null };

const catalogOf = (): Promise<Catalog> => loadCatalog(join(PACKAGE_ROOT, 'devices'));

const manual = (scenario: ScenarioObject, catalog: Catalog): Promise<Simulation> =>
  Simulation.create({ scenario, catalog, speed: 'manual', broker: NO_LISTENERS });

/** connectRate: time `await sim.start()` for N one-device homes over the in-process transport. */
export async function connect({ homes }: { homes: number }) {
  const sim = await manual(wifiScenario('bench-connect', homes), await catalogOf());
  const t0 = now();
  await sim.start();
  const seconds = (now() - t0) / 1000;
  const st = sim.status();
  // Every MQTT client start() connected: device sessions, the operator, and (when the simulation has
  // app users) one app client per home user.
  const brokerClients = sim.broker.connectedClients;
  // Separately: how long until the platform has seen every device's retained "online" state.
  const allOnline = await waitFor(() => sim.status().online >= st.sessions, 30_000, 2);
  const onlineSeconds = (now() - t0) / 1000;
  const after = sim.status();
  const t1 = now();
  const report = await sim.stop();
  const stopSeconds = (now() - t1) / 1000;
  return {
    sessions: st.sessions,
    sessionsConnected: st.sessionsConnected,
    devices: st.devices,
    startSeconds: round(seconds, 3),
    devicesPerSecond: round(st.sessions / seconds, 1),
    brokerClients,
    otherClients: brokerClients - st.sessions,
    clientsPerSecond: round(brokerClients / seconds, 1),
    platformOnline: after.online,
    allOnline,
    secondsUntilAllOnline: round(onlineSeconds, 3),
    stopSeconds: round(stopSeconds, 3),
    rejected: report.messages.rejected,
  };
}

/** A tiny simulation run and stopped, so compiled code and module-level caches are in the baseline. */
async function warmUp(catalog: Catalog): Promise<void> {
  const warm = await manual(wifiScenario('bench-warmup', 30), catalog);
  await warm.start();
  await warm.advance(60_000);
  await waitFor(() => warm.status().online >= 30, 5000);
  await warm.stop();
}

/** memoryPerDevice: heap (after full GC) with N sessions connected, minus the heap before. */
export async function memoryTask({ homes }: { homes: number }) {
  const catalog = await catalogOf();
  await warmUp(catalog);
  await fullGc();
  const before = memory();
  let sim: Simulation | null = await manual(wifiScenario('bench-memory', homes), catalog);
  await fullGc();
  const afterCreate = memory();

  const t0 = now();
  await sim.start();
  const startSeconds = (now() - t0) / 1000;
  const st = sim.status();
  const s = sim;
  const allOnline = await waitFor(() => s.status().online >= st.sessions, 30_000, 5);
  // Let in-flight retained "online" publishes and their QoS 1 acks finish.
  await waitFor(() => s.broker.emitterStats.queued === 0 && s.broker.emitterStats.inFlight === 0, 5000, 5);
  await sleep(200);
  await fullGc();
  const connected = memory();
  const n = st.sessions;
  const status = sim.status();
  const brokerClients = sim.broker.connectedClients;

  await sim.stop();
  sim = null;
  await sleep(100);
  await fullGc();
  const afterStop = memory();

  const per = (a: typeof before, b: typeof before, k: keyof typeof before): number => round((a[k] - b[k]) / n, 0);
  return {
    devices: status.devices,
    sessions: n,
    sessionsConnected: status.sessionsConnected,
    platformOnline: status.online,
    brokerClients,
    otherClients: brokerClients - n,
    allOnline,
    startSeconds: round(startSeconds, 3),
    heapBytesPerDevice: per(connected, before, 'heapUsed'),
    rssBytesPerDevice: per(connected, before, 'rss'),
    externalBytesPerDevice: per(connected, before, 'external'),
    heapBytesPerClient: round((connected.heapUsed - before.heapUsed) / brokerClients, 0),
    // Breakdown: the population plan and Simulation object (create) vs devices + sessions + broker state (start).
    heapBytesPerDevicePlan: per(afterCreate, before, 'heapUsed'),
    heapBytesPerDeviceSession: per(connected, afterCreate, 'heapUsed'),
    // What stays on the heap after stop() once the Simulation is unreachable (should be ~0).
    heapBytesPerDeviceLeftAfterStop: per(afterStop, before, 'heapUsed'),
    heap: { before: before.heapUsed, afterCreate: afterCreate.heapUsed, connected: connected.heapUsed, afterStop: afterStop.heapUsed },
    rss: { before: before.rss, connected: connected.rss, afterStop: afterStop.rss },
  };
}

/** fastMode: a scenario (default: the default one) for `duration` of virtual time, as fast as it goes. */
export async function fast({ duration, scenario = 'default.yaml' }: { duration: string; scenario?: string }) {
  const sim = await Simulation.create({ scenario: join(PACKAGE_ROOT, 'scenarios', scenario), speed: 'fast', duration, broker: NO_LISTENERS });
  const t0 = now();
  await sim.start();
  const tStarted = now();
  const report = await sim.finished;
  const t1 = now();
  const st = sim.status();
  return {
    scenario,
    duration,
    devices: report.devices.total,
    sessions: report.devices.sessions,
    virtualSeconds: report.virtualSeconds,
    wallSeconds: report.wallSeconds,
    virtualSecondsPerWallSecond: round(report.virtualSeconds / report.wallSeconds, 0),
    events: st.events,
    eventsPerSecond: round(st.events / report.wallSeconds, 0),
    messagesPublished: report.messages.published,
    messagesPerSecond: round(report.messages.published / report.wallSeconds, 0),
    startSeconds: round((tStarted - t0) / 1000, 3),
    runSeconds: round((t1 - tStarted) / 1000, 3),
    traceDigest: report.traceDigest,
  };
}

/**
 * A snapshot scenario run in full (30 virtual days, fast): the platform's figures, scaled up, and
 * the wall and CPU time (CPU time moves less when other work shares the machine).
 */
export async function snapshot({ scenario, seed, duration, workers = 1 }: { scenario: string; seed?: number; duration?: string; workers?: number }) {
  const opts: Pick<SimulationOptions, 'seed' | 'duration'> & { scenario: string } = { scenario: join(PACKAGE_ROOT, 'scenarios', scenario) };
  if (seed !== undefined) opts.seed = seed;
  if (duration !== undefined) opts.duration = duration;
  // CPU time below is the process's: every worker thread's included.
  const sim = workers > 1
    ? await ShardedSimulation.create({ ...opts, speed: 'fast', workers })
    : await Simulation.create({ ...opts, speed: 'fast', broker: NO_LISTENERS });
  const t0 = now();
  const cpu0 = process.cpuUsage();
  await sim.start();
  const startSeconds = (now() - t0) / 1000;
  const report = await sim.finished;
  const cpu = process.cpuUsage(cpu0);
  const p = report.platform;
  return {
    scenario, seed: report.seed, workers: report.workers, devices: report.devices.total, virtualSeconds: report.virtualSeconds,
    telemetry: sim.scenario.behaviour.telemetry,
    wallSeconds: report.wallSeconds, startSeconds: round(startSeconds, 1), cpuSeconds: round((cpu.user + cpu.system) / 1e6, 1),
    loadAverage1m: round(loadavg()[0]!, 2),
    messagesPublished: report.messages.published,
    measured: {
      connections: p.connections.online, dailyActiveDevices: p.dailyActiveDevices,
      dailyActiveDevicesWeekMean: p.dailyActiveDevicesWeekMean, speakerMau: p.speakerMau,
      appMau: p.appMau, ownersWithMoreThan5Devices: p.ownersWithMoreThan5Devices, activeUsers: p.activeUsers,
    },
    scaled: p.scaled,
  };
}

/**
 * faultRecovery, on one-device homes whose speakers send QoS 1 events: first the scenario's
 * broker-restart fault (down at 20 virtual minutes, back 5 virtual minutes later; sessions retry
 * with backoff and full jitter); then an unannounced restart in the middle of the traffic
 * (sim.broker.restart() while the clock runs). Reconnect times, events lost (must be 0), duplicates removed.
 */
function faultScenario(homes: number): ScenarioObject {
  return {
    ...wifiScenario('bench-faults', homes),
    seed: 9,
    behaviour: {
      app: { sessionsPerUserPerDay: 0 },
      // Speakers report every voice request as a QoS 1 event: one owner per home (no members), about
      // one request per speaker per 3 virtual minutes.
      voice: { requestsPerUserPerDay: 480, musicShare: 0, controlShare: 0 },
      appliances: { lightsEveningShare: 0, washerCyclesPerWeek: 0, vacuumRunsPerWeek: 0 },
    },
    network: { reconnect: { initialDelay: '500ms', maxDelay: '10s' }, offlineBuffer: 100 },
    faults: [{ type: 'broker-restart', at: '20m', duration: '5m' }],
  };
}

/** Every event the devices published, by their sequence numbers. */
const eventsPublished = (sim: Simulation): number => sim.dids.reduce((n, did) => n + (sim.device(did)?.lastEventSeq ?? 0), 0);

/** The scenario's fault as its record tells it (docs/scenarios.md, "Faults"). */
async function scenarioRestart(sim: Simulation) {
  await sim.advance(30 * 60_000);
  const d = sim.faults.recordsOf('broker-restart')[0]?.details ?? {};
  const figure = (k: 'reconnectMs' | 'onlineMs' | 'boundMs' | 'notBack' | 'reconnectAttempts'): number => Number(d[k]);
  const allEventsAtPlatform = await waitFor(() => sim.platform.dedup.stats.accepted >= eventsPublished(sim), 30_000, 5);
  return {
    reconnectSeconds: round(figure('reconnectMs') / 1000, 3),
    onlineSeconds: round(figure('onlineMs') / 1000, 3),
    boundSeconds: figure('boundMs') / 1000,
    notBack: figure('notBack'),
    reconnectAttempts: figure('reconnectAttempts'),
    eventsSoFar: eventsPublished(sim),
    allEventsAtPlatform,
  };
}

/** sim.broker.restart(downMs) 50 ms into a 30-virtual-minute advance(): seconds until every session is back and every device online. */
async function unannouncedRestart(sim: Simulation, downMs: number) {
  const st = sim.status();
  const running = sim.advance(30 * 60_000);
  await sleep(50);
  const t0 = now();
  await sim.broker.restart(downMs);
  const upAt = now();
  const allBack = await waitFor(() => sim.status().sessionsConnected === st.sessions, 120_000, 2);
  const reconnectSeconds = (now() - upAt) / 1000;
  const allOnline = await waitFor(() => sim.status().online >= st.devices, 120_000, 2);
  const onlineSeconds = (now() - upAt) / 1000;
  await running;
  return {
    downSeconds: round((upAt - t0) / 1000, 3),
    reconnectSeconds: round(reconnectSeconds, 3),
    onlineSeconds: round(onlineSeconds, 3),
    allBack,
    allOnline,
  };
}

export async function faults({ homes, downMs }: { homes: number; downMs: number }) {
  const sim = await manual(faultScenario(homes), await catalogOf());
  await sim.start();
  const st = sim.status();
  await waitFor(() => sim.status().online >= st.devices, 60_000, 5);
  log(`faults: ${st.sessions} sessions online; scenario broker-restart`);
  const scenario = await scenarioRestart(sim);
  log('faults: unannounced restart while the clock runs');
  const unannounced = await unannouncedRestart(sim, downMs);
  const allEventsAtPlatform = await waitFor(() => sim.platform.dedup.stats.accepted >= eventsPublished(sim), 30_000, 5);
  const stats = sim.platform.dedup.stats;
  const overflow = sim.dids.reduce((n, did) => n + (sim.device(did)?.counters.bufferOverflow ?? 0), 0);
  const total = eventsPublished(sim);
  await sim.stop();
  return {
    sessions: st.sessions,
    devices: st.devices,
    scenarioRestart: scenario,
    unannouncedRestart: unannounced,
    eventsPublished: total,
    eventsAtPlatform: stats.accepted,
    eventsLost: total - stats.accepted,
    duplicatesRemoved: stats.duplicates,
    eventsMissing: stats.missing,
    bufferOverflow: overflow,
    allEventsAtPlatform,
  };
}
