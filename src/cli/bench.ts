/**
 * `aiot-sim bench`: load-test a broker and whatever consumes from it. Returns the exit code:
 * 0 done (and every --slo term held), 1 an --slo term was violated or the bench could not run
 * (broker unreachable...), 2 usage error (a bad flag or --slo term, named in the message).
 */
import { AiotSimError } from '../errors.js';
import { runBench, type BenchOptions, type BenchProgress } from '../load/bench.js';
import { QOS_NOTE } from '../load/options.js';
import { toMarkdown } from '../load/report.js';
import {
  choice, duration, list, number, optionsFrom, parseFlags, port, setter, text, UsageError, usageErrorFor, type FlagSet,
} from './args.js';
import { CONSUMER_AND_OUTPUT_FLAGS, count, emitReport, liveLine } from './reports.js';

export const BENCH_USAGE = `aiot-sim bench: load-test a broker and its consumers with Mijia device traffic

Usage:
  aiot-sim bench [options]

Target (default: start the embedded broker on 127.0.0.1, any free port):
  --broker URL          an external broker: mqtt://HOST:PORT or ws://HOST:PORT/PATH
  --username U          external broker: username for devices and probe (default anonymous)
  --password P          external broker: password
  --broker-pid PID      external broker on this machine: report its CPU time per message (Linux)
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
  --wire W              cloud|local-hub: Xiaomi's cloud push format (device/{did}/up/..., keys in
                        params; the default) or the central hub's (appMsg/notify/iot/..., flat)
  --models A,B          device models to draw from (default: every Wi-Fi model)
  --reconnect-jitter D  a dropped device reconnects after 50 ms + random 0..D (default 1s)
  --inflight N          QoS 1 messages a device may have unacknowledged (default 100); what the
                        rate asks beyond them is not sent, counted as "QoS 1 window full"
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

const option = setter<BenchOptions>();

const BENCH_FLAGS = {
  broker: option('broker', text),
  username: option('username', text),
  password: option('password', text),
  'broker-pid': option('brokerPid', number),
  transport: option('transport', choice({ tcp: 'tcp', ws: 'ws' })),
  'mqtt-port': option('mqttPort', port),
  'ws-port': option('wsPort', port),
  host: option('host', text),
  devices: option('devices', number),
  rate: option('rate', number),
  'rate-per-device': option('ratePerDevice', number),
  qos: option('qos', choice({ 0: 0, 1: 1 }, QOS_NOTE)),
  duration: option('durationMs', duration),
  warmup: option('warmupMs', duration),
  ramp: option('rampPerSecond', number),
  'payload-size': option('payloadSize', number),
  events: option('eventShare', number),
  wire: option('wire', choice({ cloud: 'cloud', 'local-hub': 'local-hub' })),
  models: option('models', list),
  'reconnect-jitter': option('reconnectJitterMs', duration),
  inflight: option('inflight', number),
  workers: option('workers', number),
  seed: option('seed', number),
  ...CONSUMER_AND_OUTPUT_FLAGS,
} satisfies FlagSet;

function progressLine(p: BenchProgress): string {
  if (p.phase === 'connecting') return `bench ${p.seconds.toFixed(0)}s connecting ${p.connected}/${p.devices}${p.errors ? ` | errors ${p.errors}` : ''}`;
  return `bench ${p.seconds.toFixed(0)}s ${p.phase} | sent ${count(p.sendRate)} msg/s | received ${count(p.receiveRate)} msg/s | ` +
    `p99 ${p.p99Ms === null ? '-' : `${p.p99Ms.toFixed(1)} ms`} | online ${p.connected}/${p.devices} | errors ${p.errors}`;
}

export async function bench(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const parsed = parseFlags(args, BENCH_FLAGS, 'bench');
  const v = parsed.values;
  if (v.help) { out.write(BENCH_USAGE); return 0; }
  if (parsed.positionals.length) throw new UsageError(`bench takes no positional arguments, got "${parsed.positionals.join(' ')}"`, 'bench');
  const opts = optionsFrom<BenchOptions>(BENCH_FLAGS, parsed);
  const quiet = v.quiet === true;
  const live = liveLine(err, quiet);
  opts.onBroker = (b) => {
    if (!b.embedded) { if (!quiet) err.write(`aiot-sim bench: target ${b.url}\n`); return; }
    // Always printed (even with --quiet): a consumer needs the address.
    err.write(`aiot-sim bench: embedded broker ${b.mqttUrl ?? '-'}${b.wsUrl ? ` (WebSocket ${b.wsUrl})` : ''}; anonymous clients may subscribe to device/# and appMsg/notify/iot/# and publish outside device/, appMsg/, app/, $SYS/\n`);
  };
  opts.onProgress = (p) => live.show(progressLine(p));
  let report;
  try {
    report = await runBench(opts);
  } catch (e) {
    live.clear();
    const usage = usageErrorFor(e, BENCH_FLAGS, parsed, 'bench');
    if (usage) throw usage;
    if (e instanceof AiotSimError) {
      err.write(`aiot-sim bench: ${e.message}\n`);
      return e.kind === 'input' ? 2 : 1;
    }
    throw e;
  }
  live.clear();
  return emitReport('bench', report, toMarkdown(report), v, out, err);
}
