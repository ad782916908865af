#!/usr/bin/env node
/**
 * Profile the embedded broker under `aiot-sim bench` traffic: a V8 CPU profile of the broker's
 * thread (the main thread; generators and probe run in their own threads and are not in it),
 * taken only while traffic flows (warm-up and measured window), then summed up by
 * scripts/cpuprofile-summary.mjs. Build first (npm run build).
 *
 *   node scripts/profile-broker.mjs [--qos 0|1] [--rate R] [--devices N] [--seconds S] [--transport tcp|ws] [--out FILE]
 *   node scripts/profile-broker.mjs --connect [--devices N]     (the connect phase instead: N devices as fast as they go)
 *
 * Defaults: QoS 0, 50,000 msg/s, 8 devices, 10 s, tcp, /tmp/aiot-sim-broker.cpuprofile.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBench } from '../dist/index.js';

const argv = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};
const qos = Number(arg('qos', '0'));
const rate = Number(arg('rate', '50000'));
const devices = Number(arg('devices', argv.includes('--connect') ? '8000' : '8'));
const seconds = Number(arg('seconds', '10'));
const transport = arg('transport', 'tcp');
const out = arg('out', '/tmp/aiot-sim-broker.cpuprofile');
/** Profile the connections' ramp instead of the traffic. */
const connect = argv.includes('--connect');
const phases = connect ? ['connecting'] : ['warm-up', 'measuring'];

const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 200 });
let profiling = false;
let stopped = null;
const stop = async () => {
  if (!profiling) return;
  profiling = false;
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(out, JSON.stringify(profile));
};
const report = await runBench({
  qos, transport, devices,
  ...(connect ? { rate: Math.max(1, devices / 10), durationMs: 1000, warmupMs: 0, workers: 1 } : { rate, durationMs: seconds * 1000, warmupMs: 2000 }),
  onProgress: (p) => {
    if (!profiling && !stopped && phases.includes(p.phase)) {
      profiling = true;
      void session.post('Profiler.start');
    } else if (profiling && !phases.includes(p.phase)) {
      stopped = stop();
    }
  },
});
await (stopped ?? stop());
const l = report.latencyMs;
if (connect) process.stderr.write(`connect: ${report.connections.succeeded} of ${devices} at ${report.connections.connectRate}/s, failed ${report.connections.failed}\n`);
process.stderr.write(`QoS ${qos} at ${rate} msg/s over ${transport}: sent ${report.rate.sent}/s, received ${report.rate.received}/s, lost ${report.messages.lost}, ` +
  `not sent ${report.messages.notSent}, p50 ${l.p50} ms, p99 ${l.p99} ms, broker CPU ${report.brokerCpu?.microsPerMessage ?? '-'} µs/message, ` +
  `utilisation broker ${report.utilization.broker} probe ${report.utilization.probe} generators ${report.utilization.generators.join('/')}\n`);
process.stderr.write(`profile: ${out}\n\n`);
process.stdout.write(execFileSync(process.execPath, [join(dirname(fileURLToPath(import.meta.url)), 'cpuprofile-summary.mjs'), out, '--top', arg('top', '30')], { encoding: 'utf8' }));
