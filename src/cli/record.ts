/**
 * `aiot-sim record`: capture a broker's traffic into a recording. Returns the exit code: 0 done
 * (the duration reached, or Ctrl-C), 1 the broker could not be reached or refused us, 2 a bad flag.
 */
import { AiotSimError } from '../errors.js';
import { Recorder, type RecordOptions } from '../replay/recorder.js';
import { bool, choice, duration, help, parseFlags, repeatable, setter, text, UsageError, usageErrorFor, type FlagSet } from './args.js';

export const RECORD_USAGE = `aiot-sim record: capture a broker's traffic into a recording (NDJSON, the format run --trace writes)

Usage:
  aiot-sim record --broker URL --out FILE [options]

  --broker URL        the broker: mqtt://HOST:PORT, mqtts://, ws://HOST:PORT/PATH or wss://
  --username U        its account (default anonymous)
  --password P        its password
  --topic FILTER      a topic filter to record; give it again for more (default "#": every
                      topic but $SYS/...)
  --qos 0|1|2         QoS of the subscription; each message is recorded with the QoS it was
                      delivered at, so 2 (the default) keeps the QoS it was published with
  --duration D        stop after D, e.g. 30s, 15m (default: until Ctrl-C)
  --out FILE          the recording to write (replaced if it exists); one line a message:
                      {"ts" (receive time, epoch ms), "topic", "payload", "qos", "retain"?}
  --quiet             no live progress
  -h, --help          this help

Lines are written as messages arrive; Ctrl-C stops, and loses nothing that was received.
`;

const option = setter<RecordOptions>();
const RECORD_FLAGS = {
  broker: option('broker', text),
  username: option('username', text),
  password: option('password', text),
  topic: option('topics', repeatable(text)),
  qos: option('qos', choice({ 0: 0, 1: 1, 2: 2 })),
  duration: option('durationMs', duration),
  out: option('out', text),
  quiet: bool,
  help,
} satisfies FlagSet;

export async function record(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const parsed = parseFlags(args, RECORD_FLAGS, 'record');
  const v = parsed.values;
  if (v.help) { out.write(RECORD_USAGE); return 0; }
  if (parsed.positionals.length) throw new UsageError(`record takes no positional arguments, got "${parsed.positionals.join(' ')}"`, 'record');
  const missing = (['broker', 'out'] as const).filter((k) => v[k] === undefined);
  if (missing.length) throw new UsageError(`record needs ${missing.map((k) => `--${k}`).join(' and ')}`, 'record');
  if (v.password !== undefined && v.username === undefined) throw new UsageError('--password needs --username: MQTT 3.1.1 sends no password without a user name (MQTT-3.1.2-22)', 'record');
  const opts: RecordOptions = { broker: v.broker!, out: v.out! };
  if (v.username !== undefined) opts.username = v.username;
  if (v.password !== undefined) opts.password = v.password;
  if (v.topic !== undefined) opts.topics = v.topic;
  if (v.qos !== undefined) opts.qos = v.qos;
  if (v.duration !== undefined) opts.durationMs = v.duration;
  let recorder: Recorder;
  try {
    recorder = await Recorder.start(opts);
  } catch (e) {
    const usage = usageErrorFor(e, RECORD_FLAGS, parsed, 'record');
    if (usage) throw usage;
    if (e instanceof AiotSimError) {
      err.write(`aiot-sim record: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  const quiet = v.quiet === true;
  const tty = !quiet && (err as NodeJS.WriteStream).isTTY === true;
  err.write(`aiot-sim record: recording ${(opts.topics ?? ['#']).join(', ')} from ${opts.broker} to ${recorder.file}` +
    `${opts.durationMs !== undefined ? ` for ${Math.round(opts.durationMs / 1000)} s` : ''} (Ctrl-C stops)\n`);
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) {
      err.write('\naiot-sim record: second interrupt, exiting now\n');
      process.exit(130);
    }
    interrupted = true;
    void recorder.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const t0 = performance.now();
  let last = 0;
  const ticker = setInterval(() => {
    if (!tty) return;
    const n = recorder.messages;
    const s = (performance.now() - t0) / 1000;
    err.write(`\r\x1b[2Krecord ${s.toFixed(0)}s | ${n.toLocaleString('en-US')} messages | ${(n - last).toLocaleString('en-US')} msg/s${recorder.disconnects ? ` | connection lost ${recorder.disconnects}x` : ''}`);
    last = n;
  }, 1000);
  try {
    const summary = await recorder.finished;
    if (tty) err.write('\r\x1b[2K');
    err.write(`aiot-sim record: ${summary.messages.toLocaleString('en-US')} messages (${summary.bytes.toLocaleString('en-US')} bytes) in ${summary.seconds} s` +
      `${summary.disconnects ? `, connection lost ${summary.disconnects} times` : ''}, written to ${summary.file}\n`);
    return 0;
  } catch (e) {
    if (e instanceof AiotSimError) {
      err.write(`aiot-sim record: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    clearInterval(ticker);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
