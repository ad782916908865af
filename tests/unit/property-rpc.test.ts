import { describe, expect, it } from 'vitest';
import { MiotCode } from '../../src/contract/wire.js';
import { makeDevice } from '../helpers/device.js';

describe('MIoT RPC on a device', () => {
  it('get_properties echoes did and answers per item: value, -4001 not readable, -4003 missing', async () => {
    const { rpc } = await makeDevice('xiaomi.wifispeaker.lx06');
    const res = rpc('get_properties', [
      { did: 'vol', siid: 2, piid: 1 }, { did: 'text', siid: 5, piid: 1 }, { did: 'nope', siid: 9, piid: 9 },
    ]);
    expect(res).toEqual({ id: 1, result: [
      { did: 'vol', siid: 2, piid: 1, code: 0, value: expect.any(Number) },
      { did: 'text', siid: 5, piid: 1, code: MiotCode.NOT_READABLE },
      { did: 'nope', siid: 9, piid: 9, code: MiotCode.NOT_FOUND },
    ] });
  });

  it('device-information carries model, manufacturer, serial and firmware', async () => {
    const { rpc } = await makeDevice('zhimi.airpurifier.ma4');
    const res = rpc('get_properties', [1, 2, 3, 4].map((piid) => ({ did: 'x', siid: 1, piid }))) as { result: Array<{ value: unknown }> };
    expect(res.result.map((r) => r.value)).toEqual(['zhimi', 'zhimi.airpurifier.ma4', expect.stringMatching(/^[0-9a-f]{12}$/), expect.any(String)]);
  });

  it('set_properties validates access, format, range, step and value-list and changes nothing on refusal', async () => {
    const { rpc, set, device } = await makeDevice('xiaomi.aircondition.mc4');
    const before = device.store.get('2.4');
    expect(set(4, 7, 20)).toMatchObject({ result: [{ code: MiotCode.NOT_WRITABLE }] });
    expect(set(2, 4, 99)).toMatchObject({ result: [{ code: MiotCode.VALUE_ERROR }] });
    expect(set(2, 4, 22.3)).toMatchObject({ result: [{ code: MiotCode.VALUE_ERROR }] }); // step 0.5
    expect(set(2, 4, '22')).toMatchObject({ result: [{ code: MiotCode.VALUE_ERROR }] });
    expect(set(2, 1, 1)).toMatchObject({ result: [{ code: MiotCode.VALUE_ERROR }] }); // bool expected
    expect(set(2, 2, 9)).toMatchObject({ result: [{ code: MiotCode.VALUE_ERROR }] }); // not in value-list
    expect(set(2, 99, 1)).toMatchObject({ result: [{ code: MiotCode.NOT_FOUND }] });
    expect(device.store.get('2.4')).toBe(before);
    expect(set(2, 4, 22.5)).toMatchObject({ result: [{ code: 0 }] });
    expect(device.store.get('2.4')).toBe(22.5);
    const batch = rpc('set_properties', [{ did: 'a', siid: 2, piid: 1, value: true }, { did: 'b', siid: 4, piid: 7, value: 1 }]);
    expect(batch).toMatchObject({ result: [{ did: 'a', code: 0 }, { did: 'b', code: MiotCode.NOT_WRITABLE }] });
  });

  it('actions check their arguments (-4006) and unknown actions (-4003)', async () => {
    const { rpc } = await makeDevice('xiaomi.wifispeaker.lx06');
    expect(rpc('action', { did: 'x', siid: 5, aiid: 1, in: ['hello'] })).toMatchObject({ result: { code: 0, siid: 5, aiid: 1 } });
    expect(rpc('action', { did: 'x', siid: 5, aiid: 1, in: [] })).toMatchObject({ result: { code: MiotCode.ACTION_ARG_ERROR } });
    expect(rpc('action', { did: 'x', siid: 5, aiid: 1, in: [42] })).toMatchObject({ result: { code: MiotCode.ACTION_ARG_ERROR } });
    expect(rpc('action', { did: 'x', siid: 5, aiid: 77 })).toMatchObject({ result: { code: MiotCode.NOT_FOUND } });
  });

  it('answers malformed requests with an error and keeps working', async () => {
    const { device, rpc } = await makeDevice('yeelink.light.color2');
    expect(device.handleRpc('{not json')).toEqual({ id: null, error: { code: -32700, message: expect.any(String) } });
    expect(device.handleRpc('[]')).toMatchObject({ id: null, error: { code: -32600 } });
    expect(rpc('reboot', [])).toMatchObject({ id: 1, error: { code: -32601 } });
    expect(rpc('get_properties', 'x')).toMatchObject({ id: 1, error: { code: -32602 } });
    expect(rpc('get_properties', Array.from({ length: 65 }, () => ({ siid: 2, piid: 1 })))).toMatchObject({ error: { code: -32602 } });
    expect(rpc('get_properties', [{ did: 'on', siid: 2, piid: 1 }])).toMatchObject({ result: [{ code: 0 }] });
    expect(device.counters.rpcErrors).toBe(5);
  });

  it('replies on up/rpc and reports accepted writes of notify properties', async () => {
    const { set, sent, changes } = await makeDevice('yeelink.light.color2');
    set(2, 2, 80);
    expect(sent[0]).toMatchObject({ topic: 'device/100000001/up/rpc', qos: 1 });
    expect(changes('2.2')).toHaveLength(1);
    expect(changes('2.2')[0]!.payload).toEqual({ params: { did: '100000001', siid: 2, piid: 2, value: 80, ts: expect.any(Number) } });
  });

  it('Dreame D9: 4.6 waterbox-status is there (int8, read/notify, 0 No / 1 Yes), 2.2 fault is [0, 100, 1]', async () => {
    const { rpc, device } = await makeDevice('dreame.vacuum.p2009');
    expect(rpc('get_properties', [{ did: 'x', siid: 4, piid: 6 }, { did: 'x', siid: 2, piid: 2 }])).toEqual({ id: 1, result: [
      { did: 'x', siid: 4, piid: 6, code: 0, value: 0 },
      { did: 'x', siid: 2, piid: 2, code: 0, value: 0 },
    ] });
    const tank = device.store.spec('4.6')!;
    expect(tank).toMatchObject({ name: 'waterbox-status', format: 'int8', access: ['read', 'notify'] });
    expect(tank['value-list']!.map((v) => v.value)).toEqual([0, 1]);
    expect(device.store.spec('2.2')!['value-range']).toEqual([0, 100, 1]);
    expect(rpc('set_properties', [{ did: 'x', siid: 4, piid: 6, value: 1 }])).toMatchObject({ result: [{ code: MiotCode.NOT_WRITABLE }] });
  });

  it('a toggle action flips its property', async () => {
    const { rpc, device, changes } = await makeDevice('yeelink.light.mono6');
    const before = device.store.get('2.1');
    rpc('action', { did: 'x', siid: 2, aiid: 1, in: [] });
    expect(device.store.get('2.1')).toBe(!before);
    expect(changes('2.1')).toHaveLength(1);
  });
});
