/**
 * The fleet's hand-written PUBLISH (src/sim/fleet/packets.ts) against mqtt-packet's, the writer
 * Aedes and mqtt.js use: the same bytes for any topic and payload (ASCII or not, empty, longer
 * than the slab the packets are cut from, at each remaining-length boundary), and a packet kept
 * stays as it was while later ones are written after it.
 */
import fc from 'fast-check';
import mqtt from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { PropertyFrame, type Scalar } from '../../src/contract/wire.js';
import { encodePropertyPublish, encodePublish, markDuplicate } from '../../src/sim/fleet/packets.js';

const reference = (topic: string, payload: string, qos: 0 | 1, retain: boolean, id: number): Buffer =>
  mqtt.generate({ cmd: 'publish', topic, payload: Buffer.from(payload, 'utf8'), qos, retain, dup: false, ...(qos ? { messageId: id } : {}) });

const text = fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 60 }), fc.string({ unit: 'grapheme', maxLength: 20 }));

describe('the fleet PUBLISH', () => {
  it('is the bytes mqtt-packet writes, and a kept packet is not overwritten by later ones', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ topic: text.filter((t) => t.length > 0), payload: text, qos: fc.constantFrom(0 as const, 1 as const), retain: fc.boolean(), id: fc.integer({ min: 1, max: 0xffff }) }), { minLength: 1, maxLength: 40 }),
      (packets) => {
        const kept = packets.map((p) => ({ p, bytes: encodePublish(p.topic, p.payload, p.qos, p.retain, p.id) }));
        for (const { p, bytes } of kept) expect(bytes.equals(reference(p.topic, p.payload, p.qos, p.retain, p.id))).toBe(true);
      },
    ), { numRuns: 300 });
  });

  it('writes a payload longer than its slab, and one at each remaining-length boundary', () => {
    const topic = 'device/214146121/up/properties_changed/2/1';
    const at = (rem: number, qos: 0 | 1): string => 'x'.repeat(rem - 2 - topic.length - (qos ? 2 : 0));
    for (const qos of [0, 1] as const) {
      for (const rem of [127, 128, 16_383, 16_384, 2_097_151, 2_097_152]) {
        const payload = at(rem, qos);
        expect(encodePublish(topic, payload, qos, false, 7).equals(reference(topic, payload, qos, false, 7)), `${rem}`).toBe(true);
      }
      const wide = '€'.repeat(5_000); // 15,000 bytes: wider than the slab in UTF-8
      expect(encodePublish(topic, wide, qos, true, 9).equals(reference(topic, wide, qos, true, 9))).toBe(true);
    }
  });

  it('marks a resent packet DUP without touching its neighbours', () => {
    const a = encodePublish('a/b', '1', 1, false, 1);
    const b = encodePublish('a/c', '2', 1, false, 2);
    markDuplicate(a);
    expect(a[0]).toBe(0x3a);
    expect(b.equals(reference('a/c', '2', 1, false, 2))).toBe(true);
  });

  it('writes a property change from its frame as the PUBLISH of its topic and payload strings', () => {
    // Characters at each UTF-8 width's edges (and a lone surrogate), which arbitrary strings seldom hit.
    const edges = fc.constantFrom('caf\u00e9', '\u0080', '\u00ff', '\u07ff', '\u0800', '\u20ac', '\uffff', '\u{1f600}', '\ud800', 'a\u007fb');
    const named = fc.oneof(text, edges).filter((d) => d.length > 0);
    const value: fc.Arbitrary<Scalar> = fc.oneof(fc.integer(), fc.double(), fc.boolean(), text, edges, fc.constantFrom(0.1 + 0.2, -0, 1e21, 1e-7, -1.5));
    const ts = fc.oneof(
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      fc.constantFrom(0, 9, 10, 999_999_999, 1e9, 1e9 + 1, 1_600_000_000_123, 999_999_999_999_999, 1e15, Number.MAX_SAFE_INTEGER, -5, 1.5, 2 ** 53, 1e300),
      fc.double(),
    );
    fc.assert(fc.property(
      fc.array(fc.record({ cloud: fc.boolean(), siid: fc.integer({ min: 1, max: 300 }), piid: fc.integer({ min: 1, max: 300 }), did: named, value, ts }), { minLength: 1, maxLength: 40 }),
      (changes) => {
        // All written first (with a plain PUBLISH between), then each compared: none overwrites another.
        const kept = changes.map((c) => {
          const frame = new PropertyFrame(c.cloud ? 'cloud' : 'local-hub', c.siid, c.piid);
          const bytes = encodePropertyPublish(frame, c.did, JSON.stringify(c.did), c.value, c.ts);
          encodePublish('x/y', 'between', 1, false, 3);
          return { bytes, want: reference(frame.topic(c.did), frame.payload(JSON.stringify(c.did), c.value, c.ts), 0, false, 0) };
        });
        for (const { bytes, want } of kept) expect(bytes.toString('hex')).toBe(want.toString('hex'));
      },
    ), { numRuns: 400 });
  });
});

