/**
 * What the cloud sets up before anything connects: every device and user gets its credentials
 * (registered, with ownership, in the embedded broker's access directory; an external broker
 * applies its own), each device its `Device` object, each home its `Household`. Also answers
 * what the platform may know of a device from its binding (model, category, region, owner).
 */
import { randomFillSync } from 'node:crypto';
import type { AccessDirectory } from '../broker/access.js';
import { region as regionOf } from '../catalog/regions.js';
import type { Scenario } from '../catalog/scenario.js';
import type { DeviceModel } from '../catalog/schema.js';
import type { Scheduler } from '../contract/clock.js';
import type { WireProfile } from '../contract/wire.js';
import { announcesState, Device } from '../device/device.js';
import { AiotSimError } from '../errors.js';
import type { DeviceFacts } from '../platform/registry.js';
import { Household, type HouseholdChannel } from './household.js';
import type { DevicePlan, Population } from './population.js';
import { DEFAULT_CURVE, LocalTime, normaliseCurve } from './rhythm.js';
import { Rng } from './rng.js';
import type { SessionPlan } from './session-pool.js';
import type { AppUser } from './users.js';

export interface ProvisionerOptions {
  population: Population;
  scenario: Scenario;
  seed: number;
  scheduler: Scheduler;
  /** The format devices speak. Default "cloud". */
  wire?: WireProfile;
  /**
   * Every device the platform may see (a shard's platform observing a shared broker sees the other
   * shards' devices too): `facts()` answers for these. Default: `population`.
   */
  known?: Population;
}

export class Provisioner {
  /** Every device, children included, by did (filled by `provision()`). */
  readonly devices = new Map<string, Device>();
  /** Every home's household, in population order (filled by `provision()`). */
  readonly households: Household[] = [];
  private readonly plans = new Map<string, DevicePlan>();
  /** Every device `facts()` answers for. */
  private readonly knownPlans: Map<string, DevicePlan>;
  private readonly deviceTokens = new Map<string, string>();
  private readonly userTokens = new Map<string, string>();
  private provisioned = false;

  constructor(private readonly opts: ProvisionerOptions) {
    for (const plan of opts.population.devices) this.plans.set(plan.did, plan);
    this.knownPlans = opts.known ? new Map(opts.known.devices.map((d) => [d.did, d])) : this.plans;
  }

  /** The region of a device's home. */
  regionOf(did: string): string | undefined {
    return this.plans.get(did)?.region;
  }

  /** What the platform knows of a device from its binding: model, category, region, owner, a gateway's BLE children. */
  facts(did: string): DeviceFacts | undefined {
    const d = this.knownPlans.get(did);
    if (!d) return undefined;
    const f: DeviceFacts = { model: d.model.model, category: d.model.category, region: d.region, uid: d.uid };
    if (d.model.transport !== 'wifi') f.radio = d.model.transport;
    if (d.children.length) {
      const stateless = d.children.filter((c) => !announcesState(c.model)).map((c) => c.did);
      if (stateless.length) f.statelessChildren = stateless;
    }
    const voice = voiceEventOf(d.model);
    if (voice) f.voice = voice;
    return f;
  }

  /**
   * Give every device and user its credentials and register them (and ownership) with `access`
   * (null: an external broker, which applies its own); build the devices and households. Once.
   */
  provision(access: Pick<AccessDirectory, 'registerDevice' | 'registerUser'> | null, channel: HouseholdChannel): void {
    if (this.provisioned) throw new AiotSimError('E_STATE', 'internal', 'provision(): the population is already provisioned');
    this.provisioned = true;
    const { population } = this.opts;
    const homes = new Map(population.homes.map((h) => [h.id, h]));
    const secret = secretHex();
    for (const plan of population.sessions) {
      const token = secret(16);
      this.deviceTokens.set(plan.did, token);
      const members = homes.get(plan.homeId)?.memberUids ?? [];
      access?.registerDevice(plan.did, { token, uid: plan.uid, members, children: plan.children.map((c) => c.did) });
    }
    const householdOf = new Map<string, Household>();
    const rhythm = this.opts.scenario.behaviour.rhythm;
    const curve = rhythm ? normaliseCurve(rhythm) : DEFAULT_CURVE;
    this.buildDevices(householdOf, Math.max(...curve));
    const locals = new Map<string, LocalTime>();
    for (const home of population.homes) {
      for (const uid of [home.ownerUid, ...home.memberUids]) {
        const token = secret(12);
        this.userTokens.set(uid, token);
        access?.registerUser(uid, token);
      }
      let local = locals.get(home.region);
      if (!local) locals.set(home.region, (local = new LocalTime(regionOf(home.region).timeZone)));
      const h = new Household({
        home, devices: this.devices, scheduler: this.opts.scheduler, seed: this.opts.seed, local, curve,
        behaviour: this.opts.scenario.behaviour, channel,
      });
      householdOf.set(home.id, h);
      this.households.push(h);
    }
  }

