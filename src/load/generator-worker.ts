/** Worker-thread entry of the load generator (see generator.ts); workerData is a GeneratorConfig. */
import { parentPort, workerData } from 'node:worker_threads';
import { Generator } from './generator.js';
import type { FromGenerator, GeneratorConfig, ToGenerator } from './protocol.js';

const port = parentPort;
if (!port) throw new Error('generator-worker.js runs as a worker thread');
const post = (m: FromGenerator): void => port.postMessage(m);
try {
  const gen = new Generator(workerData as GeneratorConfig, post);
  port.on('message', (m: ToGenerator) => {
    gen.handle(m);
    if (m.type === 'close') port.unref();
  });
  gen.start().catch((err: unknown) => post({ type: 'fatal', error: err instanceof Error ? err.message : String(err) }));
} catch (err) {
  post({ type: 'fatal', error: err instanceof Error ? err.message : String(err) });
}
