/**
 * Every value a device reports honours its property's spec, for every model of the catalogue:
 * a day of traffic with each model present (properties_changed, event arguments, RPC replies,
 * actions' out values), then a get_properties of every readable property of every device, all
 * read back from the run's trace and checked against the model with rules written here.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import type { DeviceModel, PropertySpec } from '../../src/catalog/schema.js';
const MIOT_UNITS = ['percentage', 'celsius', 'fahrenheit', 'kelvin', 'seconds', 'minutes', 'hours', 'days', 'pascal', 'arcdegrees', 'rgb', 'none', 'watt', 'kWh', 'lux', 'μg/m3', 'mg/m3', 'p/m3'];
import { createSimulation } from '../../src/sim/simulation.js';
import { useCleanup } from '../helpers/cleanup.js';
import { devicesCatalog } from '../helpers/device.js';
import { tinyScenario } from '../helpers/scenario.js';

const track = useCleanup();
const DAY = 86_400_000;

const BOUNDS: Record<string, [number, number]> = {
  uint8: [0, 2 ** 8 - 1], uint16: [0, 2 ** 16 - 1], uint32: [0, 2 ** 32 - 1],
  int8: [-(2 ** 7), 2 ** 7 - 1], int16: [-(2 ** 15), 2 ** 15 - 1], int32: [-(2 ** 31), 2 ** 31 - 1], int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

const decimals = (n: number): number => {
  const s = String(n);
  if (s.includes('e')) return Infinity; // 1e-7 and the like: more digits than any step here has
  const i = s.indexOf('.');
  return i < 0 ? 0 : s.length - i - 1;
};

/**
 * Why `v` does not fit property `p` (a MIoT unit; format, bounds, list, range, step, and no more
 * digits than the step), or undefined.
 */
function misfit(p: PropertySpec, v: unknown): string | undefined {
  if (p.unit !== undefined && !MIOT_UNITS.includes(p.unit)) return `carries "${p.unit}", not a MIoT unit`;
  if (p.format === 'bool') return typeof v === 'boolean' ? undefined : 'not a bool';
  if (p.format === 'string') return typeof v === 'string' ? undefined : 'not a string';
  if (typeof v !== 'number' || !Number.isFinite(v)) return 'not a finite number';
  const bounds = BOUNDS[p.format];
  if (bounds && (!Number.isInteger(v) || v < bounds[0] || v > bounds[1])) return `not a ${p.format}`;
  const list = p['value-list'];
  if (list && !list.some((x) => x.value === v)) return 'not in its value-list';
  const range = p['value-range'];
  if (p.format === 'float' && !range) return 'a float with no step to honour';
  if (range) {
    const [min, max, step] = range;
    if (v < min || v > max) return `outside [${min}, ${max}]`;
    const k = (v - min) / step;
    if (Math.abs(k - Math.round(k)) > 1e-9 * Math.max(1, Math.abs(k))) return `not on a step of ${step}`;
    if (decimals(v) > decimals(step)) return `more digits than its step ${step}`;
  }
  return undefined;
}

type Obj = Record<string, unknown>;

describe('catalogue-wide: reported values honour their property specs', () => {
  it('over a day of traffic with every model present', { timeout: 180_000 }, async () => {
    const catalog = await devicesCatalog();
    const models = catalog.models.map((m) => m.model);
    const traceFile = join(tmpdir(), `aiot-sim-values-${randomBytes(4).toString('hex')}.ndjson`);
    track(() => rm(traceFile, { force: true }));
    const sim = track(await createSimulation({
      scenario: tinyScenario({ homes: 24, mix: Object.fromEntries(models.map((m) => [m, 1])), devicesPerHome: { '8': 1 }, regions: { cn: 2, es: 1, mx: 1 } }),
      speed: 'manual', broker: { mqttPort: null, wsPort: null }, traceFile,
    }));
    const modelOf = new Map(sim.population.devices.map((d) => [d.did, d.model]));
    expect(new Set([...modelOf.values()].map((m) => m.model))).toEqual(new Set(models));

    for (let h = 0; h < 24; h++) await sim.advance(DAY / 24);
    // Then read every readable property of every device, through the broker.
    await Promise.all(sim.population.devices.map((d) => {
      const params = d.model.services.flatMap((s) => s.properties.filter((p) => p.access.includes('read')).map((p) => ({ did: d.did, siid: s.siid, piid: p.piid })));
      return sim.command(d.did, 'get_properties', params, 30_000);
    }));
    await sim.stop();

    const spec = (m: DeviceModel, siid: number, piid: number): PropertySpec | undefined =>
      m.services.find((s) => s.siid === siid)?.properties.find((p) => p.piid === piid);
    const checked = new Map<string, number>(); // by model and source
    const problems: string[] = [];
    const check = (did: string, siid: number, piid: number, value: unknown, source: string): void => {
      const m = modelOf.get(did);
      const p = m && spec(m, siid, piid);
      if (!m || !p) {
        problems.push(`${source} ${did} ${siid}.${piid}: no such property`);
        return;
      }
      const key = `${m.model} ${source}`;
      checked.set(key, (checked.get(key) ?? 0) + 1);
      const why = misfit(p, value);
      if (why && problems.length < 20) problems.push(`${m.model} ${siid}.${piid} ${p.name} (${source}): ${JSON.stringify(value)} ${why}`);
    };
    for await (const line of createInterface({ input: createReadStream(traceFile, 'utf8'), crlfDelay: Infinity })) {
      const { topic, payload } = JSON.parse(line) as { topic: string; payload: string };
      const parts = topic.split('/');
      const did = parts[1]!;
      const body = JSON.parse(payload) as Obj;
      if (parts[3] === 'properties_changed') {
        const p = body['params'] as Obj;
        check(did, Number(parts[4]), Number(parts[5]), p['value'], 'properties_changed');
      } else if (parts[3] === 'event_occured') {
        const siid = Number(parts[4]);
        for (const a of (body['params'] as Obj)['arguments'] as Obj[]) check(did, siid, a['piid'] as number, a['value'], 'event argument');
      } else if (parts[3] === 'rpc' && 'result' in body) {
        const result = body['result'];
        if (Array.isArray(result)) {
          for (const r of result as Obj[]) if (r['code'] === 0 && 'value' in r) check(r['did'] as string, r['siid'] as number, r['piid'] as number, r['value'], 'rpc reply');
        } else {
          const r = result as Obj;
          const action = modelOf.get(r['did'] as string)?.services.find((s) => s.siid === r['siid'])?.actions.find((a) => a.aiid === r['aiid']);
          ((r['out'] as unknown[] | undefined) ?? []).forEach((v, i) => check(r['did'] as string, r['siid'] as number, action!.out[i]!, v, 'action out'));
        }
      }
    }
    expect(problems).toEqual([]);
    // Not vacuous: every model answered the reads, and every model with behaviours reported on its own.
    for (const m of catalog.models) {
      expect(checked.get(`${m.model} rpc reply`) ?? 0, m.model).toBeGreaterThan(0);
      if (m.behaviours.length) expect(checked.get(`${m.model} properties_changed`) ?? 0, m.model).toBeGreaterThan(0);
    }
    expect([...checked.keys()].some((k) => k.endsWith('event argument'))).toBe(true);
  });
});
