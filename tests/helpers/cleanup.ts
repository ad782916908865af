/**
 * One teardown for the tests: register what a test starts (simulations, brokers, MQTT clients,
 * monitors, servers, sockets, child processes) and it is stopped after the test, last started
 * first, whether the test passed or failed.
 *
 *   const track = useCleanup();
 *   const sim = track(await createSimulation(...));
 *   const op = track(await connectTcp(sim.broker, ...));
 */
import { ChildProcess } from 'node:child_process';
import { Server } from 'node:net';
import { afterAll, afterEach, expect } from 'vitest';

/** Something a test started, and how it ends. */
export type Disposable =
  | { endAsync(force?: boolean): Promise<void> } // an MQTT.js client: ended at once, errors ignored
  | { stop(): Promise<unknown> } // a simulation, a monitor server, Mosquitto
  | { close(): Promise<unknown> } // a broker, a monitor client, a browser
  | Server // closed, without waiting for its connections to end of themselves
  | ChildProcess // killed (SIGKILL) unless it has exited
  | { destroy(): void } // a socket
  | (() => unknown); // anything else: a function that tears it down

/** Registers `thing` for teardown and returns it, so `track(await start())` reads as the start. */
export type Track = (<T extends Disposable>(thing: T) => T) & { readonly cleanup: Cleanup };

/** What a test started, torn down in reverse order; every step runs even when one throws. */
export class Cleanup {
  private readonly steps: Array<() => Promise<void>> = [];

  add<T extends Disposable>(thing: T): T {
    this.steps.push(() => dispose(thing));
    return thing;
  }

  /** Tear everything down, last added first; then throw the first error, if any step threw. */
  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} teardown steps failed`);
  }
}

/**
 * A tracker whose registrations are torn down after each test (`'each'`, the default) or after
 * the file's or describe block's last test (`'all'`, for what a `beforeAll` starts).
 */
export function useCleanup(after: 'each' | 'all' = 'each'): Track {
  // A hook registered while a test runs is never called, and what it tracked would outlive the run.
  const running = expect.getState().currentTestName;
  if (running) throw new Error(`useCleanup() called inside the test "${running}": call it in the describe block or the file`);
  const cleanup = new Cleanup();
  (after === 'each' ? afterEach : afterAll)(() => cleanup.run());
  return Object.assign(<T extends Disposable>(thing: T): T => cleanup.add(thing), { cleanup });
}

async function dispose(thing: Disposable): Promise<void> {
  if (typeof thing === 'function') await thing();
  else if (thing instanceof ChildProcess) {
    if (thing.exitCode === null && thing.signalCode === null) thing.kill('SIGKILL');
  } else if (thing instanceof Server) {
    await new Promise<void>((resolve) => thing.close(() => resolve()));
  } else if ('endAsync' in thing) await thing.endAsync(true).catch(() => undefined);
  else if ('stop' in thing) await thing.stop();
  else if ('close' in thing) await thing.close();
  else thing.destroy();
}

/** Collects the process's uncaught exceptions from now until the test's teardown stops listening. */
export function recordUncaught(track: Track): unknown[] {
  const seen: unknown[] = [];
  const listener = (err: unknown): void => { seen.push(err); };
  process.on('uncaughtException', listener);
  track(() => { process.off('uncaughtException', listener); });
  return seen;
}
