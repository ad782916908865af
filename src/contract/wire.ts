/**
 * The MQTT wire contract (DESIGN.md "Topics and payloads"): Xiaomi's own topics and payloads, as
 * the reference client reads them (Xiaomi's Home Assistant integration, `miot/miot_mips.py`:
 * `MipsCloudClient` for the cloud push, `MipsLocalClient` for the central hub). Shared by devices,
 * the broker's ACL, the platform, the bench and the dashboard (served to the browser as
 * `/wire.js`), so this module imports nothing.
 *
 * Two profiles carry the same device messages:
 * - `cloud` (default): `device/{did}/up/properties_changed/{siid}/{piid}` with
 *   `{"params":{"did","siid","piid","value","ts"}}` and `device/{did}/up/event_occured/{siid}/{eiid}`
 *   with `{"params":{"did","siid","eiid","arguments","ts","seq"}}`.
 * - `local-hub`: `appMsg/notify/iot/{did}/property/{siid}.{piid}` and
 *   `appMsg/notify/iot/{did}/event/{siid}.{eiid}` with the same keys flat (no `params`).
 * Both use `device/{did}/state` (retained, also the last will) and `device/{did}/down|up/rpc`.
 * What we add to Xiaomi's keys (`ts`, `seq`, `parent_id`) sits where their clients ignore it.
 */
export type Scalar = boolean | number | string;

/** Which of Xiaomi's formats devices speak. */
export type WireProfile = 'cloud' | 'local-hub';
export const WIRE_PROFILES: readonly WireProfile[] = ['cloud', 'local-hub'];
export const DEFAULT_WIRE: WireProfile = 'cloud';

/** One property change: Xiaomi's keys (`did`, `siid`, `piid`, `value`), then ours: `ts`, the virtual time in epoch ms. */
export interface PropertyChange { did: string; siid: number; piid: number; value: Scalar; ts: number }
export interface EventArgument { piid: number; value: Scalar }
/**
 * One event: Xiaomi's keys (`did`, `siid`, `eiid`, `arguments`), then ours: `ts` (virtual epoch
 * ms) and `seq`, numbering the device's events from 1 across reconnects and reboots, so a
 * consumer can remove the duplicates QoS 1 redelivery makes.
 */
export interface EventOccurrence { did: string; siid: number; eiid: number; arguments: EventArgument[]; ts: number; seq: number }

/** Cloud `properties_changed` payload. */
export interface PropertiesChangedPayload { params: PropertyChange }
/** Cloud `event_occured` payload (Xiaomi's historical spelling, kept on purpose). */
export interface EventOccuredPayload { params: EventOccurrence }
/** Central-hub property payload: the keys flat. */
export type HubPropertyPayload = PropertyChange;
/** Central-hub event payload: the keys flat. */
export type HubEventPayload = EventOccurrence;

/**
 * `device/{did}/state`, as the cloud publishes it. `timestamp` is the virtual time in epoch ms
 * (a last will carries the time its session connected); `uid` is the owner's user id as a JSON
 * number, as in the real cloud (the same id is a decimal string in `app/{uid}/...` topics and in
 * a speaker's user-id argument). `parent_id` (ours) names a Zigbee child's gateway. BLE children
 * have no state messages: the cloud publishes none for `blt.*` dids.
 */
export interface StatePayload {
  device_id: string;
  device_name: string;
  event: 'online' | 'offline';
  model: string;
  timestamp: number;
  uid: number;
  parent_id?: string;
}

export type RpcMethod = 'get_properties' | 'set_properties' | 'action';
export interface RpcRequest { id: number | string; method: RpcMethod; params: unknown }
export interface PropertyResult { did: string; siid: number; piid: number; code: number; value?: Scalar }
export interface ActionResult { did: string; siid: number; aiid: number; code: number; out?: Scalar[] }
export type RpcResponse =
  | { id: number | string | null; result: PropertyResult[] | ActionResult }
  | { id: number | string | null; error: { code: number; message: string } };

/** MIoT result codes. */
export const MiotCode = {
  OK: 0,
  ACCEPTED: 1,
  NOT_READABLE: -4001,
  NOT_WRITABLE: -4002,
  NOT_FOUND: -4003,
  INTERNAL: -4004,
  VALUE_ERROR: -4005,
  ACTION_ARG_ERROR: -4006,
} as const;

/** JSON-RPC style codes for requests that are wrong as a whole. */
export const RpcErrorCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
} as const;

