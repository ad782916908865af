/**
 * What a stopping run says it waits for (`status().stopStep`, shown by the CLI's progress): a real
 * simulation on the embedded broker, stopped, watched turn by turn until its report comes.
 */
import { describe, expect, it } from 'vitest';
import { createSimulation } from '../../src/sim/simulation.js';
import { useCleanup } from '../helpers/cleanup.js';
import { tinyScenario } from '../helpers/scenario.js';

describe('a stopping run', () => {
  const track = useCleanup();

  it('says what it waits for at each step of the stop, in order, and nothing once stopped', async () => {
    const sim = track(await createSimulation({
      scenario: tinyScenario({ homes: 3, mix: { 'lumi.sensor_ht.agl02': 1, 'yeelink.light.mono6': 1 }, devicesPerHome: { '2': 3 } }),
      speed: 'manual',
      broker: { mqttPort: null, wsPort: null },
    }));
    await sim.advance(10 * 60_000);
    expect(sim.status().stopStep).toBeUndefined();
    const steps: string[] = [];
    const seen = (): void => {
      const s = sim.status();
      if (s.stopping && s.stopStep !== undefined && steps.at(-1) !== s.stopStep) steps.push(s.stopStep);
    };
    let done = false;
    const stopped = sim.stop().finally(() => { done = true; });
    seen(); // the first step is set before the stop awaits anything
    while (!done) {
      await new Promise((r) => setImmediate(r));
      seen();
    }
    const report = await stopped;
    expect(report.devices.total).toBe(6);
    expect(steps[0]).toBe('queued network work (0 pieces)');
    // Each step seen comes in the order the stop takes them (some pass within one turn).
    const order = ['queued network work (0 pieces)', 'messages in flight', 'the broker to go quiet', 'the platform store', 'device sessions to go offline', 'app clients to close', 'the trace and the broker'];
    expect(steps.every((s) => order.includes(s)), steps.join(' | ')).toBe(true);
    expect(steps.map((s) => order.indexOf(s))).toEqual([...steps.map((s) => order.indexOf(s))].sort((a, b) => a - b));
    expect(steps).toContain('device sessions to go offline');
    expect(sim.status().stopping).toBe(false);
    expect(sim.status().stopStep).toBeUndefined();
  });
});
