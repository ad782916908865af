/**
 * Running measurements: each in a fresh child process (`node --expose-gc worker.js TASK ARGS`),
 * one at a time, so runs neither share a heap nor compete for the cores; each bounded by a
 * timeout, and none started once its figure's time budget is spent. What failed is collected
 * in `problems`.
 */
import { fork } from 'node:child_process';
import { totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { PACKAGE_ROOT } from 'aiot-sim';
import { IpcChild, stopChild, waitExit } from '../tests/helpers/child.js';
import { log, median, now, round } from './common.js';
import type { TaskAnswer } from './ipc.js';
import type { TaskArgs, TaskName, TaskResult } from './tasks/index.js';

/** Repetitions per figure (BENCH_REPS, minimum 1, default 3). */
export const REPS = Math.max(1, Number.parseInt(process.env.BENCH_REPS ?? '3', 10) || 3);
/**
 * Each figure's budget: its runs that would start after it are skipped (and listed in `problems`).
 * Per figure, not per whole run: with one budget for everything, the long figures asked for first
 * (BENCH_ONLY=permessage,fleet,broker) spent it and every broker run after them was skipped.
 */
export const BUDGET_MS = 900_000;
export const T0 = now();
let budgetFrom = T0;

/** A new figure starts: its runs get the whole budget again. */
export function startBudget(): void {
  budgetFrom = now();
}
/** Everything that failed, timed out or was skipped; the run exits 1 when there is any. */
export const problems: string[] = [];

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

/**
 * Scenario runs get the young generation `aiot-sim run` gives itself (src/cli/heap.ts): 64 MB,
 * which took 10-20 % off a fast run's CPU time (scavenges were ~18 % of it). The broker's figures
 * run with Node's, as `aiot-sim bench` and `serve` do.
 */
const RUN_FLAGS = ['--max-semi-space-size=64'];
/**
 * The fleet also gets the heap `aiot-sim run` gives itself (src/cli/heap.ts: 80 % of the
 * machine's memory), or Node's default of about 4 GB would refuse half a million devices.
 */
const FLEET_FLAGS = [...RUN_FLAGS, `--max-old-space-size=${Math.floor((totalmem() * 0.8) / 2 ** 20)}`];
const TASK_FLAGS: Partial<Record<TaskName, string[]>> = { fast: RUN_FLAGS, snapshot: RUN_FLAGS, perMessage: RUN_FLAGS, fleet: FLEET_FLAGS };

/** Run one task in a fresh child; resolves with its result, or null (recorded in `problems`). */
export async function runChild<K extends TaskName>(task: K, args: TaskArgs<K>, timeoutMs: number, ignoreBudget = false): Promise<TaskResult<K> | null> {
  if (!ignoreBudget && now() - budgetFrom > BUDGET_MS) {
    problems.push(`${task}: skipped, this figure's ${BUDGET_MS / 1000} s budget is spent`);
    return null;
  }
  const child = fork(WORKER, [task, JSON.stringify(args)], {
    cwd: PACKAGE_ROOT,
    execArgv: ['--expose-gc', ...(TASK_FLAGS[task] ?? [])],
    // The child's stdout goes to our stderr: our stdout carries only the final JSON.
    stdio: ['ignore', 2, 2, 'ipc'],
  });
  let startError: string | null = null;
  child.on('error', (err) => { startError = err.message; });
  const fail = (problem: string): null => {
    problems.push(`${task} ${JSON.stringify(args)}: ${problem}`);
    log(`  ${task}: ${problem}`);
    return null;
  };
  let answer: TaskAnswer;
  try {
    answer = await new IpcChild<never, TaskAnswer>(child, task).next(timeoutMs);
  } catch {
    const running = child.exitCode === null && child.signalCode === null;
    await stopChild(child, 1000, 'SIGKILL');
    if (startError !== null) return fail(`could not start: ${startError}`);
    return fail(running ? `timed out after ${timeoutMs / 1000} s (killed)` : `exited with ${child.signalCode ?? child.exitCode} without a result`);
  }
  if (!(await waitExit(child, 10_000))) await stopChild(child, 1000, 'SIGKILL');
  return answer.ok ? answer.result as TaskResult<K> : fail(answer.error);
}

/** The task `reps` times; the runs that gave a result. */
export async function repeat<K extends TaskName>(label: string, task: K, args: TaskArgs<K>, reps: number, timeoutMs: number, ignoreBudget = false): Promise<Array<TaskResult<K>>> {
  const runs: Array<TaskResult<K>> = [];
  for (let i = 1; i <= reps; i++) {
    log(`${label}: run ${i}/${reps}`);
    const t = now();
    const r = await runChild(task, args, timeoutMs, ignoreBudget);
    if (r) {
      runs.push(r);
      log(`${label}: run ${i}/${reps} done in ${round((now() - t) / 1000, 1)} s`);
    }
  }
  return runs;
}

/** { median, runs } of one figure across runs. */
export function stat<T>(runs: T[], pick: (r: T) => number, digits = 1): { median: number | null; runs: number[] } {
  const values = runs.map(pick);
  return { median: round(median(values), digits), runs: values.map((v) => round(v, digits)) };
}
