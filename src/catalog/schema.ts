/**
 * The one schema for device model files in `devices/`.
 *
 * A device model is a MIoT-Spec-V2 instance (services with siid, properties with piid, actions
 * with aiid, events with eiid) plus the behaviours that make it produce believable telemetry.
 * The TypeScript types below are derived from this schema, and `aiot-sim schema --write`
 * publishes it as JSON Schema (`schema/device.schema.json`) for editors.
 */
import { z } from 'zod';
import { MARKETS } from './regions.js';

export const PROPERTY_FORMATS = [
  'bool', 'uint8', 'uint16', 'uint32', 'int8', 'int16', 'int32', 'int64', 'float', 'string',
] as const;
export type PropertyFormat = (typeof PROPERTY_FORMATS)[number];

export const CATEGORIES = [
  'speaker', 'air-conditioner', 'washer', 'air-purifier', 'vacuum', 'light', 'plug', 'gateway', 'sensor',
  'fan', 'tv', 'lock', 'camera', 'kettle', 'cooker',
] as const;
export type Category = (typeof CATEGORIES)[number];

/** How a device reaches the cloud: its own Wi-Fi session, or through a gateway (Zigbee, BLE). */
export const TRANSPORTS = ['wifi', 'zigbee', 'ble'] as const;
export type DeviceTransport = (typeof TRANSPORTS)[number];

const kebab = z.string().regex(/^[a-z0-9][a-z0-9.]*(-[a-z0-9.]+)*$/, 'expected a kebab-case MIoT name, e.g. "target-temperature"');
const iid = z.number().int().positive();

/** "siid.piid", e.g. "2.4" for an AC's target-temperature. */
export const PropRef = z.string().regex(/^\d+\.\d+$/, 'expected a property reference "siid.piid", e.g. "2.1"');
/** "siid.eiid", e.g. "2.1" for a washer's wash-end event. */
export const EventRef = z.string().regex(/^\d+\.\d+$/, 'expected an event reference "siid.eiid", e.g. "2.1"');
/** "siid.aiid", e.g. "2.1" for a vacuum's start-sweep action. */
export const ActionRef = z.string().regex(/^\d+\.\d+$/, 'expected an action reference "siid.aiid", e.g. "2.1"');

const scalar = z.union([z.boolean(), z.number(), z.string()]);

export const PropertySpec = z.strictObject({
  piid: iid,
  name: kebab,
  description: z.string().optional(),
  format: z.enum(PROPERTY_FORMATS),
  /** MIoT access: read, write, notify (notify = the device pushes properties_changed). */
  access: z.array(z.enum(['read', 'write', 'notify'])),
  unit: z.string().optional(),
  /** [min, max, step] for numeric formats. */
  'value-range': z.tuple([z.number(), z.number(), z.number().positive()]).optional(),
  /** Integer enumeration. */
  'value-list': z.array(z.strictObject({ value: z.number().int(), description: z.string() })).min(1).optional(),
  /** Initial value; when absent: false, the range minimum, the first list value or "". */
  default: scalar.optional(),
});

export const ActionSpec = z.strictObject({
  aiid: iid,
  name: kebab,
  description: z.string().optional(),
  /** piids (of the same service) the action takes, in order. */
  in: z.array(iid).default([]),
  /** piids (of the same service) the action returns, in order. */
  out: z.array(iid).default([]),
  /** Declarative effect for simple actions: set properties, or flip a bool property. */
  effect: z.strictObject({
    set: z.array(z.strictObject({ property: PropRef, value: scalar })).optional(),
    toggle: PropRef.optional(),
  }).optional(),
});

export const EventSpec = z.strictObject({
  eiid: iid,
  name: kebab,
  description: z.string().optional(),
  /** piids (of the same service) carried as event arguments. */
  arguments: z.array(iid).default([]),
});

export const ServiceSpec = z.strictObject({
  siid: iid,
  name: kebab,
  description: z.string().optional(),
  properties: z.array(PropertySpec).default([]),
  actions: z.array(ActionSpec).default([]),
  events: z.array(EventSpec).default([]),
});

