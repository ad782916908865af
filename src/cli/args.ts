/**
 * The command line's one parser. Each flag states how its text becomes a typed value and, when
 * it sets a library option, which one. The library checks the values' ranges (once, for every
 * caller); when it refuses a value the user typed, `usageErrorFor` shows the library's problem as
 * a usage error naming the flag and the text given (`--seed: expected a non-negative integer,
 * got "abc"`), which the CLI exits with code 2.
 */
import { parseArgs } from 'node:util';
import { parseDuration } from '../catalog/scenario.js';
import { AiotSimError, formatOptionProblem, OptionsError } from '../errors.js';

/** A wrong command line. `command`: the subcommand whose `--help` to point at (else the main usage is shown). */
export class UsageError extends AiotSimError {
  constructor(message: string, readonly command?: string) { super('E_USAGE', 'input', message); }
}

/** A flag's text is not what it should be: shown as `--name: expected WHAT, got "TEXT"`. */
class Expected extends Error {}

export interface Flag<T> {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** May be given more than once (`--topic a --topic b`); each text is parsed and the values concatenated. */
  readonly multiple?: boolean;
  /** The library option this flag sets. */
  readonly option?: string;
  /** Text -> value (string flags); throws Expected, or UsageError with a whole message. */
  readonly parse: (text: string) => T;
}

export type FlagSet = Record<string, Flag<unknown>>;
export type FlagValues<F extends FlagSet> = { [K in keyof F]?: F[K] extends Flag<infer T> ? T : never };

export interface Parsed<F extends FlagSet> {
  values: FlagValues<F>;
  positionals: string[];
  /** The text typed for each string flag given. */
  text: { [K in keyof F]?: string };
}

export const text: Flag<string> = { type: 'string', parse: (t) => t };
export const bool: Flag<boolean> = { type: 'boolean', parse: () => true };
export const help: Flag<boolean> = { ...bool, short: 'h' };

/** A number as JavaScript reads it (blank: NaN); the library that takes it states its range. */
export const number: Flag<number> = { type: 'string', parse: (t) => (t.trim() === '' ? NaN : Number(t)) };

/** An integer the command line itself bounds (for choices only the CLI makes, like `run --workers`). */
export function integer(min: number, max: number, expected = `an integer from ${min} to ${max}`): Flag<number> {
  return {
    type: 'string',
    parse: (t) => {
      const n = number.parse(t);
      if (!Number.isInteger(n) || n < min || n > max) throw new Expected(expected);
      return n;
    },
  };
}

export const port = integer(0, 65535, 'a port number 0..65535');

/** `run --speed`: virtual seconds per wall second, or `fast` (as `--fast`). */
export const speed: Flag<number | 'fast'> = {
  type: 'string',
  parse: (t) => {
    if (t.trim() === 'fast') return 'fast';
    const n = number.parse(t);
    if (!(n > 0)) throw new Expected('a positive number (virtual seconds per wall second) or "fast"');
    return n;
  },
};

/** A duration ("500ms", "10s", "2m", "24h", "30d"; "0" too) in milliseconds; the library says which it accepts. */
export const duration: Flag<number> = {
  type: 'string',
  parse: (t) => {
    if (/^0+(\.0+)?(ms|s|m|h|d)?$/.test(t.trim())) return 0;
    const ms = parseDuration(t);
    if (ms === undefined) throw new Expected('a duration like 500ms, 10s, 2m, 24h or 30d');
    return ms;
  },
};

/** A size in bytes: "512m", "8g", "1.5g", "65536" (k, m, g: powers of 1024). */
export const size: Flag<number> = {
  type: 'string',
  parse: (t) => {
    const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)b?$/i.exec(t.trim());
    const n = m ? Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase()) : NaN;
    if (!(n >= 1)) throw new Expected('a size like 512m, 8g or 1.5g');
    return Math.round(n);
  },
};

/** A flag that may be given several times; its value is every occurrence's, in order. */
export function repeatable<T>(flag: Flag<T>): Flag<T[]> {
  return { type: 'string', multiple: true, parse: (t) => [flag.parse(t)] };
}

/** Comma-separated words. */
export const list: Flag<string[]> = { type: 'string', parse: (t) => t.split(',').map((s) => s.trim()).filter(Boolean) };

