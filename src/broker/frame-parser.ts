/**
 * A front for the MQTT packet parser Aedes gives each client (mqtt-packet's): the packets that
 * make up nearly all traffic (PUBLISH, PUBACK, PINGREQ; and a fleet connecting or leaving:
 * CONNECT, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT) are decoded here when their frame is whole, and
 * everything else is handed, one whole frame at a time, to mqtt-packet.
 *
 * mqtt-packet parses byte by byte through a state machine over a buffer list (`bl`), with a
 * `debug()` call at each step; in profiles of the broker under load that was about a sixth of
 * its time. Here a frame is read where it lies in the chunk the connection delivered, and the
 * packet object handed on is field for field the one mqtt-packet would emit (the payload a view
 * into the chunk, as mqtt-packet's is). Frames mqtt-packet would reject (QoS 3, a topic running
 * past the packet, flags that must be 0) and MQTT 5 packets go to mqtt-packet, so its errors and
 * their wording are unchanged. One difference: a QoS 1 or 2 PUBLISH too short for its packet id
 * is refused ("Cannot parse messageId", mqtt-packet's own message), where mqtt-packet 9 reads the
 * id from the next packet's bytes, or emits -1 (a bug worth reporting upstream).
 *
 * A frame split over chunks is kept as a list of the chunks and joined once, when it is complete
 * (a peer dripping a large packet byte by byte costs one copy, not one per byte).
 *
 * The front also holds what MQTT 3.1.1 asks of every string a client sends and mqtt-packet does
 * not check: that it be well-formed UTF-8 (MQTT-1.5.3-1). A topic, topic filter, client id, will
 * topic or user name with a stray byte, an overlong form or an encoded surrogate is a protocol
 * error and closes the connection, as Mosquitto does; mqtt-packet reads such bytes as U+FFFD, so
 * a device publishing to `dev/\xff` would reach the subscribers of `dev/\uFFFD` and of every other
 * topic whose bytes decode alike. The check costs one scan of a decoded string for U+FFFD; the
 * bytes are looked at only when it is there (it may be sent well-formed). What else the standard
 * forbids in a string (U+0000, wildcards where they may not be) the gate checks on the decoded
 * string (gatekeeper.ts); an UNSUBSCRIBE's filters, which no Aedes hook sees, are checked here.
 * So are three rules of the packets' fields that mqtt-packet and Aedes let through and Mosquitto
 * holds to: no packet id 0 on a QoS 1 or 2 PUBLISH, a SUBSCRIBE or an UNSUBSCRIBE (MQTT-2.3.1-1),
 * no UNSUBSCRIBE without a filter (MQTT-3.10.3-2), no password in a CONNECT without a user name
 * (MQTT-3.1.2-22).
 */
import { isUtf8 } from 'node:buffer';
import { remainingLengthSize } from '../contract/mqtt-length.js';
import { filterProblem } from '../contract/mqtt-topics.js';
import { Slot } from './slot.js';

/** The part of mqtt-packet's Parser this front uses. */
export interface MqttPacketParser {
  parse(buf: Buffer): number;
  emit(event: 'packet', packet: object): boolean;
  emit(event: 'error', err: Error): boolean;
  /** After CONNECT: the CONNECT packet (its protocolVersion says how later packets are laid out). */
  settings: { protocolVersion?: number };
  error: Error | null;
  /** The Aedes client the parser belongs to (Aedes sets it). */
  client?: object;
}

/**
 * Takes a QoS 0 PUBLISH straight to the broker, skipping Aedes' per-packet handlers, when it may
 * (see `Gatekeeper.publishDirect`): true when it did, false to hand the packet to Aedes as usual.
 */
export type PublishShortcut = (client: object, packet: PublishPacketLike) => boolean;

/** A PUBLISH as this front hands it on. */
export interface PublishPacketLike {
  cmd: string; retain: boolean; qos: number; dup: boolean; length: number; topic: string | null; payload: Buffer | null; messageId?: number;
}

