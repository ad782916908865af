/**
 * The fleet engine's sessions through the real embedded broker, read on the wire: every byte a
 * session hands the broker and every byte the broker writes back is parsed by mqtt-packet (an
 * independent parser), so what is checked is the MQTT each session really speaks: its own
 * CONNECT (did, token, clean session off, keep-alive, will), SUBSCRIBE, QoS 1 packet ids and
 * PUBACKs both ways, commands, resends after a drop, refusals; and a whole simulation gives the
 * same trace with the fleet engine as with an mqtt.js client per device.
 */
import type { BrokerConnection } from '../../src/broker/connection.js';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { topics, type StatePayload } from '../../src/contract/wire.js';
import { FleetEngine } from '../../src/sim/fleet/engine.js';
import type { FleetSession } from '../../src/sim/fleet/session.js';
import { Gauge } from '../../src/sim/waits.js';
import { AppUsers } from '../../src/sim/users.js';
import { CloudClients } from '../../src/sim/cloud-clients.js';
import type { FleetCloudSession } from '../../src/sim/fleet/cloud-session.js';
import { TraceRecorder } from '../../src/sim/trace.js';
import { createSimulation } from '../../src/sim/simulation.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectInProcess, nextMessage, refusalCode, until } from '../helpers/mqtt.js';
import { RIG_START, rigScenario, startRig, type Rig } from '../helpers/sim-rig.js';

/** What crossed one connection, parsed: `up` from the session to the broker, `down` back. */
interface Wire { up: Packet[]; down: Packet[] }

