/**
 * What bench and replay share on the command line: the `--slo` flag, and how a finished run's
 * report goes out (`--report`, `--markdown`, stdout) and becomes the exit code.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseSlo, type SloCheck, type SloTerm } from '../load/slo.js';
import { bool, duration, help, text, UsageError, type Flag, type FlagSet } from './args.js';

/** A comma-separated list of SLO terms. */
export const sloTerms: Flag<SloTerm[]> = {
  type: 'string',
  parse: (t) => {
    try {
      return parseSlo(t);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  },
};

/** The flags bench and replay share: a consumer to measure, and what becomes of the report. They set the options both have (`replyTopic`, `waitMs`, `slo`). */
export const CONSUMER_AND_OUTPUT_FLAGS = {
  'reply-topic': { ...text, option: 'replyTopic' },
  wait: { ...duration, option: 'waitMs' },
  slo: { ...sloTerms, option: 'slo' },
  report: text,
  markdown: text,
  quiet: bool,
  help,
} satisfies FlagSet;

/** A count for a progress line: whole, with grouped digits. */
export const count = (n: number): string => Math.round(n).toLocaleString('en-US');

/**
 * The live progress line of a long command on a terminal (`show` redraws it in place; nothing with
 * --quiet or when stderr is not a terminal); `clear` removes it before other output.
 */
export function liveLine(err: NodeJS.WritableStream, quiet: boolean): { show(line: string): void; clear(): void } {
  const tty = !quiet && (err as NodeJS.WriteStream).isTTY === true;
  let shown = false;
  return {
    show(line) {
      if (!tty) return;
      err.write(`\r\x1b[2K${line}`);
      shown = true;
    },
    clear() {
      if (shown) err.write('\r\x1b[2K');
      shown = false;
    },
  };
}

/** Write `text` to `path`, or to `out` when it is "-". */
async function output(path: string, text: string, out: NodeJS.WritableStream): Promise<void> {
  if (path === '-') { out.write(text); return; }
  const abs = resolve(path);
  await mkdir(dirname(abs), { recursive: true });
  await writeFile(abs, text);
}

export interface ReportFlags { report?: string | undefined; markdown?: string | undefined; quiet?: boolean | undefined }

/**
 * Write the report as the flags say (JSON to --report, Markdown to --markdown, else Markdown to
 * stdout unless the JSON went there), then name the violated SLO terms: exit code 1 when there
 * are any, else 0. `tool`: "bench" or "replay", for the messages.
 */
export async function emitReport(
  tool: string, report: { slo: null | { passed: boolean; checks: SloCheck[] } }, markdown: string, v: ReportFlags,
  out: NodeJS.WritableStream, err: NodeJS.WritableStream,
): Promise<number> {
  if (v.report !== undefined) await output(v.report, JSON.stringify(report, null, 2) + '\n', out);
  if (v.markdown !== undefined) await output(v.markdown, markdown, out);
  if (v.report !== '-' && v.markdown === undefined) out.write(markdown);
  if (v.report !== undefined && v.report !== '-' && v.quiet !== true) err.write(`aiot-sim ${tool}: report written to ${resolve(v.report)}\n`);
  if (report.slo && !report.slo.passed) {
    const failed = report.slo.checks.filter((c) => !c.passed).map((c) => `${c.term} (measured ${c.actual === null ? 'nothing' : Number(c.actual.toFixed(3))})`);
    err.write(`aiot-sim ${tool}: SLO violated: ${failed.join(', ')}\n`);
    return 1;
  }
  return 0;
}
