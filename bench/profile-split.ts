/**
 * Where a run's CPU goes, by part: the split of a V8 CPU profile (`node --cpu-prof`) into the
 * device side (devices, the simulation loop, the fleet engine), the broker, the platform, the app
 * and operator clients, the monitor and the garbage collector. Each sample belongs to the nearest
 * frame on its stack that is some part's own code; shared code (MQTT packet parsing, buffer
 * lists, the wire format, Node's streams) belongs to whoever called it.
 *
 *   AIOT_SIM_HEAP=default node --max-semi-space-size=64 --cpu-prof --cpu-prof-dir=/tmp/prof bin/aiot-sim.js run \
 *     scenarios/consumer-load.yaml --fast --duration 24h --quiet --mqtt-port 0 --ws-port 0 --http-port 0
 *   npm run bench:build && node dist-bench/bench/profile-split.js /tmp/prof/CPU.*.cpuprofile
 */
import { readFileSync } from 'node:fs';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string }; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

/** The part a frame's own code belongs to, by its file; null for shared code (its caller decides). */
const PARTS: Array<[string, RegExp]> = [
  ['broker', /node_modules\/(aedes|aedes-persistence|aedes-packet|qlobber|mqemitter|fastparallel|fastfall|reusify|retimer|hyperid|rfdc)\/|\/dist\/broker\//],
  ['platform', /\/dist\/platform\//],
  ['app and operator clients (mqtt.js)', /node_modules\/(mqtt|ws|debug)\/|\/dist\/sim\/(users|cloud-clients)\.js/],
  ['monitor', /\/dist\/monitor\//],
  ['device side: fleet engine', /\/dist\/sim\/fleet\//],
  ['device side: devices', /\/dist\/device\//],
  ['device side: simulation loop (scheduler, trace, sessions)', /\/dist\/sim\//],
];

function partOf(fn: string, url: string): string | null {
  if (fn === '(garbage collector)') return 'garbage collector';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return 'V8 and Node (no JavaScript on the stack)';
  for (const [part, re] of PARTS) if (re.test(url)) return part;
  return null;
}

export function split(profile: Profile): { busyMs: number; parts: Array<{ part: string; share: number; ms: number }> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const owners = new Map<number, string>();
  const owner = (id: number): string => {
    const known = owners.get(id);
    if (known) return known;
    const f = byId.get(id)!.callFrame;
    const up = parent.get(id);
    const part = partOf(f.functionName, f.url) ?? (up === undefined ? 'Node internals (no part on the stack)' : owner(up));
    owners.set(id, part);
    return part;
  };
  const micros = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const part = owner(id);
    micros.set(part, (micros.get(part) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  micros.delete('idle');
  const busy = [...micros.values()].reduce((a, b) => a + b, 0);
  const parts = [...micros].sort((a, b) => b[1] - a[1]).map(([part, us]) => ({ part, share: busy ? us / busy : 0, ms: Math.round(us / 1000) }));
  return { busyMs: Math.round(busy / 1000), parts };
}

const file = process.argv[2];
if (file) {
  const { busyMs, parts } = split(JSON.parse(readFileSync(file, 'utf8')) as Profile);
  process.stdout.write(`busy ${busyMs} ms (samples while not idle)\n`);
  for (const p of parts) process.stdout.write(`${(100 * p.share).toFixed(1).padStart(5)} %  ${String(p.ms).padStart(8)} ms  ${p.part}\n`);
}
