/** Live monitoring: HTTP server, WebSocket hub, Prometheus metrics, dashboard assets. */
export { MonitorServer, type MonitorOptions } from './server.js';
export { MonitorHub, type HubOptions, type MonitorClientInfo } from './hub.js';
export { MonitorMetrics } from './metrics.js';
export { FilterIndex, filterProblem } from './topic-filter.js';
export {
  simulationCommander, type DeviceCommander, type DeviceDescription, type DeviceReading, type DeviceSummary, type MonitoredBroker,
  type MonitoredPlatform, type MonitorInfo, type PropertyInfo, type RpcMethodName, type SimulationLike,
} from './source.js';
export type * from './protocol.js';
export { monitorShardedSimulation, monitorSimulation, type SimulationMonitorOptions } from './simulation.js';
