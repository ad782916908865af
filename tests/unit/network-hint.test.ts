import { describe, expect, it } from 'vitest';
import { networkHint } from '../../src/cli/format.js';
import type { RunReport } from '../../src/sim/report.js';

/** The parts of a run's report the hint reads. */
function report(speed: RunReport['speed'], pieces: number, wallSeconds: number): RunReport {
  const r: Pick<RunReport, 'speed' | 'wallSeconds' | 'networkWork'> = { speed, wallSeconds: 22.5, networkWork: { pieces, wallSeconds } };
  return r as RunReport;
}

describe('the hint after a fast run that waited on the network', () => {
  it('names the wait, the pieces and the time each took, and says what to check on the broker', () => {
    // Measured: the default scenario for 24 h on Mosquitto's default configuration.
    const hint = networkHint(report('fast', 1352, 21.35));
    expect(hint).toContain('fast mode waited 21.4 s of the 22.5 s run for 1352 commands and app sessions through the broker, 15.8 ms each');
    expect(hint).toContain('set_tcp_nodelay true');
    expect(hint).toContain('docs/broker.md');
    expect(hint.endsWith('\n')).toBe(true);
  });

  it('says nothing when round trips were quick, when there were few, or when the clock is not fast', () => {
    expect(networkHint(report('fast', 1352, 0.548))).toBe(''); // the same run on the embedded broker
    expect(networkHint(report('fast', 5, 1))).toBe('');
    expect(networkHint(report(1, 1352, 21.35))).toBe('');
    expect(networkHint({ ...report('fast', 0, 0), networkWork: undefined } as RunReport)).toBe('');
  });
});
