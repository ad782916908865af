/**
 * Device sessions and their pool over the real embedded broker: each way a session comes down
 * (stop, kill, drop, suspend, leave), the state it is left in, what the broker passes on (the
 * device's own "offline" or its will), whether it comes back; and the pool's counts and waits.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { StatePayload } from '../../src/contract/wire.js';
import type { DeviceSession } from '../../src/sim/session.js';
import { until } from '../helpers/mqtt.js';
import { RIG_START, rigScenario, startRig, type Rig } from '../helpers/sim-rig.js';

const MIN = 60_000;

let rigs: Rig[] = [];
afterEach(async () => {
  await Promise.all(rigs.map((r) => r.close()));
  rigs = [];
});

interface StateSeen { did: string; event: string; ts: number }

/** A rig whose clock has moved on 5 minutes since the sessions connected (their wills say RIG_START). */
async function rig(): Promise<Rig & { states: StateSeen[]; total: number; gateway: DeviceSession }> {
  const r = await startRig(rigScenario());
  rigs.push(r);
  const states: StateSeen[] = [];
  r.broker.on('message', (topic, payload) => {
    if (!topic.endsWith('/state')) return;
    const b = JSON.parse(payload.toString()) as StatePayload;
    states.push({ did: b.device_id, event: b.event, ts: b.timestamp });
  });
  const total = r.population.devices.length;
  await until(() => r.platform.registry.size === total, 5000, 'every device online');
  await r.advance(5 * MIN);
  const gateway = r.pool.sessions.find((s) => s.children.length > 0)!;
  expect(gateway).toBeDefined();
  return Object.assign(r, { states, total, gateway });
}

/** The dids of a session that say online/offline: itself and its children, but BLE children (the cloud has no state for them). */
const dids = (s: DeviceSession): string[] => [s.device, ...s.children].filter((d) => d.announcesState).map((d) => d.did);
const seen = (r: { states: StateSeen[] }, s: DeviceSession, event: string): StateSeen[] => r.states.filter((x) => dids(s).includes(x.did) && x.event === event);
const NOW = RIG_START + 5 * MIN;

