/**
 * A scenario on a real Mosquitto: devices, app users, operator and platform are all its clients,
 * and the platform counts connections from state messages and last wills alone.
 */
import mqtt from 'mqtt';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSimulation, Simulation } from '../../src/sim/simulation.js';
import { assertBuilt, finish, spawnCli } from '../helpers/cli.js';
import { until } from '../helpers/mqtt.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';

const MIN = 60_000;

function homes(seed: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    // 20:00 in China, where the speakers are (XiaoAI is sold there only); 14:00 in Spain and Italy.
    name: 'on-mosquitto', seed, start: '2026-07-15T14:00:00+02:00',
    population: {
      homes: 12, regions: { es: 2, it: 1, cn: 2 },
      devicesPerHome: { '2': 4, '4': 4, '7': 4 },
      mix: { speaker: 2, light: 3, plug: 2, sensor: 3, 'air-conditioner': 1 },
      membersPerHome: [0, 1],
    },
    behaviour: { app: { sessionsPerUserPerDay: 40 }, voice: { requestsPerUserPerDay: 40 } },
    ...extra,
  };
}

/**
 * This process's open TCP sockets to `port`, and whether each has Nagle's algorithm off. Node keeps
 * no public record of `setNoDelay()`: its own one is the socket's `kSetNoDelay` field (Node 20),
 * read here; without it the check fails rather than passing on nothing.
 */
function socketsTo(port: number): Array<{ socket: Socket; noDelay: boolean }> {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  const sockets = handles.filter((h): h is Socket => typeof h === 'object' && h !== null && (h as Socket).remotePort === port);
  return sockets.map((socket) => {
    const key = Object.getOwnPropertySymbols(socket).find((k) => k.description === 'kSetNoDelay');
    if (!key) throw new Error('this Node.js keeps no kSetNoDelay on its sockets: check Nagle another way');
    return { socket, noDelay: (socket as unknown as Record<symbol, unknown>)[key] === true };
  });
}

/** The client id of an MQTT 3.1.1 CONNECT packet (the first bytes a client sends). */
function clientIdOf(packet: Buffer): string {
  let i = 1;
  while (packet[i]! & 0x80) i++; // remaining length, 1-4 bytes
  i++;
  i += 2 + packet.readUInt16BE(i); // protocol name
  i += 4; // level, flags, keep-alive
  const n = packet.readUInt16BE(i);
  return packet.subarray(i + 2, i + 2 + n).toString('utf8');
}

let broker: Mosquitto;
beforeAll(async () => { broker = await startMosquitto(); });
afterAll(async () => { await broker?.stop(); });

