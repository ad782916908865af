/** JSON Schema for device, fragment and scenario files, generated from the zod schemas (one source of truth). */
import { z } from 'zod';
import { ScenarioSpec } from './scenario.js';
import { DeviceFileSpec, FragmentSpec } from './schema.js';

/** A device model file as written (with `include`). */
export function deviceJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(DeviceFileSpec, { io: 'input' }), title: 'aiot-sim device model' };
}

/** A catalogue fragment file (`devices/fragments/NAME.yaml`). */
export function fragmentJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(FragmentSpec, { io: 'input' }), title: 'aiot-sim device fragment' };
}

export function scenarioJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(ScenarioSpec, { io: 'input' }), title: 'aiot-sim scenario' };
}
