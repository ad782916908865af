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
