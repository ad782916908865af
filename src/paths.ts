/** Where the package's own data lives (devices/, scenarios/, schema/), wherever it is installed. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: this file is dist/paths.js (or src/paths.ts), one level below it. */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * The compiled script of a worker thread, `dir/name.js` below src/ or dist/: workers run
 * JavaScript, so code running from src/ (under vitest) starts the build in dist/.
 */
export function workerScript(dir: 'load' | 'sim', name: string): URL {
  const here = new URL(`./${dir}/${name}.js`, import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const built = join(PACKAGE_ROOT, 'dist', dir, `${name}.js`);
  if (!existsSync(built)) throw new Error(`${built} is missing: build first (npm run build)`);
  return new URL(`file://${built}`);
}
