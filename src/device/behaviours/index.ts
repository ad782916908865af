/** The library of named behaviours; a device model picks them by `use`. */
import type { BehaviourSpec } from '../../catalog/schema.js';
import type { AnyBehaviourFactory, Behaviour, BehaviourContext, BehaviourFactory } from './context.js';
import { climateControl, powerDraw, washCycle } from './appliances.js';
import { doorLock, heatingCycle } from './home.js';
import { mediaPlayer, vacuum, voiceAssistant } from './robots.js';
import { batteryDrain, contact, heartbeat, motion, randomWalk } from './sensors.js';

export type { Behaviour, BehaviourContext, UserInput } from './context.js';

const library: { [U in BehaviourSpec['use']]: BehaviourFactory<U> } = {
  heartbeat,
  'random-walk': randomWalk,
  motion,
  contact,
  'climate-control': climateControl,
  'wash-cycle': washCycle,
  vacuum,
  'media-player': mediaPlayer,
  'battery-drain': batteryDrain,
  'power-draw': powerDraw,
  'voice-assistant': voiceAssistant,
  'door-lock': doorLock,
  'heating-cycle': heatingCycle,
};

/**
 * Behaviours that only produce periodic readings (sensor walks and heartbeats, battery and filter
 * drain, climate and power metering). A simulation with telemetry off does not run them: devices
 * keep state, obey commands and emit events, and the readings stay where they started. A drain
 * with a low-level event is kept, since that event is activity.
 */
export function isTelemetry(spec: BehaviourSpec): boolean {
  switch (spec.use) {
    case 'random-walk':
    case 'heartbeat':
    case 'climate-control':
    case 'power-draw':
      return true;
    case 'battery-drain':
      return spec.lowEvent === undefined;
    default:
      return false;
  }
}

export function createBehaviour(spec: BehaviourSpec, ctx: BehaviourContext): Behaviour {
  return (library[spec.use] as AnyBehaviourFactory)(spec, ctx);
}
