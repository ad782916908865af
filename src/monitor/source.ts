/**
 * What the monitor watches, as interfaces: a broker that emits its traffic, a platform with its
 * figures, and optionally a way to command devices (a simulation). The embedded broker, the
 * platform service and `Simulation` fit them as they are; `aiot-sim serve` has no devices.
 */
import type { Duplex } from 'node:stream';
import type { ClusterHealth } from '../broker/cluster.js';
import type { LimitReport } from '../broker/limits.js';
import type { RpcResponse } from '../contract/wire.js';
import type { PlatformSnapshot } from '../platform/service.js';

export interface MonitoredBroker {
  on(event: 'message', fn: (topic: string, payload: Buffer, clientId: string | null) => void): unknown;
  off(event: 'message', fn: (topic: string, payload: Buffer, clientId: string | null) => void): unknown;
  readonly counters: { published: number; delivered: number; rejected: number };
  readonly connectedClients: number;
  readonly mqttAddress: { host: string; port: number } | null;
  readonly wsAddress: { host: string; port: number } | null;
  /** An in-process MQTT connection (as the operator when asked) and publishing as the broker, for the delivery-latency probe; optional. */
  connectInProcess?(opts?: { asOperator?: boolean }): Duplex;
  publish?(topic: string, payload: string): Promise<void>;
  /** The broker's bounds, what they stopped and what its bounded stores hold (the embedded broker's); optional. */
  limitReport?(): LimitReport;
  /** How a cluster node's link to the cluster's Redis is doing (null when not a cluster node); optional. */
  clusterHealth?(): ClusterHealth | null;
}

export interface MonitoredPlatform {
  snapshot(): PlatformSnapshot;
}

/** One property of a device model, with what a page needs to show and edit it. */
export interface PropertyInfo {
  siid: number;
  piid: number;
  service: string;
  name: string;
  format: string;
  access: string[];
  unit?: string;
  range?: [number, number, number];
  values?: Array<{ value: number; description: string }>;
}

export interface DeviceSummary {
  did: string;
  model: string;
  name: string;
  category: string;
  parentId?: string;
  /** The home it is in (`home-3`) and that home's region (`es`), when the population says. */
  home?: string;
  region?: string;
}

export interface DeviceDescription extends DeviceSummary {
  uid: string;
  properties: PropertyInfo[];
}

/** `GET /api/devices/{did}`: the device and its readable properties' current values, keyed `siid.piid`. */
export interface DeviceReading extends DeviceDescription {
  values: Record<string, { code: number; value?: unknown }>;
}

/** `GET /api/info`: what the page needs to start. */
export interface MonitorInfo {
  title: string;
  /** The broker's MQTT and MQTT-over-WebSocket addresses, when it listens on them. */
  mqtt: string | null;
  mqttWs: string | null;
  /** Whether there are devices to list and command (a simulation). */
  devices: boolean;
  statsIntervalMs: number;
}

export type RpcMethodName = 'get_properties' | 'set_properties' | 'action';

/** Lists devices and sends them MIoT RPCs through the broker (a simulation's operator session). */
export interface DeviceCommander {
  list(): DeviceSummary[];
  describe(did: string): DeviceDescription | undefined;
  command(did: string, method: RpcMethodName, params: unknown): Promise<RpcResponse>;
}

/** The part of `Simulation` the monitor uses. */
export interface SimulationLike {
  readonly dids: string[];
  device(did: string): {
    did: string; uid: string; parentId: string | undefined;
    model: { model: string; name: string; category: string; services: Array<{ siid: number; name: string; properties: Array<{
      piid: number; name: string; format: string; access: string[]; unit?: string | undefined;
      'value-range'?: [number, number, number] | undefined; 'value-list'?: Array<{ value: number; description: string }> | undefined;
    }> }> };
  } | undefined;
  command(did: string, method: RpcMethodName, params: unknown): Promise<RpcResponse>;
  /** Where each device lives (the dashboard searches by home). */
  readonly population?: { readonly devices: ReadonlyArray<{ did: string; homeId: string; region: string }> };
}

/** A DeviceCommander over a simulation: devices from its population, commands through its operator session. */
export function simulationCommander(sim: SimulationLike): DeviceCommander {
  const homes = new Map((sim.population?.devices ?? []).map((p) => [p.did, p]));
  const summary = (d: NonNullable<ReturnType<SimulationLike['device']>>): DeviceSummary => {
    const s: DeviceSummary = { did: d.did, model: d.model.model, name: d.model.name, category: d.model.category };
    if (d.parentId) s.parentId = d.parentId;
    const plan = homes.get(d.did);
    if (plan) { s.home = plan.homeId; s.region = plan.region; }
    return s;
  };
  return {
    list: () => sim.dids.map((did) => sim.device(did)).filter((d) => d !== undefined).map(summary),
    describe: (did) => {
      const d = sim.device(did);
      if (!d) return undefined;
      const properties: PropertyInfo[] = [];
      for (const svc of d.model.services) {
        for (const p of svc.properties) {
          const info: PropertyInfo = { siid: svc.siid, piid: p.piid, service: svc.name, name: p.name, format: p.format, access: [...p.access] };
          if (p.unit !== undefined) info.unit = p.unit;
          if (p['value-range']) info.range = p['value-range'];
          if (p['value-list']) info.values = p['value-list'];
          properties.push(info);
        }
      }
      return { ...summary(d), uid: d.uid, properties };
    },
    command: (did, method, params) => sim.command(did, method, params),
  };
}
