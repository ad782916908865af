/** Homes living their day through the real broker: reproducible traces, app users, voice, faults. */
import { describe, expect, it } from 'vitest';
import { createSimulation } from '../../src/sim/simulation.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectTcp, nextMessage, subscribeGranted, until } from '../helpers/mqtt.js';

const HOUR = 3_600_000;

function lively(seed: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'lively', seed, start: '2026-07-15T15:00:00Z', duration: '6h', speed: 'fast',
    population: {
      homes: 30, regions: { es: 1, it: 1, cn: 1 },
      devicesPerHome: { '2': 1, '4': 2, '7': 1 },
      mix: { speaker: 3, light: 3, plug: 2, 'air-conditioner': 2, washer: 1, vacuum: 1, sensor: 3 },
      membersPerHome: [0, 2],
    },
    // Speakers are sold in China only, where these six hours are the night: people there talk a lot.
    behaviour: { app: { sessionsPerUserPerDay: 12 }, voice: { requestsPerUserPerDay: 60 }, climate: { offsetC: 4 } },
    ...extra,
  };
}

const track = useCleanup();

async function runFast(scenario: Record<string, unknown>) {
  const sim = track(await createSimulation({ scenario, broker: { mqttPort: null, wsPort: null } }));
  return sim.finished;
}

