/**
 * The suite's guard against errors nobody handles (tests/setup/no-unhandled.ts), checked on real
 * Vitest: a fixture file whose tests leave an unhandled rejection and an uncaught exception runs in
 * a child process, and those tests fail, naming the error, while a clean one passes.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const VITEST = fileURLToPath(new URL('../../node_modules/vitest/vitest.mjs', import.meta.url));
const CONFIG = fileURLToPath(new URL('../fixtures/unhandled/vitest.config.ts', import.meta.url));

it('an unhandled rejection or an uncaught exception fails the test it happened in', { timeout: 60_000 }, async () => {
  const child = spawn(process.execPath, [VITEST, 'run', '--config', CONFIG, '--no-color'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code, out).toBe(1);
  expect(out).toMatch(/× leaks.fixture.ts > leaves a rejection behind/);
  expect(out).toMatch(/× leaks.fixture.ts > throws from a timer/);
  expect(out).toMatch(/✓ leaks.fixture.ts > handles its errors/);
  expect(out).toContain('unhandled rejection: Error: rejection left behind on purpose');
  expect(out).toContain('uncaught exception: Error: exception thrown from a timer on purpose');
  expect(out).toMatch(/Tests\s+2 failed \| 1 passed/);
});
