/** What a device stores, and so reports, always fits the property's spec (src/device/property-store.ts). */
import { describe, expect, it } from 'vitest';
import { DeviceModelSpec } from '../../src/catalog/schema.js';
import { checkDeviceModel } from '../../src/catalog/validate.js';
import { PropertyStore } from '../../src/device/property-store.js';

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
});
