/**
 * The baseline of the fleet and per-message figures: aiot-sim as it was before the fleet engine
 * (one mqtt.js client per device), built from git into a temporary folder, so each figure is
 * measured beside its baseline in the same run on the same machine. `BENCH_BASELINE_REF` names
 * another commit; the build is kept (by commit) for later runs. The baseline shares this
 * package's node_modules (same dependencies).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from 'aiot-sim';
import { log } from './common.js';

/** main just before the fleet engine (issue 15), with issue 14's broker (limits, owned client ids). */
const DEFAULT_REF = '4bb76a5';

export type Baseline = { ref: string; commit: string; dist: string } | { ref: string; skipped: string };

let prepared: Baseline | null = null;

/** Build the baseline once per run (and once per commit on this machine); says why when it cannot. */
export function baseline(): Baseline {
  if (prepared) return prepared;
  const ref = process.env.BENCH_BASELINE_REF ?? DEFAULT_REF;
  try {
    const commit = execFileSync('git', ['-C', PACKAGE_ROOT, 'rev-parse', '--verify', `${ref}^{commit}`], { encoding: 'utf8' }).trim();
    const dir = join(tmpdir(), `aiot-sim-baseline-${commit.slice(0, 12)}`);
    const dist = join(dir, 'dist');
    if (!existsSync(join(dist, 'index.js'))) {
      log(`baseline: building ${ref} (${commit.slice(0, 12)}) in ${dir}`);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      execFileSync('sh', ['-c', 'git -C "$1" archive "$2" | tar -x -C "$3"', 'archive', PACKAGE_ROOT, commit, dir], { stdio: ['ignore', 'ignore', 'inherit'] });
      symlinkSync(join(PACKAGE_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
      execFileSync(process.execPath, [join(PACKAGE_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: dir, stdio: 'inherit' });
    }
    prepared = { ref, commit, dist };
  } catch (err) {
    prepared = { ref, skipped: `could not build the baseline ${ref}: ${(err as Error).message.split('\n')[0]}` };
    log(`baseline: ${prepared.skipped}`);
  }
  return prepared;
}
