/** A monitor for a running `Simulation`: its broker, platform, devices and virtual clock, its operator token. */
import type { FaultNotice } from '../sim/faults.js';
import type { Simulation } from '../sim/simulation.js';
import { MonitorServer, type MonitorOptions } from './server.js';
import { simulationCommander } from './source.js';

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
