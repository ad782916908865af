/**
 * The platform's hot path: a property change read where it lies, without `JSON.parse`.
 *
 * Nearly every device message is a property change, and all the platform takes from one is its
 * time (`ts`) and that its did is the topic's: the topic already says what it is. Devices write
 * it in one shape (contract/wire.ts, `encodeProperty`):
 *
 *   cloud  device/{did}/up/properties_changed/{siid}/{piid}
 *          {"params":{"did":"{did}","siid":N,"piid":N,"value":V,"ts":T}}
 *   hub    appMsg/notify/iot/{did}/property/{siid}.{piid}
 *          {"did":"{did}","siid":N,"piid":N,"value":V,"ts":T}
 *
 * `propertyChangeTime` checks a message against exactly that shape, byte by byte in the payload
 * (no string decoded, no object built, nothing allocated but the result) and returns `ts`. The
 * value V must be a JSON scalar (checked to the JSON grammar) and T a plain integer of at most 15
 * digits. Anything else, valid or not, returns undefined and is read by `readDeviceMessage` as
 * before: so for every message the platform's outcome is the one a full parse gives (the unit
 * test checks this against `readDeviceMessage` on arbitrary and mutated messages).
 */
import { HUB_PREFIX } from '../contract/wire.js';

const CLOUD_PREFIX = 'device/';
const CLOUD_KIND = '/up/properties_changed/';
const HUB_KIND = '/property/';

const bytes = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const CLOUD_HEAD = bytes('{"params":{"did":"');
const HUB_HEAD = bytes('{"did":"');
const SIID = bytes('","siid":');
const PIID = bytes(',"piid":');
const VALUE = bytes(',"value":');
const TS = bytes(',"ts":');
const TRUE = bytes('true');
const FALSE = bytes('false');
const NULL = bytes('null');

/** Returned by the scanners below when the bytes are not the expected shape. */
const NO = -1;
/** Longest ts read here: 15 digits stay exact in a double. */
const MAX_TS_DIGITS = 15;
/** Longest siid/piid in a topic read here (a longer digit string may not be an integer to Number()). */
const MAX_ID_DIGITS = 15;

/**
 * The `ts` of a property change in the devices' own shape (either profile), or undefined when
 * `topic` is not a property change topic or the payload is not exactly that shape (then read it
 * with `parseDeviceTopic` and `readDeviceMessage`).
 */
export function propertyChangeTime(topic: string, payload: Uint8Array): number | undefined {
  let didFrom: number;
  let didEnd: number;
  let head: Uint8Array;
  let tail: number; // closing braces after ts
  if (topic.startsWith(CLOUD_PREFIX)) {
    didFrom = CLOUD_PREFIX.length;
    didEnd = topic.indexOf('/', didFrom);
    if (didEnd <= didFrom || !topic.startsWith(CLOUD_KIND, didEnd)) return undefined;
    if (!idPair(topic, didEnd + CLOUD_KIND.length, 0x2f /* / */)) return undefined;
    head = CLOUD_HEAD;
    tail = 2;
  } else if (topic.startsWith(HUB_PREFIX)) {
    didFrom = HUB_PREFIX.length;
    didEnd = topic.indexOf('/', didFrom);
    if (didEnd <= didFrom || !topic.startsWith(HUB_KIND, didEnd)) return undefined;
    if (!idPair(topic, didEnd + HUB_KIND.length, 0x2e /* . */)) return undefined;
    head = HUB_HEAD;
    tail = 1;
  } else return undefined;

  const n = payload.length;
  let at = literal(payload, 0, head);
  if (at === NO) return undefined;
  // The did, byte for byte the topic's (printable ASCII without quote or backslash, so no escapes).
  for (let i = didFrom; i < didEnd; i++, at++) {
    const c = topic.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c || at >= n || payload[at] !== c) return undefined;
  }
  at = literal(payload, at, SIID);
  at = integer(payload, at);
  at = literal(payload, at, PIID);
  at = integer(payload, at);
  at = literal(payload, at, VALUE);
  at = scalar(payload, at);
  at = literal(payload, at, TS);
  if (at === NO) return undefined;
  // ts: 1 to 15 digits, no leading zero, then exactly the closing braces.
  let ts = 0;
  const from = at;
  while (at < n && payload[at]! >= 0x30 && payload[at]! <= 0x39) ts = ts * 10 + (payload[at++]! - 0x30);
  const digits = at - from;
  if (digits === 0 || digits > MAX_TS_DIGITS || (digits > 1 && payload[from] === 0x30)) return undefined;
  if (n - at !== tail) return undefined;
  for (; at < n; at++) if (payload[at] !== 0x7d /* } */) return undefined;
  return ts;
}

