/**
 * The `aiot-sim` command as users run it: a child process of bin/aiot-sim.js (over dist/), real
 * ports (always 0), real files in a temporary folder.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../src/sim/report.js';
import { useCleanup } from '../helpers/cleanup.js';
import { assertBuilt, finish, runCli, spawnCli, waitForStderr } from '../helpers/cli.js';
import { until } from '../helpers/mqtt.js';

describe('aiot-sim CLI', () => {
  let dir: string;
  const track = useCleanup();

  beforeAll(async () => {
    assertBuilt();
    dir = await mkdtemp(join(tmpdir(), 'aiot-sim-cli-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const fastRun = (extra: string[]): string[] => ['run', '--fast', '--duration', '1h', '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0', '--quiet', ...extra];

  it('runs the default scenario fast, prints a summary and writes a complete report; the seed fixes the trace', async () => {
    // Three runs side by side take 6 s on a quiet 2-core machine; the bound only catches a hang.
    const hang = { timeoutMs: 90_000 };
    const [a, b, c] = await Promise.all([
      runCli(fastRun(['--seed', '5', '--report', join(dir, 'a.json')]), hang),
      runCli(fastRun(['--seed', '5', '--report', join(dir, 'b.json')]), hang),
      runCli(fastRun(['--seed', '6', '--report', join(dir, 'c.json')]), hang),
    ]);
    for (const r of [a, b, c]) expect(r.code, r.stderr).toBe(0);
    expect(a.stdout).toMatch(/finished "default" \(seed 5\)/);
    expect(a.stdout).toMatch(/online at end\s+\d+/);
    expect(a.stdout).toMatch(/messages\s+published \d+, delivered \d+, rejected \d+/);
    expect(a.stderr).toMatch(/report written to .*a\.json/);

    const [ra, rb, rc] = await Promise.all(['a', 'b', 'c'].map(async (n) => JSON.parse(await readFile(join(dir, `${n}.json`), 'utf8')) as RunReport));
    expect(ra.scenario).toBe('default');
    expect(ra.seed).toBe(5);
    expect(Date.parse(ra.virtualEnd) - Date.parse(ra.virtualStart)).toBe(3_600_000);
    expect(ra.virtualStart).toBe(new Date(Date.parse('2026-07-15T18:00:00+02:00')).toISOString());
    expect(typeof ra.wallSeconds).toBe('number');
    expect(ra.wallSeconds).toBeGreaterThan(0);
    expect(ra.wallSeconds).toBeLessThan(60);
    expect(ra.messages.published).toBeGreaterThan(0);
    expect(ra.messages.delivered).toBeGreaterThanOrEqual(0);
    expect(ra.messages.rejected).toBe(0);
    expect(ra.traceDigest).toMatch(/^[0-9a-f]{64}$/);
    expect(a.stdout).toContain(ra.traceDigest);
    expect(ra.platform.connections.online).toBeGreaterThan(0);
    expect(ra.platform.connections.online).toBe(ra.devices.total);
    for (const k of ['byCategory', 'byModel', 'byRegion', 'byTransport'] as const) {
      expect(Object.values(ra.platform.connections[k]).reduce((x, y) => x + y, 0)).toBe(ra.platform.connections.online);
    }
    // Same scenario and seed: same device-side trace. Another seed: another one.
    expect(rb.traceDigest).toBe(ra.traceDigest);
    expect(rb.traceMessages).toBe(ra.traceMessages);
    expect(rc.seed).toBe(6);
    expect(rc.traceDigest).not.toBe(ra.traceDigest);
  }, 120_000);

  it('refuses a missing scenario file, naming it', async () => {
    const r = await runCli(['run', 'missing.yaml', '--mqtt-port', '0', '--ws-port', '0'], { cwd: dir });
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toContain('missing.yaml');
    expect(r.stderr).toMatch(/no such/i);
    expect(r.stdout).not.toMatch(/finished|stopped/);
  });

  it('--telemetry off leaves readings out and events in', async () => {
    const [on, off] = await Promise.all([
      runCli(fastRun(['--seed', '5', '--telemetry', 'on', '--report', join(dir, 'tel-on.json')])),
      runCli(fastRun(['--seed', '5', '--telemetry', 'off', '--report', join(dir, 'tel-off.json')])),
    ]);
    expect(on.code).toBe(0);
    expect(off.code).toBe(0);
    const kinds = async (f: string) => (JSON.parse(await readFile(join(dir, f), 'utf8')) as RunReport).platform.messages.byKind;
    const a = await kinds('tel-on.json');
    const b = await kinds('tel-off.json');
    expect(b['event_occured']).toBe(a['event_occured']);
    expect(a['event_occured']).toBeGreaterThan(0);
    expect(b['properties_changed']!).toBeLessThan(a['properties_changed']! / 2);
  });

  it('refuses bad options with a usage error (exit 2) before starting anything', async () => {
    const r = await runCli(['run', '--seed', 'abc', '--mqtt-port', '0', '--ws-port', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--seed: expected a non-negative integer, got "abc"/);
    expect(r.stderr).toMatch(/Usage:/);
    expect(r.stderr).not.toMatch(/broker mqtt:/);
    const t = await runCli(['run', '--telemetry', 'maybe', '--mqtt-port', '0', '--ws-port', '0']);
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/--telemetry: expected "on" or "off", got "maybe"/);
    const w = await runCli(['run', '--wire', 'lan', '--mqtt-port', '0', '--ws-port', '0']);
    expect(w.code).toBe(2);
    expect(w.stderr).toMatch(/--wire: expected "cloud" or "local-hub", got "lan"/);
  });

  it('--wire local-hub: the trace has the central hub\'s topics and flat payloads, the platform the same figures', async () => {
    const [cloud, hub] = await Promise.all([
      runCli(fastRun(['--seed', '5', '--report', join(dir, 'wire-cloud.json')])),
      runCli(fastRun(['--seed', '5', '--wire', 'local-hub', '--report', join(dir, 'wire-hub.json'), '--trace', join(dir, 'wire-hub.ndjson')])),
    ]);
    expect(cloud.code).toBe(0);
    expect(hub.code).toBe(0);
    const lines = (await readFile(join(dir, 'wire-hub.ndjson'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { topic: string; payload: string });
    const telemetry = lines.filter((l) => !l.topic.startsWith('device/'));
    expect(telemetry.length).toBeGreaterThan(0);
    expect(lines.some((l) => /\/up\/(properties_changed|event_occured)\//.test(l.topic))).toBe(false);
    for (const l of telemetry) {
      expect(l.topic).toMatch(/^appMsg\/notify\/iot\/[^/]+\/(property|event)\/\d+\.\d+$/);
      expect(JSON.parse(l.payload)).toMatchObject({ did: l.topic.split('/')[3], siid: expect.any(Number), ts: expect.any(Number) });
    }
    const figures = async (f: string) => {
      const r = JSON.parse(await readFile(join(dir, f), 'utf8')) as RunReport;
      return { platform: r.platform, messages: r.traceMessages };
    };
    const [a, b] = [await figures('wire-cloud.json'), await figures('wire-hub.json')];
    expect(b).toEqual(a);
  });

  it('reports a busy MQTT port as "already in use"', async () => {
    const holder = track(createServer());
    const port = await new Promise<number>((resolve) => holder.listen(0, '127.0.0.1', () => resolve((holder.address() as { port: number }).port)));
    const r = await runCli(fastRun(['--mqtt-port', String(port)]));
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    expect(r.stderr).toContain('already in use');
    expect(r.stderr).toContain(String(port));
  });

  it('validate names the file and every field path of a bad scenario', async () => {
    const bad = join(dir, 'bad-scenario.yaml');
    await writeFile(bad, [
      'name: broken',
      'start: "2026-07-15T18:00:00+02:00"',
      'duration: 1h',
      'population:',
      '  homes: -3',
      '  regions: { atlantis: 2, cn: 1 }',
      '  devicesPerHome: { "2": 1 }',
      '  mix: { no.such.model: 1, light: 1 }',
      '',
    ].join('\n'));
    const r = await runCli(['validate', bad]);
    expect(r.code).toBe(1);
    const lines = r.stderr.split('\n');
    for (const path of ['population.homes', 'population.regions.atlantis', 'population.mix.no.such.model']) {
      expect(lines.some((l) => l.includes(bad) && l.includes(path)), `a line naming ${bad} and ${path} in:\n${r.stderr}`).toBe(true);
    }
    expect(r.stderr).toMatch(/unknown region "atlantis"/);
    expect(r.stderr).toMatch(/"no\.such\.model"/);
    expect(r.stderr).toMatch(/3 problems/);
    // And a good file passes.
    const ok = await runCli(['validate', 'scenarios/default.yaml']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/1 file valid/);
  });

  // validate and run must agree: a home of one device cannot host a sensor behind a hub, and with a
  // sensors-only mix there is no Wi-Fi device to put there instead (this used to crash `run`).
  it('validate and run agree on a sensors-only scenario with one-device homes', async () => {
    const file = join(dir, 'sensors-only.yaml');
    await writeFile(file, [
      'name: sensors-only',
      'start: "2026-07-15T12:00:00Z"',
      'duration: 1h',
      'population:',
      '  homes: 3',
      '  regions: { cn: 1 }',
      '  devicesPerHome: { "1": 1 }',
      '  mix: { sensor: 1 }',
      '',
    ].join('\n'));
    const v = await runCli(['validate', file]);
    const r = await runCli(['run', file, '--fast', '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0', '--quiet']);
    expect(r.stderr).not.toMatch(/RangeError|\n\s+at /); // never an internal error with a stack trace
    if (v.code === 0) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/finished "sensors-only"/);
    } else {
      expect(v.code).toBe(1);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('sensors-only.yaml');
    }
  });

  it('the renamed snapshot still runs and validates under its old name for a release, saying so on stderr', async () => {
    // The package's own file, by its old name.
    const v = await runCli(['validate', 'scenarios/snapshot-2019q3.yaml']);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/1 file valid/);
    expect(v.stderr).toMatch(/DeprecationWarning: scenarios\/snapshot-2019q3\.yaml is renamed snapshot-2020q3\.yaml/);
    // A run by the old name reads the new file beside it (a small stand-in here, to run quickly).
    const folder = join(dir, 'renamed');
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, 'snapshot-2020q3.yaml'), [
      'name: stand-in', 'start: "2020-09-01T00:00:00+08:00"', 'duration: 10m',
      'population:', '  homes: 2', '  regions: { cn: 1 }', '  devicesPerHome: { "2": 1 }', '  mix: { plug: 1 }', '',
    ].join('\n'));
    const r = await runCli([...fastRun([]), join(folder, 'snapshot-2019q3.yaml')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/finished "stand-in"/);
    expect(r.stderr).toMatch(/snapshot-2019q3\.yaml is renamed snapshot-2020q3\.yaml/);
    // The new name says nothing of the kind.
    const n = await runCli(['validate', 'scenarios/snapshot-2020q3.yaml']);
    expect(n.code, n.stderr).toBe(0);
    expect(n.stderr).not.toMatch(/DeprecationWarning/);
  });

  it('validate resolves a model\'s include and checks a fragment file on its own, naming file and path', async () => {
    const devices = join(dir, 'devices');
    await mkdir(join(devices, 'fragments'), { recursive: true });
    const model = join(devices, 'yeelink.light.mono6.yaml');
    const text = await readFile(join('devices', 'yeelink.light.mono6.yaml'), 'utf8');
    await writeFile(model, text.replace('include: [device-information]', 'include: [device-information, clock]'));
    await writeFile(join(devices, 'fragments', 'device-information.yaml'), await readFile(join('devices', 'fragments', 'device-information.yaml'), 'utf8'));
    const clock = join(devices, 'fragments', 'clock.yaml');
    await writeFile(clock, 'services:\n  - siid: 2\n    name: clock\n    actions:\n      - { aiid: 1, name: stop-alarm, in: [4] }\n');
    const r = await runCli(['validate', model, clock]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${model}: include[1]: fragment "clock" is invalid: 1 problem in`);
    expect(r.stderr).toContain(`${clock}: services[0].actions[0]: argument piid 4 does not exist in siid 2`);

    await writeFile(clock, 'services:\n  - siid: 2\n    name: clock\n    actions:\n      - { aiid: 1, name: stop-alarm }\n');
    const clash = await runCli(['validate', model, clock]);
    expect(clash.code).toBe(1);
    expect(clash.stderr).toContain(`${model}: services[0].siid: siid 2 is already declared by fragment "clock" (include[1])`);
    expect(clash.stderr).toMatch(/1 problem in 1 of 2 files/);

    const ok = await runCli(['validate', 'devices/yeelink.light.mono6.yaml', 'devices/fragments/device-information.yaml']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/2 files valid/);
  });

  it('devices shows a model with its included services resolved', async () => {
    const one = await runCli(['devices', 'yeelink.light.mono6', '--json']);
    expect(one.code, one.stderr).toBe(0);
    const spec = JSON.parse(one.stdout) as { include?: unknown; services: Array<{ siid: number; name: string; properties: Array<{ name: string; default?: unknown }> }> };
    expect(spec.include).toBeUndefined();
    expect(spec.services[0]).toMatchObject({ siid: 1, name: 'device-information' });
    expect(spec.services[0]!.properties.map((p) => p.default)).toEqual(['yeelink', 'yeelink.light.mono6', undefined, undefined]);
  });

  it('devices lists the catalogue and shows one model as JSON', async () => {
    const list = await runCli(['devices']);
    expect(list.code).toBe(0);
    const m = /^(\d+) models$/m.exec(list.stdout);
    expect(m).not.toBeNull();
    const n = Number(m![1]);
    expect(n).toBeGreaterThanOrEqual(14);
    const rows = list.stdout.trim().split('\n').slice(1, -1);
    expect(rows).toHaveLength(n);
    expect(rows.some((r) => r.startsWith('xiaomi.aircondition.mc4 '))).toBe(true);

    const one = await runCli(['devices', 'xiaomi.aircondition.mc4', '--json']);
    expect(one.code).toBe(0);
    const spec = JSON.parse(one.stdout) as { model: string; urn: string; services: Array<{ siid: number }> };
    expect(spec.model).toBe('xiaomi.aircondition.mc4');
    expect(spec.urn).toMatch(/^urn:miot-spec-v2:device:air-conditioner:[0-9A-F]{8}:xiaomi-mc4:\d+$/);
    expect(spec.services.map((s) => s.siid)).toContain(2);
  });

  it('stops a real-time run cleanly on SIGINT: exit 0 and a "stopped" summary', async () => {
    const child = track(spawnCli(['run', '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0', '--duration', '1h']));
    const m = await waitForStderr(child, /broker mqtt:\/\/([\d.]+):(\d+) .*operator token: (\S+)/);
    // The broker it announced is real: an observer gets the devices' retained states from it.
    const obs = track(await mqtt.connectAsync(`mqtt://${m[1]}:${m[2]}`, { clientId: 'cli-observer', reconnectPeriod: 0, connectTimeout: 5000 }));
    const online = new Set<string>();
    obs.on('message', (t, p) => { if (p.toString().includes('"online"')) online.add(t); });
    await obs.subscribeAsync('device/+/state');
    await until(() => online.size >= 10, 5000, 'retained online states from the CLI broker');
    // The operator token it printed opens the operator account.
    const op = track(await mqtt.connectAsync(`mqtt://${m[1]}:${m[2]}`, { clientId: 'cli-op', username: 'operator', password: m[3]!, reconnectPeriod: 0, connectTimeout: 5000 }));
    expect(op.connected).toBe(true);

    child.kill('SIGINT');
    const r = await finish(child, 15_000);
    expect(r.signal).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/stopping/);
    expect(r.stdout).toMatch(/stopped "default"/);
    expect(r.stdout).toMatch(/trace\s+\d+ device messages, sha256 [0-9a-f]{64}/);
  });
});
