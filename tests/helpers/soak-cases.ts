/**
 * What the soak (soak.ts) sends: malformed MQTT packets of ten kinds, WebSocket frame headers and
 * the frame sizes it tries, from a small seeded generator so each run sends the same cases.
 */
import { connectPacket, encode as gen, fixedHeader } from './mqtt-bytes.js';

const MiB = 1024 * 1024;

/** A small seeded generator, so each run sends the same cases. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The malformed MQTT byte sequences, by index (each a different kind, with random parts). */
export function malformedPacket(i: number, rnd: () => number, maxPacketSize: number): Buffer {
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
  const valid = connectPacket({ clientId: `soak-m-${i}` });
  switch (i % 10) {
    case 0: return bytes(1 + Math.floor(rnd() * 400));
    case 1: return valid.subarray(0, Math.floor(rnd() * valid.length));
    case 2: return Buffer.concat([valid, bytes(Math.floor(rnd() * 200))]);
    case 3: return Buffer.concat([valid, fixedHeader(0x30, maxPacketSize + Math.floor(rnd() * 100 * MiB))]);
    case 4: return Buffer.concat([valid, Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])]);
    case 5: return Buffer.concat([valid, gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: ['a+/b', 'a#', '+x/y', 'a/\u0000'][i % 4]!, qos: 0 }] })]);
    case 6: return Buffer.concat([valid, gen({ cmd: 'publish', topic: 'soak/\u0000', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })]);
    case 7: return Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0, 0, 0, 0, 0]); // empty client id, CleanSession=0
    case 8: return connectPacket({ clientId: 'x'.repeat(1000 + Math.floor(rnd() * 64_000)) });
    default: return gen({ cmd: 'publish', topic: 'device/1/up/properties_changed/2/1', payload: bytes(20), qos: 0, retain: false, dup: false }); // before CONNECT
  }
}

/** WebSocket frame sizes: every small size, every power of two up to 4x the packet limit, and the limit's neighbours. */
export function frameSizes(maxPacketSize: number): number[] {
  const sizes = Array.from({ length: 17 }, (_, i) => i);
  for (let p = 32; p <= 4 * maxPacketSize; p *= 2) sizes.push(p);
  sizes.push(maxPacketSize - 1, maxPacketSize, maxPacketSize + 1);
  return sizes;
}

/** A masked binary WebSocket frame header for `length` bytes (the mask is zero: the payload goes as is). */
export function frameHeader(length: number): Buffer {
  if (length < 126) return Buffer.from([0x82, 0x80 | length, 0, 0, 0, 0]);
  if (length < 65_536) {
    const b = Buffer.from([0x82, 0x80 | 126, 0, 0, 0, 0, 0, 0]);
    b.writeUInt16BE(length, 2);
    return b;
  }
  const b = Buffer.alloc(14);
  b[0] = 0x82;
  b[1] = 0x80 | 127;
  b.writeBigUInt64BE(BigInt(length), 2);
  return b;
}
