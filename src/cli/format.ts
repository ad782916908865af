/** Terminal output of the CLI: live progress, the end-of-run summary, catalogue listings. */
import type { Catalog } from '../catalog/catalog.js';
import type { DeviceModel, PropertySpec } from '../catalog/schema.js';
import type { RunReport } from '../sim/report.js';
import type { SimulationStatus } from '../sim/simulation.js';

/**
 * Live progress: one self-rewriting status line on a terminal; elsewhere (a log file, CI) a plain
 * line every `logEveryMs` of wall time, so long runs show they are alive. Silent when off.
 */
export class Progress {
  private last: { at: number; published: number } | null = null;
  /** Wall and virtual time when the clock started, for the estimate of the time left. */
  private origin: { at: number; virtual: number } | null = null;
  private lastLogged = 0;
  private shown = false;
  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly mode: 'tty' | 'log' | 'off',
    private readonly logEveryMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  connecting(n: number, total: number): void {
    if (this.mode === 'tty' && (n % 50 === 0 || n === total)) this.write(`connecting devices ${n}/${total}`);
    if (this.mode === 'log' && this.due()) this.stream.write(`aiot-sim: connecting devices ${n}/${total}\n`);
  }

  update(s: SimulationStatus): void {
    if (s.stopping) {
      this.stopping(s);
      return;
    }
    const now = this.now();
    const rate = this.last ? ((s.published - this.last.published) * 1000) / Math.max(1, now - this.last.at) : 0;
    this.last = { at: now, published: s.published };
    this.origin ??= { at: now, virtual: s.virtualTime };
    if (this.mode === 'off' || (this.mode === 'log' && !this.due())) return;
    let pct = '';
    let eta = '';
    if (s.virtualEnd) {
      const span = s.virtualEnd - s.virtualStart;
      pct = ` ${Math.min(100, Math.floor(((s.virtualTime - s.virtualStart) * 100) / span))}%`;
      const done = s.virtualTime - this.origin.virtual;
      const wall = now - this.origin.at;
      if (done > 0 && wall >= 5000) eta = ` | about ${formatWall(((s.virtualEnd - s.virtualTime) / done) * wall)} left`;
    }
    this.show(`virtual ${isoMinute(s.virtualTime)}${pct}${eta} | online ${s.online}/${s.devices} | ${rate.toFixed(1)} msg/s | ` +
      `published ${s.published} delivered ${s.delivered} rejected ${s.rejected}`);
  }

  /** While the run stops (a large fleet takes a while to say goodbye): how many sessions are still connected. */
  private stopping(s: SimulationStatus): void {
    if (this.mode === 'off' || (this.mode === 'log' && !this.due())) return;
    const step = s.stopStep === undefined ? '' : `waiting for ${s.stopStep}; `;
    this.show(`stopping: ${step}${s.sessionsConnected} of ${s.sessions} sessions still connected`);
  }

  /** The live line on a terminal, a plain line in a log. */
  private show(line: string): void {
    if (this.mode === 'tty') this.write(line);
    else this.stream.write(`aiot-sim: ${line}\n`);
  }

  clear(): void {
    if (this.shown) this.stream.write('\r\x1b[2K');
    this.shown = false;
  }

  private due(): boolean {
    const now = this.now();
    if (this.lastLogged === 0) this.lastLogged = now;
    if (now - this.lastLogged < this.logEveryMs) return false;
    this.lastLogged = now;
    return true;
  }

  private write(line: string): void {
    this.stream.write(`\r\x1b[2K${line}`);
    this.shown = true;
  }
}

/** A wall-clock duration for people: 45 s, 12 min, 1 h 20 min. */
export function formatWall(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 90) return `${min} min`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}

function isoMinute(ts: number): string {
  return new Date(ts).toISOString().slice(0, 19).replace('T', ' ') + 'Z';
}

export function formatSummary(r: RunReport, interrupted: boolean): string {
  const c = r.platform.connections;
  const top = (m: Record<string, number>): string => Object.entries(m).map(([k, v]) => `${k} ${v}`).join(', ') || '-';
  return [
    `aiot-sim: ${interrupted ? 'stopped' : 'finished'} "${r.scenario}" (seed ${r.seed})`,
    `  virtual time   ${r.virtualStart} -> ${r.virtualEnd} (${r.virtualSeconds} s) in ${r.wallSeconds} s wall`,
    `  devices        ${r.devices.total} (${r.devices.sessions} MQTT sessions, the rest behind gateways)`,
    `  online at end  ${c.online}   by category: ${top(c.byCategory)}`,
    `                 by region: ${top(c.byRegion)}   by transport: ${top(c.byTransport)}`,
    `  messages       published ${r.messages.published}, delivered ${r.messages.delivered}, rejected ${r.messages.rejected}`,
    `  trace          ${r.traceMessages} device messages, sha256 ${r.traceDigest}`,
    ...(r.faults.length ? [`  events         duplicates removed ${r.platform.messages.duplicatesRemoved}, missing ${r.platform.messages.eventsMissing}`] : []),
    ...r.faults.map((f, i) => `${i === 0 ? '  faults         ' : '                 '}${describeFault(f)}`),
    '',
  ].join('\n');
}

