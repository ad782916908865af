/**
 * How a home lives, in its own local time: its people open the Mijia app and command devices,
 * talk to their speakers, run the AC or the fan on hot afternoons, wash, vacuum and switch lights
 * on in the evening. Everything runs on the virtual clock from the home's seeded RNG. What a
 * command does travels as MQTT through the broker (app clients, the voice cloud, automations),
 * never by touching devices; only what a person does physically (speaking to a speaker, pressing
 * a button, a remote or a wall switch) is a direct device input.
 */
import type { DeviceModel } from '../catalog/schema.js';
import type { Device } from '../device/device.js';
import type { Scalar } from '../contract/wire.js';
import type { Home } from './population.js';
import { monthlyHigh, type HourlyCurve, type LocalTime } from './rhythm.js';
import { Rng } from './rng.js';
import type { BehaviourSection } from '../catalog/scenario.js';
import type { Scheduler, TimerHandle } from '../contract/clock.js';

const DAY = 86_400_000;

type Sender = { via: 'app'; uid: string } | { via: 'voice' } | { via: 'automation' };
/** How a routine switch reaches the device: through the network, or by hand at the device. */
type Channel = Sender | { via: 'hand' };

/** What a household can do through the network (implemented by the simulation, all queued in order). */
export interface HouseholdChannel {
  appSession(uid: string): void;
  appCommand(uid: string, did: string, method: 'set_properties' | 'action', params: unknown): void;
  /** The voice cloud acting on a spoken request, for the speaker's home. */
  voiceCommand(did: string, method: 'set_properties' | 'action', params: unknown): void;
  /** A scene or automation in the cloud (set up by one of the home's app users), commanding a device. */
  automationCommand(did: string, method: 'set_properties' | 'action', params: unknown): void;
}

export interface HouseholdCounters {
  appSessions: number;
  voiceInteractions: number;
  automations: number;
  /** Switching done by hand at the device (buttons, remote, wall switch): no command, no app. */
  byHand: number;
  commands: number;
  skippedOffline: number;
}

/** How a model is commanded, read from its behaviours (no per-model code). */
interface Controls {
  on?: string;
  level?: string;
  setpoint?: string;
  start?: string;
  mode?: string;
  play?: string;
  pause?: string;
}

export function controlsOf(model: DeviceModel): Controls {
  const c: Controls = {};
  for (const b of model.behaviours) {
    switch (b.use) {
      case 'power-draw':
        c.on = b.on;
        if (b.brightness) c.level = b.brightness;
        break;
      case 'climate-control':
        c.on = b.on;
        if (typeof b.setpoint === 'string') c.setpoint = b.setpoint;
        break;
      case 'wash-cycle':
        c.start = b.startAction;
        if (b.mode) c.mode = b.mode;
        break;
      case 'vacuum':
        c.start = b.startAction;
        break;
      case 'media-player':
        c.play = b.playAction;
        c.pause = b.pauseAction;
        break;
      default:
        break;
    }
  }
  return c;
}

const split = (ref: string): [number, number] => ref.split('.').map(Number) as [number, number];
const setParams = (did: string, pairs: Array<[string, Scalar]>) =>
  pairs.map(([ref, value]) => { const [siid, piid] = split(ref); return { did, siid, piid, value }; });
const actionParams = (did: string, ref: string) => { const [siid, aiid] = split(ref); return { did, siid, aiid, in: [] }; };

export interface HouseholdDeps {
  home: Home;
  devices: Map<string, Device>;
  scheduler: Scheduler;
  seed: number;
  local: LocalTime;
  curve: HourlyCurve;
  behaviour: BehaviourSection;
  channel: HouseholdChannel;
}

export class Household {
  readonly counters: HouseholdCounters = { appSessions: 0, voiceInteractions: 0, automations: 0, byHand: 0, commands: 0, skippedOffline: 0 };
  /** People of this home who use the Mijia app (drawn once, by `behaviour.app.userShare`). */
  readonly appUsers: string[];
  /** People of this home who talk to its speakers (none without one; drawn once, by `behaviour.voice.userShare`). */
  readonly voiceUsers: string[];
  private readonly timers = new Set<TimerHandle>();
  /** Each Poisson process's pending candidate (see poisson()). */
  private readonly processes: Array<{ timer: TimerHandle | null }> = [];
  private readonly rng: Rng;
  /** Everyone who lives here: the owner and the members. */
  private readonly people: string[];
  private readonly maxCurve: number;
  private readonly byCategory = new Map<string, Device[]>();

