/**
 * Each fault handler on its own, on the virtual clock: real device sessions on the real embedded
 * broker (in-process pipes), the platform watching, no households or app clients. Where its
 * sessions are at the start and at the end, what it announces when, and what its record says.
 * (tests/integration/faults.test.ts runs them end to end in whole simulations.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { StatePayload } from '../../src/contract/wire.js';
import type { Device } from '../../src/device/device.js';
import type { FaultNotice } from '../../src/sim/faults.js';
import type { DeviceSession } from '../../src/sim/session.js';
import { until } from '../helpers/mqtt.js';
import { RIG_START, rigScenario, startRig, type Rig } from '../helpers/sim-rig.js';

const MIN = 60_000;
const iso = (t: number): string => new Date(t).toISOString();

let rigs: Rig[] = [];
afterEach(async () => {
  await Promise.all(rigs.map((r) => r.close()));
  rigs = [];
});

async function rig(faults: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}): Promise<Rig & { notices: FaultNotice[]; total: number }> {
  const r = await startRig(rigScenario(extra), faults, { live: true });
  rigs.push(r);
  const notices: FaultNotice[] = [];
  r.faults.on('fault', (n) => notices.push(n));
  const total = r.population.devices.length;
  await until(() => r.platform.registry.size === total, 5000, 'every device online at the platform');
  return Object.assign(r, { notices, total });
}

/** The "offline" states the broker passed on, by did: `timestamp` tells a device's own (now) from a will (its session's start). */
function offlineStates(r: Rig): Map<string, number[]> {
  const out = new Map<string, number[]>();
  r.broker.on('message', (topic, payload) => {
    if (!topic.endsWith('/state')) return;
    const body = JSON.parse(payload.toString()) as StatePayload;
    if (body.event === 'offline') out.set(body.device_id, [...(out.get(body.device_id) ?? []), body.timestamp]);
  });
  return out;
}

const phases = (n: FaultNotice[]): Array<[string, number]> => n.map((x) => [x.phase, x.ts]);
const stateOf = (sessions: readonly DeviceSession[]): string[] => [...new Set(sessions.map((s) => s.state))];

