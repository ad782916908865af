/** Run the real `aiot-sim` command (bin/aiot-sim.js over dist/) as a child process, with bounded waits. */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { waitExit } from './child.js';

export const PACKAGE_DIR = join(import.meta.dirname, '..', '..');
export const BIN = join(PACKAGE_DIR, 'bin', 'aiot-sim.js');

export interface CliResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** dist/ must be built (`npm test` does it; by hand: npx tsc -p tsconfig.build.json). */
export function assertBuilt(): void {
  if (!existsSync(join(PACKAGE_DIR, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/ is missing: run `npx tsc -p tsconfig.build.json` (npm test builds it) before the CLI tests');
  }
}

/** Start `aiot-sim ARGS`; the caller owns the process (see `finish`). */
export function spawnCli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): ChildProcessWithoutNullStreams & { out: { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd ?? PACKAGE_DIR,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out.stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out.stderr += d; });
  return Object.assign(child, { out });
}

/** Wait for the process to exit; kill it (SIGKILL) and reject after `ms`. */
export async function finish(child: ReturnType<typeof spawnCli>, ms = 20_000): Promise<CliResult> {
  const end = await waitExit(child, ms, 'close');
  if (!end) {
    child.kill('SIGKILL');
    throw new Error(`aiot-sim ${child.spawnargs.slice(2).join(' ')} did not exit within ${ms} ms\nstderr: ${child.out.stderr}`);
  }
  return { ...end, ...child.out };
}

/** Run `aiot-sim ARGS` to completion. */
export function runCli(args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const spawnOpts: { cwd?: string; env?: Record<string, string> } = {};
  if (opts.cwd !== undefined) spawnOpts.cwd = opts.cwd;
  if (opts.env !== undefined) spawnOpts.env = opts.env;
  return finish(spawnCli(args, spawnOpts), opts.timeoutMs ?? 20_000);
}

/** Resolve once the process has written text matching `re` on stderr (or reject on exit / after `ms`). */
export function waitForStderr(child: ReturnType<typeof spawnCli>, re: RegExp, ms = 15_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const m = re.exec(child.out.stderr);
      if (m) { cleanup(); resolve(m); return true; }
      return false;
    };
    const onData = (): void => { check(); };
    const onExit = (): void => { if (!check()) { cleanup(); reject(new Error(`exited before printing ${re}; stderr: ${child.out.stderr}`)); } };
    const timer = setTimeout(() => { cleanup(); reject(new Error(`no ${re} on stderr within ${ms} ms; stderr: ${child.out.stderr}`)); }, ms);
    const cleanup = (): void => { clearTimeout(timer); child.stderr.off('data', onData); child.off('exit', onExit); };
    child.stderr.on('data', onData);
    child.once('exit', onExit);
    check();
  });
}
