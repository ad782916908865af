#!/usr/bin/env node
/**
 * The last step of `npm run build`: validate the bundled device models (devices/) once with the
 * code just compiled, and write them to dist/catalog/devices.prebuilt.json (src/catalog/prebuilt.ts
 * says when a loader takes them). A catalogue that does not validate is not prebuilt: the file is
 * removed, the problems are printed, and the build goes on (every command then reports them).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { readCatalogFiles } = await import(join(root, 'dist', 'catalog', 'catalog.js'));
const { writePrebuilt, removePrebuilt, PREBUILT_FILE } = await import(join(root, 'dist', 'catalog', 'prebuilt.js'));
const dir = join(root, 'devices');
try {
  const models = await readCatalogFiles(dir);
  await writePrebuilt(dir, models);
} catch (err) {
  await removePrebuilt();
  console.warn(`aiot-sim: the bundled device models were not prebuilt (${PREBUILT_FILE}):\n${err.message ?? err}`);
}
