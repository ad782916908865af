/**
 * One simulated device: a MIoT property store, its behaviours, RPC handling and the reporting
 * rules. It knows nothing about MQTT sessions or the broker: what it says leaves through a
 * `DeviceLink`, and everything it does runs on the injected scheduler and RNG.
 */
import type { DeviceModel, PropertySpec } from '../catalog/schema.js';
import type { Random } from '../contract/random.js';
import type { Scheduler, TimerHandle } from '../contract/clock.js';
import { createBehaviour, isTelemetry, type Behaviour, type BehaviourContext, type UserInput } from './behaviours/index.js';
import { PropertyStore, type DeferredValue, type NumberRule } from './property-store.js';
import { EventLimiter, PropertyCoalescer } from './reporting.js';
import { executeRpc, type RpcTarget } from './rpc.js';
import {
  DEFAULT_WIRE, encodeEvent, MiotCode, topics, type EventArgument, type RpcResponse, type Scalar, type StatePayload,
  type PropertyFrame, type WireMessage, type WireProfile,
} from '../contract/wire.js';

export interface PublishOptions { qos: 0 | 1; retain: boolean }

/** Where a device's messages go: an MQTT session in the simulator, a list in tests. */
export interface DeviceLink {
  publish(topic: string, payload: string, opts: PublishOptions): void;
  /**
   * A property change (QoS 0, not retained), given as its frame's parts: what `publish` of
   * `frame.topic(did)` and `frame.payload(didJson, value, ts)` does, for a link that writes them
   * without making the strings (a fleet session). Optional.
   */
  publishProperty?(frame: PropertyFrame, did: string, didJson: string, value: Scalar, ts: number): void;
}

export interface DeviceOptions {
  did: string;
  model: DeviceModel;
  /** Owner's user id: decimal digits, as the cloud's (state messages carry it as a number). */
  uid: string;
  /** Gateway did for Zigbee/BLE children. */
  parentId?: string;
  scheduler: Scheduler;
  rng: Random;
  firmware?: string;
  /** Household liveliness multiplier at the current virtual time (default: always 1). */
  activity?: () => number;
  /** The most `activity` ever returns (default 1): behaviours' Poisson streams are thinned by it. */
  peakActivity?: number;
  /** QoS 1 messages (events) kept while offline, sent when back online; the oldest go first when full. Default 100. */
  offlineBuffer?: number;
  /** Run the behaviours that only produce periodic readings (see `isTelemetry`). Default true. */
  telemetry?: boolean;
  /** Xiaomi format of property and event messages: the cloud push or the central hub. Default "cloud". */
  wire?: WireProfile;
}

export interface DeviceCounters {
  published: number;
  /** QoS 0 messages produced while no link was attached (device offline): not kept. */
  droppedOffline: number;
  /** QoS 1 messages kept while offline and sent later. */
  buffered: number;
  /** QoS 1 messages dropped because the offline buffer was full (the oldest go). */
  bufferOverflow: number;
  rpcRequests: number;
  rpcErrors: number;
}

/**
 * Whether the cloud publishes online/offline state for devices of this model: not for BLE
 * children (`blt.*` dids; reference §2.3, §3.3), which the platform counts online while their
 * gateway is.
 */
export function announcesState(model: DeviceModel): boolean {
  return model.transport !== 'ble';
}

const eventArgsByModel = new WeakMap<DeviceModel, Map<string, number[]>>();

/** How a property report is published (one object for every report: publish never changes it). */
const PROPERTY_REPORT: PublishOptions = Object.freeze({ qos: 0, retain: false });

function eventArgsOf(model: DeviceModel): Map<string, number[]> {
  let args = eventArgsByModel.get(model);
  if (!args) {
    args = new Map();
    for (const svc of model.services) for (const e of svc.events) args.set(`${svc.siid}.${e.eiid}`, e.arguments);
    eventArgsByModel.set(model, args);
  }
  return args;
}

