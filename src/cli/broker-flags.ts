/**
 * The flags `run` and `serve` share for the embedded broker's policy and bounds (BrokerOptions;
 * docs/broker.md, "The embedded broker" lists each with its default), and where the operator token comes
 * from: `--token` (visible in `ps`), `--token-file`, or the environment's `AIOT_SIM_TOKEN`.
 */
import { readFile } from 'node:fs/promises';
import type { BrokerOptions } from '../broker/broker.js';
import { limitProblems } from '../broker/limits.js';
import { OriginPolicy } from '../broker/web-origin.js';
import { AiotSimError, OptionsError } from '../errors.js';
import { choice, duration, list, number, optionsFrom, setter, text, UsageError, usageErrorFor, type Flag, type FlagSet, type Parsed } from './args.js';

/** A size in bytes: `65536`, `64KiB`, `16MiB`, `1GiB`; the library states the range. */
export const bytes: Flag<number> = {
  type: 'string',
  parse: (t) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)?\s*$/i.exec(t);
    if (!m) throw new UsageError(`expected a size in bytes like 65536, 64KiB, 16MiB or 1GiB, got "${t}"`);
    const unit = (m[2] ?? 'B').toLowerCase();
    const factor = unit === 'kib' ? 1024 : unit === 'mib' ? 1024 ** 2 : unit === 'gib' ? 1024 ** 3 : 1;
    return Math.round(Number(m[1]) * factor);
  },
};

const option = setter<BrokerOptions>();
export const BROKER_FLAGS = {
  anonymous: option('anonymous', choice({ none: 'none', telemetry: 'telemetry', all: 'all' } as const)),
  'allow-origin': option('allowOrigins', list),
  'max-packet-size': option('maxPacketSize', bytes),
  'max-connections': option('maxConnections', number),
  'connect-timeout': option('connectTimeoutMs', duration),
  'max-keepalive': option('maxKeepAliveSeconds', number),
  'max-client-id': option('maxClientIdLength', number),
  'max-queued': option('maxQueuedMessages', number),
  'max-queued-bytes': option('maxQueuedBytes', bytes),
  'max-anonymous-sessions': option('maxAnonymousSessions', number),
  'max-retained': option('maxRetainedMessages', number),
  'max-retained-bytes': option('maxRetainedBytes', bytes),
  'max-backlog-bytes': option('maxBacklogBytes', bytes),
} satisfies FlagSet;

export const TOKEN_FLAGS = { 'token-file': text } satisfies FlagSet;

export const BROKER_HELP = `Broker policy and bounds (docs/broker.md, "The embedded broker"):
  --anonymous A     what clients without a user name may do: none, telemetry (read device
                    telemetry and state) or all (read everything); default telemetry when the
                    broker binds to loopback, none otherwise
  --allow-origin U  web origins (scheme://host[:port], comma-separated) whose pages may use the
                    broker's WebSocket port and the monitor besides their own host's
  --max-packet-size S         largest MQTT packet and WebSocket frame (default 256KiB)
  --max-connections N         connections per listener, TCP and WebSocket (default 10000)
  --connect-timeout D         time to send CONNECT, e.g. 10s (default 10s)
  --max-keepalive SECONDS     keep-alive ceiling; 0 or more is held to it (default 300)
  --max-client-id N           longest client id (default 128)
  --max-queued N              QoS 1 messages queued per session, oldest dropped (default 1000)
  --max-queued-bytes S        bytes queued per session (default 1MiB)
  --max-anonymous-sessions N  persistent anonymous sessions (default 1000)
  --max-retained N            retained messages besides devices' state (default 10000)
  --max-retained-bytes S      bytes of those (default 64MiB)
  --max-backlog-bytes S       bytes unwritten to all subscribers together (default 256MiB)
`;

export const TOKEN_HELP = `  --token T         password of the "operator" account and the monitor's token; visible to
                    other users in ps: prefer AIOT_SIM_TOKEN=T in the environment or
                    --token-file FILE (default: random, printed)
  --token-file F    read the token from file F (its first line)
`;

type AnyParsed = Parsed<FlagSet>;

/** The broker options the flags given set, checked as the broker will check them (a bad value is a usage error naming its flag). */
export function brokerOptionsFrom(parsed: AnyParsed, command?: string): Partial<BrokerOptions> {
  const o = optionsFrom<BrokerOptions>(BROKER_FLAGS, parsed);
  const problems = limitProblems(o);
  try {
    new OriginPolicy({ allowOrigins: o.allowOrigins ?? [] });
  } catch (e) {
    if (!(e instanceof OptionsError)) throw e;
    problems.push(...e.problems);
  }
  if (problems.length) {
    const e = new OptionsError('E_OPTIONS', problems);
    throw usageErrorFor(e, BROKER_FLAGS, parsed, command) ?? e;
  }
  return o;
}

/**
 * The operator token: `--token`, else `--token-file`, else `AIOT_SIM_TOKEN`; undefined when none
 * (the caller makes a random one). At least 8 characters wherever it comes from.
 */
export async function operatorTokenFrom(given: string | undefined, file: string | undefined, env: NodeJS.ProcessEnv = process.env, command?: string): Promise<string | undefined> {
  if (given !== undefined && file !== undefined) throw new UsageError('--token and --token-file exclude each other', command);
  if (given !== undefined) return given;
  let token: string | undefined;
  let from: string;
  if (file !== undefined) {
    try {
      token = (await readFile(file, 'utf8')).split(/\r?\n/)[0]!.trim();
    } catch (e) {
      throw new AiotSimError('E_TOKEN_FILE', 'input', `--token-file ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    from = `--token-file ${file}`;
  } else {
    token = env['AIOT_SIM_TOKEN'];
    from = 'AIOT_SIM_TOKEN';
    if (token === undefined || token === '') return undefined;
  }
  if (token.length < 8) throw new UsageError(`${from}: the token must have at least 8 characters`, command);
  return token;
}