/** The central hub's notification topics start with this. */
export const HUB_PREFIX = 'appMsg/notify/iot/';

export const topics = {
  propertiesChanged: (did: string, siid: number, piid: number) => `device/${did}/up/properties_changed/${siid}/${piid}`,
  eventOccured: (did: string, siid: number, eiid: number) => `device/${did}/up/event_occured/${siid}/${eiid}`,
  hubProperty: (did: string, siid: number, piid: number) => `${HUB_PREFIX}${did}/property/${siid}.${piid}`,
  hubEvent: (did: string, siid: number, eiid: number) => `${HUB_PREFIX}${did}/event/${siid}.${eiid}`,
  state: (did: string) => `device/${did}/state`,
  rpcDown: (did: string) => `device/${did}/down/rpc`,
  rpcUp: (did: string) => `device/${did}/up/rpc`,
  downAll: (did: string) => `device/${did}/down/#`,
} as const;

/** Topic filters that match every device message of both profiles (what an observer subscribes to). */
export const DEVICE_FILTERS = ['device/+/state', 'device/+/up/#', `${HUB_PREFIX}#`] as const;

/** Topic filters that match one device's messages in both profiles. */
export function deviceFilters(did: string): string[] {
  return [`device/${did}/state`, `device/${did}/up/#`, `${HUB_PREFIX}${did}/#`];
}

/** A device message ready to publish. */
export interface WireMessage { topic: string; payload: string }

/** A JSON number as `JSON.stringify` writes it (null when not finite). */
const jsonNumber = (n: number): string => (Number.isFinite(n) ? String(n) : 'null');

/** A property value as JSON (what a report's payload carries after `"value":`). */
export const valueJson = (value: Scalar): string => (typeof value === 'number' ? jsonNumber(value) : JSON.stringify(value));

/**
 * A property change in `profile`'s topic and payload shape. The payload is written key by key,
 * in the one order devices use (did, siid, piid, value, ts), not by `JSON.stringify` of an object
 * built for it: every simulated property report comes through here. Byte for byte what
 * `JSON.stringify({ params: c })` gives for a change built in that order (tested).
 */
export function encodeProperty(profile: WireProfile, c: PropertyChange): WireMessage {
  const frame = new PropertyFrame(profile, c.siid, c.piid);
  return { topic: frame.topic(c.did), payload: frame.payload(JSON.stringify(c.did), c.value, c.ts) };
}

/** An ASCII constant's bytes. (This module runs in the dashboard too: no Node API here.) */
const ascii = (s: string): Uint8Array => Uint8Array.from(s, (ch) => ch.charCodeAt(0));
const UTF8 = new TextEncoder();
const TS_KEY = ascii(',"ts":');

/**
 * The wire shape of one property's reports (what `encodeProperty` writes), with the parts that
 * never change between its reports (the topic's tail, the keys, siid and piid) written once, and
 * only the device, the value and the time filled in per report: devices keep one per model
 * property (property-store.ts). Its topics are `topics.propertiesChanged` and `topics.hubProperty`
 * (tested).
 *
 * It writes a report as strings (`topic`, `payload`) or as UTF-8 straight into a buffer
 * (`writeTopic`, `writePayload`: the same bytes, tested), which a fleet session does to build its
 * PUBLISH without making either string.
 */
export class PropertyFrame {
  private readonly topicHead: string;
  private readonly topicTail: string;
  private readonly open: string;
  private readonly middle: string;
  private readonly close: string;
  /** The constant parts as bytes (all ASCII). */
  private readonly headBytes: Uint8Array;
  private readonly tailBytes: Uint8Array;
  private readonly openBytes: Uint8Array;
  private readonly middleBytes: Uint8Array;
  private readonly closeBytes: Uint8Array;

  constructor(profile: WireProfile, siid: number, piid: number) {
    const cloud = profile === 'cloud';
    this.topicHead = cloud ? 'device/' : HUB_PREFIX;
    this.topicTail = cloud ? `/up/properties_changed/${siid}/${piid}` : `/property/${siid}.${piid}`;
    this.open = cloud ? '{"params":{"did":' : '{"did":';
    this.middle = `,"siid":${jsonNumber(siid)},"piid":${jsonNumber(piid)},"value":`;
    this.close = cloud ? '}}' : '}';
    this.headBytes = ascii(this.topicHead);
    this.tailBytes = ascii(this.topicTail);
    this.openBytes = ascii(this.open);
    this.middleBytes = ascii(this.middle);
    this.closeBytes = ascii(this.close);
  }

