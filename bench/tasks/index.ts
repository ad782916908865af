/** Every measurement the benchmark runs in a fresh process, by name (worker.ts runs one; run.ts orders them). */
import { connectAtRate, loadAtRate, loadConnect, loadLatency, loadOverload, loadSearch } from './load.js';
import { externalFast, fleet, perMessage } from './fleet.js';
import { connect, fast, faults, memoryTask, snapshot } from './simulation.js';
import { clusterThroughput, platformCost } from './scale.js';
import { soak } from './soak.js';
import { monitorLoad, throughput } from './traffic.js';

export const TASKS = { connect, memory: memoryTask, throughput, fast, monitorLoad, faults, snapshot, fleet, perMessage, externalFast, loadSearch, loadLatency, loadConnect, loadOverload, loadAtRate, connectAtRate, soak, platformCost, clusterThroughput };

export type TaskName = keyof typeof TASKS;
export type TaskArgs<K extends TaskName> = Parameters<(typeof TASKS)[K]>[0];
export type TaskResult<K extends TaskName> = Awaited<ReturnType<(typeof TASKS)[K]>>;
