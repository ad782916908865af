/** Messages between the benchmark's processes (all over Node's IPC channel of `fork`). */

/** A measurement process (worker.ts) to the orchestrator (run.ts): its one answer. */
export type TaskAnswer = { ok: true; result: unknown } | { ok: false; error: string };

/** To the throughput observer (subscriber.ts). */
export type ToSubscriber = { type: 'expect'; count: number; timeoutMs?: number } | { type: 'quit' };

export interface SubscriberDone { type: 'done'; received: number; duplicates: number; receiveMs: number; timedOut: boolean }

/** From the throughput observer: ready (subscribed), armed (counter reset), done (`count` arrived, or the time is up). */
export type FromSubscriber = { type: 'ready' } | { type: 'armed' } | SubscriberDone | { type: 'error'; error: string };

/** One WebSocket monitor client of monitors.ts: its topic filters; a stalled one stops reading once subscribed. */
export interface MonitorSpec { filters: string[]; stall?: boolean }

export interface MonitorClientReport { messages: number; stats: number; dropped: number; stall: boolean }

export type ToMonitors = { type: 'report' } | { type: 'quit' };

/** From monitors.ts: ready (every client connected and subscribed, the stalled ones paused), a report of what each got. */
export type FromMonitors = { type: 'ready' } | { type: 'report'; clients: MonitorClientReport[] } | { type: 'error'; error: string };

/** Send to the parent process (a forked child has the IPC channel). */
export function toParent(m: object): void {
  if (!process.send) throw new Error('this script runs as a forked child of the benchmark');
  process.send(m);
}
