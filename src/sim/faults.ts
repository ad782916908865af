/**
 * The fault timeline: things going wrong on purpose, at virtual times, the way real fleets break.
 * Each fault type has its handler (faults/*.ts), chosen from a table by the scenario's `type`.
 *
 * Every fault step runs through the simulation's WorkQueue: what devices already sent reaches the
 * broker first, the virtual clock waits while sessions drop and reconnect, and sessions that come
 * back together announce themselves in population order. So what a fault cuts off, and the trace,
 * do not depend on wall-clock timing (same seed, same trace digest), while reconnection itself
 * (backoff, jitter, the broker's work) runs on the wall clock and is measured there.
 *
 * Each fault leaves a record (the run report's `faults`) and is announced as it starts and ends
 * (`'fault'` events, for monitors).
 */
import { EventEmitter } from 'node:events';
import type { FaultSpec } from '../catalog/scenario.js';
import { Rng } from './rng.js';
import { brokerRestart } from './faults/broker-restart.js';
import type { FaultContext, FaultHandler, FaultRun } from './faults/context.js';
import { deviceChurn } from './faults/device-churn.js';
import { otaRollout } from './faults/ota-rollout.js';
import { devicesOffline, gatewayReboot, regionOutage } from './faults/outage.js';
import { reconnectStorm } from './faults/reconnect-storm.js';
import type { FaultNotice, FaultRecord, FaultRecordOf, FaultSpecs, FaultType } from './faults/record.js';
import { slowConsumer } from './faults/slow-consumer.js';

export type { FaultContext } from './faults/context.js';
export type {
  FaultNotice, FaultRecord, FaultRecordOf, TypedFaultRecord, FaultType, FaultDetails, OutageDetails, GatewayRebootDetails, BrokerRestartDetails,
  ReconnectStormDetails, DeviceChurnDetails, OtaRolloutDetails, SlowConsumerDetails, Reconnection, Dip, BoundedRecovery, Skipped,
} from './faults/record.js';

const handlers: { [T in FaultType]: FaultHandler<T> } = {
  'devices-offline': devicesOffline,
  'region-outage': regionOutage,
  'gateway-reboot': gatewayReboot,
  'broker-restart': brokerRestart,
  'reconnect-storm': reconnectStorm,
  'device-churn': deviceChurn,
  'ota-rollout': otaRollout,
  'slow-consumer': slowConsumer,
};

/** Schedule a fault with the handler of its type (`spec`'s type picks both). */
function scheduleWith<T extends FaultType>(type: T, spec: FaultSpecs[T], run: FaultRun): void {
  handlers[type](spec, run);
}

export class FaultTimeline extends EventEmitter<{ fault: [FaultNotice] }> {
  /** Faults scheduled so far, in scenario order; details fill in as they run. */
  readonly records: FaultRecord[] = [];

  constructor(private readonly ctx: FaultContext) {
    super();
  }

  /** Put the scenario's faults on the virtual timeline. */
  schedule(faults: readonly FaultSpec[]): void {
    faults.forEach((f, index) => scheduleWith(f.type, f, this.run(index, this.ctx.virtualStart + f.at)));
  }

  /** The records of faults of one type, in scenario order. */
  recordsOf<T extends FaultType>(type: T): Array<FaultRecordOf<T>> {
    return this.records.filter((r): r is FaultRecordOf<T> => r.type === type);
  }

  private run(index: number, at: number): FaultRun {
    const c = this.ctx;
    return {
      ctx: c,
      index,
      at,
      rng: Rng.from(c.seed, 'fault', index),
      record: (r) => {
        this.records.push(r);
        return r;
      },
      notify: (phase, record) => {
        this.emit('fault', { phase, index, ts: c.scheduler.now(), record });
      },
      schedule: (t, fn) => { c.scheduler.at(t, fn); },
      step: (t, step) => {
        c.scheduler.at(t, () => c.work.push(async () => step()));
      },
    };
  }
}
