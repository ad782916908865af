/**
 * A monitor for a running simulation: its broker, platform, devices and virtual clock, its
 * operator token; or for a run over worker threads, its merged platform figures and the shards'
 * counters (no broker traffic or devices: those are on the shards' in-process brokers).
 */
import type { FaultNotice } from '../sim/faults.js';
import type { ShardedSimulation } from '../sim/sharded.js';
import type { Simulation } from '../sim/simulation.js';
import { MonitorServer, type MonitorOptions } from './server.js';
import { simulationCommander, type MonitoredBroker } from './source.js';

export type SimulationMonitorOptions = Omit<MonitorOptions, 'broker' | 'platform' | 'devices' | 'token' | 'virtualTime'> & {
  /** Default: the simulation's operator token. */
  token?: string;
};

/** Start a monitor on a started simulation. Stop it before (or after) the simulation; it never stops the simulation. */
export async function monitorSimulation(sim: Simulation, opts: SimulationMonitorOptions = {}): Promise<MonitorServer> {
  const server = await MonitorServer.start({
    title: sim.scenario.name,
    ...opts,
    token: opts.token ?? sim.operatorToken,
    broker: sim.traffic,
    platform: sim.platform,
    devices: simulationCommander(sim),
    virtualTime: () => sim.scheduler.now(),
    faults: () => sim.faults.records,
  });
  // Faults as they start and end; the listener goes with the server.
  const onFault = (n: FaultNotice): void => server.hub.announceFault({ type: 'fault', ...n });
  sim.faults.on('fault', onFault);
  server.onStop(() => sim.faults.off('fault', onFault));
  return server;
}

/**
 * Start a monitor on a started run over worker threads: the platform figures of the merged store
 * (every shard's, live), the shards' message counters and connected sessions added up, the
 * slowest shard's virtual time. No message tap (`/ws` subscriptions get nothing), device list or
 * commands: the devices and their traffic stay on the shards' in-process brokers.
 */
export function monitorShardedSimulation(sim: ShardedSimulation, opts: SimulationMonitorOptions = {}): Promise<MonitorServer> {
  return MonitorServer.start({
    title: sim.scenario.name,
    ...opts,
    token: opts.token ?? sim.operatorToken,
    broker: shardCounters(sim),
    platform: sim,
    virtualTime: () => sim.status().virtualTime,
  });
}

/** The shards' brokers as one, as far as their statuses tell (each sends one every half second). */
function shardCounters(sim: ShardedSimulation): MonitoredBroker {
  return {
    on: () => undefined,
    off: () => undefined,
    get counters() {
      const s = sim.status();
      return { published: s.published, delivered: s.delivered, rejected: s.rejected };
    },
    get connectedClients() { return sim.status().sessionsConnected; },
    mqttAddress: null,
    wsAddress: null,
  };
}
