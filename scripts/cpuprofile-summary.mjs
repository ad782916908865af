#!/usr/bin/env node
/**
 * Sum up a V8 CPU profile (`node --cpu-prof`, one .cpuprofile per thread): where the thread's
 * time went, by package (aedes, mqtt-packet, our src/ part, Node's internals, GC) and by function
 * (self time, and total time including callees).
 *
 *   node scripts/cpuprofile-summary.mjs FILE.cpuprofile [--top N] [--json]
 *
 * Self time is what the sampled frame itself ran; total time counts each sample once for every
 * distinct function on its stack (recursion counted once).
 */
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
if (!file) {
  process.stderr.write('usage: cpuprofile-summary.mjs FILE.cpuprofile [--top N] [--json]\n');
  process.exit(2);
}
const topIdx = args.indexOf('--top');
const TOP = topIdx >= 0 ? Number(args[topIdx + 1]) : 25;
const asJson = args.includes('--json');

const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

/** Which part of the program a frame belongs to. */
function partOf(frame) {
  const url = frame.url ?? '';
  const name = frame.functionName;
  if (name === '(garbage collector)') return 'gc';
  if (name === '(idle)') return 'idle';
  if (name === '(program)') return 'program (native, outside JS)';
  if (name === '(root)') return 'root';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0] === 'internal' ? url.slice(5).split('/').slice(0, 2).join('/') : url.slice(5)}`;
  const dist = url.match(/\/(dist|src)\/([^/]+)\//);
  if (dist) return `aiot-sim ${dist[2]}`;
  if (url === '') return `native ${name || '(anonymous)'}`;
  return url.replace(/^file:\/\//, '');
}

const label = (f) => `${f.functionName || '(anonymous)'} ${(f.url ?? '').replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(dist|src)\//, '$1/')}:${f.lineNumber + 1}`;

const selfByFn = new Map();
const totalByFn = new Map();
const selfByPart = new Map();
let total = 0;
const add = (m, k, v) => m.set(k, (m.get(k) ?? 0) + v);

const samples = profile.samples;
const deltas = profile.timeDeltas;
for (let i = 0; i < samples.length; i++) {
  const dt = (deltas[i + 1] ?? deltas[i] ?? 0) / 1000; // ms: a sample's time runs until the next one
  const node = byId.get(samples[i]);
  if (!node) continue;
  total += dt;
  add(selfByFn, label(node.callFrame), dt);
  add(selfByPart, partOf(node.callFrame), dt);
  const seen = new Set();
  for (let id = node.id; id !== undefined; id = parent.get(id)) {
    const l = label(byId.get(id).callFrame);
    if (seen.has(l)) continue;
    seen.add(l);
    add(totalByFn, l, dt);
  }
}

const idle = selfByPart.get('idle') ?? 0;
const busy = total - idle;
const rows = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
const pct = (v, of) => `${((100 * v) / of).toFixed(1)} %`;

if (asJson) {
  const obj = (m, n) => rows(m, n).map(([k, v]) => ({ name: k, ms: Math.round(v), shareOfBusy: Math.round((1000 * v) / busy) / 1000 }));
  process.stdout.write(`${JSON.stringify({ file, totalMs: Math.round(total), busyMs: Math.round(busy), parts: obj(selfByPart, 100), self: obj(selfByFn, TOP), total: obj(totalByFn, TOP) }, null, 2)}\n`);
} else {
  const out = [];
  out.push(`${file}: ${total.toFixed(0)} ms sampled, ${busy.toFixed(0)} ms busy (not idle)`);
  out.push('', 'self time by part (share of busy time):');
  for (const [k, v] of rows(selfByPart, 100)) if (k !== 'idle') out.push(`  ${pct(v, busy).padStart(7)}  ${v.toFixed(0).padStart(7)} ms  ${k}`);
  out.push('', `self time by function (top ${TOP}):`);
  for (const [k, v] of rows(selfByFn, TOP)) if (!k.startsWith('(idle)')) out.push(`  ${pct(v, busy).padStart(7)}  ${k}`);
  out.push('', `total time by function, callees included (top ${TOP}):`);
  for (const [k, v] of rows(totalByFn, TOP + 3)) if (!/^\((root|idle|program)\)/.test(k)) out.push(`  ${pct(v, busy).padStart(7)}  ${k}`);
  process.stdout.write(`${out.join('\n')}\n`);
}
