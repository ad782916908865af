/**
 * Semantic checks on a device model that the structural schema cannot express: unique iids,
 * device-information first, ranges that fit their format, and every reference resolving.
 */
import type { ZodError } from 'zod';
import { formatPath, type Problem } from '../errors.js';
import { DeviceModelSpec, type DeviceModel, type PropertySpec, type ServiceSpec } from './schema.js';

export const INTEGER_FORMATS: ReadonlySet<string> = new Set(['uint8', 'uint16', 'uint32', 'int8', 'int16', 'int32', 'int64']);
export const FORMAT_LIMITS: Readonly<Record<string, readonly [number, number]>> = {
  uint8: [0, 255], uint16: [0, 65535], uint32: [0, 4294967295],
  int8: [-128, 127], int16: [-32768, 32767], int32: [-2147483648, 2147483647],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/**
 * Units MIoT-Spec-V2 instances use (reference §1.3: the spec doc's list, units seen in real
 * instances, and those hass-xiaomi-miot maps). Anything else (`kPa`, `V`) is not a MIoT unit.
 */
export const MIOT_UNITS: readonly string[] = [
  'percentage', 'celsius', 'fahrenheit', 'kelvin', 'seconds', 'minutes', 'hours', 'days', 'pascal', 'arcdegrees', 'rgb',
  'none', 'watt', 'kWh', 'lux', 'μg/m3', 'mg/m3', 'p/m3',
];

/** Problems from a zod error (parse with `reportInput: true` so messages can say what was found). */
export function zodProblems(file: string, err: ZodError, prefix: ReadonlyArray<PropertyKey> = []): Problem[] {
  return err.issues.map((i) => {
    const input = (i as { input?: unknown }).input;
    const shown = input === undefined || i.code === 'unrecognized_keys' ? ''
      : typeof input === 'object' && input !== null ? '' : `, got ${JSON.stringify(input)}`;
    return { file, path: formatPath([...prefix, ...i.path]), message: `${i.message}${shown}` };
  });
}

/** A problem inside one document, before it is tied to a file. */
export interface Finding { path: string; message: string }

/** Parse and check one device model (every service spelled out); returns the model or every problem found. */
export function checkDeviceModel(file: string, doc: unknown): { model?: DeviceModel; problems: Problem[] } {
  const parsed = DeviceModelSpec.safeParse(doc, { reportInput: true });
  if (!parsed.success) return { problems: zodProblems(file, parsed.error) };
  const model = parsed.data;
  const findings: Finding[] = [];
  dupes(model.services.map((s) => s.siid), (v, i) => findings.push({ path: `services[${i}].siid`, message: `duplicate siid ${v}` }));
  findings.push(...modelFindings(model));
  return findings.length ? { problems: findings.map((f) => ({ file, ...f })) } : { model, problems: [] };
}

/**
 * The checks of a whole model that its structure cannot express (all but the uniqueness of siids,
 * which the caller reports: it knows where each service came from).
 */
export function modelFindings(model: DeviceModel): Finding[] {
  const findings: Finding[] = [];
  const add = (path: string, message: string): void => { findings.push({ path, message }); };

  const urnProduct = model.urn.split(':')[5];
  const [vendor, , version] = model.model.split('.');
  if (urnProduct !== `${vendor}-${version}`) {
    add('urn', `vendor-product "${urnProduct}" does not match model "${model.model}" (expected "${vendor}-${version}")`);
  }
  const first = model.services[0];
  if (!first || first.siid !== 1 || first.name !== 'device-information') {
    add('services[0]', 'the first service must be device-information with siid 1 (MIoT-Spec-V2)');
  }
  if (model.category === 'gateway' && model.transport !== 'wifi') add('transport', 'a gateway must be a wifi device');
  if (model.transport !== 'wifi' && model.category !== 'sensor') {
    add('transport', `only sensors are modelled as ${model.transport} children of a gateway`);
  }

  model.services.forEach((svc, si) => checkService(svc, `services[${si}]`, add));

  const props = new Map<string, PropertySpec>();
  const actions = new Set<string>();
  const events = new Set<string>();
  for (const svc of model.services) {
    for (const p of svc.properties) props.set(`${svc.siid}.${p.piid}`, p);
    for (const a of svc.actions) actions.add(`${svc.siid}.${a.aiid}`);
    for (const e of svc.events) events.add(`${svc.siid}.${e.eiid}`);
  }
  const refCheck = (path: string, kind: 'property' | 'action' | 'event', ref: unknown): void => {
    if (typeof ref !== 'string' || !/^\d+\.\d+$/.test(ref)) return;
    const set = kind === 'property' ? props : kind === 'action' ? actions : events;
    if (!set.has(ref)) add(path, `${kind} ${ref} does not exist in this model`);
  };
  model.services.forEach((svc, si) => svc.actions.forEach((a, ai) => {
    a.effect?.set?.forEach((s, k) => refCheck(`services[${si}].actions[${ai}].effect.set[${k}].property`, 'property', s.property));
    if (a.effect?.toggle) {
      refCheck(`services[${si}].actions[${ai}].effect.toggle`, 'property', a.effect.toggle);
      const p = props.get(a.effect.toggle);
      if (p && p.format !== 'bool') add(`services[${si}].actions[${ai}].effect.toggle`, `toggle needs a bool property, ${a.effect.toggle} is ${p.format}`);
    }
  }));
  model.behaviours.forEach((b, bi) => {
    for (const [key, value] of Object.entries(b)) {
      const path = `behaviours[${bi}].${key}`;
      const kind = refKind(key);
      if (!kind) continue;
      if (Array.isArray(value)) value.forEach((v, k) => refCheck(`${path}[${k}]`, kind, v));
      else refCheck(path, kind, value);
    }
    if (b.use === 'wash-cycle' && b.door) refCheck(`behaviours[${bi}].door.property`, 'property', b.door.property);
    if (b.use === 'climate-control' || b.use === 'power-draw' || b.use === 'wash-cycle') {
      const on = props.get(b.on);
      if (on && on.format !== 'bool') add(`behaviours[${bi}].on`, `expected a bool property, ${b.on} is ${on.format}`);
    }
  });
  return findings;
}

function refKind(key: string): 'property' | 'action' | 'event' | undefined {
  if (key.endsWith('Action')) return 'action';
  if (key.endsWith('Event') || key === 'event') return 'event';
  if (['property', 'properties', 'textProperty', 'userProperty', 'on', 'quantity', 'setpoint', 'status', 'mode', 'leftTime', 'battery', 'chargingState',
    'playingState', 'power', 'energy', 'brightness', 'state', 'method', 'position', 'operation', 'time', 'operator', 'temperature', 'target'].includes(key)) return 'property';
  return undefined;
}

/** Calls `report` for each value seen before (with its index). */
export function dupes(values: number[], report: (v: number, i: number) => void): void {
  const seen = new Set<number>();
  values.forEach((v, i) => { if (seen.has(v)) report(v, i); seen.add(v); });
}

/** The checks of one service on its own: unique iids, ranges that fit their format, arguments that exist. */
export function checkService(svc: ServiceSpec, at: string, add: (path: string, msg: string) => void): void {
  dupes(svc.properties.map((p) => p.piid), (v, i) => add(`${at}.properties[${i}].piid`, `duplicate piid ${v} in siid ${svc.siid}`));
  dupes(svc.actions.map((a) => a.aiid), (v, i) => add(`${at}.actions[${i}].aiid`, `duplicate aiid ${v} in siid ${svc.siid}`));
  dupes(svc.events.map((e) => e.eiid), (v, i) => add(`${at}.events[${i}].eiid`, `duplicate eiid ${v} in siid ${svc.siid}`));
  const piids = new Set(svc.properties.map((p) => p.piid));
  svc.properties.forEach((p, pi) => {
    const path = `${at}.properties[${pi}]`;
    const numeric = p.format !== 'bool' && p.format !== 'string';
    const range = p['value-range'];
    if (range && !numeric) add(`${path}.value-range`, `value-range needs a numeric format, got ${p.format}`);
    if (range && range[0] > range[1]) add(`${path}.value-range`, `min ${range[0]} is above max ${range[1]}`);
    const limits = FORMAT_LIMITS[p.format];
    if (range && limits && (range[0] < limits[0] || range[1] > limits[1])) {
      add(`${path}.value-range`, `[${range[0]}, ${range[1]}] does not fit ${p.format} [${limits[0]}, ${limits[1]}]`);
    }
    if (p['value-list'] && !INTEGER_FORMATS.has(p.format)) add(`${path}.value-list`, `value-list needs an integer format, got ${p.format}`);
    if (p['value-list'] && range) add(path, 'a property has either value-range or value-list, not both');
    // Reported values are snapped to the step: a float without one would go out with binary noise.
    if (p.format === 'float' && !range) add(path, 'a float property needs a value-range [min, max, step]');
    if (p.unit !== undefined && !MIOT_UNITS.includes(p.unit)) add(`${path}.unit`, `"${p.unit}" is not a MIoT unit (expected one of ${MIOT_UNITS.join(', ')})`);
    if (p.default !== undefined) {
      const why = valueProblem(p, p.default);
      if (why) add(`${path}.default`, why);
    }
  });
  svc.actions.forEach((a, ai) => {
    [...a.in, ...a.out].forEach((piid) => {
      if (!piids.has(piid)) add(`${at}.actions[${ai}]`, `argument piid ${piid} does not exist in siid ${svc.siid}`);
    });
  });
  svc.events.forEach((e, ei) => {
    e.arguments.forEach((piid) => {
      if (!piids.has(piid)) add(`${at}.events[${ei}].arguments`, `argument piid ${piid} does not exist in siid ${svc.siid}`);
    });
  });
}

/** Why a value does not fit a property (format, range, step, list), or undefined when it does. */
export function valueProblem(p: PropertySpec, value: unknown): string | undefined {
  if (p.format === 'bool') return typeof value === 'boolean' ? undefined : `expected a bool, got ${describe(value)}`;
  if (p.format === 'string') return typeof value === 'string' ? undefined : `expected a string, got ${describe(value)}`;
  if (typeof value !== 'number' || !Number.isFinite(value)) return `expected a number, got ${describe(value)}`;
  if (INTEGER_FORMATS.has(p.format) && !Number.isInteger(value)) return `expected an integer (${p.format}), got ${value}`;
  const limits = FORMAT_LIMITS[p.format];
  if (limits && (value < limits[0] || value > limits[1])) return `${value} does not fit ${p.format}`;
  const list = p['value-list'];
  if (list && !list.some((v) => v.value === value)) {
    return `${value} is not one of ${list.map((v) => `${v.value} (${v.description})`).join(', ')}`;
  }
  const range = p['value-range'];
  if (range) {
    const [min, max, step] = range;
    if (value < min || value > max) return `${value} is outside [${min}, ${max}]`;
    const k = (value - min) / step;
    if (Math.abs(k - Math.round(k)) > 1e-6) return `${value} is not a multiple of step ${step} from ${min}`;
  }
  return undefined;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `"${v.length > 40 ? v.slice(0, 40) + '…' : v}"`;
  if (typeof v === 'object') return Array.isArray(v) ? 'an array' : 'an object';
  return `${typeof v} ${String(v)}`;
}
