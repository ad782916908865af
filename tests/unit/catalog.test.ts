import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCatalog, loadFragmentFile, parseYaml } from '../../src/catalog/catalog.js';
import { FragmentLibrary } from '../../src/catalog/fragments.js';
import { deviceJsonSchema, fragmentJsonSchema, scenarioJsonSchema } from '../../src/catalog/json-schema.js';
import { checkDeviceModel, valueProblem } from '../../src/catalog/validate.js';
import { checkScenario, loadScenario } from '../../src/catalog/scenario.js';

const root = join(import.meta.dirname, '..', '..');
const devicesDir = join(root, 'devices');
const fragmentsDir = join(devicesDir, 'fragments');

/** The `include:` of every device file as written. */
async function includesByFile(): Promise<Map<string, string[]>> {
  const files = (await readdir(devicesDir)).filter((f) => f.endsWith('.yaml')).sort();
  const out = new Map<string, string[]>();
  for (const f of files) {
    const doc = parseYaml(f, await readFile(join(devicesDir, f), 'utf8')).value as { include?: string[] };
    out.set(f, doc.include ?? []);
  }
  return out;
}

describe('the device catalogue (every file in devices/)', async () => {
  const catalog = await loadCatalog(devicesDir);
  const files = (await readdir(devicesDir)).filter((f) => f.endsWith('.yaml'));

  it('loads every file, one model per file, named after its model', () => {
    expect(catalog.models).toHaveLength(files.length);
    expect(files.sort()).toEqual(catalog.models.map((m) => `${m.model}.yaml`).sort());
  });

  it('has at least 14 models covering speakers, appliances, a hub and its Zigbee/BLE children', () => {
    expect(catalog.models.length).toBeGreaterThanOrEqual(14);
    for (const c of ['speaker', 'air-conditioner', 'washer', 'air-purifier', 'vacuum', 'light', 'plug', 'gateway', 'sensor'] as const) {
      expect(catalog.byCategory(c).length, c).toBeGreaterThan(0);
    }
    expect(catalog.has('lumi.gateway.mgl03')).toBe(true);
    const sensors = catalog.byCategory('sensor');
    expect(sensors.filter((m) => m.transport === 'zigbee').length).toBeGreaterThanOrEqual(3);
    expect(sensors.some((m) => m.transport === 'ble')).toBe(true);
  });

  it('keeps per-model siid layouts: the two speakers put play-control in different services', () => {
    const where = (model: string) => catalog.require(model).services.find((s) => s.name === 'play-control')?.siid;
    expect(where('xiaomi.wifispeaker.lx06')).toBe(3);
    expect(where('xiaomi.wifispeaker.x08c')).toBe(2);
  });

  it('every model starts with device-information (siid 1) and has unique iids', () => {
    for (const m of catalog.models) {
      expect(m.services[0], m.model).toMatchObject({ siid: 1, name: 'device-information' });
      expect(new Set(m.services.map((s) => s.siid)).size, m.model).toBe(m.services.length);
      for (const s of m.services) expect(new Set(s.properties.map((p) => p.piid)).size, `${m.model} ${s.siid}`).toBe(s.properties.length);
    }
  });

  it('every default value fits its property, and every behaviour and effect reference resolves', () => {
    for (const m of catalog.models) {
      for (const s of m.services) for (const p of s.properties) {
        if (p.default !== undefined) expect(valueProblem(p, p.default), `${m.model} ${s.siid}.${p.piid}`).toBeUndefined();
      }
      // The semantic validator resolves every reference; a loaded model passed it.
      expect(checkDeviceModel(m.model, m).problems).toEqual([]);
    }
  });

  it('every model that reports telemetry has notify properties and a behaviour driving them', () => {
    for (const m of catalog.models.filter((x) => x.category !== 'gateway')) {
      const notify = m.services.flatMap((s) => s.properties.filter((p) => p.access.includes('notify')));
      expect(notify.length, m.model).toBeGreaterThan(0);
      expect(m.behaviours.length, m.model).toBeGreaterThan(0);
    }
  });

  it('every model states its markets in its file and says where they come from; China-only ones have global counterparts', async () => {
    for (const f of files) {
      const text = await readFile(join(devicesDir, f), 'utf8');
      const doc = parseYaml(f, text).value as { markets?: unknown };
      expect(Array.isArray(doc.markets), `${f}: markets`).toBe(true);
      // The line above `markets:` is a comment saying why (a source, or an [estimate] / [inference]).
      const lines = text.split('\n');
      expect(lines[lines.findIndex((l) => l.startsWith('markets:')) - 1], f).toMatch(/^# /);
    }
    const soldAbroad = (c: Parameters<typeof catalog.byCategory>[0]) => catalog.byCategory(c).some((m) => m.markets.some((k) => k !== 'china'));
    // Europe and Latin America have plugs (Europe), lights, sensors with their hub, vacuums, fans and cameras.
    for (const c of ['plug', 'light', 'sensor', 'gateway', 'vacuum', 'fan', 'camera'] as const) expect(soldAbroad(c), c).toBe(true);
  });

  it('covers what the seeds describe: a TV, a door lock, a camera, a fan, a kettle and a cooker, each with its source', () => {
    for (const c of ['tv', 'lock', 'camera', 'fan', 'kettle', 'cooker'] as const) expect(catalog.byCategory(c).length, c).toBeGreaterThan(0);
    for (const m of catalog.models) expect(m.source.length, m.model).toBeGreaterThan(20);
  });

  it('reports every problem of a broken model with its path', () => {
    const broken = {
      model: 'acme.thing.v1', name: 'x', category: 'plug', transport: 'wifi', source: 'test',
      urn: 'urn:miot-spec-v2:device:outlet:0000A002:acme-v2:1',
      services: [
        { siid: 2, name: 'switch', properties: [
          { piid: 1, name: 'on', format: 'bool', access: ['read'], 'value-range': [0, 1, 1] },
          { piid: 1, name: 'level', format: 'uint8', access: ['read'], 'value-range': [0, 300, 1], default: 400 },
        ], actions: [{ aiid: 1, name: 'go', in: [9] }] },
      ],
      behaviours: [{ use: 'power-draw', on: '2.7', watts: [1, 2] }],
    };
    const paths = checkDeviceModel('devices/acme.thing.v1.yaml', broken).problems.map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining([
      'urn', 'services[0]', 'services[0].properties[1].piid', 'services[0].properties[0].value-range',
      'services[0].properties[1].value-range', 'services[0].properties[1].default', 'services[0].actions[0]', 'behaviours[0].on',
    ]));
  });

  it('the published JSON Schemas in schema/ match the zod schemas', async () => {
    const device = JSON.parse(await readFile(join(root, 'schema', 'device.schema.json'), 'utf8')) as unknown;
    const scenario = JSON.parse(await readFile(join(root, 'schema', 'scenario.schema.json'), 'utf8')) as unknown;
    expect(device, 'run `npm run schema` to regenerate').toEqual(deviceJsonSchema());
    expect(scenario, 'run `npm run schema` to regenerate').toEqual(scenarioJsonSchema());
    const fragment = JSON.parse(await readFile(join(root, 'schema', 'fragment.schema.json'), 'utf8')) as unknown;
    expect(fragment, 'run `npm run schema` to regenerate').toEqual(fragmentJsonSchema());
  });

  it('the device schema describes the file as written: include and services, one object', () => {
    const schema = deviceJsonSchema() as { properties: Record<string, unknown>; additionalProperties: unknown };
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['model', 'include', 'services', 'behaviours']));
    expect(schema.additionalProperties).toBe(false);
  });

  it('every fragment in devices/fragments is valid and included by some model', async () => {
    const names = await new FragmentLibrary(fragmentsDir).names();
    expect(names).toContain('device-information');
    const used = new Set([...(await includesByFile()).values()].flat());
    for (const name of names) {
      const res = await loadFragmentFile(join(fragmentsDir, `${name}.yaml`));
      expect(res.problems, name).toEqual([]);
      expect(used.has(name), `fragment ${name} is included by no model`).toBe(true);
    }
  });

  it('every include names a fragment in devices/fragments', async () => {
    const library = new FragmentLibrary(fragmentsDir);
    for (const [file, include] of await includesByFile()) {
      for (const name of include) expect((await library.load(name)).kind, `${file} includes ${name}`).toBe('found');
    }
  });

  it('device-information comes from its fragment, filled in with each model: manufacturer the vendor, model the model', async () => {
    for (const [file, include] of await includesByFile()) expect(include, file).toContain('device-information');
    for (const m of catalog.models) {
      const info = m.services[0]!.properties;
      expect(info.map((p) => [p.piid, p.name, p.default]), m.model).toEqual([
        [1, 'manufacturer', m.model.split('.')[0]], [2, 'model', m.model], [3, 'serial-number', undefined], [4, 'firmware-revision', undefined],
      ]);
    }
  });

  it('every scenario in scenarios/ validates against the catalogue', async () => {
    const dir = join(root, 'scenarios');
    const names = (await readdir(dir)).filter((f) => f.endsWith('.yaml'));
    expect(names).toContain('default.yaml');
    for (const name of names) {
      const y = parseYaml(name, await readFile(join(dir, name), 'utf8'));
      expect(checkScenario(name, y.value, catalog).problems, name).toEqual([]);
    }
  });

  it('loads snapshot-2019q3.yaml, renamed, from its new file for a release, with a deprecation warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => { warnings.push(w); };
    process.on('warning', onWarning);
    try {
      const old = await loadScenario(join(root, 'scenarios', 'snapshot-2019q3.yaml'), catalog);
      expect(old.name).toBe('snapshot-2020q3');
      // The warning is emitted on the next tick.
      await new Promise((r) => setImmediate(r));
      expect(warnings).toEqual([expect.objectContaining({ name: 'DeprecationWarning', code: 'AIOTSIM_SCENARIO_RENAMED', message: expect.stringMatching(/renamed snapshot-2020q3\.yaml/) })]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
