/**
 * The monitor from the command line: `run --http-port` prints the dashboard address with its
 * token and serves it while the scenario runs; a busy HTTP port is refused cleanly; `serve` runs
 * a broker and the monitor without devices until Ctrl-C. Child processes of bin/aiot-sim.js, port 0.
 */
import { createServer } from 'node:net';
import mqtt from 'mqtt';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PlatformSnapshot } from '../../src/platform/service.js';
import { useCleanup } from '../helpers/cleanup.js';
import { assertBuilt, finish, runCli, spawnCli, waitForStderr } from '../helpers/cli.js';
import { openMonitor, wsUrl } from '../helpers/ws.js';

describe('aiot-sim CLI with the live monitor', () => {
  const track = useCleanup();

  beforeAll(() => assertBuilt());

  it('run prints the dashboard address with the token and serves the live figures until the run ends', async () => {
    const child = track(spawnCli(['run', '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0', '--duration', '1h', '--quiet']));
    const [, url, token] = await waitForStderr(child, /dashboard (http:\/\/127\.0\.0\.1:\d+\/)\?token=(\S+)/);
    const op = /operator token: (\S+)/.exec(child.out.stderr);
    expect(decodeURIComponent(token!)).toBe(op?.[1]); // --token, or the printed random one, opens both
    expect((await fetch(new URL('/healthz', url))).status).toBe(200);
    const page = await fetch(new URL('/', url));
    expect(await page.text()).toContain('<title>aiot-sim monitor</title>');
    const snap = (await (await fetch(new URL(`/api/snapshot?token=${token}`, url))).json()) as PlatformSnapshot;
    expect(snap.connections.online).toBeGreaterThan(0);
    const mon = track(await openMonitor(wsUrl(url!, decodeURIComponent(token!))));
    expect((await mon.next('snapshot')).data.connections.online).toBeGreaterThan(0);
    child.kill('SIGINT');
    const r = await finish(child, 15_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/stopped "default"/);
    // The monitor closed with the run.
    await expect(fetch(new URL('/healthz', url))).rejects.toThrow();
  });

  it('refuses a busy HTTP port, naming it, and stops the simulation it had started', async () => {
    const blocker = track(createServer());
    const busy = await new Promise<number>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as { port: number }).port)));
    const r = await runCli(['run', '--fast', '--duration', '1h', '--mqtt-port', '0', '--ws-port', '0', '--http-port', String(busy), '--quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`HTTP port ${busy} on 127.0.0.1 is already in use`);
    expect(r.stderr).toContain('--http-port');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const bad = await runCli(['run', '--http-port', 'eighty']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--http-port: expected a port number 0..65535, got "eighty"');
  });

  it('serve runs a broker and the monitor without devices; MQTT clients are tapped live; Ctrl-C stops it', async () => {
    const child = track(spawnCli(['serve', '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0', '--token', 'serve-token-123']));
    const [, url] = await waitForStderr(child, /dashboard (http:\/\/127\.0\.0\.1:\d+\/)\?token=serve-token-123/);
    const [, host, port] = /broker mqtt:\/\/([\d.]+):(\d+)/.exec(child.out.stderr)!;
    const mon = track(await openMonitor(wsUrl(url!, 'serve-token-123')));
    expect((await mon.next('snapshot')).data.connections.online).toBe(0);
    mon.send({ type: 'subscribe', topics: ['lab/#'] });
    await mon.next('subscribed');
    const pub = track(await mqtt.connectAsync(`mqtt://${host}:${port}`, { clientId: 'serve-publisher', reconnectPeriod: 0, connectTimeout: 5000 }));
    await pub.publishAsync('lab/temperature', '21.5', { qos: 1 });
    expect(await mon.next('message')).toMatchObject({ topic: 'lab/temperature', payload: '21.5' });
    expect((await mon.next('stats', (s) => s.messages.published >= 1 && s.clients >= 1)).monitors).toBe(1);
    const devices = await (await fetch(new URL('/api/devices', url), { headers: { authorization: 'Bearer serve-token-123' } })).json();
    expect(devices).toEqual([]);
    child.kill('SIGINT');
    const r = await finish(child, 15_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/stopping/);
  });
});
