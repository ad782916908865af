import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

/** Tiny scenario documents for integration tests (the shape of scenarios/default.yaml). */
export interface TinyScenario {
  name?: string;
  seed?: number;
  start?: string;
  homes?: number;
  mix: Record<string, number>;
  devicesPerHome: Record<string, number>;
  regions?: Record<string, number>;
}

export const TEST_START = '2026-07-15T12:00:00Z';

export function tinyScenario(s: TinyScenario): Record<string, unknown> {
  return {
    name: s.name ?? 'integration',
    seed: s.seed ?? 7,
    start: s.start ?? TEST_START,
    speed: 1,
    population: {
      homes: s.homes ?? 3,
      regions: s.regions ?? { cn: 1 },
      devicesPerHome: s.devicesPerHome,
      mix: s.mix,
      membersPerHome: [0, 1],
    },
  };
}

/** The package's scenarios folder. */
export const SCENARIOS = join(import.meta.dirname, '..', '..', 'scenarios');

/** The scenario with its homes (and the home quotas of each size) divided by `k`. */
export function reduced(file: string, k: number): Record<string, unknown> {
  const doc = parse(readFileSync(join(SCENARIOS, file), 'utf8')) as { population: { homes: number; devicesPerHome: Record<string, number> } } & Record<string, unknown>;
  const quotas = Object.fromEntries(Object.entries(doc.population.devicesPerHome).map(([n, homes]) => [n, Math.max(1, Math.round(homes / k))]));
  const homes = Object.values(quotas).reduce((a, b) => a + b, 0);
  return { ...doc, population: { ...doc.population, homes, devicesPerHome: quotas } };
}
