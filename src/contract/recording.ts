/**
 * The recording format: NDJSON, one MQTT message a line, in the order the messages were sent or
 * received. `aiot-sim run --trace` writes it (ts: the message's virtual time), `aiot-sim record`
 * writes it (ts: the time it was received), `aiot-sim replay` reads it.
 *
 *   {"ts":1752595200000,"topic":"device/267090026/state","payload":"{\"did\":...}","qos":1,"retain":true}
 *
 * - `ts`: epoch milliseconds (a number);
 * - `topic`: the topic name (no wildcards);
 * - `payload`: the payload as UTF-8 text, or base64 when `"encoding":"base64"` (payloads that are
 *   not valid UTF-8; as in the monitor's /ws frames);
 * - `qos`: 0, 1 or 2 (absent: 0); `retain`: true when the message was retained (absent: false).
 * Other fields are ignored, so the format can grow.
 */
import { isUtf8 } from 'node:buffer';
import type { Problem } from '../errors.js';

export type QoS = 0 | 1 | 2;

/** One message of a recording. */
export interface RecordedMessage {
  /** Epoch ms: virtual time in a trace, receive time in a recording. */
  ts: number;
  topic: string;
  payload: Buffer;
  qos: QoS;
  retain: boolean;
}

/** One line of the format (with its newline) for a message; `payload` as text or bytes. */
export function formatRecordLine(ts: number, topic: string, payload: string | Buffer, qos: QoS, retain: boolean): string {
  let body: string;
  if (typeof payload === 'string') body = `"payload":${JSON.stringify(payload)}`;
  else if (isUtf8(payload)) body = `"payload":${JSON.stringify(payload.toString('utf8'))}`;
  else body = `"payload":"${payload.toString('base64')}","encoding":"base64"`;
  return `{"ts":${ts},"topic":${JSON.stringify(topic)},${body},"qos":${qos}${retain ? ',"retain":true' : ''}}\n`;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Read one line (`lineNo` from 1) of `file`: the message, or the problems that make it unusable,
 * each naming the file, the line and the field.
 */
export function parseRecordLine(line: string, file: string, lineNo: number): RecordedMessage | Problem[] {
  const at = (path: string, message: string): Problem => ({ file, path: path ? `line ${lineNo}: ${path}` : `line ${lineNo}`, message });
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch (e) {
    return [at('', `not JSON (${(e as Error).message}): ${line.length > 80 ? `${line.slice(0, 80)}…` : line}`)];
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return [at('', 'expected a JSON object {"ts","topic","payload",...}')];
  const o = doc as Record<string, unknown>;
  const problems: Problem[] = [];
  if (typeof o.ts !== 'number' || !Number.isFinite(o.ts) || o.ts < 0) problems.push(at('ts', `expected epoch milliseconds (a number >= 0), got ${show(o.ts)}`));
  if (typeof o.topic !== 'string' || o.topic === '') problems.push(at('topic', `expected a topic name, got ${show(o.topic)}`));
  else if (/[+#\u0000]/.test(o.topic)) problems.push(at('topic', `"${o.topic}" is not a topic name (no +, # or NUL in a published topic)`));
  if (o.encoding !== undefined && o.encoding !== 'base64') problems.push(at('encoding', `expected "base64" or no encoding, got ${show(o.encoding)}`));
  if (typeof o.payload !== 'string') problems.push(at('payload', `expected a string, got ${show(o.payload)}`));
  else if (o.encoding === 'base64' && (o.payload.length % 4 !== 0 || !BASE64.test(o.payload))) problems.push(at('payload', 'not base64 (encoding says base64)'));
  if (o.qos !== undefined && o.qos !== 0 && o.qos !== 1 && o.qos !== 2) problems.push(at('qos', `expected 0, 1 or 2, got ${show(o.qos)}`));
  if (o.retain !== undefined && typeof o.retain !== 'boolean') problems.push(at('retain', `expected true or false, got ${show(o.retain)}`));
  if (problems.length) return problems;
  const payload = o.encoding === 'base64' ? Buffer.from(o.payload as string, 'base64') : Buffer.from(o.payload as string, 'utf8');
  return { ts: o.ts as number, topic: o.topic as string, payload, qos: (o.qos ?? 0) as QoS, retain: o.retain === true };
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
