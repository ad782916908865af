/**
 * Builds the population a scenario describes: homes in regions, their owners and members, and
 * the devices in each home (with gateways for Zigbee/BLE sensors). Counts are allocated by
 * quota (largest remainder), not sampled, so structural figures such as "owners with more than
 * five devices" are exact for a given scenario; which home gets which count is seeded.
 */
import type { Catalog } from '../catalog/catalog.js';
import type { DeviceModel } from '../catalog/schema.js';
import { CATEGORIES } from '../catalog/schema.js';
import { Rng } from './rng.js';
import type { Scenario } from '../catalog/scenario.js';
import { soldIn } from '../catalog/regions.js';

export interface DevicePlan {
  did: string;
  model: DeviceModel;
  homeId: string;
  uid: string;
  region: string;
  /** Gateway did for Zigbee/BLE children. */
  parentId?: string;
  /** Children of a gateway. */
  children: DevicePlan[];
}

export interface Home {
  id: string;
  region: string;
  ownerUid: string;
  memberUids: string[];
  /** Every device, gateways and their children included. */
  devices: DevicePlan[];
}

export interface Population {
  homes: Home[];
  /** Devices with their own MQTT session (Wi-Fi devices and gateways). */
  sessions: DevicePlan[];
  /** Every device, children included. */
  devices: DevicePlan[];
}

/** Split `total` into integer counts proportional to `weights` (largest remainder). */
export function apportion(total: number, weights: ReadonlyArray<readonly [string, number]>): Map<string, number> {
  const sum = weights.reduce((a, [, w]) => a + w, 0);
  const exact = weights.map(([k, w]) => [k, (total * w) / sum] as const);
  const out = new Map(exact.map(([k, x]) => [k, Math.floor(x)]));
  let left = total - [...out.values()].reduce((a, b) => a + b, 0);
  const byRemainder = [...exact].sort((a, b) => (b[1] - Math.floor(b[1])) - (a[1] - Math.floor(a[1])) || (a[0] < b[0] ? -1 : 1));
  for (const [k] of byRemainder) {
    if (left <= 0) break;
    out.set(k, out.get(k)! + 1);
    left--;
  }
  return out;
}

