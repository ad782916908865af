/**
 * A real Redis (Debian package `redis-server`, installed by `npm test`'s pretest) on a free
 * loopback port, with its data in a temporary folder; `restart()` stops it and starts it again on
 * the same port (with its data saved first, or without: `keepData`), `stop()` ends it and removes
 * the folder. Used by the scale-out tests and by the benchmark.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { stopChild, waitExit } from './child.js';
import { freePort } from './ports.js';

const CANDIDATES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'];
const START_MS = 10_000;
const LOG_KEPT = 32 * 1024;

export function redisBinary(): string {
  const bin = CANDIDATES.find((p) => existsSync(p));
  if (!bin) throw new Error(`redis-server not found (looked in ${CANDIDATES.join(', ')}): install the Debian package "redis-server" (npm test's pretest does)`);
  return bin;
}


export interface RedisServer {
  /** `redis://127.0.0.1:PORT` (append `/DB` for another database). */
  url: string;
  port: number;
  pid(): number;
  log(): string;
  /** A client of its own (closed by `stop()`). */
  client(): Redis;
  /** Commands run by the server since it started, by name (`INFO commandstats`). */
  commandStats(): Promise<Record<string, number>>;
  /** CPU seconds the server used (user + system), from `INFO cpu`. */
  cpuSeconds(): Promise<number>;
  /** Stop it and start it again on the same port; `keepData` saves first and reloads (default true). */
  restart(opts?: { keepData?: boolean; downMs?: number }): Promise<void>;
  stop(): Promise<void>;
}

/** Start redis-server on a free loopback port; resolves once it accepts connections. */
export async function startRedis(): Promise<RedisServer> {
  const bin = redisBinary();
  const dir = await mkdtemp(join(tmpdir(), 'aiot-sim-redis-'));
  const port = await freePort();
  let log = '';
  let child: ChildProcess;
  const clients: Redis[] = [];
  const launch = async (): Promise<void> => {
    child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'yes', '--loglevel', 'warning'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: string): void => { log = (log + d).slice(-LOG_KEPT); };
    child.stdout!.setEncoding('utf8').on('data', keep);
    child.stderr!.setEncoding('utf8').on('data', keep);
    const until = Date.now() + START_MS;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${log}`);
      const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        if ((await probe.ping()) === 'PONG') {
          probe.disconnect();
          return;
        }
      } catch {
        probe.disconnect();
      }
      if (Date.now() > until) throw new Error(`redis-server did not start on port ${port} within ${START_MS / 1000} s: ${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await launch();
  const admin = (): Redis => {
    const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: null });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };
  const info = async (section: string): Promise<string> => {
    const c = new Redis({ port, host: '127.0.0.1' });
    c.on('error', () => undefined);
    try {
      return await c.info(section);
    } finally {
      c.disconnect();
    }
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: () => child.pid!,
    log: () => log,
    client: admin,
    async commandStats() {
      const out: Record<string, number> = {};
      for (const m of (await info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
      return out;
    },
    async cpuSeconds() {
      const text = await info('cpu');
      const num = (k: string): number => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(text)?.[1] ?? 0);
      return num('used_cpu_user') + num('used_cpu_sys');
    },
    async restart({ keepData = true, downMs = 0 } = {}) {
      if (keepData) {
        // No reconnecting: SHUTDOWN gets no reply (the server is gone), and a retrying client would resend it for ~10 s.
        const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
        c.on('error', () => undefined);
        await c.call('SHUTDOWN', 'SAVE').catch(() => undefined);
        c.disconnect();
      } else child.kill('SIGKILL');
      await waitExit(child, 10_000);
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      if (!keepData) await rm(join(dir, 'dump.rdb'), { force: true });
      await launch();
    },
    async stop() {
      for (const c of clients) c.disconnect();
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
