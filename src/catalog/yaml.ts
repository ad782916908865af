/** Reading the catalogue's YAML files: every failure becomes a Problem naming the file. */
import { readFile } from 'node:fs/promises';
import { isAbsolute, relative } from 'node:path';
import { parseDocument } from 'yaml';
import type { Problem } from '../errors.js';

/**
 * How a file is named in messages: relative to `base` (the working directory) when it lies inside
 * it, else its full path (a `../../` chain says less than the path itself).
 */
export function displayPath(path: string, base: string = process.cwd()): string {
  const rel = relative(base, path);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
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

/** Read and parse one YAML file; `file` is the name problems are reported under. */
export async function readYamlFile(path: string, file: string): Promise<{ value?: unknown; problems: Problem[] }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return { problems: [{ file, path: '', message: `cannot read file: ${(err as Error).message}` }] };
  }
  return parseYaml(file, text);
}
