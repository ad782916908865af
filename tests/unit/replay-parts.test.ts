/**
 * The pure parts of record and replay: the recording format (written and read back, bad lines
 * named), the schedule (spacing, loops, staggered copies, order per copy), did rewriting, and the
 * bench header replay adds for round-trip measurement.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatRecordLine, parseRecordLine, type RecordedMessage } from '../../src/contract/recording.js';
import { ValidationError } from '../../src/errors.js';
import { readBenchHeader } from '../../src/load/payloads.js';
import { readRecording } from '../../src/replay/recording.js';
import { withBenchHeader } from '../../src/replay/replay.js';
import { DidRewriter, topicDid } from '../../src/replay/rewrite.js';
import { Schedule, type ScheduleEntry } from '../../src/replay/schedule.js';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'aiot-replay-unit-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

describe('the recording format', () => {
  it('writes text payloads as text, others as base64, and reads both back as they were', () => {
    const text = formatRecordLine(1000, 'device/1/state', '{"did":"1","event":"online"}', 1, true);
    expect(text).toBe('{"ts":1000,"topic":"device/1/state","payload":"{\\"did\\":\\"1\\",\\"event\\":\\"online\\"}","qos":1,"retain":true}\n');
    const bytes = Buffer.from([0xff, 0x00, 0xc3, 0x28]);
    const bin = formatRecordLine(2000, 'raw/x', bytes, 2, false);
    expect(JSON.parse(bin)).toEqual({ ts: 2000, topic: 'raw/x', payload: bytes.toString('base64'), encoding: 'base64', qos: 2 });
    const a = parseRecordLine(text.trim(), 'f', 1) as RecordedMessage;
    expect(a).toEqual({ ts: 1000, topic: 'device/1/state', payload: Buffer.from('{"did":"1","event":"online"}'), qos: 1, retain: true });
    const b = parseRecordLine(bin.trim(), 'f', 2) as RecordedMessage;
    expect(b.payload.equals(bytes)).toBe(true);
    expect(b.qos).toBe(2);
    // A trace line of an older aiot-sim (no qos, no retain): QoS 0, not retained.
    expect(parseRecordLine('{"ts":5,"topic":"a/b","payload":"x"}', 'f', 3)).toEqual({ ts: 5, topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false });
  });

  it('names the file, the line and the field of every problem, and refuses the file as a whole', async () => {
    const file = join(dir, 'bad.ndjson');
    await writeFile(file, [
      '{"ts":1,"topic":"device/1/state","payload":"{}","qos":1}',
      '{"ts":2,"topic":"device/1/state","payload":"{}"',
      '',
      '{"ts":"soon","topic":"device/+/state","payload":3,"qos":5,"retain":"yes"}',
      '[1,2]',
      '{"ts":4,"topic":"x","payload":"@@@","encoding":"base64"}',
      '{"ts":5,"topic":"x","payload":"a","encoding":"hex"}',
    ].join('\n'));
    const err = await readRecording(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    const lines = (err as ValidationError).problems.map((p) => `${p.path}: ${p.message}`);
    expect(lines[0]).toMatch(/^line 2: not JSON \(/);
    expect(lines).toContain('line 4: ts: expected epoch milliseconds (a number >= 0), got "soon"');
    expect(lines).toContain('line 4: topic: "device/+/state" is not a topic name (no +, # or NUL in a published topic)');
    expect(lines).toContain('line 4: payload: expected a string, got 3');
    expect(lines).toContain('line 4: qos: expected 0, 1 or 2, got 5');
    expect(lines).toContain('line 4: retain: expected true or false, got "yes"');
    expect(lines).toContain('line 5: expected a JSON object {"ts","topic","payload",...}');
    expect(lines).toContain('line 6: payload: not base64 (encoding says base64)');
    expect(lines).toContain('line 7: encoding: expected "base64" or no encoding, got "hex"');
    expect((err as ValidationError).problems.every((p) => p.file.endsWith('bad.ndjson'))).toBe(true);
  });

  it('refuses an empty file and a missing one, and keeps file order when ts goes back', async () => {
    const empty = join(dir, 'empty.ndjson');
    await writeFile(empty, '\n\n');
    await expect(readRecording(empty)).rejects.toThrow(/empty\.ndjson: no messages/);
    await expect(readRecording(join(dir, 'nope.ndjson'))).rejects.toThrow(/nope\.ndjson: no such file/);
    const back = join(dir, 'back.ndjson');
    await writeFile(back, ['{"ts":10,"topic":"a","payload":"1"}', '{"ts":5,"topic":"a","payload":"2"}', '{"ts":20,"topic":"a","payload":"3"}', ''].join('\r\n'));
    const r = await readRecording(back);
    expect(r.messages.map((m) => [m.ts, m.payload.toString()])).toEqual([[10, '1'], [10, '2'], [20, '3']]);
    expect(r.backwards).toBe(1);
    expect(r.spanMs).toBe(10);
  });
});

function all(s: Schedule): ScheduleEntry[] {
  const out: ScheduleEntry[] = [];
  for (let e = s.next(); e; e = s.next()) out.push(e);
  return out;
}

describe('the schedule', () => {
  it('keeps the recorded spacing divided by the speed', () => {
    const s = all(new Schedule([0, 1000, 1000, 4000], { speed: 10, loops: 1, copies: 0 }));
    expect(s.map((e) => [e.due, e.index, e.copy, e.loop])).toEqual([[0, 0, 0, 0], [100, 1, 0, 0], [100, 2, 0, 0], [400, 3, 0, 0]]);
  });

  it('plays loops one after the other, a mean gap apart', () => {
    const sched = new Schedule([0, 300, 600], { speed: 1, loops: 2, copies: 0 });
    expect(sched.total).toBe(6);
    const s = all(sched);
    expect(s.map((e) => e.due)).toEqual([0, 300, 600, 900, 1200, 1500]);
    expect(s.map((e) => e.loop)).toEqual([0, 0, 0, 1, 1, 1]);
    expect(sched.lastDue).toBe(1500);
  });

  it('staggers copies between the recorded messages, each copy in file order', () => {
    const offsets = [0, 0, 1000, 1000, 1000, 5000];
    const sched = new Schedule(offsets, { speed: 2, loops: 3, copies: 4 });
    const s = all(sched);
    expect(s.length).toBe(sched.total);
    expect(sched.total).toBe(offsets.length * 3 * 4);
    for (let i = 1; i < s.length; i++) expect(s[i]!.due).toBeGreaterThanOrEqual(s[i - 1]!.due);
    for (let c = 1; c <= 4; c++) {
      const mine = s.filter((e) => e.copy === c).map((e) => e.loop * offsets.length + e.index);
      expect(mine).toEqual([...mine.keys()]);
    }
    // Copy k is k-1 quarters of a mean gap (1000 ms / 2 of replayed time) behind copy 1.
    const gap = 5000 / 5 / 2;
    expect(s.filter((e) => e.index === 5 && e.loop === 0).map((e) => e.due)).toEqual([2500, 2500 + gap / 4, 2500 + gap / 2, 2500 + (3 * gap) / 4]);
    expect(sched.lastDue).toBe(s.at(-1)!.due);
  });
});

describe('did rewriting', () => {
  const dids = ['267090026', 'lumi.158d00009050b14b', 'blt.3.1abcDEF', '7'];

  it('gives each copy its own dids, of the same shape, in topics and in payloads', () => {
    const rw = new DidRewriter(dids, 3);
    const seen = new Set(dids);
    for (let k = 1; k <= 3; k++) {
      const wifi = rw.did('267090026', k);
      expect(wifi).toMatch(/^[1-9]\d{8}$/);
      expect(rw.did('lumi.158d00009050b14b', k)).toMatch(/^lumi\.[0-9a-f]{16}$/);
      expect(rw.did('blt.3.1abcDEF', k)).toMatch(/^blt\.3\.\d[0-9a-f]{3}[0-9A-F]{3}$/);
      for (const d of dids) {
        expect(seen.has(rw.did(d, k))).toBe(false);
        seen.add(rw.did(d, k));
      }
      expect(rw.topic('device/267090026/up/properties_changed/2/1', k)).toBe(`device/${wifi}/up/properties_changed/2/1`);
      const child = rw.did('lumi.158d00009050b14b', k);
      const payload = Buffer.from('{"did":"lumi.158d00009050b14b","parent_id":"267090026","text":"say \\"267090026\\"","n":267090026}');
      expect(rw.payload(payload, k).toString()).toBe(`{"did":"${child}","parent_id":"${wifi}","text":"say \\"267090026\\"","n":267090026}`);
    }
    // The central hub's topics (--wire local-hub) carry the did too.
    const child = rw.did('lumi.158d00009050b14b', 2);
    expect(rw.topic('appMsg/notify/iot/lumi.158d00009050b14b/property/3.1', 2)).toBe(`appMsg/notify/iot/${child}/property/3.1`);
    expect(topicDid('appMsg/notify/iot/267090026/event/2.1')).toBe('267090026');
    expect(rw.did('unknown', 1)).toBe('unknown');
    expect(rw.topic('app/1/session', 2)).toBe('app/1/session');
    const plain = Buffer.from('no quotes here');
    expect(rw.payload(plain, 1)).toBe(plain);
    expect(topicDid('device/abc')).toBe('abc');
    expect(topicDid('device//x')).toBeUndefined();
  });
});

describe('the bench header on replayed payloads', () => {
  it('is added last to a JSON object, read back by the probe, and never to anything else', () => {
    const p = withBenchHeader(Buffer.from(' {"did":"1","value":2} \n'), 'ab12', 3, 41, 1_700_000_000_123_456)!;
    expect(JSON.parse(p.toString())).toEqual({ did: '1', value: 2, bench: { run: 'ab12', dev: 3, seq: 41, t: 1_700_000_000_123_456 } });
    expect(readBenchHeader(p)).toEqual({ run: 'ab12', dev: 3, seq: 41, t: 1_700_000_000_123_456 });
    expect(JSON.parse(withBenchHeader(Buffer.from('{ }'), 'ab12', 0, 0, 5)!.toString())).toEqual({ bench: { run: 'ab12', dev: 0, seq: 0, t: 5 } });
    expect(withBenchHeader(Buffer.from('[1,2]'), 'ab12', 0, 0, 5)).toBeNull();
    expect(withBenchHeader(Buffer.from('online'), 'ab12', 0, 0, 5)).toBeNull();
    expect(withBenchHeader(Buffer.from(''), 'ab12', 0, 0, 5)).toBeNull();
  });
});