  get home(): Home { return this.d.home; }

  constructor(private readonly d: HouseholdDeps) {
    this.rng = Rng.from(d.seed, 'household', d.home.id);
    this.people = [d.home.ownerUid, ...d.home.memberUids];
    const pick = this.rng.fork('app-users');
    this.appUsers = this.people.filter(() => pick.chance(d.behaviour.app.userShare));
    this.maxCurve = Math.max(...d.curve);
    for (const plan of d.home.devices) {
      const dev = d.devices.get(plan.did);
      if (!dev) continue;
      const list = this.byCategory.get(dev.category) ?? [];
      list.push(dev);
      this.byCategory.set(dev.category, list);
    }
    const talk = this.rng.fork('voice-users');
    this.voiceUsers = this.speakers().length ? this.people.filter(() => talk.chance(d.behaviour.voice.userShare)) : [];
  }

  /** Liveliness now (1 = the day's mean), for devices' own behaviours (motion, doors). */
  activity(): number {
    return this.d.curve[this.d.local.hour(this.d.scheduler.now())]!;
  }

  start(): void {
    const b = this.d.behaviour;
    // Each app user and each voice user has a rate of their own around the scenario's mean.
    for (const uid of this.appUsers) {
      const r = this.rng.fork('app', uid);
      this.poisson(r, r.gamma(b.app.engagement, b.app.sessionsPerUserPerDay), () => this.appSession(uid, r));
    }
    for (const uid of this.voiceUsers) {
      const r = this.rng.fork('voice', uid);
      this.poisson(r, r.gamma(b.voice.engagement, b.voice.requestsPerUserPerDay), () => this.voice(uid, r));
    }
    // Plan each local day just after local midnight; the first (partial) day is planned now.
    this.planDay(true);
    const scheduleMidnight = (): void => {
      const at = this.d.local.nextAt(this.d.scheduler.now() + 60_000, 0) + 60_000;
      this.own(this.d.scheduler.at(at, () => { this.planDay(false); scheduleMidnight(); }));
    };
    scheduleMidnight();
  }

  stop(): void {
    for (const t of this.timers) t.cancel();
    this.timers.clear();
    for (const p of this.processes) p.timer?.cancel();
    this.processes.length = 0;
  }

  private own(t: TimerHandle): TimerHandle {
    this.timers.add(t);
    return t;
  }

  private devicesOf(category: string): Device[] {
    return this.byCategory.get(category) ?? [];
  }

  /** The home's speakers with a voice assistant. */
  private speakers(): Device[] {
    return this.devicesOf('speaker').filter((s) => s.accepts('voice'));
  }

  /** A Poisson process whose rate follows the daily curve (thinning), `perDay` events a day on average. */
  private poisson(r: Rng, perDay: number, fire: () => void): void {
    if (!(perDay > 0)) return;
    const meanGap = DAY / (perDay * this.maxCurve);
    // A process has one candidate pending at a time: it is kept in the process's own slot (for
    // stop()), not added to and deleted from the household's timer set for every candidate.
    const slot: { timer: TimerHandle | null } = { timer: null };
    this.processes.push(slot);
    const decide = (): void => {
      slot.timer = null;
      if (r.next() * this.maxCurve < this.activity()) fire();
      next();
    };
    const next = (): void => {
      slot.timer = this.d.scheduler.after(r.exponential(meanGap), decide);
    };
    next();
  }

  /** At `hour` (local, may exceed 24) on the local day that starts at `dayStart`. */
  private atLocal(dayStart: number, hour: number, fn: () => void): void {
    const at = this.d.local.nextAt(dayStart, hour % 24) + Math.floor(hour / 24) * DAY;
    if (at <= this.d.scheduler.now()) return;
    const t = this.d.scheduler.at(at, () => { this.timers.delete(t); fn(); });
    this.own(t);
  }

