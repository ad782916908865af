/**
 * The tests' one teardown (tests/helpers/cleanup.ts), on real parts: what a failing test started
 * (a broker, an MQTT client over TCP, a server, a child process) is gone before the next test.
 * The tests of this file run in order: the second checks what the first, failing, left behind.
 */
import { spawn } from 'node:child_process';
import { connect, createServer, type Server } from 'node:net';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { Cleanup, recordUncaught, useCleanup } from '../helpers/cleanup.js';
import { connectTcp } from '../helpers/mqtt.js';

/** Whether something accepts TCP connections on this port of the loopback. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

describe('useCleanup: a failing test still tears down', () => {
  const track = useCleanup();
  const order: string[] = [];
  let left: { brokerPort: number; client: MqttClient; server: Server; child: ReturnType<typeof spawn>; uncaughtListeners: number } | null = null;

  it.fails('a test that fails after starting a broker, a client, a server and a child process', async () => {
    const uncaughtListeners = process.listenerCount('uncaughtException');
    track(() => { order.push('first registered'); });
    const broker = track(await EmbeddedBroker.start({ mqttPort: 0, operatorToken: 'cleanup-op-token' }));
    const client = track(await connectTcp(broker, { clientId: 'cleanup-client' }));
    const server = track(createServer());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const child = track(spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' }));
    recordUncaught(track);
    track(() => { order.push('last registered'); });
    left = { brokerPort: broker.mqttAddress!.port, client, server, child, uncaughtListeners };
    expect(client.connected).toBe(true);
    expect(await accepts(left.brokerPort)).toBe(true);
    throw new Error('the test fails here');
  });

  it('left nothing running: last registered torn down first, broker closed, client ended, server closed, child killed', async () => {
    expect(left).not.toBeNull();
    const { brokerPort, client, server, child, uncaughtListeners } = left!;
    expect(order).toEqual(['last registered', 'first registered']);
    expect(client.connected).toBe(false);
    expect(server.listening).toBe(false);
    expect(await accepts(brokerPort)).toBe(false);
    if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
    expect(child.signalCode).toBe('SIGKILL');
    expect(process.listenerCount('uncaughtException')).toBe(uncaughtListeners);
  });
});

describe('Cleanup.run', () => {
  it('runs every step even when some throw, then throws the error (or all of them)', async () => {
    const ran: number[] = [];
    const one = new Cleanup();
    one.add(() => { ran.push(1); });
    one.add(() => { throw new Error('step 2 broke'); });
    one.add(async () => { ran.push(3); });
    await expect(one.run()).rejects.toThrow('step 2 broke');
    expect(ran).toEqual([3, 1]);

    const two = new Cleanup();
    two.add(() => { throw new Error('a'); });
    two.add(() => { throw new Error('b'); });
    const err = await two.run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AggregateError);
    expect((err as AggregateError).errors.map((e: Error) => e.message)).toEqual(['b', 'a']);

    // Run once: a second run has nothing left to do.
    ran.length = 0;
    await one.run();
    expect(ran).toEqual([]);
  });
});

it('refuses to be set up inside a test, where its teardown would never run', () => {
  expect(() => useCleanup()).toThrow(/inside the test "refuses to be set up inside a test/);
});
