/**
 * The scenario format (YAML): who lives where, what they own, and how long to watch them.
 * One zod schema validates it and is published as JSON Schema (`schema/scenario.schema.json`).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import type { Catalog } from './catalog.js';
import { parseYaml } from './catalog.js';
import { displayPath } from './yaml.js';
import { CATEGORIES } from './schema.js';
import { zodProblems } from './validate.js';
import { ValidationError, type Problem } from '../errors.js';
import { REGION_IDS, region as regionOf, soldIn } from './regions.js';

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "15m", "24h", "30d" -> milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * UNIT_MS[m[2]!]!;
  return ms > 0 ? ms : undefined;
}

/**
 * A span of time: "90s", "15m", "24h", "30d" in a file; milliseconds once parsed. A number is taken
 * as milliseconds, so a parsed scenario (a worker thread's copy, a library caller's object) parses again.
 */
const Duration = z.union([z.string(), z.number()])
  .describe('a duration: "500ms", "90s", "15m", "24h", "30d", or milliseconds')
  .transform((v, ctx) => {
  const ms = typeof v === 'number' ? (Number.isFinite(v) && v > 0 ? v : undefined) : parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration like "90s", "15m", "24h" or "30d"', input: v });
    return z.NEVER;
  }
  return ms;
});
const Weights = z.record(z.string(), z.number().nonnegative()).refine(
  (w) => Object.values(w).some((v) => v > 0), 'expected at least one positive weight');

const Hours = z.tuple([z.number().min(0).max(30), z.number().min(0).max(30)]);
const Share = z.number().min(0).max(1);

/** How the population lives: rhythms in local time, app and voice use, appliance routines. */
export const BehaviourSection = z.strictObject({
  /** 24 hourly weights of household activity in local time (normalised to a mean of 1). Default: evening peak 18-22. */
  rhythm: z.array(z.number().nonnegative()).length(24).optional(),
  /**
   * Periodic readings: sensor walks and heartbeats, battery and filter drain, climate and power
   * metering. Off, devices still keep state, obey commands and emit events (what the platform's
   * activity figures count) and their readings stay where they started; a run sends a fraction
   * of the messages.
   */
  telemetry: z.boolean().default(true),
  app: z.strictObject({
    /** Share of people (owners and members) who use the Mijia app at all; the rest rely on voice and automations. */
    userShare: Share.default(1),
    /** Mijia app sessions per app user per day on average, spread by the rhythm. */
    sessionsPerUserPerDay: z.number().nonnegative().default(2),
    /**
     * How unevenly app use is spread across people: each app user's own rate is drawn from a gamma
     * distribution with this shape and the mean above (1 = exponential; smaller = a few heavy users
     * and many occasional ones; large = everyone alike).
     */
    engagement: z.number().positive().default(1),
    /** Share of those sessions in which the user commands a device (toggles a light or plug, ...). */
    commandShare: Share.default(0.5),
  }).prefault({}),
  voice: z.strictObject({
    /**
     * Share of the people living with a speaker who talk to it at all (drawn once per person).
     * Default: everyone; how often each one does is the rate below.
     */
    userShare: Share.default(1),
    /** Voice requests per voice user per day on average, spread by the rhythm. */
    requestsPerUserPerDay: z.number().nonnegative().default(1.9),
    /**
     * How unevenly use is spread across voice users (gamma shape, as for the app). The defaults
     * (mean 1.9, shape 2) give 73 % of users a request on a given day and 47 % several: the
     * surveyed 75 % and 47 % (shared/reference/mijia-miot.md §6).
     */
    engagement: z.number().positive().default(2),
    /** Share of requests that ask for music (the speaker plays). */
    musicShare: Share.default(0.35),
    /** Share that control another device in the home ("turn on the light"). */
    controlShare: Share.default(0.25),
  }).prefault({}),
  routines: z.strictObject({
    /** In a home with a speaker, the share of routine switching (AC, fan, lights, washer, vacuum) done by voice. */
    voiceShare: Share.default(0.3),
    /**
     * In a home with an app user, the share of the rest run by a cloud automation (a scene an app
     * user of the home set up). A home nobody uses the app in has no automations.
     */
    automationShare: Share.default(0.3),
    /** In a home with an app user, the share of the rest done from the app. What is left is done by hand (remote, buttons, wall switch), as in every home without an app user. */
    appShare: Share.default(0.7),
  }).prefault({}),
  appliances: z.strictObject({
    /** ACs go on in the afternoon of days whose high reaches this (°C), more often the hotter it is. */
    acOnAboveC: z.number().default(27),
    acOnHours: Hours.default([13, 16]),
    acOffHours: Hours.default([22, 25]),
    acTarget: z.tuple([z.number(), z.number()]).default([24, 26]),
    washerCyclesPerWeek: z.number().nonnegative().default(3),
    /** Washers start between these local hours. */
    washerHours: Hours.default([8, 20]),
    vacuumRunsPerWeek: z.number().nonnegative().default(4),
    vacuumHours: Hours.default([9, 12]),
    /** Lights go on in the evening and off at bedtime (local hours; 24.5 = 00:30). */
    lightsOnHours: Hours.default([18, 20.5]),
    lightsOffHours: Hours.default([22, 24.5]),
    /** Share of evenings a home switches its lights on through the app or voice. */
    lightsEveningShare: Share.default(0.8),
  }).prefault({}),
  climate: z.strictObject({
    /** Added to every region's seasonal daily high (°C): a heat wave is +5 or so. */
    offsetC: z.number().default(0),
  }).prefault({}),
});
export type BehaviourSection = z.infer<typeof BehaviourSection>;