export class Device implements RpcTarget {
  readonly did: string;
  /** `JSON.stringify(did)`, as every property report writes it. */
  private readonly didJson: string;
  readonly model: DeviceModel;
  readonly uid: string;
  readonly parentId: string | undefined;
  readonly wire: WireProfile;
  readonly store: PropertyStore;
  readonly counters: DeviceCounters = { published: 0, droppedOffline: 0, buffered: 0, bufferOverflow: 0, rpcRequests: 0, rpcErrors: 0 };
  private link: DeviceLink | null = null;
  private readonly scheduler: Scheduler;
  private readonly rng: Random;
  private readonly telemetry: boolean;
  private readonly activity: () => number;
  private readonly peakActivity: number;
  /** The behaviours' periodic timers (cancelled when the device stops). */
  private readonly periodic: TimerHandle[] = [];
  /** Bumped when the device stops: one-off timers set before do nothing when they come due. */
  private generation_ = 0;
  private readonly behaviours: Behaviour[] = [];
  private readonly coalescer: PropertyCoalescer;
  private readonly events: EventLimiter;
  /** The model's events' argument piids, by "siid.eiid" (shared by the model's devices). */
  private readonly eventArgs: Map<string, number[]>;
  private started = false;
  private held: Array<[string, string, PublishOptions]> | null = null;
  /** QoS 1 messages waiting for the link to come back (bounded). */
  private readonly offline: Array<[string, string, PublishOptions]> = [];
  private readonly offlineLimit: number;
  /** Sequence number of the latest event (events are numbered from 1). */
  private eventSeq = 0;

  constructor(opts: DeviceOptions) {
    this.did = opts.did;
    this.didJson = JSON.stringify(opts.did);
    this.model = opts.model;
    this.uid = opts.uid;
    if (!/^\d{1,15}$/.test(opts.uid)) throw new RangeError(`device ${opts.did}: owner uid must be decimal digits (a cloud user id), got "${opts.uid}"`);
    this.parentId = opts.parentId;
    this.wire = opts.wire ?? DEFAULT_WIRE;
    this.scheduler = opts.scheduler;
    this.rng = opts.rng;
    this.telemetry = opts.telemetry ?? true;
    this.activity = opts.activity ?? (() => 1);
    this.peakActivity = opts.peakActivity ?? 1;
    this.offlineLimit = opts.offlineBuffer ?? 100;
    this.store = new PropertyStore(opts.model, {
      did: opts.did, model: opts.model.model, firmware: opts.firmware ?? '1.0.0_0001', serial: opts.rng.fork('serial').hex(12),
    });
    this.eventArgs = eventArgsOf(opts.model);
    this.coalescer = new PropertyCoalescer(this.scheduler, this.store.size, (i, value) => this.sendProperty(i, value));
    this.events = new EventLimiter(this.scheduler, (siid, eiid, args) => this.sendEvent(siid, eiid, args));
  }

  get category(): DeviceModel['category'] { return this.model.category; }
  get online(): boolean { return this.link !== null; }
  get eventsDropped(): number { return this.events.dropped; }
  /** Sequence number of the latest event sent or buffered (0 before the first). */
  get lastEventSeq(): number { return this.eventSeq; }
  /** QoS 1 messages waiting in the offline buffer. */
  get bufferedNow(): number { return this.offline.length; }

  /** Start behaviours (idempotent). Behaviours run whether or not a link is attached. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.model.behaviours.forEach((spec, i) => {
      // Each behaviour has its own random stream, so leaving some out changes nothing for the rest.
      if (!this.telemetry && isTelemetry(spec)) return;
      this.behaviours.push(createBehaviour(spec, new DeviceContext(this, this.scheduler, this.rng.fork('behaviour', i, spec.use))));
    });
  }

  stop(): void {
    for (const b of this.behaviours) b.onStop?.();
    for (const t of this.periodic) t.cancel();
    this.periodic.length = 0;
    this.generation_++;
    this.coalescer.stop();
    this.events.stop();
    this.started = false;
    this.behaviours.length = 0;
  }

  attach(link: DeviceLink): void { this.link = link; }
  detach(): void { this.link = null; }

  /** Install a firmware version (an OTA update): the `firmware-revision` property changes. */
  setFirmware(version: string): void {
    const info = this.model.services.find((svc) => svc.siid === 1);
    const p = info?.properties.find((x) => x.name === 'firmware-revision');
    if (p) this.store.update(`1.${p.piid}`, version);
  }

  /** Send what the offline buffer kept, in order (the session calls it once it announced itself). */
  flushOffline(): void {
    while (this.link && this.offline.length) {
      const [topic, payload, opts] = this.offline.shift()!;
      this.counters.published++;
      this.link.publish(topic, payload, opts);
    }
  }

  /** Whether this device publishes online/offline state (see `announcesState`). */
  get announcesState(): boolean { return announcesState(this.model); }

  statePayload(event: 'online' | 'offline'): StatePayload {
    const p: StatePayload = {
      device_id: this.did, device_name: this.model.name, event, model: this.model.model, timestamp: this.scheduler.now(), uid: Number(this.uid),
    };
    if (this.parentId) p.parent_id = this.parentId;
    return p;
  }

  /** A person interacts with the device itself (speaks to a speaker): behaviours react. */
  userInput(input: UserInput): void {
    for (const b of this.behaviours) b.onUser?.(input);
  }