/** A packet as mqtt-packet emits it (same fields, same order). */
class ParsedPacket {
  messageId?: number;
  constructor(
    public cmd: string,
    public retain: boolean,
    public qos: number,
    public dup: boolean,
    public length: number,
    public topic: string | null,
    public payload: Buffer | null,
  ) {}
}

const CONNECT = 1;
const PUBLISH = 3;
const PUBACK = 4;
const SUBSCRIBE = 8;
const UNSUBSCRIBE = 10;
const PINGREQ = 12;
const DISCONNECT = 14;

/** A CONNECT as mqtt-packet emits it (MQTT 3.1.1 or 3.1: fields in its order). */
interface ParsedConnect {
  cmd: 'connect'; retain: false; qos: 0; dup: false; length: number; topic: null; payload: null;
  protocolId: 'MQTT' | 'MQIsdp'; protocolVersion: 3 | 4; bridgeMode?: true;
  will?: { retain: boolean; qos: number; topic?: string; payload?: Buffer };
  clean: boolean; keepalive: number; clientId: string; username?: string; password?: Buffer;
}

/**
 * An MQTT 3.1.1 or 3.1 CONNECT in [body, end), as mqtt-packet would emit it; a `Refusal` when
 * its fields are whole but one of its strings is not well-formed UTF-8 or it has a password
 * without a user name; null for anything else or
 * anything mqtt-packet would refuse (MQTT 5, bad flags, fields past the end, bytes left over):
 * those go to mqtt-packet, which names the error. Will payload and password are copies
 * (mqtt-packet's are too; a view would keep the whole chunk alive with a stored will).
 */
function parseConnect(buf: Buffer, body: number, end: number): ParsedConnect | Refusal | null {
  let at = body;
  let fault: string | null = null;
  const str = (what: string): string | null => {
    const to = fieldEnd(buf, at, end);
    if (to < 0) return null;
    const v = buf.toString('utf8', at + 2, to);
    fault ??= textFault(buf, at + 2, to, v, what);
    at = to;
    return v;
  };
  const bytes = (): Buffer | null => {
    const to = fieldEnd(buf, at, end);
    if (to < 0) return null;
    const v = Buffer.from(buf.subarray(at + 2, to));
    at = to;
    return v;
  };
  const nameEnd = fieldEnd(buf, at, end);
  if (nameEnd < 0) return null;
  const protocolId = buf.toString('latin1', at + 2, nameEnd);
  at = nameEnd;
  if ((protocolId !== 'MQTT' && protocolId !== 'MQIsdp') || at + 4 > end) return null;
  const level = buf[at]!;
  const protocolVersion = level & 0x7f;
  if (protocolVersion !== 3 && protocolVersion !== 4) return null;
  const flags = buf[at + 1]!;
  const will = (flags & 0x04) !== 0;
  // Reserved bit set, or will QoS 3, or will QoS/retain without a will: mqtt-packet's errors.
  if ((flags & 0x01) !== 0 || ((flags >> 3) & 3) === 3 || (!will && (flags & 0x38) !== 0)) return null;
  // A password without a user name (MQTT-3.1.2-22): mqtt-packet reads it, Aedes would take the
  // client for an anonymous one.
  if ((flags & 0xc0) === 0x40) fault = 'CONNECT: a password without a username (MQTT-3.1.2-22)';
  const p: ParsedConnect = {
    cmd: 'connect', retain: false, qos: 0, dup: false, length: end - body, topic: null, payload: null,
    protocolId, protocolVersion,
    ...(level & 0x80 ? { bridgeMode: true } as const : {}),
    ...(will ? { will: { retain: (flags & 0x20) !== 0, qos: (flags >> 3) & 3 } } : {}),
    clean: (flags & 0x02) !== 0, keepalive: (buf[at + 2]! << 8) | buf[at + 3]!, clientId: '',
  };
  at += 4;
  const clientId = str('client identifier');
  if (clientId === null) return null;
  p.clientId = clientId;
  if (p.will) {
    const topic = str('will topic');
    const payload = topic === null ? null : bytes();
    if (topic === null || payload === null) return null;
    p.will.topic = topic;
    p.will.payload = payload;
  }
  if (flags & 0x80) {
    const username = str('username');
    if (username === null) return null;
    p.username = username;
  }
  if (flags & 0x40) {
    const password = bytes();
    if (password === null) return null;
    p.password = password;
  }
  if (fault !== null) return new Refusal(fault);
  return at === end ? p : null;
}

