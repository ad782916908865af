/**
 * The MQTT 3.1.1 packets a fleet session (a device's or a cloud client's) exchanges with its broker,
 * written and read by hand: the fleet (see engine.ts) needs only CONNECT, PUBLISH (QoS 0 and 1),
 * PUBACK, SUBSCRIBE, PINGREQ and DISCONNECT going up, and CONNACK, PUBLISH, PUBACK, SUBACK,
 * UNSUBACK and PINGRESP coming down. Each packet is one exactly-sized buffer (a PUBLISH: a slice
 * of a shared slab, see `encodePublish`) written in one pass, with no packet objects in between
 * (OASIS MQTT 3.1.1, sections 2 and 3).
 */
import { remainingLengthSize, writeRemainingLength } from '../../contract/mqtt-length.js';
import { valueJson, type PropertyFrame, type Scalar } from '../../contract/wire.js';

/** Fixed header types (the high nibble of the first byte). */
export const PacketType = {
  CONNECT: 1, CONNACK: 2, PUBLISH: 3, PUBACK: 4, PUBREC: 5, PUBREL: 6, PUBCOMP: 7,
  SUBSCRIBE: 8, SUBACK: 9, UNSUBSCRIBE: 10, UNSUBACK: 11, PINGREQ: 12, PINGRESP: 13, DISCONNECT: 14,
} as const;

/** CONNACK return codes (3.2.2.3) as mqtt.js words them, so refusals read the same either way. */
export const CONNACK_REASONS: Readonly<Record<number, string>> = {
  1: 'Connection refused: Unacceptable protocol version',
  2: 'Connection refused: Identifier rejected',
  3: 'Connection refused: Server unavailable',
  4: 'Connection refused: Bad username or password',
  5: 'Connection refused: Not authorized',
};

export const PINGREQ = Buffer.from([PacketType.PINGREQ << 4, 0]);
export const DISCONNECT = Buffer.from([PacketType.DISCONNECT << 4, 0]);

function writeString(buf: Buffer, o: number, s: string, len: number): number {
  buf[o] = len >> 8;
  buf[o + 1] = len & 0xff;
  if (len) buf.write(s, o + 2, len, 'utf8');
  return o + 2 + len;
}

export interface ConnectFields {
  clientId: string;
  username: string;
  password: string;
  keepaliveSeconds: number;
  /** A persistent session (clean session off) when false. */
  clean: boolean;
  /** The last will; none when absent (cloud clients have none). */
  will?: { topic: string; payload: string; qos: 0 | 1; retain: boolean };
}

/** CONNECT (3.1) with protocol level 4, credentials and, if given, a last will. */
export function encodeConnect(c: ConnectFields): Buffer {
  const will = c.will;
  const idLen = Buffer.byteLength(c.clientId);
  const userLen = Buffer.byteLength(c.username);
  const passLen = Buffer.byteLength(c.password);
  const willTopicLen = will ? Buffer.byteLength(will.topic) : 0;
  const willLen = will ? Buffer.byteLength(will.payload) : 0;
  const rem = 10 + 2 + idLen + (will ? 2 + willTopicLen + 2 + willLen : 0) + 2 + userLen + 2 + passLen;
  const buf = Buffer.allocUnsafe(1 + remainingLengthSize(rem) + rem);
  buf[0] = PacketType.CONNECT << 4;
  let o = writeRemainingLength(buf, 1, rem);
  o = writeString(buf, o, 'MQTT', 4);
  buf[o++] = 4;
  // username, password, will retain, will QoS, will flag, clean session
  const willFlags = will ? (will.retain ? 0x20 : 0) | (will.qos << 3) | 0x04 : 0;
  buf[o++] = 0x80 | 0x40 | willFlags | (c.clean ? 0x02 : 0);
  buf[o++] = c.keepaliveSeconds >> 8;
  buf[o++] = c.keepaliveSeconds & 0xff;
  o = writeString(buf, o, c.clientId, idLen);
  if (will) {
    o = writeString(buf, o, will.topic, willTopicLen);
    o = writeString(buf, o, will.payload, willLen);
  }
  o = writeString(buf, o, c.username, userLen);
  writeString(buf, o, c.password, passLen);
  return buf;
}

/**
 * Where PUBLISH packets are written: a slab cut into consecutive packets, as Node's own pool
 * (`Buffer.allocUnsafe`) cuts small buffers out of 8 KB. Each packet is written with room for the
 * longest header in front, its topic and payload encoded once, straight into place, and the header
 * filled in before them once their length is known: one pass over each string instead of a
 * measuring pass (`Buffer.byteLength`) and a writing one.
 */
const SLAB_BYTES = 8 * 1024;
let slab = Buffer.allocUnsafe(SLAB_BYTES);
let slabUsed = 0;