const seconds = z.number().positive();

/** Re-reports properties on a fixed period, as Zigbee sensors do in their hourly heartbeat. */
const HeartbeatBehaviour = z.strictObject({
  use: z.literal('heartbeat'),
  intervalSeconds: seconds,
  /** Random extra delay per beat, 0..jitterSeconds. */
  jitterSeconds: z.number().nonnegative().default(0),
  properties: z.array(PropRef).min(1),
});

/** A bounded random walk, reported only when it moved at least `reportThreshold` since the last report. */
const RandomWalkBehaviour = z.strictObject({
  use: z.literal('random-walk'),
  property: PropRef,
  intervalSeconds: seconds,
  /** Standard deviation of one step. */
  step: z.number().positive(),
  /** Pull toward this value each step (0..1 of the distance), keeps the walk believable. */
  mean: z.number().optional(),
  reversion: z.number().min(0).max(1).default(0.05),
  reportThreshold: z.number().nonnegative(),
});

/**
 * Motion sensors: a Poisson stream of "motion detected" events, numb after each trigger; the
 * motion-state property goes true with each and back to false once no motion was seen for
 * `clearSeconds` (the sensor itself sends no "clear": its gateway reports no-motion).
 */
const MotionBehaviour = z.strictObject({
  use: z.literal('motion'),
  event: EventRef,
  /** Optional bool property set true on motion (the spec's motion-state). */
  property: PropRef.optional(),
  meanIntervalSeconds: seconds,
  /** The sensor ignores motion for this long after a trigger. */
  numbSeconds: z.number().nonnegative().default(60),
  /** `property` returns to false this long after the latest trigger; absent: it stays true. */
  clearSeconds: seconds.optional(),
});

/** Door/window sensors: opened at random, closed again after a while. */
const ContactBehaviour = z.strictObject({
  use: z.literal('contact'),
  property: PropRef,
  /** Value of `property` meaning "open" (sensors differ). */
  openValue: z.boolean().default(true),
  openEvent: EventRef.optional(),
  closeEvent: EventRef.optional(),
  meanIntervalSeconds: seconds,
  openSeconds: z.tuple([z.number().positive(), z.number().positive()]),
});

/**
 * A quantity regulated by an appliance: an AC pulls room temperature toward its target, a purifier
 * pulls PM2.5 down. Off, the quantity drifts back toward ambient. Power draw follows the effort.
 */
const ClimateControlBehaviour = z.strictObject({
  use: z.literal('climate-control'),
  on: PropRef,
  quantity: PropRef,
  /** A property (the target temperature) or a fixed value. */
  setpoint: z.union([PropRef, z.number()]),
  ambient: z.number(),
  /** Fraction of the distance to the setpoint closed per minute when on. */
  approachPerMinute: z.number().min(0).max(1),
  /** Fraction of the distance to ambient recovered per minute when off. */
  driftPerMinute: z.number().min(0).max(1),
  reportThreshold: z.number().nonnegative(),
  tickSeconds: seconds.default(60),
  power: z.strictObject({
    /** Property receiving instantaneous power (optional: many models do not expose it). */
    property: PropRef.optional(),
    /** Cumulative energy property in kWh. */
    energy: PropRef.optional(),
    standbyW: z.number().nonnegative(),
    minW: z.number().nonnegative(),
    maxW: z.number().positive(),
    /** Distance to setpoint at which the appliance works at maxW. */
    fullEffortAt: z.number().positive(),
  }).optional(),
});

