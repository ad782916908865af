/**
 * MQTT 3.1.1 packets as bytes, for clients that write exactly what they are given (raw-mqtt.ts,
 * the soak). Nothing here imports the package, so the benchmark can share it.
 */
import mqttPacket, { type Packet } from 'mqtt-packet';

/** A fixed header announcing `length` bytes of body (Remaining Length as a varint), for hand-made packets. */
export function fixedHeader(first: number, length: number): Buffer {
  const out = [first];
  let n = length;
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

export function encode(packet: Packet): Buffer {
  return mqttPacket.generate(packet);
}

/** A CONNECT packet (MQTT 3.1.1); `clean` defaults to true, `keepalive` to 0. */
export function connectPacket(opts: { clientId: string; clean?: boolean; keepalive?: number; username?: string; password?: string; will?: { topic: string; payload: string } }): Buffer {
  const p: Packet = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: opts.clean ?? true, clientId: opts.clientId, keepalive: opts.keepalive ?? 0 };
  if (opts.username !== undefined) p.username = opts.username;
  if (opts.password !== undefined) p.password = Buffer.from(opts.password);
  if (opts.will) p.will = { topic: opts.will.topic, payload: Buffer.from(opts.will.payload), qos: 0, retain: false };
  return encode(p);
}
