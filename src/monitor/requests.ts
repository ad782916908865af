/**
 * What a monitoring client may send on `/ws` (`ClientFrame` in protocol.ts), checked with one zod
 * schema. A frame that does not fit gets an `error` frame naming the field and what is wrong,
 * with a stable code: E_FRAME (not a JSON object, or binary), E_JSON (not JSON, or nested too deep),
 * E_TYPE, E_TOPICS, E_FILTER.
 */
import type { RawData } from 'ws';
import { z } from 'zod';
import { formatPath } from '../errors.js';
import { MAX_JSON_DEPTH, nestedDeeperThan } from './json-depth.js';
import type { ClientFrame, ErrorFrame } from './protocol.js';
import { filterProblem } from './topic-filter.js';

const TYPES = 'expected "subscribe", "unsubscribe" or "ping"';
const TOPICS = 'expected a non-empty array of MQTT topic filters';

const TopicFilter = z.string({ error: (iss) => `expected a string, got ${kindOf(iss.input)}` }).check((ctx) => {
  const problem = filterProblem(ctx.value);
  if (problem) ctx.issues.push({ code: 'custom', input: ctx.value, message: `"${ctx.value}": ${problem}` });
});

const Topics = z.array(TopicFilter, { error: TOPICS }).min(1, { error: TOPICS });

/** Unknown fields are ignored, so a newer client's extras do not break an older server. */
export const ClientFrameSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('subscribe'), topics: Topics }),
  z.object({ type: z.literal('unsubscribe'), topics: Topics }),
  z.object({ type: z.literal('ping') }),
], {
  error: (iss) => (iss.code === 'invalid_union' ? `${TYPES}, got ${describe(typeField(iss.input))}` : 'expected a JSON object with a "type"'),
});

/** Codes by the field the first problem is in. */
const CODES: Record<string, string> = { '': 'E_FRAME', type: 'E_TYPE', topics: 'E_TOPICS' };

/** A client's WebSocket message as a request, or the error frame to answer it with. */
export function parseClientFrame(data: RawData, isBinary: boolean): ClientFrame | ErrorFrame {
  if (isBinary) return error('E_FRAME', 'binary frames are not part of the protocol: send JSON text');
  const text = rawText(data);
  if (nestedDeeperThan(text)) return error('E_JSON', `the frame nests arrays or objects more than ${MAX_JSON_DEPTH} deep`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return error('E_JSON', 'the frame is not valid JSON');
  }
  const parsed = ClientFrameSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  const code = path.length > 1 && path[0] === 'topics' ? 'E_FILTER' : (CODES[String(path[0] ?? '')] ?? 'E_FRAME');
  return error(code, path.length ? `${formatPath(path)}: ${issue.message}` : issue.message);
}

function error(code: string, message: string): ErrorFrame {
  return { type: 'error', code, message };
}

function typeField(input: unknown): unknown {
  return typeof input === 'object' && input !== null ? (input as { type?: unknown }).type : undefined;
}

function describe(value: unknown): string {
  return JSON.stringify(value) ?? 'nothing';
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'an array' : typeof value;
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
