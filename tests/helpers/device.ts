/** Build a real Device on a virtual clock, with a link that records what it publishes. */
import { join } from 'node:path';
import { loadCatalog, type Catalog } from '../../src/catalog/catalog.js';
import { parseDeviceTopic, type WireProfile } from '../../src/contract/wire.js';
import { Device } from '../../src/device/device.js';
import { Rng } from '../../src/sim/rng.js';
import { EventScheduler } from '../../src/sim/scheduler.js';

export interface Sent {
  ts: number;
  topic: string;
  /** The payload as parsed JSON. */
  payload: Record<string, unknown>;
  /** What a property or event message says: the cloud payload's `params`, the hub's flat payload; else the payload. */
  params: Record<string, unknown>;
  qos: number;
  retain: boolean;
}

/** A cloud user id, as the population makes them (decimal digits). */
export const TEST_UID = '1000000001';

let catalog: Promise<Catalog> | null = null;
export function devicesCatalog(): Promise<Catalog> {
  catalog ??= loadCatalog(join(import.meta.dirname, '..', '..', 'devices'));
  return catalog;
}

export async function makeDevice(model: string, opts: { seed?: number; start?: number; did?: string; activity?: () => number; peakActivity?: number; wire?: WireProfile; telemetry?: boolean } = {}) {
  const cat = await devicesCatalog();
  const scheduler = new EventScheduler(opts.start ?? Date.UTC(2026, 6, 15, 16));
  const sent: Sent[] = [];
  const deviceOpts: ConstructorParameters<typeof Device>[0] = {
    did: opts.did ?? '100000001', model: cat.require(model), uid: TEST_UID, scheduler, rng: Rng.from(opts.seed ?? 1, 'test', model),
  };
  if (opts.activity) deviceOpts.activity = opts.activity;
  if (opts.peakActivity !== undefined) deviceOpts.peakActivity = opts.peakActivity;
  if (opts.wire) deviceOpts.wire = opts.wire;
  if (opts.telemetry !== undefined) deviceOpts.telemetry = opts.telemetry;
  const device = new Device(deviceOpts);
  device.attach({
    publish: (topic, text, o) => {
      const payload = JSON.parse(text) as Record<string, unknown>;
      const t = parseDeviceTopic(topic);
      const params = t?.profile === 'cloud' ? payload['params'] as Record<string, unknown> : payload;
      sent.push({ ts: scheduler.now(), topic, payload, params, qos: o.qos, retain: o.retain });
    },
  });
  const rpc = (method: string, params: unknown) => device.handleRpc(JSON.stringify({ id: 1, method, params }));
  const set = (siid: number, piid: number, value: unknown) => rpc('set_properties', [{ did: device.did, siid, piid, value }]);
  const ofKind = (kind: 'properties_changed' | 'event_occured', key: string) => sent.filter((s) => {
    const t = parseDeviceTopic(s.topic);
    return t?.kind === kind && `${t.siid}.${t.iid}` === key;
  });
  const changes = (key: string) => ofKind('properties_changed', key);
  const events = (key: string) => ofKind('event_occured', key);
  return { device, scheduler, sent, rpc, set, changes, events };
}