describe('outage handlers', () => {
  it('devices-offline: a share of the sessions lose their network (wills fire) and come back together', { timeout: 30_000 }, async () => {
    const r = await rig([{ type: 'devices-offline', share: 0.5, at: '10m', duration: '5m' }]);
    const offline = offlineStates(r);
    const rec = r.faults.recordsOf('devices-offline')[0]!;
    const sessions = r.pool.sessions;
    expect(rec).toMatchObject({ type: 'devices-offline', from: iso(RIG_START + 10 * MIN), to: iso(RIG_START + 15 * MIN), sessions: Math.round(sessions.length / 2) });

    await r.advance(10 * MIN);
    const down = sessions.filter((s) => s.state === 'suspended');
    expect(down).toHaveLength(rec.sessions);
    expect(stateOf(sessions.filter((s) => !down.includes(s)))).toEqual(['connected']);
    expect(phases(r.notices)).toEqual([['start', RIG_START + 10 * MIN]]);
    expect(rec.details).toBeUndefined();
    // No DISCONNECT: the broker publishes each session's will, stamped with when the session started.
    await until(() => r.platform.registry.size === r.total - r.devicesOf(down), 5000, 'the platform to count the victims offline');
    expect(down.map((s) => offline.get(s.did))).toEqual(down.map(() => [RIG_START]));

    await r.advance(5 * MIN);
    expect(stateOf(sessions)).toEqual(['connected']);
    expect(phases(r.notices)).toEqual([['start', RIG_START + 10 * MIN], ['end', RIG_START + 15 * MIN]]);
    expect(rec.details).toMatchObject({ notBack: 0, onlineBefore: r.total, onlineAfter: r.total, onlineLowest: r.total - r.devicesOf(down) });
    expect(rec.details!.reconnectMs).toBeGreaterThanOrEqual(0);
    expect(Date.parse(rec.details!.onlineLowestAt!)).toBeLessThanOrEqual(RIG_START + 10 * MIN);
    expect(rec.details!.onlineBackAt).toBe(iso(RIG_START + 15 * MIN));
  });

  it('region-outage: every session of the region, and only those', { timeout: 30_000 }, async () => {
    const r = await rig([{ type: 'region-outage', region: 'es', at: '5m', duration: '10m' }]);
    const inSpain = r.pool.sessions.filter((s) => r.fleet.regionOf(s.did) === 'es');
    const elsewhere = r.pool.sessions.filter((s) => !inSpain.includes(s));
    expect(inSpain.length).toBeGreaterThan(0);
    expect(elsewhere.length).toBeGreaterThan(0);
    const rec = r.faults.recordsOf('region-outage')[0]!;
    expect(rec).toMatchObject({ region: 'es', sessions: inSpain.length });

    await r.advance(5 * MIN);
    expect(stateOf(inSpain)).toEqual(['suspended']);
    expect(stateOf(elsewhere)).toEqual(['connected']);
    await r.advance(10 * MIN);
    expect(stateOf(r.pool.sessions)).toEqual(['connected']);
    expect(rec.details).toMatchObject({ notBack: 0, onlineBefore: r.total, onlineAfter: r.total, onlineLowest: r.total - r.devicesOf(inSpain) });
  });

  it('gateway-reboot: the hubs drop with their children, counted in details', { timeout: 30_000 }, async () => {
    const r = await rig([{ type: 'gateway-reboot', at: '5m', duration: '1m' }]);
    const gateways = r.pool.sessions.filter((s) => s.device.category === 'gateway');
    const children = gateways.reduce((n, s) => n + s.children.length, 0);
    expect(children).toBeGreaterThan(0);
    const rec = r.faults.recordsOf('gateway-reboot')[0]!;
    // Known as the fault is scheduled.
    expect(rec).toMatchObject({ sessions: gateways.length, details: { children } });

    await r.advance(5 * MIN);
    expect(stateOf(gateways)).toEqual(['suspended']);
    await until(() => r.platform.registry.size === r.total - gateways.length - children, 5000, 'hubs and children offline');
    await r.advance(MIN);
    expect(stateOf(r.pool.sessions)).toEqual(['connected']);
    expect(rec.details).toMatchObject({ children, notBack: 0, onlineAfter: r.total, onlineLowest: r.total - gateways.length - children });
  });
});

describe('broker-restart', () => {
  it('takes the broker down and every session with it; they find it again and are announced together', { timeout: 30_000 }, async () => {
    const r = await rig([
      { type: 'broker-restart', at: '10m', duration: '5m' },
      // Both fall while the broker is down: skipped, and said why.
      { type: 'broker-restart', at: '12m', duration: '1m' },
      { type: 'reconnect-storm', at: '12m' },
      { type: 'slow-consumer', at: '12m', duration: '1m' },
    ]);
    const [rec, second] = r.faults.recordsOf('broker-restart');
    const sessions = r.pool.sessions;
    expect(rec).toMatchObject({ sessions: sessions.length, from: iso(RIG_START + 10 * MIN), to: iso(RIG_START + 15 * MIN) });

    await r.advance(10 * MIN);
    expect(r.broker.isDown).toBe(true);
    // Every session noticed before the clock moved on; each retries by itself.
    expect(r.pool.connected.value).toBe(0);
    expect(stateOf(sessions)).toEqual(['connecting']);
    expect(rec!.details).toEqual({ onlineBefore: r.total, onlineDuring: 0 });
    expect(phases(r.notices)).toEqual([['start', RIG_START + 10 * MIN]]);

    await r.advance(2 * MIN);
    expect(second!.details).toEqual({ skipped: 'the broker is already down' });
    expect(r.faults.recordsOf('reconnect-storm')[0]!.details).toEqual({ skipped: 'the broker is down' });
    expect(r.faults.recordsOf('slow-consumer')[0]!.details).toEqual({ skipped: 'the broker is down' });

    await r.advance(3 * MIN);
    expect(r.broker.isDown).toBe(false);
    expect(stateOf(sessions)).toEqual(['connected']);
    expect(r.pool.connected.value).toBe(sessions.length);
    expect(r.notices.map((n) => `${n.phase} ${n.record.type} ${n.index}`)).toEqual(['start broker-restart 0', 'end broker-restart 0']);
    expect(rec!.details).toMatchObject({ onlineBefore: r.total, onlineDuring: 0, notBack: 0, boundMs: r.reconnectBoundMs, onlineAfter: r.total, onlineLowest: 0 });
    expect(rec!.details!.reconnectAttempts).toBeGreaterThanOrEqual(sessions.length);
    expect(rec!.details!.onlineMs).toBeGreaterThanOrEqual(rec!.details!.reconnectMs!);
    expect(rec!.details!.onlineBackAt).toBe(iso(RIG_START + 15 * MIN));
    expect(r.broker.counters.restarts).toBe(1);
  });
});