/** The end of the length-prefixed field (string or bytes) at `at`, or -1 when it runs past `end`. */
function fieldEnd(buf: Buffer, at: number, end: number): number {
  if (at + 2 > end) return -1;
  const to = at + 2 + ((buf[at]! << 8) | buf[at + 1]!);
  return to > end ? -1 : to;
}

/**
 * Why the string `text`, decoded from bytes [from, to) of `buf`, is not well-formed UTF-8
 * (MQTT-1.5.3-1), naming `what` it is and its bytes; null when it is.
 */
function textFault(buf: Buffer, from: number, to: number, text: string, what: string): string | null {
  if (!text.includes('\uFFFD') || isUtf8(buf.subarray(from, to))) return null;
  // The bytes, for the log (at most 12: the broker keeps a refusal's reason short).
  return `ill-formed UTF-8 in the ${what}: ${buf.subarray(from, Math.min(to, from + 12)).toString('hex')}${to - from > 12 ? '…' : ''}`;
}

/** A protocol error the front found in a frame mqtt-packet would read without complaint: the connection ends with it. */
class Refusal {
  constructor(readonly message: string) {}
}

/** A SUBSCRIBE as mqtt-packet emits it (MQTT 3.1.1 or 3.1; in bridge mode each subscription says so). */
interface ParsedSubscribe {
  cmd: 'subscribe'; retain: false; qos: 1; dup: false; length: number; topic: null; payload: null;
  subscriptions: Array<{ topic: string; qos: number; rh?: 0; rap?: true; nl?: true }>; messageId: number;
}

/**
 * A SUBSCRIBE in [body, end) as mqtt-packet would emit it; a `Refusal` for a topic filter of
 * ill-formed UTF-8 or a packet id of 0 in a packet otherwise whole; null for what mqtt-packet would refuse (it names the error).
 */
function parseSubscribe(buf: Buffer, body: number, end: number, bridge: boolean): ParsedSubscribe | Refusal | null {
  if (end - body < 2) return null;
  const p: ParsedSubscribe = {
    cmd: 'subscribe', retain: false, qos: 1, dup: false, length: end - body, topic: null, payload: null,
    subscriptions: [], messageId: (buf[body]! << 8) | buf[body + 1]!,
  };
  let at = body + 2;
  if (at === end) return null;
  let fault: string | null = null;
  while (at < end) {
    const to = fieldEnd(buf, at, end);
    if (to < 0 || to === end) return null; // the topic runs past the packet, or no options byte follows it
    const options = buf[to]!;
    if ((options & 0xfc) !== 0 || (options & 3) === 3) return null;
    const topic = buf.toString('utf8', at + 2, to);
    fault ??= textFault(buf, at + 2, to, topic, 'SUBSCRIBE topic filter');
    p.subscriptions.push(bridge ? { topic, qos: options & 3, rh: 0, rap: true, nl: true } : { topic, qos: options & 3 });
    at = to + 1;
  }
  if (p.messageId === 0) fault ??= 'subscribe: packet identifier 0 (MQTT-2.3.1-1)';
  return fault === null ? p : new Refusal(fault);
}

/** An UNSUBSCRIBE as mqtt-packet emits it (MQTT 3.1.1 or 3.1). */
interface ParsedUnsubscribe {
  cmd: 'unsubscribe'; retain: false; qos: 1; dup: false; length: number; topic: null; payload: null;
  unsubscriptions: string[]; messageId: number;
}

/** What the gate says of a SUBSCRIBE's filter, said of an UNSUBSCRIBE's (Aedes has no hook for it). */
function unsubscribeProblem(filter: string): string | null {
  const problem = filterProblem(filter);
  return problem === null ? null : `unsubscribe: ${problem}`;
}

/**
 * An UNSUBSCRIBE in [body, end) with at least one topic filter, as `parseSubscribe` reads a
 * SUBSCRIBE; a `Refusal` for a filter that is not well-formed UTF-8 or not a valid filter, a
 * packet id of 0, or no filter at all (MQTT-3.10.3-2; mqtt-packet emits an empty list).
 */
