/**
 * The package as a user gets it: `npm pack`, then in an empty folder elsewhere
 * `npm install ./aiot-sim-*.tgz` and `npx aiot-sim ...`. Everything must come from the installed
 * package, never from this checkout: the catalogue (devices and their fragments), the scenarios,
 * the schemas, the dashboard's files and the worker threads' scripts.
 *
 * The install fetches the dependencies from the npm registry, or from the local npm cache when it
 * has them (`--prefer-offline`; `npm ci` filled it), so it takes 5-60 s. The tarball is packed
 * with `--ignore-scripts`: `npm pack` would run `prepare` (the build) again, rewriting dist/ while
 * other test files run the CLI from it; `npm test` has just built dist/.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, PACKAGE_DIR } from '../helpers/cli.js';
import { stopChild, waitExit } from '../helpers/child.js';

const INSTALL_MS = 240_000;

interface Ran { code: number | null; stdout: string; stderr: string }

/** Run a command to its end (bounded), with its output. */
async function sh(cmd: string, args: string[], cwd: string, ms: number, onStderr?: (all: string) => void): Promise<Ran> {
  const child = spawn(cmd, args, { cwd, env: { ...process.env, NO_COLOR: '1', npm_config_update_notifier: 'false' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out.stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out.stderr += d; onStderr?.(out.stderr); });
  const end = await waitExit(child, ms, 'close');
  if (!end) {
    await stopChild(child, 2000, 'SIGKILL');
    throw new Error(`${cmd} ${args.join(' ')} did not finish within ${ms / 1000} s\nstdout: ${out.stdout.slice(-2000)}\nstderr: ${out.stderr.slice(-2000)}`);
  }
  return { code: end.code, ...out };
}

let dir: string;
let app: string;
/** The files in the tarball, as `npm pack` lists them. */
let packedFiles: string[];
/** `npx aiot-sim ARGS` in the app folder (npx --no: the installed package, never a download). */
const aiotSim = (args: string[], ms = 60_000, onStderr?: (all: string) => void): Promise<Ran> => sh('npx', ['--no', 'aiot-sim', ...args], app, ms, onStderr);

beforeAll(async () => {
  assertBuilt();
  dir = await mkdtemp(join(tmpdir(), 'aiot-package-'));
  app = join(dir, 'app');
  const packed = await sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], PACKAGE_DIR, 60_000);
  expect(packed.code, packed.stderr).toBe(0);
  const [pack] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const name = pack!.filename;
  if (!existsSync(join(dir, name))) throw new Error(`npm pack wrote no ${name} in ${dir}: ${packed.stderr}`);
  packedFiles = pack!.files.map((f) => f.path);
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'newcomer', private: true, type: 'module' }, null, 2));
  const inst = await sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', `../${name}`], app, INSTALL_MS);
  if (inst.code !== 0) {
    throw new Error(`npm install ../${name} failed (exit ${inst.code}). It installs aiot-sim's dependencies from the npm registry `
      + `or the local npm cache; is the registry reachable from here?\n${inst.stderr.slice(-3000)}`);
  }
}, INSTALL_MS + 90_000);

