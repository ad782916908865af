#!/usr/bin/env node
/**
 * The embedded broker's CPU time per message, this build against another (a baseline), in the
 * same run: `aiot-sim bench` through each build's own `runBench`, runs alternating, the broker
 * thread's (this thread's) CPU time from /proc/thread-self read at each progress tick, from the
 * first tick of traffic to the last (drain included), over the messages the timeline says were
 * sent meanwhile. Generators and probe run in worker threads and are not counted. Linux only.
 * Build first (npm run build); build the baseline's dist the same way from its own checkout.
 *
 *   node scripts/broker-cost.mjs BASELINE_DIST [--qos 0|1] [--rate R] [--devices N] [--seconds S] [--rounds 3] [--transport tcp|ws]
 *
 * Prints, per build, the median µs per message and each run's figures (rate reached, p50/p99, lost).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const argv = process.argv.slice(2);
const baselineDist = argv.find((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1].startsWith('--')));
if (!baselineDist) {
  process.stderr.write('usage: broker-cost.mjs BASELINE_DIST [--qos 0|1] [--rate R] [--devices N] [--seconds S] [--rounds N] [--transport tcp|ws]\n');
  process.exit(2);
}
const arg = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};
const qos = Number(arg('qos', '0'));
const rate = Number(arg('rate', '20000'));
const devices = Number(arg('devices', '8'));
const seconds = Number(arg('seconds', '8'));
const rounds = Number(arg('rounds', '3'));
const transport = arg('transport', 'tcp');

const threadCpu = () => {
  const f = readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};
const load = async (dist) => (await import(pathToFileURL(join(resolve(dist), 'index.js')).href)).runBench;
const builds = { baseline: await load(baselineDist), current: await load(new URL('../dist', import.meta.url).pathname) };

async function once(runBench) {
  const ticks = [];
  const r = await runBench({
    qos, rate, devices, transport, durationMs: seconds * 1000, warmupMs: 2000,
    onProgress: (p) => { if (p.phase !== 'connecting') ticks.push(threadCpu()); },
  });
  // Tick k follows timeline point k (both about once a second from the start of traffic).
  const n = Math.min(ticks.length, r.timeline.length);
  const sent = r.timeline.slice(1, n).reduce((a, p) => a + p.sent, 0);
  return {
    usPerMessage: sent ? +(((ticks[n - 1] - ticks[0]) * 1e6) / sent).toFixed(2) : null,
    sentRate: r.rate.sent, receivedRate: r.rate.received, p50Ms: r.latencyMs.p50, p99Ms: r.latencyMs.p99, lost: r.messages.lost, notSent: r.messages.notSent,
  };
}

const runs = { baseline: [], current: [] };
for (let i = 0; i < rounds; i++) {
  for (const b of i % 2 ? ['current', 'baseline'] : ['baseline', 'current']) {
    const r = await once(builds[b]);
    process.stderr.write(`${b} run ${i + 1}: ${JSON.stringify(r)}\n`);
    runs[b].push(r);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fig = (b) => ({ usPerMessage: median(runs[b].map((r) => r.usPerMessage)), p50Ms: median(runs[b].map((r) => r.p50Ms)), p99Ms: median(runs[b].map((r) => r.p99Ms)), runs: runs[b] });
const out = { qos, rate, devices, seconds, transport, rounds, baseline: fig('baseline'), current: fig('current') };
out.ratio = +(out.current.usPerMessage / out.baseline.usPerMessage).toFixed(3);
process.stdout.write(JSON.stringify(out, null, 2) + '\n');
