/**
 * `run --workers N` keeps its live monitor: every shard's platform sends its writes to one merged
 * store in the main process, which `/api/snapshot`, `/metrics` and `/ws` serve while the shards
 * run, and which gives the report's figures at the end. The real command as a child process,
 * real HTTP and `ws` clients, port 0.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlatformSnapshot } from '../../src/platform/service.js';
import type { RunReport } from '../../src/sim/report.js';
import { useCleanup } from '../helpers/cleanup.js';
import { assertBuilt, finish, spawnCli, waitForStderr } from '../helpers/cli.js';
import { until } from '../helpers/mqtt.js';
import { reduced } from '../helpers/scenario.js';
import { openMonitor, wsUrl } from '../helpers/ws.js';

describe('run --workers with the live monitor', () => {
  const track = useCleanup();
  let dir = '';
  let scenario = '';

  beforeAll(async () => {
    assertBuilt(); // the workers run dist/sim/shard-worker.js
    dir = await mkdtemp(join(tmpdir(), 'aiot-sim-workers-'));
    // A fortieth of snapshot-2018 (a few hundred devices), telemetry off as in the file.
    scenario = join(dir, 'small-2018.yaml');
    await writeFile(scenario, JSON.stringify(reduced('snapshot-2018.yaml', 40)));
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const get = async <T>(base: string, path: string, token: string): Promise<T> => {
    const res = await fetch(new URL(path, base), { headers: { authorization: `Bearer ${token}` } });
    expect(res.status, path).toBe(200);
    return (path === '/metrics' ? await res.text() : await res.json()) as T;
  };

  /** Read /api/snapshot, one request at a time, until `pred` holds (bounded). */
  const snapshotWhen = async (base: string, token: string, pred: (s: PlatformSnapshot) => boolean, what: string): Promise<PlatformSnapshot> => {
    let found: PlatformSnapshot | null = null;
    let reading = false;
    await until(() => {
      if (!reading && !found) {
        reading = true;
        void get<PlatformSnapshot>(base, '/api/snapshot', token).then((s) => { if (pred(s)) found = s; }).finally(() => { reading = false; });
      }
      return found !== null;
    }, 30_000, what);
    return found!;
  };

  it('serves every shard\'s figures on /api/snapshot, /metrics and /ws while the shards run', { timeout: 120_000 }, async () => {
    const child = track(spawnCli(['run', scenario, '--workers', '2', '--duration', '30d', '--seed', '5', '--http-port', '0', '--report', join(dir, 'live.json')]));
    const [, devices] = await waitForStderr(child, /(\d+) devices in \d+ homes/, 30_000);
    const total = Number(devices);
    const [, url, rawToken] = await waitForStderr(child, /dashboard (http:\/\/127\.0\.0\.1:\d+\/)\?token=(\S+)/, 60_000);
    const token = decodeURIComponent(rawToken!);
    expect(child.out.stderr).toContain(`operator token: ${token}`);
    expect(child.out.stderr).toContain('2 shards, each on its own in-process broker');

    // Every device of both shards online in the merged figures (each shard has only its share).
    const seen = await snapshotWhen(url!, token, (s) => s.connections.online === total, `${total} devices online in /api/snapshot`);
    expect(Object.values(seen.connections.byRegion).reduce((a, b) => a + b, 0)).toBe(total);
    // ... and the counts grow while the shards run.
    const counted = (s: PlatformSnapshot): number => Object.values(s.messages.byKind).reduce((a, b) => a + b, 0);
    const later = await snapshotWhen(url!, token, (s) => s.eventTime! > seen.eventTime! && counted(s) > counted(seen), 'the merged event time and counts to move');
    expect(later.connections.online).toBe(total);
    expect(child.exitCode).toBeNull(); // still running: these were live figures

    const metrics = await get<string>(url!, '/metrics', token);
    expect(metrics).toContain(`aiot_sim_devices_online ${total}`);
    expect(metrics).toMatch(/aiot_sim_messages_published_total [1-9]\d*/);

    const mon = track(await openMonitor(wsUrl(url!, token, '&interval=100')));
    expect((await mon.next('snapshot')).data.connections.online).toBe(total);
    const stats = await mon.next('stats', (f) => f.online === total && f.messages.published > 0, 10_000);
    expect(stats.virtualTime).toBeGreaterThan(Date.parse('2018-01-01'));
    const t1 = stats.virtualTime!;
    await mon.next('stats', (f) => f.virtualTime! > t1, 10_000);

    child.kill('SIGINT');
    const r = await finish(child, 60_000);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(await readFile(join(dir, 'live.json'), 'utf8')) as RunReport;
    expect(report.workers).toBe(2);
    expect(report.platform.connections.online).toBe(total);
  });

  it('reports at the end the figures of the one-thread run of the same scenario and seed', { timeout: 120_000 }, async () => {
    const run = [scenario, '--fast', '--duration', '26h', '--seed', '11', '--http-port', '0', '--quiet'];
    const [threads, one] = await Promise.all([
      finish(spawnCli(['run', ...run, '--workers', '2', '--report', join(dir, 'two.json')]), 90_000),
      finish(spawnCli(['run', ...run, '--mqtt-port', '0', '--ws-port', '0', '--report', join(dir, 'one.json')]), 90_000),
    ]);
    expect(threads.code, threads.stderr).toBe(0);
    expect(one.code, one.stderr).toBe(0);
    expect(threads.stderr).toMatch(/dashboard http:\/\/127\.0\.0\.1:\d+\/\?token=/);
    const two = JSON.parse(await readFile(join(dir, 'two.json'), 'utf8')) as RunReport;
    const single = JSON.parse(await readFile(join(dir, 'one.json'), 'utf8')) as RunReport;
    expect(two.workers).toBe(2);
    expect(two.devices).toEqual(single.devices);
    // Every figure, sketches included: the merged store saw exactly what one platform saw.
    expect(two.platform).toEqual(single.platform);
    expect(two.platform.connections.online).toBe(single.devices.total);
    expect(two.platform.activeUsers.mau).toBeGreaterThan(0);
    expect(two.activity).toEqual(single.activity);
  });
});
