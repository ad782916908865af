/**
 * The simulation's parts on their own, for tests of one part at a time: a real embedded broker (no
 * ports, in-process connections), the platform watching it, provisioned devices with real MQTT
 * sessions in a session pool, the work queue, and a fault timeline, all on a virtual clock advanced by hand
 * (the manual driver). No households and no operator or app clients: what happens is what the
 * part under test does.
 */
import type { BrokerConnection } from '../../src/broker/connection.js';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { checkScenario, type Scenario } from '../../src/catalog/scenario.js';
import type { HouseholdChannel } from '../../src/sim/household.js';
import { ClockDriver } from '../../src/sim/drivers.js';
import { FaultTimeline } from '../../src/sim/faults.js';
import { PlatformService } from '../../src/platform/service.js';
import { buildPopulation, type Population } from '../../src/sim/population.js';
import { Provisioner } from '../../src/sim/provisioner.js';
import { EventScheduler } from '../../src/sim/scheduler.js';
import { SessionPool } from '../../src/sim/session-pool.js';
import { TraceRecorder } from '../../src/sim/trace.js';
import { WorkQueue } from '../../src/sim/work-queue.js';
import { devicesCatalog } from './device.js';

export const RIG_START = Date.parse('2026-07-15T15:00:00Z');

/** A dozen homes in Spain and China, gateways with Zigbee/BLE children among them; fast reconnects. */
export function rigScenario(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'rig', seed: 3, start: new Date(RIG_START).toISOString(), duration: '12h',
    population: { homes: 12, regions: { es: 1, cn: 1 }, devicesPerHome: { '3': 1, '5': 1 }, mix: { sensor: 4, plug: 2, light: 1, speaker: 1 } },
    network: { reconnect: { initialDelay: '20ms', maxDelay: '200ms' } },
    ...extra,
  };
}

export interface Rig {
  scenario: Scenario;
  population: Population;
  scheduler: EventScheduler;
  broker: EmbeddedBroker;
  platform: PlatformService;
  fleet: Provisioner;
  pool: SessionPool;
  work: WorkQueue;
  faults: FaultTimeline;
  /** Longest wait for a session after the network or the broker is back (ms). */
  reconnectBoundMs: number;
  /** Run the next `ms` of virtual time and what it sets off (see Simulation.advance). */
  advance(ms: number): Promise<void>;
  /** Devices of the sessions (and their children). */
  devicesOf(sessions: ReadonlyArray<{ device: { did: string }; children: ReadonlyArray<{ did: string }> }>): number;
  close(): Promise<void>;
}

const quiet: HouseholdChannel = { appSession: () => undefined, appCommand: () => undefined, voiceCommand: () => undefined, automationCommand: () => undefined };

/**
 * Provision the scenario's population, connect and announce every session, schedule `faults`;
 * with `live`, start the devices (telemetry, events) too. Sessions are the fleet engine's, as in
 * a simulation (`tap` sees each connection they hand the broker); with `clients`, an mqtt.js
 * client each over the in-process pipe.
 */
export async function startRig(doc: Record<string, unknown>, faults: ReadonlyArray<Record<string, unknown>> = [], opts: { live?: boolean; clients?: boolean; tap?: (conn: BrokerConnection) => void } = {}): Promise<Rig> {
  const catalog = await devicesCatalog();
  const res = checkScenario('rig.yaml', { ...doc, faults }, catalog);
  if (!res.scenario) throw new Error(res.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  const scenario = res.scenario;
  const start = Date.parse(scenario.start);
  const scheduler = new EventScheduler(start);
  const population = buildPopulation(scenario, catalog, scenario.seed);
  const broker = await EmbeddedBroker.start({ operatorToken: 'rig', mqttPort: null, wsPort: null });
  const fleet = new Provisioner({ population, scenario, seed: scenario.seed, scheduler });
  const platform = new PlatformService((did) => fleet.facts(did));
  platform.observe(broker);
  fleet.provision(broker.access, quiet);
  const r = scenario.network.reconnect;
  const reconnect = { initialDelayMs: r.initialDelay, maxDelayMs: r.maxDelay, factor: r.factor, jitter: r.jitter };
  const pool = new SessionPool({ clock: scheduler, trace: new TraceRecorder(), reconnect, seed: scenario.seed });
  await pool.open(fleet.sessionPlans(), opts.clients
    ? { kind: 'in-process', open: () => broker.connectInProcess() }
    : { kind: 'fleet', attach: (conn) => { opts.tap?.(conn); return broker.serveInProcess(conn); } });
  await pool.goOnline();
  await pool.settle();
  if (opts.live) for (const d of fleet.devices.values()) d.start();
  const work = new WorkQueue();
  const reconnectBoundMs = reconnect.maxDelayMs + 60_000;
  const timeline = new FaultTimeline({
    seed: scenario.seed, virtualStart: start, scheduler, work, pool, regionOf: (did) => fleet.regionOf(did), broker: () => broker, platform,
    clients: { gone: async () => undefined, back: async () => undefined },
    platformNews: (wake) => {
      broker.on('message', wake);
      return () => { broker.off('message', wake); };
    },
    reconnectBoundMs,
  });
  timeline.schedule(scenario.faults);
  const driver = new ClockDriver(scheduler, 'manual', { congested: () => pool.congested || work.pending > 0 });
  driver.start();
  const idle = async (): Promise<void> => {
    while (work.pending > 0) await work.idle();
    await pool.settle();
  };
  return {
    scenario, population, scheduler, broker, platform, fleet, pool, work, faults: timeline, reconnectBoundMs,
    advance: (ms) => driver.advance(ms, idle),
    devicesOf: (sessions) => sessions.reduce((n, s) => n + 1 + s.children.length, 0),
    close: async () => {
      driver.stop();
      for (const d of fleet.devices.values()) d.stop();
      await pool.stop();
      await broker.close();
    },
  };
}
