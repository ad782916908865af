/**
 * The packet guard in front of a connection, on the real in-process pipe: what the reader gets,
 * what is refused and why, and a held connection taking nothing more.
 */
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createDuplexPair } from '../../src/broker/duplex-pair.js';
import { guardConnection } from '../../src/broker/packet-guard.js';
import { until } from '../helpers/mqtt.js';
import { fixedHeader, publishPacket } from '../helpers/raw-mqtt.js';

/** A guarded pipe: the peer's end to write to, what the reader read so far, and the refusals. */
function guarded(maxPacketSize = 1024): { peer: Duplex; conn: Duplex; read: () => Buffer; refused: string[]; hold: () => void } {
  const [peer, conn] = createDuplexPair();
  const refused: string[] = [];
  const guard = guardConnection(conn, maxPacketSize, (reason) => refused.push(reason));
  const chunks: Buffer[] = [];
  conn.on('readable', () => {
    for (let c = conn.read() as Buffer | null; c !== null; c = conn.read() as Buffer | null) chunks.push(c);
  });
  conn.on('error', () => undefined);
  peer.on('error', () => undefined);
  return { peer, conn, read: () => Buffer.concat(chunks), refused, hold: () => guard.hold() };
}

describe('guardConnection', () => {
  it('passes packets under the limit through unchanged, split anywhere', async () => {
    const g = guarded();
    const bytes = Buffer.concat([publishPacket('a/b', 'x'.repeat(500)), publishPacket('c', '')]);
    g.peer.write(bytes.subarray(0, 3));
    g.peer.write(bytes.subarray(3, 300));
    g.peer.write(bytes.subarray(300));
    await until(() => g.read().length === bytes.length, 5000, 'every byte read');
    expect(g.read().equals(bytes)).toBe(true);
    expect(g.refused).toEqual([]);
    expect(g.conn.destroyed).toBe(false);
  });

  it('refuses a packet over the limit: the packets before it are read, the rest never, and the connection closes', async () => {
    const g = guarded();
    const good = publishPacket('ok', 'fine');
    g.peer.write(Buffer.concat([good, fixedHeader(0x30, 100 * 1024 * 1024), Buffer.alloc(64, 1)]));
    await until(() => g.conn.destroyed, 5000, 'the guarded end destroyed');
    expect(g.refused).toEqual(['packet too large']);
    expect(g.read().equals(good)).toBe(true);
  });

  it('refuses a malformed Remaining Length once', async () => {
    const g = guarded();
    g.peer.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    await until(() => g.conn.destroyed, 5000, 'the guarded end destroyed');
    expect(g.refused).toEqual(['malformed remaining length']);
    expect(g.read().length).toBe(0);
  });

  it('a held connection takes nothing more from its peer: the peer waits, as behind a reader that stopped', async () => {
    const g = guarded();
    const first = publishPacket('first', '1');
    g.peer.write(first);
    await until(() => g.read().length === first.length, 5000, 'the first packet read');
    g.hold();
    const second = publishPacket('second', '2');
    // The pipe hands a write to the other end at once: had it been taken, it would be buffered now.
    g.peer.write(second);
    expect(g.conn.readableLength).toBe(0);
    expect(g.peer.writableLength).toBe(second.length);
    g.conn.destroy();
    await until(() => g.peer.destroyed, 5000, 'both ends closed');
    expect(g.read().equals(first)).toBe(true);
    expect(g.refused).toEqual([]);
  });
});
