/** Loads every device model in a folder, validating each with the one schema. */
import { readdir } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { formatProblem, ValidationError, type Problem } from '../errors.js';
import { checkFragment, FRAGMENT_FOLDER, FragmentLibrary, type Fragment } from './fragments.js';
import { checkDeviceFile } from './include.js';
import { prebuiltModels } from './prebuilt.js';
import type { Category, DeviceModel } from './schema.js';
import { displayPath, readYamlFile } from './yaml.js';

export { parseYaml } from './yaml.js';

export class Catalog {
  private readonly byModel: Map<string, DeviceModel>;
  constructor(models: DeviceModel[]) {
    this.byModel = new Map(models.map((m) => [m.model, m]));
  }
  get models(): DeviceModel[] { return [...this.byModel.values()]; }
  get(model: string): DeviceModel | undefined { return this.byModel.get(model); }
  has(model: string): boolean { return this.byModel.has(model); }
  require(model: string): DeviceModel {
    const m = this.byModel.get(model);
    if (!m) throw new ValidationError([{ file: '<catalog>', path: '', message: `unknown device model "${model}"` }]);
    return m;
  }
  byCategory(category: Category): DeviceModel[] { return this.models.filter((m) => m.category === category); }
}

/**
 * Load one device model file, its `include:` resolved from `fragments` (by default the
 * `fragments/` folder beside the file); returns the resolved model or every problem found.
 */
export async function loadDeviceFile(
  path: string, displayBase = process.cwd(), fragments = FragmentLibrary.beside(path, displayBase),
): Promise<{ model?: DeviceModel; problems: Problem[] }> {
  const file = displayPath(path, displayBase);
  const parsed = await readYamlFile(path, file);
  if (parsed.problems.length) return { problems: parsed.problems };
  return checkDeviceFile(file, parsed.value, fragments);
}

/** Load one fragment file (named after the file) and check it on its own. */
export async function loadFragmentFile(path: string, displayBase = process.cwd()): Promise<{ fragment?: Fragment; problems: Problem[] }> {
  const file = displayPath(path, displayBase);
  const parsed = await readYamlFile(path, file);
  if (parsed.problems.length) return { problems: parsed.problems };
  return checkFragment(basename(path).replace(/\.ya?ml$/, ''), file, parsed.value);
}

/** Every problem of one catalogue file: a fragment when it sits in a `fragments/` folder, else a device model. */
export async function checkCatalogFile(path: string): Promise<Problem[]> {
  const inFragments = basename(dirname(resolve(path))) === FRAGMENT_FOLDER;
  return (inFragments ? await loadFragmentFile(path) : await loadDeviceFile(path)).problems;
}

/**
 * Load and validate every `*.yaml` in `dir`; throws one ValidationError listing every problem.
 * The models the build validated (prebuilt.ts) are taken instead when `dir` is what they were
 * made from, byte for byte.
 */
export async function loadCatalog(dir: string): Promise<Catalog> {
  const prebuilt = await prebuiltModels(dir);
  return new Catalog(prebuilt ?? await readCatalogFiles(dir));
}

/** Parse and validate every `*.yaml` in `dir` (never the prebuilt models); throws one ValidationError listing every problem. */
export async function readCatalogFiles(dir: string): Promise<DeviceModel[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.yaml') || n.endsWith('.yml')).sort();
  } catch (err) {
    throw new ValidationError([{ file: dir, path: '', message: `cannot read device folder: ${(err as Error).message}` }]);
  }
  const problems: Problem[] = [];
  const models: DeviceModel[] = [];
  const seen = new Map<string, string>();
  const fragments = new FragmentLibrary(join(dir, FRAGMENT_FOLDER));
  for (const name of names) {
    const res = await loadDeviceFile(join(dir, name), process.cwd(), fragments);
    // A broken fragment is reported once, not by every model that includes it.
    problems.push(...res.problems.filter((p) => !problems.some((q) => formatProblem(q) === formatProblem(p))));
    if (!res.model) continue;
    const file = displayPath(join(dir, name));
    const other = seen.get(res.model.model);
    if (other) problems.push({ file, path: 'model', message: `model "${res.model.model}" is already defined in ${other}` });
    else if (name.replace(/\.ya?ml$/, '') !== res.model.model) {
      problems.push({ file, path: 'model', message: `file name must be the model name: expected ${res.model.model}.yaml` });
    }
    seen.set(res.model.model, file);
    models.push(res.model);
  }
  if (problems.length) throw new ValidationError(problems);
  return models;
}