/** One of a few words, each standing for a value: `choice({ on: true, off: false })`; `note` says why only these. */
export function choice<const M extends Record<string, unknown>>(map: M, note?: string): Flag<M[keyof M]> {
  const words = Object.keys(map).map((w) => (/^\d+$/.test(w) ? w : `"${w}"`));
  const expected = `${words.slice(0, -1).join(', ')} or ${words.at(-1)!}${note ? ` (${note})` : ''}`;
  return {
    type: 'string',
    parse: (t) => {
      if (!Object.hasOwn(map, t)) throw new Expected(expected);
      return map[t] as M[keyof M];
    },
  };
}

/** At least `min` characters (a secret). */
export function secret(min: number): Flag<string> {
  return {
    type: 'string',
    parse: (t) => {
      if (t.length < min) throw new UsageError(`use at least ${min} characters`);
      return t;
    },
  };
}

/** The operator account's password (and the monitor's token). */
export const operatorToken = secret(8);

/** Flags setting options of `O`, checked by the compiler: `const sets = setter<BenchOptions>(); sets('durationMs', duration)`. */
export function setter<O>() {
  return <K extends keyof O & string>(option: K, flag: Flag<NonNullable<O[K]>>): Flag<NonNullable<O[K]>> => ({ ...flag, option });
}

/** Parse `args`: every flag's text into its value; every problem of the command line at once. */
export function parseFlags<F extends FlagSet>(args: string[], flags: F, command?: string): Parsed<F> {
  const options = Object.fromEntries(Object.entries(flags).map(([k, f]) => [k, { type: f.type, ...(f.short ? { short: f.short } : {}), ...(f.multiple ? { multiple: true } : {}) }]));
  let raw: { values: Record<string, string | string[] | boolean | undefined>; positionals: string[] };
  try {
    raw = parseArgs({ args, options, allowPositionals: true, strict: true }) as typeof raw;
  } catch (e) {
    throw new UsageError((e as Error).message, command);
  }
  const values: Record<string, unknown> = {};
  const typed: Record<string, string> = {};
  const problems: string[] = [];
  for (const [k, given] of Object.entries(raw.values)) {
    if (typeof given === 'boolean' || given === undefined) { values[k] = given; continue; }
    const texts = typeof given === 'string' ? [given] : given;
    typed[k] = texts.join(' ');
    const parsed: unknown[] = [];
    for (const v of texts) {
      try {
        parsed.push(flags[k]!.parse(v));
      } catch (e) {
        if (e instanceof Expected) problems.push(`--${k}: expected ${e.message}, got "${v}"`);
        else if (e instanceof AiotSimError) problems.push(e.message.startsWith('--') ? e.message : `--${k}: ${e.message}`);
        else throw e;
      }
    }
    values[k] = flags[k]!.multiple ? parsed.flat() : parsed[0];
  }
  if (problems.length) throw new UsageError(problems.join('\n'), command);
  return { values: values as FlagValues<F>, positionals: raw.positionals, text: typed as Parsed<F>['text'] };
}

/** The library options the flags given set (those with an `option`). */
export function optionsFrom<O>(flags: FlagSet, parsed: Parsed<FlagSet>): Partial<O> {
  const o: Record<string, unknown> = {};
  for (const [k, f] of Object.entries(flags)) if (f.option !== undefined && parsed.values[k] !== undefined) o[f.option] = parsed.values[k];
  return o as Partial<O>;
}

/**
 * A library's OptionsError as a usage error when one of its problems is about a flag given:
 * options named as their flags (`--rate-per-device`), values as the text typed. Null otherwise
 * (the error is the library's to report, as bad input).
 */
export function usageErrorFor(e: unknown, flags: FlagSet, parsed: Parsed<FlagSet>, command?: string): UsageError | null {
  if (!(e instanceof OptionsError)) return null;
  const flagOf = new Map(Object.entries(flags).filter(([, f]) => f.option !== undefined).map(([name, f]) => [f.option!, name]));
  const typed = (option: string): string | undefined => {
    const name = flagOf.get(option);
    return name === undefined ? undefined : parsed.text[name];
  };
  if (!e.problems.some((p) => typed(p.option) !== undefined)) return null;
  const name = (option: string): string => (flagOf.has(option) ? `--${flagOf.get(option)!}` : option);
  const lines = e.problems.map((p) => {
    const t = typed(p.option);
    return formatOptionProblem(p, name, 'value' in p && t !== undefined ? `"${t}"` : undefined);
  });
  return new UsageError(lines.join('\n'), command);
}
