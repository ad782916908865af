/**
 * One shard of a run split over worker threads (see sharded.ts): the homes of shard `index`, on
 * an embedded broker of its own with no ports (devices on the in-process transport), in fast mode.
 * Its platform counts into a `ThreadStore`, whose batches go to the main thread's merged store
 * (every ~100 ms, on the same port as everything else, so they arrive before the report). It
 * reports its status while running and, at the end, its run report.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { AiotSimError } from '../errors.js';
import { ThreadStore } from '../platform/thread-store.js';
import { Simulation } from './simulation.js';
import type { FromShard, ShardJob, ToShard } from './sharded.js';

const job = workerData as ShardJob;
const port = parentPort!;
const post = (m: FromShard): void => port.postMessage(m);
const STATUS_EVERY_MS = 500;

async function main(): Promise<void> {
  const sim = await Simulation.create({
    ...job.options,
    threadStore: new ThreadStore((batch) => post({ type: 'batch', batch })),
    speed: 'fast',
    shard: { index: job.index, count: job.count },
    broker: { mqttPort: null, wsPort: null },
    onConnectProgress: (connected, total) => post({ type: 'connecting', connected, total }),
  });
  let stopping = false;
  port.on('message', (m: ToShard) => {
    if (m.type !== 'stop') return;
    stopping = true;
    void sim.stop();
  });
  await sim.start();
  post({ type: 'started', status: sim.status() });
  // Statuses while the shard runs; once it ends, devices going offline as it stops are not news
  // (the report gives the figures at the end).
  const ticker = setInterval(() => {
    const status = sim.status();
    if (!stopping && !(status.virtualEnd !== null && status.virtualTime >= status.virtualEnd)) post({ type: 'status', status });
  }, STATUS_EVERY_MS);
  try {
    const report = await sim.finished;
    post({ type: 'done', report });
  } finally {
    clearInterval(ticker);
  }
}

main().then(
  () => port.close(),
  (e: unknown) => {
    const err = e instanceof AiotSimError ? e : null;
    post({ type: 'error', code: err?.code ?? 'E_SHARD', kind: err?.kind ?? 'internal', message: e instanceof Error ? e.message : String(e) });
    port.close();
  },
);
