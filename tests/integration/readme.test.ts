/**
 * The README as a newcomer uses it. Every fenced shell block is one of:
 *   ```sh runnable                         run as written, in README order, in one shell (one
 *                                          terminal): every command must succeed;
 *   ```sh runnable background ready=TEXT   another terminal: started in order in a process group
 *                                          of its own, the next blocks wait until its output
 *                                          holds TEXT, and at the end it is stopped with Ctrl-C
 *                                          (SIGINT to its group) and must stop cleanly;
 *   ```sh                                  checked, not run: every program it calls exists, every
 *                                          `aiot-sim` command and flag is one `--help` lists,
 *                                          every `npm run` script is in package.json.
 * (The quick start's block, a 15-minute real-time run, is what `.ci/run` runs.)
 * Links between the project's Markdown files, and to its files and headings, must resolve, and the
 * TypeScript and JavaScript examples must type-check against the package's own types.
 *
 * The runnable blocks use the default ports (1883, 8083, 8080) as a newcomer would, so they run
 * in a network namespace of their own (`unshare -n`, with its loopback brought up by `ip`): other
 * tests and programs on this machine keep theirs. Where no namespace can be made, they run on the
 * machine's loopback when those ports are free, and the test says so when they are not. Their
 * files are written to test-artifacts/readme-tour/ (git-ignored), where `npx` still finds this
 * checkout's aiot-sim.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stopChild, waitExit } from '../helpers/child.js';
import { assertBuilt, BIN, PACKAGE_DIR } from '../helpers/cli.js';
import { anchorsOf, scanMarkdown, shellCommands, type FencedBlock } from '../helpers/markdown.js';

const README = join(PACKAGE_DIR, 'README.md');
const DOCS = join(PACKAGE_DIR, 'docs');
const TOUR_DIR = join(PACKAGE_DIR, 'test-artifacts', 'readme-tour');
const TOUR_MS = 240_000;
const READY_MS = 120_000;
const DEFAULT_PORTS = [1883, 8083, 8080];
const PATH = `${process.env.PATH ?? ''}:/usr/local/sbin:/usr/sbin:/sbin`;

/** The Markdown files a newcomer reads: the README and docs/. */
function markdownFiles(): string[] {
  const docs = existsSync(DOCS) ? readdirSync(DOCS).filter((f) => f.endsWith('.md')).map((f) => join(DOCS, f)) : [];
  return [README, ...docs];
}

interface ShellBlock extends FencedBlock { file: string; runnable: boolean; background: boolean; ready?: string }

function shellBlocks(file: string): ShellBlock[] {
  return scanMarkdown(readFileSync(file, 'utf8')).blocks
    .filter((b) => ['sh', 'bash', 'shell', 'console'].includes(b.lang))
    .map((b) => {
      const words = b.info.split(/\s+/).slice(1);
      const ready = words.find((w) => w.startsWith('ready='))?.slice('ready='.length);
      return { ...b, file, runnable: words.includes('runnable'), background: words.includes('background'), ...(ready ? { ready } : {}) };
    });
}

const where = (b: { file: string; line: number }): string => `${relative(PACKAGE_DIR, b.file)}:${b.line}`;

