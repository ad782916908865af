/**
 * What a consumer built like Xiaomi's own client accepts, written here from the rules (the
 * official Home Assistant integration's `miot/miot_mips.py`; facts only, none of its code), on
 * purpose independent of src/contract/wire.ts: a test judging our traffic with our own reader
 * would prove nothing.
 *
 * Cloud push (`MipsCloudClient`):
 * - `device/{did}/up/properties_changed/{siid}/{piid}`: a JSON object whose `params` is an object
 *   with `siid`, `piid` and `value`; the dispatcher then reads `params.did`, `siid`, `piid`.
 * - `device/{did}/up/event_occured/{siid}/{eiid}`: `params` an object with `siid`, `eiid` and
 *   `arguments` (a list of `{piid, value}`); the dispatcher reads `params.did` too.
 * - `device/{did}/state` (subscribed as `device/{did}/state/#`): `device_id` equal to the
 *   subscription's did, and `event` ("online", anything else offline). No state exists for BLE
 *   (`blt.*`) or `proxy.*` dids.
 * Central hub (`MipsLocalClient`):
 * - `appMsg/notify/iot/{did}/property/{siid}.{piid}`: flat JSON with `did`, `siid`, `piid`, `value`.
 * - `appMsg/notify/iot/{did}/event/{siid}.{eiid}`: flat JSON with `did`, `siid`, `eiid`
 *   (`arguments` defaults to [] when missing; we promise to send it, a list of `{piid, value}`).
 * On top, what our contract promises beyond Xiaomi's minimum (ids agreeing with the topic, the
 * documented JSON types of the state payload, the shape of RPC replies) is held to as well.
 */

export type AcceptedKind =
  | 'cloud-property' | 'cloud-event' | 'hub-property' | 'hub-event' | 'state-online' | 'state-offline' | 'rpc-reply';

export type Judgement = { accepted: AcceptedKind } | { rejected: string };

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const has = (o: Obj, ...keys: string[]): boolean => keys.every((k) => Object.hasOwn(o, k));

const CLOUD_TELEMETRY = /^device\/([^/]+)\/up\/(properties_changed|event_occured)\/(\d+)\/(\d+)$/;
const STATE = /^device\/([^/]+)\/state$/;
const RPC_UP = /^device\/([^/]+)\/up\/rpc$/;
const HUB = /^appMsg\/notify\/iot\/([^/]+)\/(property|event)\/(\d+)\.(\d+)$/;

