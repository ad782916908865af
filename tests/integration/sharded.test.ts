/**
 * A fast run split over worker threads (`--workers`): each thread simulates its share of the
 * homes on its own in-process broker, and the platforms' counts merge into the figures one
 * platform gives for the whole run.
 */
import { describe, expect, it } from 'vitest';
import { createShardedSimulation, ShardedSimulation } from '../../src/sim/sharded.js';
import { createSimulation } from '../../src/sim/simulation.js';
import { assertBuilt, finish, spawnCli } from '../helpers/cli.js';
import { reduced } from '../helpers/scenario.js';

describe('a run split over worker threads', () => {
  it('gives the same platform figures and activity as one thread, and the same digest for the same seed', { timeout: 120_000 }, async () => {
    assertBuilt(); // the workers run dist/sim/shard-worker.js
    // A twentieth of snapshot-2020q3 (about 1,450 devices) over two UTC days and a bit.
    const scenario = reduced('snapshot-2020q3.yaml', 20);
    const run = { scenario, seed: 5, duration: '50h', telemetry: false } as const;

    const one = await (await createSimulation({ ...run, speed: 'fast', broker: { mqttPort: null, wsPort: null } })).finished;
    const sharded = await createShardedSimulation({ ...run, workers: 2 });
    const total = sharded.population.devices.length;
    const two = await sharded.finished;

    // Once done, the status is the shards' at the end of the run, not after they stopped.
    const st = sharded.status();
    expect(st.online).toBe(total);
    expect(st.virtualTime).toBe(st.virtualEnd);
    expect(st.published).toBe(two.messages.published);
    expect(two.workers).toBe(2);
    expect(one.workers).toBe(1);
    expect(two.devices).toEqual(one.devices);
    expect(two.platform.connections.online).toBe(total);
    // Everything the platform measured, and what the simulated people did, is the same.
    expect(two.platform).toEqual(one.platform);
    expect(two.activity).toEqual(one.activity);
    expect(two.traceMessages).toBe(one.traceMessages);
    expect(two.messages.published).toBe(one.messages.published);
    expect(one.platform.speakerMau).toBeGreaterThan(0);
    expect(one.platform.dailyActiveDevicesWeekMean).not.toBeNull();

    // The digest is the digest of the shards' digests: the same seed and worker count repeat it.
    const again = await (await createShardedSimulation({ ...run, workers: 2 })).finished;
    expect(again.traceDigest).toBe(two.traceDigest);
    expect(again.platform).toEqual(two.platform);
  });

  it('stops every shard on stop() and reports what ran', { timeout: 60_000 }, async () => {
    assertBuilt();
    const sim = await createShardedSimulation({ scenario: reduced('snapshot-2018.yaml', 40), workers: 2, duration: '30d' });
    const total = sim.population.devices.length;
    expect(sim.status().devices).toBe(total);
    const t0 = sim.status().virtualStart;
    await sim.reached(t0 + 3_600_000);
    const report = await sim.stop();
    expect(report.workers).toBe(2);
    expect(report.virtualSeconds).toBeGreaterThanOrEqual(3600);
    expect(report.virtualSeconds).toBeLessThan(30 * 86_400);
    expect(report.platform.connections.online).toBe(total);
    expect(report.messages.published).toBeGreaterThan(total);
    // Every command and app session was a piece of network work the shard's clock waited for, added up over the shards.
    // An automation (a routine's run) sends one command, or two when it starts a washer's program with a mode.
    const a = report.activity;
    const automationCommands = report.networkWork!.pieces - (a.appSessions + a.appCommands + a.voiceCommands);
    expect(automationCommands).toBeGreaterThanOrEqual(a.automations - a.skippedOffline);
    expect(automationCommands).toBeLessThanOrEqual(2 * a.automations);
    expect(report.networkWork!.pieces).toBeGreaterThan(0);
    expect(await sim.finished).toBe(report);
  });

  it('refuses what it cannot split before any worker starts', async () => {
    const faults = { ...reduced('snapshot-2018.yaml', 400), faults: [{ type: 'broker-restart', at: '1h', duration: '1m' }] };
    await expect(ShardedSimulation.create({ scenario: faults, duration: '2h', workers: 2 })).rejects.toThrow(/faults: a run split over worker threads cannot run faults/);
    const tiny = reduced('snapshot-2018.yaml', 10_000);
    await expect(ShardedSimulation.create({ scenario: tiny, duration: '2h', workers: 64 })).rejects.toThrow(/64 worker threads for \d+ homes/);
    await expect(ShardedSimulation.create({ scenario: tiny, duration: '2h', workers: 1 })).rejects.toThrow(/workers: expected an integer from 2 to 64/);
    const { duration: _, ...endless } = tiny;
    await expect(ShardedSimulation.create({ scenario: endless, workers: 2 })).rejects.toThrow(/fast mode needs a duration/);
  });

  it('runs from the command line with --workers and refuses options that need one broker', { timeout: 60_000 }, async () => {
    assertBuilt();
    // The live monitor is on, as in any run (sharded-monitor.test.ts): on a free port here.
    const ok = await finish(spawnCli(['run', 'scenarios/default.yaml', '--workers', '2', '--duration', '1h', '--http-port', '0', '--quiet']), 45_000);
    expect(ok.code).toBe(0);
    expect(ok.stderr).toContain('2 shards, each on its own in-process broker');
    expect(ok.stdout).toMatch(/online at end\s+53\b/);

    const clash = await finish(spawnCli(['run', '--workers', '2', '--duration', '1h', '--mqtt-port', '0', '--http-port', '0']));
    expect(clash.code).toBe(2);
    expect(clash.stderr).toContain('not with --mqtt-port');
    const faults = await finish(spawnCli(['run', 'scenarios/rough-night.yaml', '--workers', '2']));
    expect(faults.code).toBe(1);
    expect(faults.stderr).toMatch(/rough-night\.yaml: faults: a run split over worker threads cannot run faults/);
    const bad = await finish(spawnCli(['run', '--workers', 'two']));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--workers: expected an integer from 1 to 64, got "two"');
  });
});
