/** Loads every device model in a folder, validating each with the one schema. */
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseDocument } from 'yaml';
import { ValidationError, type Problem } from '../errors.js';
import type { Category, DeviceModel } from './schema.js';
import { checkDeviceModel } from './validate.js';

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

/** Parse YAML text into a plain value, or report the YAML errors with line numbers. */
export function parseYaml(file: string, text: string): { value?: unknown; problems: Problem[] } {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length) {
    return {
      problems: doc.errors.map((e) => ({
        file, path: '', message: `YAML syntax error at line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`,
      })),
    };
  }
  return { value: doc.toJS(), problems: [] };
}

export async function loadDeviceFile(path: string, displayBase = process.cwd()): Promise<{ model?: DeviceModel; problems: Problem[] }> {
  const file = relative(displayBase, path) || path;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { problems: [{ file, path: '', message: `cannot read file: ${(err as Error).message}` }] };
  }
  const parsed = parseYaml(file, text);
  if (parsed.problems.length) return { problems: parsed.problems };
  return checkDeviceModel(file, parsed.value);
}

/** Load and validate every `*.yaml` in `dir`; throws one ValidationError listing every problem. */
export async function loadCatalog(dir: string): Promise<Catalog> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.yaml') || n.endsWith('.yml')).sort();
  } catch (err) {
    throw new ValidationError([{ file: dir, path: '', message: `cannot read device folder: ${(err as Error).message}` }]);
  }
  const problems: Problem[] = [];
  const models: DeviceModel[] = [];
  const seen = new Map<string, string>();
  for (const name of names) {
    const res = await loadDeviceFile(join(dir, name));
    problems.push(...res.problems);
    if (!res.model) continue;
    const file = relative(process.cwd(), join(dir, name));
    const other = seen.get(res.model.model);
    if (other) problems.push({ file, path: 'model', message: `model "${res.model.model}" is already defined in ${other}` });
    else if (name.replace(/\.ya?ml$/, '') !== res.model.model) {
      problems.push({ file, path: 'model', message: `file name must be the model name: expected ${res.model.model}.yaml` });
    }
    seen.set(res.model.model, file);
    models.push(res.model);
  }
  if (problems.length) throw new ValidationError(problems);
  return new Catalog(models);
}
