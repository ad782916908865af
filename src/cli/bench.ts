/**
 * `aiot-sim bench`: load-test a broker and whatever consumes from it. Returns the exit code:
 * 0 done (and every --slo term held), 1 an --slo term was violated or the bench could not run
 * (broker unreachable...), 2 usage error (a bad flag or --slo term, named in the message).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AiotSimError } from '../errors.js';
import { runBench, type BenchOptions, type BenchProgress } from '../load/bench.js';
import { toMarkdown } from '../load/report.js';
import { parseSlo } from '../load/slo.js';
import { parseDuration } from '../catalog/scenario.js';

export const BENCH_USAGE = `aiot-sim bench: load-test a broker and its consumers with Mijia device traffic

Usage:
  aiot-sim bench [options]

Target (default: start the embedded broker on 127.0.0.1, any free port):
  --broker URL          an external broker: mqtt://HOST:PORT or ws://HOST:PORT/PATH
  --username U          external broker: username for devices and probe (default anonymous)
  --password P          external broker: password
  --transport tcp|ws    embedded broker: how devices and probe connect (default tcp)
  --mqtt-port P         embedded broker TCP port (default 0 = any free port; printed)
  --ws-port P           embedded broker MQTT-over-WebSocket port, path /mqtt (default off)
  --host H              embedded broker interface (default 127.0.0.1)
Traffic:
  --devices N           device connections (default 100)
  --rate R              messages/s, all devices together (default 1000)
  --rate-per-device R   messages/s per device (instead of --rate)
  --qos 0|1             QoS of device publishes and of the probe's subscription (default 0)
  --duration D          measured time, e.g. 30s, 2m (default 10s)
  --warmup D            traffic before measuring (default 2s)
  --ramp R              connections per second while connecting (default 0 = as fast as possible)
  --payload-size B      pad each payload to at least B bytes (default: natural size, ~190-340)
  --events SHARE        share of event_occured messages, 0..1 (default 0.05)
  --models A,B          device models to draw from (default: every Wi-Fi model)
  --reconnect-jitter D  a dropped device reconnects after 50 ms + random 0..D (default 1s)
  --workers N           generator threads (default 1; 2 on 4+ cores)
  --seed N              seed of the generator's random choices (default 1)
Consumers:
  --reply-topic FILTER  measure the round trip through your consumer, which republishes each
                        bench message (payload unchanged) on a topic matching FILTER
  --wait D              after the broker is up, wait D before devices connect (start your consumer)
Output:
  --slo SPEC            e.g. "p99<50ms,loss=0": exit code 1 when a term is violated
                        metrics p50 p90 p99 p999 max (ms) loss (count, or %) dups rate connectFailures
  --report FILE         write the JSON report (- for stdout)
  --markdown FILE       write the Markdown summary (- for stdout, the default when no --report -)
  --quiet               no live progress
  -h, --help            this help
`;

const OPTIONS = {
  broker: { type: 'string' },
  username: { type: 'string' },
  password: { type: 'string' },
  transport: { type: 'string' },
  'mqtt-port': { type: 'string' },
  'ws-port': { type: 'string' },
  host: { type: 'string' },
  devices: { type: 'string' },
  rate: { type: 'string' },
  'rate-per-device': { type: 'string' },
  qos: { type: 'string' },
  duration: { type: 'string' },
  warmup: { type: 'string' },
  ramp: { type: 'string' },
  'payload-size': { type: 'string' },
  events: { type: 'string' },
  models: { type: 'string' },
  'reconnect-jitter': { type: 'string' },
  workers: { type: 'string' },
  seed: { type: 'string' },
  'reply-topic': { type: 'string' },
  wait: { type: 'string' },
  slo: { type: 'string' },
  report: { type: 'string' },
  markdown: { type: 'string' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} satisfies ParseArgsConfig['options'];

class BenchUsageError extends AiotSimError {
  constructor(message: string) { super('E_USAGE', 'input', message); }
}

function int(flag: string, v: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new BenchUsageError(`--${flag}: expected an integer ${min}..${max === Number.MAX_SAFE_INTEGER ? '' : max}, got "${v}"`);
  return n;
}

function positive(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n)) throw new BenchUsageError(`--${flag}: expected a positive number, got "${v}"`);
  return n;
}

function duration(flag: string, v: string | undefined, allowZero: boolean): number | undefined {
  if (v === undefined) return undefined;
  if (allowZero && /^0+(\.0+)?(ms|s|m|h)?$/.test(v.trim())) return 0;
  const ms = parseDuration(v);
  if (ms === undefined) throw new BenchUsageError(`--${flag}: expected a duration like 500ms, 10s, 2m, got "${v}"`);
  return ms;
}

function toOptions(v: ReturnType<typeof parse>['values']): BenchOptions {
  const o: BenchOptions = {};
  if (v.broker !== undefined) {
    if (v['mqtt-port'] !== undefined || v['ws-port'] !== undefined || v.transport !== undefined || v.host !== undefined) {
      throw new BenchUsageError('--mqtt-port, --ws-port, --transport and --host configure the embedded broker; with --broker the URL says it all');
    }
    o.broker = v.broker;
  } else if (v.username !== undefined || v.password !== undefined) {
    throw new BenchUsageError('--username/--password are for an external broker (--broker); against the embedded one bench provisions device accounts itself');
  }
  if (v.username !== undefined) o.username = v.username;
  if (v.password !== undefined) o.password = v.password;
  if (v.transport !== undefined) {
    if (v.transport !== 'tcp' && v.transport !== 'ws') throw new BenchUsageError(`--transport: expected tcp or ws, got "${v.transport}"`);
    o.transport = v.transport;
  }
  const mqttPort = int('mqtt-port', v['mqtt-port'], 0, 65535);
  if (mqttPort !== undefined) o.mqttPort = mqttPort;
  const wsPort = int('ws-port', v['ws-port'], 0, 65535);
  if (wsPort !== undefined) o.wsPort = wsPort;
  if (v.host !== undefined) o.host = v.host;
  const devices = int('devices', v.devices, 1, 1_000_000);
  if (devices !== undefined) o.devices = devices;
  if (v.rate !== undefined && v['rate-per-device'] !== undefined) throw new BenchUsageError('--rate and --rate-per-device exclude each other');
  const rate = positive('rate', v.rate);
  if (rate !== undefined) o.rate = rate;
  const perDevice = positive('rate-per-device', v['rate-per-device']);
  if (perDevice !== undefined) o.ratePerDevice = perDevice;
  if (v.qos !== undefined) {
    if (v.qos !== '0' && v.qos !== '1') throw new BenchUsageError(`--qos: expected 0 or 1 (Aedes and bench speak MQTT 3.1.1; QoS 2 is not generated), got "${v.qos}"`);
    o.qos = v.qos === '1' ? 1 : 0;
  }
  const d = duration('duration', v.duration, false);
  if (d !== undefined) o.durationMs = d;
  const w = duration('warmup', v.warmup, true);
  if (w !== undefined) o.warmupMs = w;
  if (v.ramp !== undefined) {
    const r = Number(v.ramp);
    if (!(r >= 0) || !Number.isFinite(r)) throw new BenchUsageError(`--ramp: expected connections per second >= 0, got "${v.ramp}"`);
    o.rampPerSecond = r;
  }
  const pad = int('payload-size', v['payload-size'], 0, 256 * 1024);
  if (pad !== undefined) o.payloadSize = pad;
  if (v.events !== undefined) {
    const e = Number(v.events);
    if (!(e >= 0 && e <= 1)) throw new BenchUsageError(`--events: expected a share 0..1, got "${v.events}"`);
    o.eventShare = e;
  }
  if (v.models !== undefined) o.models = v.models.split(',').map((s) => s.trim()).filter(Boolean);
  const j = duration('reconnect-jitter', v['reconnect-jitter'], true);
  if (j !== undefined) o.reconnectJitterMs = j;
  const workers = int('workers', v.workers, 1, 64);
  if (workers !== undefined) o.workers = workers;
  const seed = int('seed', v.seed, 0);
  if (seed !== undefined) o.seed = seed;
  if (v['reply-topic'] !== undefined) {
    const t = v['reply-topic'];
    if (!validFilter(t)) throw new BenchUsageError(`--reply-topic: "${t}" is not a valid MQTT topic filter`);
    o.replyTopic = t;
  }
  const wait = duration('wait', v.wait, true);
  if (wait !== undefined) o.waitMs = wait;
  if (v.slo !== undefined) {
    try {
      o.slo = parseSlo(v.slo);
    } catch (e) {
      throw new BenchUsageError((e as Error).message);
    }
  }
  return o;
}

/** An MQTT topic filter: `#` only as the whole last level, `+` only as a whole level. */
function validFilter(f: string): boolean {
  if (f === '' || f.length > 65535) return false;
  const levels = f.split('/');
  return levels.every((l, i) => (l.includes('#') ? l === '#' && i === levels.length - 1 : !l.includes('+') || l === '+'));
}