function parseUnsubscribe(buf: Buffer, body: number, end: number): ParsedUnsubscribe | Refusal | null {
  if (end - body < 2) return null;
  if (end - body === 2) return new Refusal('unsubscribe: no topic filter (MQTT-3.10.3-2)');
  const p: ParsedUnsubscribe = {
    cmd: 'unsubscribe', retain: false, qos: 1, dup: false, length: end - body, topic: null, payload: null,
    unsubscriptions: [], messageId: (buf[body]! << 8) | buf[body + 1]!,
  };
  let at = body + 2;
  let fault: string | null = null;
  while (at < end) {
    const to = fieldEnd(buf, at, end);
    if (to < 0) return null;
    const topic = buf.toString('utf8', at + 2, to);
    fault ??= textFault(buf, at + 2, to, topic, 'UNSUBSCRIBE topic filter') ?? unsubscribeProblem(topic);
    p.unsubscriptions.push(topic);
    at = to;
  }
  if (p.messageId === 0) fault ??= 'unsubscribe: packet identifier 0 (MQTT-2.3.1-1)';
  return fault === null ? p : new Refusal(fault);
}

/** A parser's settings after an MQTT 3.1.1 CONNECT without bridge mode (see `frame`). */
const SETTINGS_311: { readonly protocolVersion: 4 } = Object.freeze({ protocolVersion: 4 });

/** A parser's settings after `connect`: all mqtt-packet reads of them later. */
function settingsOf(connect: ParsedConnect): MqttPacketParser['settings'] {
  if (connect.protocolVersion === 4 && !connect.bridgeMode) return SETTINGS_311;
  return Object.freeze(connect.bridgeMode ? { protocolVersion: connect.protocolVersion, bridgeMode: true } : { protocolVersion: connect.protocolVersion });
}

/** A parser's front: the chunks of an incomplete frame and their length, and mqtt-packet's own `parse`. */
class Front {
  pending: Buffer[] | null = null;
  pendingLength = 0;
  constructor(readonly whole: (this: MqttPacketParser, buf: Buffer) => number, readonly shortcut: PublishShortcut | null) {}
}

const FRONTS = new Slot<MqttPacketParser, Front>('aiot-sim parser front');

/**
 * Put the front on `parser`: its `parse()` is replaced; mqtt-packet keeps everything it is handed
 * (the CONNECT, SUBSCRIBE, ...) and its listeners and error handling are untouched. With a
 * `shortcut`, a QoS 0 PUBLISH is offered to it before it goes to Aedes' handlers. Every parser
 * shares the functions below (`this` in `frontParse` is the parser); what each keeps of its own
 * is one `Front`.
 */
export function frontParser(parser: MqttPacketParser, shortcut: PublishShortcut | null = null): void {
  FRONTS.set(parser, new Front(parser.parse, shortcut));
  parser.parse = frontParse;
}

function frontParse(this: MqttPacketParser, buf: Buffer): number {
  const front = FRONTS.get(this)!;
  const pending = front.pending;
  if (pending === null) {
    frames(this, front, buf, 0);
    return front.pendingLength;
  }
  const before = front.pendingLength;
  pending.push(buf);
  front.pendingLength += buf.length;
  const need = frameLength(pending);
  if (need === INCOMPLETE || (need !== MALFORMED && front.pendingLength < need)) return front.pendingLength;
  front.pending = null;
  front.pendingLength = 0;
  if (need === MALFORMED) {
    front.whole.call(this, Buffer.concat(pending)); // mqtt-packet names the error
    return 0;
  }
  // The frame is complete: join its pieces once, then go on with the rest of `buf`.
  const fromBuf = need - before;
  pending[pending.length - 1] = buf.subarray(0, fromBuf);
  frames(this, front, Buffer.concat(pending, need), 0);
  if (fromBuf < buf.length && !this.error) frames(this, front, buf, fromBuf);
  return front.pendingLength;
}

