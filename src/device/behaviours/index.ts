/** The library of named behaviours; a device model picks them by `use`. */
import type { BehaviourSpec } from '../../catalog/schema.js';
import type { AnyBehaviourFactory, Behaviour, BehaviourContext, BehaviourFactory } from './context.js';
import { climateControl, powerDraw, washCycle } from './appliances.js';
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
};

export function createBehaviour(spec: BehaviourSpec, ctx: BehaviourContext): Behaviour {
  return (library[spec.use] as AnyBehaviourFactory)(spec, ctx);
}
