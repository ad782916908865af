/** The soak of issue 14 (tests/helpers/soak.ts, shared with the test suite's short version), as one benchmark task. */
import { runSoak, type SoakOptions, type SoakResult } from '../../tests/helpers/soak.js';

export function soak(args: SoakOptions): Promise<SoakResult> {
  return runSoak(args);
}