/** Frames of `buf` from `from`; an incomplete last frame is kept. */
function frames(parser: MqttPacketParser, front: Front, buf: Buffer, from: number): void {
  let at = from;
  const n = buf.length;
  while (at < n && !parser.error) {
    const len = remainingLength(buf, at + 1, n);
    if (len === MALFORMED) {
      front.whole.call(parser, buf.subarray(at)); // mqtt-packet names the error
      return;
    }
    if (len === INCOMPLETE) break;
    const body = at + 1 + remainingLengthSize(len);
    const end = body + len;
    if (end > n) break;
    frame(parser, front, buf, at, body, end);
    at = end;
  }
  if (at < n && !parser.error) {
    front.pending = [at === 0 ? buf : buf.subarray(at)];
    front.pendingLength = n - at;
  }
}

/** Decode one whole frame [at, end) whose Remaining Length ends at `body`. */
function frame(parser: MqttPacketParser, front: Front, buf: Buffer, at: number, body: number, end: number): void {
  const b0 = buf[at]!;
  const type = b0 >> 4;
  const version = parser.settings.protocolVersion;
  if (version === undefined && b0 === CONNECT << 4) {
    // The first packet: an MQTT 3.1.1 CONNECT is read here (a fleet connecting is all CONNECTs).
    // mqtt-packet, parsing one, keeps the whole packet as its settings (the password, the will's
    // payload, for as long as the connection lasts) and reads only its protocolVersion and
    // bridgeMode from it later: those are what it gets here.
    const p = parseConnect(buf, body, end);
    if (p instanceof Refusal) return refuse(parser, p.message);
    if (p) {
      parser.settings = settingsOf(p);
      parser.emit('packet', p);
      return;
    }
  } else if (version === 4 || version === 3) {
    if (type === PUBLISH) {
      const qos = (b0 >> 1) & 3;
      if (qos < 3 && body + 2 <= end) {
        const topicEnd = body + 2 + ((buf[body]! << 8) | buf[body + 1]!);
        const payloadAt = qos > 0 ? topicEnd + 2 : topicEnd;
        if (qos > 0 && topicEnd <= end && payloadAt > end) {
          // mqtt-packet would read the packet id from the next packet's bytes (or emit -1).
          parser.error = new Error('Cannot parse messageId');
          parser.emit('error', parser.error);
          return;
        }
        if (payloadAt <= end) {
          const p = publishPacket(buf, b0, body, topicEnd, end);
          const fault = publishFault(buf, body, topicEnd, p);
          if (fault !== null) return refuse(parser, fault);
          if (qos === 0 && front.shortcut !== null && parser.client !== undefined && front.shortcut(parser.client, p)) return;
          parser.emit('packet', p);
          return;
        }
      }
    } else if (type === PUBACK && b0 === 0x40 && end - body === 2) {
      const p = new ParsedPacket('puback', false, 0, false, 2, null, null);
      p.messageId = (buf[body]! << 8) | buf[body + 1]!;
      parser.emit('packet', p);
      return;
    } else if (b0 === ((SUBSCRIBE << 4) | 2)) {
      const p = parseSubscribe(buf, body, end, (parser.settings as { bridgeMode?: boolean }).bridgeMode === true);
      if (p instanceof Refusal) return refuse(parser, p.message);
      if (p) {
        parser.emit('packet', p);
        return;
      }
    } else if (b0 === ((UNSUBSCRIBE << 4) | 2)) {
      const p = parseUnsubscribe(buf, body, end);
      if (p instanceof Refusal) return refuse(parser, p.message);
      if (p) {
        parser.emit('packet', p);
        return;
      }
    } else if (b0 === PINGREQ << 4 && end === body) {
      parser.emit('packet', new ParsedPacket('pingreq', false, 0, false, 0, null, null));
      return;
    } else if (b0 === DISCONNECT << 4 && end === body) {
      // mqtt-packet reads it alike, after some 30 debug() calls each with its array of arguments.
      parser.emit('packet', new ParsedPacket('disconnect', false, 0, false, 0, null, null));
      return;
    }
  }
  front.whole.call(parser, at === 0 && end === buf.length ? buf : buf.subarray(at, end));
}

