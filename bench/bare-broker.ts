/**
 * The least a Node.js MQTT server can do per connection, as a floor for the connect-rate
 * comparison: a `net` server on the calling thread (where the embedded broker runs in `bench`)
 * that answers CONNECT with CONNACK, SUBSCRIBE with SUBACK, PINGREQ with PINGRESP and QoS 1
 * PUBLISH with PUBACK, and does nothing else (no sessions, no routing, no authentication). What
 * the embedded broker spends per connection above this is Aedes' and ours; below it is Node's
 * sockets and streams, which no broker layer written for Node avoids.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { procCpuSeconds } from './common.js';

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const PINGRESP = Buffer.from([0xd0, 0x00]);

export interface BareBroker {
  url: string;
  /** CONNECT packets answered. */
  readonly connects: number;
  /**
   * This thread's CPU time from the first CONNECT to the `expect`-th, per connection, µs (null
   * until that many came): the floor beside the embedded broker's CPU per connection.
   */
  readonly cpuUsPerConnection: number | null;
  close(): Promise<void>;
}

export async function startBareBroker(expect: number): Promise<BareBroker> {
  let connects = 0;
  let cpuAtFirst: number | null = null;
  let cpuUsPerConnection: number | null = null;
  const open = new Set<Socket>();
  const server: Server = createServer({ noDelay: true }, (socket: Socket) => {
    let pending: Buffer | null = null;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
      pending = null;
      let at = 0;
      for (;;) {
        const frame = frameAt(buf, at);
        if (frame === null) break;
        const type = buf[at]! >> 4;
        const body = frame.bodyAt;
        if (type === 1) {
          connects++;
          socket.write(CONNACK);
          if (connects === 1) cpuAtFirst = procCpuSeconds('/proc/thread-self/stat');
          else if (connects === expect) {
            const cpu = procCpuSeconds('/proc/thread-self/stat');
            if (cpu !== null && cpuAtFirst !== null) cpuUsPerConnection = ((cpu - cpuAtFirst) / (expect - 1)) * 1e6;
          }
        } else if (type === 8) {
          // SUBSCRIBE: packet id, then (filter, QoS) pairs; every filter granted QoS 0.
          let filters = 0;
          for (let i = body + 2; i + 2 <= frame.end; i += 2 + buf.readUInt16BE(i) + 1) filters++;
          const ack = Buffer.alloc(4 + filters);
          ack[0] = 0x90;
          ack[1] = 2 + filters;
          buf.copy(ack, 2, body, body + 2);
          socket.write(ack);
        } else if (type === 12) {
          socket.write(PINGRESP);
        } else if (type === 3 && ((buf[at]! >> 1) & 3) === 1) {
          const topicEnd = body + 2 + buf.readUInt16BE(body);
          socket.write(Buffer.from([0x40, 0x02, buf[topicEnd]!, buf[topicEnd + 1]!]));
        } else if (type === 14) {
          socket.end();
          return;
        }
        at = frame.end;
      }
      if (at < buf.length) pending = buf.subarray(at);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('the bare broker has no TCP address');
  return {
    url: `mqtt://127.0.0.1:${addr.port}`,
    get connects() { return connects; },
    get cpuUsPerConnection() { return cpuUsPerConnection; },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of open) s.destroy();
    }),
  };
}

/** The whole frame starting at `at` (its body's start and its end), or null if it has not all come. */
function frameAt(buf: Buffer, at: number): { bodyAt: number; end: number } | null {
  let len = 0;
  let mul = 1;
  let i = at + 1;
  for (;;) {
    if (i >= buf.length) return null;
    const b = buf[i++]!;
    len += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) break;
    mul *= 128;
  }
  return i + len <= buf.length ? { bodyAt: i, end: i + len } : null;
}