/** Things going wrong on purpose, at virtual times after the start. */
export const FaultSpec = z.discriminatedUnion('type', [
  z.strictObject({
    /** A random share of device sessions lose their network (no DISCONNECT: last wills fire), then come back. */
    type: z.literal('devices-offline'),
    share: Share,
    at: Duration,
    duration: Duration,
  }),
  z.strictObject({
    /** Every device session in a region loses its network, then comes back. */
    type: z.literal('region-outage'),
    region: z.string(),
    at: Duration,
    duration: Duration,
  }),
  z.strictObject({
    /**
     * The embedded broker goes down, dropping every session, and comes back after `duration`
     * (virtual time) with persistent sessions and their QoS 1 queues; sessions reconnect by
     * themselves with backoff and jitter.
     */
    type: z.literal('broker-restart'),
    at: Duration,
    duration: Duration.prefault('1m'),
  }),
  z.strictObject({
    /** A share of the gateways reboot: they and their Zigbee/BLE children drop (last wills fire) and come back after `duration`. */
    type: z.literal('gateway-reboot'),
    share: Share.default(1),
    at: Duration,
    duration: Duration.prefault('30s'),
  }),
  z.strictObject({
    /** Over `duration`, a share of the device sessions leave one by one (they say "offline" and DISCONNECT) and come back `offlineFor` later. */
    type: z.literal('device-churn'),
    share: Share,
    at: Duration,
    duration: Duration,
    offlineFor: Duration.prefault('10m'),
  }),
  z.strictObject({
    /** A share of the device sessions (default all) drop at once without DISCONNECT and reconnect by themselves. */
    type: z.literal('reconnect-storm'),
    share: Share.default(1),
    at: Duration,
  }),
  z.strictObject({
    /** An observer subscribed to all device messages stops reading for `duration`: the broker must not stall for the others. */
    type: z.literal('slow-consumer'),
    at: Duration,
    duration: Duration,
  }),
  z.strictObject({
    /** A firmware rollout: devices (of `model`, or all) get `firmware` in `waves`, `interval` apart; each wave reboots for `rebootFor`. */
    type: z.literal('ota-rollout'),
    firmware: z.string().min(1).max(40),
    model: z.string().optional(),
    share: Share.default(1),
    waves: z.number().int().min(1).max(100).default(3),
    at: Duration,
    interval: Duration.prefault('10m'),
    rebootFor: Duration.prefault('1m'),
  }),
]);
export type FaultSpec = z.infer<typeof FaultSpec>;

/** How device sessions reconnect and what devices keep while offline. */
export const NetworkSection = z.strictObject({
  reconnect: z.strictObject({
    /** Upper bound of the first retry's delay (wall clock). */
    initialDelay: Duration.prefault('500ms'),
    /** Cap of the retry window (wall clock). */
    maxDelay: Duration.prefault('10s'),
    /** Growth of the window per failed attempt. */
    factor: z.number().min(1).max(10).default(2),
    /** "full": each delay uniform in [0, window] (from the seeded RNG); "none": exactly the window. */
    jitter: z.enum(['full', 'none']).default('full'),
  }).prefault({}),
  /** QoS 1 messages (events) each device keeps while offline; the oldest go first when full. */
  offlineBuffer: z.number().int().nonnegative().max(100_000).default(100),
});
export type NetworkSection = z.infer<typeof NetworkSection>;