function parse(args: string[]) {
  try {
    return parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new BenchUsageError((e as Error).message);
  }
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

function progressLine(p: BenchProgress): string {
  if (p.phase === 'connecting') return `bench ${p.seconds.toFixed(0)}s connecting ${p.connected}/${p.devices}${p.errors ? ` | errors ${p.errors}` : ''}`;
  return `bench ${p.seconds.toFixed(0)}s ${p.phase} | sent ${fmt(p.sendRate)} msg/s | received ${fmt(p.receiveRate)} msg/s | ` +
    `p99 ${p.p99Ms === null ? '-' : `${p.p99Ms.toFixed(1)} ms`} | online ${p.connected}/${p.devices} | errors ${p.errors}`;
}

async function output(path: string, text: string, out: NodeJS.WritableStream): Promise<void> {
  if (path === '-') { out.write(text); return; }
  const abs = resolve(path);
  await mkdir(dirname(abs), { recursive: true });
  await writeFile(abs, text);
}

export async function bench(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  let opts: BenchOptions;
  let v: ReturnType<typeof parse>['values'];
  try {
    const parsed = parse(args);
    v = parsed.values;
    if (v.help) { out.write(BENCH_USAGE); return 0; }
    if (parsed.positionals.length) throw new BenchUsageError(`bench takes no positional arguments, got "${parsed.positionals.join(' ')}"`);
    opts = toOptions(v);
  } catch (e) {
    if (e instanceof BenchUsageError) {
      err.write(`aiot-sim bench: ${e.message}\n(aiot-sim bench --help lists the options)\n`);
      return 2;
    }
    throw e;
  }
  const quiet = v.quiet === true;
  const tty = !quiet && (err as NodeJS.WriteStream).isTTY === true;
  let shown = false;
  opts.onBroker = (b) => {
    if (!b.embedded) { if (!quiet) err.write(`aiot-sim bench: target ${b.url}\n`); return; }
    // Always printed (even with --quiet): a consumer needs the address.
    err.write(`aiot-sim bench: embedded broker ${b.mqttUrl ?? '-'}${b.wsUrl ? ` (WebSocket ${b.wsUrl})` : ''}; anonymous clients may subscribe to device/# and publish outside device/, app/, $SYS/\n`);
  };
  opts.onProgress = (p) => {
    if (!tty) return;
    err.write(`\r\x1b[2K${progressLine(p)}`);
    shown = true;
  };
  let report;
  try {
    report = await runBench(opts);
  } catch (e) {
    if (shown) err.write('\r\x1b[2K');
    if (e instanceof AiotSimError) {
      err.write(`aiot-sim bench: ${e.message}\n`);
      return e.kind === 'input' ? 2 : 1;
    }
    throw e;
  }
  if (shown) err.write('\r\x1b[2K');
  const md = toMarkdown(report);
  const json = JSON.stringify(report, null, 2) + '\n';
  if (v.report !== undefined) await output(v.report, json, out);
  if (v.markdown !== undefined) await output(v.markdown, md, out);
  if (v.report !== '-' && v.markdown === undefined) out.write(md);
  if (v.report !== undefined && v.report !== '-' && !quiet) err.write(`aiot-sim bench: report written to ${resolve(v.report)}\n`);
  if (report.slo && !report.slo.passed) {
    const failed = report.slo.checks.filter((c) => !c.passed).map((c) => `${c.term} (measured ${c.actual === null ? 'nothing' : Number(c.actual.toFixed(3))})`);
    err.write(`aiot-sim bench: SLO violated: ${failed.join(', ')}\n`);
    return 1;
  }
  return 0;
}
