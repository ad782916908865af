#!/usr/bin/env node
/**
 * The platform's CPU time per message, this build against another (a baseline), in the same run:
 * every message of a trace (`aiot-sim run --trace FILE`) fed to a fresh PlatformService of each
 * build in turn, rounds alternating, CPU time (user + system) and garbage collections counted.
 * Build first (npm run build); build the baseline's dist the same way from its own checkout.
 *
 *   node scripts/platform-cost.mjs TRACE.ndjson BASELINE_DIST [--rounds 3] [--passes 5]
 *
 * Prints medians over the rounds: µs of CPU per message and GCs per 100k messages, for all the
 * trace's messages and for its property changes alone.
 */
import { readFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
const [tracePath, baselineDist] = args.filter((a) => !a.startsWith('--'));
if (!tracePath || !baselineDist) {
  process.stderr.write('usage: platform-cost.mjs TRACE.ndjson BASELINE_DIST [--rounds N] [--passes N]\n');
  process.exit(2);
}
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const ROUNDS = opt('rounds', 3);
const PASSES = opt('passes', 5);

const load = async (dist) => (await import(pathToFileURL(join(resolve(dist), 'platform', 'service.js')).href)).PlatformService;
const builds = { baseline: await load(baselineDist), current: await load(new URL('../dist', import.meta.url).pathname) };

const all = [];
for (const line of readFileSync(tracePath, 'utf8').split('\n')) {
  if (!line) continue;
  const m = JSON.parse(line);
  all.push([m.topic, Buffer.from(m.payload, m.encoding === 'base64' ? 'base64' : 'utf8')]);
}
const properties = all.filter(([t]) => t.includes('/properties_changed/') || t.includes('/property/'));

let gcs = 0;
new PerformanceObserver((list) => { gcs += list.getEntries().length; }).observe({ entryTypes: ['gc'] });

/** CPU µs per message and GCs per 100k messages, feeding `messages` PASSES times to fresh platforms. */
async function measure(Platform, messages) {
  const noFacts = () => undefined;
  const gc0 = gcs;
  const t0 = process.cpuUsage();
  let check = 0;
  for (let p = 0; p < PASSES; p++) {
    const platform = new Platform(noFacts);
    for (let i = 0; i < messages.length; i++) platform.onMessage(messages[i][0], messages[i][1]);
    check += platform.snapshot().messages.byKind['properties_changed'] ?? 0;
  }
  const t = process.cpuUsage(t0);
  const n = messages.length * PASSES;
  // GC entries reach the observer asynchronously: let them in before counting.
  await new Promise((r) => setTimeout(r, 50));
  return { us: (t.user + t.system) / n, gcPer100k: ((gcs - gc0) * 100_000) / n, check };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = {};
for (const [set, messages] of [['all', all], ['properties', properties]]) {
  await measure(builds.baseline, messages); // warm both up
  await measure(builds.current, messages);
  const runs = { baseline: [], current: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const b of r % 2 ? ['current', 'baseline'] : ['baseline', 'current']) runs[b].push(await measure(builds[b], messages));
  }
  if (runs.baseline[0].check !== runs.current[0].check) throw new Error(`the builds counted differently: ${runs.baseline[0].check} vs ${runs.current[0].check}`);
  const fig = (b) => ({ usPerMessage: +median(runs[b].map((x) => x.us)).toFixed(3), gcPer100k: +median(runs[b].map((x) => x.gcPer100k)).toFixed(1), runsUs: runs[b].map((x) => +x.us.toFixed(3)) });
  results[set] = { messages: messages.length, baseline: fig('baseline'), current: fig('current') };
  results[set].ratio = +(results[set].current.usPerMessage / results[set].baseline.usPerMessage).toFixed(3);
}
process.stdout.write(JSON.stringify({ trace: tracePath, rounds: ROUNDS, passes: PASSES, results }, null, 2) + '\n');