export const ScenarioSpec = z.strictObject({
  name: z.string().min(1),
  description: z.string().optional(),
  /** Seed of every random choice; `--seed` overrides it. */
  seed: z.number().int().nonnegative().default(1),
  /** Virtual start, ISO 8601 with a zone, e.g. "2026-07-15T17:00:00Z" or "2026-07-15T19:00:00+02:00". */
  start: z.string().refine((s) => /(Z|[+-]\d\d:\d\d)$/.test(s) && Number.isFinite(Date.parse(s)),
    'expected an ISO 8601 date-time with a zone, e.g. "2026-07-15T17:00:00Z"'),
  /** How much virtual time to simulate; omit to run until stopped (real-time mode only). */
  duration: Duration.optional(),
  /** Virtual seconds per wall second (1 = real time), or "fast": as fast as the broker takes it. */
  speed: z.union([z.number().positive().max(100_000), z.literal('fast')]).default(1),
  /** Each simulated home stands for this many real ones (reports give figures times scale). */
  scale: z.number().positive().default(1),
  population: z.strictObject({
    homes: z.number().int().positive().max(1_000_000),
    /** Share of homes per region id (weights, normalised). */
    regions: Weights,
    /** Devices per home: weight of each count, e.g. {"1": 30, "3": 40, "7": 10}; gateways count. */
    devicesPerHome: Weights,
    /** What fills a home's device slots: weights by category or by model name. */
    mix: Weights,
    /**
     * People per home besides the owner: [min, max], drawn uniformly and independently of the
     * devices. Default [0, 2] (unless householdSize is given).
     */
    membersPerHome: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]).optional(),
    /**
     * People per home, owner included: weight of each household size, e.g. {"1": 27, "2": 26, "3": 19},
     * allocated by quota like devicesPerHome. Bigger households own more devices: sizes go to homes in
     * the order of their device counts (ties by the seed). Replaces membersPerHome.
     */
    householdSize: Weights.optional(),
  }),
  behaviour: BehaviourSection.prefault({}),
  faults: z.array(FaultSpec).prefault([]),
  network: NetworkSection.prefault({}),
});
export type Scenario = z.infer<typeof ScenarioSpec>;

/**
 * Structural and semantic checks together, so every problem is reported at once: the semantic
 * checks (known regions, models and categories, sane counts) run on the raw document even when
 * the structure is wrong elsewhere.
 */