describe('reconnect-storm', () => {
  it('drops a share at once; they retry with backoff and are announced together, within one step', { timeout: 30_000 }, async () => {
    const r = await rig([{ type: 'reconnect-storm', share: 0.5, at: '5m' }]);
    const offline = offlineStates(r);
    const rec = r.faults.recordsOf('reconnect-storm')[0]!;
    expect(rec.from).toBe(rec.to);
    await r.advance(5 * MIN);
    expect(stateOf(r.pool.sessions)).toEqual(['connected']);
    expect(phases(r.notices)).toEqual([['start', RIG_START + 5 * MIN], ['end', RIG_START + 5 * MIN]]);
    expect(rec.details).toMatchObject({ notBack: 0, boundMs: r.reconnectBoundMs, onlineBefore: r.total, onlineAfter: r.total });
    expect(rec.details!.reconnectAttempts).toBeGreaterThanOrEqual(rec.sessions);
    const dropped = r.pool.sessions.filter((s) => s.reconnectAttempts > 0);
    expect(dropped).toHaveLength(rec.sessions);
    // Dropped without DISCONNECT: their wills (stamped at the start) reached the broker.
    await until(() => dropped.every((s) => offline.has(s.did)), 5000, 'the wills of the dropped sessions');
    expect(dropped.map((s) => offline.get(s.did)![0])).toEqual(dropped.map(() => RIG_START));
  });
});

describe('device-churn', () => {
  it('sessions leave cleanly one at a time over the span and come back offlineFor later', { timeout: 30_000 }, async () => {
    const r = await rig([{ type: 'device-churn', share: 0.5, at: '10m', duration: '10m', offlineFor: '5m' }]);
    const offline = offlineStates(r);
    const rec = r.faults.recordsOf('device-churn')[0]!;
    expect(rec).toMatchObject({ to: iso(RIG_START + 25 * MIN), details: { left: 0, returned: 0 } });
    await r.advance(10 * MIN);
    expect(phases(r.notices)).toEqual([['start', RIG_START + 10 * MIN]]);

    await r.advance(10 * MIN);
    const d = rec.details!;
    expect(d.left).toBe(rec.sessions);
    expect(r.pool.sessions.filter((s) => s.state === 'left')).toHaveLength(d.left - d.returned);
    await r.advance(5 * MIN);
    expect(d).toEqual({ left: rec.sessions, returned: rec.sessions });
    expect(stateOf(r.pool.sessions)).toEqual(['connected']);
    expect(phases(r.notices)).toEqual([['start', RIG_START + 10 * MIN], ['end', RIG_START + 25 * MIN]]);
    // They said "offline" themselves, as they left (no will): stamped within the span.
    const said = [...offline.values()].flat();
    expect(said.length).toBeGreaterThanOrEqual(rec.sessions);
    for (const ts of said) {
      expect(ts).toBeGreaterThanOrEqual(RIG_START + 10 * MIN);
      expect(ts).toBeLessThan(RIG_START + 20 * MIN);
    }
  });
});

