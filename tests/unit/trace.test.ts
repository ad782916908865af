/**
 * The device trace (src/sim/trace.ts) read from a PUBLISH packet's bytes (`recordPublish`, how the
 * fleet records its property reports) gives the digest and the trace file that recording the same
 * messages as strings (`record`) gives: in any mix of the two, with lines longer than the trace's
 * buffer and times that are not whole milliseconds.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { encodePublish } from '../../src/sim/fleet/packets.js';
import { TraceRecorder } from '../../src/sim/trace.js';

const dir = mkdtempSync(join(tmpdir(), 'aiot-trace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('caf\u00e9', '\u20ac', '\u{1f600}', ''));
const message = fc.record({
  ts: fc.oneof(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(1_600_000_000_123, 0, 1.5, 1e9)),
  topic: text.filter((t) => t.length > 0),
  payload: fc.oneof(text, fc.constantFrom('x'.repeat(9_000), '\u20ac'.repeat(3_000))),
  qos: fc.constantFrom(0 as const, 1 as const),
  retain: fc.boolean(),
  asPacket: fc.boolean(),
});

let files = 0;

describe('the device trace', () => {
  it('reads a message from its PUBLISH as it reads it from its strings: the same digest and file', async () => {
    await fc.assert(fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 60 }), async (messages) => {
      const byString = new TraceRecorder();
      const mixed = new TraceRecorder();
      const fileA = join(dir, `a${files}.ndjson`);
      const fileB = join(dir, `b${files++}.ndjson`);
      byString.writeTo(fileA);
      mixed.writeTo(fileB);
      for (const m of messages) {
        byString.record(m.ts, m.topic, m.payload, m.qos, m.retain);
        if (m.asPacket) mixed.recordPublish(m.ts, encodePublish(m.topic, m.payload, m.qos, m.retain, 42));
        else mixed.record(m.ts, m.topic, m.payload, m.qos, m.retain);
      }
      expect(mixed.count).toBe(byString.count);
      expect(await mixed.finish()).toBe(await byString.finish());
      expect(readFileSync(fileB, 'utf8')).toBe(readFileSync(fileA, 'utf8'));
    }), { numRuns: 60 });
  });
});
