/**
 * Bench traffic: real MIoT `properties_changed` / `event_occured` messages of the catalogue's
 * models, in either wire profile, with a bench header the probe reads back, pre-serialised into
 * PUBLISH packets whose variable parts (did, ts, seq, send time, message id) are patched in place
 * per message.
 *
 * A bench payload is the device payload plus one field, last, beside the device's own keys:
 *   cloud:     {"params":{"did":"800000012","siid":2,"piid":1,"value":true,"ts":1763900000123},
 *               "bench":{"run":"k3x9","dev":      12,"seq":       123,"t":1763900000123456}}
 *   local-hub: {"did":"800000012","siid":2,"piid":1,"value":true,"ts":1763900000123,
 *               "bench":{"run":"k3x9","dev":      12,"seq":       123,"t":1763900000123456}}
 * `dev` is the bench device index, `seq` its per-device sequence number (from 0), `t` the send wall
 * time in microseconds since the epoch. Numbers are right-aligned in fixed widths with leading
 * spaces (valid JSON) so every message of a template has the same length. `--payload-size` adds a
 * `"pad":"xxx..."` field before `bench`. A consumer written for Xiaomi's clients ignores both.
 */
import mqttPacket from 'mqtt-packet';
import type { DeviceModel, PropertySpec } from '../catalog/schema.js';
import { DEFAULT_WIRE, topics, type Scalar, type WireProfile } from '../contract/wire.js';

export type MessageKind = 'properties_changed' | 'event_occured';

/** One kind of message a model sends (topic without the did, payload fields after `did`). */
export interface MessageShape {
  kind: MessageKind;
  /** The wire profile its topic and payload follow. */
  wire: WireProfile;
  siid: number;
  iid: number;
  /** JSON fields between `"did":"…",` and `"ts":`, e.g. `"siid":2,"piid":1,"value":true,`. */
  fields: string;
}

/** did of bench device `index`: 9 digits, like a Wi-Fi Mijia did. */
export const BENCH_DID_BASE = 800_000_000;
export function benchDid(index: number): string { return String(BENCH_DID_BASE + index); }

const W = { dev: 8, seq: 10, t: 16, ts: 13 } as const;

function sampleValue(p: PropertySpec): Scalar {
  if (p.default !== undefined) return p.default;
  if (p.format === 'bool') return true;
  if (p.format === 'string') return '';
  if (p['value-list']) return p['value-list'][0]!.value;
  if (p['value-range']) {
    const [min, max, step] = p['value-range'];
    const mid = min + Math.round((max - min) / 2 / step) * step;
    return p.format === 'float' ? Number(mid.toFixed(3)) : Math.round(mid);
  }
  return 0;
}

/** The notify properties and events of a model, as bench message shapes in `wire`'s format. */
export function shapesOf(model: DeviceModel, wire: WireProfile = DEFAULT_WIRE): { properties: MessageShape[]; events: MessageShape[] } {
  const properties: MessageShape[] = [];
  const events: MessageShape[] = [];
  for (const s of model.services) {
    for (const p of s.properties) {
      if (!p.access.includes('notify')) continue;
      properties.push({ kind: 'properties_changed', wire, siid: s.siid, iid: p.piid, fields: `"siid":${s.siid},"piid":${p.piid},"value":${JSON.stringify(sampleValue(p))},` });
    }
    for (const e of s.events) {
      const args = e.arguments.map((piid) => {
        const p = s.properties.find((q) => q.piid === piid);
        return { piid, value: p ? sampleValue(p) : 0 };
      });
      events.push({ kind: 'event_occured', wire, siid: s.siid, iid: e.eiid, fields: `"siid":${s.siid},"eiid":${e.eiid},"arguments":${JSON.stringify(args)},` });
    }
  }
  return { properties, events };
}

const DID_MARK = 'D'.repeat(9);

/** A pre-serialised PUBLISH packet with the offsets of its variable parts. */
export interface PacketTemplate {
  buf: Buffer;
  /** Offsets of the 9-digit did (topic and payload). */
  didAt: number[];
  tsAt: number;
  devAt: number;
  seqAt: number;
  tAt: number;
  /** Offset of the 2-byte message id (QoS 1), -1 for QoS 0. */
  msgIdAt: number;
}

