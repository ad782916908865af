/**
 * RpcClient and app sessions (src/sim/users.ts) on the real embedded broker: a request that cannot be sent, or whose
 * publish is still unacknowledged when its time is up, fails once, in the caller, and leaves no
 * timer behind to reject a promise nobody awaits (which would end the process: issue 14, item 1).
 * The suite's setup file fails a test in which such a rejection happens.
 */
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { EventScheduler } from '../../src/sim/scheduler.js';
import { AppUsers, MqttConnection, mqttRpc, type RpcClient } from '../../src/sim/users.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectInProcess, until } from '../helpers/mqtt.js';

const OPERATOR_TOKEN = 'rpc-client-op-token';
const DID = '100000042';

describe('RpcClient', () => {
  const track = useCleanup();

  async function operator(): Promise<{ broker: EmbeddedBroker; client: MqttClient; rpc: RpcClient }> {
    const broker = track(await EmbeddedBroker.start({ mqttPort: null, operatorToken: OPERATOR_TOKEN }));
    const client = track(await connectInProcess(broker, { clientId: 'rpc-client-op', username: 'operator', password: OPERATOR_TOKEN }));
    await client.subscribeAsync('device/+/up/rpc', { qos: 1 });
    const { rpc } = mqttRpc(client);
    return { broker, client, rpc };
  }

  it('a request that cannot be encoded fails at once and leaves nothing waiting', async () => {
    const { rpc } = await operator();
    let params: unknown = [];
    for (let i = 0; i < 10_000; i++) params = [params]; // what a 10,000-deep POST body parses to
    await expect(rpc.request(DID, 'get_properties', params, 100)).rejects.toThrow(/call stack|too deep|nest/i);
    // Whatever the request set up is gone; a timer left behind would reject into the void here.
    await until(() => rpc.pending === 0, 5000, 'nothing waiting');
    await new Promise((r) => setImmediate(r));
  });

  it('a request whose publish is not acknowledged in time fails with E_RPC_TIMEOUT, nothing else', { timeout: 10_000 }, async () => {
    const { client, rpc } = await operator();
    // The connection stalls (nothing the client writes reaches the broker), as during a broker restart.
    client.stream.cork();
    track(() => { client.stream.uncork(); });
    await expect(rpc.request(DID, 'get_properties', [{ did: DID, siid: 2, piid: 1 }], 200)).rejects.toMatchObject({ code: 'E_RPC_TIMEOUT' });
    expect(rpc.pending).toBe(0);
  });

  it('a reply resolves the request, and the request leaves nothing waiting', async () => {
    const { broker, client, rpc } = await operator();
    broker.access.registerDevice(DID, { token: 'rpc-client-device', uid: 'u1' });
    const device = track(await connectInProcess(broker, { clientId: DID, username: DID, password: 'rpc-client-device' }));
    await device.subscribeAsync(`device/${DID}/down/rpc`, { qos: 1 });
    device.on('message', (_t, payload) => {
      const req = JSON.parse(payload.toString()) as { id: number };
      device.publish(`device/${DID}/up/rpc`, JSON.stringify({ id: req.id, result: [{ did: DID, siid: 2, piid: 1, code: 0, value: true }] }), { qos: 1 });
    });
    const res = await rpc.request(DID, 'get_properties', [{ did: DID, siid: 2, piid: 1 }], 5000);
    expect(res).toMatchObject({ result: [{ code: 0, value: true }] });
    expect(rpc.pending).toBe(0);
    expect(client.connected).toBe(true);
  });

  it('an app session whose publish is not acknowledged in time lets the work go on; the client sends it once it can', { timeout: 10_000 }, async () => {
    const { broker } = await operator();
    const seen: string[] = [];
    const watcher = track(await connectInProcess(broker, { clientId: 'rpc-client-watch', username: 'operator', password: OPERATOR_TOKEN }));
    await watcher.subscribeAsync('app/+/session', { qos: 1 });
    watcher.on('message', (topic) => seen.push(topic));
    broker.access.registerUser('2000000001', 'user-token');
    const apps = new AppUsers({ kind: 'in-process', open: () => broker.connectInProcess() }, new EventScheduler(Date.UTC(2026, 0, 1)));
    track({ close: () => apps.close() });
    await apps.connectAll([{ uid: '2000000001', token: 'user-token', homeId: 'h1', dids: [] }]);
    const app = (apps.connections()[0] as MqttConnection).client;
    // The connection stalls (a broker node killed with the message in flight): no PUBACK comes.
    app.stream.cork();
    const t0 = performance.now();
    await apps.openSession('2000000001', 300);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(apps.counters).toMatchObject({ appSessions: 1, unacknowledgedSessions: 1 });
    expect(seen).toEqual([]);
    // Once the connection flows again the message arrives: nothing was lost, only not waited for.
    app.stream.uncork();
    await until(() => seen.length === 1, 5000, 'the session message');
    expect(seen).toEqual(['app/2000000001/session']);
  });
});
