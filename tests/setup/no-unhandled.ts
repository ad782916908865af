/**
 * Every test file runs with this (vitest.config.ts `setupFiles`): an unhandled promise rejection
 * or an uncaught exception while a test runs fails that test, naming the error. Without it Vitest
 * reports such errors beside the results while the test itself passes, and one that comes after
 * a file's last test is lost with its worker: a process that would have crashed in production
 * would pass here. One that comes between tests fails the file's next hook.
 */
import { afterAll, afterEach } from 'vitest';

const seen: string[] = [];

function record(kind: string, err: unknown): void {
  const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
  seen.push(`${kind}: ${text}`);
}

process.on('unhandledRejection', (reason) => record('unhandled rejection', reason));
process.on('uncaughtException', (err) => record('uncaught exception', err));

function check(): void {
  if (seen.length === 0) return;
  const all = seen.splice(0);
  throw new Error(`${all.length} unhandled error${all.length === 1 ? '' : 's'} during this test (a real process would have crashed):\n${all.join('\n')}`);
}

afterEach(check);
afterAll(check);
