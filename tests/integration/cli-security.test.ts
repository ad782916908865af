/**
 * Issue 14 from the command line (child processes of bin/aiot-sim.js, port 0, loopback): the
 * operator token can come from AIOT_SIM_TOKEN or --token-file, so it is not in the process's
 * command line (what `ps` shows); --anonymous and the bounds' flags reach the broker; bad values
 * are usage errors naming the flag.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { beforeAll, describe, expect, it } from 'vitest';
import { useCleanup } from '../helpers/cleanup.js';
import { assertBuilt, runCli, spawnCli, waitForStderr } from '../helpers/cli.js';

const PORTS = ['--mqtt-port', '0', '--ws-port', '0', '--http-port', '0'];

describe('aiot-sim: the token out of ps, broker policy and bounds flags', () => {
  const track = useCleanup();
  beforeAll(() => assertBuilt());

  /** Start `serve`; resolves with its monitor URL and MQTT port once it serves. */
  async function serve(args: string[], env: Record<string, string> = {}): Promise<{ child: ReturnType<typeof spawnCli>; url: string; mqttPort: number }> {
    const child = track(spawnCli(['serve', ...PORTS, ...args], { env }));
    const [, mqttPort] = await waitForStderr(child, /broker mqtt:\/\/127\.0\.0\.1:(\d+)/);
    const [, url] = await waitForStderr(child, /dashboard (http:\/\/127\.0\.0\.1:\d+\/)\?token=/);
    return { child, url: url!, mqttPort: Number(mqttPort) };
  }

  const snapshotStatus = async (url: string, token: string): Promise<number> =>
    (await fetch(new URL('/api/snapshot', url), { headers: { authorization: `Bearer ${token}` } })).status;

  it('takes the token from AIOT_SIM_TOKEN, keeping it out of the command line', async () => {
    const token = 'from-the-env-0123';
    const { child, url } = await serve([], { AIOT_SIM_TOKEN: token });
    expect(await snapshotStatus(url, token)).toBe(200);
    const cmdline = await readFile(`/proc/${child.pid}/cmdline`, 'utf8');
    expect(cmdline).not.toContain(token);
  });

  it('takes the token from --token-file (its first line), keeping it out of the command line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'aiot-sim-token-'));
    track(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'token');
    const token = 'from-the-file-4567';
    await writeFile(file, `${token}\n`, { mode: 0o600 });
    const { child, url } = await serve(['--token-file', file], { AIOT_SIM_TOKEN: 'the-file-wins-over-this' });
    expect(await snapshotStatus(url, token)).toBe(200);
    expect(await readFile(`/proc/${child.pid}/cmdline`, 'utf8')).not.toContain(token);
  });

  it('says so in --help, and refuses a short token, a missing file or both ways at once', async () => {
    for (const cmd of [['run', '--help'], ['serve', '--help']]) {
      const help = await runCli(cmd);
      expect(help.stdout).toContain('AIOT_SIM_TOKEN');
      expect(help.stdout).toContain('--token-file');
      expect(help.stdout).toContain('--anonymous');
    }
    const short = await runCli(['serve', ...PORTS], { env: { AIOT_SIM_TOKEN: 'short' } });
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('AIOT_SIM_TOKEN: the token must have at least 8 characters');
    const missing = await runCli(['serve', ...PORTS, '--token-file', '/nonexistent/aiot-sim-token']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('--token-file /nonexistent/aiot-sim-token: no such file');
    const both = await runCli(['serve', ...PORTS, '--token', 'long-enough-1', '--token-file', '/tmp/x']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--token and --token-file exclude each other');
  });

  it('passes --anonymous and the bounds to the broker, and names a bad value\'s flag', async () => {
    const token = 'flags-token-89ab';
    const { url, mqttPort } = await serve(['--anonymous', 'none', '--max-connections', '5', '--max-queued', '50', '--max-packet-size', '64KiB'], { AIOT_SIM_TOKEN: token });
    await expect(mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'nobody', reconnectPeriod: 0, connectTimeout: 5000 })).rejects.toMatchObject({ code: 4 });
    const metrics = await (await fetch(new URL('/metrics', url), { headers: { authorization: `Bearer ${token}` } })).text();
    expect(metrics).toContain('aiot_sim_broker_limit{limit="connections"} 5');
    expect(metrics).toContain('aiot_sim_broker_limit{limit="queued_messages"} 50');
    expect(metrics).toContain('aiot_sim_broker_limit{limit="packet_size_bytes"} 65536');
    const bad = await runCli(['run', '--max-connections', '0', '--allow-origin', 'dashboard.lan', '--duration', '1m']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--max-connections: expected an integer of at least 1, got "0"');
    expect(bad.stderr).toContain('--allow-origin: "dashboard.lan" is not an origin');
    const external = await runCli(['run', '--broker', 'mqtt://127.0.0.1:1', '--anonymous', 'all']);
    expect(external.code).toBe(2);
    expect(external.stderr).toContain('--broker runs on your broker: --anonymous configures the embedded one');
  });
});