export function checkScenario(file: string, doc: unknown, catalog: Catalog): { scenario?: Scenario; problems: Problem[] } {
  const parsed = ScenarioSpec.safeParse(doc, { reportInput: true });
  const problems: Problem[] = parsed.success ? [] : zodProblems(file, parsed.error);
  const add = (path: string, message: string): void => {
    if (!problems.some((p) => p.path === path)) problems.push({ file, path, message });
  };
  const root = isRecord(doc) ? doc : {};
  const pop = isRecord(root['population']) ? root['population'] : {};
  for (const id of Object.keys(isRecord(pop['regions']) ? pop['regions'] : {})) {
    if (!REGION_IDS.includes(id)) add(`population.regions.${id}`, `unknown region "${id}"; known: ${REGION_IDS.join(', ')}`);
  }
  for (const k of Object.keys(isRecord(pop['devicesPerHome']) ? pop['devicesPerHome'] : {})) {
    const n = Number(k);
    if (!Number.isInteger(n) || n < 1 || n > 200) add(`population.devicesPerHome.${k}`, `expected a device count from 1 to 200, got "${k}"`);
  }
  for (const k of Object.keys(isRecord(pop['mix']) ? pop['mix'] : {})) {
    const isCategory = (CATEGORIES as readonly string[]).includes(k);
    if (!isCategory && !catalog.has(k)) add(`population.mix.${k}`, `unknown device model or category "${k}" (aiot-sim devices lists them)`);
    else if (isCategory && catalog.byCategory(k as (typeof CATEGORIES)[number]).length === 0) {
      add(`population.mix.${k}`, `no device model of category "${k}" in the catalogue`);
    }
  }
  const mixKeys = Object.keys(isRecord(pop['mix']) ? pop['mix'] : {});
  // Models are dealt only to homes in their markets: every region needs something of the mix sold
  // there, and everything in the mix needs a home to go to.
  const weighted = (rec: unknown): string[] => (isRecord(rec) ? Object.entries(rec).filter(([, w]) => typeof w === 'number' && w > 0).map(([k]) => k) : []);
  const regionIds = weighted(pop['regions']).filter((id) => REGION_IDS.includes(id));
  const modelsOf = (k: string) => ((CATEGORIES as readonly string[]).includes(k)
    ? catalog.byCategory(k as (typeof CATEGORIES)[number]).filter((m) => m.category !== 'gateway' || k === 'gateway')
    : catalog.get(k) ? [catalog.get(k)!] : []);
  const mixWeighted = weighted(pop['mix']);
  for (const id of regionIds) {
    const sold = mixWeighted.flatMap(modelsOf).filter((m) => soldIn(m.markets, id));
    if (mixWeighted.length && !sold.length) {
      add(`population.regions.${id}`, `nothing in the mix is sold in ${regionOf(id).name} (${regionOf(id).group}); add a model or category sold there (aiot-sim devices lists markets)`);
    } else if (sold.every((m) => m.transport !== 'wifi') && !catalog.byCategory('gateway').some((g) => soldIn(g.markets, id))) {
      add(`population.regions.${id}`, `the mix has only Zigbee/BLE sensors in ${regionOf(id).name}, and no gateway is sold there`);
    }
  }
  for (const k of mixWeighted) {
    const models = modelsOf(k);
    if (!models.length || !regionIds.length || models.some((m) => regionIds.some((id) => soldIn(m.markets, id)))) continue;
    const markets = [...new Set(models.flatMap((m) => m.markets))].join(', ');
    add(`population.mix.${k}`, `no "${k}" model is sold in this scenario's regions (${regionIds.join(', ')}); it is sold in: ${markets}`);
  }
  const mixModels = mixKeys.flatMap((k) => ((CATEGORIES as readonly string[]).includes(k)
    ? catalog.byCategory(k as (typeof CATEGORIES)[number]) : catalog.get(k) ? [catalog.get(k)!] : []));
  if (mixModels.length && mixModels.every((m) => m.transport !== 'wifi') && catalog.byCategory('gateway').length === 0) {
    add('population.mix', 'Zigbee/BLE sensors need a gateway, and the catalogue has no gateway model');
  }
  for (const k of Object.keys(isRecord(pop['householdSize']) ? pop['householdSize'] : {})) {
    const n = Number(k);
    if (!Number.isInteger(n) || n < 1 || n > 30) add(`population.householdSize.${k}`, `expected a household size from 1 to 30 people, got "${k}"`);
  }
  if (pop['householdSize'] !== undefined && pop['membersPerHome'] !== undefined) {
    add('population.householdSize', 'give householdSize or membersPerHome, not both');
  }
  const members = pop['membersPerHome'];
  if (Array.isArray(members) && typeof members[0] === 'number' && typeof members[1] === 'number' && members[0] > members[1]) {
    add('population.membersPerHome', `min ${members[0]} is above max ${members[1]}`);
  }
  if (root['speed'] === 'fast' && root['duration'] === undefined) add('duration', 'fast mode needs a duration');
  const total = rawMs(root['duration']);
  const faults = Array.isArray(root['faults']) ? root['faults'] : [];
  faults.forEach((f: unknown, i: number) => {
    if (!isRecord(f)) return;
    if (f['type'] === 'region-outage' && typeof f['region'] === 'string' && !REGION_IDS.includes(f['region'])) {
      add(`faults[${i}].region`, `unknown region "${f['region']}"; known: ${REGION_IDS.join(', ')}`);
    }
    if (f['type'] === 'ota-rollout' && typeof f['model'] === 'string' && !catalog.has(f['model'])) {
      add(`faults[${i}].model`, `unknown device model "${f['model']}" (aiot-sim devices lists them)`);
    }
    const at = rawMs(f['at']);
    if (total !== undefined && at !== undefined && at >= total) add(`faults[${i}].at`, `starts at ${f['at']}, after the scenario ends (${String(root['duration'])})`);
  });
  const net = isRecord(root['network']) ? root['network'] : {};
  const rec = isRecord(net['reconnect']) ? net['reconnect'] : {};
  const initial = rawMs(rec['initialDelay']);
  const max = rawMs(rec['maxDelay']);
  if (initial !== undefined && max !== undefined && initial > max) add('network.reconnect.initialDelay', `${String(rec['initialDelay'])} is above maxDelay ${String(rec['maxDelay'])}`);
  const beh = isRecord(root['behaviour']) ? root['behaviour'] : {};
  const routines = isRecord(beh['routines']) ? beh['routines'] : {};
  const auto = typeof routines['automationShare'] === 'number' ? routines['automationShare'] : 0.3;
  const app = typeof routines['appShare'] === 'number' ? routines['appShare'] : 0.7;
  if (auto + app > 1 + 1e-9) add('behaviour.routines', `automationShare ${auto} and appShare ${app} add up to more than 1`);
  const voice = isRecord(beh['voice']) ? beh['voice'] : {};
  if (voice['interactionsPerSpeakerPerDay'] !== undefined) {
    // Replace zod's "unrecognized key" with what changed.
    const i = problems.findIndex((p) => p.path === 'behaviour.voice' && /interactionsPerSpeakerPerDay/.test(p.message));
    if (i >= 0) problems.splice(i, 1);
    add('behaviour.voice.interactionsPerSpeakerPerDay', 'voice requests are made by people now: use requestsPerUserPerDay (per person who talks to a speaker, per day)');
  }
  const appl = isRecord(beh['appliances']) ? beh['appliances'] : {};
  for (const key of ['acOnHours', 'acOffHours', 'washerHours', 'vacuumHours', 'lightsOnHours', 'lightsOffHours']) {
    const h = appl[key];
    if (Array.isArray(h) && typeof h[0] === 'number' && typeof h[1] === 'number' && h[0] > h[1]) {
      add(`behaviour.appliances.${key}`, `from ${h[0]} is after to ${h[1]} (use hours past 24 for after midnight, e.g. [22, 25])`);
    }
  }
  problems.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return problems.length || !parsed.success ? { problems } : { scenario: parsed.data, problems };
}

