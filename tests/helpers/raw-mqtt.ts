/**
 * A raw MQTT 3.1.1 client over the broker's in-process pipe, built from mqtt-packet: it writes
 * exactly the bytes it is given, in one write, so a whole batch of packets reaches the broker in
 * one read (what a fast publisher's socket buffer looks like). Bounded waits only.
 */
import mqttPacket, { type Packet } from 'mqtt-packet';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { createWebSocketStream } from 'ws';
import type { EmbeddedBroker, Transport } from '../../src/broker/broker.js';
import { encode } from './mqtt-bytes.js';
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

export { connectPacket, encode, fixedHeader } from './mqtt-bytes.js';

export function publishPacket(topic: string, payload: string | Buffer): Buffer {
  return encode({ cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos: 0, retain: false, dup: false });
}

/** The raw client over any byte stream: every packet the broker sends, parsed, and whether it closed. */
function rawClient(stream: Duplex): RawClient & { whenClosed(ms?: number): Promise<void> } {
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const packets: Packet[] = [];
  let closed = false;
  const onClose: Array<() => void> = [];
  stream.on('data', (d: Buffer) => parser.parse(d));
  // The broker's end closing shows as 'end' or 'close' depending on the stream (a WebSocket stream emits no 'close').
  const close = (): void => { closed = true; for (const f of onClose.splice(0)) f(); };
  stream.on('end', close);
  stream.on('close', close);
  stream.on('error', () => undefined);
  parser.on('packet', (p) => packets.push(p));
  parser.on('error', () => undefined);
  return {
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
    whenClosed(ms = 5000) {
      if (closed) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`the broker did not close the connection within ${ms} ms`)), ms);
        onClose.push(() => { clearTimeout(t); resolve(); });
      });
    },
    destroy: () => { stream.destroy(); },
  };
}

/** A raw byte stream to the broker over `transport`, open (no CONNECT sent). */
export async function rawStream(broker: EmbeddedBroker, transport: Transport): Promise<Duplex> {
  if (transport === 'in-process') return broker.connectInProcess();
  if (transport === 'tcp') {
    const a = broker.mqttAddress!;
    const s = netConnect(a.port, a.host);
    await new Promise<void>((resolve, reject) => { s.once('connect', () => resolve()); s.once('error', reject); });
    return s;
  }
  const a = broker.wsAddress!;
  const ws = new WebSocket(`ws://${a.host}:${a.port}/mqtt`, 'mqtt');
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  return createWebSocketStream(ws);
}

/** Connect (CONNECT/CONNACK) a raw client over the in-process pipe. Rejects if the broker refuses. */
export function rawConnectInProcess(broker: EmbeddedBroker, opts: { clientId: string; username?: string; password?: string }): Promise<RawClient> {
  return rawConnect(broker, 'in-process', opts);
}

/** Connect (CONNECT/CONNACK) a raw client over `transport`. Rejects if the broker refuses. */
export async function rawConnect(broker: EmbeddedBroker, transport: Transport, opts: { clientId: string; username?: string; password?: string }): Promise<RawClient & { whenClosed(ms?: number): Promise<void> }> {
  const client = rawClient(await rawStream(broker, transport));
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
  socket: Socket;
  /** Resolves when the broker closed the connection; rejects after `ms`. */
  whenClosed(ms?: number): Promise<void>;
}

/** Open a TCP connection to `port` on the loopback (no CONNECT sent). */
export async function rawTcp(port: number, host = '127.0.0.1'): Promise<RawSocket> {
  const socket = netConnect({ host, port });
  const client = rawClient(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => reject(new Error(`connection to ${host}:${port} closed before it opened`)));
  });
  return { ...client, socket };
}
