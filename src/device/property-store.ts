/**
 * A device's MIoT property values, keyed "siid.piid". Enforces access (read/write), format,
 * range, step and value-list on the RPC path; behaviours update values through `update()`, which
 * snaps to the spec instead of refusing, so every stored (and so reported) value fits its spec.
 */
import type { DeviceModel, PropertySpec } from '../catalog/schema.js';
import { FORMAT_LIMITS, valueProblem } from '../catalog/validate.js';
import { MiotCode, type Scalar } from '../contract/wire.js';

export interface Identity {
  did: string;
  model: string;
  firmware: string;
  serial: string;
}

/** A model's properties by key, built once per model and shared by its devices (keys included). */
const specsByModel = new WeakMap<DeviceModel, Map<string, PropertySpec>>();

function specsOf(model: DeviceModel): Map<string, PropertySpec> {
  let specs = specsByModel.get(model);
  if (!specs) {
    specs = new Map();
    for (const svc of model.services) for (const p of svc.properties) specs.set(`${svc.siid}.${p.piid}`, p);
    specsByModel.set(model, specs);
  }
  return specs;
}

export class PropertyStore {
  private readonly specs: Map<string, PropertySpec>;
  private readonly values = new Map<string, Scalar>();

  constructor(model: DeviceModel, identity: Identity) {
    this.specs = specsOf(model);
    for (const [key, p] of this.specs) this.values.set(key, initialValue(p, key.startsWith('1.') ? identity : undefined, model));
  }

  spec(key: string): PropertySpec | undefined { return this.specs.get(key); }
  has(key: string): boolean { return this.specs.has(key); }
  keys(): IterableIterator<string> { return this.specs.keys(); }

  /** Current value (internal read; ignores access). */
  get(key: string): Scalar {
    const v = this.values.get(key);
    if (v === undefined) throw new RangeError(`no property ${key}`);
    return v;
  }

  num(key: string): number {
    const v = this.get(key);
    return typeof v === 'number' ? v : Number(v);
  }

  /** RPC read: code 0 with the value, or -4003 / -4001. */
  read(siid: number, piid: number): { code: number; value?: Scalar } {
    const key = `${siid}.${piid}`;
    const spec = this.specs.get(key);
    if (!spec) return { code: MiotCode.NOT_FOUND };
    if (!spec.access.includes('read')) return { code: MiotCode.NOT_READABLE };
    return { code: MiotCode.OK, value: this.values.get(key)! };
  }

  /** RPC write check without applying: 0, -4003, -4002 or -4005 with a reason. */
  checkWrite(siid: number, piid: number, value: unknown): { code: number; reason?: string } {
    const spec = this.specs.get(`${siid}.${piid}`);
    if (!spec) return { code: MiotCode.NOT_FOUND, reason: `property ${siid}.${piid} does not exist` };
    if (!spec.access.includes('write')) return { code: MiotCode.NOT_WRITABLE, reason: `${spec.name} is not writable` };
    const why = valueProblem(spec, value);
    if (why) return { code: MiotCode.VALUE_ERROR, reason: `${spec.name}: ${why}` };
    return { code: MiotCode.OK };
  }

  /**
   * Set a value (behaviours, and RPC writes after `checkWrite`), made to fit the spec first (see
   * `conformed`); returns true when the stored value changed.
   */
  update(key: string, value: Scalar): boolean {
    const v = this.conformed(key, value);
    if (this.values.get(key) === v) return false;
    this.values.set(key, v);
    return true;
  }

  /**
   * `value` as property `key` may carry it: the format's type and bounds, the range clamped and
   * snapped to its step, the nearest value of a value-list. Every value a device reports (a
   * change, an event argument, an RPC reply) passes through here.
   */
  conformed(key: string, value: Scalar): Scalar {
    const spec = this.specs.get(key);
    if (!spec) throw new RangeError(`no property ${key}`);
    return conform(spec, value);
  }

  /** All values, for snapshots and the CLI. */
  entries(): Array<[string, Scalar]> { return [...this.values.entries()]; }
}

function conform(spec: PropertySpec, value: Scalar): Scalar {
  if (spec.format === 'bool') return Boolean(value);
  if (spec.format === 'string') return String(value);
  let n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n)) n = 0;
  const range = spec['value-range'];
  if (range) {
    const [min, max, step] = range;
    n = Math.min(max, Math.max(min, n));
    n = min + Math.round((n - min) / step) * step;
    n = Math.min(max, n);
    // Drop binary noise (0.1 + 0.2) at the step's precision.
    const scale = stepScale(step);
    n = Math.round(n * scale) / scale;
  }
  if (spec.format !== 'float') {
    n = Math.round(n);
    const limits = FORMAT_LIMITS[spec.format];
    if (limits) n = Math.min(limits[1], Math.max(limits[0], n));
  }
  const list = spec['value-list'];
  if (list && !list.some((v) => v.value === n)) {
    n = list.reduce((best, v) => (Math.abs(v.value - n) < Math.abs(best - n) ? v.value : best), list[0]!.value);
  }
  return n;
}

/** 10 to the power of a step's decimals, by step (a catalogue has a handful of steps). */
const scales = new Map<number, number>();

function stepScale(step: number): number {
  let scale = scales.get(step);
  if (scale === undefined) scales.set(step, (scale = 10 ** stepDecimals(step)));
  return scale;
}

function stepDecimals(step: number): number {
  const s = String(step);
  const i = s.indexOf('.');
  return i < 0 ? 0 : Math.min(10, s.length - i - 1);
}

function initialValue(p: PropertySpec, identity: Identity | undefined, model: DeviceModel): Scalar {
  if (identity) {
    if (p.name === 'manufacturer') return model.model.split('.')[0]!;
    if (p.name === 'model') return identity.model;
    if (p.name === 'serial-number' || p.name === 'serial-no') return identity.serial;
    if (p.name === 'firmware-revision') return identity.firmware;
  }
  if (p.default !== undefined) return conform(p, p.default);
  if (p.format === 'bool') return false;
  if (p.format === 'string') return '';
  if (p['value-list']) return p['value-list'][0]!.value;
  if (p['value-range']) return p['value-range'][0];
  return 0;
}
