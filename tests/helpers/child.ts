/**
 * Child processes the tests and the benchmark start: wait for one to end (bounded), stop one
 * (a signal, then SIGKILL), and talk to a forked one over IPC, one answer at a time.
 */
import type { ChildProcess } from 'node:child_process';

export interface Exit { code: number | null; signal: NodeJS.Signals | null }

const ended = (c: ChildProcess): boolean => c.exitCode !== null || c.signalCode !== null;

/**
 * Resolves when the child has ended ('exit'; 'close' also waits for its output streams), or with
 * null after `ms` while it still runs.
 */
export function waitExit(child: ChildProcess, ms: number, event: 'exit' | 'close' = 'exit'): Promise<Exit | null> {
  return new Promise((resolve) => {
    if (ended(child)) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    const timer = setTimeout(() => { child.off(event, onEnd); resolve(null); }, ms);
    const onEnd = (code: number | null, signal: NodeJS.Signals | null): void => { clearTimeout(timer); resolve({ code, signal }); };
    child.once(event, onEnd);
  });
}

/** End a child: `signal` (SIGTERM), then SIGKILL when it has not ended within `graceMs`. Resolves once it has ended. */
export async function stopChild(child: ChildProcess, graceMs = 3000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (ended(child)) return;
  child.kill(signal);
  if (await waitExit(child, graceMs)) return;
  child.kill('SIGKILL');
  await waitExit(child, graceMs);
}

/** A forked child that answers over IPC: `next()` resolves with its next message, in order. */
export class IpcChild<In, Out> {
  private readonly inbox: Out[] = [];
  private readonly waiters: Array<{ ok: (m: Out) => void; fail: (e: Error) => void }> = [];
  private closed = false;

  constructor(readonly child: ChildProcess, private readonly name: string) {
    child.on('message', (m: Out) => {
      const w = this.waiters.shift();
      if (w) w.ok(m);
      else this.inbox.push(m);
    });
    // 'close' comes after the IPC channel closed, so after every message the child sent.
    child.once('close', (code, signal) => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w.fail(new Error(`${name} exited (${signal ?? code}) before answering`));
    });
  }

  /** The next message; rejects when the child ends first or after `timeoutMs`. */
  next(timeoutMs: number): Promise<Out> {
    const queued = this.inbox.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.closed) return Promise.reject(new Error(`${this.name} has exited`));
    return new Promise((resolve, reject) => {
      const w = {
        ok: (m: Out): void => { clearTimeout(timer); resolve(m); },
        fail: (e: Error): void => { clearTimeout(timer); reject(e); },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`${this.name}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  send(m: In): void {
    this.child.send(m as object);
  }

  /** Ask it to quit with `quit`; stop it when it has not within `graceMs`. */
  async close(quit: In, graceMs = 3000): Promise<void> {
    if (ended(this.child)) return;
    if (this.child.connected) this.send(quit);
    if (await waitExit(this.child, graceMs)) return;
    await stopChild(this.child, graceMs);
  }
}
