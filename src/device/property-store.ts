/**
 * A device's MIoT property values, keyed "siid.piid". Enforces access (read/write), format,
 * range, step and value-list on the RPC path; behaviours update values through `update()`, which
 * snaps to the spec instead of refusing, so every stored (and so reported) value fits its spec.
 */
import type { DeviceModel, PropertySpec } from '../catalog/schema.js';
import { FORMAT_LIMITS, valueProblem } from '../catalog/validate.js';
import { MiotCode, PropertyFrame, type Scalar, type WireProfile } from '../contract/wire.js';

export interface Identity {
  did: string;
  model: string;
  firmware: string;
  serial: string;
}

/**
 * A model's properties, built once per model and shared by its devices: each property has an
 * index, and a device keeps its values in an array by that index (a fleet holds hundreds of
 * thousands of devices: a Map per device for a dozen values cost about half a kilobyte each).
 */
interface ModelProperties {
  index: Map<string, number>;
  keys: string[];
  specs: PropertySpec[];
  /** Whether each property is reported when it changes (access includes "notify"). */
  notify: boolean[];
  siid: number[];
  piid: number[];
  /** How each property's values are made to fit it (see `Rule`). */
  rules: Rule[];
  /** Each property's report frame, by wire profile (made at the first report in that profile). */
  frames: Partial<Record<WireProfile, PropertyFrame[]>>;
}

const BOOL = 0;
const STRING = 1;
const FLOAT = 2;
const INTEGER = 3;

/**
 * A property's spec as conforming a value needs it, in one shape for every property: the catalogue's
 * specs come in many shapes (with or without a range, a value-list, a unit), and reading their
 * fields at every report made each read a lookup among those shapes.
 */
export class Rule {
  /** BOOL, STRING, FLOAT or INTEGER. */
  readonly kind: number;
  readonly ranged: boolean;
  readonly min: number;
  readonly max: number;
  readonly step: number;
  /** 10 to the power of the step's decimals. */
  readonly scale: number;
  /** The integer format's bounds (unbounded when it has none). */
  readonly lo: number;
  readonly hi: number;
  readonly list: ReadonlyArray<{ value: number }> | null;

  constructor(spec: PropertySpec) {
    this.kind = spec.format === 'bool' ? BOOL : spec.format === 'string' ? STRING : spec.format === 'float' ? FLOAT : INTEGER;
    const range = spec['value-range'];
    this.ranged = range !== undefined;
    this.min = range ? range[0] : 0;
    this.max = range ? range[1] : 0;
    this.step = range ? range[2] : 1;
    this.scale = range ? stepScale(range[2]) : 1;
    const limits = FORMAT_LIMITS[spec.format];
    this.lo = limits ? limits[0] : -Infinity;
    this.hi = limits ? limits[1] : Infinity;
    this.list = spec['value-list'] ?? null;
  }
}

/** A numeric property's rule (kind FLOAT or INTEGER), as `conformNumber` takes it. */
export type NumberRule = Rule;

const propertiesByModel = new WeakMap<DeviceModel, ModelProperties>();

function propertiesOf(model: DeviceModel): ModelProperties {
  let m = propertiesByModel.get(model);
  if (!m) {
    m = { index: new Map(), keys: [], specs: [], notify: [], siid: [], piid: [], rules: [], frames: {} };
    for (const svc of model.services) {
      for (const p of svc.properties) {
        const key = `${svc.siid}.${p.piid}`;
        m.index.set(key, m.keys.length);
        m.keys.push(key);
        m.specs.push(p);
        m.notify.push(p.access.includes('notify'));
        m.siid.push(svc.siid);
        m.piid.push(p.piid);
        m.rules.push(new Rule(p));
      }
    }
    propertiesByModel.set(model, m);
  }
  return m;
}

/**
 * A property whose value is computed ahead rather than stored at each change (a random walk's
 * reading between its reports): the store asks it to bring the value up to now before anyone
 * reads or writes it, and tells it when the property is reported.
 */