describe('against an external broker (Mosquitto)', () => {
  it('counts every device online from state messages, follows a fault through last wills, and commands devices', { timeout: 60_000 }, async () => {
    const faults = [{ type: 'devices-offline', share: 0.5, at: '10m', duration: '10m' }];
    const sim: Simulation = await createSimulation({ scenario: homes(5, { faults }), speed: 'manual', externalBroker: { url: broker.url } });
    try {
      const total = sim.population.devices.length;
      const children = sim.population.devices.filter((d) => d.parentId).length;
      expect(children).toBeGreaterThan(0);
      expect(() => sim.broker).toThrow(/external broker/);

      // Every device (gateway children included) is online as soon as start() resolves.
      expect(sim.snapshot().connections.online).toBe(total);
      expect(sim.snapshot().connections.byCategory['gateway']).toBeGreaterThan(0);

      // An independent client of the same broker sees the retained states the platform counted
      // (every device but BLE children, which have none: the platform counts them with their gateway).
      const stated = sim.population.devices.filter((d) => d.model.transport !== 'ble').length;
      expect(stated).toBeLessThan(total);
      const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clientId: 'watcher' });
      const states = new Map<string, string>();
      watcher.on('message', (topic, payload) => states.set(topic.split('/')[1]!, (JSON.parse(payload.toString()) as { event: string }).event));
      await watcher.subscribeAsync('device/+/state');
      await until(() => states.size === stated, 5000, 'every retained state');
      expect([...states.values()].every((e) => e === 'online')).toBe(true);

      // A command travels through Mosquitto to the device and back.
      const plug = sim.population.devices.find((d) => d.model.category === 'plug')!;
      const res = await sim.command(plug.did, 'get_properties', [{ did: plug.did, siid: 2, piid: 1 }]);
      expect(res).toMatchObject({ result: [{ did: plug.did, siid: 2, piid: 1, code: 0 }] });

      await sim.advance(9 * MIN);
      const before = sim.snapshot();
      expect(before.messages.byKind['properties_changed']).toBeGreaterThan(0);
      expect(before.appMau).toBeGreaterThan(0);
      expect(before.speakerMau).toBeGreaterThan(0);

      // Half the sessions lose their network without a DISCONNECT: Mosquitto sends their wills.
      await sim.advance(2 * MIN);
      // Wills arrive one by one: wait for the platform's count to reach what is true on the device
      // side (gateway children go down with their gateway), not just for the first will.
      const reallyOnline = (): number => sim.dids.filter((did) => sim.device(did)!.online).length;
      expect(reallyOnline()).toBeLessThan(total);
      await until(() => sim.snapshot().connections.online === reallyOnline(), 10_000, 'every will to arrive');
      const down = sim.snapshot().connections.online;
      expect(down).toBeLessThan(total * 0.75);
      expect(down).toBeGreaterThan(0);
      await until(() => [...states.values()].filter((e) => e === 'offline').length > 0, 5000, 'offline states on the broker');

      await sim.advance(10 * MIN);
      await until(() => sim.snapshot().connections.online === total, 10_000, 'everyone back');

      const report = await sim.stop();
      expect(report.messages.published).toBe(report.traceMessages);
      // The clock waited for the command above and the households' app sessions, each through Mosquitto.
      expect(report.networkWork!.pieces).toBeGreaterThan(1);
      expect(report.networkWork!.wallSeconds).toBeGreaterThan(0);
      expect(report.messages.delivered).toBeGreaterThan(report.traceMessages * 0.9);
      expect(report.platform.connections.online).toBe(total);
      expect(report.platform.messages.malformed).toBe(0);
      // Stopping says offline for everyone, on the broker too.
      await until(() => [...states.values()].every((e) => e === 'offline'), 5000, 'every device offline after stop');
      await watcher.endAsync();
    } finally {
      await sim.stop();
    }
  });

  it('every client sends each packet at once (Nagle off), on its first connection and after reconnecting', { timeout: 60_000 }, async () => {
    // With Nagle on, a reply written right after a PUBACK waited for the broker's delayed ACK, and
    // fast mode, whose clock waits for each command's reply, ran about twice as long on Mosquitto.
    const faults = [{ type: 'devices-offline', share: 0.5, at: '1m', duration: '2m' }];
    const sim = await createSimulation({ scenario: homes(11, { faults }), speed: 'manual', externalBroker: { url: broker.url } });
    try {
      const first = socketsTo(broker.port);
      // A socket per device session and app user, the operator's and the platform's.
      expect(first.length).toBeGreaterThanOrEqual(sim.population.homes.length + 2);
      expect(first.filter((s) => !s.noDelay).map((s) => s.socket.localPort)).toEqual([]);

      // Half the sessions lose their network and come back on new sockets.
      await sim.advance(4 * MIN);
      const total = sim.population.devices.length;
      await until(() => sim.snapshot().connections.online === total, 10_000, 'everyone back');
      const again = socketsTo(broker.port);
      const fresh = again.filter((s) => !first.some((f) => f.socket === s.socket));
      expect(fresh.length).toBeGreaterThan(0);
      expect(again.filter((s) => !s.noDelay).map((s) => s.socket.localPort)).toEqual([]);
    } finally {
      await sim.stop();
    }
  });

  it('the same seed gives the same device trace as on the embedded broker', { timeout: 60_000 }, async () => {
    const scenario = homes(9);
    const run = async (external: boolean): Promise<string> => {
      const sim = await createSimulation(external
        ? { scenario, speed: 'manual', externalBroker: { url: broker.url } }
        : { scenario, speed: 'manual', broker: { mqttPort: null, wsPort: null } });
      await sim.advance(20 * MIN);
      return (await sim.stop()).traceDigest;
    };
    expect(await run(true)).toBe(await run(false));
  });

  it('starts through a broker that says "server unavailable" (CONNACK 3) at first, as a cluster node without its Redis does', { timeout: 60_000 }, async () => {
    // A gate in front of Mosquitto answers each client's first CONNECT with CONNACK 3 and closes;
    // a client that tries again is let through.
    const seen = new Set<string>();
    const gate = createServer((client) => {
      client.on('error', () => undefined);
      client.once('data', (connectPacket: Buffer) => {
        const id = clientIdOf(connectPacket);
        if (!seen.has(id)) {
          seen.add(id);
          client.end(Buffer.from([0x20, 0x02, 0x00, 0x03]));
          return;
        }
        client.pause();
        const upstream = connect(broker.port, '127.0.0.1');
        upstream.on('error', () => client.destroy());
        client.on('close', () => upstream.destroy());
        upstream.write(connectPacket);
        client.pipe(upstream).pipe(client);
      });
    });
    await new Promise<void>((r) => gate.listen(0, '127.0.0.1', r));
    const url = `mqtt://127.0.0.1:${(gate.address() as AddressInfo).port}`;
    try {
      const sim = await createSimulation({ scenario: homes(11), speed: 'manual', externalBroker: { url } });
      try {
        // The platform's observer, the operator, every device session and every app user was refused once, and got in.
        const ids = [...seen];
        expect(ids.filter((id) => id.startsWith('aiot-sim-platform-'))).toHaveLength(1);
        expect(ids.filter((id) => id.startsWith('aiot-sim-operator-'))).toHaveLength(1);
        expect(ids.filter((id) => id.startsWith('app-')).length).toBeGreaterThan(0);
        expect(sim.status().reconnectAttempts).toBe(sim.population.sessions.length);
        expect(sim.snapshot().connections.online).toBe(sim.population.devices.length);
        await sim.advance(10 * MIN);
        expect(Object.values(sim.snapshot().messages.byKind).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      } finally {
        await sim.stop();
      }
    } finally {
      gate.close();
    }
  });

  it('refuses to start, naming the broker, when it says "server unavailable" past the connect timeout', { timeout: 60_000 }, async () => {
    const gate = createServer((client) => {
      client.on('error', () => undefined);
      client.once('data', () => client.end(Buffer.from([0x20, 0x02, 0x00, 0x03])));
    });
    await new Promise<void>((r) => gate.listen(0, '127.0.0.1', r));
    const url = `mqtt://127.0.0.1:${(gate.address() as AddressInfo).port}`;
    try {
      const started = Date.now();
      await expect(createSimulation({ scenario: homes(12), speed: 'manual', externalBroker: { url } }))
        .rejects.toThrow(new RegExp(`broker ${url}: .*Server unavailable`));
      // The platform's observer gives up first, after its 10 s.
      expect(Date.now() - started).toBeGreaterThanOrEqual(8000);
    } finally {
      gate.close();
    }
  });

  it('runs from the command line with --broker, and refuses what cannot work', { timeout: 60_000 }, async () => {
    assertBuilt();
    const ok = await finish(spawnCli(['run', 'scenarios/default.yaml', '--broker', broker.url, '--fast', '--duration', '30m', '--quiet', '--http-port', '0']), 45_000);
    expect(ok.stderr).toContain(`your broker ${broker.url}`);
    // The live monitor taps the traffic through the platform's client of that broker.
    expect(ok.stderr).toMatch(/dashboard http:\/\/127\.0\.0\.1:\d+\//);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/online at end\s+\d+/);

    const bad = await finish(spawnCli(['run', '--broker', 'http://127.0.0.1:1', '--quiet']));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unsupported scheme "http:"');

    const mixed = await finish(spawnCli(['run', '--broker', broker.url, '--mqtt-port', '0']));
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toContain('--broker runs on your broker');

    const nobody = await finish(spawnCli(['run', '--broker', 'mqtt://127.0.0.1:1', '--quiet', '--fast', '--duration', '1m', '--http-port', '0']), 30_000);
    expect(nobody.code).not.toBe(0);
    expect(nobody.stderr).toContain('mqtt://127.0.0.1:1');
  });
});
