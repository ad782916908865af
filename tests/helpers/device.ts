/** Build a real Device on a virtual clock, with a link that records what it publishes. */
import { join } from 'node:path';
import { loadCatalog, type Catalog } from '../../src/catalog/catalog.js';
import { Device } from '../../src/device/device.js';
import { Rng } from '../../src/sim/rng.js';
import { EventScheduler } from '../../src/sim/scheduler.js';

export interface Sent { ts: number; topic: string; payload: Record<string, unknown>; qos: number; retain: boolean }

let catalog: Promise<Catalog> | null = null;
export function devicesCatalog(): Promise<Catalog> {
  catalog ??= loadCatalog(join(import.meta.dirname, '..', '..', 'devices'));
  return catalog;
}

export async function makeDevice(model: string, opts: { seed?: number; start?: number; did?: string; activity?: () => number; telemetry?: boolean } = {}) {
  const cat = await devicesCatalog();
  const scheduler = new EventScheduler(opts.start ?? Date.UTC(2026, 6, 15, 16));
  const sent: Sent[] = [];
  const deviceOpts: ConstructorParameters<typeof Device>[0] = {
    did: opts.did ?? '100000001', model: cat.require(model), uid: 'u1', scheduler, rng: Rng.from(opts.seed ?? 1, 'test', model),
  };
  if (opts.activity) deviceOpts.activity = opts.activity;
  if (opts.telemetry !== undefined) deviceOpts.telemetry = opts.telemetry;
  const device = new Device(deviceOpts);
  device.attach({
    publish: (topic, payload, o) => sent.push({ ts: scheduler.now(), topic, payload: JSON.parse(payload) as Record<string, unknown>, qos: o.qos, retain: o.retain }),
  });
  const rpc = (method: string, params: unknown) => device.handleRpc(JSON.stringify({ id: 1, method, params }));
  const set = (siid: number, piid: number, value: unknown) => rpc('set_properties', [{ did: device.did, siid, piid, value }]);
  const changes = (key: string) => sent.filter((s) => s.topic.endsWith(`/properties_changed/${key.replace('.', '/')}`));
  const events = (key: string) => sent.filter((s) => s.topic.endsWith(`/event_occured/${key.replace('.', '/')}`));
  return { device, scheduler, sent, rpc, set, changes, events };
}