export interface DeferredValue {
  /** Store the value as of now. */
  settle(): void;
  /** The property was reported (its last reported value changed). */
  reported(): void;
}

export class PropertyStore {
  private readonly props: ModelProperties;
  private readonly values: Scalar[];
  /** The value last reported of each property (allocated at the first report). */
  private reported: Array<Scalar | undefined> | null = null;
  /** Properties whose values are computed ahead, by index (allocated at the first). */
  private deferred: Array<DeferredValue | undefined> | null = null;

  constructor(model: DeviceModel, identity: Identity) {
    this.props = propertiesOf(model);
    const { keys, specs, rules } = this.props;
    this.values = specs.map((p, i) => initialValue(p, rules[i]!, keys[i]!.startsWith('1.') ? identity : undefined, model));
  }

  spec(key: string): PropertySpec | undefined {
    const i = this.props.index.get(key);
    return i === undefined ? undefined : this.props.specs[i];
  }

  has(key: string): boolean { return this.props.index.has(key); }
  keys(): IterableIterator<string> { return this.props.keys.values(); }
  /** How many properties the model has. */
  get size(): number { return this.props.keys.length; }

  /** The property's index in this model (throws for an unknown key). */
  indexOf(key: string): number {
    const i = this.props.index.get(key);
    if (i === undefined) throw new RangeError(`no property ${key}`);
    return i;
  }

  /** The index of a property that is reported when it changes (access includes "notify"), or -1. */
  notifying(key: string): number {
    const i = this.props.index.get(key);
    return i !== undefined && this.props.notify[i]! ? i : -1;
  }

  /** The current value of the property at index `i`. */
  at(i: number): Scalar {
    if (this.deferred !== null) this.deferred[i]?.settle();
    return this.values[i]!;
  }

  /** Hand property `i`'s value to `source` (undefined: back to the store), see `DeferredValue`. */
  defer(i: number, source: DeferredValue | undefined): void {
    (this.deferred ??= new Array<DeferredValue | undefined>(this.props.keys.length).fill(undefined))[i] = source;
  }

  /** The service and property ids of a key. */
  siid(i: number): number { return this.props.siid[i]!; }
  piid(i: number): number { return this.props.piid[i]!; }

  /** The report frame of the property at index `i` in `profile` (one per model property, shared by its devices). */
  frame(i: number, profile: WireProfile): PropertyFrame {
    const props = this.props;
    const frames = (props.frames[profile] ??= props.siid.map((siid, k) => new PropertyFrame(profile, siid, props.piid[k]!)));
    return frames[i]!;
  }

  /** Current value (internal read; ignores access). */
  get(key: string): Scalar {
    return this.at(this.indexOf(key));
  }

  num(key: string): number {
    const v = this.get(key);
    return typeof v === 'number' ? v : Number(v);
  }

  /** The value last reported for a property, or undefined if never. */
  lastReported(key: string): Scalar | undefined {
    const i = this.props.index.get(key);
    return i === undefined ? undefined : this.lastReportedAt(i);
  }

  lastReportedAt(i: number): Scalar | undefined {
    return this.reported === null ? undefined : this.reported[i];
  }

  /** Whether the property at index `i` is reported when it changes. */
  notifiesAt(i: number): boolean { return this.props.notify[i]!; }

  /** The property at index `i` was reported with `value`. */
  markReported(i: number, value: Scalar): void {
    (this.reported ??= new Array<Scalar | undefined>(this.props.keys.length).fill(undefined))[i] = value;
    if (this.deferred !== null) this.deferred[i]?.reported();
  }

  /** RPC read: code 0 with the value, or -4003 / -4001. */
  read(siid: number, piid: number): { code: number; value?: Scalar } {
    const i = this.props.index.get(`${siid}.${piid}`);
    if (i === undefined) return { code: MiotCode.NOT_FOUND };
    if (!this.props.specs[i]!.access.includes('read')) return { code: MiotCode.NOT_READABLE };
    return { code: MiotCode.OK, value: this.at(i) };
  }