  topic(did: string): string {
    return this.topicHead + did + this.topicTail;
  }

  /** The payload; `didJson` is `JSON.stringify(did)` (a device writes it once). */
  payload(didJson: string, value: Scalar, ts: number): string {
    return this.open + didJson + this.middle + valueJson(value) + ',"ts":' + jsonNumber(ts) + this.close;
  }

  /** The most bytes `writeTopic` and `writePayload` write for these parts (`v`: `valueJson(value)`). */
  mostBytes(did: string, didJson: string, v: string): number {
    return this.headBytes.length + this.tailBytes.length + this.openBytes.length + this.middleBytes.length + TS_KEY.length +
      this.closeBytes.length + 3 * (did.length + didJson.length + v.length) + MOST_NUMBER_BYTES;
  }

  /** `topic(did)` as UTF-8 at `at` in `buf` (room checked by the caller); returns the offset after it. */
  writeTopic(buf: Uint8Array, at: number, did: string): number {
    let o = putBytes(buf, at, this.headBytes);
    o = putText(buf, o, did);
    return putBytes(buf, o, this.tailBytes);
  }

  /** `payload(didJson, value, ts)` as UTF-8 at `at`, `v` being `valueJson(value)`; returns the offset after it. */
  writePayload(buf: Uint8Array, at: number, didJson: string, v: string, ts: number): number {
    let o = putBytes(buf, at, this.openBytes);
    o = putText(buf, o, didJson);
    o = putBytes(buf, o, this.middleBytes);
    o = putText(buf, o, v);
    o = putBytes(buf, o, TS_KEY);
    o = putNumber(buf, o, ts);
    return putBytes(buf, o, this.closeBytes);
  }
}

/** Room enough for any number `putNumber` writes (`-1.2345678901234567e+308` is 24 bytes). */
export const MOST_NUMBER_BYTES = 32;

function putBytes(buf: Uint8Array, at: number, bytes: Uint8Array): number {
  buf.set(bytes, at);
  return at + bytes.length;
}

/** `s` as UTF-8: copied a character at a time while it is ASCII (no call into the runtime), else encoded whole. */
export function putText(buf: Uint8Array, at: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return at + UTF8.encodeInto(s, buf.subarray(at)).written;
    buf[at + i] = c;
  }
  return at + n;
}

/**
 * `jsonNumber(n)` as bytes: a safe non-negative integer (a time) by its digits, computed nine at a
 * time in 32-bit integers (String() of a time and writing that costs four times as much);
 * anything else through its string.
 */
export function putNumber(buf: Uint8Array, at: number, n: number): number {
  if (!(Number.isSafeInteger(n) && n >= 0)) return putText(buf, at, jsonNumber(n));
  if (n < 1e9) return putInt(buf, at, n | 0);
  const hi = Math.floor(n / 1e9);
  let lo = (n - hi * 1e9) | 0;
  const o = hi < 1e9 ? putInt(buf, at, hi | 0) : putNumber(buf, at, hi);
  // The low nine digits, leading zeros included.
  for (let i = o + 8; i >= o; i--) {
    const q = (lo / 10) | 0;
    buf[i] = 0x30 + lo - q * 10;
    lo = q;
  }
  return o + 9;
}

/** The digits of `v`, a non-negative 32-bit integer. */
function putInt(buf: Uint8Array, at: number, v: number): number {
  let digits = 1;
  for (let m = v; m >= 10; m = (m / 10) | 0) digits++;
  for (let i = at + digits - 1; i >= at; i--) {
    const q = (v / 10) | 0;
    buf[i] = 0x30 + v - q * 10;
    v = q;
  }
  return at + digits;
}

/** An event in `profile`'s topic and payload shape. */
export function encodeEvent(profile: WireProfile, e: EventOccurrence): WireMessage {
  return profile === 'cloud'
    ? { topic: topics.eventOccured(e.did, e.siid, e.eiid), payload: JSON.stringify({ params: e } satisfies EventOccuredPayload) }
    : { topic: topics.hubEvent(e.did, e.siid, e.eiid), payload: JSON.stringify(e satisfies HubEventPayload) };
}

export type TopicKind = 'properties_changed' | 'event_occured' | 'state' | 'rpc_down' | 'rpc_up';

/** A device topic: its did and kind; for telemetry, the profile and the ids the topic names. */
export interface DeviceTopic { did: string; kind: TopicKind; profile?: WireProfile; siid?: number; iid?: number }

