import { describe, expect, it } from 'vitest';
import { FloodSafeEmitter } from '../../src/broker/emitter.js';

describe('FloodSafeEmitter', () => {
  it('drains a long queue of synchronously completing messages without deep recursion', async () => {
    const e = new FloodSafeEmitter(10);
    const held: Array<() => void> = [];
    e.on('busy/#', (_p, done) => { held.push(done); }); // completes later
    for (let i = 0; i < 10; i++) e.emit({ topic: 'busy/x' });
    let completed = 0;
    // 200k messages with no subscriber queue behind the 10 held ones; each completes synchronously.
    for (let i = 0; i < 200_000; i++) e.emit({ topic: `idle/${i % 5}` }, () => { completed++; });
    expect(e.queued).toBe(200_000);
    for (const done of held) done(); // would recurse 200k deep in stock mqemitter
    expect(completed).toBe(200_000);
    expect(e.queued).toBe(0);
    expect(e.maxQueued).toBe(200_000);
  });

  it('keeps order and the concurrency bound', () => {
    const e = new FloodSafeEmitter(3);
    const order: number[] = [];
    let inFlight = 0;
    let peak = 0;
    const pending: Array<() => void> = [];
    e.on('t', (p, done) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      order.push(p['n'] as number);
      pending.push(() => { inFlight--; done(); });
    });
    for (let n = 0; n < 20; n++) e.emit({ topic: 't', n });
    while (pending.length) pending.shift()!();
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(peak).toBe(3);
  });

  it('says when it goes idle: the last message in flight finished and none wait', () => {
    const e = new FloodSafeEmitter(2);
    const held: Array<() => void> = [];
    e.on('t', (_p, done) => { held.push(done); });
    let idles = 0;
    e.onIdle = () => { idles++; };
    expect(e.idle).toBe(true);
    for (let n = 0; n < 3; n++) e.emit({ topic: 't', n });
    expect(e.idle).toBe(false);
    held.shift()!(); // the third starts
    held.shift()!();
    expect(idles).toBe(0);
    expect(e.idle).toBe(false);
    held.shift()!();
    expect(e.idle).toBe(true);
    expect(idles).toBe(1);
  });
});

describe('FloodSafeEmitter: completions', () => {
  it('calls each message\'s own callback once, however deliveries finish, within the concurrency bound', () => {
    const e = new FloodSafeEmitter(4);
    const held: Array<{ n: number; done: () => void }> = [];
    let peak = 0;
    e.on('t', (p, done) => {
      held.push({ n: p['n'] as number, done });
      peak = Math.max(peak, held.length);
    });
    const calls = new Map<number, number>();
    const order: number[] = [];
    const N = 200;
    for (let n = 0; n < N; n++) e.emit({ topic: 't', n }, () => { calls.set(n, (calls.get(n) ?? 0) + 1); order.push(n); });
    // Finish them out of order (the newest held, then the oldest, ...): each finished message's slot goes to the next.
    const finished: number[] = [];
    for (let k = 0; held.length; k++) {
      const { n, done } = held.splice(k % 2 === 0 ? held.length - 1 : 0, 1)[0]!;
      finished.push(n);
      done();
    }
    expect(peak).toBe(4);
    expect(calls.size).toBe(N);
    for (let n = 0; n < N; n++) expect(calls.get(n), `message ${n}`).toBe(1);
    expect(order).toEqual(finished);
    expect(e.idle).toBe(true);
  });
});

describe("FloodSafeEmitter under Aedes: the cluster takeover listener", () => {
  it('removes the listener for other brokers\' new-client announcements, and only that one', async () => {
    const { Aedes } = await import('aedes');
    const e = new FloodSafeEmitter();
    const aedes = await Aedes.createBroker({ mq: e as never });
    try {
      const heard = (topic: string): string[] => (e as unknown as { inner: { _matcher: { match(t: string): Array<{ name: string }> } } }).inner._matcher.match(topic).map((l) => l.name);
      expect(heard('$SYS/other-broker/new/clients')).toEqual(['closeSameClients']);
      expect(await e.dropTakeoverListener()).toBe(true);
      expect(heard('$SYS/other-broker/new/clients')).toEqual([]);
      // Aedes' other broker-to-broker listeners stay.
      expect(heard('$SYS/other-broker/heartbeat')).toEqual(['storeBroker']);
      expect(heard('$SYS/other-broker/birth')).toEqual(['brokerBorn']);
      expect(await e.dropTakeoverListener()).toBe(false);
    } finally {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    }
  });
});

describe('FloodSafeEmitter.hasListeners', () => {
  it('answers whether a message on the topic would reach a listener; always yes when the emitter is shared', async () => {
    const e = new FloodSafeEmitter();
    expect(e.hasListeners('$SYS/b1/new/clients')).toBe(false);
    const fn = (_p: unknown, done: () => void): void => done();
    e.on('$SYS/+/new/clients', fn);
    expect(e.hasListeners('$SYS/b1/new/clients')).toBe(true);
    expect(e.hasListeners('$SYS/b1/new/subscribes')).toBe(false);
    await new Promise<void>((resolve) => e.removeListener('$SYS/+/new/clients', fn, resolve));
    expect(e.hasListeners('$SYS/b1/new/clients')).toBe(false);
    const mqemitter = (await import('mqemitter')).default as unknown as (o: object) => ConstructorParameters<typeof FloodSafeEmitter>[1];
    const shared = new FloodSafeEmitter(100, mqemitter({}));
    expect(shared.hasListeners('$SYS/b1/new/clients')).toBe(true);
  });
});