  /** RPC write check without applying: 0, -4003, -4002 or -4005 with a reason. */
  checkWrite(siid: number, piid: number, value: unknown): { code: number; reason?: string } {
    const spec = this.spec(`${siid}.${piid}`);
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
    return this.updateAt(this.indexOf(key), value);
  }

  /** `update` of the property at index `i`. */
  updateAt(i: number, value: Scalar): boolean {
    if (this.deferred !== null) this.deferred[i]?.settle();
    const before = this.values[i];
    return this.putAt(i, value) !== before;
  }

  /**
   * Store `value` (made to fit) without asking the property's `DeferredValue`: its own write,
   * bringing the value up to now. Returns the value stored.
   */
  putAt(i: number, value: Scalar): Scalar {
    const v = conformTo(this.props.rules[i]!, value);
    this.values[i] = v;
    return v;
  }

  /**
   * `value` as property `key` may carry it: the format's type and bounds, the range clamped and
   * snapped to its step, the nearest value of a value-list. Every value a device reports (a
   * change, an event argument, an RPC reply) passes through here.
   */
  conformed(key: string, value: Scalar): Scalar {
    return this.conformedAt(this.indexOf(key), value);
  }

  /** Property `i`'s rule when it holds numbers (for `conformNumber`), else null. */
  numberRuleAt(i: number): NumberRule | null {
    const rule = this.props.rules[i]!;
    return rule.kind === FLOAT || rule.kind === INTEGER ? rule : null;
  }

  /** `conformed` by the property's index. */
  conformedAt(i: number, value: Scalar): Scalar {
    return conformTo(this.props.rules[i]!, value);
  }

  /** All values, for snapshots and the CLI. */
  entries(): Array<[string, Scalar]> { return this.props.keys.map((k, i) => [k, this.at(i)]); }
}

/** `value` made to fit the property whose rule this is (see `PropertyStore.conformed`). */
function conformTo(rule: Rule, value: Scalar): Scalar {
  const kind = rule.kind;
  if (kind === BOOL) return Boolean(value);
  if (kind === STRING) return String(value);
  return conformNumber(rule, typeof value === 'number' ? value : Number(value));
}

/**
 * A number made to fit a numeric property (`PropertyStore.numberRuleAt`): what `conformed` makes
 * of it, a number in and out (a behaviour that computes many values ahead calls it in a loop).
 */
export function conformNumber(rule: NumberRule, value: number): number {
  let n = Number.isFinite(value) ? value : 0;
  if (rule.ranged) {
    const { min, max, step } = rule;
    n = Math.min(max, Math.max(min, n));
    n = min + Math.round((n - min) / step) * step;
    n = Math.min(max, n);
    // Drop binary noise (0.1 + 0.2) at the step's precision.
    const scale = rule.scale;
    n = Math.round(n * scale) / scale;
  }
  if (rule.kind === INTEGER) {
    n = Math.round(n);
    n = Math.min(rule.hi, Math.max(rule.lo, n));
  }
  const list = rule.list;
  if (list !== null) {
    let listed = false;
    for (const v of list) if (v.value === n) { listed = true; break; }
    if (!listed) {
      let best = list[0]!.value;
      for (const v of list) if (Math.abs(v.value - n) < Math.abs(best - n)) best = v.value;
      n = best;
    }
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

function initialValue(p: PropertySpec, rule: Rule, identity: Identity | undefined, model: DeviceModel): Scalar {
  if (identity) {
    if (p.name === 'manufacturer') return model.model.split('.')[0]!;
    if (p.name === 'model') return identity.model;
    if (p.name === 'serial-number' || p.name === 'serial-no') return identity.serial;
    if (p.name === 'firmware-revision') return identity.firmware;
  }
  if (p.default !== undefined) return conformTo(rule, p.default);
  if (p.format === 'bool') return false;
  if (p.format === 'string') return '';
  if (p['value-list']) return p['value-list'][0]!.value;
  if (p['value-range']) return p['value-range'][0];
  return 0;
}
