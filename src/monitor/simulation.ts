/** A monitor for a running `Simulation`: its broker, platform, devices and virtual clock, its operator token. */
import type { Simulation } from '../sim/simulation.js';
import { MonitorServer, type MonitorOptions } from './server.js';
import { simulationCommander } from './source.js';

export type SimulationMonitorOptions = Omit<MonitorOptions, 'broker' | 'platform' | 'devices' | 'token' | 'virtualTime'> & {
  /** Default: the simulation's operator token. */
  token?: string;
};

/** Start a monitor on a started simulation. Stop it before (or after) the simulation; it never stops the simulation. */
export function monitorSimulation(sim: Simulation, opts: SimulationMonitorOptions = {}): Promise<MonitorServer> {
  return MonitorServer.start({
    title: sim.scenario.name,
    ...opts,
    token: opts.token ?? sim.operatorToken,
    broker: sim.traffic,
    platform: sim.platform,
    devices: simulationCommander(sim),
    virtualTime: () => sim.scheduler.now(),
  });
}