/** Washer programs: start, count left-time down, end with the wash-end event. */
const WashCycleBehaviour = z.strictObject({
  use: z.literal('wash-cycle'),
  on: PropRef,
  status: PropRef,
  mode: PropRef.optional(),
  leftTime: PropRef,
  startAction: ActionRef,
  pauseAction: ActionRef.optional(),
  endEvent: EventRef,
  statusValues: z.strictObject({
    standby: z.number().int(), running: z.number().int(), paused: z.number().int(), done: z.number().int(),
  }),
  /** Program length in minutes by mode value; `default` for the others. */
  programMinutes: z.record(z.string(), z.number().positive()),
  watts: z.strictObject({ standby: z.number().nonnegative(), running: z.number().positive() }),
  /**
   * The door interlock: a property saying why the door cannot open now. Locked by the water in
   * the drum while washing, by the spin in the program's last minutes, by hot air throughout a
   * drying program; after the end a hot program keeps it locked while it cools, then it opens.
   */
  door: z.strictObject({
    property: PropRef,
    values: z.strictObject({
      open: z.number().int(), hotAir: z.number().int(), hotWater: z.number().int(), waterLevel: z.number().int(), spinning: z.number().int(),
    }),
    /** The last minutes of a washing program, spent spinning. */
    spinMinutes: z.number().positive(),
    /** Programs (mode values) that dry: locked by hot air. */
    dryModes: z.array(z.string()).default([]),
    /** Programs (mode values) that wash hot: locked by hot water while cooling after the end. */
    hotModes: z.array(z.string()).default([]),
    /** Minutes a drying or hot program keeps the door locked after its end. */
    coolMinutes: z.number().nonnegative().default(0),
  }).optional(),
});

/** Robot vacuums: clean, drain the battery, return to the dock and charge. */
const VacuumBehaviour = z.strictObject({
  use: z.literal('vacuum'),
  status: PropRef,
  battery: PropRef,
  chargingState: PropRef.optional(),
  startAction: ActionRef,
  stopAction: ActionRef,
  chargeAction: ActionRef.optional(),
  statusValues: z.strictObject({
    idle: z.number().int(), sweeping: z.number().int(), goCharging: z.number().int(), charging: z.number().int(),
  }),
  chargingStateValues: z.strictObject({ charging: z.number().int(), notCharging: z.number().int() }).optional(),
  drainPerMinute: z.number().positive(),
  chargePerMinute: z.number().positive(),
  returnAtPercent: z.number().min(0).max(100),
  cleanMinutes: z.tuple([z.number().positive(), z.number().positive()]),
  returnMinutes: z.number().positive().default(2),
  completedEvent: EventRef.optional(),
  lowBatteryEvent: EventRef.optional(),
});

/** Speakers: playing-state follows play/pause; a track ends after a while. */
const MediaPlayerBehaviour = z.strictObject({
  use: z.literal('media-player'),
  playingState: PropRef,
  playAction: ActionRef,
  pauseAction: ActionRef,
  nextAction: ActionRef.optional(),
  stateValues: z.strictObject({ stopped: z.number().int(), playing: z.number().int(), paused: z.number().int() }),
  /** Length of a play session (tracks in a row) in minutes. */
  sessionMinutes: z.tuple([z.number().positive(), z.number().positive()]),
});

/**
 * Smart-speaker voice requests: each one is an event carrying the request text and the speaking
 * user's id; a music request also starts playback.
 */
const VoiceAssistantBehaviour = z.strictObject({
  use: z.literal('voice-assistant'),
  event: EventRef,
  textProperty: PropRef,
  userProperty: PropRef,
  musicAction: ActionRef.optional(),
});

/** A level that falls steadily: a battery, a filter's life. Emits a low event once below a threshold. */
const BatteryDrainBehaviour = z.strictObject({
  use: z.literal('battery-drain'),
  property: PropRef,
  perDay: z.number().positive(),
  min: z.number(),
  lowThreshold: z.number().optional(),
  lowEvent: EventRef.optional(),
  /** Report changes of at least this much (0 = every step). */
  reportThreshold: z.number().nonnegative().default(1),
  tickSeconds: seconds.default(3600),
});

