/** Worker-thread entry of the latency probe (see probe.ts); workerData is a ProbeConfig. */
import { parentPort, workerData } from 'node:worker_threads';
import { Probe } from './probe.js';
import type { FromProbe, ProbeConfig, ToProbe } from './protocol.js';

const port = parentPort;
if (!port) throw new Error('probe-worker.js runs as a worker thread');
const post = (m: FromProbe): void => port.postMessage(m);
const probe = new Probe(workerData as ProbeConfig, post);
port.on('message', (m: ToProbe) => {
  probe.handle(m);
  if (m.type === 'finish') port.unref();
});
probe.start().catch((err: unknown) => post({ type: 'fatal', error: err instanceof Error ? err.message : String(err) }));
