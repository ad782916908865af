/**
 * The parser front (broker/frame-parser.ts) against mqtt-packet's own parser: for any stream of
 * packets, split anywhere, the fronted parser emits the same packets (field for field) and the
 * same errors as mqtt-packet alone.
 */
import fc from 'fast-check';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { frontParser, type MqttPacketParser } from '../../src/broker/frame-parser.js';
import { filterProblem } from '../../src/contract/mqtt-topics.js';
import { connectPacket, encode, fixedHeader } from '../helpers/mqtt-bytes.js';

interface Outcome { packets: Array<Record<string, unknown>>; errors: string[] }

/** Feed `chunks` to a parser (fronted or not) as Aedes does, stopping at the first error as Aedes' client closes. */
function run(chunks: Buffer[], fronted: boolean): Outcome {
  const parser = mqttPacket.parser() as unknown as MqttPacketParser & NodeJS.EventEmitter;
  if (fronted) frontParser(parser);
  const out: Outcome = { packets: [], errors: [] };
  parser.on('packet', (p: object) => out.packets.push({ ...p }));
  parser.on('error', (e: Error) => out.errors.push(e.message));
  for (const c of chunks) {
    if (out.errors.length) break;
    parser.parse(c);
  }
  return out;
}

/** `bytes` cut at the given offsets. */
function cut(bytes: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((x) => x % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    if (p > from) out.push(Buffer.from(bytes.subarray(from, p)));
    from = Math.max(from, p);
  }
  if (from < bytes.length) out.push(Buffer.from(bytes.subarray(from)));
  return out;
}

/** Topics a stream repeats, as a device's session does: some of equal length, differing in one character. */
const REPEATED = ['device/d1/up/properties_changed/2/1', 'device/d1/up/properties_changed/2/2', 'device/d2/up/properties_changed/2/1',
  'device/d1/up/properties_changed/3/1', 'device/d1/up/event_occured/2/1', 'a', 'b', 'ü/日本/🚀', 'ü/日本/🚁'];
const topic = fc.oneof(fc.constantFrom(...REPEATED), fc.string({ minLength: 1, maxLength: 40 }));
const payload = fc.oneof(fc.constant(Buffer.alloc(0)), fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), fc.constant(Buffer.alloc(3000, 7)));
const id = fc.integer({ min: 1, max: 65_535 });
const packet: fc.Arbitrary<Packet> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ topic, payload, qos: fc.constantFrom(0, 1, 2), retain: fc.boolean(), dup: fc.boolean(), messageId: id })
    .map(({ topic: t, payload: p, qos, retain, dup, messageId }) => ({ cmd: 'publish', topic: t, payload: p, qos, retain, dup, ...(qos > 0 ? { messageId } : {}) }) as Packet) },
  { weight: 2, arbitrary: id.map((messageId) => ({ cmd: 'puback', messageId }) as Packet) },
  { weight: 1, arbitrary: fc.constant({ cmd: 'pingreq' } as Packet) },
  { weight: 1, arbitrary: fc.constant({ cmd: 'disconnect' } as Packet) },
  { weight: 1, arbitrary: fc.record({ messageId: id, subs: fc.array(fc.record({ topic, qos: fc.constantFrom(0, 1, 2) }), { minLength: 1, maxLength: 4 }) })
    .map(({ messageId, subs }) => ({ cmd: 'subscribe', messageId, subscriptions: subs }) as Packet) },
  { weight: 1, arbitrary: fc.record({ messageId: id, topics: fc.array(topic.filter((t) => filterProblem(t) === null), { minLength: 1, maxLength: 4 }) })
    .map(({ messageId, topics }) => ({ cmd: 'unsubscribe', messageId, unsubscriptions: topics }) as Packet) },
  { weight: 1, arbitrary: id.map((messageId) => ({ cmd: 'pubrel', messageId }) as Packet) },
);