  private planDay(first: boolean): void {
    const now = this.d.scheduler.now();
    const local = this.d.local;
    const day = local.day(now);
    const dayStart = first ? now - local.hour(now) * 3_600_000 - (now % 3_600_000) : now;
    const r = this.rng.fork('day', day);
    const a = this.d.behaviour.appliances;
    const between = ([lo, hi]: readonly [number, number]): number => r.range(lo, hi);

    // Air conditioning (or a fan) on hot afternoons: the hotter the day, the likelier.
    const high = this.dailyHigh(day);
    for (const ac of [...this.devicesOf('air-conditioner'), ...this.devicesOf('fan')]) {
      const p = high >= a.acOnAboveC ? Math.min(0.95, 0.35 + 0.12 * (high - a.acOnAboveC)) : 0.02;
      if (!r.chance(p)) continue;
      const c = controlsOf(ac.model);
      const target = Math.round(r.range(a.acTarget[0], a.acTarget[1]) * 2) / 2;
      this.atLocal(dayStart, between(a.acOnHours), () => this.control(ac, r, [[c.on!, true], ...(c.setpoint ? [[c.setpoint, target] as [string, Scalar]] : [])]));
      this.atLocal(dayStart, between(a.acOffHours), () => this.control(ac, r, [[c.on!, false]]));
    }
    for (const w of this.devicesOf('washer')) {
      if (!r.chance(a.washerCyclesPerWeek / 7)) continue;
      this.atLocal(dayStart, between(a.washerHours), () => this.startProgram(w, r));
    }
    for (const v of this.devicesOf('vacuum')) {
      if (!r.chance(a.vacuumRunsPerWeek / 7)) continue;
      const c = controlsOf(v.model);
      if (c.start) this.atLocal(dayStart, between(a.vacuumHours), () => this.startRun(v, r, c.start!));
    }
    const lights = this.devicesOf('light');
    if (lights.length && r.chance(a.lightsEveningShare)) {
      const on = between(a.lightsOnHours);
      const off = between(a.lightsOffHours);
      for (const l of lights) {
        const c = controlsOf(l.model);
        if (!c.on) continue;
        const level = Math.round(r.range(40, 100));
        this.atLocal(dayStart, on + r.range(0, 0.5), () => this.control(l, r, [[c.on!, true], ...(c.level ? [[c.level, level] as [string, Scalar]] : [])]));
        this.atLocal(dayStart, off + r.range(0, 0.25), () => this.control(l, r, [[c.on!, false]]));
      }
    }
  }

  /** The region's daily high, shared by every home in the region on that day. */
  private dailyHigh(day: number): number {
    const month = this.d.local.month(day * DAY + 12 * 3_600_000);
    const weather = Rng.from(this.d.seed, 'weather', this.d.home.region, day);
    return monthlyHigh(this.d.home.region, month) + this.d.behaviour.climate.offsetC + weather.normal(0, 2.5);
  }

  private appSession(uid: string, r: Rng): void {
    this.counters.appSessions++;
    this.d.channel.appSession(uid);
    if (!r.chance(this.d.behaviour.app.commandShare)) return;
    const candidates = [...this.devicesOf('light'), ...this.devicesOf('plug'), ...this.devicesOf('air-purifier'), ...this.devicesOf('fan'), ...this.devicesOf('speaker')];
    if (!candidates.length) return;
    const dev = r.pick(candidates);
    const c = controlsOf(dev.model);
    if (c.on) this.send(dev, { via: 'app', uid }, 'set_properties', setParams(dev.did, [[c.on, dev.store.get(c.on) !== true]]));
    else if (c.play && c.pause) this.send(dev, { via: 'app', uid }, 'action', actionParams(dev.did, r.chance(0.5) ? c.play : c.pause));
  }

  /** `uid` speaks to one of the home's speakers (one that is online: the request needs the cloud). */
  private voice(uid: string, r: Rng): void {
    const speakers = this.speakers().filter((s) => s.online);
    if (!speakers.length) return;
    const speaker = r.pick(speakers);
    const v = this.d.behaviour.voice;
    const x = r.next();
    this.counters.voiceInteractions++;
    if (x < v.musicShare) {
      speaker.userInput({ kind: 'voice', uid, text: r.pick(['play some music', 'play the radio', 'play my favourites']), music: true });
      return;
    }
    if (x < v.musicShare + v.controlShare) {
      const targets = [...this.devicesOf('light'), ...this.devicesOf('air-conditioner'), ...this.devicesOf('fan'), ...this.devicesOf('plug')];
      if (targets.length) {
        const dev = r.pick(targets);
        const c = controlsOf(dev.model);
        if (c.on) {
          const on = dev.store.get(c.on) !== true;
          speaker.userInput({ kind: 'voice', uid, text: `turn ${on ? 'on' : 'off'} the ${dev.category.replace('-', ' ')}`, music: false });
          this.send(dev, { via: 'voice' }, 'set_properties', setParams(dev.did, [[c.on, on]]));
          return;
        }
      }
    }
    speaker.userInput({ kind: 'voice', uid, text: r.pick(['what is the weather tomorrow', 'set a timer for ten minutes', 'what time is it']), music: false });
  }