  /** The sessions to open, in population order: each Wi-Fi device or gateway with its children and token. */
  sessionPlans(): SessionPlan[] {
    return this.opts.population.sessions.map((plan) => ({
      device: this.devices.get(plan.did)!,
      children: plan.children.map((c) => this.devices.get(c.did)!),
      token: this.deviceTokens.get(plan.did)!,
    }));
  }

  /** People who use the app (each gets an app client), with their credentials and homes' devices. */
  appUsers(): AppUser[] {
    return this.households.flatMap((h) => h.appUsers.map((uid) => ({
      uid, token: this.userTokens.get(uid)!, homeId: h.home.id, dids: h.home.devices.map((d) => d.did),
    })));
  }

  /** `householdOf`: each home's household, filled in once the devices are built (activity 1 until then). */
  private buildDevices(householdOf: ReadonlyMap<string, Household>, peakActivity: number): void {
    const rng = Rng.from(this.opts.seed, 'devices');
    const { scenario } = this.opts;
    for (const plan of this.opts.population.devices) {
      // The household is looked up once it exists, then kept (asked for every Poisson candidate).
      let home: Household | undefined;
      const activity = (): number => (home ??= householdOf.get(plan.homeId))?.activity() ?? 1;
      const opts: ConstructorParameters<typeof Device>[0] = {
        did: plan.did, model: plan.model, uid: plan.uid, scheduler: this.opts.scheduler, rng: rng.fork(plan.did),
        activity, peakActivity, offlineBuffer: scenario.network.offlineBuffer,
        telemetry: scenario.behaviour.telemetry,
      };
      if (plan.parentId) opts.parentId = plan.parentId;
      if (this.opts.wire) opts.wire = this.opts.wire;
      this.devices.set(plan.did, new Device(opts));
    }
  }
}

/** Each model's voice event, found once (the platform asks for every event message a device sends). */
const voiceEvents = new WeakMap<DeviceModel, DeviceFacts['voice'] | null>();

function voiceEventOf(model: DeviceModel): DeviceFacts['voice'] | undefined {
  let v = voiceEvents.get(model);
  if (v === undefined) voiceEvents.set(model, (v = findVoiceEvent(model) ?? null));
  return v ?? undefined;
}

/** A speaker model's voice-interaction event and the argument that carries the user id. */
function findVoiceEvent(model: DeviceModel): DeviceFacts['voice'] | undefined {
  for (const svc of model.services) {
    const ev = svc.events.find((e) => e.name === 'voice-interaction');
    const user = svc.properties.find((p) => p.name === 'user-id');
    if (ev && user && ev.arguments.includes(user.piid)) return { siid: svc.siid, eiid: ev.eiid, userPiid: user.piid };
  }
  return undefined;
}

/**
 * Random credentials as hex, `bytes` at a time, from the system's secure generator read 8 KiB at
 * once (a population needs one per session and user: a read for each was a measurable part of
 * provisioning half a million devices). Not from the seeded RNG: tokens must not be guessable.
 */
function secretHex(): (bytes: number) => string {
  const pool = Buffer.alloc(8192);
  let at = pool.length;
  return (bytes) => {
    if (at + bytes > pool.length) {
      randomFillSync(pool);
      at = 0;
    }
    const hex = pool.toString('hex', at, at + bytes);
    at += bytes;
    return hex;
  };
}