/** A switched load (plug, light): power and energy follow the on/off state. */
const PowerDrawBehaviour = z.strictObject({
  use: z.literal('power-draw'),
  on: PropRef,
  /** Instantaneous power property; raw = watts * scale (e.g. 100 for a 0.01 W unit). */
  power: PropRef.optional(),
  energy: PropRef.optional(),
  /** Raw energy units per kWh (e.g. 1000 for Wh). */
  energyScale: z.number().positive().default(1),
  scale: z.number().positive().default(1),
  /** Load range in watts while on; a value is drawn when switched on. */
  watts: z.tuple([z.number().nonnegative(), z.number().nonnegative()]),
  /** Optional brightness property that scales the load (lights). */
  brightness: PropRef.optional(),
  standbyW: z.number().nonnegative().default(0.5),
  reportThreshold: z.number().nonnegative().default(1),
  tickSeconds: seconds.default(60),
});

/**
 * Smart door locks: people come and go (a Poisson stream, livelier when the home is), each time
 * unlocking from outside or inside and the lock locking itself again once the door is shut. Each
 * unlock and lock is a lock event whose arguments are the spec's operation properties, set first.
 */
const DoorLockBehaviour = z.strictObject({
  use: z.literal('door-lock'),
  /** The lock event (its arguments are filled from the properties below). */
  event: EventRef,
  /** The door-state property, and its locked and unlocked values. */
  state: PropRef,
  stateValues: z.strictObject({ locked: z.number().int(), unlocked: z.number().int() }),
  /** How the lock was operated: outside = ways in (fingerprint, password, ...), inside = the handle button. */
  method: PropRef,
  methodValues: z.strictObject({ outside: z.array(z.number().int()).min(1), inside: z.number().int(), auto: z.number().int().optional() }),
  /** Where it was operated from. */
  position: PropRef,
  positionValues: z.strictObject({ inside: z.number().int(), outside: z.number().int() }),
  /** What the lock did (the spec's lock-action property). */
  operation: PropRef,
  operationValues: z.strictObject({ unlock: z.number().int(), lock: z.number().int() }),
  /** Unix time (seconds) of the operation, from the virtual clock. */
  time: PropRef.optional(),
  /** Which stored credential opened it (a small number per household member). */
  operator: PropRef.optional(),
  /** Mean time between comings and goings, at typical household activity. */
  meanIntervalSeconds: seconds,
  /** The door stays unlocked this long (seconds, min and max) before it locks again. */
  openSeconds: z.tuple([z.number().positive(), z.number().positive()]),
});

/**
 * Kettles and cookers, used by hand: a person starts a heating cycle now and then (a Poisson
 * stream, livelier when the home is); the temperature climbs to the target, the appliance keeps
 * it warm for a while (or not), then cools back to the room. An optional event marks the end of
 * heating (a cooker's cooking-finished); an optional action cancels a cycle.
 */
const HeatingCycleBehaviour = z.strictObject({
  use: z.literal('heating-cycle'),
  temperature: PropRef,
  /** Where heating stops: a property (the kettle's target temperature) or a fixed value (°C). */
  target: z.union([PropRef, z.number()]),
  /** Room temperature the appliance starts from and cools back to (°C). */
  ambient: z.number(),
  /** Status property and its values while idle, heating and keeping warm. */
  status: PropRef.optional(),
  statusValues: z.strictObject({ idle: z.number().int(), heating: z.number().int(), keepWarm: z.number().int().optional() }).optional(),
  /** How long heating takes, minutes (min and max). */
  heatMinutes: z.tuple([z.number().positive(), z.number().positive()]),
  /** How long it keeps warm after heating, minutes (min and max); [0, 0] for none. */
  keepWarmMinutes: z.tuple([z.number().nonnegative(), z.number().nonnegative()]).default([0, 0]),
  /** Fraction of the distance to ambient lost per minute while cooling. */
  coolPerMinute: z.number().min(0).max(1),
  endEvent: EventRef.optional(),
  cancelAction: ActionRef.optional(),
  /** Mean time between uses, at typical household activity. */
  meanIntervalSeconds: seconds,
  /** Report the temperature when it moved at least this much since its last report. */
  reportThreshold: z.number().nonnegative(),
});

