#!/usr/bin/env node
// The `aiot-sim` command. The TypeScript sources are compiled to dist/ on `npm install` (prepare).
// `run` starts itself again with V8's heap sized for a simulation: the old space to the machine,
// and a 64 MB young generation (dist/cli/heap.js says why, and why only `run`).
import { existsSync } from 'node:fs';
const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('aiot-sim: dist/ is missing; run `npm install` (or `npm run build`) in the package folder first.\n');
  process.exit(1);
}
const { relaunchWithSizedHeap } = await import(new URL('../dist/cli/heap.js', import.meta.url).href);
const relaunched = relaunchWithSizedHeap(process.argv);
if (relaunched) {
  process.exitCode = await relaunched;
} else {
  const { main: run } = await import(main.href);
  process.exitCode = await run(process.argv.slice(2));
}