function shuffle<T>(rng: Rng, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/**
 * Model weights of a mix for one region: a category's weight is split among its models sold
 * there, a model named in the mix counts if it is sold there; what has no model in the region
 * drops out (its share goes to the rest, in proportion). Gateways come only when asked for.
 */
export function regionWeights(catalog: Catalog, mix: Record<string, number>, region: string): Array<[DeviceModel, number]> {
  const weights = new Map<DeviceModel, number>();
  for (const [key, w] of Object.entries(mix).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (w <= 0) continue;
    const candidates = (CATEGORIES as readonly string[]).includes(key)
      ? catalog.byCategory(key as DeviceModel['category']).filter((m) => m.category !== 'gateway' || key === 'gateway')
      : [catalog.require(key)];
    const models = candidates.filter((m) => soldIn(m.markets, region));
    for (const m of models) weights.set(m, (weights.get(m) ?? 0) + w / models.length);
  }
  return [...weights.entries()].sort(([a], [b]) => (a.model < b.model ? -1 : 1));
}

/** People per home besides the owner when the scenario says nothing: [min, max]. */
export const DEFAULT_MEMBERS: readonly [number, number] = [0, 2];

/**
 * People per home, owner included, one per home. Household sizes by quota go to homes in the
 * order of their device counts (bigger households own more devices; ties by the seed); without
 * them, each home draws its members uniformly from the scenario's range.
 */
function householdSizes(p: Scenario['population'], counts: readonly number[], rng: Rng): number[] {
  if (!p.householdSize) {
    const [min, max] = p.membersPerHome ?? DEFAULT_MEMBERS;
    return counts.map((_, h) => 1 + rng.fork('home', h).int(min, max));
  }
  const quota = apportion(counts.length, Object.entries(p.householdSize).sort(([a], [b]) => Number(a) - Number(b)));
  const sizes = [...quota.entries()].flatMap(([size, n]) => Array<number>(n).fill(Number(size)));
  const ties = shuffle(rng.fork('ties'), counts.map((_, h) => h));
  const rank = new Array<number>(counts.length);
  ties.forEach((h, i) => { rank[h] = i; });
  const order = counts.map((_, h) => h).sort((a, b) => counts[a]! - counts[b]! || rank[a]! - rank[b]!);
  const out = new Array<number>(counts.length);
  order.forEach((h, i) => { out[h] = sizes[i]!; });
  return out;
}

export class IdFactory {
  private readonly used = new Set<string>();
  constructor(private readonly rng: Rng) {}
  private unique(make: () => string): string {
    for (;;) {
      const id = make();
      if (!this.used.has(id)) {
        this.used.add(id);
        return id;
      }
    }
  }
  /** Wi-Fi did: a decimal string, as the cloud gives (e.g. "267090026"). */
  wifi(): string { return this.unique(() => String(this.rng.int(100_000_000, 999_999_999))); }
  /**
   * Zigbee did: "lumi." + the 64-bit IEEE address without its leading 00 byte, 14 hex digits
   * (legacy Aqara/Lumi IEEEs start 00:15:8d:00, e.g. `lumi.158d0001a2b3c4`; research notes §8.6).
   */
  zigbee(): string {
    // Drawn as the 9 digits the 16-digit form used (two draws), first one dropped: every other id
    // of the population (Wi-Fi dids, users) stays what the seed gave before.
    return this.unique(() => `lumi.158d00${this.rng.hex(9).slice(1)}`);
  }
  /** BLE did: "blt.3." + an opaque id. */
  ble(): string { return this.unique(() => `blt.3.${this.rng.hex(12)}`); }
  /** User id: a decimal string of 10 digits. */
  user(): string { return this.unique(() => String(this.rng.int(1_000_000_000, 9_999_999_999))); }
}

export function buildPopulation(scenario: Scenario, catalog: Catalog, seed: number): Population {
  const rng = Rng.from(seed, 'population');
  const ids = new IdFactory(rng.fork('ids'));
  const p = scenario.population;
  const regionCounts = apportion(p.homes, Object.entries(p.regions).sort(([a], [b]) => (a < b ? -1 : 1)));
  const countQuota = apportion(p.homes, Object.entries(p.devicesPerHome).sort(([a], [b]) => Number(a) - Number(b)));
  const regions = shuffle(rng.fork('regions'), [...regionCounts.entries()].flatMap(([r, n]) => Array<string>(n).fill(r)));
  const counts = shuffle(rng.fork('counts'), [...countQuota.entries()].flatMap(([c, n]) => Array<number>(n).fill(Number(c))));
  const people = householdSizes(p, counts, rng.fork('households'));

  // The mix is exact too, region by region: each region's slots are dealt from one shuffled deck
  // holding each model sold there its quota of them (largest remainder), so the seed decides
  // which home gets what, not how many of each there are (sampling slot by slot moved daily
  // actives by 5 % between seeds). A model goes only to homes in its markets.
  const markets = new Map<string, { deck: DeviceModel[]; dealt: number; wifi: Array<[DeviceModel, number]>; gateway: DeviceModel | undefined }>();
  for (const region of [...regionCounts.keys()]) {
    const slots = counts.reduce((n, c, h) => n + (regions[h] === region ? c : 0), 0);
    const weights = regionWeights(catalog, p.mix, region);
    if (!weights.length) throw new RangeError(`population.mix: no model of the mix is sold in region "${region}"`);
    const byName = new Map(weights.map(([m]) => [m.model, m]));
    const quota = apportion(slots, weights.map(([m, w]) => [m.model, w] as const));
    markets.set(region, {
      deck: shuffle(rng.fork('mix', region), [...quota.entries()].flatMap(([name, n]) => Array<DeviceModel>(n).fill(byName.get(name)!))),
      dealt: 0,
      wifi: weights.filter(([m]) => m.transport === 'wifi' && m.category !== 'gateway'),
      gateway: catalog.byCategory('gateway').find((m) => soldIn(m.markets, region)),
    });
  }

  const homes: Home[] = [];
  const sessions: DevicePlan[] = [];
  const devices: DevicePlan[] = [];
  for (let h = 0; h < p.homes; h++) {
    const hr = rng.fork('home', h);
    const region = regions[h]!;
    const market = markets.get(region)!;
    const gatewayModel = market.gateway;
    const ownerUid = ids.user();
    const members = Array.from({ length: people[h]! - 1 }, () => ids.user());
    const homeId = `home-${h + 1}`;
    const n = counts[h]!;
    let picks = market.deck.slice(market.dealt, market.dealt + n);
    market.dealt += n;
    const needsGateway = picks.some((m) => m.transport !== 'wifi') && !picks.some((m) => m.category === 'gateway');
    if (needsGateway) {
      if (!gatewayModel || n < 2) {
        // No room for a hub (or none sold here): a Wi-Fi device from the mix takes the sensor's place (or a hub alone).
        picks = picks.map((m) => (m.transport === 'wifi' ? m : market.wifi.length ? hr.weighted(market.wifi) : gatewayModel ?? m));
      }
      else {
        // The hub takes one of the home's slots, so the home keeps its allotted device count.
        const i = picks.findIndex((m) => m.transport === 'wifi');
        if (i >= 0) picks[i] = gatewayModel;
        else picks[0] = gatewayModel;
      }
    }
    const home: Home = { id: homeId, region, ownerUid, memberUids: members, devices: [] };
    const plan = (model: DeviceModel, parentId?: string): DevicePlan => {
      const did = model.transport === 'zigbee' ? ids.zigbee() : model.transport === 'ble' ? ids.ble() : ids.wifi();
      const d: DevicePlan = { did, model, homeId, uid: ownerUid, region, children: [] };
      if (parentId) d.parentId = parentId;
      return d;
    };
    const gateway = picks.find((m) => m.category === 'gateway');
    const gwPlan = gateway ? plan(gateway) : undefined;
    for (const m of picks) {
      if (m === gateway && gwPlan && !home.devices.includes(gwPlan)) {
        home.devices.push(gwPlan);
        sessions.push(gwPlan);
        continue;
      }
      if (m.transport !== 'wifi' && gwPlan) {
        const child = plan(m, gwPlan.did);
        gwPlan.children.push(child);
        home.devices.push(child);
      } else {
        const d = plan(m);
        home.devices.push(d);
        sessions.push(d);
      }
    }
    devices.push(...home.devices);
    homes.push(home);
  }
  return { homes, sessions, devices };
}

/**
 * The homes of shard `index` of `count` (a run split over worker threads): homes go, largest
 * first, to the shard with the fewest devices so far, so shards carry about the same load. Each
 * home keeps everything it had (owner, members, gateway and children), in population order.
 */
export function shardPopulation(p: Population, index: number, count: number): Population {
  if (!(Number.isInteger(count) && count >= 1 && Number.isInteger(index) && index >= 0 && index < count)) {
    throw new RangeError(`shard ${index} of ${count}: expected 0 <= index < count`);
  }
  if (count === 1) return p;
  const load = new Array<number>(count).fill(0);
  const owner = new Map<Home, number>();
  const order = p.homes.map((h, i) => [h, i] as const).sort((a, b) => b[0].devices.length - a[0].devices.length || a[1] - b[1]);
  for (const [home] of order) {
    let s = 0;
    for (let k = 1; k < count; k++) if (load[k]! < load[s]!) s = k;
    owner.set(home, s);
    load[s]! += home.devices.length;
  }
  const homes = p.homes.filter((h) => owner.get(h) === index);
  const ids = new Set(homes.map((h) => h.id));
  return { homes, sessions: p.sessions.filter((d) => ids.has(d.homeId)), devices: p.devices.filter((d) => ids.has(d.homeId)) };
}