/** Whether `topic` from `at` is `{digits}{sep}{digits}` to its end (each 1 to 15 digits). */
function idPair(topic: string, at: number, sep: number): boolean {
  const first = digitsAt(topic, at);
  if (first === 0 || topic.charCodeAt(at + first) !== sep) return false;
  const next = at + first + 1;
  const second = digitsAt(topic, next);
  return second > 0 && next + second === topic.length;
}

/** How many decimal digits `s` has from `at` (0 when more than MAX_ID_DIGITS: not read here). */
function digitsAt(s: string, at: number): number {
  let i = at;
  while (i < s.length && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39) i++;
  return i - at > MAX_ID_DIGITS ? 0 : i - at;
}

/** `want` at `at`: the offset after it, or NO. */
function literal(b: Uint8Array, at: number, want: Uint8Array): number {
  if (at === NO || at + want.length > b.length) return NO;
  for (let i = 0; i < want.length; i++) if (b[at + i] !== want[i]) return NO;
  return at + want.length;
}

/** A JSON integer without exponent or fraction (`-?(0|[1-9][0-9]*)`) at `at`: the offset after it, or NO. */
function integer(b: Uint8Array, at: number): number {
  if (at === NO) return NO;
  if (b[at] === 0x2d /* - */) at++;
  if (b[at] === 0x30) return at + 1;
  const from = at;
  while (at < b.length && b[at]! >= 0x30 && b[at]! <= 0x39) at++;
  return at > from ? at : NO;
}

/** A JSON number (RFC 8259 grammar) at `at`: the offset after it, or NO. */
function number(b: Uint8Array, at: number): number {
  at = integer(b, at);
  if (at === NO) return NO;
  if (b[at] === 0x2e /* . */) {
    const from = ++at;
    while (at < b.length && b[at]! >= 0x30 && b[at]! <= 0x39) at++;
    if (at === from) return NO;
  }
  if (b[at] === 0x65 || b[at] === 0x45 /* e E */) {
    at++;
    if (b[at] === 0x2b || b[at] === 0x2d /* + - */) at++;
    const from = at;
    while (at < b.length && b[at]! >= 0x30 && b[at]! <= 0x39) at++;
    if (at === from) return NO;
  }
  return at;
}

/** A JSON string at `at` (escapes checked, no control characters): the offset after it, or NO. */
function string(b: Uint8Array, at: number): number {
  if (b[at] !== 0x22) return NO;
  at++;
  while (at < b.length) {
    const c = b[at]!;
    if (c === 0x22) return at + 1;
    if (c < 0x20) return NO;
    if (c !== 0x5c) {
      at++;
      continue;
    }
    const e = b[at + 1];
    if (e === 0x75 /* u */) {
      for (let k = 2; k < 6; k++) if (!isHex(b[at + k])) return NO;
      at += 6;
    } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) at += 2;
    else return NO;
  }
  return NO;
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
}

/** A JSON scalar (string, number, true, false, null) at `at`: the offset after it, or NO. */
function scalar(b: Uint8Array, at: number): number {
  if (at === NO) return NO;
  switch (b[at]) {
    case 0x22: return string(b, at);
    case 0x74: return literal(b, at, TRUE);
    case 0x66: return literal(b, at, FALSE);
    case 0x6e: return literal(b, at, NULL);
    default: return number(b, at);
  }
}
