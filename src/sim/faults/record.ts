/**
 * What each fault leaves in the run report (`faults[]`), typed per fault type. A record is made
 * when the fault is scheduled; its `details` fill in as the fault runs (see docs/scenarios.md, "Faults"), so
 * a field is absent until the phase that measures it has happened, or when the fault was skipped.
 * Wall-clock figures end in `Ms`; times are ISO 8601 virtual times.
 */
import type { FaultSpec } from '../../catalog/scenario.js';

export type FaultType = FaultSpec['type'];

/** The scenario's spec of each fault type. */
export type FaultSpecs = { [T in FaultType]: Extract<FaultSpec, { type: T }> };

/** How the sessions came back once the network or the broker was (wall clock). */
export interface Reconnection {
  /** From the network or broker being back until every session reconnected. */
  reconnectMs: number;
  /** Sessions not back within the bound. */
  notBack: number;
}

/** The fault as the platform saw it, in event time (see dip.ts). */
export interface Dip {
  /** The platform's online count just before the fault, and once it was over. */
  onlineBefore: number;
  onlineAfter: number;
  /** Its lowest online count over the fault and the event-time minute of it (if it kept a history then). */
  onlineLowest?: number;
  onlineLowestAt?: string;
  /** The minute the count was back to `onlineBefore`. */
  onlineBackAt?: string;
}

/** A wait for every session that is bounded: its bound, and the attempts sessions made within it. */
export interface BoundedRecovery {
  /** The longest the fault waits for a session (the reconnect policy's maxDelay + 60 s). */
  boundMs: number;
  /** Connection attempts sessions made after losing the broker. */
  reconnectAttempts: number;
}

/** A fault that did not run, and why (the broker was down, or there is no embedded broker). */
export interface Skipped {
  skipped: string;
}

/** Sessions off the network for a while (devices-offline, region-outage). */
export interface OutageDetails extends Partial<Reconnection & Dip> {
  /** The outage ended while the broker was down: its sessions come back with the broker, which measures them. */
  backWithBroker?: true;
}

export interface GatewayRebootDetails extends OutageDetails {
  /** Zigbee/BLE children of the rebooting gateways (down with them). */
  children: number;
}

export interface BrokerRestartDetails extends Partial<Skipped & Reconnection & Dip & BoundedRecovery> {
  /** The platform's online count while the broker was down. */
  onlineDuring?: number;
  /** From the broker being back until every device was announced again. */
  onlineMs?: number;
}

export type ReconnectStormDetails = Partial<Skipped & Reconnection & Dip & BoundedRecovery>;

export interface DeviceChurnDetails {
  /** Sessions that left, and came back, so far. */
  left: number;
  returned: number;
}

export interface OtaRolloutDetails {
  firmware: string;
  waves: number;
  /** Devices (children included) running the new firmware so far. */
  updatedDevices: number;
}

export interface SlowConsumerDetails extends Partial<Skipped> {
  /** Whether the broker closed the connection that stopped reading. */
  cutOffByBroker?: boolean;
  /** What reached the consumer once it read again. */
  bytesRead?: number;
  publishesRead?: number;
  /** The broker emitter's deepest queue while the consumer did not read (beyond what it was before). */
  emitterMaxQueuedDuring?: number;
}

export interface FaultDetails {
  'devices-offline': OutageDetails;
  'region-outage': OutageDetails;
  'gateway-reboot': GatewayRebootDetails;
  'broker-restart': BrokerRestartDetails;
  'reconnect-storm': ReconnectStormDetails;
  'device-churn': DeviceChurnDetails;
  'ota-rollout': OtaRolloutDetails;
  'slow-consumer': SlowConsumerDetails;
}

/** The record of a fault of type `T` (a union of records, for a union of types). */
export type FaultRecordOf<T extends FaultType> = T extends FaultType ? TypedFaultRecord<T> : never;

export interface TypedFaultRecord<T extends FaultType> {
  type: T;
  /** Virtual times (ISO 8601). */
  from: string;
  to: string;
  /** Device sessions the fault took down. */
  sessions: number;
  region?: string;
  /** What happened, as measured (see docs/scenarios.md, "Faults"); wall-clock figures end in `Ms`. */
  details?: FaultDetails[T];
}

/** A fault's record, by its type. */
export type FaultRecord = FaultRecordOf<FaultType>;

/** A fault starting or ending, as announced on `FaultTimeline` ('fault' event). */
export interface FaultNotice {
  phase: 'start' | 'end';
  /** Index of the fault in the scenario's `faults`. */
  index: number;
  /** Virtual time of the notice (epoch ms). */
  ts: number;
  record: FaultRecord;
}

/** A new record of a `type` fault over the virtual span [from, to], taking down `sessions`. */
export function newRecord<T extends FaultType>(type: T, from: number, to: number, sessions: number): TypedFaultRecord<T> {
  return { type, from: iso(from), to: iso(to), sessions };
}

export const iso = (t: number): string => new Date(t).toISOString();
