/**
 * Errors share one base class and carry a stable code, grouped by who must act:
 * `input` (the user's file or command line), `environment` (a busy port, a missing file),
 * `protocol` (a peer sent something wrong), `internal` (a bug in aiot-sim).
 */
export type ErrorKind = 'input' | 'environment' | 'protocol' | 'internal';

export class AiotSimError extends Error {
  readonly code: string;
  readonly kind: ErrorKind;
  constructor(code: string, kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AiotSimError';
    this.code = code;
    this.kind = kind;
  }
}

/** One problem found in a data file: which file, where in it, what is wrong. */
export interface Problem {
  file: string;
  /** Dotted path into the document, e.g. "services[1].properties[0].value-range". */
  path: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  return p.path ? `${p.file}: ${p.path}: ${p.message}` : `${p.file}: ${p.message}`;
}

/** Every problem in one or more files, reported at once. */
export class ValidationError extends AiotSimError {
  readonly problems: Problem[];
  constructor(problems: Problem[]) {
    super('E_VALIDATION', 'input', problems.map(formatProblem).join('\n'));
    this.name = 'ValidationError';
    this.problems = problems;
  }
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/**
 * One bad option of a library call, e.g. `{ option: 'seed', message: 'expected a non-negative
 * integer', value: -1 }`. Other options named in the message are written `{name}`, so a front end
 * (the CLI) can show every name its own way (`--rate-per-device`).
 */
export interface OptionProblem {
  /** The option's name in the API. */
  option: string;
  /** What is wrong or expected. */
  message: string;
  /** The value given, when the message is about it: shown as ", got VALUE". */
  value?: unknown;
}

/** `option: message, got value`, with option names (also `{name}`s in the message) passed through `name`. */
export function formatOptionProblem(p: OptionProblem, name: (option: string) => string = (o) => o, shownValue?: string): string {
  const message = p.message.replace(/\{(\w+)\}/g, (_, o: string) => name(o));
  const got = shownValue ?? ('value' in p ? showValue(p.value) : undefined);
  return `${name(p.option)}: ${message}${got === undefined ? '' : `, got ${got}`}`;
}

function showValue(v: unknown): string {
  return typeof v === 'string' ? `"${v}"` : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
}

/** Every bad option of one library call (`Simulation.create`, `runBench`...), reported at once. */
export class OptionsError extends AiotSimError {
  readonly problems: readonly OptionProblem[];
  constructor(code: string, problems: OptionProblem[]) {
    super(code, 'input', problems.map((p) => formatOptionProblem(p)).join('\n'));
    this.name = 'OptionsError';
    this.problems = problems;
  }
}