  /**
   * Switch or set a device as part of the day's routine: by voice where someone here talks to an
   * online speaker (`routines.voiceShare` of the time), else as the home's app users do it (a
   * cloud automation one of them set up, or from the app), else by hand at the device.
   */
  private control(dev: Device, r: Rng, pairs: Array<[string, Scalar]>): void {
    const speakers = this.speakers().filter((s) => s.online);
    if (this.voiceUsers.length && speakers.length && r.chance(this.d.behaviour.routines.voiceShare)) {
      const speaker = r.pick(speakers);
      const uid = r.pick(this.voiceUsers);
      this.counters.voiceInteractions++;
      speaker.userInput({ kind: 'voice', uid, text: `turn ${pairs[0]![1] === false ? 'off' : 'on'} the ${dev.category.replace('-', ' ')}`, music: false });
      this.send(dev, { via: 'voice' }, 'set_properties', setParams(dev.did, pairs));
      return;
    }
    const by = this.channel(r);
    if (by.via === 'hand') this.byHand(dev, pairs);
    else this.send(dev, by, 'set_properties', setParams(dev.did, pairs));
  }

  /** Start a run (a vacuum) the way the home does things: automation, app, or the button on the device. */
  private startRun(dev: Device, r: Rng, action: string): void {
    const by = this.channel(r);
    if (by.via === 'hand') this.byHand(dev, [], action);
    else this.send(dev, by, 'action', actionParams(dev.did, action));
  }

  private startProgram(washer: Device, r: Rng): void {
    const c = controlsOf(washer.model);
    if (!c.start) return;
    const by = this.channel(r);
    const list = c.mode ? washer.store.spec(c.mode)?.['value-list'] : undefined;
    const mode: Array<[string, Scalar]> = c.mode && list?.length ? [[c.mode, r.pick(list.slice(0, 10)).value]] : [];
    if (by.via === 'hand') {
      this.byHand(washer, mode, c.start);
      return;
    }
    if (mode.length) this.send(washer, by, 'set_properties', setParams(washer.did, mode));
    this.send(washer, by, 'action', actionParams(washer.did, c.start));
  }

  /**
   * How the home switches things it does not say to a speaker: a home with app users runs a
   * share of it as cloud automations (an automation needs an app user who set it up), a share
   * from the app, and the rest by hand; a home where nobody uses the app does it all by hand.
   */
  private channel(r: Rng): Channel {
    if (!this.appUsers.length) return { via: 'hand' };
    const { automationShare, appShare } = this.d.behaviour.routines;
    const x = r.next();
    if (x < automationShare) {
      this.counters.automations++;
      return { via: 'automation' };
    }
    if (x >= automationShare + appShare) return { via: 'hand' };
    const uid = r.pick(this.appUsers);
    this.counters.appSessions++;
    this.d.channel.appSession(uid);
    return { via: 'app', uid };
  }

  /** A person at the device: the buttons, the remote or the wall switch (works without the network). */
  private byHand(dev: Device, pairs: Array<[string, Scalar]>, action?: string): void {
    this.counters.byHand++;
    if (pairs.length) dev.applyWrites(pairs.map(([ref, value]) => { const [siid, piid] = split(ref); return { siid, piid, value }; }));
    if (action) {
      const [siid, aiid] = split(action);
      if (dev.action(siid, aiid)) dev.runAction(siid, aiid, []);
    }
  }

  private send(dev: Device, by: Sender, method: 'set_properties' | 'action', params: unknown): void {
    // The app shows an offline device as offline; nobody commands it.
    if (!dev.online) {
      this.counters.skippedOffline++;
      return;
    }
    this.counters.commands++;
    if (by.via === 'app') this.d.channel.appCommand(by.uid, dev.did, method, params);
    else if (by.via === 'voice') this.d.channel.voiceCommand(dev.did, method, params);
    else this.d.channel.automationCommand(dev.did, method, params);
  }
}
