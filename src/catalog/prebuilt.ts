/**
 * The catalogue as the build validated it. Parsing the bundled device models' YAML and checking
 * them took about 0.3 s of CPU at every start of every command (0.2 s of wall time): the `yaml`
 * parser, the schema and the model checks, over 27 files that change only with a release or an
 * edit. `npm run build` (and so `npm install`) validates them once and writes the resolved models
 * to `dist/catalog/devices.prebuilt.json`, keyed by a digest of what they were made from.
 *
 * The digest covers every `*.yaml` file of the folder and of its `fragments/` folder (names and
 * bytes) and the compiled catalogue code of this build (dist/catalog/*.js). A loader uses the
 * prebuilt models only when the folder it loads has that same digest now, so an edited model, an
 * added or removed file, or a changed check takes the files' path, with every problem reported as
 * before. Reading and hashing the files costs about 3 ms.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FRAGMENT_FOLDER } from './fragments.js';
import type { DeviceModel } from './schema.js';

/** Where the build writes the bundled catalogue's models (beside this module). */
export const PREBUILT_FILE = fileURLToPath(new URL('./devices.prebuilt.json', import.meta.url));
const FORMAT = 1;

interface Prebuilt {
  format: number;
  digest: string;
  models: DeviceModel[];
}

const yamlNames = async (dir: string): Promise<string[]> =>
  (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.yaml') || n.endsWith('.yml')).sort();

/** The digest of a device folder's YAML (and its fragments') and of this build's catalogue code. */
export async function catalogDigest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  const add = async (folder: string, names: string[], label: string): Promise<void> => {
    const texts = await Promise.all(names.map((n) => readFile(join(folder, n))));
    names.forEach((n, i) => {
      hash.update(`${label}/${n}\0${texts[i]!.length}\0`);
      hash.update(texts[i]!);
    });
  };
  await add(dir, await yamlNames(dir), 'models');
  const fragments = join(dir, FRAGMENT_FOLDER);
  await add(fragments, await yamlNames(fragments), 'fragments');
  const code = fileURLToPath(new URL('.', import.meta.url));
  await add(code, (await readdir(code)).filter((n) => n.endsWith('.js')).sort(), 'code');
  return hash.digest('hex');
}

/** The prebuilt models for `dir`, or null when there are none or they were made from something else. */
export async function prebuiltModels(dir: string, file = PREBUILT_FILE): Promise<DeviceModel[] | null> {
  let saved: Prebuilt;
  try {
    saved = JSON.parse(await readFile(file, 'utf8')) as Prebuilt;
  } catch {
    return null; // not built (a checkout compiled without the build script), or unreadable
  }
  if (saved.format !== FORMAT || !Array.isArray(saved.models)) return null;
  return saved.digest === (await catalogDigest(dir)) ? saved.models : null;
}

/** Write `models`, validated from `dir`, as the prebuilt catalogue (atomically: a reader sees the old file or the new). */
export async function writePrebuilt(dir: string, models: DeviceModel[], file = PREBUILT_FILE): Promise<void> {
  const doc: Prebuilt = { format: FORMAT, digest: await catalogDigest(dir), models };
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(doc));
  await rename(tmp, file);
}

/** Remove the prebuilt catalogue (the bundled one no longer validates). */
export async function removePrebuilt(file = PREBUILT_FILE): Promise<void> {
  await rm(file, { force: true });
}