  /** Whether any behaviour of this device reacts to `kind` input (e.g. a voice assistant). */
  accepts(kind: UserInput['kind']): boolean {
    return kind === 'voice' && this.model.behaviours.some((b) => b.use === 'voice-assistant');
  }

  /** Handle a raw `down/rpc` payload and publish the reply on `up/rpc`. */
  handleRpc(raw: string): RpcResponse {
    this.counters.rpcRequests++;
    // The reply goes out first; what the request changed is reported right after it.
    const held: Array<[string, string, PublishOptions]> = [];
    this.held = held;
    let res: RpcResponse;
    try {
      res = executeRpc(this, raw);
    } finally {
      this.held = null;
    }
    if ('error' in res) this.counters.rpcErrors++;
    this.publish(topics.rpcUp(this.did), JSON.stringify(res), { qos: 1, retain: false });
    for (const [topic, payload, opts] of held) this.publish(topic, payload, opts);
    return res;
  }

  // RpcTarget --------------------------------------------------------------------------------
  read(siid: number, piid: number): { code: number; value?: Scalar } { return this.store.read(siid, piid); }
  checkWrite(siid: number, piid: number, value: unknown): { code: number } { return this.store.checkWrite(siid, piid, value); }

  applyWrites(items: Array<{ siid: number; piid: number; value: Scalar }>): void {
    for (const { siid, piid, value } of items) this.setProperty(`${siid}.${piid}`, value, undefined);
    for (const { siid, piid, value } of items) for (const b of this.behaviours) b.onSet?.(`${siid}.${piid}`, value);
  }

  action(siid: number, aiid: number): { spec: import('../catalog/schema.js').ActionSpec; inSpecs: PropertySpec[] } | undefined {
    const svc = this.model.services.find((s) => s.siid === siid);
    const spec = svc?.actions.find((a) => a.aiid === aiid);
    if (!svc || !spec) return undefined;
    return { spec, inSpecs: spec.in.map((piid) => this.store.spec(`${siid}.${piid}`)!) };
  }

  runAction(siid: number, aiid: number, args: Scalar[]): { code: number; out: Scalar[] } {
    const found = this.action(siid, aiid)!;
    const ref = `${siid}.${aiid}`;
    const effect = found.spec.effect;
    for (const s of effect?.set ?? []) this.setProperty(s.property, s.value, undefined);
    if (effect?.toggle) this.setProperty(effect.toggle, this.store.get(effect.toggle) !== true, undefined);
    let code: number = MiotCode.OK;
    for (const b of this.behaviours) {
      const r = b.onAction?.(ref, args);
      if (typeof r === 'number' && r !== MiotCode.OK) code = r;
    }
    const out = found.spec.out.map((piid) => this.store.get(`${siid}.${piid}`));
    return { code, out };
  }

  // Internals --------------------------------------------------------------------------------
  /** @internal A periodic timer the device owns (cancelled when it stops). */
  own(h: TimerHandle): TimerHandle {
    this.periodic.push(h);
    return h;
  }

  /**
   * @internal A one-off timer the device owns: if the device stops before it comes due, it does
   * nothing (no set of pending timers per device to keep, a fleet has hundreds of thousands).
   */
  ownAfter(ms: number, fn: () => void): TimerHandle {
    if (this.scheduler.afterWhile !== undefined) return this.scheduler.afterWhile(ms, fn, this);
    const generation = this.generation_;
    return this.scheduler.after(ms, () => { if (generation === this.generation_) fn(); });
  }

  /** @internal How many times the device stopped (see `ownAfter`). */
  get generation(): number { return this.generation_; }

  /** @internal The value last reported for a property. */
  lastReported(ref: string): Scalar | undefined { return this.store.lastReported(ref); }

  /** @internal How lively the household is now. */
  liveliness(): number { return this.activity(); }

  /** @internal The most `liveliness()` ever returns. */
  get peakLiveliness(): number { return this.peakActivity; }

  /** @internal Whether the scenario's readings (telemetry) run. */
  get readings(): boolean { return this.telemetry; }

  /** @internal Run one of the device's own actions, as its firmware would. */
  act(ref: string): void {
    const [siid, aiid] = ref.split('.').map(Number) as [number, number];
    if (this.action(siid, aiid)) this.runAction(siid, aiid, []);
  }

  /** @internal */
  setProperty(ref: string, value: Scalar, report: boolean | undefined): void {
    this.setPropertyAt(this.store.indexOf(ref), value, report);
  }

  /** @internal */
  reportProperty(ref: string): void {
    const i = this.store.notifying(ref);
    if (i >= 0) this.coalescer.report(i, this.store.at(i));
  }

  /** @internal `setProperty` by the property's index. */
  setPropertyAt(i: number, value: Scalar, report: boolean | undefined): void {
    const changed = this.store.updateAt(i, value);
    if (report ?? changed) this.reportPropertyAt(i);
  }

