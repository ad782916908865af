import { describe, expect, it } from 'vitest';
import { apportion, buildPopulation, shardPopulation } from '../../src/sim/population.js';
import { checkScenario, type Scenario } from '../../src/catalog/scenario.js';
import { region, soldIn } from '../../src/catalog/regions.js';
import { devicesCatalog } from '../helpers/device.js';

async function scenario(population: Record<string, unknown>): Promise<Scenario> {
  const res = checkScenario('test', { name: 't', start: '2026-07-15T18:00:00Z', population }, await devicesCatalog());
  if (!res.scenario) throw new Error(JSON.stringify(res.problems));
  return res.scenario;
}

describe('population', () => {
  it('apportions exactly by largest remainder', () => {
    expect([...apportion(10, [['a', 1], ['b', 1], ['c', 1]]).values()]).toEqual([4, 3, 3]);
    const m = apportion(28_900, [['x', 0.3], ['y', 0.7]]);
    expect(m.get('x')! + m.get('y')!).toBe(28_900);
    expect(m.get('x')).toBe(8670);
  });

  it('gives homes exactly the device counts the distribution asks for, gateways included', async () => {
    const s = await scenario({ homes: 200, regions: { cn: 1, es: 1, mx: 1 }, devicesPerHome: { '1': 50, '3': 30, '7': 20 }, mix: { sensor: 2, plug: 1, speaker: 1 } });
    const p = buildPopulation(s, await devicesCatalog(), 9);
    const sizes = p.homes.map((h) => h.devices.length);
    expect(sizes.filter((n) => n === 1)).toHaveLength(100);
    expect(sizes.filter((n) => n === 3)).toHaveLength(60);
    expect(sizes.filter((n) => n === 7)).toHaveLength(40);
    expect(p.homes.filter((h) => h.devices.length > 5)).toHaveLength(40);
    const regions = p.homes.reduce<Record<string, number>>((m, h) => ({ ...m, [h.region]: (m[h.region] ?? 0) + 1 }), {});
    expect(Object.values(regions).sort()).toEqual([66, 67, 67]);
  });

  it('deals the mix exactly by quota: the seed decides which home gets what, not how many', async () => {
    const s = await scenario({ homes: 500, regions: { cn: 1 }, devicesPerHome: { '1': 1, '2': 2, '5': 1 }, mix: { speaker: 3, plug: 2, 'yeelink.light.mono6': 1 } });
    const cat = await devicesCatalog();
    const tally = (seed: number) => {
      const m: Record<string, number> = {};
      for (const d of buildPopulation(s, cat, seed).devices) m[d.model.category] = (m[d.model.category] ?? 0) + 1;
      return m;
    };
    // 500 homes: 125 x 1 + 250 x 2 + 125 x 5 = 1,250 slots, split 3 : 2 : 1 (speakers over two models).
    for (const seed of [1, 2, 3]) expect(tally(seed)).toEqual({ speaker: 625, plug: 417, light: 208 });
  });

  it('puts every Zigbee/BLE sensor behind a gateway of its own home', async () => {
    const s = await scenario({ homes: 100, regions: { es: 1 }, devicesPerHome: { '1': 1, '4': 2 }, mix: { sensor: 3, light: 1 } });
    const p = buildPopulation(s, await devicesCatalog(), 3);
    for (const d of p.devices.filter((x) => x.model.transport !== 'wifi')) {
      const gw = p.devices.find((x) => x.did === d.parentId);
      expect(gw?.model.category).toBe('gateway');
      expect(gw?.homeId).toBe(d.homeId);
      // Legacy Lumi dids: "lumi." + the IEEE address 00:15:8d:00:… without its leading 00 byte, 14 hex digits.
      expect(d.did).toMatch(d.model.transport === 'zigbee' ? /^lumi\.158d00[0-9a-f]{8}$/ : /^blt\.3\.[0-9a-f]{12}$/);
    }
    // One-device homes cannot host a sensor without a hub: they get a Wi-Fi device instead.
    for (const h of p.homes.filter((x) => x.devices.length === 1)) expect(h.devices[0]!.model.transport).toBe('wifi');
    expect(p.sessions.every((d) => d.model.transport === 'wifi')).toBe(true);
    expect(p.devices.length).toBe(p.sessions.length + p.sessions.reduce((n, d) => n + d.children.length, 0));
  });

  it('is reproducible from the seed and unique in its ids', async () => {
    const s = await scenario({ homes: 300, regions: { cn: 1, it: 1 }, devicesPerHome: { '2': 1, '6': 1 }, mix: { speaker: 1, sensor: 1, 'air-conditioner': 1 } });
    const cat = await devicesCatalog();
    const a = buildPopulation(s, cat, 1);
    const b = buildPopulation(s, cat, 1);
    const c = buildPopulation(s, cat, 2);
    const ids = (p: typeof a) => p.devices.map((d) => `${d.did}:${d.model.model}:${d.uid}`);
    expect(ids(a)).toEqual(ids(b));
    expect(ids(c)).not.toEqual(ids(a));
    expect(new Set(a.devices.map((d) => d.did)).size).toBe(a.devices.length);
    expect(new Set(a.homes.map((h) => h.ownerUid)).size).toBe(300);
  });

  it('deals each model only to homes in its markets: no China-only model in a European or Latin American home', async () => {
    const cat = await devicesCatalog();
    // Every category, in homes spread over China, Europe and Latin America.
    const mix = Object.fromEntries(['speaker', 'air-conditioner', 'washer', 'air-purifier', 'vacuum', 'light', 'plug', 'sensor', 'fan', 'tv', 'lock', 'camera', 'kettle', 'cooker'].map((c) => [c, 1]));
    const s = await scenario({ homes: 600, regions: { cn: 2, es: 1, it: 1, de: 1, mx: 1, br: 1 }, devicesPerHome: { '1': 1, '3': 2, '6': 1 }, mix });
    const chinaOnly = cat.models.filter((m) => m.markets.length === 1 && m.markets[0] === 'china').map((m) => m.model);
    // The ones the issue names are among them.
    expect(chinaOnly).toEqual(expect.arrayContaining(['xiaomi.wifispeaker.lx06', 'mibx5.washer.v7', 'xiaomi.airc.r24r00', 'chuangmi.plug.212a01']));
    for (const seed of [1, 2, 3]) {
      const p = buildPopulation(s, cat, seed);
      for (const d of p.devices) expect(soldIn(d.model.markets, d.region), `${d.model.model} in ${d.region}`).toBe(true);
      const abroad = p.devices.filter((d) => region(d.region).group !== 'china');
      expect(abroad.length).toBeGreaterThan(500);
      expect(abroad.filter((d) => chinaOnly.includes(d.model.model))).toEqual([]);
      // Europe gets the EU plugs, China keeps its own; speakers are all Chinese.
      expect(new Set(abroad.filter((d) => d.model.category === 'plug' && region(d.region).group === 'europe').map((d) => d.model.model)))
        .toEqual(new Set(['cuco.plug.v2eur', 'chuangmi.plug.hmi206']));
      expect(p.devices.filter((d) => d.model.category === 'speaker').every((d) => d.region === 'cn')).toBe(true);
      expect(p.devices.some((d) => d.model.category === 'speaker')).toBe(true);
    }
  });

  it('deals each region\'s slots exactly by its mix, a category with nothing sold there giving its share to the rest', async () => {
    const cat = await devicesCatalog();
    const s = await scenario({ homes: 300, regions: { cn: 1, es: 1 }, devicesPerHome: { '2': 1 }, mix: { speaker: 1, light: 1, 'yeelink.light.mono6': 1 } });
    for (const seed of [1, 2]) {
      const p = buildPopulation(s, cat, seed);
      const tally = (r: string) => p.devices.filter((d) => d.region === r).reduce<Record<string, number>>((m, d) => ({ ...m, [d.model.model]: (m[d.model.model] ?? 0) + 1 }), {});
      // China, 300 slots: speaker 1 (two models), light 1 (two models), mono6 1 more: 100 : 100 : 100.
      expect(tally('cn')).toEqual({ 'xiaomi.wifispeaker.lx06': 50, 'xiaomi.wifispeaker.x08c': 50, 'yeelink.light.color2': 50, 'yeelink.light.mono6': 150 });
      // Spain has no speaker: the lights share its 300 slots 0.5 : 1.5.
      expect(tally('es')).toEqual({ 'yeelink.light.color2': 75, 'yeelink.light.mono6': 225 });
    }
  });

  it('gives household sizes exactly by quota, bigger households to the homes with more devices', async () => {
    const s = await scenario({
      homes: 400, regions: { cn: 1 }, devicesPerHome: { '1': 2, '3': 1, '8': 1 }, mix: { plug: 1, light: 1 },
      householdSize: { '1': 1, '2': 1, '4': 1, '6': 1 },
    });
    for (const seed of [1, 2]) {
      const p = buildPopulation(s, await devicesCatalog(), seed);
      const people = (h: (typeof p.homes)[number]) => 1 + h.memberUids.length;
      expect(p.homes.map(people).sort((a, b) => a - b)).toEqual([1, 2, 4, 6].flatMap((n) => Array<number>(100).fill(n)));
      // A home with more devices never has fewer people than one with fewer devices.
      const sizesOf = (n: number) => p.homes.filter((h) => h.devices.length === n).map(people);
      expect(Math.max(...sizesOf(1))).toBeLessThanOrEqual(Math.min(...sizesOf(3)));
      expect(Math.max(...sizesOf(3))).toBeLessThanOrEqual(Math.min(...sizesOf(8)));
      expect(sizesOf(8)).toEqual(Array<number>(100).fill(6));
      expect(new Set(p.homes.flatMap((h) => [h.ownerUid, ...h.memberUids])).size).toBe(1300);
    }
  });

  it('refuses a scenario whose region has nothing of the mix sold there, or a mix entry sold in none of its regions', async () => {
    const cat = await devicesCatalog();
    const check = (population: Record<string, unknown>) => checkScenario('t.yaml', { name: 't', start: '2026-07-15T18:00:00Z', population }, cat).problems;
    const none = check({ homes: 10, regions: { cn: 1, es: 1 }, devicesPerHome: { '2': 1 }, mix: { speaker: 1, washer: 1 } });
    expect(none).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'population.regions.es', message: expect.stringMatching(/nothing in the mix is sold in Spain/) })]));
    const nowhere = check({ homes: 10, regions: { es: 1, mx: 1 }, devicesPerHome: { '2': 1 }, mix: { speaker: 1, light: 1 } });
    expect(nowhere).toEqual([expect.objectContaining({ path: 'population.mix.speaker', message: expect.stringMatching(/no "speaker" model is sold in this scenario's regions \(es, mx\); it is sold in: china/) })]);
    const both = check({ homes: 10, regions: { cn: 1 }, devicesPerHome: { '2': 1 }, mix: { light: 1 }, membersPerHome: [0, 1], householdSize: { '2': 1 } });
    expect(both).toEqual([expect.objectContaining({ path: 'population.householdSize' })]);
  });

  it('says what changed when a scenario still gives voice requests per speaker, and refuses routine shares over 1', async () => {
    const cat = await devicesCatalog();
    const population = { homes: 10, regions: { cn: 1 }, devicesPerHome: { '2': 1 }, mix: { speaker: 1, light: 1 } };
    const check = (behaviour: Record<string, unknown>) => checkScenario('t.yaml', { name: 't', start: '2026-07-15T18:00:00Z', population, behaviour }, cat).problems;
    expect(check({ voice: { interactionsPerSpeakerPerDay: 4 } })).toEqual([expect.objectContaining({
      path: 'behaviour.voice.interactionsPerSpeakerPerDay', message: expect.stringMatching(/use requestsPerUserPerDay/),
    })]);
    expect(check({ routines: { automationShare: 0.6, appShare: 0.6 } })).toEqual([expect.objectContaining({ path: 'behaviour.routines' })]);
    expect(check({ voice: { requestsPerUserPerDay: 3, userShare: 0.8 }, routines: { automationShare: 0.2, appShare: 0.3 } })).toEqual([]);
  });

  it('deals homes into shards whole, each home once, with about the same number of devices', async () => {
    const s = await scenario({ homes: 301, regions: { cn: 1, es: 1 }, devicesPerHome: { '1': 100, '4': 100, '9': 101 }, mix: { sensor: 2, plug: 1, speaker: 1 } });
    const p = buildPopulation(s, await devicesCatalog(), 3);
    for (const count of [2, 3, 7]) {
      const shards = Array.from({ length: count }, (_, i) => shardPopulation(p, i, count));
      expect(shards.flatMap((x) => x.homes.map((h) => h.id)).sort()).toEqual(p.homes.map((h) => h.id).sort());
      expect(shards.reduce((n, x) => n + x.devices.length, 0)).toBe(p.devices.length);
      expect(shards.reduce((n, x) => n + x.sessions.length, 0)).toBe(p.sessions.length);
      for (const x of shards) {
        const homes = new Set(x.homes.map((h) => h.id));
        // A gateway's children and every session stay with their home.
        expect(x.devices.every((d) => homes.has(d.homeId) && (!d.parentId || x.sessions.some((g) => g.did === d.parentId)))).toBe(true);
      }
      const sizes = shards.map((x) => x.devices.length);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(9);
    }
    expect(shardPopulation(p, 0, 1)).toBe(p);
    expect(() => shardPopulation(p, 2, 2)).toThrow(/shard 2 of 2/);
  });
});
