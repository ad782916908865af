/**
 * What the broker uses of a connection. A Node Duplex has it (a TCP socket, a WebSocket stream,
 * an in-process pipe), and so does a fleet session's lean link (sim/fleet/link.ts), which is an
 * EventEmitter and not a stream: the broker and Aedes read it with 'readable' and `read()`, write
 * it with `write()`, watch 'end', 'error', 'close' and 'drain', and destroy it.
 */
import type { EventEmitter } from 'node:events';

export type WriteCallback = (err?: Error | null) => void;

export interface BrokerConnection extends EventEmitter {
  readonly destroyed: boolean;
  readonly writable: boolean;
  readonly writableLength: number;
  /** The transport hands the peer's bytes over (null: the peer's end). */
  push(chunk: Buffer | string | null, encoding?: BufferEncoding): boolean;
  read(size?: number | null): Buffer | string | null;
  write(chunk: Buffer | string, cb?: WriteCallback): boolean;
  end(cb?: () => void): this;
  destroy(err?: Error): this;
}

/**
 * A connection whose peer lives in this process and writes whole packets (a fleet session's link)
 * may offer one to the broker before it pushes it: `direct` is set by the broker when it serves
 * the connection. It takes the packet at once (true) when it can serve it as if it had been read
 * then, which it says only when nothing the peer sent before is still unread or being handled;
 * otherwise (false) the peer pushes it as usual, and it is read in its turn.
 */
export interface DirectLane {
  direct: ((conn: BrokerConnection, packet: Buffer) => boolean) | null;
}