/** A device-side message judged, or null for what devices do not send (commands, app sessions, $SYS). */
export function judge(topic: string, payload: string): Judgement | null {
  if (topic.startsWith('app/') || topic.startsWith('$SYS/') || /^device\/[^/]+\/down\//.test(topic)) return null;
  let m = CLOUD_TELEMETRY.exec(topic);
  if (m) return cloudTelemetry(m[1]!, m[2] === 'properties_changed', Number(m[3]), Number(m[4]), payload);
  m = HUB.exec(topic);
  if (m) return hubTelemetry(m[1]!, m[2] === 'property', Number(m[3]), Number(m[4]), payload);
  m = STATE.exec(topic);
  if (m) return state(m[1]!, payload);
  m = RPC_UP.exec(topic);
  if (m) return rpcReply(payload);
  if (topic.startsWith('device/') || topic.startsWith('appMsg/')) return { rejected: `no consumer subscribes to ${topic}` };
  return null;
}

function json(payload: string): Obj | string {
  try {
    const v: unknown = JSON.parse(payload);
    return isObj(v) ? v : 'payload is not a JSON object';
  } catch {
    return 'payload is not JSON';
  }
}

function cloudTelemetry(did: string, property: boolean, siid: number, iid: number, payload: string): Judgement {
  const body = json(payload);
  if (typeof body === 'string') return { rejected: body };
  const params = body['params'];
  if (!isObj(params)) return { rejected: 'params is not an object' };
  const idKey = property ? 'piid' : 'eiid';
  const required = property ? ['did', 'siid', 'piid', 'value'] : ['did', 'siid', 'eiid', 'arguments'];
  if (!has(params, ...required)) return { rejected: `params lacks one of ${required.join(', ')}` };
  const why = agrees(params, did, siid, idKey, iid) ?? (property ? undefined : argumentsProblem(params['arguments']));
  return why ? { rejected: why } : { accepted: property ? 'cloud-property' : 'cloud-event' };
}

function hubTelemetry(did: string, property: boolean, siid: number, iid: number, payload: string): Judgement {
  const body = json(payload);
  if (typeof body === 'string') return { rejected: body };
  const idKey = property ? 'piid' : 'eiid';
  // The hub's client defaults a missing `arguments` to []; our contract promises to send it anyway.
  const required = property ? ['did', 'siid', 'piid', 'value'] : ['did', 'siid', 'eiid', 'arguments'];
  if (!has(body, ...required)) return { rejected: `payload lacks one of ${required.join(', ')}` };
  if (Object.hasOwn(body, 'params')) return { rejected: 'the hub payload is flat, not wrapped in params' };
  const why = agrees(body, did, siid, idKey, iid) ?? (property ? undefined : argumentsProblem(body['arguments']));
  return why ? { rejected: why } : { accepted: property ? 'hub-property' : 'hub-event' };
}

/** The ids inside agree with the topic (a consumer dispatches on the payload's, subscribes on the topic's). */
function agrees(o: Obj, did: string, siid: number, idKey: string, iid: number): string | undefined {
  if (o['did'] !== did) return `did ${JSON.stringify(o['did'])} is not the topic's ${did}`;
  if (o['siid'] !== siid || o[idKey] !== iid) return `siid/${idKey} ${String(o['siid'])}.${String(o[idKey])} are not the topic's ${siid}.${iid}`;
  return undefined;
}

function argumentsProblem(args: unknown): string | undefined {
  if (!Array.isArray(args)) return 'arguments is not a list';
  for (const a of args) if (!isObj(a) || !has(a, 'piid', 'value') || typeof a['piid'] !== 'number') return 'an argument is not {piid, value}';
  return undefined;
}

function state(did: string, payload: string): Judgement {
  if (did.startsWith('blt.') || did.startsWith('proxy.')) return { rejected: `the cloud publishes no state for ${did}` };
  const body = json(payload);
  if (typeof body === 'string') return { rejected: body };
  if (body['device_id'] !== did) return { rejected: `device_id ${JSON.stringify(body['device_id'])} is not the subscription's ${did}` };
  if (!has(body, 'event')) return { rejected: 'state without event' };
  // The real cloud's types, which our contract documents.
  const ts = body['timestamp'];
  if (typeof body['device_name'] !== 'string' || typeof body['model'] !== 'string') return { rejected: 'device_name and model must be strings' };
  if (typeof ts !== 'number' || !Number.isInteger(ts) || ts < Date.UTC(2000, 0, 1)) return { rejected: 'timestamp must be epoch milliseconds' };
  if (typeof body['uid'] !== 'number' || !Number.isSafeInteger(body['uid'])) return { rejected: 'uid must be a number' };
  if (body['event'] !== 'online' && body['event'] !== 'offline') return { rejected: `event ${JSON.stringify(body['event'])} is neither online nor offline` };
  return { accepted: body['event'] === 'online' ? 'state-online' : 'state-offline' };
}

/** Not part of Xiaomi's push (its clients call RPC over HTTP): held to our documented reply shape. */
function rpcReply(payload: string): Judgement {
  const body = json(payload);
  if (typeof body === 'string') return { rejected: body };
  if (!has(body, 'id')) return { rejected: 'reply without id' };
  if (Array.isArray(body['result']) || isObj(body['result'])) return { accepted: 'rpc-reply' };
  const err = body['error'];
  if (isObj(err) && typeof err['code'] === 'number' && typeof err['message'] === 'string') return { accepted: 'rpc-reply' };
  return { rejected: 'reply with neither result nor {code, message} error' };
}

/** Counts of what was accepted, by kind, and the rejected messages (the first few kept in full). */
export class AcceptanceTally {
  readonly accepted = new Map<AcceptedKind, number>();
  rejected = 0;
  readonly examples: Array<{ topic: string; payload: string; reason: string }> = [];
  /** Device-side messages judged. */
  total = 0;

  /** Judge one message; returns whether it was device-side. */
  add(topic: string, payload: string): boolean {
    const j = judge(topic, payload);
    if (!j) return false;
    this.total++;
    if ('accepted' in j) this.accepted.set(j.accepted, (this.accepted.get(j.accepted) ?? 0) + 1);
    else {
      this.rejected++;
      if (this.examples.length < 5) this.examples.push({ topic, payload: payload.slice(0, 300), reason: j.rejected });
    }
    return true;
  }

  count(kind: AcceptedKind): number { return this.accepted.get(kind) ?? 0; }
}
