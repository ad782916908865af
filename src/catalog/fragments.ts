/**
 * Catalogue fragments: services several device models share (device-information above all),
 * kept once in `devices/fragments/NAME.yaml` and named in a model's `include:`.
 *
 * A fragment is validated on its own, like a model's services are; the checks that need the
 * whole model (references, device-information first) run on each model that includes it.
 */
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Problem } from '../errors.js';
import { FragmentSpec, type ServiceSpec } from './schema.js';
import { checkService, dupes, zodProblems } from './validate.js';
import { displayPath, readYamlFile } from './yaml.js';

/** Where a model file's fragments live: this folder, beside the model files. */
export const FRAGMENT_FOLDER = 'fragments';

/** The placeholders a fragment's strings may use, filled in from the including model. */
export const PLACEHOLDERS = ['model', 'vendor'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
const PLACEHOLDER = /\$\{([^}]*)\}/g;

export interface Fragment {
  name: string;
  /** The fragment's file, as problems name it. */
  file: string;
  services: ServiceSpec[];
}

/** A fragment looked up by name: found, missing (and why), or a file with problems of its own. */
export type FragmentLookup =
  | { kind: 'found'; fragment: Fragment }
  | { kind: 'missing'; reason: string }
  | { kind: 'invalid'; file: string; problems: Problem[] };

/** Check a parsed fragment file; returns the fragment or every problem found. */
export function checkFragment(name: string, file: string, doc: unknown): { fragment?: Fragment; problems: Problem[] } {
  const parsed = FragmentSpec.safeParse(doc, { reportInput: true });
  if (!parsed.success) return { problems: zodProblems(file, parsed.error) };
  const { services } = parsed.data;
  const problems: Problem[] = [];
  const add = (path: string, message: string): void => { problems.push({ file, path, message }); };
  dupes(services.map((s) => s.siid), (v, i) => add(`services[${i}].siid`, `duplicate siid ${v}`));
  services.forEach((svc, si) => {
    checkService(svc, `services[${si}]`, add);
    eachString(svc, `services[${si}]`, (text, path) => {
      for (const [, key] of text.matchAll(PLACEHOLDER)) {
        if (!(PLACEHOLDERS as readonly string[]).includes(key ?? '')) {
          add(path, `unknown placeholder \${${key}}: a fragment may use ${PLACEHOLDERS.map((p) => `\${${p}}`).join(' and ')}`);
        }
      }
    });
  });
  return problems.length ? { problems } : { fragment: { name, file, services }, problems: [] };
}

/** A fragment's services for one model: a copy with `${model}` and `${vendor}` filled in. */
export function instantiate(fragment: Fragment, model: string): ServiceSpec[] {
  const values: Record<Placeholder, string> = { model, vendor: model.split('.')[0] ?? model };
  const fill = (v: unknown): unknown => {
    if (typeof v === 'string') return v.replace(PLACEHOLDER, (_, key: Placeholder) => values[key]);
    if (Array.isArray(v)) return v.map(fill);
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)]));
    return v;
  };
  // Filling in strings keeps every value's type, so the validated shape still holds.
  return fragment.services.map((s) => fill(s) as ServiceSpec);
}

/**
 * The fragments of one folder, each read and validated once, on first use.
 * A missing folder is an empty library (a model that includes nothing needs none).
 */
export class FragmentLibrary {
  private listing?: Promise<{ files: Map<string, string>; problem?: string }>;
  private readonly loaded = new Map<string, Promise<FragmentLookup>>();

  constructor(readonly dir: string, private readonly displayBase = process.cwd()) {}

  /** The folder a model file's fragments are looked up in. */
  static beside(modelFile: string, displayBase = process.cwd()): FragmentLibrary {
    return new FragmentLibrary(join(dirname(modelFile), FRAGMENT_FOLDER), displayBase);
  }

  /** The fragment names in the folder (file names without `.yaml`), sorted. */
  async names(): Promise<string[]> {
    return [...(await this.list()).files.keys()].sort();
  }

  /** Look up and validate the fragment `name`. */
  load(name: string): Promise<FragmentLookup> {
    let found = this.loaded.get(name);
    if (!found) {
      found = this.read(name);
      this.loaded.set(name, found);
    }
    return found;
  }

  private async read(name: string): Promise<FragmentLookup> {
    const { files, problem } = await this.list();
    const folder = displayPath(this.dir, this.displayBase);
    if (problem) return { kind: 'missing', reason: `cannot read ${folder}: ${problem}` };
    const path = files.get(name);
    if (!path) {
      const known = [...files.keys()].sort();
      return { kind: 'missing', reason: `no ${join(folder, name)}.yaml (${known.length ? `fragments: ${known.join(', ')}` : 'no fragments there'})` };
    }
    const file = displayPath(path, this.displayBase);
    const yaml = await readYamlFile(path, file);
    if (yaml.problems.length) return { kind: 'invalid', file, problems: yaml.problems };
    const checked = checkFragment(name, file, yaml.value);
    return checked.fragment ? { kind: 'found', fragment: checked.fragment } : { kind: 'invalid', file, problems: checked.problems };
  }

  private list(): Promise<{ files: Map<string, string>; problem?: string }> {
    this.listing ??= readdir(this.dir).then(
      (names) => ({
        files: new Map(names.filter((n) => /\.ya?ml$/.test(n)).map((n) => [n.replace(/\.ya?ml$/, ''), join(this.dir, n)])),
      }),
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? { files: new Map<string, string>() } : { files: new Map<string, string>(), problem: err.message }),
    );
    return this.listing;
  }
}

/** Calls `visit` with every string value inside `value` and its path. */
function eachString(value: unknown, path: string, visit: (text: string, path: string) => void): void {
  if (typeof value === 'string') visit(value, path);
  else if (Array.isArray(value)) value.forEach((v, i) => eachString(v, `${path}[${i}]`, visit));
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) eachString(v, `${path}.${k}`, visit);
  }
}
