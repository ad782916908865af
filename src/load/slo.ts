/**
 * Service-level objectives for `aiot-sim bench --slo "p99<50ms,loss=0"`: a comma-separated list of
 * `metric op value` terms, checked against the final report so a CI job can gate on the exit code.
 *
 * Metrics: p50 p90 p99 p999 max (latency, ms; a value may end in "ms", "s" or "us"), loss (lost
 * messages; "0.1%" compares the loss ratio instead), dups (duplicates), rate (received msg/s),
 * connectFailures. Ops: < <= = > >=.
 */
import { AiotSimError } from '../errors.js';

export const SLO_METRICS = ['p50', 'p90', 'p99', 'p999', 'max', 'loss', 'dups', 'rate', 'connectFailures'] as const;
export type SloMetric = (typeof SLO_METRICS)[number];
export type SloOp = '<' | '<=' | '=' | '>' | '>=';

export interface SloTerm {
  /** The term as written, e.g. "p99<50ms". */
  term: string;
  metric: SloMetric;
  op: SloOp;
  /** Threshold in the metric's unit: ms for latency, a count for loss/dups/connectFailures, msg/s for rate. */
  value: number;
  /** loss given as a percentage: compare the loss ratio (0..100 %) instead of the count. */
  percent: boolean;
}

export interface SloCheck extends SloTerm {
  /** The measured value in the same unit as `value` (null when the run has no such figure, e.g. no message arrived). */
  actual: number | null;
  passed: boolean;
}

/** The figures an SLO can refer to (a subset of the bench report). */
export interface SloFigures {
  latencyMs: { p50: number | null; p90: number | null; p99: number | null; p999: number | null; max: number | null };
  messages: { lost: number; duplicates: number; lossRatio: number | null };
  rate: { received: number };
  connections: { failed: number };
}

export class SloSyntaxError extends AiotSimError {
  constructor(message: string) { super('E_SLO', 'input', message); }
}

const TERM = /^\s*([A-Za-z][A-Za-z0-9]*)\s*(<=|>=|<|>|==?)\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*(ms|s|us|µs|%|msg\/s)?\s*$/i;
const LATENCY = new Set<SloMetric>(['p50', 'p90', 'p99', 'p999', 'max']);
const ALIASES: Record<string, SloMetric> = { 'p99.9': 'p999', duplicates: 'dups', connectfailures: 'connectFailures' };

/** Parse an SLO string; throws SloSyntaxError naming the first bad term. */
export function parseSlo(text: string): SloTerm[] {
  const terms = text.split(',').map((t) => t.trim());
  if (terms.length === 0 || terms.every((t) => t === '')) throw new SloSyntaxError('--slo: empty; expected terms like "p99<50ms,loss=0"');
  return terms.map((raw) => {
    if (raw === '') throw new SloSyntaxError(`--slo: empty term in "${text}" (stray comma?)`);
    const m = TERM.exec(raw.replace(/^p99\.9(?=[<>=])/i, 'p999'));
    if (!m) throw new SloSyntaxError(`--slo: cannot read term "${raw}"; expected METRIC OP VALUE, e.g. p99<50ms, loss=0, rate>=1000`);
    const name = m[1]!;
    const metric = (SLO_METRICS as readonly string[]).find((k) => k.toLowerCase() === name.toLowerCase()) as SloMetric | undefined
      ?? ALIASES[name.toLowerCase()];
    if (!metric) throw new SloSyntaxError(`--slo: unknown metric "${name}" in term "${raw}"; one of ${SLO_METRICS.join(', ')}`);
    const op = (m[2] === '==' ? '=' : m[2]) as SloOp;
    let value = Number(m[3]);
    const unit = (m[4] ?? '').toLowerCase();
    let percent = false;
    if (LATENCY.has(metric)) {
      if (unit === 's') value *= 1000;
      else if (unit === 'us' || unit === 'µs') value /= 1000;
      else if (unit !== '' && unit !== 'ms') throw new SloSyntaxError(`--slo: term "${raw}": ${metric} is a latency; use ms, s or us, not "${unit}"`);
    } else if (metric === 'loss' && unit === '%') {
      percent = true;
    } else if (metric === 'rate' && (unit === '' || unit === 'msg/s')) {
      // messages per second
    } else if (unit !== '') {
      throw new SloSyntaxError(`--slo: term "${raw}": ${metric} takes no unit "${unit}"${metric === 'loss' ? ' (only % for a ratio)' : ''}`);
    }
    if (!Number.isFinite(value)) throw new SloSyntaxError(`--slo: term "${raw}": "${m[3]}" is not a number`);
    return { term: raw, metric, op, value, percent };
  });
}

function measured(t: SloTerm, f: SloFigures): number | null {
  switch (t.metric) {
    case 'p50': case 'p90': case 'p99': case 'p999': case 'max':
      return f.latencyMs[t.metric];
    case 'loss':
      return t.percent ? (f.messages.lossRatio === null ? null : f.messages.lossRatio * 100) : f.messages.lost;
    case 'dups':
      return f.messages.duplicates;
    case 'rate':
      return f.rate.received;
    case 'connectFailures':
      return f.connections.failed;
  }
}

function compare(a: number, op: SloOp, b: number): boolean {
  switch (op) {
    case '<': return a < b;
    case '<=': return a <= b;
    case '=': return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
    case '>': return a > b;
    case '>=': return a >= b;
  }
}

/** Check every term; a figure the run does not have (no latency sample at all) fails its term. */
export function checkSlo(terms: SloTerm[], figures: SloFigures): { passed: boolean; checks: SloCheck[] } {
  const checks = terms.map((t) => {
    const actual = measured(t, figures);
    return { ...t, actual, passed: actual !== null && compare(actual, t.op, t.value) };
  });
  return { passed: checks.every((c) => c.passed), checks };
}
