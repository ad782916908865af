/**
 * The soak of issue 14 (tests/helpers/soak.ts), a few seconds of it: malformed packets and
 * WebSocket frames of every size, idle connections up to the caps and past them, stalled
 * subscribers, QoS 1 sinks that never acknowledge, offline anonymous sessions and a retained
 * flood, all at once against the embedded broker while a simulation's devices send QoS 1 events.
 * The broker still answers, every event reaches the platform, and the RSS stays within the bound
 * the broker's limits imply. The 60 s version is `BENCH_ONLY=soak npm run bench`.
 */
import { expect, it } from 'vitest';
import { runSoak } from '../helpers/soak.js';

it('a short soak: the broker answers, nothing is lost for well-behaved devices, RSS stays bounded', { timeout: 120_000 }, async () => {
  const r = await runSoak({ seconds: 4, malformed: 400, maxConnections: 60, stalled: 4, sinks: 4, offlineSessions: 10, homes: 30 });
  process.stderr.write(`soak (short): ${JSON.stringify({ sent: r.sent, peakConnections: r.peakConnections, hits: r.hits, rssMiB: r.rssMiB, pingMs: r.pingMs, events: r.events })}\n`);
  expect(r.brokerAnswering).toBe(true);
  expect(r.events.published).toBeGreaterThan(0);
  expect(r.events).toMatchObject({ lost: 0, missing: 0, bufferOverflow: 0 });
  expect(r.sent.malformedTcp + r.sent.malformedWs).toBeGreaterThanOrEqual(400);
  expect(r.sent.frameSizes).toBeGreaterThan(20);
  // The listeners were driven past their caps (connections refused), frames over the limit closed.
  expect(r.hits.connections).toBeGreaterThan(0);
  expect(r.hits.packetSize).toBeGreaterThan(0);
  expect(r.hits.anonymousSessions).toBe(1);
  expect(r.rssMiB.withinBound).toBe(true);
});
