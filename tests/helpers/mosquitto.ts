/**
 * A real Mosquitto (Debian package `mosquitto`, installed by .ci/run) on a free loopback port,
 * with its own config in a temporary folder; `stop()` ends it and removes the folder. Used by the
 * integration tests and by the benchmark (which compares the embedded broker with it).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild } from './child.js';
import { freePort } from './ports.js';

const CANDIDATES = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'];
/** Mosquitto's stderr kept for `log()`: the last this many characters. */
const LOG_KEPT = 64 * 1024;
const START_MS = 10_000;

export function mosquittoBinary(): string {
  const bin = CANDIDATES.find((p) => existsSync(p));
  if (!bin) throw new Error(`mosquitto not found (looked in ${CANDIDATES.join(', ')}): install the Debian package "mosquitto" (.ci/run does)`);
  return bin;
}


export interface Mosquitto {
  url: string;
  port: number;
  pid: number;
  /** From its "mosquitto version X running" line. */
  version: string;
  /** What it logged (errors, warnings, start-up), the last 64 KiB. */
  log: () => string;
  stop: () => Promise<void>;
}

/** Start Mosquitto (`extraConfig`: more mosquitto.conf lines); resolves once it says it is running, its listener open. */
export async function startMosquitto(extraConfig: string[] = []): Promise<Mosquitto> {
  const bin = mosquittoBinary();
  const dir = await mkdtemp(join(tmpdir(), 'aiot-sim-mosquitto-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(conf, [
    `listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false',
    'log_dest stderr', 'log_type error', 'log_type warning', 'log_type information', ...extraConfig, '',
  ].join('\n'));
  const child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const stop = async (): Promise<void> => {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  };
  child.stderr.setEncoding('utf8').on('data', (d: string) => { log = (log + d).slice(-LOG_KEPT); });
  const running = new Promise<string>((resolve, reject) => {
    const settle = (err: Error | null, v = ''): void => {
      clearTimeout(timer);
      child.stderr.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err); else resolve(v);
    };
    const onData = (): void => {
      const m = /mosquitto version (\S+) running/.exec(log);
      if (m) settle(null, m[1]);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => settle(new Error(`mosquitto exited with ${signal ?? code}: ${log}`));
    const timer = setTimeout(() => settle(new Error(`mosquitto did not start on port ${port} within ${START_MS / 1000} s: ${log}`)), START_MS);
    child.stderr.on('data', onData);
    child.once('exit', onExit);
  });
  let version: string;
  try {
    version = await running;
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: `mqtt://127.0.0.1:${port}`, port, pid: child.pid!, version, log: () => log, stop };
}