/** A duration as the raw document holds it (text, or milliseconds), for the semantic checks. */
function rawMs(v: unknown): number | undefined {
  if (typeof v === 'number') return v > 0 ? v : undefined;
  return typeof v === 'string' ? parseDuration(v) : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Scenario files renamed in this release: the old file name still loads the new file beside it,
 * with a deprecation warning, until the next release.
 */
export const RENAMED_SCENARIOS: Readonly<Record<string, { to: string; why: string }>> = {
  'snapshot-2019q3.yaml': { to: 'snapshot-2020q3.yaml', why: "the seed's figures are Xiaomi's Q3 2020 results" },
};

const warned = new Set<string>();

/**
 * The file to read for a scenario path: the path itself, or, for a renamed scenario whose old file
 * is gone, its new file (warning once per process on stderr, as a DeprecationWarning).
 */
export function scenarioFile(path: string, opts: { warn?: boolean } = {}): string {
  const renamed = RENAMED_SCENARIOS[basename(path)];
  if (!renamed || existsSync(path)) return path;
  const target = join(dirname(path), renamed.to);
  if (!existsSync(target)) return path;
  const shown = displayPath(path);
  if (opts.warn !== false && !warned.has(shown)) {
    warned.add(shown);
    process.emitWarning(`${shown} is renamed ${renamed.to} (${renamed.why}); the old name works until the next release`, {
      type: 'DeprecationWarning', code: 'AIOTSIM_SCENARIO_RENAMED',
    });
  }
  return target;
}

export async function loadScenario(path: string, catalog: Catalog): Promise<Scenario> {
  path = scenarioFile(path);
  const file = displayPath(path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ValidationError([{ file, path: '', message: code === 'ENOENT' ? 'no such scenario file' : `cannot read: ${(err as Error).message}` }]);
  }
  const y = parseYaml(file, text);
  if (y.problems.length) throw new ValidationError(y.problems);
  const res = checkScenario(file, y.value, catalog);
  if (!res.scenario) throw new ValidationError(res.problems);
  return res.scenario;
}