/** Parse a device topic of either profile, or undefined for anything else. */
export function parseDeviceTopic(topic: string): DeviceTopic | undefined {
  if (topic.startsWith(HUB_PREFIX)) return parseHubTopic(topic);
  const parts = topic.split('/');
  if (parts[0] !== 'device' || !parts[1]) return undefined;
  const did = parts[1];
  if (parts.length === 3 && parts[2] === 'state') return { did, kind: 'state' };
  if (parts.length === 4 && parts[2] === 'down' && parts[3] === 'rpc') return { did, kind: 'rpc_down' };
  if (parts.length === 4 && parts[2] === 'up' && parts[3] === 'rpc') return { did, kind: 'rpc_up' };
  if (parts.length === 6 && parts[2] === 'up' && (parts[3] === 'properties_changed' || parts[3] === 'event_occured')) {
    const siid = Number(parts[4]);
    const iid = Number(parts[5]);
    if (!Number.isInteger(siid) || !Number.isInteger(iid)) return undefined;
    return { did, kind: parts[3], profile: 'cloud', siid, iid };
  }
  return undefined;
}

/** `appMsg/notify/iot/{did}/property/{siid}.{piid}` or `.../event/{siid}.{eiid}`. */
function parseHubTopic(topic: string): DeviceTopic | undefined {
  const parts = topic.slice(HUB_PREFIX.length).split('/');
  if (parts.length !== 3 || !parts[0]) return undefined;
  const kind = parts[1] === 'property' ? 'properties_changed' : parts[1] === 'event' ? 'event_occured' : undefined;
  const ids = parts[2]!.split('.');
  if (!kind || ids.length !== 2 || !/^\d+$/.test(ids[0]!) || !/^\d+$/.test(ids[1]!)) return undefined;
  return { did: parts[0], kind, profile: 'local-hub', siid: Number(ids[0]), iid: Number(ids[1]) };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What a device message says, whichever profile carried it (read leniently: only what the platform needs is required). */
export type DeviceMessage =
  | { kind: 'properties_changed'; did: string; ts: number; siid: number; piid: number; value: unknown }
  | { kind: 'event_occured'; did: string; ts: number; siid: number; eiid: number; arguments: unknown[]; seq: unknown }
  | { kind: 'state'; did: string; ts: number; event: unknown; parentId: string | undefined }
  | { kind: 'rpc_up'; did: string; body: Obj };

/** Why a device message is unusable. */
export interface WireProblem { problem: string }

/**
 * Read a device message's payload (`t` from `parseDeviceTopic`; not for `rpc_down`): the fields
 * every consumer needs, or the first problem. The did in the payload must be the topic's, and a
 * time must be there (`ts`, or a state's `timestamp`).
 */
export function readDeviceMessage(t: DeviceTopic, payload: string): DeviceMessage | WireProblem {
  let body: unknown;
  try {
    body = JSON.parse(payload);
  } catch {
    return { problem: 'invalid JSON' };
  }
  if (!isObj(body)) return { problem: 'payload is not an object' };
  if (t.kind === 'rpc_up') return { kind: 'rpc_up', did: t.did, body };
  if (t.kind === 'rpc_down') return { problem: 'a command is not a device message' };
  if (t.kind === 'state') {
    if (body['device_id'] !== t.did) return { problem: 'did in payload does not match topic' };
    const ts = body['timestamp'];
    if (typeof ts !== 'number' || !Number.isFinite(ts)) return { problem: 'missing or invalid ts' };
    const parent = body['parent_id'];
    return { kind: 'state', did: t.did, ts, event: body['event'], parentId: typeof parent === 'string' ? parent : undefined };
  }
  let p: Obj = body;
  if (t.profile === 'cloud') {
    const params = body['params'];
    if (!isObj(params)) return { problem: 'params is not an object' };
    p = params;
  }
  if (p['did'] !== t.did) return { problem: 'did in payload does not match topic' };
  const ts = p['ts'];
  if (typeof ts !== 'number' || !Number.isFinite(ts)) return { problem: 'missing or invalid ts' };
  if (t.kind === 'properties_changed') return { kind: t.kind, did: t.did, ts, siid: t.siid!, piid: t.iid!, value: p['value'] };
  const args = p['arguments'];
  return { kind: t.kind, did: t.did, ts, siid: t.siid!, eiid: t.iid!, arguments: Array.isArray(args) ? args : [], seq: p['seq'] };
}