describe('a device session comes down', () => {
  it('stop: children and self say "offline" (now), then DISCONNECT; it has ended', { timeout: 20_000 }, async () => {
    const r = await rig();
    const s = r.gateway;
    await s.stop();
    expect(s.state).toBe('ended');
    expect(r.pool.connected.value).toBe(r.pool.sessions.length - 1);
    await until(() => seen(r, s, 'offline').length === dids(s).length, 5000, 'offline states');
    expect(seen(r, s, 'offline').map((x) => [x.did, x.ts])).toEqual([...s.children, s.device].filter((d) => d.announcesState).map((d) => [d.did, NOW]));
    await expect(s.whenConnected(100)).rejects.toThrow(/session stopped/);
  });

  it('kill: no goodbye, the broker publishes the will (stamped at the session start); it never comes back', { timeout: 20_000 }, async () => {
    const r = await rig();
    const s = r.gateway;
    s.kill();
    expect(s.state).toBe('ended');
    await until(() => seen(r, s, 'offline').length > 0, 5000, 'the will');
    expect(seen(r, s, 'offline')).toEqual([{ did: s.device.did, event: 'offline', ts: RIG_START }]);
    expect(r.pool.connected.value).toBe(r.pool.sessions.length - 1);
    expect(s.reconnectAttempts).toBe(0);
  });

  it('drop: the will fires, and it reconnects by itself (backoff) and announces itself', { timeout: 20_000 }, async () => {
    const r = await rig();
    const s = r.gateway;
    s.drop();
    expect(s.state).toBe('connecting');
    await s.whenConnected(5000);
    expect(s.state).toBe('connected');
    expect(s.reconnectAttempts).toBeGreaterThanOrEqual(1);
    // The pool's total is counted as attempts happen, and agrees with the sessions' own counts.
    expect(r.pool.reconnectAttempts).toBe(r.pool.sessions.reduce((n, x) => n + x.reconnectAttempts, 0));
    expect(seen(r, s, 'offline')).toEqual([{ did: s.device.did, event: 'offline', ts: RIG_START }]);
    await until(() => seen(r, s, 'online').filter((x) => x.ts === NOW).length === dids(s).length, 5000, 'its own announcement');
    expect(r.pool.connected.value).toBe(r.pool.sessions.length);
  });

  it('counts reconnection attempts as they happen, for mqtt.js sessions as for the fleet\'s', { timeout: 20_000 }, async () => {
    const r = await startRig(rigScenario(), [], { clients: true });
    rigs.push(r);
    const s = r.pool.sessions.find((x) => x.children.length > 0)!;
    expect(r.pool.reconnectAttempts).toBe(0);
    s.drop();
    await s.whenConnected(5000);
    expect(s.reconnectAttempts).toBeGreaterThanOrEqual(1);
    expect(r.pool.reconnectAttempts).toBe(r.pool.sessions.reduce((n, x) => n + x.reconnectAttempts, 0));
  });

  it('suspend: the will fires and it stays down until resume(); the caller announces it', { timeout: 20_000 }, async () => {
    const r = await rig();
    const s = r.gateway;
    s.suspend();
    expect(s.state).toBe('suspended');
    expect(s.held).toBe(true);
    s.drop(); // held down by the fault: another way down changes nothing
    expect(s.state).toBe('suspended');
    await until(() => seen(r, s, 'offline').length > 0, 5000, 'the will');
    expect(seen(r, s, 'offline')).toEqual([{ did: s.device.did, event: 'offline', ts: RIG_START }]);
    expect(r.pool.connected.value).toBe(r.pool.sessions.length - 1);

    await s.resume(5000);
    expect(s.state).toBe('connected');
    expect(s.reconnectAttempts).toBe(0);
    expect(seen(r, s, 'online').filter((x) => x.ts === NOW)).toEqual([]);
    s.goOnline();
    await until(() => seen(r, s, 'online').filter((x) => x.ts === NOW).length === dids(s).length, 5000, 'the announcement');
  });

  it('leave: "offline" states (now), DISCONNECT and no will; down until resume()', { timeout: 20_000 }, async () => {
    const r = await rig();
    const s = r.gateway;
    await s.leave();
    expect(s.state).toBe('left');
    await until(() => seen(r, s, 'offline').length === dids(s).length, 5000, 'offline states');
    expect(seen(r, s, 'offline').every((x) => x.ts === NOW)).toBe(true);
    await s.resume(5000);
    expect(s.state).toBe('connected');
    s.goOnline();
    await until(() => r.platform.registry.size === r.total, 5000, 'back online at the platform');
  });
});

describe('the session pool', () => {
  it('counts what is in flight and resolves drained() when it is written', { timeout: 20_000 }, async () => {
    const r = await rig();
    await r.pool.goOnline(); // every device announces itself again (BLE children have no state): QoS 1, acknowledged by the broker
    expect(r.pool.inflight.value).toBe(r.pool.sessions.flatMap((s) => [s.device, ...s.children]).filter((d) => d.announcesState).length);
    expect(r.pool.inflight.value).toBeGreaterThan(r.pool.sessions.length);
    expect(await r.pool.drained(5000)).toBe(true);
    expect(r.pool.inflight.value).toBe(0);
  });

  it('resolves allDown() once every session has lost the broker', { timeout: 20_000 }, async () => {
    const r = await rig();
    expect(r.pool.connected.value).toBe(r.pool.sessions.length);
    await r.broker.goDown();
    expect(await r.pool.allDown(5000)).toBe(true);
    expect(r.pool.sessions.every((s) => s.state === 'connecting')).toBe(true);
    await r.broker.comeUp();
    await Promise.all(r.pool.sessions.map((s) => s.whenConnected(5000)));
    expect(r.pool.connected.value).toBe(r.pool.sessions.length);
  });
});