  /** @internal `reportProperty` by the property's index. */
  reportPropertyAt(i: number): void {
    if (this.store.notifiesAt(i)) this.coalescer.report(i, this.store.at(i));
  }

  /** @internal */
  emitEvent(ref: string, args?: Scalar[]): void {
    const piids = this.eventArgs.get(ref);
    if (!piids) throw new RangeError(`${this.model.model}: no event ${ref}`);
    const [siid, eiid] = ref.split('.').map(Number) as [number, number];
    // A behaviour's own argument values are made to fit their properties, as stored values are.
    const values = piids.map((piid, i) => {
      const key = `${siid}.${piid}`;
      const given = args?.[i];
      return { piid, value: given === undefined ? this.store.get(key) : this.store.conformed(key, given) };
    });
    this.events.emit(siid, eiid, values);
  }

  private sendProperty(i: number, value: Scalar): void {
    const store = this.store;
    store.markReported(i, value);
    // encodeProperty's output, from the model property's frame (written once per model).
    const frame = store.frame(i, this.wire);
    const link = this.link;
    if (link !== null && this.held === null && link.publishProperty !== undefined) {
      this.counters.published++;
      link.publishProperty(frame, this.did, this.didJson, value, this.scheduler.now());
      return;
    }
    this.publish(frame.topic(this.did), frame.payload(this.didJson, value, this.scheduler.now()), PROPERTY_REPORT);
  }

  private sendEvent(siid: number, eiid: number, args: EventArgument[]): void {
    const ev = { did: this.did, siid, eiid, arguments: args, ts: this.scheduler.now(), seq: ++this.eventSeq };
    this.send(encodeEvent(this.wire, ev), { qos: 1, retain: false });
  }

  private send(msg: WireMessage, opts: PublishOptions): void {
    this.publish(msg.topic, msg.payload, opts);
  }

  private publish(topic: string, payload: string, opts: PublishOptions): void {
    if (this.held) {
      this.held.push([topic, payload, opts]);
      return;
    }
    if (!this.link) {
      if (opts.qos === 1 && !opts.retain && this.offlineLimit > 0) {
        if (this.offline.length >= this.offlineLimit) {
          this.offline.shift();
          this.counters.bufferOverflow++;
        }
        this.offline.push([topic, payload, opts]);
        this.counters.buffered++;
      } else this.counters.droppedOffline++;
      return;
    }
    this.counters.published++;
    this.link.publish(topic, payload, opts);
  }
}

/**
 * What a behaviour sees of its device (BehaviourContext): one small object per behaviour whose
 * methods live on the prototype, not a dozen closures per device.
 */
class DeviceContext implements BehaviourContext {
  constructor(private readonly device: Device, readonly clock: Scheduler, readonly rng: Random) {}
  get(ref: string): Scalar { return this.device.store.get(ref); }
  num(ref: string): number { return this.device.store.num(ref); }
  set(ref: string, value: Scalar, opts?: { report?: boolean }): void { this.device.setProperty(ref, value, opts?.report); }
  report(ref: string): void { this.device.reportProperty(ref); }
  lastReported(ref: string): Scalar | undefined { return this.device.lastReported(ref); }
  index(ref: string): number { return this.device.store.indexOf(ref); }
  numAt(i: number): number { const v = this.device.store.at(i); return typeof v === 'number' ? v : Number(v); }
  setAt(i: number, value: Scalar, report?: boolean): void { this.device.setPropertyAt(i, value, report); }
  reportAt(i: number): void { this.device.reportPropertyAt(i); }
  lastReportedAt(i: number): Scalar | undefined { return this.device.store.lastReportedAt(i); }
  defer(i: number, source: DeferredValue | undefined): void { this.device.store.defer(i, source); }
  putAt(i: number, value: Scalar): Scalar { return this.device.store.putAt(i, value); }
  conformedAt(i: number, value: Scalar): Scalar { return this.device.store.conformedAt(i, value); }
  numberRuleAt(i: number): NumberRule | null { return this.device.store.numberRuleAt(i); }
  emit(ref: string, args?: Scalar[]): void { this.device.emitEvent(ref, args); }
  after(ms: number, fn: () => void): TimerHandle { return this.device.ownAfter(ms, fn); }
  every(ms: number, fn: () => void, first?: number): TimerHandle { return this.device.own(this.clock.every(ms, fn, first)); }
  activity(): number { return this.device.liveliness(); }
  get peakActivity(): number { return this.device.peakLiveliness; }
  get readings(): boolean { return this.device.readings; }
  act(ref: string): void { this.device.act(ref); }
}
