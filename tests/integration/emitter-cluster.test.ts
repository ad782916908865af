/**
 * The flood-safe emitter over a cluster's emitter (mqemitter-redis on a real Redis): mqemitter-redis
 * completes a message a second time, with the error, when its completion throws
 * (`publish().then(done).catch(done)`). That second completion must stay the thrown message's own:
 * a message emitted meanwhile (from inside the first completion, as Aedes publishes) completes once,
 * when it is delivered, without the other's error.
 */
import mqemitterRedis from 'mqemitter-redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FloodSafeEmitter, type Inner } from '../../src/broker/emitter.js';
import { closeRedis, openRedis } from '../../src/platform/redis-store.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let redis: RedisServer;
beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => { await redis?.stop(); });

describe('FloodSafeEmitter over mqemitter-redis', () => {
  it('a completion that throws, completed again by the emitter underneath, never completes a message emitted meanwhile', async () => {
    const subConn = openRedis(redis.url);
    const pubConn = openRedis(redis.url);
    const inner = (mqemitterRedis as unknown as (o: object) => Inner)({ subConn, pubConn });
    const e = new FloodSafeEmitter(4, inner);
    try {
      const calls: string[] = [];
      let second: Promise<void> = Promise.resolve();
      await new Promise<void>((resolve) => {
        let thrown = false;
        e.emit({ topic: 'lab/a' }, (err) => {
          calls.push(`a ${err?.message ?? 'ok'}`);
          if (thrown) return resolve();
          thrown = true;
          // Aedes publishes from inside a completion; that message must get only its own.
          second = new Promise<void>((done) => { e.emit({ topic: 'lab/b' }, (err2) => { calls.push(`b ${err2?.message ?? 'ok'}`); done(); }); });
          throw new Error('boom');
        });
      });
      await second;
      await new Promise((r) => setTimeout(r, 50)); // anything late would land here
      expect(calls).toEqual(['a ok', 'a boom', 'b ok']);
    } finally {
      await new Promise<void>((r) => { inner.close(() => r()); });
      await closeRedis(subConn);
      await closeRedis(pubConn);
    }
  });
});
