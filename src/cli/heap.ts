/**
 * V8's heap sized for a simulation. Node's default old-space limit is about 4 GB whatever the
 * machine has, so a large population died with "JavaScript heap out of memory" while most of the
 * memory sat unused; and with Node's default young generation (16 MB semi-spaces) a fast run spent
 * about 18 % of its time in scavenges, its many short-lived buffers and payloads copied before they
 * died. Both sizes are fixed when the process's V8 isolate is created:
 * `v8.setFlagsFromString('--max-old-space-size=...')` at run time is accepted and changes nothing
 * (checked on Node 20: `heap_size_limit` stays, and the process dies at the old limit). So
 * `aiot-sim run` starts itself once more with `--max-old-space-size` from the machine's memory
 * (the cgroup limit when there is one, else the physical memory) and `--max-semi-space-size=64`,
 * each unless it is already so or the user set the flag: one extra process start (~50 ms); the
 * child inherits stdio, so the terminal, Ctrl-C and the exit code are the child's. Only `run`: in a
 * broker's process (serve, bench) connections live long, and a larger young generation only
 * copies more of them per scavenge (`bench` connected about 10 % fewer devices a second with it).
 * Imports only Node: bin/ loads it before the rest of the command.
 */
import { spawn } from 'node:child_process';
import { totalmem } from 'node:os';
import { getHeapStatistics } from 'node:v8';

/** Share of the machine's memory the heap may grow to (the rest: buffers, code, the OS). */
const HEAP_SHARE = 0.8;
/** The young generation's semi-space size `run` asks V8 for, MB. */
export const RUN_SEMI_SPACE_MB = 64;
/** Marks the child started with the sized heap (it must not start another). */
const SIZED_ENV = 'AIOT_SIM_HEAP_SIZED';

/** Memory this process may use: the cgroup's limit when there is one, else the machine's. */
export function machineMemoryBytes(): number {
  const total = totalmem();
  const constrained = typeof process.constrainedMemory === 'function' ? process.constrainedMemory() : 0;
  return constrained && constrained > 0 && constrained < total ? constrained : total;
}

/** The old-space size (MiB) `aiot-sim run` asks V8 for on this machine. */
export function wantedHeapMb(memoryBytes = machineMemoryBytes()): number {
  return Math.floor((memoryBytes * HEAP_SHARE) / 2 ** 20);
}

/** Whether the user gave V8 this flag already (in node's arguments, or in NODE_OPTIONS). */
function flagChosen(name: string): boolean {
  const alias = name.replaceAll('-', '_');
  return [...process.execArgv, process.env['NODE_OPTIONS'] ?? ''].some((a) => a.includes(name) || a.includes(alias));
}

/**
 * For `run`: start this command again with V8's heap sized for a simulation, when it is not yet
 * (see the module comment). Resolves with the child's exit code, or null when this process should
 * go on itself (old space large enough or chosen by the user, and young generation chosen or
 * sized; or `AIOT_SIM_HEAP=default`, which keeps Node's defaults).
 */
export function relaunchWithSizedHeap(argv: readonly string[]): Promise<number> | null {
  if (process.env[SIZED_ENV]) {
    watchLauncher();
    return null;
  }
  if (argv[2] !== 'run' || process.env['AIOT_SIM_HEAP'] === 'default') return null;
  const wanted = wantedHeapMb();
  const flags: string[] = [];
  const current = getHeapStatistics().heap_size_limit / 2 ** 20;
  if (!flagChosen('max-old-space-size') && current < wanted * 0.95) flags.push(`--max-old-space-size=${wanted}`);
  if (!flagChosen('max-semi-space-size')) flags.push(`--max-semi-space-size=${RUN_SEMI_SPACE_MB}`);
  if (flags.length === 0) return null;
  const child = spawn(process.execPath, [...process.execArgv, ...flags, ...argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, [SIZED_ENV]: String(wanted) },
  });
  // Signals sent to this process are passed on, but Ctrl-C on a terminal: the terminal sends it to
  // the child too (same process group), and a second SIGINT would make the child stop at once.
  const forward = (sig: NodeJS.Signals): void => {
    if (!(sig === 'SIGINT' && process.stdin.isTTY)) child.kill(sig);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const sig of signals) process.on(sig, forward);
  return new Promise((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`aiot-sim: could not start with a larger heap (${err.message})\n`);
      resolve(1);
    });
    child.on('exit', (code, signal) => {
      for (const sig of signals) process.off(sig, forward);
      resolve(code ?? (signal === 'SIGINT' ? 130 : 1));
    });
  });
}

/**
 * In the relaunched process: if the launcher dies without passing a signal on (SIGKILL, a crash),
 * this process would run on with nobody waiting for it. Once it sees it was orphaned (its parent
 * changed), it stops as on SIGTERM: cleanly, with its summary and report.
 */
function watchLauncher(): void {
  const launcher = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === launcher) return;
    clearInterval(timer);
    process.stderr.write(`aiot-sim: the launching process (${launcher}) is gone; stopping\n`);
    process.kill(process.pid, 'SIGTERM');
  }, 1000);
  timer.unref();
}
