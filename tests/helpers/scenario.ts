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
