/** The command line's parser: text into typed values, and a library's refusal shown under the flag's name. */
import { describe, expect, it } from 'vitest';
import { bool, choice, duration, integer, list, number, operatorToken, optionsFrom, parseFlags, port, setter, speed, text, UsageError, usageErrorFor } from '../../src/cli/args.js';
import { OptionsError } from '../../src/errors.js';

interface Opts { seed?: number; durationMs?: number; mode?: 'a' | 'b'; names?: string[] }
const option = setter<Opts>();
const FLAGS = {
  seed: option('seed', number),
  duration: option('durationMs', duration),
  mode: option('mode', choice({ a: 'a', b: 'b' })),
  names: option('names', list),
  port,
  workers: integer(1, 64),
  token: operatorToken,
  label: text,
  quiet: bool,
};

function usage(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error('no usage error');
}

describe('parseFlags', () => {
  it('turns each flag into its typed value and keeps the text typed', () => {
    const p = parseFlags(['--seed', '7', '--duration', '1.5m', '--mode', 'b', '--names', 'x, y,,z', '--port', '0', '--quiet', 'file.yaml'], FLAGS);
    expect(p.values).toEqual({ seed: 7, duration: 90_000, mode: 'b', names: ['x', 'y', 'z'], port: 0, quiet: true });
    expect(p.text).toEqual({ seed: '7', duration: '1.5m', mode: 'b', names: 'x, y,,z', port: '0' });
    expect(p.positionals).toEqual(['file.yaml']);
    expect(optionsFrom<Opts>(FLAGS, p)).toEqual({ seed: 7, durationMs: 90_000, mode: 'b', names: ['x', 'y', 'z'] });
  });

  it('leaves ranges to the library: any number passes, blank is NaN; zero durations are durations', () => {
    expect(parseFlags(['--seed=-1.5'], FLAGS).values.seed).toBe(-1.5);
    expect(parseFlags(['--seed', 'abc'], FLAGS).values.seed).toBeNaN();
    expect(parseFlags(['--seed', ' '], FLAGS).values.seed).toBeNaN();
    expect(parseFlags(['--duration', '0'], FLAGS).values.duration).toBe(0);
    expect(parseFlags(['--duration', '0s'], FLAGS).values.duration).toBe(0);
  });

  it('takes run --speed as a positive number or "fast", and says so otherwise', () => {
    expect(parseFlags(['--speed', '60'], { speed }).values.speed).toBe(60);
    expect(parseFlags(['--speed', 'fast'], { speed }).values.speed).toBe('fast');
    for (const bad of ['manual', '0', '1e-400', 'quick']) {
      expect(usage(() => parseFlags(['--speed', bad], { speed })).message).toContain(`--speed: expected a positive number (virtual seconds per wall second) or "fast", got "${bad}"`);
    }
  });

  it('names every flag whose text is not of its kind, with the text', () => {
    const e = usage(() => parseFlags(['--duration', 'soon', '--mode', 'c', '--port', '70000', '--workers', 'two', '--token', 'short'], FLAGS, 'bench'));
    expect(e.command).toBe('bench');
    expect(e.message.split('\n')).toEqual([
      '--duration: expected a duration like 500ms, 10s, 2m, 24h or 30d, got "soon"',
      '--mode: expected "a" or "b", got "c"',
      '--port: expected a port number 0..65535, got "70000"',
      '--workers: expected an integer from 1 to 64, got "two"',
      '--token: use at least 8 characters',
    ]);
    expect(usage(() => parseFlags(['--frobnicate'], FLAGS)).message).toMatch(/frobnicate/);
  });
});

describe('usageErrorFor', () => {
  const parsed = parseFlags(['--seed', 'abc', '--duration', '0s'], FLAGS);

  it("shows a library's problems with flags a user gave under the flags' names and the text typed", () => {
    const e = new OptionsError('E_X', [
      { option: 'seed', message: 'expected a non-negative integer', value: NaN },
      { option: 'durationMs', message: 'expected a positive duration', value: 0 },
      { option: 'names', message: 'excludes {durationMs}' },
    ]);
    expect(e.message).toBe('seed: expected a non-negative integer, got NaN\ndurationMs: expected a positive duration, got 0\nnames: excludes durationMs');
    const u = usageErrorFor(e, FLAGS, parsed, 'bench')!;
    expect(u).toBeInstanceOf(UsageError);
    expect(u.command).toBe('bench');
    expect(u.message.split('\n')).toEqual([
      '--seed: expected a non-negative integer, got "abc"',
      '--duration: expected a positive duration, got "0s"',
      '--names: excludes --duration',
    ]);
  });

  it('leaves an error alone when none of its problems is about a flag given', () => {
    expect(usageErrorFor(new OptionsError('E_X', [{ option: 'names', message: 'none given' }]), FLAGS, parsed)).toBeNull();
    expect(usageErrorFor(new Error('x'), FLAGS, parsed)).toBeNull();
  });
});
