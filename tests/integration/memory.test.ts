/**
 * Memory at scale: `aiot-sim run` sizes V8's heap to the machine (it starts itself again with
 * --max-old-space-size), and a population that cannot fit is refused before anything connects,
 * with what it needs, what there is and what to do. The limit is injectable (--memory-limit,
 * SimulationOptions.memoryLimit), so the refusal needs no huge population.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RUN_SEMI_SPACE_MB, wantedHeapMb } from '../../src/cli/heap.js';
import { AiotSimError } from '../../src/errors.js';
import { checkMemory, estimateMemory, memoryRoom } from '../../src/sim/memory.js';
import { Simulation } from '../../src/sim/simulation.js';
import { useCleanup } from '../helpers/cleanup.js';
import { assertBuilt, finish, runCli, spawnCli, waitForStderr } from '../helpers/cli.js';

const track = useCleanup();

describe('memory', () => {
  it('run starts itself with V8\'s heap sized to the machine, and its young generation to a simulation', { timeout: 30_000 }, async () => {
    assertBuilt();
    const child = track(spawnCli(['run', '--duration', '30s', '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0']));
    // Printed once the run takes Ctrl-C (its signal handlers are installed first).
    await waitForStderr(child, /Ctrl-C stops/);
    // The command's process waits for the one it started, which runs the simulation.
    const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    expect(kids).toHaveLength(1);
    const args = readFileSync(`/proc/${kids[0]}/cmdline`, 'utf8').split('\0');
    expect(args).toContain(`--max-old-space-size=${wantedHeapMb()}`);
    expect(wantedHeapMb()).toBeGreaterThan(1024);
    // And the young generation a simulation wants, however the command was started (node bin/...).
    expect(args).toContain(`--max-semi-space-size=${RUN_SEMI_SPACE_MB}`);
    child.kill('SIGINT'); // passed on to the simulation, which stops cleanly
    const end = await finish(child);
    expect(end.code, end.stderr).toBe(0);
    expect(end.stdout).toMatch(/stopped/);
  });

  it('the sized process stops by itself when its launcher is killed outright (SIGKILL passes nothing on)', { timeout: 30_000 }, async () => {
    assertBuilt();
    const child = track(spawnCli(['run', '--duration', '30m', '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0']));
    await waitForStderr(child, /Ctrl-C stops/);
    const [kid] = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    expect(kid).toBeDefined();
    child.kill('SIGKILL');
    // Orphaned, it notices within a second or so and stops as on SIGTERM.
    const deadline = Date.now() + 20_000;
    while (existsSync(`/proc/${kid}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(`/proc/${kid}`)).toBe(false);
  });

  it('run refuses a population that does not fit, before connecting anything, saying what to do', { timeout: 30_000 }, async () => {
    assertBuilt();
    const r = await runCli(['run', 'scenarios/consumer-load.yaml', '--fast', '--memory-limit', '200m', '--mqtt-port', '0', '--ws-port', '0', '--http-port', '0', '--quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/this population does not fit in this process: 10,600 devices and [\d,]+ app users over the in-process transport/);
    expect(r.stderr).toMatch(/needs about 0\.\d+ GB, memory limit 0\.20 GB; the machine has [\d.]+ GB/);
    expect(r.stderr).toMatch(/Nothing was connected\. Run fewer homes \(population\.homes\), split the homes over several processes or machines/);
    expect(r.stdout).not.toMatch(/finished/);
  });

  it('the library refuses it too (E_MEMORY), and opens nothing', { timeout: 30_000 }, async () => {
    const sim = await Simulation.create({ scenario: 'scenarios/consumer-load.yaml', speed: 'manual', broker: { mqttPort: null, wsPort: null }, memoryLimit: 64 * 2 ** 20 });
    const err = await sim.start().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(AiotSimError);
    expect((err as AiotSimError).code).toBe('E_MEMORY');
    expect(() => sim.broker).toThrow(/has not started/);
  });

  it('estimates from bytes per device of each transport, against the heap limit and the memory available', () => {
    const fleet = estimateMemory(500_000, 0, 'in-process');
    const clients = estimateMemory(500_000, 0, 'in-process-clients');
    expect(clients.rssBytes).toBeGreaterThan(fleet.rssBytes);
    const room = { ...memoryRoom(), heapLimitBytes: 4 * 2 ** 30, availableBytes: 20 * 2 ** 30 };
    expect(() => checkMemory(estimateMemory(1000, 100, 'in-process'), room)).not.toThrow();
    expect(() => checkMemory(fleet, room)).toThrow(/500,000 devices over the in-process transport \(needs about [\d.]+ GB, V8 heap limit 4\.0 GB;/);
    expect(() => checkMemory(fleet, { ...room, heapLimitBytes: 20 * 2 ** 30, availableBytes: 2 ** 30 })).toThrow(/memory available 1\.0 GB/);
  });
});
