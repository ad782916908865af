/** SLO strings (`aiot-sim bench --slo`) and bench payload encoding: pure functions. */
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { checkSlo, parseSlo, SloSyntaxError, type SloFigures } from '../../src/load/slo.js';
import { buildTemplate, readBenchHeader, stamp, writeDid, type MessageShape } from '../../src/load/payloads.js';

const figures = (over: Partial<{ p99: number | null; lost: number; ratio: number | null; rate: number; failed: number; dups: number }> = {}): SloFigures => ({
  latencyMs: { p50: 1, p90: 2, p99: over.p99 === undefined ? 10 : over.p99, p999: 20, max: 30 },
  messages: { lost: over.lost ?? 0, duplicates: over.dups ?? 0, lossRatio: over.ratio === undefined ? 0 : over.ratio },
  rate: { received: over.rate ?? 1000 },
  connections: { failed: over.failed ?? 0 },
});

describe('parseSlo', () => {
  it('reads metrics, operators and units', () => {
    const t = parseSlo('p99<50ms, loss=0,rate>=1000, p999 <= 0.2s, max<500us, connectFailures=0, dups==0, p50>0, loss<0.1%');
    expect(t.map((x) => [x.metric, x.op, x.value, x.percent])).toEqual([
      ['p99', '<', 50, false], ['loss', '=', 0, false], ['rate', '>=', 1000, false], ['p999', '<=', 200, false],
      ['max', '<', 0.5, false], ['connectFailures', '=', 0, false], ['dups', '=', 0, false], ['p50', '>', 0, false], ['loss', '<', 0.1, true],
    ]);
    expect(parseSlo('p99.9<5')[0]!.metric).toBe('p999');
  });

  it.each([
    ['p99<<3', 'p99<<3'],
    ['latency<5ms', 'unknown metric "latency"'],
    ['p99<50ms,,loss=0', 'empty term'],
    ['p99<fast', 'p99<fast'],
    ['loss=0ms', 'loss takes no unit'],
    ['p99<5%', 'p99 is a latency'],
    ['', 'empty'],
  ])('rejects %j naming the problem', (text, needle) => {
    expect(() => parseSlo(text)).toThrow(SloSyntaxError);
    expect(() => parseSlo(text)).toThrow(needle);
  });
});

describe('checkSlo', () => {
  it('passes and fails per term, with the measured value', () => {
    const r = checkSlo(parseSlo('p99<50ms,loss=0,rate>=900'), figures());
    expect(r.passed).toBe(true);
    const bad = checkSlo(parseSlo('p99<5ms,loss=0,rate>=900,connectFailures=0'), figures({ lost: 3, failed: 1 }));
    expect(bad.passed).toBe(false);
    expect(bad.checks.map((c) => [c.term, c.actual, c.passed])).toEqual([
      ['p99<5ms', 10, false], ['loss=0', 3, false], ['rate>=900', 1000, true], ['connectFailures=0', 1, false],
    ]);
  });

  it('compares loss in percent as the ratio, and fails a latency term when nothing arrived', () => {
    expect(checkSlo(parseSlo('loss<1%'), figures({ lost: 5, ratio: 0.005 })).passed).toBe(true);
    expect(checkSlo(parseSlo('loss<1%'), figures({ lost: 50, ratio: 0.05 })).passed).toBe(false);
    const none = checkSlo(parseSlo('p99<50ms'), figures({ p99: null }));
    expect(none.passed).toBe(false);
    expect(none.checks[0]!.actual).toBeNull();
  });
});

describe('bench payloads', () => {
  const shape: MessageShape = { kind: 'properties_changed', wire: 'cloud', siid: 2, iid: 1, fields: '"siid":2,"piid":1,"value":true,' };

  /** The one PUBLISH packet of `shape`'s template, stamped for device 42, seq 7, message id 513. */
  function stamped(s: MessageShape, qos: 0 | 1): mqttPacket.IPublishPacket {
    const t = buildTemplate(s, 'ab12', qos, 0);
    const buf = Buffer.from(t.buf);
    writeDid(buf, t, 0, '800000042');
    stamp(buf, 0, t, 42, 7, 1_763_900_000_123_456, 513);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    const packets: mqttPacket.Packet[] = [];
    parser.on('packet', (p: mqttPacket.Packet) => packets.push(p));
    parser.parse(buf);
    expect(packets).toHaveLength(1);
    return packets[0] as mqttPacket.IPublishPacket;
  }

  it.each([0, 1] as const)('stamps a valid QoS %i PUBLISH whose payload is MIoT JSON (cloud format) plus a readable bench header', (qos) => {
    const p = stamped(shape, qos);
    expect(p.topic).toBe('device/800000042/up/properties_changed/2/1');
    expect(p.qos).toBe(qos);
    if (qos === 1) expect(p.messageId).toBe(513);
    const body = JSON.parse((p.payload as Buffer).toString()) as Record<string, unknown>;
    expect(body).toEqual({
      params: { did: '800000042', siid: 2, piid: 1, value: true, ts: 1_763_900_000_123 }, bench: { run: 'ab12', dev: 42, seq: 7, t: 1_763_900_000_123_456 },
    });
    expect(readBenchHeader(p.payload as Buffer)).toEqual({ run: 'ab12', dev: 42, seq: 7, t: 1_763_900_000_123_456 });
  });

  it.each([0, 1] as const)('stamps a valid QoS %i central-hub PUBLISH: appMsg topic, flat payload, the same bench header', (qos) => {
    const p = stamped({ ...shape, kind: 'event_occured', wire: 'local-hub', fields: '"siid":2,"eiid":1,"arguments":[],' }, qos);
    expect(p.topic).toBe('appMsg/notify/iot/800000042/event/2.1');
    if (qos === 1) expect(p.messageId).toBe(513);
    expect(JSON.parse((p.payload as Buffer).toString())).toEqual({
      did: '800000042', siid: 2, eiid: 1, arguments: [], ts: 1_763_900_000_123, bench: { run: 'ab12', dev: 42, seq: 7, t: 1_763_900_000_123_456 },
    });
  });

  it('pads to --payload-size, keeps a fixed size per template, and reads re-serialised JSON', () => {
    const t = buildTemplate(shape, 'ab12', 0, 1000);
    const payloadStart = t.buf.length - 1000;
    const payload = Buffer.from(t.buf.subarray(payloadStart));
    expect(payload.length).toBe(1000);
    const b = Buffer.from(t.buf);
    writeDid(b, t, 0, '800000001');
    stamp(b, 0, t, 1, 123_456, 1_763_900_000_000_001, 0);
    const json = JSON.parse(b.subarray(payloadStart).toString()) as { pad: string; bench: unknown };
    expect(json.pad.length).toBeGreaterThan(800);
    expect(readBenchHeader(Buffer.from(JSON.stringify(json)))).toEqual({ run: 'ab12', dev: 1, seq: 123_456, t: 1_763_900_000_000_001 });
    expect(readBenchHeader(Buffer.from('{"did":"1","value":3}'))).toBeNull();
  });
});