/** Record every packet of every connection the sessions hand the broker, by client id. */
function wiretap(): { tap: (conn: BrokerConnection) => void; byClient: Map<string, Wire[]> } {
  const byClient = new Map<string, Wire[]>();
  const tap = (conn: BrokerConnection): void => {
    const wire: Wire = { up: [], down: [] };
    const upParser = mqttPacket.parser({ protocolVersion: 4 });
    const downParser = mqttPacket.parser({ protocolVersion: 4 });
    upParser.on('packet', (p) => {
      if (p.cmd === 'connect') byClient.set(p.clientId, [...(byClient.get(p.clientId) ?? []), wire]);
      wire.up.push(p);
    });
    downParser.on('packet', (p) => wire.down.push(p));
    const push = conn.push.bind(conn);
    conn.push = (chunk: Buffer | string | null, enc?: BufferEncoding): boolean => {
      if (chunk) upParser.parse(typeof chunk === 'string' ? Buffer.from(chunk, enc) : chunk);
      return push(chunk, enc);
    };
    const write = conn.write.bind(conn) as (chunk: unknown, ...rest: unknown[]) => boolean;
    conn.write = ((chunk: unknown, ...rest: unknown[]): boolean => {
      downParser.parse(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
      return write(chunk, ...rest);
    }) as BrokerConnection['write'];
  };
  return { tap, byClient };
}

const of = <C extends Packet['cmd']>(packets: Packet[], cmd: C): Array<Extract<Packet, { cmd: C }>> =>
  packets.filter((p): p is Extract<Packet, { cmd: C }> => p.cmd === cmd);

let rigs: Rig[] = [];
afterEach(async () => {
  await Promise.all(rigs.map((r) => r.close()));
  rigs = [];
});

async function rig(): Promise<Rig & ReturnType<typeof wiretap> & { gateway: FleetSession; token: string }> {
  const w = wiretap();
  const r = await startRig(rigScenario(), [], { tap: w.tap });
  rigs.push(r);
  await until(() => r.platform.registry.size === r.population.devices.length, 5000, 'every device online');
  const gateway = r.pool.sessions.find((s) => s.children.length > 0) as FleetSession;
  const token = r.fleet.sessionPlans().find((p) => p.device.did === gateway.did)!.token;
  return Object.assign(r, w, { gateway, token });
}

const track = useCleanup();

describe('a fleet session on the wire', () => {
  it('connects as itself: client id, username and password, clean session off, keep-alive, last will', { timeout: 20_000 }, async () => {
    const r = await rig();
    const s = r.gateway;
    const [wire] = r.byClient.get(s.did)!;
    const connect = of(wire!.up, 'connect')[0]!;
    expect(connect).toMatchObject({ protocolId: 'MQTT', protocolVersion: 4, clientId: s.did, username: s.did, clean: false, keepalive: 60 });
    expect(connect.password?.toString()).toBe(r.token);
    expect(connect.will).toMatchObject({ topic: topics.state(s.did), qos: 1, retain: true });
    const will = JSON.parse(connect.will!.payload.toString()) as StatePayload;
    expect(will).toMatchObject({ device_id: s.did, event: 'offline', timestamp: RIG_START });
    expect(of(wire!.down, 'connack')[0]).toMatchObject({ returnCode: 0 });
    // Every session connected with its own credentials: a token of its own, 16 random bytes as hex.
    expect([...r.byClient.keys()].sort()).toEqual(r.pool.sessions.map((x) => x.did).sort());
    const tokens = r.fleet.sessionPlans().map((p) => p.token);
    expect(tokens.every((t) => /^[0-9a-f]{32}$/.test(t))).toBe(true);
    expect(new Set(tokens).size).toBe(tokens.length);
  });

  it('subscribes to its own and its children\'s commands at QoS 1, and its QoS 1 states are acknowledged by id', { timeout: 20_000 }, async () => {
    const r = await rig();
    const s = r.gateway;
    const wire = r.byClient.get(s.did)![0]!;
    // SUBACK and PUBACKs are separate flows: the broker may acknowledge the states before the subscription.
    await until(() => of(wire.down, 'puback').length >= of(wire.up, 'publish').length && of(wire.down, 'suback').length > 0, 5000, 'the PUBACKs and the SUBACK');
    const sub = of(wire.up, 'subscribe')[0]!;
    expect(sub.subscriptions).toEqual([s.device, ...s.children].map((d) => ({ topic: topics.rpcDown(d.did), qos: 1 })));
    expect(of(wire.down, 'suback')[0]).toMatchObject({ messageId: sub.messageId, granted: sub.subscriptions.map(() => 1) });
    const states = of(wire.up, 'publish').filter((p) => p.topic.endsWith('/state'));
    expect(states.map((p) => p.topic)).toEqual([s.device, ...s.children].filter((d) => d.announcesState).map((d) => topics.state(d.did)));
    for (const p of states) expect(p).toMatchObject({ qos: 1, retain: true, dup: false });
    const ids = states.map((p) => p.messageId);
    expect(new Set([...ids, sub.messageId]).size).toBe(ids.length + 1);
    expect(of(wire.down, 'puback').map((p) => p.messageId)).toEqual(ids);
    expect(r.pool.inflight.value).toBe(0);
  });

  it('takes a command for a child as PUBLISH, acknowledges it by id and replies on the child\'s up/rpc', { timeout: 20_000 }, async () => {
    const r = await rig();
    const s = r.gateway;
    const child = s.children.find((c) => c.announcesState) ?? s.children[0]!;
    const wire = r.byClient.get(s.did)![0]!;
    const op = track(await connectInProcess(r.broker, { clientId: 'op', username: 'operator', password: 'rig' }));
    await op.subscribeAsync(topics.rpcUp(child.did), { qos: 1 });
    const reply = nextMessage(op, (t) => t === topics.rpcUp(child.did));
    await op.publishAsync(topics.rpcDown(child.did), JSON.stringify({ id: 7, method: 'get_properties', params: [{ did: child.did, siid: 1, piid: 1 }] }), { qos: 1 });
    const body = JSON.parse((await reply).payload) as { id: number; result: Array<{ did: string; code: number }> };
    expect(body.id).toBe(7);
    expect(body.result[0]).toMatchObject({ did: child.did, code: 0 });
    const command = of(wire.down, 'publish').find((p) => p.topic === topics.rpcDown(child.did))!;
    expect(command.qos).toBe(1);
    await until(() => of(wire.up, 'puback').some((p) => p.messageId === command.messageId), 5000, 'the PUBACK of the command');
  });

  it('keeps its session while away: a QoS 1 command queued by the broker arrives after resume()', { timeout: 20_000 }, async () => {
    const r = await rig();
    const s = r.gateway;
    const op = track(await connectInProcess(r.broker, { clientId: 'op', username: 'operator', password: 'rig' }));
    await op.subscribeAsync(topics.rpcUp(s.did), { qos: 1 });
    s.suspend();
    await until(() => r.pool.connected.value === r.pool.sessions.length - 1, 5000, 'the session down');
    await op.publishAsync(topics.rpcDown(s.did), JSON.stringify({ id: 9, method: 'get_properties', params: [{ did: s.did, siid: 1, piid: 1 }] }), { qos: 1 });
    const reply = nextMessage(op, (t) => t === topics.rpcUp(s.did));
    await s.resume(5000);
    const wires = r.byClient.get(s.did)!;
    expect(wires).toHaveLength(2);
    expect(of(wires[1]!.up, 'connect')[0]).toMatchObject({ clientId: s.did, clean: false });
    expect(of(wires[1]!.down, 'connack')[0]).toMatchObject({ sessionPresent: true });
    // The command came with the session; the reply waits in the offline buffer until the session is announced.
    await until(() => of(wires[1]!.down, 'publish').some((p) => p.topic === topics.rpcDown(s.did)), 5000, 'the queued command');
    s.goOnline();
    expect(JSON.parse((await reply).payload)).toMatchObject({ id: 9 });
  });

  it('sends an unacknowledged QoS 1 publish again after a drop, same id, DUP set', { timeout: 20_000 }, async () => {
    const r = await rig();
    const s = r.gateway;
    const topic = topics.eventOccured(s.did, 2, 1);
    s.publish(topic, '{"params":{"seq":1}}', { qos: 1, retain: false });
    s.drop(); // before the broker could read it, let alone acknowledge it
    await s.whenConnected(5000);
    const [first, second] = r.byClient.get(s.did)!.slice(-2) as [Wire, Wire];
    const sent = of(first.up, 'publish').filter((p) => p.topic === topic);
    const again = of(second.up, 'publish').filter((p) => p.topic === topic);
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({ qos: 1, dup: true, messageId: sent[0]?.messageId ?? again[0]!.messageId });
    expect(again[0]!.payload.toString()).toBe('{"params":{"seq":1}}');
    await until(() => of(second.down, 'puback').some((p) => p.messageId === again[0]!.messageId), 5000, 'its PUBACK');
    expect(s.reconnectAttempts).toBe(1);
  });

  it('keeps its client id: another device\'s or the operator\'s CONNECT with its did is refused, and it stays up', { timeout: 20_000 }, async () => {
    const r = await rig();
    const s = r.gateway;
    const other = r.fleet.sessionPlans().find((p) => p.device.did !== s.did)!;
    // The broker's rule (issue 14): a device's did is its own client id; CONNACK 2 for anyone else.
    expect(await refusalCode(connectInProcess(r.broker, { clientId: s.did, username: other.device.did, password: other.token, clean: false }))).toBe(2);
    expect(await refusalCode(connectInProcess(r.broker, { clientId: s.did, username: 'operator', password: 'rig' }))).toBe(2);
    expect(s.state).toBe('connected');
    expect(r.byClient.get(s.did)).toHaveLength(1);
    expect(s.reconnectAttempts).toBe(0);
    // Still served: a command reaches it and it answers.
    const op = track(await connectInProcess(r.broker, { clientId: 'op', username: 'operator', password: 'rig' }));
    await op.subscribeAsync(topics.rpcUp(s.did), { qos: 1 });
    const reply = nextMessage(op, (t) => t === topics.rpcUp(s.did));
    await op.publishAsync(topics.rpcDown(s.did), JSON.stringify({ id: 11, method: 'get_properties', params: [{ did: s.did, siid: 1, piid: 1 }] }), { qos: 1 });
    expect(JSON.parse((await reply).payload)).toMatchObject({ id: 11 });
  });

  it('is refused with the broker\'s reason when its token is wrong, and nothing else is started', { timeout: 20_000 }, async () => {
    const r = await rig();
    const plan = r.fleet.sessionPlans()[0]!;
    const engine = new FleetEngine({ attach: (conn) => r.broker.serveInProcess(conn), clock: r.scheduler, trace: new TraceRecorder(), inflight: new Gauge() });
    const bad = engine.create(plan.device, [], 'not-the-token');
    await expect(engine.connectAll([bad], 10)).rejects.toThrow(new RegExp(`device ${plan.device.did}: Connection refused: (Bad username or password|Not authorized)`));
    expect(bad.state).toBe('ended');
    engine.close();
  });
});

describe('an app user\'s fleet session on the wire', () => {
  /** The rig's fleet with its first app user's client as a session of the same engine. */
  async function withApp(): Promise<{ r: Awaited<ReturnType<typeof rig>>; apps: AppUsers; user: ReturnType<Rig['fleet']['appUsers']>[number]; session: FleetCloudSession; wire: () => Wire[] }> {
    const r = await rig();
    const user = r.fleet.appUsers().find((u) => u.dids.length > 0)!;
    const apps = new AppUsers({ kind: 'fleet', engine: r.pool.fleetEngine! }, r.scheduler);
    track({ close: () => apps.close() });
    await apps.connectAll([user]);
    const session = apps.connections()[0] as FleetCloudSession;
    return { r, apps, user, session, wire: () => r.byClient.get(`app-${user.uid}`) ?? [] };
  }

  it('connects as the user (client id, username, token, clean session, no will) and subscribes to its homes\' replies at QoS 1', { timeout: 20_000 }, async () => {
    const { user, session, wire } = await withApp();
    expect(session.connected).toBe(true);
    const [w] = wire();
    const connect = of(w!.up, 'connect')[0]!;
    expect(connect).toMatchObject({ protocolId: 'MQTT', protocolVersion: 4, clientId: `app-${user.uid}`, username: `app:${user.uid}`, clean: true, keepalive: 60 });
    expect(connect.password?.toString()).toBe(user.token);
    expect(connect.will).toBeUndefined();
    expect(of(w!.down, 'connack')[0]).toMatchObject({ returnCode: 0, sessionPresent: false });
    const sub = of(w!.up, 'subscribe')[0]!;
    expect(sub.subscriptions).toEqual(user.dids.map((did) => ({ topic: topics.rpcUp(did), qos: 1 })));
    // connectAll resolved only once the subscription was in place.
    expect(of(w!.down, 'suback')[0]).toMatchObject({ messageId: sub.messageId, granted: user.dids.map(() => 1) });
  });

  it('commands a device of its home and opens app sessions, QoS 1 both ways, each packet acknowledged by its id', { timeout: 20_000 }, async () => {
    const { r, apps, user, wire } = await withApp();
    const did = user.dids.find((d) => r.pool.sessions.some((s) => s.did === d))!;
    const watcher = track(await connectInProcess(r.broker, { clientId: 'watch', username: 'operator', password: 'rig' }));
    await watcher.subscribeAsync('app/+/session', { qos: 1 });
    const opened = nextMessage(watcher, (t) => t === `app/${user.uid}/session`);
    await apps.openSession(user.uid);
    expect(JSON.parse((await opened).payload)).toMatchObject({ uid: user.uid, event: 'open', home: user.homeId, ts: RIG_START });
    const res = await apps.command(user.uid, did, 'get_properties', [{ did, siid: 1, piid: 1 }]);
    expect(res).toMatchObject({ id: `${user.uid}-1`, result: [{ did, siid: 1, piid: 1, code: 0 }] });
    expect(apps.counters).toMatchObject({ appSessions: 1, appCommands: 1, commandErrors: 0, unacknowledgedSessions: 0 });
    const w = wire()[0]!;
    const up = of(w.up, 'publish');
    expect(up.map((p) => [p.topic, p.qos, p.retain])).toEqual([[`app/${user.uid}/session`, 1, false], [topics.rpcDown(did), 1, false]]);
    await until(() => of(w.down, 'puback').length === 2, 5000, 'both PUBACKs');
    expect(of(w.down, 'puback').map((p) => p.messageId)).toEqual(up.map((p) => p.messageId));
    // The reply came down at QoS 1 and the session acknowledged it by its id.
    const reply = of(w.down, 'publish').find((p) => p.topic === topics.rpcUp(did))!;
    expect(reply.qos).toBe(1);
    await until(() => of(w.up, 'puback').some((p) => p.messageId === reply.messageId), 5000, 'the PUBACK of the reply');
  });

  it('after a drop, connects again by itself, subscribes again, and sends its unacknowledged publish again with DUP set', { timeout: 20_000 }, async () => {
    const { r, apps, session, user, wire } = await withApp();
    let closes = 0;
    let connects = 0;
    session.on('close', () => closes++);
    session.on('connect', () => connects++);
    const acked = session.publish(`app/${user.uid}/session`, '{"n":1}');
    session.link!.destroy(); // before the broker could read it
    expect(session.connected).toBe(false);
    await acked;
    expect([closes, connects, session.connects]).toEqual([1, 1, 2]);
    const [first, second] = wire() as [Wire, Wire];
    // Handed to the first connection, never acknowledged on it: the broker had not read it.
    const sent = of(first.up, 'publish');
    expect(of(first.down, 'puback')).toHaveLength(0);
    expect(of(second.up, 'subscribe')[0]!.subscriptions).toEqual(user.dids.map((did) => ({ topic: topics.rpcUp(did), qos: 1 })));
    const again = of(second.up, 'publish');
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({ topic: `app/${user.uid}/session`, qos: 1, dup: true, messageId: sent[0]?.messageId ?? again[0]!.messageId });
    expect(of(second.down, 'puback').map((p) => p.messageId)).toContain(again[0]!.messageId);
    // Still served on the new subscription: a command after the reconnection is answered.
    const did = user.dids.find((d) => r.pool.sessions.some((s) => s.did === d))!;
    expect(session.connected).toBe(true);
    await expect(apps.command(user.uid, did, 'get_properties', [{ did, siid: 1, piid: 1 }])).resolves.toMatchObject({ result: [{ did, code: 0 }] });
  });

  it('is refused with the broker\'s reason when its token is wrong, and connectAll says which user', { timeout: 20_000 }, async () => {
    const r = await rig();
    const user = r.fleet.appUsers()[0]!;
    const apps = new AppUsers({ kind: 'fleet', engine: r.pool.fleetEngine! }, r.scheduler);
    track({ close: () => apps.close() });
    await expect(apps.connectAll([{ ...user, token: 'not-the-token' }])).rejects.toThrow(new RegExp(`app user ${user.uid}: Connection refused: (Bad username or password|Not authorized)`));
  });
});

describe('the operator as a fleet session', () => {
  it('connects as operator with a clean session, subscribes to every device\'s replies, and its commands are answered', { timeout: 20_000 }, async () => {
    const r = await rig();
    const clients = new CloudClients();
    track({ close: () => clients.closeOperator() });
    await clients.connectOperatorSession(r.pool.fleetEngine!, 'aiot-sim-operator-test', 'rig');
    expect(clients.operatorClient).toBeNull();
    const [w] = r.byClient.get('aiot-sim-operator-test')!;
    expect(of(w!.up, 'connect')[0]).toMatchObject({ clientId: 'aiot-sim-operator-test', username: 'operator', clean: true });
    expect(of(w!.up, 'connect')[0]!.will).toBeUndefined();
    expect(of(w!.up, 'subscribe')[0]!.subscriptions).toEqual([{ topic: 'device/+/up/rpc', qos: 1 }]);
    const s = r.gateway;
    const child = s.children[0]!;
    const res = await clients.operator!.request(child.did, 'get_properties', [{ did: child.did, siid: 1, piid: 1 }], 5000);
    expect(res).toMatchObject({ id: 1, result: [{ did: child.did, code: 0 }] });
    // A wrong password is refused with the broker's reason, naming the operator.
    const other = new CloudClients();
    await expect(other.connectOperatorSession(r.pool.fleetEngine!, 'aiot-sim-operator-bad', 'not-the-token')).rejects.toThrow(/the operator: Connection refused/);
  });
});

describe('the fleet engine\'s keep-alive', () => {
  it('sends PINGREQ for an idle session, so the broker keeps it past 1.5 keep-alives', { timeout: 30_000 }, async () => {
    const r = await rig();
    const plan = r.fleet.sessionPlans()[1]!;
    const w = wiretap();
    // The rig's session of this device goes, so that this engine's takes its client id.
    await r.pool.sessions[1]!.stop();
    const engine = new FleetEngine({
      attach: (conn) => { w.tap(conn); return r.broker.serveInProcess(conn); },
      clock: r.scheduler, trace: new TraceRecorder(), inflight: new Gauge(), keepaliveSeconds: 2,
    });
    const s = engine.create(plan.device, plan.children, plan.token);
    await engine.connectAll([s], 1);
    const gone: string[] = [];
    r.broker.on('clientGone', (info) => gone.push(info.clientId));
    const wire = w.byClient.get(s.did)![0]!;
    expect(of(wire.up, 'connect')[0]).toMatchObject({ keepalive: 2 });
    // Idle: nothing but pings for 3 keep-alives (the broker closes a session silent for 1.5).
    await until(() => of(wire.up, 'pingreq').length >= 3, 10_000, 'three PINGREQs');
    expect(of(wire.down, 'pingresp').length).toBeGreaterThanOrEqual(2);
    expect(s.state).toBe('connected');
    expect(gone).not.toContain(s.did);
    await s.stop();
    engine.close();
  });
});

describe('the fleet engine in a whole simulation', () => {
  it('gives the same trace and app activity as an mqtt.js client per device and per app user, through every fault type', { timeout: 120_000 }, async () => {
    const digests: string[] = [];
    const activity: unknown[] = [];
    // Without a WebSocket listener the app users connect in process: as fleet sessions beside the
    // devices' (in-process), or as mqtt.js clients (in-process-clients); the operator likewise.
    for (const deviceTransport of ['in-process', 'in-process-clients'] as const) {
      const sim = await createSimulation({ scenario: 'scenarios/rough-night.yaml', speed: 'fast', duration: '3h', broker: { mqttPort: null, wsPort: null }, deviceTransport });
      const report = await sim.finished;
      expect(report.faults.length).toBeGreaterThanOrEqual(7);
      expect(report.traceMessages).toBeGreaterThan(1000);
      expect(report.activity.appSessions).toBeGreaterThan(0);
      expect(report.activity.appCommands).toBeGreaterThan(0);
      // The operator's work: automations and the voice cloud's commands.
      expect(report.activity.automations + report.activity.voiceCommands).toBeGreaterThan(0);
      digests.push(report.traceDigest);
      activity.push(report.activity);
    }
    expect(digests[0]).toBe(digests[1]);
    expect(activity[0]).toEqual(activity[1]);
  });
});
