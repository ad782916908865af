#!/usr/bin/env -S node --max-semi-space-size=64
// The `aiot-sim` command. The TypeScript sources are compiled to dist/ on `npm install` (prepare).
// A 64 MB young generation (the flag above): a simulation allocates many short-lived buffers and
// payloads, and with V8's default it spent about 18 % of a fast run in scavenges (10-20 % faster).
// `run` starts itself again with V8's heap sized to the machine (dist/cli/heap.js says why).
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
