/**
 * The `aiot-sim` command: run, devices, validate, schema. Returns an exit code; never calls
 * process.exit itself except on a second Ctrl-C.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { checkCatalogFile, loadCatalog, parseYaml, type Catalog } from '../catalog/catalog.js';
import { deviceJsonSchema, fragmentJsonSchema, scenarioJsonSchema } from '../catalog/json-schema.js';
import { HUB_PREFIX } from '../contract/wire.js';
import { AiotSimError, formatProblem, ValidationError, type Problem } from '../errors.js';
import { PACKAGE_ROOT } from '../paths.js';
import { checkBrokerUrl, checkRedisUrl, redactedUrl } from '../platform/urls.js';
import type { Population } from '../sim/population.js';
import type { RunReport } from '../sim/report.js';
import { checkScenario, scenarioFile } from '../catalog/scenario.js';
import type { ShardedOptions } from '../sim/sharded.js';
import type { Simulation, SimulationOptions, SimulationStatus } from '../sim/simulation.js';
import { bool, choice, duration, help, integer, number, operatorToken, parseFlags, port, setter, size, speed as speedFlag, text, UsageError, usageErrorFor, type FlagSet, type Parsed } from './args.js';
import { BROKER_FLAGS, BROKER_HELP, brokerOptionsFrom, operatorTokenFrom, TOKEN_FLAGS, TOKEN_HELP } from './broker-flags.js';
import { describeModel, formatSummary, listModels, networkHint, Progress } from './format.js';

const USAGE = `aiot-sim: a smart-home AIoT simulator (Mijia / MIoT devices on an embedded MQTT broker)

Usage:
  aiot-sim run [SCENARIO] [options]   run a scenario (default: scenarios/default.yaml)
  aiot-sim serve [options]            broker, platform and live monitor, no devices (serve --help)
  aiot-sim status --platform URL      the figures of a shared platform store (status --help)
  aiot-sim bench [options]            load-test a broker and its consumers (aiot-sim bench --help)
  aiot-sim record --broker URL --out FILE   capture a broker's traffic (aiot-sim record --help)
  aiot-sim replay FILE [options]      play a recording or trace back into a broker (replay --help)
  aiot-sim devices [MODEL] [--json]   list the device catalogue, or show one model's spec
  aiot-sim validate FILE...           check scenario and device files; every problem at once
  aiot-sim schema [--write]           print (or write to schema/) the JSON Schemas

Options for run:
  --seed N          seed of every random choice (overrides the scenario)
  --speed X         virtual seconds per wall second (1 = real time), or fast (as --fast)
  --fast            as fast as possible (needs a duration)
  --duration D      how long to simulate, e.g. 90s, 15m, 24h, 30d
  --telemetry T     on|off: periodic sensor and meter readings (overrides the scenario's
                    behaviour.telemetry); off keeps state, events, commands and sessions
  --wire W          cloud|local-hub: Xiaomi's cloud push format (device/{did}/up/..., keys in
                    params; the default) or the central hub's (appMsg/notify/iot/..., flat)
  --mqtt-port P     embedded broker TCP port (default 1883; 0 = any free port)
  --ws-port P       MQTT over WebSocket port, path /mqtt (default 8083; 0 = any free port)
  --http-port P     live monitor: dashboard, /api, /metrics, /ws (default 8080; 0 = any free port)
  --host H          interface the broker and the monitor bind to (default 127.0.0.1)
  --broker URL[,URL...]  use your own broker (mqtt://host:port or ws://host:port/path) instead
                    of the embedded one; the platform observes it as a client. Several URLs (a
                    cluster's nodes): each client starts at its own place in the list and moves
                    to the next broker when its connection is lost. With --fast, give Mosquitto
                    "set_tcp_nodelay true": the clock waits for each command's round trip
  --cluster URL     with --broker on aiot-sim broker nodes (serve --cluster URL): write the devices'
                    and app users' credentials to the cluster's shared access directory
  --shard K/N       simulate only shard K of N of the homes (dealt as --workers deals them), for
                    one run spread over processes and machines; with --platform, each shard
                    waits at its end for the others and reports the whole fleet's figures
  --platform URL    count the platform's figures into Redis (redis://HOST:PORT[/DB]), shared with
                    every process naming it; the report and monitor show everyone's figures
                    (default: in this process)
  --username U      account of the platform and operator clients on --broker (default "operator")
  --password P      its password (default: the operator token)
${TOKEN_HELP}  --workers N       split the run over N worker threads (implies --fast), each with its
                    share of the homes on an in-process broker of its own (no broker ports, no
                    trace); the live monitor (--http-port) shows the platform figures of every
                    shard, merged, but no device traffic or devices (default 1)
  --memory-limit S  memory the run may use, e.g. 8g (default: what the machine has); a
                    population estimated not to fit is refused before anything connects
  --report FILE     write the run report as JSON
  --trace FILE      write every device message as NDJSON (virtual ts, topic, payload, qos,
                    retain): a recording aiot-sim replay plays back
  --quiet           no live progress, summary only
  -h, --help        this help

${BROKER_HELP}`;

const option = setter<SimulationOptions>();
const RUN_FLAGS = {
  seed: option('seed', number),
  speed: option('speed', speedFlag),
  fast: bool,
  duration: option('duration', duration),
  telemetry: option('telemetry', choice({ on: true, off: false })),
  wire: option('wire', choice({ cloud: 'cloud', 'local-hub': 'local-hub' })),
  'mqtt-port': port,
  'ws-port': port,
  'http-port': port,
  host: text,
  broker: text,
  shard: text,
  platform: text,
  cluster: text,
  username: text,
  password: text,
  token: option('operatorToken', operatorToken),
  ...TOKEN_FLAGS,
  ...BROKER_FLAGS,
  report: text,
  trace: text,
  workers: integer(1, 64),
  'memory-limit': option('memoryLimit', size),
  quiet: bool,
  help,
} satisfies FlagSet;

type RunFlags = Parsed<typeof RUN_FLAGS>;

export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        out.write(USAGE);
        return 0;
      case 'run':
        return await run(rest, out, err);
      case 'serve':
        return await (await import('./monitor.js')).serve(rest, out, err);
      case 'status':
        return await (await import('./status.js')).status(rest, out);
      case 'bench':
        return await (await import('./bench.js')).bench(rest, out, err);
      case 'record':
        return await (await import('./record.js')).record(rest, out, err);
      case 'replay':
        return await (await import('./replay.js')).replay(rest, out, err);
      case 'devices':
        return await devices(rest, out);
      case 'validate':
        return await validate(rest, out, err);
      case 'schema':
        return await schema(rest, out);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      const lines = e.message.split('\n').map((l) => `aiot-sim${e.command ? ` ${e.command}` : ''}: ${l}\n`).join('');
      err.write(e.command ? `${lines}(aiot-sim ${e.command} --help lists the options)\n` : `${lines}\n${USAGE}`);
      return 2;
    }
    if (e instanceof ValidationError) {
      err.write(`aiot-sim: invalid input, nothing was started:\n${e.problems.map((p) => `  ${formatProblem(p)}`).join('\n')}\n`);
      return 1;
    }
    if (e instanceof AiotSimError) {
      err.write(`aiot-sim: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

async function run(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const parsed = parseFlags(args, RUN_FLAGS);
  const v = parsed.values;
  if (v.help) {
    out.write(USAGE);
    return 0;
  }
  if (parsed.positionals.length > 1) throw new UsageError(`run takes one scenario file, got ${parsed.positionals.length}`);
  const opts = runOptions(parsed);
  const token = await operatorTokenFrom(v.token, v['token-file']);
  if (token !== undefined) opts.operatorToken = token;
  const quiet = v.quiet === true;
  const progress = new Progress(err, quiet ? 'off' : (err as NodeJS.WriteStream).isTTY === true ? 'tty' : 'log');
  opts.onConnectProgress = (n, total) => progress.connecting(n, total);
  const workers = v.workers ?? 1;
  if (workers > 1) return runSharded(opts, workers, parsed, progress, out, err);

  const { Simulation } = await import('../sim/simulation.js');
  const sim = await created(Simulation.create(opts), parsed);
  if (!quiet) err.write(banner(sim, sim.status()) + '\n');
  await sim.start();
  progress.clear();
  if (opts.shard) err.write(`aiot-sim: shard ${opts.shard.index + 1} of ${opts.shard.count}: ${sim.population.homes.length} homes, ${sim.population.devices.length} devices\n`);
  if (opts.platform) err.write(`aiot-sim: platform ${countingNote(sim.counting)} into ${redactedUrl(opts.platform)}\n`);
  if (opts.externalBroker) {
    const all = [opts.externalBroker.url, ...(opts.externalBroker.failover ?? [])];
    err.write(`aiot-sim: devices, app users and the platform are on your broker${all.length > 1 ? `s ${all.join(', ')} (each client moves to the next when its broker goes)` : ` ${all[0]}`}\n`);
  } else {
    const b = sim.broker;
    const mqttAddr = b.mqttAddress ? `mqtt://${b.mqttAddress.host}:${b.mqttAddress.port}` : 'off';
    const wsAddr = b.wsAddress ? `ws://${b.wsAddress.host}:${b.wsAddress.port}/mqtt` : 'off';
    err.write(`aiot-sim: broker ${mqttAddr} (WebSocket ${wsAddr}); operator token: ${sim.operatorToken}\n`);
  }
  const monitor = await (await import('./monitor.js')).startRunMonitor(sim, { port: v['http-port'] ?? 8080, host: v.host ?? '127.0.0.1', allowOrigins: v['allow-origin'] ?? [] }, err);
  // follow() takes Ctrl-C before its first await: only then may the line below say so (whoever
  // reads it may send SIGINT at once, and before the handler it would end the process unstopped).
  const following = follow(sim, v.report, progress, out, err);
  if (!quiet && !opts.externalBroker) {
    const b = sim.broker;
    const hub = opts.wire === 'local-hub' ? ` -t '${HUB_PREFIX}#'` : '';
    err.write(`aiot-sim: watch with: mosquitto_sub -h ${b.mqttAddress?.host ?? '127.0.0.1'} -p ${b.mqttAddress?.port ?? 1883} -t 'device/#'${hub} -v   (Ctrl-C stops)\n`);
  }
  try {
    return await following;
  } finally {
    await monitor.stop();
  }
}

/** The simulation's options from the command line; what only the command line can get wrong (flags that exclude each other) is refused here. */
function runOptions(parsed: RunFlags): SimulationOptions {
  const v = parsed.values;
  const opts: SimulationOptions = {
    scenario: resolve(parsed.positionals[0] ?? join(PACKAGE_ROOT, 'scenarios', 'default.yaml')),
    broker: { mqttPort: v['mqtt-port'] ?? 1883, wsPort: v['ws-port'] ?? 8083, host: v.host ?? '127.0.0.1', ...brokerOptionsFrom(parsed) },
  };
  if (v.fast && v.speed !== undefined) throw new UsageError('--fast and --speed exclude each other');
  const speed = v.fast ? 'fast' : v.speed;
  if (v.seed !== undefined) opts.seed = v.seed;
  if (speed !== undefined) opts.speed = speed;
  if (v.duration !== undefined) opts.duration = v.duration;
  if (v.telemetry !== undefined) opts.telemetry = v.telemetry;
  if (v.wire !== undefined) opts.wire = v.wire;
  if (v['memory-limit'] !== undefined) opts.memoryLimit = v['memory-limit'];
  if (v.trace) opts.traceFile = resolve(v.trace);
  if (v.shard !== undefined) opts.shard = shardOf(v.shard);
  if (v.platform !== undefined) {
    try {
      checkRedisUrl(v.platform);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    opts.platform = v.platform;
  }
  if (v.broker !== undefined) {
    const embedded = ['mqtt-port', 'ws-port', 'host', ...Object.keys(BROKER_FLAGS).filter((k) => k !== 'allow-origin')].filter((k) => parsed.text[k as keyof RunFlags['text']] !== undefined);
    if (embedded.length) {
      throw new UsageError(`--broker runs on your broker: ${embedded.map((k) => `--${k}`).join(', ')} configure${embedded.length === 1 ? 's' : ''} the embedded one`);
    }
    const urls = v.broker.split(',').map((u) => u.trim()).filter(Boolean);
    if (!urls.length) throw new UsageError('--broker: expected one URL or more, comma-separated');
    try {
      for (const u of urls) checkBrokerUrl(u);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    opts.externalBroker = { url: urls[0]! };
    if (urls.length > 1) opts.externalBroker.failover = urls.slice(1);
    if (v.cluster !== undefined) {
      try {
        checkRedisUrl(v.cluster, '--cluster');
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      opts.externalBroker.cluster = v.cluster;
    }
    if (v.username !== undefined) opts.externalBroker.username = v.username;
    if (v.password !== undefined) opts.externalBroker.password = v.password;
  } else if (v.cluster !== undefined) {
    throw new UsageError('--cluster names the Redis of the broker nodes given with --broker (serve --cluster): it needs --broker');
  } else if (v.username !== undefined || v.password !== undefined) {
    throw new UsageError('--username and --password go with --broker');
  }
  return opts;
}

/** `--shard K/N` (K from 1): the library's shard (index from 0). */
function shardOf(t: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(t.trim());
  const k = m ? Number(m[1]) : NaN;
  const n = m ? Number(m[2]) : NaN;
  if (!(n >= 1 && n <= 1024 && k >= 1 && k <= n)) throw new UsageError(`--shard: expected K/N with 1 <= K <= N <= 1024 (shard K of N), got "${t}"`);
  return { index: k - 1, count: n };
}

/**
 * `run --workers N`: the homes split over N worker threads, each on its own in-process broker; the
 * live monitor shows the platform figures merged from every shard's writes.
 */
async function runSharded(
  opts: SimulationOptions, workers: number, parsed: RunFlags, progress: Progress, out: NodeJS.WritableStream, err: NodeJS.WritableStream,
): Promise<number> {
  const v = parsed.values;
  const brokerFlags = Object.keys(BROKER_FLAGS).filter((k) => k !== 'allow-origin');
  const clash = ['broker', 'shard', 'platform', 'cluster', 'mqtt-port', 'ws-port', 'trace', 'speed', ...brokerFlags].filter((k) => v[k as keyof RunFlags['values']] !== undefined);
  if (clash.length) {
    throw new UsageError(`--workers runs each shard fast on an in-process broker of its own (no ports), counting into the run's own merged store, without a trace: not with ${clash.map((k) => `--${k}`).join(', ')}`);
  }
  const sharded: ShardedOptions = { scenario: opts.scenario, workers, speed: 'fast' };
  if (opts.onConnectProgress) sharded.onConnectProgress = opts.onConnectProgress;
  for (const k of ['seed', 'duration', 'telemetry', 'wire', 'operatorToken', 'memoryLimit'] as const) if (opts[k] !== undefined) Object.assign(sharded, { [k]: opts[k] });
  const { ShardedSimulation } = await import('../sim/sharded.js');
  const sim = await created(ShardedSimulation.create(sharded), parsed);
  if (v.quiet !== true) err.write(banner(sim, sim.status()) + `, over ${workers} worker threads\n`);
  await sim.start();
  progress.clear();
  err.write(`aiot-sim: ${workers} shards, each on its own in-process broker (no broker ports; the monitor shows the platform figures of every shard, merged); operator token: ${sim.operatorToken}\n`);
  const monitor = await (await import('./monitor.js')).startRunMonitor(sim, { port: v['http-port'] ?? 8080, host: v.host ?? '127.0.0.1', allowOrigins: v['allow-origin'] ?? [] }, err);
  try {
    return await follow(sim, v.report, progress, out, err);
  } finally {
    await monitor.stop();
  }
}

function countingNote(c: Simulation['counting']): string {
  switch (c) {
    case 'broker-nodes': return 'counted by the broker nodes (at ingress)';
    case 'shared-subscription': return 'counted through the shared subscription $share/aiot-sim-platform/...';
    default: return 'counted by this process';
  }
}

/** A simulation being created; the library's refusal of a flag's value becomes a usage error naming the flag. */
async function created<T>(creating: Promise<T>, parsed: RunFlags): Promise<T> {
  try {
    return await creating;
  } catch (e) {
    throw usageErrorFor(e, RUN_FLAGS, parsed) ?? e;
  }
}

/** The first line of a run: what runs, how big, how fast. */
function banner(sim: { scenario: { name: string }; seed: number; speed: unknown; population: Population }, st: SimulationStatus): string {
  return `aiot-sim: scenario "${sim.scenario.name}", seed ${sim.seed}, ${sim.population.devices.length} devices in ${sim.population.homes.length} homes, ` +
    `speed ${String(sim.speed)}${st.virtualEnd ? `, ${Math.round((st.virtualEnd - st.virtualStart) / 1000)} virtual seconds` : ''}`;
}

/** Show progress until the run ends (or Ctrl-C stops it), then print the summary and write the report. */
async function follow(
  sim: { status(): SimulationStatus; stop(): Promise<RunReport>; interrupt?(): Promise<RunReport>; readonly finished: Promise<RunReport> },
  reportFile: string | undefined, progress: Progress, out: NodeJS.WritableStream, err: NodeJS.WritableStream,
): Promise<number> {
  let interrupted = false;
  let interruptedAt = 0;
  const onSignal = (): void => {
    if (interrupted) {
      // One interrupt sent to the whole process group (a script's kill -INT -PGID, CI) reaches this
      // process twice: directly, and passed on by the launcher that sized the heap (cli/heap.ts),
      // which cannot tell who else got it. A second one within a second is that same interrupt.
      if (Date.now() - interruptedAt < 1000) return;
      err.write('\naiot-sim: second interrupt, exiting now\n');
      process.exit(130);
    }
    interrupted = true;
    interruptedAt = Date.now();
    progress.clear();
    err.write('\naiot-sim: stopping...\n');
    void (sim.interrupt ? sim.interrupt() : sim.stop());
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const ticker = setInterval(() => progress.update(sim.status()), 1000);
  try {
    const report = await sim.finished;
    clearInterval(ticker);
    progress.clear();
    out.write(formatSummary(report, interrupted));
    err.write(networkHint(report));
    if (reportFile) {
      const path = resolve(reportFile);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, JSON.stringify(report, null, 2) + '\n');
      err.write(`aiot-sim: report written to ${path}\n`);
    }
    return 0;
  } finally {
    clearInterval(ticker);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const DEVICES_USAGE = `aiot-sim devices [MODEL...] [--json]: the device catalogue

  (no MODEL)        list every model: category, transport, name
  MODEL             show a model's services, properties, actions and events (includes resolved)
  --json            the same as JSON
  -h, --help        this help
`;

const VALIDATE_USAGE = `aiot-sim validate FILE...: check scenario, device and fragment files

Every problem in every file is reported with its path; exit code 1 when there is one.
  -h, --help        this help
`;

const SCHEMA_USAGE = `aiot-sim schema [--write]: the JSON Schemas of device, fragment and scenario files

  (no flag)         print them as one JSON object
  --write           write them to the package's schema/ folder
  -h, --help        this help
`;

async function devices(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values, positionals } = parseFlags(args, { json: bool, help }, 'devices');
  if (values.help) {
    out.write(DEVICES_USAGE);
    return 0;
  }
  const catalog: Catalog = await loadCatalog(join(PACKAGE_ROOT, 'devices'));
  if (positionals.length === 0) {
    out.write(values.json ? JSON.stringify(catalog.models, null, 2) + '\n' : listModels(catalog));
    return 0;
  }
  for (const name of positionals) {
    const model = catalog.get(name);
    if (!model) {
      const near = catalog.models.map((m) => m.model).filter((m) => m.includes(name.split('.').pop() ?? name));
      throw new AiotSimError('E_UNKNOWN_MODEL', 'input', `unknown device model "${name}"${near.length ? `; did you mean ${near.join(', ')}?` : ''} (aiot-sim devices lists them)`);
    }
    out.write(values.json ? JSON.stringify(model, null, 2) + '\n' : describeModel(model));
  }
  return 0;
}

async function validate(args: string[], out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const { values, positionals } = parseFlags(args, { help }, 'validate');
  if (values.help) {
    out.write(VALIDATE_USAGE);
    return 0;
  }
  if (positionals.length === 0) throw new UsageError('validate needs at least one file', 'validate');
  const catalog = await loadCatalog(join(PACKAGE_ROOT, 'devices')).catch(() => null);
  const problems: Problem[] = [];
  let checked = 0;
  for (const path of positionals) {
    const res = await validateFile(path, catalog);
    problems.push(...res);
    checked++;
  }
  if (problems.length) {
    err.write(problems.map((p) => `${formatProblem(p)}\n`).join(''));
    err.write(`aiot-sim: ${problems.length} problem${problems.length === 1 ? '' : 's'} in ${new Set(problems.map((p) => p.file)).size} of ${checked} file${checked === 1 ? '' : 's'}\n`);
    return 1;
  }
  out.write(`aiot-sim: ${checked} file${checked === 1 ? '' : 's'} valid\n`);
  return 0;
}

async function validateFile(path: string, catalog: Catalog | null): Promise<Problem[]> {
  path = scenarioFile(path);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    return [{ file: path, path: '', message: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message }];
  }
  const y = parseYaml(path, text);
  if (y.problems.length) return y.problems;
  const doc = y.value;
  const keys = typeof doc === 'object' && doc !== null ? Object.keys(doc) : [];
  const isDevice = !keys.includes('population')
    && (['services', 'urn', 'model', 'category', 'transport'].some((k) => keys.includes(k)) || /(^|\/)devices\//.test(path));
  if (isDevice) return checkCatalogFile(path);
  if (!catalog) return [{ file: path, path: '', message: 'cannot check a scenario: the device catalogue failed to load (aiot-sim validate devices/*.yaml)' }];
  return checkScenario(path, doc, catalog).problems;
}

async function schema(args: string[], out: NodeJS.WritableStream): Promise<number> {
  const { values } = parseFlags(args, { write: bool, help }, 'schema');
  if (values.help) {
    out.write(SCHEMA_USAGE);
    return 0;
  }
  const schemas = { device: deviceJsonSchema(), fragment: fragmentJsonSchema(), scenario: scenarioJsonSchema() };
  if (values.write) {
    const dir = join(PACKAGE_ROOT, 'schema');
    await mkdir(dir, { recursive: true });
    const files = Object.entries(schemas).map(([name, s]) => ({ path: join(dir, `${name}.schema.json`), text: JSON.stringify(s, null, 2) + '\n' }));
    for (const f of files) await writeFile(f.path, f.text);
    out.write(`aiot-sim: wrote ${files.map((f) => f.path).join(', ')}\n`);
  } else out.write(JSON.stringify(schemas, null, 2) + '\n');
  return 0;
}