/** Network work slower than this each, on average (ms), in fast mode: round trips through the broker set the pace. */
const SLOW_NETWORK_WORK_MS = 10;

/**
 * Advice when fast mode spent its time waiting for the network: the virtual clock stops at each
 * command and app session until it is answered, so slow round trips through the broker (one far
 * away, or one that holds small packets back) set the run's pace. Empty otherwise.
 */
export function networkHint(r: RunReport): string {
  const w = r.networkWork;
  if (r.speed !== 'fast' || !w || w.pieces < 20) return '';
  const eachMs = (1000 * w.wallSeconds) / w.pieces;
  if (eachMs < SLOW_NETWORK_WORK_MS) return '';
  return `aiot-sim: fast mode waited ${w.wallSeconds.toFixed(1)} s of the ${r.wallSeconds} s run for ${w.pieces} commands and app sessions through the broker, ${eachMs.toFixed(1)} ms each\n`
    + 'aiot-sim: (the clock stops for each round trip; Mosquitto answers in about 1 ms with "set_tcp_nodelay true": see docs/broker.md, "Your own broker")\n';
}

/** One line per fault: type, virtual span, sessions, and what was measured. */
function describeFault(f: RunReport['faults'][number]): string {
  const span = f.from === f.to ? f.from.slice(11, 19) : `${f.from.slice(11, 19)}-${f.to.slice(11, 19)}`;
  const details = Object.entries(f.details ?? {}).map(([k, v]) => `${k} ${String(v)}`).join(', ');
  return `${f.type}${f.region ? ` ${f.region}` : ''} ${span} (${f.sessions} sessions)${details ? `: ${details}` : ''}`;
}

export function listModels(catalog: Catalog): string {
  const rows = catalog.models
    .slice()
    .sort((a, b) => (a.category + a.model < b.category + b.model ? -1 : 1))
    .map((m) => [m.model, m.category, m.transport, m.markets.join(','), String(m.services.reduce((n, s) => n + s.properties.length, 0)), m.name]);
  const head = ['MODEL', 'CATEGORY', 'TRANSPORT', 'MARKETS', 'PROPS', 'NAME'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [fmt(head), ...rows.map(fmt), `${rows.length} models`, ''].join('\n');
}

function describeProperty(siid: number, p: PropertySpec): string {
  const access = p.access.map((a) => a[0]).join('') || '-';
  let values = '';
  if (p['value-range']) values = ` ${p['value-range'][0]}..${p['value-range'][1]}/${p['value-range'][2]}`;
  if (p['value-list']) values = ` {${p['value-list'].map((v) => `${v.value}=${v.description}`).join(', ')}}`;
  return `    p ${siid}.${p.piid} ${p.name}: ${p.format} ${access}${values}${p.unit ? ` ${p.unit}` : ''}`;
}

export function describeModel(m: DeviceModel): string {
  const lines = [`${m.model}  ${m.name}`, `  ${m.urn}`, `  category ${m.category}, transport ${m.transport}, markets ${m.markets.join(', ')}`, `  source: ${m.source}`];
  for (const s of m.services) {
    lines.push(`  service ${s.siid} ${s.name}`);
    for (const p of s.properties) lines.push(describeProperty(s.siid, p));
    for (const a of s.actions) lines.push(`    a ${s.siid}.${a.aiid} ${a.name}${a.in.length ? ` in [${a.in.join(', ')}]` : ''}${a.out.length ? ` out [${a.out.join(', ')}]` : ''}`);
    for (const e of s.events) lines.push(`    e ${s.siid}.${e.eiid} ${e.name}${e.arguments.length ? ` args [${e.arguments.join(', ')}]` : ''}`);
  }
  if (m.behaviours.length) lines.push(`  behaviours: ${m.behaviours.map((b) => b.use).join(', ')}`);
  return lines.join('\n') + '\n';
}
