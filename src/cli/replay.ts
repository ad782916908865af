/**
 * `aiot-sim replay`: play a recording back into a broker and report what was sent (and, with a
 * consumer's replies, what came back). Returns the exit code: 0 done (and every --slo term held),
 * 1 an --slo term was violated, the recording is bad (every bad line named) or the broker could
 * not be reached, 2 a bad flag or --slo term.
 */
import { resolve } from 'node:path';
import { anonymousAccessFor } from '../broker/access.js';
import { AiotSimError, formatProblem, ValidationError } from '../errors.js';
import { runReplay, type ReplayOptions, type ReplayProgress } from '../replay/replay.js';
import { toReplayMarkdown } from '../replay/report.js';
import { bool, integer, number, optionsFrom, parseFlags, port, setter, text, UsageError, usageErrorFor, type FlagSet } from './args.js';
import { BROKER_FLAGS } from './broker-flags.js';
import { CONSUMER_AND_OUTPUT_FLAGS, count, emitReport, liveLine } from './reports.js';

export const REPLAY_USAGE = `aiot-sim replay: play a recording back into a broker, with its timing

Usage:
  aiot-sim replay FILE [options]

FILE is a recording (aiot-sim record --out) or a trace (aiot-sim run --trace): NDJSON, one
message a line. Each device publishes on a session of its own; QoS and retain flags are kept.

Target (default: start the embedded broker on 127.0.0.1, any free port):
  --broker URL          your broker: mqtt://HOST:PORT or ws://HOST:PORT/PATH
  --username U          your broker: the account of every session (default anonymous)
  --password P          your broker: its password
  --mqtt-port P         embedded broker TCP port (default 0 = any free port; printed)
  --host H              embedded broker interface (default 127.0.0.1)
  --anonymous A         embedded broker: what clients without a user name (your consumer) may do:
                        telemetry (read device telemetry and state, states without the owner's
                        uid; the default on loopback), all (read everything as recorded) or none
Timing:
  --speed X             X times the recorded pace (default 1: as recorded)
  --fast                as fast as the broker takes it
  --loop N              play the recording N times, one after the other (default 1)
  --rewrite-did N       play N copies side by side, each with device ids of its own, in topics
                        and payloads: one recording stands for N times its devices
Consumers:
  --reply-topic FILTER  measure the round trip through your consumer, which republishes each
                        replayed message (payload unchanged: replay adds the bench header
                        "bench":{...} to JSON payloads) on a topic matching FILTER
  --wait D              after the broker is up, wait D before replaying (start your consumer)
Output:
  --slo SPEC            as bench's, e.g. "p99<50ms,loss=0": exit code 1 when a term is violated
                        (latency, loss, dups and rate are measured on the replies: --reply-topic)
  --report FILE         write the JSON report (- for stdout)
  --markdown FILE       write the Markdown summary (- for stdout, the default when no --report -)
  --quiet               no live progress
  -h, --help            this help
`;

const option = setter<ReplayOptions>();
const REPLAY_FLAGS = {
  broker: option('broker', text),
  username: option('username', text),
  password: option('password', text),
  'mqtt-port': option('mqttPort', port),
  host: option('host', text),
  anonymous: option('anonymous', BROKER_FLAGS.anonymous),
  speed: option('speed', number),
  fast: bool,
  loop: option('loops', number),
  'rewrite-did': option('rewriteDid', integer(1, 100_000, 'a number of copies from 1 to 100000')),
  ...CONSUMER_AND_OUTPUT_FLAGS,
} satisfies FlagSet;

function progressLine(p: ReplayProgress): string {
  if (p.phase === 'connecting') return `replay ${p.seconds.toFixed(0)}s connecting ${p.connected}/${p.sessions} sessions`;
  return `replay ${p.seconds.toFixed(0)}s ${p.phase} | sent ${count(p.sent)}/${count(p.total)} | ${count(p.sendRate)} msg/s` +
    `${p.lateP99Ms !== null ? ` | late p99 ${p.lateP99Ms.toFixed(1)} ms` : ''}${p.receiveRate ? ` | replies ${count(p.receiveRate)} msg/s` : ''} | sessions ${p.connected}/${p.sessions}`;
}

export async function replay(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const parsed = parseFlags(args, REPLAY_FLAGS, 'replay');
  const v = parsed.values;
  if (v.help) { out.write(REPLAY_USAGE); return 0; }
  if (parsed.positionals.length !== 1) throw new UsageError(`replay takes one recording file, got ${parsed.positionals.length}`, 'replay');
  if (v.fast && v.speed !== undefined) throw new UsageError('--fast and --speed exclude each other', 'replay');
  const opts: ReplayOptions = { ...optionsFrom<ReplayOptions>(REPLAY_FLAGS, parsed), file: resolve(parsed.positionals[0]!) };
  if (v.fast) opts.speed = 'fast';
  const quiet = v.quiet === true;
  const live = liveLine(err, quiet);
  opts.onBroker = (b) => {
    // Always printed (even with --quiet): a consumer needs the address.
    const anonymous = anonymousAccessFor(opts.anonymous !== undefined ? { anonymous: opts.anonymous } : {}, opts.host ?? '127.0.0.1');
    if (b.embedded) err.write(`aiot-sim replay: embedded broker ${b.url}; clients without a user name: ${anonymous} (--anonymous)\n`);
    else if (!quiet) err.write(`aiot-sim replay: target ${b.url}\n`);
  };
  opts.onProgress = (p) => live.show(progressLine(p));
  let report;
  try {
    report = await runReplay(opts);
  } catch (e) {
    live.clear();
    const usage = usageErrorFor(e, REPLAY_FLAGS, parsed, 'replay');
    if (usage) throw usage;
    if (e instanceof ValidationError) {
      err.write(`aiot-sim replay: bad recording, nothing was sent:\n${e.problems.map((p) => `  ${formatProblem(p)}\n`).join('')}`);
      return 1;
    }
    if (e instanceof AiotSimError) {
      err.write(`aiot-sim replay: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  live.clear();
  return emitReport('replay', report, toReplayMarkdown(report), v, out, err);
}
