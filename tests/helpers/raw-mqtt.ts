/**
 * A raw MQTT 3.1.1 client over the broker's in-process pipe, built from mqtt-packet: it writes
 * exactly the bytes it is given, in one write, so a whole batch of packets reaches the broker in
 * one read (what a fast publisher's socket buffer looks like). Bounded waits only.
 */
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { Duplex } from 'node:stream';
import type { EmbeddedBroker } from '../../src/broker/broker.js';
import { until } from './mqtt.js';

export interface RawClient {
  stream: Duplex;
  /** Every packet received from the broker, in order. */
  packets: Packet[];
  closed: () => boolean;
  write(buf: Buffer): void;
  waitFor(cmd: Packet['cmd'], ms?: number): Promise<Packet>;
  destroy(): void;
}

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

export function publishPacket(topic: string, payload: string | Buffer): Buffer {
  return encode({ cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos: 0, retain: false, dup: false });
}

/** Connect (CONNECT/CONNACK) a raw client over the in-process pipe. Rejects if the broker refuses. */
export async function rawConnectInProcess(broker: EmbeddedBroker, opts: { clientId: string; username?: string; password?: string }): Promise<RawClient> {
  const stream = broker.connectInProcess();
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const packets: Packet[] = [];
  let closed = false;
  stream.on('data', (d: Buffer) => parser.parse(d));
  stream.on('close', () => { closed = true; });
  stream.on('error', () => undefined);
  parser.on('packet', (p) => packets.push(p));
  const client: RawClient = {
    stream,
    packets,
    closed: () => closed,
    write: (buf) => { stream.write(buf); },
    async waitFor(cmd, ms = 5000) {
      await until(() => packets.some((p) => p.cmd === cmd) || closed, ms, `a ${cmd} packet`);
      const p = packets.find((x) => x.cmd === cmd);
      if (!p) throw new Error(`connection closed before ${cmd}`);
      return p;
    },
    destroy: () => { stream.destroy(); },
  };
  const connect: Packet = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: opts.clientId, keepalive: 0 };
  if (opts.username !== undefined) connect.username = opts.username;
  if (opts.password !== undefined) connect.password = Buffer.from(opts.password);
  client.write(encode(connect));
  const connack = await client.waitFor('connack');
  if (connack.cmd === 'connack' && connack.returnCode !== 0) {
    client.destroy();
    throw new Error(`CONNACK refused with return code ${connack.returnCode}`);
  }
  return client;
}

/** A raw byte connection to a broker's TCP listener: what it received, parsed, and whether it closed. */
export interface RawSocket extends RawClient {
  socket: import('node:net').Socket;
  /** Resolves when the broker closed the connection; rejects after `ms`. */
  whenClosed(ms?: number): Promise<void>;
}

/** Open a TCP connection to `port` on the loopback (no CONNECT sent). */
export async function rawTcp(port: number, host = '127.0.0.1'): Promise<RawSocket> {
  const { connect } = await import('node:net');
  const socket = connect({ host, port });
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const packets: Packet[] = [];
  let closed = false;
  const onClose: Array<() => void> = [];
  socket.on('data', (d: Buffer) => parser.parse(d));
  socket.on('error', () => undefined);
  socket.on('close', () => { closed = true; for (const f of onClose.splice(0)) f(); });
  parser.on('packet', (p) => packets.push(p));
  parser.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => reject(new Error(`connection to ${host}:${port} closed before it opened`)));
  });
  return {
    socket,
    stream: socket,
    packets,
    closed: () => closed,
    write: (buf) => { socket.write(buf); },
    async waitFor(cmd, ms = 5000) {
      await until(() => packets.some((p) => p.cmd === cmd) || closed, ms, `a ${cmd} packet`);
      const p = packets.find((x) => x.cmd === cmd);
      if (!p) throw new Error(`connection closed before ${cmd}`);
      return p;
    },
    whenClosed(ms = 5000) {
      if (closed) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`the broker did not close the connection within ${ms} ms`)), ms);
        onClose.push(() => { clearTimeout(t); resolve(); });
      });
    },
    destroy: () => { socket.destroy(); },
  };
}

/** A CONNECT packet (MQTT 3.1.1); `clean` defaults to true, `keepalive` to 0. */
export function connectPacket(opts: { clientId: string; clean?: boolean; keepalive?: number; username?: string; password?: string; will?: { topic: string; payload: string } }): Buffer {
  const p: Packet = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: opts.clean ?? true, clientId: opts.clientId, keepalive: opts.keepalive ?? 0 };
  if (opts.username !== undefined) p.username = opts.username;
  if (opts.password !== undefined) p.password = Buffer.from(opts.password);
  if (opts.will) p.will = { topic: opts.will.topic, payload: Buffer.from(opts.will.payload), qos: 0, retain: false };
  return encode(p);
}
