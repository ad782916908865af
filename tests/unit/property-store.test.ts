/** What a device stores, and so reports, always fits the property's spec (src/device/property-store.ts). */
import { describe, expect, it } from 'vitest';
import { DeviceModelSpec } from '../../src/catalog/schema.js';
import { checkDeviceModel } from '../../src/catalog/validate.js';
import { conformNumber, PropertyStore } from '../../src/device/property-store.js';
import { Rng } from '../../src/sim/rng.js';

const info = { siid: 1, name: 'device-information', properties: [{ piid: 1, name: 'manufacturer', format: 'string', access: ['read'] }] };
const model = DeviceModelSpec.parse({
  model: 'test.sensor.v1', name: 'Test', category: 'sensor', urn: 'urn:miot-spec-v2:device:sensor:00000000:test-v1:1', transport: 'wifi', source: 'test',
  services: [info, {
    siid: 2, name: 'things', properties: [
      { piid: 1, name: 'level', format: 'uint8', access: ['read', 'notify'] },
      { piid: 2, name: 'mode', format: 'uint8', access: ['read', 'notify'], 'value-list': [{ value: 1, description: 'A' }, { value: 4, description: 'B' }, { value: 9, description: 'C' }] },
      { piid: 3, name: 'pressure', format: 'float', access: ['read', 'notify'], unit: 'pascal', 'value-range': [30000, 110000, 1] },
      { piid: 4, name: 'temperature', format: 'float', access: ['read', 'notify'], 'value-range': [-40, 125, 0.01] },
    ],
  }],
});
const store = (): PropertyStore => new PropertyStore(model, { did: '1', model: 'test.sensor.v1', firmware: '1', serial: 'x' });

describe('property store', () => {
  it('snaps floats to their step, with no binary noise left', () => {
    const s = store();
    s.update('2.3', 101318.65554099447);
    expect(s.get('2.3')).toBe(101319);
    s.update('2.4', 0.1 + 0.2);
    expect(s.get('2.4')).toBe(0.3);
    expect(s.conformed('2.4', 21.456)).toBe(21.46);
  });

  it('keeps integer formats within their bounds even with no range', () => {
    const s = store();
    s.update('2.1', 300);
    expect(s.get('2.1')).toBe(255);
    s.update('2.1', -4.6);
    expect(s.get('2.1')).toBe(0);
  });

  it('holds a value-list property to a listed value (the nearest)', () => {
    const s = store();
    s.update('2.2', 3);
    expect(s.get('2.2')).toBe(4);
    s.update('2.2', 100);
    expect(s.get('2.2')).toBe(9);
  });

  it('the catalogue refuses floats without a step and units MIoT does not have', () => {
    const doc = JSON.parse(JSON.stringify(model)) as { services: Array<{ properties: Array<Record<string, unknown>> }> };
    doc.services[1]!.properties[2]!['unit'] = 'kPa';
    delete doc.services[1]!.properties[3]!['value-range'];
    expect(checkDeviceModel('test.yaml', doc).problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/^"kPa" is not a MIoT unit/),
      'a float property needs a value-range [min, max, step]',
    ]);
  });

  it('conformNumber makes of a number exactly what the store makes of it, for every numeric property', () => {
    const s = store();
    const rng = Rng.from(7, 'conform');
    for (const key of ['2.1', '2.2', '2.3', '2.4']) {
      const i = s.indexOf(key);
      const rule = s.numberRuleAt(i);
      expect(rule, key).not.toBeNull();
      const values = [0, -0, 0.1 + 0.2, 3, 100, -4.6, 255.5, 1e9, -1e9, NaN, Infinity, -Infinity, 101318.65554099447, 21.455, 21.465];
      for (let k = 0; k < 2000; k++) values.push(rng.range(-200, 120_000), rng.range(-50, 130), rng.normal(20, 10));
      for (const v of values) expect(Object.is(conformNumber(rule!, v), s.conformedAt(i, v)), `${key} ${v}`).toBe(true);
    }
    expect(s.numberRuleAt(s.indexOf('1.1'))).toBeNull(); // a string property
  });
});