describe('households on the virtual clock', () => {
  it('same scenario and seed give the same trace, with commands and faults; another seed does not', { timeout: 60_000 }, async () => {
    const faults = { faults: [{ type: 'devices-offline', share: 0.3, at: '2h', duration: '20m' }, { type: 'region-outage', region: 'es', at: '4h', duration: '15m' }] };
    const a = await runFast(lively(11, faults));
    const b = await runFast(lively(11, faults));
    const c = await runFast(lively(12, faults));
    expect(a.activity.appCommands).toBeGreaterThan(20);
    expect(a.activity.voiceInteractions).toBeGreaterThan(20);
    expect(a.faults.map((f) => f.type)).toEqual(['devices-offline', 'region-outage']);
    expect(a.faults[0]!.sessions).toBeGreaterThan(0);
    expect(b.traceDigest).toBe(a.traceDigest);
    // The platform measured the people from what crossed the broker.
    expect(a.platform.activeUsers.dau).toBeGreaterThan(0);
    expect(a.platform.appMau).toBeLessThanOrEqual(a.platform.activeUsers.mau);
    expect(a.platform.speakerMau).toBeGreaterThan(0);
    expect(a.platform.dailyActiveDevices).toBeGreaterThan(0);
    expect(b.platform.activeUsers).toEqual(a.platform.activeUsers);
    expect(b.traceMessages).toBe(a.traceMessages);
    expect(c.traceDigest).not.toBe(a.traceDigest);
  });

  it('app users command their devices through the broker, and the commands change device state', { timeout: 60_000 }, async () => {
    const sim = track(await createSimulation({ scenario: lively(3), speed: 'manual', broker: { mqttPort: 0, wsPort: 0 } }));
    // As the operator: app sessions and commands are private to anonymous clients (issue 14).
    const watcher = await connectTcp(sim.broker, { username: 'operator', password: sim.operatorToken });
    await watcher.subscribeAsync(['app/+/session', 'device/+/down/rpc', 'device/+/up/event_occured/+/+', 'device/+/up/properties_changed/2/1']);
    const seen = { sessions: 0, commands: 0, voice: 0, switchedOn: 0 };
    watcher.on('message', (topic, payload) => {
      if (topic.endsWith('/properties_changed/2/1')) {
        if ((JSON.parse(payload.toString()) as { params: { value: unknown } }).params.value === true) seen.switchedOn++;
      } else if (topic.startsWith('app/')) {
        seen.sessions++;
        expect(JSON.parse(payload.toString())).toMatchObject({ event: 'open', ts: expect.any(Number) });
      } else if (topic.endsWith('/down/rpc')) seen.commands++;
      else if (/event_occured\/(5|3)\/101$/.test(topic)) {
        seen.voice++;
        const ev = (JSON.parse(payload.toString()) as { params: { arguments: Array<{ piid: number; value: unknown }> } }).params;
        expect(ev.arguments.map((a) => a.piid)).toEqual([1, 101]); // request text, user id
      }
    });
    await sim.advance(6 * HOUR);
    await until(() => seen.sessions >= sim.activity().appSessions, 10_000, 'app sessions at the observer');
    expect(seen.sessions).toBeGreaterThan(10);
    expect(seen.commands).toBeGreaterThanOrEqual(sim.activity().appCommands);
    expect(seen.voice).toBeGreaterThan(5);
    // Lights, plugs and ACs start "off": every "on" they report was caused by a command.
    expect(seen.switchedOn).toBeGreaterThan(5);
    expect(sim.activity().failedCommands).toBe(0);
    // App clients speak MQTT over WebSocket when the listener is on.
    const clients = [...Object.values((sim.broker.aedes as unknown as { clients: Record<string, { id: string; conn: unknown }> }).clients)];
    expect(clients.some((c) => c.id.startsWith('app-'))).toBe(true);
    await watcher.endAsync();
  });

  it('publishes the platform figures, scaled, on a retained $SYS topic', { timeout: 30_000 }, async () => {
    const sim = track(await createSimulation({ scenario: { ...lively(6, { duration: '2h' }), scale: 1000 }, speed: 'manual', broker: { mqttPort: 0, wsPort: null } }));
    await sim.advance(HOUR);
    const watcher = await connectTcp(sim.broker, { username: 'operator', password: sim.operatorToken });
    const got = nextMessage(watcher, (t) => t === '$SYS/aiot-sim/platform');
    await watcher.subscribeAsync('$SYS/aiot-sim/#');
    const body = JSON.parse((await got).payload) as { connections: { online: number }; scale: number; scaled: { connections: number }; eventTime: number };
    expect(body.connections.online).toBe(sim.population.devices.length);
    expect(body.scaled.connections).toBe(body.connections.online * 1000);
    expect(body.eventTime).toBeGreaterThan(Date.parse('2026-07-15T15:30:00Z'));
    await watcher.endAsync();
  });

  it('an app user may command only the devices of its own home', { timeout: 30_000 }, async () => {
    const sim = track(await createSimulation({ scenario: lively(5, { duration: '1h' }), speed: 'manual', broker: { mqttPort: 0, wsPort: null } }));
    const [home, other] = sim.population.homes;
    const token = 'user-secret-token';
    sim.broker.access.registerUser(home!.ownerUid, token); // a known password for this test
    const app = await connectTcp(sim.broker, { clientId: `test-app-${home!.ownerUid}`, username: `app:${home!.ownerUid}`, password: token });
    const mine = home!.devices.find((d) => d.model.transport === 'wifi')!;
    const theirs = other!.devices.find((d) => d.model.transport === 'wifi')!;
    await app.subscribeAsync([`device/${mine.did}/up/rpc`]);
    expect(await subscribeGranted(app, `device/${theirs.did}/up/rpc`)).toEqual([128]);
    const reply = nextMessage(app, (t) => t === `device/${mine.did}/up/rpc`);
    await app.publishAsync(`device/${mine.did}/down/rpc`, JSON.stringify({ id: 9, method: 'get_properties', params: [{ did: 'x', siid: 1, piid: 2 }] }));
    expect(JSON.parse((await reply).payload)).toMatchObject({ id: 9, result: [{ code: 0, value: mine.model.model }] });
    const rejected = sim.broker.counters.rejected;
    await app.publishAsync(`device/${theirs.did}/down/rpc`, JSON.stringify({ id: 10, method: 'get_properties', params: [] })).catch(() => undefined);
    await until(() => sim.broker.counters.rejected > rejected, 5000, 'the refused command to be counted');
    await app.endAsync(true);
  });

  it('a region outage shows at the platform in event time and devices come back', { timeout: 60_000 }, async () => {
    const sim = track(await createSimulation({
      scenario: lively(8, { faults: [{ type: 'region-outage', region: 'it', at: '1h', duration: '30m' }] }),
      speed: 'manual', broker: { mqttPort: null, wsPort: null },
    }));
    const total = sim.population.devices.length;
    const italian = sim.population.devices.filter((d) => d.region === 'it').length;
    await until(() => sim.snapshot().connections.online === total, 5000, 'everyone online');
    await sim.advance(HOUR + 60_000);
    await until(() => sim.snapshot().connections.online === total - italian, 5000, 'the Italian homes to drop');
    expect(sim.snapshot().connections.byRegion['it'] ?? 0).toBe(0);
    await sim.advance(30 * 60_000);
    await until(() => sim.snapshot().connections.online === total, 10_000, 'the Italian homes to come back');
    expect(sim.snapshot().eventTime).toBeGreaterThanOrEqual(Date.parse('2026-07-15T16:30:00Z'));
  });

  it('ACs run on hot afternoons: a heat wave switches more of them on', { timeout: 60_000 }, async () => {
    const acs = (offsetC: number) => ({
      name: 'acs', seed: 4, start: '2026-07-14T22:00:00Z', duration: '1d', speed: 'fast',
      population: { homes: 60, regions: { cn: 1 }, devicesPerHome: { '1': 1 }, mix: { 'air-conditioner': 1 } },
      behaviour: { climate: { offsetC }, voice: { requestsPerUserPerDay: 0 }, app: { sessionsPerUserPerDay: 0 } },
    });
    const cool = await runFast(acs(-15));
    const hot = await runFast(acs(8));
    expect(hot.activity.appCommands).toBeGreaterThan(60); // most ACs switched on and off again
    expect(cool.activity.appCommands).toBeLessThan(hot.activity.appCommands / 4);
  });

  it('halving app sessions per user halves the app users the platform counts', { timeout: 60_000 }, async () => {
    const users = (sessionsPerUserPerDay: number) => ({
      name: 'app-rate', seed: 21, start: '2026-03-02T00:00:00Z', duration: '1d', speed: 'fast',
      population: { homes: 1000, regions: { cn: 1 }, devicesPerHome: { '1': 1 }, mix: { plug: 1 }, membersPerHome: [0, 1] },
      behaviour: {
        app: { sessionsPerUserPerDay, commandShare: 0 }, voice: { requestsPerUserPerDay: 0 },
        appliances: { washerCyclesPerWeek: 0, vacuumRunsPerWeek: 0, lightsEveningShare: 0 },
      },
    });
    const full = await runFast(users(0.2));
    const half = await runFast(users(0.1));
    // Each user's daily rate is gamma-distributed around the mean (engagement shape 1, exponential),
    // so P(a user opens the app in a day) = 1 - 1/(1 + mean): 16.7 % vs 9.1 %, a ratio of about 1.8.
    const ratio = full.platform.appMau / half.platform.appMau;
    expect(ratio).toBeGreaterThan(1.6);
    expect(ratio).toBeLessThan(2.3);
  });

  it('speaker MAU counts the people who spoke, not the speakers that heard them', { timeout: 60_000 }, async () => {
    // 40 homes of four people with one speaker each; everyone talks to it, or half of them do.
    const talk = (userShare: number) => ({
      name: 'voices', seed: 9, start: '2026-03-02T00:00:00Z', duration: '2d', speed: 'fast',
      population: { homes: 40, regions: { cn: 1 }, devicesPerHome: { '1': 1 }, mix: { speaker: 1 }, householdSize: { '4': 1 } },
      behaviour: { voice: { userShare, requestsPerUserPerDay: 6 }, app: { sessionsPerUserPerDay: 0 } },
    });
    const all = await runFast(talk(1));
    const half = await runFast(talk(0.5));
    expect(all.devices.total).toBe(40);
    expect(all.activity.people).toBe(160);
    expect(all.activity.voiceUsers).toBe(160);
    // Six requests a day each for two days: practically every one of them spoke.
    expect(all.platform.speakerMau).toBeGreaterThan(150);
    expect(all.platform.speakerMau).toBeLessThanOrEqual(160);
    expect(half.activity.voiceUsers).toBeGreaterThan(60);
    expect(half.activity.voiceUsers).toBeLessThan(100);
    expect(half.platform.speakerMau).toBeLessThanOrEqual(half.activity.voiceUsers);
    expect(half.platform.speakerMau).toBeGreaterThan(half.activity.voiceUsers * 0.9);
  });

  it('a home where nobody uses the app runs no cloud automations: its people switch things by hand', { timeout: 60_000 }, async () => {
    const homes = (userShare: number) => ({
      name: 'routines', seed: 12, start: '2026-07-14T22:00:00Z', duration: '1d', speed: 'fast',
      population: { homes: 60, regions: { es: 1 }, devicesPerHome: { '3': 1 }, mix: { light: 2, fan: 1 } },
      behaviour: {
        app: { userShare, sessionsPerUserPerDay: 0 }, routines: { automationShare: 0.5, appShare: 0.5 },
        appliances: { lightsEveningShare: 1 }, climate: { offsetC: 8 },
      },
    });
    const nobody = await runFast(homes(0));
    expect(nobody.activity.appUsers).toBe(0);
    expect(nobody.activity.automations).toBe(0);
    expect(nobody.activity.appSessions).toBe(0);
    expect(nobody.activity.byHand).toBeGreaterThan(100);
    // By hand is no command: nothing reached a device's down/rpc, and no device counts as used.
    expect(nobody.platform.dailyActiveDevices).toBe(0);
    expect(nobody.platform.messages.byKind['rpc_up'] ?? 0).toBe(0);
    // The lights still went on and off: the devices reported it themselves.
    expect(nobody.platform.messages.byKind['properties_changed']).toBeGreaterThan(100);
    const everyone = await runFast(homes(1));
    expect(everyone.activity.byHand).toBe(0);
    expect(everyone.activity.automations).toBeGreaterThan(50);
    expect(everyone.activity.appCommands).toBeGreaterThan(50);
  });
});