afterAll(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

describe('the packed package, installed in an empty folder', () => {
  it('holds what it needs and nothing of the checkout\'s tests and sources', () => {
    const files = packedFiles;
    for (const f of [
      'bin/aiot-sim.js', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/load/probe-worker.js', 'dist/load/generator-worker.js',
      'dist/sim/shard-worker.js', 'devices/fragments/device-information.yaml', 'devices/yeelink.light.mono6.yaml', 'scenarios/default.yaml',
      'schema/scenario.schema.json', 'schema/device.schema.json', 'schema/fragment.schema.json',
      'web/index.html', 'web/app.js', 'web/charts.js', 'web/device.js', 'web/page.js', 'web/style.css', 'README.md', 'docs/cli.md', 'package.json',
    ]) expect(files, f).toContain(f);
    // scripts/patch-aedes.mjs is the install step (postinstall); the checkout's other scripts stay out.
    expect(files.filter((f) => /^(tests|src|bench|scripts|\.ci|node_modules|test-artifacts)\//.test(f))).toEqual(['scripts/patch-aedes.mjs']);
    const installed = join(app, 'node_modules', 'aiot-sim');
    expect(existsSync(join(installed, 'dist', 'cli', 'main.js'))).toBe(true);
    expect(JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')).name).toBe('aiot-sim');
    // Its install step gave the app's Aedes the connect and subscribe fast paths.
    for (const handler of ['connect', 'subscribe']) {
      expect(readFileSync(join(app, 'node_modules', 'aedes', 'lib', 'handlers', `${handler}.js`), 'utf8')).toContain('aiot-sim fast path');
    }
  });

  it('runs the default scenario for a minute and serves the dashboard from the installed files', async () => {
    let url: string | null = null;
    const assets: Array<[string, number, number]> = [];
    // --speed 20 and ports 0: the minute in 3 s, and no clash with other tests; the code paths are those of the README's `npx aiot-sim run --duration 1m`.
    let fetching: Promise<void> | null = null;
    const res = await aiotSim(['run', '--duration', '1m', '--speed', '20', '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0', '--report', 'report.json'], 60_000, (all) => {
      const m = /dashboard (http:\/\/\S+)/.exec(all);
      if (!m || url) return;
      url = m[1]!;
      const base = new URL(url);
      fetching = (async () => {
        for (const path of ['/', '/app.js', '/charts.js', '/device.js', '/page.js', '/style.css', '/vendor/uPlot.iife.min.js', '/vendor/uPlot.min.css', '/vendor/mqtt.esm.js']) {
          const r = await fetch(new URL(path, base));
          assets.push([path, r.status, (await r.arrayBuffer()).byteLength]);
        }
        const api = await fetch(new URL('/api/devices', base), { headers: { authorization: `Bearer ${base.searchParams.get('token')}` } });
        assets.push(['/api/devices', api.status, ((await api.json()) as unknown[]).length]);
      })();
    });
    await fetching;
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain('aiot-sim: scenario "default", seed 42');
    expect(res.stdout).toContain('aiot-sim: finished "default" (seed 42)');
    expect(url).not.toBeNull();
    for (const [path, status, bytes] of assets) {
      expect(status, path).toBe(200);
      expect(bytes, path).toBeGreaterThan(0);
    }
    const report = JSON.parse(readFileSync(join(app, 'report.json'), 'utf8')) as { scenario: string; virtualSeconds: number; devices: { total: number } };
    expect(report).toMatchObject({ scenario: 'default', virtualSeconds: 60 });
    expect(assets.find(([p]) => p === '/api/devices')![2]).toBe(report.devices.total);
  });

  it('finds its worker threads\' scripts: run --workers and bench', async () => {
    const sharded = await aiotSim(['run', '--duration', '10m', '--workers', '2', '--http-port', '0', '--quiet']);
    expect(sharded.code, sharded.stderr).toBe(0);
    expect(sharded.stderr).toContain('2 shards, each on its own in-process broker');
    const bench = await aiotSim(['bench', '--devices', '4', '--rate', '200', '--duration', '1s', '--warmup', '0s', '--quiet']);
    expect(bench.code, bench.stderr).toBe(0);
    expect(bench.stdout).toMatch(/## aiot-sim bench: 4 devices/);
  }, 120_000);   // 21 s alone on a busy 2-core machine, over 30 s beside the rest of the suite: the bound only catches a hang

  it('reads its catalogue with the fragments, validates its scenarios, prints its schemas; imports as a library', async () => {
    const model = await aiotSim(['devices', 'yeelink.light.mono6', '--json']);
    expect(model.code, model.stderr).toBe(0);
    const spec = JSON.parse(model.stdout) as { services: Array<{ siid: number; name: string }> };
    expect(spec.services[0]).toMatchObject({ siid: 1, name: 'device-information' }); // from devices/fragments/
    const pkg = join('node_modules', 'aiot-sim');
    const scenarios = (await readdir(join(app, pkg, 'scenarios'))).map((f) => join(pkg, 'scenarios', f));
    const valid = await aiotSim(['validate', ...scenarios]);
    expect(valid.code, valid.stderr).toBe(0);
    expect(valid.stdout).toContain(`${scenarios.length} files valid`);
    const schema = await aiotSim(['schema']);
    expect(Object.keys(JSON.parse(schema.stdout) as object)).toEqual(['device', 'fragment', 'scenario']);
    const lib = await sh(process.execPath, ['--input-type=module', '-e', `
      import { createSimulation, PACKAGE_ROOT } from 'aiot-sim';
      import { createRequire } from 'node:module';
      const schema = createRequire(import.meta.url).resolve('aiot-sim/schema/scenario.schema.json');
      const sim = await createSimulation({ scenario: PACKAGE_ROOT + '/scenarios/default.yaml', speed: 'manual', broker: { mqttPort: 0, wsPort: null } });
      await sim.advance(60_000);
      const report = await sim.stop();
      console.log(JSON.stringify({ root: PACKAGE_ROOT, schema, devices: report.devices.total }));
    `], app, 60_000);
    expect(lib.code, lib.stderr).toBe(0);
    const got = JSON.parse(lib.stdout) as { root: string; schema: string; devices: number };
    expect(got.root.startsWith(join(app, pkg))).toBe(true);
    expect(got.schema).toBe(join(app, pkg, 'schema', 'scenario.schema.json'));
    expect(got.devices).toBeGreaterThan(0);
  });
});
