#!/usr/bin/env node
// The `aiot-sim` command. The TypeScript sources are compiled to dist/ on `npm install` (prepare).
import { existsSync } from 'node:fs';
const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('aiot-sim: dist/ is missing; run `npm install` (or `npm run build`) in the package folder first.\n');
  process.exit(1);
}
const { main: run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