/** End the connection's reading with the error `message`, as mqtt-packet ends it with the errors it finds. */
function refuse(parser: MqttPacketParser, message: string): void {
  parser.error = new Error(message);
  parser.emit('error', parser.error);
}

/**
 * Offer `frame`, one whole packet, straight to the front's shortcut, as if it had been read:
 * taken (true) only when it is a QoS 0 PUBLISH of a connected MQTT 3.1.1 session, nothing is
 * pending in the front (no part of a frame read before) and the shortcut takes it. Anything else
 * is left to be read the usual way (false), with nothing of it consumed. The caller says that
 * nothing the connection sent before is still unread or being handled (see broker.ts).
 */
export function offerPublish(parser: MqttPacketParser, frame: Buffer): boolean {
  const front = FRONTS.get(parser);
  if (front === undefined || front.shortcut === null || front.pending !== null || parser.error || parser.client === undefined) return false;
  const version = parser.settings.protocolVersion;
  const b0 = frame[0]!;
  if ((version !== 4 && version !== 3) || (b0 & 0xf6) !== PUBLISH << 4) return false;
  const n = frame.length;
  const len = remainingLength(frame, 1, n);
  if (len < 0) return false;
  const body = 1 + remainingLengthSize(len);
  if (body + len !== n || body + 2 > n) return false;
  const topicEnd = body + 2 + ((frame[body]! << 8) | frame[body + 1]!);
  if (topicEnd > n) return false;
  const p = publishPacket(frame, b0, body, topicEnd, n);
  // What MQTT does not allow is left to be read the usual way, which refuses it.
  return publishFault(frame, body, topicEnd, p) === null && front.shortcut(parser.client, p);
}

/**
 * Why a PUBLISH read by `publishPacket` breaks a rule mqtt-packet does not check: packet id 0 at
 * QoS 1 or 2 (MQTT-2.3.1-1), a topic of ill-formed UTF-8; null when none.
 */
function publishFault(buf: Buffer, body: number, topicEnd: number, p: ParsedPacket): string | null {
  if (p.messageId === 0) return 'publish: packet identifier 0 (MQTT-2.3.1-1)';
  return textFault(buf, body + 2, topicEnd, p.topic!, 'PUBLISH topic');
}

/** The PUBLISH in [body, end) of `buf` (first byte `b0`, topic ending at `topicEnd`), as mqtt-packet emits it. */
function publishPacket(buf: Buffer, b0: number, body: number, topicEnd: number, end: number): ParsedPacket {
  const qos = (b0 >> 1) & 3;
  const p = new ParsedPacket('publish', (b0 & 1) !== 0, qos, (b0 & 8) !== 0, end - body, buf.toString('utf8', body + 2, topicEnd), null);
  if (qos > 0) p.messageId = (buf[topicEnd]! << 8) | buf[topicEnd + 1]!;
  p.payload = buf.subarray(qos > 0 ? topicEnd + 2 : topicEnd, end);
  return p;
}

const INCOMPLETE = -1;
const MALFORMED = -2;

/** The Remaining Length starting at buf[i] (1 to 4 bytes, 7 bits each), INCOMPLETE or MALFORMED. */
function remainingLength(buf: Uint8Array, i: number, n: number): number {
  let value = 0;
  let mul = 1;
  for (let k = 0; k < 4; k++, i++) {
    if (i >= n) return INCOMPLETE;
    const byte = buf[i]!;
    value += (byte & 0x7f) * mul;
    if ((byte & 0x80) === 0) return value;
    mul *= 128;
  }
  return MALFORMED;
}

/** Length of the whole frame at the start of `chunks` (fixed header included), INCOMPLETE or MALFORMED. */
function frameLength(chunks: readonly Buffer[]): number {
  const head = new Uint8Array(5);
  let got = 0;
  for (const c of chunks) {
    for (let i = 0; i < c.length && got < 5; i++) head[got++] = c[i]!;
    if (got === 5) break;
  }
  if (got < 2) return INCOMPLETE;
  const len = remainingLength(head, 1, got);
  if (len < 0) return len;
  return 1 + remainingLengthSize(len) + len;
}
