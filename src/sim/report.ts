/** The run report (`--report FILE`, JSON): what ran, for how long, what moved, what the platform saw. */
import type { BrokerCounters } from '../broker/broker.js';
import type { StoreHealth } from '../platform/redis-store.js';
import type { PlatformSnapshot } from '../platform/service.js';
import type { Speed } from './drivers.js';
import type { FaultRecord } from './faults.js';
import type { Scenario } from '../catalog/scenario.js';

export interface RunReport {
  scenario: string;
  seed: number;
  speed: Speed;
  /** Worker threads the run was split over (1: one simulation, one broker, one platform). */
  workers: number;
  virtualStart: string;
  virtualEnd: string;
  virtualSeconds: number;
  wallSeconds: number;
  devices: { total: number; sessions: number };
  messages: { published: number; delivered: number; rejected: number };
  /** sha256 of the ordered device-side trace (virtual ts, topic, payload): same scenario + seed, same digest. */
  traceDigest: string;
  traceMessages: number;
  /** Password of the `operator` MQTT account for this run. */
  operatorToken: string;
  /** What the simulated people did (simulator-side counts; `platform` has what the broker showed). */
  activity: {
    /** People in the population (owners and members). */
    people: number;
    /** People who use the Mijia app; people who talk to a speaker (they live with one). */
    appUsers: number;
    voiceUsers: number;
    appSessions: number;
    appCommands: number;
    voiceInteractions: number;
    voiceCommands: number;
    /** Routine switching run by cloud automations; done by hand at the device. */
    automations: number;
    byHand: number;
    skippedOffline: number;
    failedCommands: number;
  };
  /**
   * The network work the virtual clock waited for, one piece at a time (commands, app sessions,
   * fault steps), and the wall time it took in all. In fast mode on your own broker these round
   * trips can set the run's pace (docs/broker.md).
   */
  networkWork?: { pieces: number; wallSeconds: number };
  /** Faults that ran, with how many device sessions each took down and what was measured (`details`). */
  faults: FaultRecord[];
  platform: PlatformSnapshot & { scale: number; scaled: ScaledFigures };
  /**
   * With `--platform redis://...`: the shared store, and what it could not count (writes dropped
   * while Redis was away, times Redis came back without its data). `platform` then holds the
   * figures of every process counting into that store.
   */
  platformStore?: { kind: 'redis' } & StoreHealth & {
    /**
     * Events the run's devices sent (every shard's), and those the platform never counted: lost
     * with a broker node killed before it wrote them to the store, or with writes dropped.
     */
    eventsSent?: number;
    eventsNotCounted?: number;
  };
}

/** The platform's figures times the scenario's scale (each simulated device stands for `scale`). */
export type ScaledFigures = { connections: number } & Pick<PlatformSnapshot,
  'dailyActiveDevices' | 'dailyActiveDevicesWeekMean' | 'activeUsers' | 'speakerMau' | 'appMau' | 'ownersWithMoreThan5Devices'>;

export interface ReportInput {
  scenario: Scenario;
  seed: number;
  speed: Speed;
  virtualStart: number;
  virtualEnd: number;
  wallSeconds: number;
  counters: BrokerCounters;
  traceDigest: string;
  traceMessages: number;
  platform: PlatformSnapshot;
  devices: number;
  sessions: number;
  operatorToken: string;
  activity: RunReport['activity'];
  networkWork?: RunReport['networkWork'];
  faults: RunReport['faults'];
}

export function buildReport(r: ReportInput): RunReport {
  return {
    scenario: r.scenario.name,
    seed: r.seed,
    speed: r.speed,
    workers: 1,
    virtualStart: new Date(r.virtualStart).toISOString(),
    virtualEnd: new Date(r.virtualEnd).toISOString(),
    virtualSeconds: (r.virtualEnd - r.virtualStart) / 1000,
    wallSeconds: Math.round(r.wallSeconds * 1000) / 1000,
    devices: { total: r.devices, sessions: r.sessions },
    messages: { published: r.counters.published, delivered: r.counters.delivered, rejected: r.counters.rejected },
    traceDigest: r.traceDigest,
    traceMessages: r.traceMessages,
    operatorToken: r.operatorToken,
    activity: r.activity,
    ...(r.networkWork ? { networkWork: { pieces: r.networkWork.pieces, wallSeconds: Math.round(r.networkWork.wallSeconds * 1000) / 1000 } } : {}),
    faults: r.faults,
    platform: {
      ...r.platform,
      scale: r.scenario.scale,
      scaled: scaleUp(r.platform, r.scenario.scale),
    },
  };
}

/** Each figure times the scale. */
export function scaleUp(p: PlatformSnapshot, scale: number): ScaledFigures {
  const x = (n: number): number => Math.round(n * scale);
  return {
    connections: x(p.connections.online),
    dailyActiveDevices: x(p.dailyActiveDevices),
    dailyActiveDevicesWeekMean: p.dailyActiveDevicesWeekMean === null ? null : x(p.dailyActiveDevicesWeekMean),
    activeUsers: { dau: x(p.activeUsers.dau), wau: x(p.activeUsers.wau), mau: x(p.activeUsers.mau) },
    speakerMau: x(p.speakerMau),
    appMau: x(p.appMau),
    ownersWithMoreThan5Devices: x(p.ownersWithMoreThan5Devices),
  };
}
