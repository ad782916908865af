/** Every scenario in scenarios/ runs as is, in fast mode over a shortened duration, through the real broker. */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Simulation } from '../../src/sim/simulation.js';

const dir = join(import.meta.dirname, '..', '..', 'scenarios');
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();
// The two snapshot populations are large (13,200 and 28,900 devices): ten virtual minutes each.
const shortened = (f: string): string => (f.startsWith('snapshot') ? '10m' : '2h');

describe('scenarios/', () => {
  it('has the scenarios the project promises', () => {
    expect(files).toEqual(expect.arrayContaining([
      'default.yaml', 'evening-europe.yaml', 'heatwave.yaml', 'snapshot-2018.yaml', 'snapshot-2020q3.yaml', 'consumer-load.yaml',
    ]));
  });

  for (const file of files) {
    it(`${file} runs in fast mode`, { timeout: 180_000 }, async () => {
      const sim = await Simulation.create({
        scenario: join(dir, file), speed: 'fast', duration: shortened(file), broker: { mqttPort: null, wsPort: null },
      });
      await sim.start();
      const report = await sim.finished;
      expect(report.devices.total).toBe(sim.population.devices.length);
      // Every device, gateway children included, is online at the end as the platform saw it.
      expect(report.platform.connections.online).toBe(report.devices.total);
      expect(report.messages.published).toBeGreaterThan(report.devices.sessions);
      expect(report.traceDigest).toMatch(/^[0-9a-f]{64}$/);
      expect(report.activity.failedCommands).toBe(0);
      expect(report.platform.messages.malformed).toBe(0);
      // Owners with more than five devices: what the platform saw equals the population's structure.
      const owners = sim.population.homes.filter((h) => h.devices.length > 5).length;
      expect(report.platform.ownersWithMoreThan5Devices).toBe(owners);
      expect(report.platform.scaled.ownersWithMoreThan5Devices).toBe(owners * sim.scenario.scale);
      // Speaker MAU counts people, who can only speak to a speaker they live with.
      const livingWithSpeakers = sim.population.homes.filter((h) => h.devices.some((d) => d.model.category === 'speaker'))
        .reduce((n, h) => n + 1 + h.memberUids.length, 0);
      expect(report.platform.speakerMau).toBeLessThanOrEqual(livingWithSpeakers);
    });
  }

  it('has no snapshot-2019q3.yaml any more: the Q3 2020 figures live in snapshot-2020q3.yaml', () => {
    expect(files).not.toContain('snapshot-2019q3.yaml');
  });

  it('snapshot-2020q3 holds the structural figures by construction: 28,900 connections, 560 owners of more than five', async () => {
    const sim = await Simulation.create({ scenario: join(dir, 'snapshot-2020q3.yaml'), speed: 'manual', broker: { mqttPort: null, wsPort: null } });
    expect(sim.population.devices).toHaveLength(28_900);
    expect(sim.population.homes.filter((h) => h.devices.length > 5)).toHaveLength(560);
    expect(sim.scenario.scale).toBe(10_000);
  });

  it('snapshot-2020q3: for any seed, about as many people live with a speaker as the speaker MAU asks for', { timeout: 120_000 }, async () => {
    // Nearly everyone living with a speaker speaks to it in a month (calibration-monthly.test.ts),
    // so the seed's draw of which homes get the speakers sets most of the speaker MAU's spread.
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const sim = await Simulation.create({ scenario: join(dir, 'snapshot-2020q3.yaml'), seed, speed: 'manual', broker: { mqttPort: null, wsPort: null } });
      const living = sim.population.homes.filter((h) => h.devices.some((d) => d.model.category === 'speaker'))
        .reduce((n, h) => n + 1 + h.memberUids.length, 0);
      expect(Math.abs(living - 7800) / 7800).toBeLessThan(0.05);
    }
  });

  it('snapshot-2018 is 132 million devices at 1:10,000', async () => {
    const sim = await Simulation.create({ scenario: join(dir, 'snapshot-2018.yaml'), speed: 'manual', broker: { mqttPort: null, wsPort: null } });
    expect(sim.population.devices.length * sim.scenario.scale).toBe(132_000_000);
  });
});
