/**
 * A device model file as written: its `include:` of fragments is resolved first, then the whole
 * model is validated, and each problem is reported where it can be fixed: at the file's own
 * service, or at the `include` entry that brought the service in.
 */
import type { Problem } from '../errors.js';
import { instantiate, type Fragment, type FragmentLibrary } from './fragments.js';
import { DeviceFileSpec, FragmentName, type DeviceModel, type ServiceSpec } from './schema.js';
import { modelFindings, zodProblems, type Finding } from './validate.js';

/** Where a service of the resolved model was written: the file's own `services[own]`, or a fragment. */
type Origin = { own: number } | { include: number; fragment: Fragment; index: number };
interface Included { include: number; fragment: Fragment }

/** Resolve and check one device model file; returns the resolved model or every problem found. */
export async function checkDeviceFile(file: string, doc: unknown, fragments: FragmentLibrary): Promise<{ model?: DeviceModel; problems: Problem[] }> {
  const parsed = DeviceFileSpec.safeParse(doc, { reportInput: true });
  const included = await lookUp(file, parsed.success ? parsed.data.include ?? [] : writtenIncludes(doc), fragments);
  if (!parsed.success) return { problems: [...zodProblems(file, parsed.error), ...included.problems] };
  if (included.problems.length) return { problems: included.problems };

  const { include, ...written } = parsed.data;
  const pieces: Array<{ service: ServiceSpec; origin: Origin }> = [
    ...included.fragments.flatMap(({ include: i, fragment }) =>
      instantiate(fragment, written.model).map((service, index) => ({ service, origin: { include: i, fragment, index } }))),
    ...written.services.map((service, own) => ({ service, origin: { own } })),
  ];
  // With fragments, the model lists its services in siid order wherever they were written
  // (a stable sort); a file without include keeps its own order.
  if (include?.length) pieces.sort((a, b) => a.service.siid - b.service.siid);
  const model: DeviceModel = { ...written, services: pieces.map((p) => p.service) };
  const origins = pieces.map((p) => p.origin);

  const problems = [
    ...siidClashes(origins, model.services).map((f) => ({ file, ...f })),
    ...modelFindings(model).map((f) => place(file, f, origins)),
  ];
  return problems.length ? { problems } : { model, problems };
}

/**
 * Each siid once: a clash names both places, the file's service or the include that brought it
 * (the paths are already those of the file as written).
 */
function siidClashes(origins: Origin[], services: ServiceSpec[]): Finding[] {
  const first = new Map<number, Origin>();
  const findings: Finding[] = [];
  services.forEach((svc, k) => {
    const origin = origins[k]!;
    const before = first.get(svc.siid);
    if (!before) {
      first.set(svc.siid, origin);
      return;
    }
    const where = 'own' in before ? undefined : `fragment "${before.fragment.name}" (include[${before.include}])`;
    if ('own' in origin) {
      findings.push({ path: `services[${origin.own}].siid`, message: where ? `siid ${svc.siid} is already declared by ${where}` : `duplicate siid ${svc.siid}` });
    } else {
      // Fragments come before the file's own services, so the earlier one is a fragment too.
      findings.push({ path: `include[${origin.include}]`, message: `fragment "${origin.fragment.name}" declares siid ${svc.siid}, as does ${where}` });
    }
  });
  return findings;
}

/** A finding on the resolved model, placed in the file as written. */
function place(file: string, f: Finding, origins: Origin[]): Problem {
  const m = /^services\[(\d+)\](.*)$/.exec(f.path);
  const origin = m ? origins[Number(m[1])] : undefined;
  if (!m || !origin) return { file, ...f };
  if ('own' in origin) return { file, path: `services[${origin.own}]${m[2]}`, message: f.message };
  const { fragment, index } = origin;
  return { file, path: `include[${origin.include}]`, message: `fragment "${fragment.name}" (${fragment.file}) services[${index}]${m[2]}: ${f.message}` };
}

/** Find each included fragment; a missing, repeated or invalid one is a problem at its `include` entry. */
async function lookUp(file: string, names: ReadonlyArray<string | undefined>, library: FragmentLibrary): Promise<{ fragments: Included[]; problems: Problem[] }> {
  const fragments: Included[] = [];
  const problems: Problem[] = [];
  const seen = new Map<string, number>();
  for (const [i, name] of names.entries()) {
    if (name === undefined) continue;
    const path = `include[${i}]`;
    const twice = seen.get(name);
    if (twice !== undefined) {
      problems.push({ file, path, message: `fragment "${name}" is already included at include[${twice}]` });
      continue;
    }
    seen.set(name, i);
    const found = await library.load(name);
    if (found.kind === 'found') fragments.push({ include: i, fragment: found.fragment });
    else if (found.kind === 'missing') problems.push({ file, path, message: `unknown fragment "${name}": ${found.reason}` });
    else {
      const n = found.problems.length;
      problems.push({ file, path, message: `fragment "${name}" is invalid: ${n} problem${n === 1 ? '' : 's'} in ${found.file}` }, ...found.problems);
    }
  }
  return { fragments, problems };
}

/** The well-formed names of an `include` the schema rejected (so their problems are reported too). */
function writtenIncludes(doc: unknown): Array<string | undefined> {
  const include = typeof doc === 'object' && doc !== null ? (doc as { include?: unknown }).include : undefined;
  if (!Array.isArray(include)) return [];
  return include.map((v) => FragmentName.safeParse(v).data);
}
