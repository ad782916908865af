/**
 * MIoT RPC round trips through a real Simulation: the operator commands a device over TCP, the
 * device's MQTT session (in-process) answers on up/rpc and reports what changed.
 */
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import type { PropertiesChangedPayload } from '../../src/contract/wire.js';
import { createSimulation, type Simulation } from '../../src/sim/simulation.js';
import { useCleanup } from '../helpers/cleanup.js';
import { connectTcp, nextMessage } from '../helpers/mqtt.js';
import { rawRpc, readProperty, results, rpc } from '../helpers/rpc.js';
import { TEST_START, tinyScenario } from '../helpers/scenario.js';

const AC = 'xiaomi.aircondition.mc4';
const SPEAKER = 'xiaomi.wifispeaker.lx06';

describe('device RPC through a running simulation', () => {
  const track = useCleanup();

  /** Start a manual-clock simulation of `model` only, and an operator logged in over TCP watching that model's first device. */
  async function start(model: string): Promise<{ s: Simulation; client: MqttClient; did: string }> {
    const s = track(await createSimulation({
      scenario: tinyScenario({ homes: 3, mix: { [model]: 1 }, devicesPerHome: { '1': 1 } }),
      speed: 'manual',
      broker: { mqttPort: 0, wsPort: null },
    }));
    const did = s.population.devices.find((d) => d.model.model === model)?.did;
    if (!did) throw new Error(`the population has no ${model}`);
    const client = track(await connectTcp(s.broker, { clientId: 'test-operator', username: 'operator', password: s.operatorToken }));
    await client.subscribeAsync(`device/${did}/up/#`, { qos: 1 });
    return { s, client, did };
  }

  it('set_properties turns the AC on at 22 °C: replies 0, reports the change at virtual time, and the room cools', async () => {
    const { s, client, did } = await start(AC);
    expect(s.population.devices).toHaveLength(3);
    const before = (await readProperty(client, did, 4, 7)) as number;
    expect(typeof before).toBe('number');
    expect(before).toBeGreaterThan(22.5);

    const changed = nextMessage(client, (t) => t === `device/${did}/up/properties_changed/2/4`);
    const res = await rpc(client, did, 'set_properties', [
      { did, siid: 2, piid: 1, value: true },
      { did, siid: 2, piid: 4, value: 22 },
    ]);
    expect(results(res).map((r) => [r.siid, r.piid, r.code])).toEqual([[2, 1, 0], [2, 4, 0]]);
    expect(results(res).every((r) => r.did === did)).toBe(true);

    const msg = await changed;
    const body = JSON.parse(msg.payload) as PropertiesChangedPayload;
    expect(Object.keys(body)).toEqual(['params']);
    expect(Object.keys(body.params).sort()).toEqual(['did', 'piid', 'siid', 'ts', 'value']);
    expect(body).toEqual({ params: { did, siid: 2, piid: 4, value: 22, ts: Date.parse(TEST_START) } });
    expect(body.params.ts).toBe(s.scheduler.now()); // virtual time: the clock has not moved yet

    // Half an hour of virtual time: the room temperature moves toward the target.
    const reports: PropertiesChangedPayload[] = [];
    client.on('message', (t, p) => { if (t === `device/${did}/up/properties_changed/4/7`) reports.push(JSON.parse(p.toString()) as PropertiesChangedPayload); });
    await s.advance(30 * 60_000);
    const after = (await readProperty(client, did, 4, 7)) as number;
    expect(after).toBeLessThan(before);
    expect(Math.abs(after - 22)).toBeLessThan(Math.abs(before - 22));
    expect(after).toBeGreaterThanOrEqual(21.5);
    // The cooling was reported on the way, stamped with virtual times inside the advanced window.
    expect(reports.length).toBeGreaterThan(0);
    for (const r of reports) {
      expect(r.params.ts).toBeGreaterThanOrEqual(Date.parse(TEST_START));
      expect(r.params.ts).toBeLessThanOrEqual(s.scheduler.now());
    }
    expect(await readProperty(client, did, 2, 1)).toBe(true);
    expect(await readProperty(client, did, 2, 4)).toBe(22);
  });

  it('refuses bad writes with MIoT codes and changes nothing', async () => {
    const { client, did } = await start(AC);
    expect(results(await rpc(client, did, 'set_properties', [{ did, siid: 2, piid: 4, value: 22 }]))[0]!.code).toBe(0);
    const temp = await readProperty(client, did, 4, 7);

    // Read-only room temperature: -4002, value unchanged.
    const ro = results(await rpc(client, did, 'set_properties', [{ did, siid: 4, piid: 7, value: 10 }]));
    expect(ro).toEqual([{ did, siid: 4, piid: 7, code: -4002 }]);
    expect(await readProperty(client, did, 4, 7)).toBe(temp);

    // Out of range target: -4005, target stays 22.
    const oor = results(await rpc(client, did, 'set_properties', [{ did, siid: 2, piid: 4, value: 99 }]));
    expect(oor).toEqual([{ did, siid: 2, piid: 4, code: -4005 }]);
    expect(await readProperty(client, did, 2, 4)).toBe(22);

    // Unknown service: -4003, for reads and writes.
    expect(results(await rpc(client, did, 'get_properties', [{ did, siid: 99, piid: 1 }]))).toEqual([{ did, siid: 99, piid: 1, code: -4003 }]);
    expect(results(await rpc(client, did, 'set_properties', [{ did, siid: 99, piid: 1, value: 1 }]))).toEqual([{ did, siid: 99, piid: 1, code: -4003 }]);
    // The AC has no actions at all.
    const act = await rpc(client, did, 'action', { did, siid: 2, aiid: 1, in: [] });
    expect('result' in act && act.result).toMatchObject({ siid: 2, aiid: 1, code: -4003 });
  });

  it('reports at most once per virtual second per property; the later value goes out when the clock moves', async () => {
    const { s, client, did } = await start(AC);
    const t0 = Date.parse(TEST_START);
    const reports: PropertiesChangedPayload[] = [];
    client.on('message', (t, p) => { if (t === `device/${did}/up/properties_changed/2/4`) reports.push(JSON.parse(p.toString()) as PropertiesChangedPayload); });
    expect(results(await rpc(client, did, 'set_properties', [{ did, siid: 2, piid: 4, value: 22 }]))[0]!.code).toBe(0);
    expect(results(await rpc(client, did, 'set_properties', [{ did, siid: 2, piid: 4, value: 23.5 }]))[0]!.code).toBe(0);
    // The second reply arrived after the first report: only 22 went out, at the virtual start.
    expect(reports).toEqual([{ params: { did, siid: 2, piid: 4, value: 22, ts: t0 } }]);
    const later = nextMessage(client, (t, p) => t === `device/${did}/up/properties_changed/2/4` && p.includes('23.5'));
    await s.advance(1000);
    expect(JSON.parse((await later).payload)).toEqual({ params: { did, siid: 2, piid: 4, value: 23.5, ts: t0 + 1000 } });
    expect(reports).toHaveLength(2);
  });

  it('echoes string ids and refuses wrongly typed values and oversized batches', async () => {
    const { client, did } = await start(AC);
    const res = await rawRpc(client, did, JSON.stringify({ id: 'abc-1', method: 'get_properties', params: [{ did, siid: 2, piid: 1 }] }), (r) => r.id === 'abc-1');
    expect(res).toEqual({ id: 'abc-1', result: [{ did, siid: 2, piid: 1, code: 0, value: false }] });
    const typed = results(await rpc(client, did, 'set_properties', [{ did, siid: 2, piid: 1, value: 'yes' }, { did, siid: 2, piid: 2, value: 7 }]));
    expect(typed.map((r) => r.code)).toEqual([-4005, -4005]); // a string for a bool; 7 is not in the mode list
    expect(await readProperty(client, did, 2, 1)).toBe(false);
    expect(await readProperty(client, did, 2, 2)).toBe(2);
    const many = Array.from({ length: 65 }, () => ({ did, siid: 2, piid: 1 }));
    expect(await rpc(client, did, 'get_properties', many)).toMatchObject({ error: { code: -32602 } });
  });

  it('answers invalid JSON with a parse error and keeps answering afterwards', async () => {
    const { client, did } = await start(AC);
    const res = await rawRpc(client, did, '{"id": 1, "method": "get_prop', (r) => r.id === null);
    expect(res).toMatchObject({ id: null, error: { code: -32700 } });
    // An unknown method and a missing id are refused as a whole, too.
    expect(await rpc(client, did, 'reboot', [])).toMatchObject({ error: { code: -32601 } });
    expect(await rawRpc(client, did, JSON.stringify({ method: 'get_properties', params: [] }), (r) => r.id === null)).toMatchObject({ id: null, error: { code: -32600 } });
    // The device is still alive and answers normally.
    expect(await readProperty(client, did, 2, 4)).toBe(26);
    expect(await readProperty(client, did, 1, 2)).toBe(AC);
  });

  it('answers an action with the wrong argument count with -4006 (speaker)', async () => {
    const { client, did } = await start(SPEAKER);
    // execute-text-directive (5.5) takes two arguments.
    const one = await rpc(client, did, 'action', { did, siid: 5, aiid: 5, in: ['turn on the light'] });
    expect('result' in one && one.result).toMatchObject({ did, siid: 5, aiid: 5, code: -4006 });
    // play-text (5.1) takes exactly one: none is as wrong as two.
    const none = await rpc(client, did, 'action', { did, siid: 5, aiid: 1, in: [] });
    expect('result' in none && none.result).toMatchObject({ siid: 5, aiid: 1, code: -4006 });
    const unknown = await rpc(client, did, 'action', { did, siid: 5, aiid: 42, in: [] });
    expect('result' in unknown && unknown.result).toMatchObject({ siid: 5, aiid: 42, code: -4003 });
  });

  it("sim.command() goes through the broker: a TCP observer sees the request, the reply and the change", async () => {
    const { s, client, did } = await start(AC);
    await client.subscribeAsync(`device/${did}/down/rpc`, { qos: 1 });
    const seenDown = nextMessage(client, (t) => t === `device/${did}/down/rpc`);
    const seenReply = nextMessage(client, (t) => t === `device/${did}/up/rpc`);
    const seenChange = nextMessage(client, (t) => t === `device/${did}/up/properties_changed/2/2`);
    const res = await s.command(did, 'set_properties', [{ did, siid: 2, piid: 2, value: 5 }]);
    expect(results(res)).toEqual([{ did, siid: 2, piid: 2, code: 0 }]);
    expect(JSON.parse((await seenDown).payload)).toMatchObject({ method: 'set_properties', params: [{ did, siid: 2, piid: 2, value: 5 }] });
    expect(JSON.parse((await seenReply).payload)).toEqual(res);
    expect(JSON.parse((await seenChange).payload)).toMatchObject({ params: { did, siid: 2, piid: 2, value: 5 } });
    const read = await s.command(did, 'get_properties', [{ did, siid: 2, piid: 2 }, { did, siid: 2, piid: 4 }]);
    expect(results(read).map((r) => [r.code, r.value])).toEqual([[0, 5], [0, 26]]);
    await expect(s.command('no-such-did', 'get_properties', [])).rejects.toThrow(/no device/);
  });
});