/** Room for a packet of at most `most` bytes at `slabUsed` (a new slab when the old one is full). */
function room(most: number): Buffer {
  if (slabUsed + most > SLAB_BYTES) {
    slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, most));
    slabUsed = 0;
  }
  return slab;
}

/** PUBLISH (3.3); `id` is the packet identifier of a QoS 1 message (ignored at QoS 0). */
export function encodePublish(topic: string, payload: string, qos: 0 | 1, retain: boolean, id: number): Buffer {
  // At most 3 bytes a UTF-16 code unit; 1 + 4 bytes of fixed header, 2 + 2 of lengths and id.
  const buf = room(9 + 3 * (topic.length + payload.length));
  const topicAt = slabUsed + 7;
  const topicLen = buf.write(topic, topicAt, 'utf8');
  let o = topicAt + topicLen;
  if (qos) {
    buf[o++] = id >> 8;
    buf[o++] = id & 0xff;
  }
  if (payload.length) o += buf.write(payload, o, 'utf8');
  return seal(buf, topicAt, topicLen, o, qos, retain);
}

/**
 * A property change's PUBLISH (QoS 0, not retained) written from its frame (contract/wire.ts):
 * the same bytes as `encodePublish(frame.topic(did), frame.payload(didJson, value, ts), 0, false, 0)`
 * (tested), without making the topic and the payload as strings first.
 */
export function encodePropertyPublish(frame: PropertyFrame, did: string, didJson: string, value: Scalar, ts: number): Buffer {
  const v = valueJson(value);
  const buf = room(7 + frame.mostBytes(did, didJson, v));
  const topicAt = slabUsed + 7;
  const topicEnd = frame.writeTopic(buf, topicAt, did);
  const end = frame.writePayload(buf, topicEnd, didJson, v, ts);
  return seal(buf, topicAt, topicEnd - topicAt, end, 0, false);
}

/** The header in front of a PUBLISH's topic (and its length) at `topicAt`, the packet ending at `end`: the packet. */
function seal(buf: Buffer, topicAt: number, topicLen: number, end: number, qos: 0 | 1, retain: boolean): Buffer {
  const rem = end - topicAt + 2;
  const start = topicAt - 3 - remainingLengthSize(rem);
  buf[start] = (PacketType.PUBLISH << 4) | (qos << 1) | (retain ? 1 : 0);
  writeRemainingLength(buf, start + 1, rem);
  buf[topicAt - 2] = topicLen >> 8;
  buf[topicAt - 1] = topicLen & 0xff;
  slabUsed = end;
  return buf.subarray(start, end);
}

/** The same PUBLISH sent again after a reconnection: DUP set (3.3.1.1). */
export function markDuplicate(publish: Buffer): Buffer {
  publish[0] = publish[0]! | 0x08;
  return publish;
}

/** PUBACK (3.4) for packet `id`. */
export function encodePuback(id: number): Buffer {
  const buf = Buffer.allocUnsafe(4);
  buf[0] = PacketType.PUBACK << 4;
  buf[1] = 2;
  buf[2] = id >> 8;
  buf[3] = id & 0xff;
  return buf;
}

/** SUBSCRIBE (3.8) to `filters`, each at `qos`. */
export function encodeSubscribe(id: number, filters: readonly string[], qos: 0 | 1): Buffer {
  const lens = filters.map((f) => Buffer.byteLength(f));
  const rem = 2 + lens.reduce((n, l) => n + 2 + l + 1, 0);
  const buf = Buffer.allocUnsafe(1 + remainingLengthSize(rem) + rem);
  buf[0] = (PacketType.SUBSCRIBE << 4) | 0x02;
  let o = writeRemainingLength(buf, 1, rem);
  buf[o++] = id >> 8;
  buf[o++] = id & 0xff;
  filters.forEach((f, i) => {
    o = writeString(buf, o, f, lens[i]!);
    buf[o++] = qos;
  });
  return buf;
}

/**
 * Where one packet sits in a receive buffer: its first byte, and its body (after the fixed
 * header). `length` is how many bytes the whole packet takes; 0 when the buffer does not hold a
 * complete packet yet; -1 when the Remaining Length is malformed.
 */
export interface Frame { first: number; body: number; length: number }

/** Find the packet starting at `o` in `buf[0, end)` (see Frame); fills and returns `out`. */
export function frameAt(buf: Buffer, o: number, end: number, out: Frame): Frame {
  out.length = 0;
  if (end - o < 2) return out;
  let n = 0;
  let mult = 1;
  let i = o + 1;
  for (let k = 0; ; k++) {
    if (k === 4) {
      out.length = -1;
      return out;
    }
    if (i >= end) return out;
    const byte = buf[i++]!;
    n += (byte & 0x7f) * mult;
    mult *= 0x80;
    if (!(byte & 0x80)) break;
  }
  if (i + n > end) return out;
  out.first = buf[o]!;
  out.body = i;
  out.length = i + n - o;
  return out;
}
