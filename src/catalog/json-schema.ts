/** JSON Schema for device and scenario files, generated from the zod schemas (one source of truth). */
import { z } from 'zod';
import { ScenarioSpec } from './scenario.js';
import { DeviceModelSpec } from './schema.js';

export function deviceJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(DeviceModelSpec, { io: 'input' }), title: 'aiot-sim device model' };
}

export function scenarioJsonSchema(): Record<string, unknown> {
  return { ...z.toJSONSchema(ScenarioSpec, { io: 'input' }), title: 'aiot-sim scenario' };
}
