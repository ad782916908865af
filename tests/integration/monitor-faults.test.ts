/** Scenario faults on the live monitor: a `fault` frame as each starts and ends, and the list in every stats frame. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { monitorSimulation } from '../../src/monitor/simulation.js';
import type { MonitorServer } from '../../src/monitor/server.js';
import { createSimulation, type Simulation } from '../../src/sim/simulation.js';
import { until } from '../helpers/mqtt.js';
import { tinyScenario } from '../helpers/scenario.js';
import { openMonitor, wsUrl } from '../helpers/ws.js';

describe('faults on the monitor', () => {
  let sim: Simulation;
  let monitor: MonitorServer;

  beforeAll(async () => {
    const scenario = {
      ...tinyScenario({ homes: 4, mix: { plug: 1, light: 1 }, devicesPerHome: { '2': 1 }, regions: { es: 1, it: 1 } }),
      faults: [{ type: 'region-outage', region: 'it', at: '5m', duration: '10m' }],
    };
    sim = await createSimulation({ scenario, speed: 'manual', broker: { mqttPort: null, wsPort: null } });
    monitor = await monitorSimulation(sim, { port: 0, probeIntervalMs: null, statsIntervalMs: 100 });
  });

  afterAll(async () => {
    await monitor?.stop();
    await sim?.stop();
  });

  it('announces a region outage as it starts and ends, and lists it in stats', { timeout: 30_000 }, async () => {
    const c = await openMonitor(wsUrl(monitor.url, sim.operatorToken));
    const snap = await c.next('snapshot');
    expect(snap.data.stats.faults).toEqual([expect.objectContaining({ type: 'region-outage', region: 'it' })]);
    const total = sim.population.devices.length;
    const italian = sim.population.devices.filter((d) => d.region === 'it').length;
    expect(italian).toBeGreaterThan(0);

    await sim.advance(6 * 60_000);
    const start = await c.next('fault', (f) => f.phase === 'start');
    expect(start).toMatchObject({ index: 0, record: { type: 'region-outage', region: 'it' } });
    expect(start.ts).toBe(Date.parse(sim.faults.records[0]!.from));
    await until(() => sim.snapshot().connections.online === total - italian, 10_000, 'the Italian devices to drop');
    const during = await c.next('stats', (s) => s.online === total - italian, 5000);
    expect(during.faults).toHaveLength(1);

    await sim.advance(10 * 60_000);
    const end = await c.next('fault', (f) => f.phase === 'end');
    expect(end.record.sessions).toBe(start.record.sessions);
    await c.next('stats', (s) => s.online === total, 10_000);
    await c.close();
  });
});
