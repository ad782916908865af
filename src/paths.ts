/** Where the package's own data lives (devices/, scenarios/, schema/), wherever it is installed. */
import { fileURLToPath } from 'node:url';

/** The package root: this file is dist/paths.js (or src/paths.ts), one level below it. */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));