export const BehaviourSpec = z.discriminatedUnion('use', [
  HeartbeatBehaviour, RandomWalkBehaviour, MotionBehaviour, ContactBehaviour, ClimateControlBehaviour,
  WashCycleBehaviour, VacuumBehaviour, MediaPlayerBehaviour, BatteryDrainBehaviour, PowerDrawBehaviour,
  VoiceAssistantBehaviour, DoorLockBehaviour, HeatingCycleBehaviour,
]);
export const BEHAVIOUR_NAMES = [
  'heartbeat', 'random-walk', 'motion', 'contact', 'climate-control', 'wash-cycle', 'vacuum',
  'media-player', 'battery-drain', 'power-draw', 'voice-assistant', 'door-lock', 'heating-cycle',
] as const;

const modelHeader = {
  /** Model string, vendor.category.version, e.g. "xiaomi.aircondition.mc4" (at most 32 chars). */
  model: z.string().max(32).regex(/^[a-z0-9]+\.[a-z0-9_]+\.[a-z0-9_]+$/, 'expected vendor.category.version, e.g. "zhimi.airpurifier.ma4"'),
  name: z.string().min(1),
  category: z.enum(CATEGORIES),
  /** The instance URN; template-derived instances end with the template's uuid (`...:1:0000D062`). */
  urn: z.string().regex(/^urn:miot-spec-v2:device:[a-z0-9-]+:[0-9A-F]{8}:[a-z0-9-]+:\d+(:[0-9A-F]{8})?$/, 'expected urn:miot-spec-v2:device:<type>:<8 hex>:<vendor-product>:<version>[:<template uuid>]'),
  transport: z.enum(TRANSPORTS),
  /**
   * Where the model is sold: market groups (china, europe, latin-america, asia, north-america), or
   * `global`. Populations deal a model only to homes in its markets. Default: global.
   */
  markets: z.array(z.enum(MARKETS)).min(1).default(['global']),
  /** Where the spec instance comes from (provenance). */
  source: z.string().min(1),
};

/** A device model as the simulator uses it: every service spelled out (fragments resolved). */
export const DeviceModelSpec = z.strictObject({
  ...modelHeader,
  services: z.array(ServiceSpec).min(1),
  behaviours: z.array(BehaviourSpec).default([]),
});

/** A fragment's name: its file name in `fragments/` without `.yaml`, e.g. "device-information". */
export const FragmentName = z.string().regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, 'expected a fragment name in kebab-case, e.g. "device-information"');

/**
 * A device model file as written in `devices/`: a model whose `include` names fragments from
 * `devices/fragments/`. Their services join the file's own (in siid order) before validation.
 */
export const DeviceFileSpec = z.strictObject({
  ...modelHeader,
  include: z.array(FragmentName).optional(),
  services: z.array(ServiceSpec).min(1),
  behaviours: z.array(BehaviourSpec).default([]),
});

/**
 * A fragment file in `devices/fragments/`: services that several models share, included by name.
 * String values may say `${model}` and `${vendor}` (the model's first dotted part), filled in from
 * the including model.
 */
export const FragmentSpec = z.strictObject({
  description: z.string().optional(),
  services: z.array(ServiceSpec).min(1),
});

export type PropertySpec = z.infer<typeof PropertySpec>;
export type ActionSpec = z.infer<typeof ActionSpec>;
export type EventSpec = z.infer<typeof EventSpec>;
export type ServiceSpec = z.infer<typeof ServiceSpec>;
export type BehaviourSpec = z.infer<typeof BehaviourSpec>;
export type DeviceModel = z.infer<typeof DeviceModelSpec>;
export type DeviceFile = z.infer<typeof DeviceFileSpec>;
export type BehaviourOf<U extends BehaviourSpec['use']> = Extract<BehaviourSpec, { use: U }>;