describe('the README\'s shell blocks', () => {
  beforeAll(() => assertBuilt());

  it('are sh blocks, marked runnable or checked, and the runnable ones are all in the README', () => {
    for (const file of markdownFiles()) {
      for (const b of shellBlocks(file)) {
        expect(b.lang, `${where(b)}: write shell blocks as \`\`\`sh`).toBe('sh');
        const extra = b.info.split(/\s+/).slice(1).filter((w) => !['runnable', 'background'].includes(w) && !w.startsWith('ready='));
        expect(extra, `${where(b)}: unknown words in the block's info string`).toEqual([]);
        if (b.background) expect(b.ready, `${where(b)}: a background block says what output means it is ready (ready=TEXT)`).toBeTruthy();
        if (b.runnable) expect(file, `${where(b)}: runnable blocks belong to the README's tour`).toBe(README);
      }
    }
  });

  it('call programs that exist, aiot-sim commands and flags its --help lists, and npm scripts package.json has', () => {
    const help = new Map<string, string>();
    const helpOf = (command: string): string => {
      let h = help.get(command);
      if (h === undefined) {
        const r = spawnSync(process.execPath, [BIN, ...(command === '' ? [] : [command]), '--help'], { encoding: 'utf8' });
        expect(r.status, `aiot-sim ${command} --help: ${r.stderr}`).toBe(0);
        h = r.stdout;
        help.set(command, h);
      }
      return h;
    };
    const commands = [...helpOf('').matchAll(/^ {2}aiot-sim (\w+)/gm)].map((m) => m[1]!);
    expect(commands).toContain('run');
    const scripts = Object.keys((JSON.parse(readFileSync(join(PACKAGE_DIR, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts);
    const problems: string[] = [];
    let checked = 0;
    for (const file of markdownFiles()) {
      for (const b of shellBlocks(file)) {
        for (const words of shellCommands(b.text)) {
          let w = words.slice();
          // Shell keywords and VAR=value before the program (`for n in 1 2; do aiot-sim ... & done`).
          while (w.length && (/^[A-Za-z_][A-Za-z0-9_]*=/.test(w[0]!) || ['do', 'then', 'else', 'time', '!'].includes(w[0]!))) w.shift();
          if (w.length === 0 || ['export', 'for', 'done', 'fi', 'if', 'while', 'until'].includes(w[0]!)) continue;
          if (w[0] === 'npx') w = w.slice(1).filter((x, i) => i > 0 || !x.startsWith('-'));
          const [program, ...args] = w;
          checked++;
          if (program === 'aiot-sim') {
            const sub = args[0] ?? '';
            if (!commands.includes(sub)) { problems.push(`${where(b)}: aiot-sim has no command "${sub}"`); continue; }
            const text = helpOf(sub);
            for (const flag of args.filter((a) => /^--[a-z]/.test(a)).map((a) => a.split('=')[0]!)) {
              if (!new RegExp(`(^|[\\s,\\[])${flag}(?![\\w-])`, 'm').test(text)) problems.push(`${where(b)}: aiot-sim ${sub} --help lists no ${flag}`);
            }
          } else if (program === 'npm') {
            const [sub, ...rest] = args;
            if (sub === 'run') {
              const script = rest.find((a) => !a.startsWith('-'));
              if (!script || !scripts.includes(script)) problems.push(`${where(b)}: package.json has no script "${script ?? ''}"`);
            } else if (!['install', 'ci', 'test', 'pack'].includes(sub ?? '')) problems.push(`${where(b)}: npm ${sub ?? ''}: not a command the README should need`);
          } else if (!program!.startsWith('./') && spawnSync('sh', ['-c', `command -v "$0"`, program!], { env: { ...process.env, PATH } }).status !== 0) {
            problems.push(`${where(b)}: ${program} is not installed (scripts/test-prereqs.mjs installs what the README calls)`);
          }
        }
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(10);
  });

  it('keep the quick start .ci/run runs: the first sh block after "## Quick start", two commands', () => {
    const md = readFileSync(README, 'utf8');
    const start = md.split('\n').findIndex((l) => l.startsWith('## Quick start'));
    expect(start, 'README.md has a "## Quick start" section').toBeGreaterThanOrEqual(0);
    const first = shellBlocks(README).find((b) => b.line > start);
    expect(first?.runnable, 'the quick start block is run by .ci/run, not by this test').toBe(false);
    expect(shellCommands(first!.text).map((c) => c.join(' '))).toEqual(['npm install', 'npx aiot-sim run', 'npm test']);
    expect(readFileSync(join(PACKAGE_DIR, '.ci', 'run'), 'utf8')).toContain('/^## Quick start/');
  });
});

describe('the code examples of the README and docs/', () => {
  it('type-check against the package (ts and js blocks, as a user\'s strict project would)', async () => {
    const dir = join(PACKAGE_DIR, 'test-artifacts', 'readme-code');
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const origin = new Map<string, string>();
    for (const file of markdownFiles()) {
      for (const b of scanMarkdown(readFileSync(file, 'utf8')).blocks.filter((x) => x.lang === 'ts' || x.lang === 'js')) {
        const name = `${relative(PACKAGE_DIR, file).replace(/[/.]/g, '_')}_${b.line}.${b.lang}`;
        origin.set(name, where({ file, line: b.line }));
        await writeFile(join(dir, name), b.text);
      }
    }
    expect(origin.size, 'the README shows the library and the /ws protocol in code').toBeGreaterThanOrEqual(2);
    // The project's strict settings, with 'aiot-sim' resolved to its sources; an example may show a value it does not use.
    await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
      extends: '../../tsconfig.json',
      compilerOptions: { noEmit: true, allowJs: true, checkJs: true, noUnusedLocals: false, rootDir: '../..' },
      include: ['*.ts', '*.js'],
    }));
    const tsc = spawn(process.execPath, [join(PACKAGE_DIR, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], { cwd: PACKAGE_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    tsc.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    tsc.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const end = await waitExit(tsc, 150_000, 'close');
    if (!end) await stopChild(tsc, 2000, 'SIGKILL');
    // Name each error by the Markdown line of its block.
    const named = out.replace(/test-artifacts\/readme-code\/([\w.]+)\((\d+),(\d+)\)/g, (_m, f: string, l: string, c: string) => `${origin.get(f) ?? f}, the block's line ${l}, column ${c}`);
    expect(end?.code, named).toBe(0);
  }, 180_000);
});

describe('the links of the README and docs/', () => {
  it('reach files of the project and headings that exist', () => {
    const problems: string[] = [];
    const anchors = new Map<string, Set<string>>();
    const anchorsIn = (file: string): Set<string> => {
      let a = anchors.get(file);
      if (!a) { a = anchorsOf(scanMarkdown(readFileSync(file, 'utf8')).headings); anchors.set(file, a); }
      return a;
    };
    for (const file of markdownFiles()) {
      for (const link of scanMarkdown(readFileSync(file, 'utf8')).links) {
        if (/^[a-z]+:/i.test(link.target)) continue;   // http:, https:, mailto:
        const [path, anchor] = link.target.split('#') as [string, string | undefined];
        const target = path === '' ? file : resolve(dirname(file), path);
        const at = `${relative(PACKAGE_DIR, file)}:${link.line}`;
        if (!existsSync(target)) { problems.push(`${at}: ${link.target}: no such file`); continue; }
        if (anchor !== undefined && target.endsWith('.md') && !anchorsIn(target).has(anchor)) problems.push(`${at}: ${link.target}: no such heading`);
      }
    }
    expect(problems).toEqual([]);
  });
});

/** How to give the tour a network of its own: a command prefix, or null (the machine's loopback). */
function namespacePrefix(): string[] | null {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  for (const prefix of root ? [['unshare', '-n'], ['unshare', '-rn']] : [['unshare', '-rn']]) {
    const r = spawnSync(prefix[0]!, [...prefix.slice(1), 'sh', '-c', 'ip link set lo up'], { env: { ...process.env, PATH }, stdio: 'ignore' });
    if (r.status === 0) return prefix;
  }
  return null;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = createServer().once('error', () => done(false)).listen(port, '127.0.0.1', () => s.close(() => done(true)));
  });
}

/** The driver: one shell that is the second terminal, starting the first terminal's blocks beside it. */
function driverScript(blocks: ShellBlock[]): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const lines = [
    'set -e',
    'bg=()',
    'stop_all() { for p in "${bg[@]}"; do kill -INT -- "-$p" 2>/dev/null || true; done; }',
    'trap stop_all EXIT',
  ];
  blocks.forEach((b, i) => {
    lines.push(`echo "@@block ${i}"; echo "@@block ${i}" >&2`);
    if (b.background) {
      lines.push(
        `setsid bash -e bg-${i}.sh > bg-${i}.out 2>&1 < /dev/null & bg+=($!); echo $! > bg-${i}.pid`,
        // Wait for the ready text, while the block still runs (bounded: READY_MS in steps of 0.2 s).
        `for _ in $(seq 1 ${READY_MS / 200}); do grep -qF -- ${q(b.ready!)} bg-${i}.out && break; kill -0 "$(cat bg-${i}.pid)" 2>/dev/null || break; sleep 0.2; done`,
        `grep -qF -- ${q(b.ready!)} bg-${i}.out || { echo "block ${i} never printed ${b.ready!}:"; cat bg-${i}.out; exit 97; } >&2`,
      );
    } else lines.push(b.text);
  });
  lines.push(
    'echo "@@end"; echo "@@end" >&2',
    'trap - EXIT',
    ...blocks.flatMap((b, i) => (b.background ? [`p=$(cat bg-${i}.pid); kill -INT -- "-$p"; s=0; wait "$p" || s=$?; echo "$s" > bg-${i}.status`] : [])),
  );
  return lines.join('\n') + '\n';
}

interface TourRun { code: number | null; stdout: string; stderr: string; blocks: ShellBlock[] }

/** Each block's part of the driver's output (stdout or stderr), by index. */
function parts(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const piece of text.split(/^@@/m)) {
    const m = /^block (\d+)\n([\s\S]*)$/.exec(piece);
    if (m) out.set(Number(m[1]), m[2]!);
  }
  return out;
}

describe('the README\'s tour', () => {
  let tour: TourRun;

  beforeAll(async () => {
    assertBuilt();
    const blocks = shellBlocks(README).filter((b) => b.runnable);
    if (blocks.length === 0) throw new Error('README.md has no ```sh runnable blocks: the tour is gone');
    await rm(TOUR_DIR, { recursive: true, force: true });
    await mkdir(TOUR_DIR, { recursive: true });
    for (const [i, b] of blocks.entries()) if (b.background) await writeFile(join(TOUR_DIR, `bg-${i}.sh`), b.text);
    await writeFile(join(TOUR_DIR, 'driver.sh'), driverScript(blocks));
    const prefix = namespacePrefix();
    if (!prefix) {
      const busy: number[] = [];
      for (const p of DEFAULT_PORTS) if (!(await portFree(p))) busy.push(p);
      if (busy.length) {
        throw new Error(`the README's tour uses the default ports ${DEFAULT_PORTS.join(', ')}; this machine gives it no network namespace of its own `
          + `(unshare -n as root, or unshare -rn, and ip from iproute2) and ${busy.join(', ')} ${busy.length === 1 ? 'is' : 'are'} taken here`);
      }
    }
    const cmd = [...(prefix ?? []), 'bash', '-c', prefix ? 'ip link set lo up && exec bash driver.sh' : 'exec bash driver.sh'];
    const env: NodeJS.ProcessEnv = { ...process.env, PATH, NO_COLOR: '1', npm_config_update_notifier: 'false' };
    delete env.AIOT_SIM_TOKEN;
    const child = spawn(cmd[0]!, cmd.slice(1), { cwd: TOUR_DIR, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const out = { stdout: '', stderr: '' };
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out.stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { out.stderr += d; });
    const end = await waitExit(child, TOUR_MS, 'close');
    if (!end) {
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
      await stopChild(child, 2000, 'SIGKILL');
      throw new Error(`the README's tour did not end within ${TOUR_MS / 1000} s\nstdout: ${out.stdout.slice(-3000)}\nstderr: ${out.stderr.slice(-3000)}`);
    }
    await writeFile(join(TOUR_DIR, 'stdout.txt'), out.stdout);
    await writeFile(join(TOUR_DIR, 'stderr.txt'), out.stderr);
    tour = { code: end.code, ...out, blocks };
  }, TOUR_MS + 30_000);

  /** The tour's block whose text holds `needle`, and its output. */
  const block = (needle: string): { index: number; block: ShellBlock; stdout: string; stderr: string } => {
    const index = tour.blocks.findIndex((b) => b.text.includes(needle));
    expect(index, `the tour has a runnable block with "${needle}"`).toBeGreaterThanOrEqual(0);
    return { index, block: tour.blocks[index]!, stdout: parts(tour.stdout).get(index) ?? '', stderr: parts(tour.stderr).get(index) ?? '' };
  };

  it('runs every block to its end, each command succeeding', () => {
    const last = [...tour.stdout.matchAll(/^@@block (\d+)$/gm)].pop();
    const failed = last ? tour.blocks[Number(last[1])] : undefined;
    expect(tour.code, `the tour stopped in the block at ${failed ? where(failed) : '?'}:\n${tour.stderr.slice(-3000)}`).toBe(0);
    expect(tour.stdout).toMatch(/^@@end$/m);
  });

  it('starts the run in the first terminal, and Ctrl-C stops it cleanly with its summary', async () => {
    const run = block('npx aiot-sim run');
    expect(run.block.background).toBe(true);
    const out = await readFile(join(TOUR_DIR, `bg-${run.index}.out`), 'utf8');
    expect(out).toContain('aiot-sim: dashboard http://127.0.0.1:8080/?token=tour-secret-42');
    expect(out).toMatch(/^aiot-sim: stopped "default"/m);
    // aiot-sim exits 0 after Ctrl-C; npx, interrupted with it, reports 130.
    expect(['0', '130']).toContain((await readFile(join(TOUR_DIR, `bg-${run.index}.status`), 'utf8')).trim());
  });

  it('watches the traffic: 20 device messages', () => {
    const lines = block("-t 'device/#' -v -C 20").stdout.trim().split('\n');
    expect(lines).toHaveLength(20);
    for (const l of lines) expect(l).toMatch(/^device\/[\w.]+\/\S+ \{/);
  });

  it('switches a light on: the device\'s reply says done', () => {
    const reply = JSON.parse(block('set_properties').stdout.trim()) as { result: Array<{ did: string; siid: number; piid: number; code: number }> };
    expect(reply.result).toHaveLength(1);
    expect(reply.result[0]).toMatchObject({ siid: 2, piid: 1, code: 0 });
    expect(reply.result[0]!.did).toMatch(/^\d+$/);
  });

  it('runs a bench: every message sent arrived', () => {
    const md = block('aiot-sim bench').stdout;
    const row = /\| messages sent \/ received \| ([\d,]+) \/ ([\d,]+) \|/.exec(md);
    expect(row, md).not.toBeNull();
    const [sent, received] = [Number(row![1]!.replace(/,/g, '')), Number(row![2]!.replace(/,/g, ''))];
    expect(sent).toBeGreaterThan(0);
    expect(received).toBe(sent);
  });

  it('records the run\'s device traffic, and replays all of it', async () => {
    const rr = block('aiot-sim record');
    const recording = (await readFile(join(TOUR_DIR, 'evening.ndjson'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { topic: string; qos: number });
    expect(recording.length).toBeGreaterThan(0);
    for (const m of recording) expect(m.topic).toMatch(/^device\//);
    const row = /\| messages scheduled \/ sent \| ([\d,]+) \/ ([\d,]+) /.exec(rr.stdout);
    expect(row, rr.stdout).not.toBeNull();
    expect(Number(row![1]!.replace(/,/g, ''))).toBe(recording.length);
    expect(Number(row![2]!.replace(/,/g, ''))).toBe(recording.length);
  });
});