/** Build the packet of one shape. `payloadSize` pads the payload to at least that many bytes. */
export function buildTemplate(shape: MessageShape, runId: string, qos: 0 | 1, payloadSize: number): PacketTemplate {
  const cloud = shape.wire === 'cloud';
  const property = shape.kind === 'properties_changed';
  const topic = cloud
    ? (property ? topics.propertiesChanged : topics.eventOccured)(DID_MARK, shape.siid, shape.iid)
    : (property ? topics.hubProperty : topics.hubEvent)(DID_MARK, shape.siid, shape.iid);
  // The device's keys (in params for the cloud), then ours beside them: pad, bench header.
  const keys = `"did":"${DID_MARK}",${shape.fields}"ts":${'T'.repeat(W.ts)}`;
  const head = cloud ? `{"params":{${keys}},` : `{${keys},`;
  const tail = `"bench":{"run":"${runId}","dev":${'V'.repeat(W.dev)},"seq":${'S'.repeat(W.seq)},"t":${'U'.repeat(W.t)}}}`;
  let payload = head + tail;
  if (payload.length < payloadSize) {
    const padLen = Math.max(0, payloadSize - payload.length - '"pad":"",'.length);
    payload = `${head}"pad":"${'x'.repeat(padLen)}",${tail}`;
  }
  const buf = mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false, messageId: qos ? 1 : undefined } as mqttPacket.IPublishPacket);
  const find = (mark: string, from = 0): number => {
    const at = buf.indexOf(mark, from, 'latin1');
    if (at < 0) throw new Error(`bench template: ${mark[0]} marker missing`);
    return at;
  };
  const topicAt = find(topic);
  const didAt = [find(DID_MARK), find(DID_MARK, find(DID_MARK) + 9)];
  return {
    buf, didAt,
    tsAt: find('T'.repeat(W.ts)), devAt: find('V'.repeat(W.dev)), seqAt: find('S'.repeat(W.seq)), tAt: find('U'.repeat(W.t)),
    msgIdAt: qos ? topicAt + Buffer.byteLength(topic) : -1,
  };
}

/** Write `n` right-aligned in `width` ASCII bytes at `at`, padded with `pad` (a char code). */
export function writeNumber(buf: Buffer, at: number, width: number, n: number, pad = 0x20): void {
  let i = at + width - 1;
  let v = Math.floor(n);
  do {
    buf[i--] = 0x30 + (v % 10);
    v = Math.floor(v / 10);
  } while (v > 0 && i >= at);
  while (i >= at) buf[i--] = pad;
}

export function writeDid(buf: Buffer, t: PacketTemplate, base: number, did: string): void {
  for (const at of t.didAt) buf.write(did, base + at, 'latin1');
}

/** Fill the per-message parts of a packet copied at `base`. */
export function stamp(buf: Buffer, base: number, t: PacketTemplate, dev: number, seq: number, sentUs: number, msgId: number): void {
  writeNumber(buf, base + t.tsAt, W.ts, sentUs / 1000, 0x30);
  writeNumber(buf, base + t.devAt, W.dev, dev);
  writeNumber(buf, base + t.seqAt, W.seq, seq);
  writeNumber(buf, base + t.tAt, W.t, sentUs, 0x30);
  if (t.msgIdAt >= 0) {
    buf[base + t.msgIdAt] = msgId >> 8;
    buf[base + t.msgIdAt + 1] = msgId & 0xff;
  }
}

export interface BenchHeader { run: string; dev: number; seq: number; t: number }

const MARK = Buffer.from('"bench":{');

function readInt(buf: Buffer, from: number): [number, number] {
  let i = from;
  while (i < buf.length && buf[i] === 0x20) i++;
  let n = 0;
  const start = i;
  while (i < buf.length) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
    i++;
  }
  return i === start ? [NaN, i] : [n, i];
}

const KEYS = { run: Buffer.from('"run":"'), dev: Buffer.from('"dev":'), seq: Buffer.from('"seq":'), t: Buffer.from('"t":') };

function after(buf: Buffer, key: Buffer, from: number): number {
  const at = buf.indexOf(key, from);
  return at < 0 ? -1 : at + key.length;
}

/**
 * Read the bench header of a payload (null when it has none). Tolerates re-serialised JSON
 * (whitespace removed, keys kept in order), so a consumer may parse and re-emit the payload.
 */
export function readBenchHeader(payload: Buffer): BenchHeader | null {
  const at = payload.lastIndexOf(MARK);
  if (at < 0) return null;
  const r = after(payload, KEYS.run, at);
  if (r < 0) return null;
  const rEnd = payload.indexOf(0x22, r);
  if (rEnd < 0) return null;
  const run = payload.toString('latin1', r, rEnd);
  const d = after(payload, KEYS.dev, rEnd);
  if (d < 0) return null;
  const [dev, dEnd] = readInt(payload, d);
  const s = after(payload, KEYS.seq, dEnd);
  if (s < 0) return null;
  const [seq, sEnd] = readInt(payload, s);
  const tk = after(payload, KEYS.t, sEnd);
  if (tk < 0) return null;
  const [t] = readInt(payload, tk);
  if (!Number.isFinite(dev) || !Number.isFinite(seq) || !Number.isFinite(t)) return null;
  return { run, dev, seq, t };
}