describe('frontParser', () => {
  it('emits what mqtt-packet emits for any stream of packets, split anywhere', () => {
    fc.assert(fc.property(fc.array(packet, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 12 }), (packets, cuts) => {
      const bytes = Buffer.concat([connectPacket({ clientId: 'c' }), ...packets.map(encode)]);
      const chunks = cut(bytes, cuts);
      const fronted = run(chunks, true);
      expect(fronted).toEqual(run(chunks, false));
      expect(fronted.packets).toHaveLength(packets.length + 1);
    }), { numRuns: 150 });
  });

  it('reads each topic as mqtt-packet does when a connection publishes to a few topics again and again', () => {
    // U+FFFD sent as such (EF BF BD) is well-formed: read, not refused.
    const rawPublish = (topicBytes: Buffer, body: string): Buffer => {
      const rest = Buffer.concat([Buffer.from([topicBytes.length >> 8, topicBytes.length & 0xff]), topicBytes, Buffer.from(body)]);
      return Buffer.concat([Buffer.from([0x30, rest.length]), rest]);
    };
    const topics = [Buffer.from('dev/ab'), Buffer.from('dev/\uFFFD'), Buffer.from('dev/ac'), Buffer.from('dev/é'), ...REPEATED.map((t) => Buffer.from(t))];
    fc.assert(fc.property(fc.array(fc.nat({ max: topics.length - 1 }), { minLength: 1, maxLength: 60 }), fc.array(fc.nat(), { maxLength: 6 }), (picks, cuts) => {
      const bytes = Buffer.concat([connectPacket({ clientId: 'c' }), ...picks.map((k, i) => rawPublish(topics[k]!, `m${i}`))]);
      const chunks = cut(bytes, cuts);
      const fronted = run(chunks, true);
      expect(fronted).toEqual(run(chunks, false));
      expect(fronted.errors).toEqual([]);
      expect(fronted.packets.slice(1).map((p) => p['topic'])).toEqual(picks.map((k) => topics[k]!.toString('utf8')));
    }), { numRuns: 200 });
  });

  it('refuses a string that is not well-formed UTF-8 in any packet that carries one, naming the field and the bytes, after reading what came before', () => {
    // MQTT-1.5.3-1: the receiver closes the connection. mqtt-packet reads such bytes as U+FFFD,
    // so this is where the front and mqtt-packet part.
    const bad: Array<[string, number[]]> = [
      ['a stray continuation byte', [0x80]], ['a byte never in UTF-8', [0xff]], ['an overlong "/"', [0xc0, 0xaf]],
      ['an encoded surrogate', [0xed, 0xa0, 0x80]], ['a code point past U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
      ['a sequence cut short', [0xe2, 0x82]],
    ];
    const str = (b: Buffer): Buffer => Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
    const packetOf = (first: number, ...parts: Buffer[]): Buffer => {
      const body = Buffer.concat(parts);
      return Buffer.concat([fixedHeader(first, body.length), body]);
    };
    const connectWith = (clientId: Buffer, will: Buffer | null, user: Buffer | null): Buffer => packetOf(0x10,
      str(Buffer.from('MQTT')), Buffer.from([4, (will ? 0x04 : 0) | (user ? 0x80 : 0) | 0x02, 0, 60]), str(clientId),
      ...(will ? [str(will), str(Buffer.from('gone'))] : []), ...(user ? [str(user)] : []));
    const ok = encode({ cmd: 'publish', topic: 'x', payload: Buffer.from('1'), qos: 0, retain: false, dup: false });
    const connect = connectPacket({ clientId: 'c' });
    for (const [what, seq] of bad) {
      const text = Buffer.concat([Buffer.from('dev/'), Buffer.from(seq), Buffer.from('/x')]);
      const cases: Array<[string, Buffer[]]> = [
        ['PUBLISH topic', [connect, ok, packetOf(0x30, str(text), Buffer.from('{}')), ok]],
        ['PUBLISH topic', [connect, ok, packetOf(0x32, str(text), Buffer.from([0, 7]), Buffer.from('{}')), ok]],
        ['SUBSCRIBE topic filter', [connect, ok, packetOf(0x82, Buffer.from([0, 1]), str(Buffer.from('ok/#')), Buffer.from([1]), str(text), Buffer.from([0])), ok]],
        ['UNSUBSCRIBE topic filter', [connect, ok, packetOf(0xa2, Buffer.from([0, 1]), str(text)), ok]],
        ['client identifier', [connectWith(text, null, null), ok]],
        ['will topic', [connectWith(Buffer.from('c'), text, null), ok]],
        ['username', [connectWith(Buffer.from('c'), null, text), ok]],
      ];
      for (const [field, parts] of cases) {
        const bytes = Buffer.concat(parts);
        for (const chunks of [[bytes], cut(bytes, [1, 7, bytes.length - 3])]) {
          const out = run(chunks, true);
          expect(out.errors, `${what} in the ${field}`).toHaveLength(1);
          expect(out.errors[0]).toContain(`in the ${field}`);
          expect(out.errors[0]).toBe(`ill-formed UTF-8 in the ${field}: ${text.toString('hex')}`);
          // Everything before the bad packet was read, as mqtt-packet reads it; nothing after.
          const before = parts[0] === connect ? 2 : 0;
          expect(out.packets.map((p) => p.cmd)).toEqual(['connect', 'publish'].slice(0, before));
        }
      }
    }
  });

  it('refuses an UNSUBSCRIBE of a filter MQTT does not allow, as the gate refuses a SUBSCRIBE of one (no Aedes hook sees an UNSUBSCRIBE)', () => {
    const connect = connectPacket({ clientId: 'c' });
    for (const [filter, problem] of [['a/\u0000', 'a topic filter must not contain U+0000'], ['a+/b', '"+" must be a whole level'], ['a/#/b', '"#" must be a whole level and the last one'], ['', 'a topic filter must not be empty']] as const) {
      const out = run([Buffer.concat([connect, encode({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['ok/+', filter] })])], true);
      expect(out.errors).toEqual([`unsubscribe: ${problem}`]);
      expect(out.packets.map((p) => p.cmd)).toEqual(['connect']);
    }
    const fine = run([Buffer.concat([connect, encode({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['ok/+', 'a/#', '+'] })])], true);
    expect(fine.errors).toEqual([]);
    expect(fine.packets[1]).toMatchObject({ cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['ok/+', 'a/#', '+'] });
  });

  it('refuses packet id 0 on a QoS 1 or 2 PUBLISH, a SUBSCRIBE or an UNSUBSCRIBE, and an UNSUBSCRIBE without a filter, which mqtt-packet reads', () => {
    const connect = connectPacket({ clientId: 'c' });
    const ok = encode({ cmd: 'publish', topic: 'x', payload: Buffer.from('1'), qos: 0, retain: false, dup: false });
    const raw = (first: number, bytes: number[]): Buffer => Buffer.concat([fixedHeader(first, bytes.length), Buffer.from(bytes)]);
    const cases: Array<[Buffer, string]> = [
      [raw(0x32, [0, 1, 0x61, 0, 0, 0x78]), 'publish: packet identifier 0 (MQTT-2.3.1-1)'],
      [raw(0x34, [0, 1, 0x61, 0, 0, 0x78]), 'publish: packet identifier 0 (MQTT-2.3.1-1)'],
      [raw(0x82, [0, 0, 0, 1, 0x61, 0]), 'subscribe: packet identifier 0 (MQTT-2.3.1-1)'],
      [raw(0xa2, [0, 0, 0, 1, 0x61]), 'unsubscribe: packet identifier 0 (MQTT-2.3.1-1)'],
      [raw(0xa2, [0, 5]), 'unsubscribe: no topic filter (MQTT-3.10.3-2)'],
    ];
    for (const [bad, error] of cases) {
      const bytes = Buffer.concat([connect, ok, bad, ok]);
      for (const chunks of [[bytes], cut(bytes, [5, bytes.length - 4])]) {
        // mqtt-packet reads each of them without complaint.
        expect(run(chunks, false).errors).toEqual([]);
        const out = run(chunks, true);
        expect(out.errors).toEqual([error]);
        expect(out.packets.map((p) => p.cmd)).toEqual(['connect', 'publish']);
      }
    }
  });

  it('refuses a CONNECT with a password and no user name (MQTT-3.1.2-22), which mqtt-packet reads', () => {
    const str = (t: string): Buffer => Buffer.concat([Buffer.from([0, t.length]), Buffer.from(t)]);
    for (const [name, level] of [['MQTT', 4], ['MQIsdp', 3]] as const) {
      const body = Buffer.concat([str(name), Buffer.from([level, 0x42, 0, 60]), str('c'), str('secret')]);
      const chunks = [Buffer.concat([fixedHeader(0x10, body.length), body])];
      expect(run(chunks, false).errors).toEqual([]);
      expect(run(chunks, true)).toEqual({ packets: [], errors: ['CONNECT: a password without a username (MQTT-3.1.2-22)'] });
    }
  });

  it('reads any MQTT 3.1.1 or 3.1 CONNECT as mqtt-packet does, and what follows it', () => {
    const text = fc.oneof(fc.constantFrom('', 'c', '1000123', 'ü/日本/🚀'), fc.string({ maxLength: 30 }));
    const connect = fc.record({
      protocol: fc.constantFrom(['MQTT', 4] as const, ['MQIsdp', 3] as const, ['MQTT', 5] as const),
      clientId: text, clean: fc.boolean(), keepalive: fc.integer({ min: 0, max: 65_535 }), bridge: fc.boolean(),
      username: fc.option(text, { nil: undefined }), password: fc.option(payload, { nil: undefined }),
      will: fc.option(fc.record({ topic, payload, qos: fc.constantFrom(0, 1, 2), retain: fc.boolean() }), { nil: undefined }),
    }).map(({ protocol, ...c }) => {
      if (protocol[1] === 3 && c.clientId === '') c.clientId = 'c'; // (nor an empty one before 3.1.1)
      // (mqtt-packet will not write an empty client id without a clean session)
      const p: Record<string, unknown> = { cmd: 'connect', protocolId: protocol[0], protocolVersion: protocol[1], clientId: c.clientId, clean: c.clean || c.clientId === '', keepalive: c.keepalive };
      if (c.username !== undefined) p['username'] = c.username;
      if (c.password !== undefined && c.username !== undefined) p['password'] = c.password; // (nor a password without a user name)
      if (c.will) p['will'] = c.will;
      if (c.bridge && protocol[1] !== 5) p['bridgeMode'] = true;
      return p as unknown as Packet;
    });
    fc.assert(fc.property(connect, fc.array(packet, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 6 }), (first, rest, cuts) => {
      const v5 = first.cmd === 'connect' && first.protocolVersion === 5;
      const bytes = Buffer.concat([encode(first), ...(v5 ? [] : rest.map(encode))]);
      const chunks = cut(bytes, cuts);
      const fronted = run(chunks, true);
      expect(fronted).toEqual(run(chunks, false));
      expect(fronted.errors).toEqual([]);
      expect(fronted.packets[0]).toMatchObject({ cmd: 'connect', clientId: (first as { clientId: string }).clientId });
    }), { numRuns: 300 });
  });

  it('keeps nothing of a CONNECT it read but the protocol version mqtt-packet reads later (no password, no will)', () => {
    const parser = mqttPacket.parser() as unknown as MqttPacketParser & NodeJS.EventEmitter;
    frontParser(parser);
    const got: Array<Record<string, unknown>> = [];
    parser.on('packet', (p: Record<string, unknown>) => got.push(p));
    parser.parse(encode({
      cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'dev-1', clean: true, keepalive: 60,
      username: 'dev-1', password: Buffer.from('secret-token'), will: { topic: 'device/dev-1/state', payload: Buffer.from('offline'), qos: 1, retain: true },
    } as Packet));
    expect(got[0]).toMatchObject({ cmd: 'connect', username: 'dev-1', password: Buffer.from('secret-token') });
    expect(parser.settings).toEqual({ protocolVersion: 4 });
    parser.parse(encode({ cmd: 'publish', topic: 'device/dev-1/up/event_occured/2/1', payload: Buffer.from('{}'), qos: 1, messageId: 7, retain: false, dup: false }));
    expect(got[1]).toMatchObject({ cmd: 'publish', qos: 1, messageId: 7, topic: 'device/dev-1/up/event_occured/2/1' });
  });

  it('leaves a CONNECT or SUBSCRIBE it does not fully understand to mqtt-packet: the same packet or error', () => {
    const connect = connectPacket({ clientId: 'c', username: 'u', password: 'p', will: { topic: 'w', payload: 'x' } });
    const body = connect.subarray(2); // after the fixed header (a one-byte Remaining Length)
    const levelAt = 6; // after "MQTT" and its length
    const flagsAt = 7;
    const variant = (f: (b: Buffer) => void, extra = Buffer.alloc(0)): Buffer => {
      const b = Buffer.concat([body, extra]);
      f(b);
      return Buffer.concat([fixedHeader(0x10, b.length), b]);
    };
    const sub = (bodyBytes: number[]): Buffer => Buffer.concat([fixedHeader(0x82, bodyBytes.length), Buffer.from(bodyBytes)]);
    const ok = connectPacket({ clientId: 'c' });
    const cases: Buffer[][] = [
      [variant((b) => { b[levelAt] = 0x84; })], // bridge mode
      [variant((b) => { b[flagsAt]! |= 0x01; })], // reserved flag
      [variant((b) => { b[flagsAt]! |= 0x18; })], // will QoS 3
      [variant((b) => { b[flagsAt]! &= ~0x04; })], // will QoS/retain fields without a will: here only its fields follow
      [variant(() => undefined, Buffer.from([1, 2, 3]))], // bytes after the password
      [variant((b) => { b[b.length - 1] = 9; })], // password running past the packet
      [ok, sub([0, 1])], // no subscription
      [ok, sub([0, 1, 0, 1, 0x61])], // no options byte
      [ok, sub([0, 1, 0, 1, 0x61, 3])], // QoS 3
      [ok, sub([0, 1, 0, 1, 0x61, 0x11])], // reserved option bits
      [ok, sub([0, 1, 0, 9, 0x61, 1])], // topic past the packet
      [ok, sub([0])], // no packet id
    ];
    for (const parts of cases) {
      const bytes = Buffer.concat(parts);
      for (const chunks of [[bytes], cut(bytes, [3, 11])]) {
        const fronted = run(chunks, true);
        expect(fronted).toEqual(run(chunks, false));
      }
    }
  });

  it('fed one byte at a time, still emits every packet once', () => {
    const bytes = Buffer.concat([connectPacket({ clientId: 'c' }), encode({ cmd: 'publish', topic: 't', payload: Buffer.alloc(5000, 1), qos: 1, messageId: 9, retain: false, dup: false })]);
    const chunks = cut(bytes, Array.from({ length: bytes.length }, (_, i) => i));
    expect(run(chunks, true)).toEqual(run(chunks, false));
    expect(run(chunks, true).packets.map((p) => p.cmd)).toEqual(['connect', 'publish']);
  });

  it('leaves malformed packets to mqtt-packet: the same error, nothing after it', () => {
    const connect = connectPacket({ clientId: 'c' });
    const ok = encode({ cmd: 'publish', topic: 'x', payload: Buffer.from('1'), qos: 0, retain: false, dup: false });
    const cases: Buffer[] = [
      Buffer.concat([fixedHeader(0x36, 5), Buffer.from([0, 1, 0x78, 0, 1])]), // QoS 3
      Buffer.concat([fixedHeader(0x30, 3), Buffer.from([0, 9, 0x78])]), // topic longer than the packet
      Buffer.concat([fixedHeader(0x41, 2), Buffer.from([0, 1])]), // PUBACK with reserved flags set
      Buffer.concat([fixedHeader(0xc1, 0)]), // PINGREQ with reserved flags set
      Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), // a Remaining Length of five bytes
    ];
    for (const bad of cases) {
      for (const chunks of [[Buffer.concat([connect, ok, bad, ok])], [connect, ok, bad.subarray(0, 2), Buffer.concat([bad.subarray(2), ok])]]) {
        const fronted = run(chunks, true);
        expect(fronted).toEqual(run(chunks, false));
        expect(fronted.errors).toHaveLength(1);
      }
    }
  });

  it('leaves a DISCONNECT with flags or a body to mqtt-packet: the same packet or error', () => {
    const connect = connectPacket({ clientId: 'c' });
    const ok = encode({ cmd: 'publish', topic: 'x', payload: Buffer.from('1'), qos: 0, retain: false, dup: false });
    for (const odd of [fixedHeader(0xe2, 0), Buffer.concat([fixedHeader(0xe0, 1), Buffer.from([0])]), Buffer.concat([fixedHeader(0xe0, 2), Buffer.from([0, 0])])]) {
      const chunks = [Buffer.concat([connect, ok, odd, ok])];
      expect(run(chunks, true)).toEqual(run(chunks, false));
    }
  });

  it('refuses a QoS 1 PUBLISH too short for its packet id, which mqtt-packet reads from the next packet', () => {
    const connect = connectPacket({ clientId: 'c' });
    const ok = encode({ cmd: 'publish', topic: 'x', payload: Buffer.from('1'), qos: 0, retain: false, dup: false });
    const bad = Buffer.concat([fixedHeader(0x32, 3), Buffer.from([0, 1, 0x78])]);
    const chunks = [Buffer.concat([connect, ok, bad, ok])];
    expect(run(chunks, false).packets[2]).toMatchObject({ cmd: 'publish', topic: 'x', messageId: 0x3004 }); // the next packet's first bytes
    expect(run(chunks, true)).toEqual({ packets: run(chunks, false).packets.slice(0, 2), errors: ['Cannot parse messageId'] });
  });

  it('leaves every packet to mqtt-packet after an MQTT 5 CONNECT (properties follow the topic)', () => {
    const v5 = encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'c', keepalive: 0 });
    const pub = mqttPacket.generate({ cmd: 'publish', topic: 't', payload: Buffer.from('p'), qos: 1, messageId: 3, retain: false, dup: false, properties: { contentType: 'x' } }, { protocolVersion: 5 });
    const chunks = [Buffer.concat([v5, pub])];
    const fronted = run(chunks, true);
    expect(fronted).toEqual(run(chunks, false));
    expect(fronted.packets[1]).toMatchObject({ cmd: 'publish', properties: { contentType: 'x' } });
  });
});
