/**
 * One benchmark measurement in a fresh process. run.ts starts it with
 *   child_process.fork('worker.js', [task, jsonArgs], { execArgv: ['--expose-gc'] })
 * and it answers with one IPC message (ipc.ts TaskAnswer); by hand (no IPC channel) it prints the
 * result as JSON. Progress goes to stderr. Tasks: see tasks/index.ts.
 */
import { log, tick } from './common.js';
import type { TaskAnswer } from './ipc.js';
import { TASKS, type TaskName } from './tasks/index.js';

const isTask = (name: string | undefined): name is TaskName => name !== undefined && Object.hasOwn(TASKS, name);

async function main(): Promise<unknown> {
  const [task, rawArgs] = process.argv.slice(2);
  if (!isTask(task)) throw new Error(`unknown task "${task ?? ''}"; one of ${Object.keys(TASKS).join(', ')}`);
  const args: unknown = rawArgs ? JSON.parse(rawArgs) : {};
  log(`${task} ${JSON.stringify(args)} (pid ${process.pid})`);
  // The orchestrator passes each task the arguments it declares (run.ts runChild is typed by TaskArgs).
  const run = TASKS[task] as (a: unknown) => Promise<unknown>;
  const result = await run(args);
  await tick();
  return result;
}

function answer(a: TaskAnswer, code: number): void {
  if (process.send) process.send(a, undefined, {}, () => process.exit(code));
  else {
    if (a.ok) process.stdout.write(`${JSON.stringify(a.result, null, 2)}\n`);
    process.exit(code);
  }
}

main().then(
  (result) => answer({ ok: true, result }, 0),
  (err: unknown) => {
    const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    log(`failed: ${err instanceof Error ? err.stack ?? error : error}`);
    answer({ ok: false, error }, 1);
  },
);