describe('ota-rollout', () => {
  const firmwareOf = (d: Device): unknown => {
    const piid = d.model.services.find((s) => s.siid === 1)!.properties.find((p) => p.name === 'firmware-revision')!.piid;
    return d.store.get(`1.${piid}`);
  };

  it('updates every device in waves, each wave rebooting for rebootFor', { timeout: 30_000 }, async () => {
    const r = await rig([{ type: 'ota-rollout', firmware: '2.0.0_0200', at: '10m', waves: 2, interval: '5m', rebootFor: '1m' }]);
    const rec = r.faults.recordsOf('ota-rollout')[0]!;
    const sessions = r.pool.sessions;
    expect(rec).toMatchObject({ sessions: sessions.length, to: iso(RIG_START + 16 * MIN), details: { firmware: '2.0.0_0200', waves: 2, updatedDevices: 0 } });
    const [first, second] = [sessions.filter((_, k) => k % 2 === 0), sessions.filter((_, k) => k % 2 === 1)];

    await r.advance(10 * MIN);
    expect(stateOf(first)).toEqual(['suspended']);
    expect(stateOf(second)).toEqual(['connected']);
    expect(rec.details!.updatedDevices).toBe(r.devicesOf(first));
    expect(first.flatMap((s) => [s.device, ...s.children]).every((d) => firmwareOf(d) === '2.0.0_0200')).toBe(true);
    expect(second.some((s) => firmwareOf(s.device) === '2.0.0_0200')).toBe(false);
    await r.advance(MIN);
    expect(stateOf(sessions)).toEqual(['connected']);

    await r.advance(4 * MIN);
    expect(stateOf(second)).toEqual(['suspended']);
    await r.advance(MIN);
    expect(stateOf(sessions)).toEqual(['connected']);
    expect(rec.details).toEqual({ firmware: '2.0.0_0200', waves: 2, updatedDevices: r.total });
    expect(phases(r.notices)).toEqual([['start', RIG_START + 10 * MIN], ['end', RIG_START + 16 * MIN]]);
  });

  it('of one model: only its devices update, children through their gateway, which reboots with them', { timeout: 30_000 }, async () => {
    const r = await rig([{ type: 'ota-rollout', firmware: '1.9.0_0042', model: 'lumi.sensor_motion.v2', at: '5m', waves: 1, rebootFor: '1m' }], {
      population: { homes: 12, regions: { es: 1, cn: 1 }, devicesPerHome: { '3': 1, '5': 1 }, mix: { 'lumi.sensor_motion.v2': 2, plug: 1, sensor: 1 } },
    });
    const motion = [...r.fleet.devices.values()].filter((d) => d.model.model === 'lumi.sensor_motion.v2');
    expect(motion.length).toBeGreaterThan(0);
    const hubs = r.pool.sessions.filter((s) => s.children.some((c) => motion.includes(c)));
    const rec = r.faults.recordsOf('ota-rollout')[0]!;
    expect(rec.sessions).toBe(hubs.length);
    await r.advance(5 * MIN);
    expect(stateOf(hubs)).toEqual(['suspended']);
    expect(stateOf(r.pool.sessions.filter((s) => !hubs.includes(s)))).toEqual(['connected']);
    await r.advance(MIN);
    expect(rec.details!.updatedDevices).toBe(motion.length);
    expect(motion.every((d) => firmwareOf(d) === '1.9.0_0042')).toBe(true);
    expect([...r.fleet.devices.values()].filter((d) => !motion.includes(d)).some((d) => firmwareOf(d) === '1.9.0_0042')).toBe(false);
  });
});

describe('slow-consumer', () => {
  it('an observer of device/# stops reading for the span; what reached it afterwards is recorded', { timeout: 30_000 }, async () => {
    const r = await rig([{ type: 'slow-consumer', at: '5m', duration: '10m' }]);
    const rec = r.faults.recordsOf('slow-consumer')[0]!;
    expect(rec.sessions).toBe(0);
    const clients = r.broker.connectedClients;
    await r.advance(5 * MIN);
    expect(phases(r.notices)).toEqual([['start', RIG_START + 5 * MIN]]);
    await until(() => r.broker.connectedClients === clients + 1, 5000, 'the slow consumer connected');
    await r.advance(10 * MIN);
    expect(phases(r.notices)).toEqual([['start', RIG_START + 5 * MIN], ['end', RIG_START + 15 * MIN]]);
    expect(rec.details).toMatchObject({ cutOffByBroker: false });
    expect(rec.details!.publishesRead).toBeGreaterThan(0);
    expect(rec.details!.bytesRead).toBeGreaterThan(rec.details!.publishesRead!);
    expect(rec.details!.emitterMaxQueuedDuring).toBeGreaterThanOrEqual(0);
    await until(() => r.broker.connectedClients === clients, 5000, 'the slow consumer gone');
  });
});
