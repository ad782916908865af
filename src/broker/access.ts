/**
 * Who may connect, publish, subscribe and receive what (DESIGN.md "Security defaults").
 *
 * - device: username = did, password = its token; client id must be the did. Publishes only its
 *   own `device/{did}/up/...`, `device/{did}/state` and central-hub notifications
 *   `appMsg/notify/iot/{did}/property|event/...` (a gateway also its children's); subscribes to
 *   and receives only its own `device/{did}/down/...` (a gateway also its children's).
 * - operator: username `operator`, password = the operator token. Publishes commands to any
 *   device's `down/rpc` and anything outside the reserved prefixes; reads everything.
 * - app: username `app:{uid}`, password = the user's token. Commands and watches the devices of
 *   the homes the user owns or belongs to (both wire profiles); publishes under `app/{uid}/...`;
 *   reads the platform's figures under `$SYS/aiot-sim/`.
 * - observer: no username. Never publishes under the reserved prefixes. What it reads depends on
 *   `anonymous`: `telemetry` (default) device telemetry and state, and topics outside the reserved
 *   prefixes; `all` everything; `none` refuses anonymous clients.
 *
 * Subscribing and receiving are checked apart: a filter is granted when it can match something the
 * principal may read (`device/#` for an observer), and each delivery is checked by topic
 * (`canRead`), so a wide filter delivers only what is allowed.
 */
import { randomBytes } from 'node:crypto';
import { filtersOverlap } from '../contract/mqtt-topics.js';
import { HUB_PREFIX } from '../contract/wire.js';
import { OptionsError } from '../errors.js';
import { isLoopback } from './web-origin.js';

export type Principal =
  | { role: 'device'; did: string }
  | { role: 'operator' }
  | { role: 'app'; uid: string }
  | { role: 'observer' };

export interface DeviceCredential {
  token: string;
  /** Owner's user id (app clients of this user may command the device). */
  uid: string;
  /** Other users of the home (family members sharing the device in the app). */
  members?: string[];
  /** For a gateway: the dids of its Zigbee/BLE children. */
  children?: string[];
}

export const OPERATOR_USERNAME = 'operator';

/**
 * A new operator token when none is given: 16 base64url characters (96 random bits), never
 * beginning with '-', which a command line would take for an option (`--password -x...` is refused
 * as ambiguous by our CLI, and by many others).
 */
export function newOperatorToken(): string {
  for (;;) {
    const token = randomBytes(12).toString('base64url');
    if (!token.startsWith('-')) return token;
  }
}

/** Topic prefixes of the simulation: only accounts publish there. `appMsg/` is the central hub's (`--wire local-hub`). */
const RESERVED = ['device/', 'appMsg/', 'app/', '$SYS/'];

/** What anonymous clients may do: nothing (`none`), read device telemetry and state (`telemetry`), read everything (`all`). */
export type AnonymousAccess = 'none' | 'telemetry' | 'all';
export const ANONYMOUS_ACCESS: readonly AnonymousAccess[] = ['none', 'telemetry', 'all'];

/**
 * What anonymous clients may do on a broker bound to `host`: as asked (`anonymous`, or the older
 * `allowAnonymous`), else `telemetry` on a loopback address and `none` on any other.
 */
export function anonymousAccessFor(opts: { anonymous?: AnonymousAccess; allowAnonymous?: boolean }, host: string): AnonymousAccess {
  if (opts.anonymous !== undefined) {
    if (!ANONYMOUS_ACCESS.includes(opts.anonymous)) {
      throw new OptionsError('E_OPTIONS', [{ option: 'anonymous', message: `expected one of ${ANONYMOUS_ACCESS.join(', ')}`, value: opts.anonymous }]);
    }
    return opts.anonymous;
  }
  if (opts.allowAnonymous !== undefined) return opts.allowAnonymous ? 'telemetry' : 'none';
  return isLoopback(host) ? 'telemetry' : 'none';
}

/** The reserved topics anonymous clients read under `telemetry`: device telemetry and state, in both wire profiles. */
export const TELEMETRY_FILTERS: readonly string[] = [
  'device/+/up/properties_changed/#',
  'device/+/up/event_occured/#',
  'device/+/state',
  `${HUB_PREFIX}+/property/+`,
  `${HUB_PREFIX}+/event/+`,
];

/**
 * Whether `given` (what a client sent) equals `secret`, in a time that depends on `given` alone:
 * every code unit of `given` is compared with `secret`'s (cycled when shorter), with no early
 * exit, so neither where the two first differ nor `secret`'s length shows in the time taken.
 * Every CONNECT with credentials comes here: hashing both sides with SHA-256 instead (for
 * `timingSafeEqual`, which wants equal lengths) was about 5 % of a TCP connect's broker CPU.
 */
export function safeEqual(given: string, secret: string): boolean {
  const n = secret.length;
  const m = n || 1;
  let diff = given.length ^ n;
  for (let i = 0; i < given.length; i++) diff |= given.charCodeAt(i) ^ (secret.charCodeAt(i % m) | 0);
  return diff === 0;
}

/** The credentials and ownership the platform provisions; the broker's auth reads it. */
export class AccessDirectory {
  private readonly devices = new Map<string, DeviceCredential>();
  private readonly parentOf = new Map<string, string>();
  private readonly users = new Map<string, string>();
  /** What anonymous clients may do. Default `telemetry`. */
  anonymous: AnonymousAccess = 'telemetry';

  constructor(public operatorToken: string) {}

  /** Whether anonymous clients may connect at all (`anonymous` is not `none`); setting true turns `none` into `telemetry`. */
  get allowAnonymous(): boolean { return this.anonymous !== 'none'; }
  set allowAnonymous(on: boolean) {
    if (!on) this.anonymous = 'none';
    else if (this.anonymous === 'none') this.anonymous = 'telemetry';
  }

  registerDevice(did: string, cred: DeviceCredential): void {
    this.devices.set(did, cred);
    for (const child of cred.children ?? []) this.parentOf.set(child, did);
  }

  /** Add a child to a registered gateway (after pairing). */
  addChild(gatewayDid: string, childDid: string): void {
    const gw = this.devices.get(gatewayDid);
    if (!gw) throw new RangeError(`unknown gateway ${gatewayDid}`);
    (gw.children ??= []).push(childDid);
    this.parentOf.set(childDid, gatewayDid);
  }

  registerUser(uid: string, token: string): void { this.users.set(uid, token); }
  device(did: string): DeviceCredential | undefined { return this.devices.get(did); }
  parent(did: string): string | undefined { return this.parentOf.get(did); }
  ownerOf(did: string): string | undefined {
    return this.devices.get(did)?.uid ?? this.devices.get(this.parentOf.get(did) ?? '')?.uid;
  }
  get deviceCount(): number { return this.devices.size; }

  /** Whether user `uid` may use device `did`: its owner or a member of its home. */
  mayUse(uid: string, did: string): boolean {
    const cred = this.devices.get(did) ?? this.devices.get(this.parentOf.get(did) ?? '');
    return !!cred && (cred.uid === uid || (cred.members?.includes(uid) ?? false));
  }

  /** Whether `id` is a device's did (a registered device or a gateway's child). */
  isDeviceId(id: string): boolean {
    return this.devices.has(id) || this.parentOf.has(id);
  }

  /**
   * Decide a CONNECT's credentials. Returns the principal, or a reason for refusing. Which client
   * ids a principal may use is decided apart (client-ids.ts); a device's is its did.
   */
  authenticate(clientId: string, username: string | undefined, password: string | undefined): Principal | { refused: string; returnCode: 2 | 4 } {
    if (username === undefined || username === '') {
      return this.allowAnonymous ? { role: 'observer' } : { refused: 'anonymous clients are not allowed', returnCode: 4 };
    }
    const pw = password ?? '';
    if (username === OPERATOR_USERNAME) {
      return safeEqual(pw, this.operatorToken) ? { role: 'operator' } : { refused: 'wrong operator token', returnCode: 4 };
    }
    if (username.startsWith('app:')) {
      const uid = username.slice(4);
      const token = this.users.get(uid);
      return token !== undefined && safeEqual(pw, token) ? { role: 'app', uid } : { refused: `wrong credentials for user ${uid}`, returnCode: 4 };
    }
    const cred = this.devices.get(username);
    if (!cred || !safeEqual(pw, cred.token)) return { refused: `wrong credentials for device ${username}`, returnCode: 4 };
    if (clientId !== username) return { refused: `device ${username} must connect with client id "${username}"`, returnCode: 2 };
    return { role: 'device', did: username };
  }

  /** Whether `p` may publish to `topic`; a reason when not. */
  canPublish(p: Principal, topic: string): true | string {
    switch (p.role) {
      case 'device': {
        // Read in place (this runs for every device message): no did sliced out for a device's own topics.
        const start = topic.startsWith('device/') ? 7 : topic.startsWith(HUB_PREFIX) ? HUB_PREFIX.length : -1;
        const end = start < 0 ? -1 : topic.indexOf('/', start);
        if (end > start && this.speaksForAt(p.did, topic, start, end)) {
          if (start === 7) {
            if (topic.startsWith('/up/', end) || (end + 6 === topic.length && topic.endsWith('/state'))) return true;
          } else if (topic.startsWith('/property/', end) || topic.startsWith('/event/', end)) return true;
        }
        return `device ${p.did} may publish only under device/${p.did}/up/, device/${p.did}/state and ${HUB_PREFIX}${p.did}/`;
      }
      case 'operator':
        if (/^device\/[^/]+\/down\/rpc$/.test(topic)) return true;
        return isReserved(topic) ? 'the operator may publish only device/{did}/down/rpc among reserved topics' : true;
      case 'app': {
        const did = topicDid(topic);
        if (did && topic === `device/${did}/down/rpc` && this.mayUse(p.uid, did)) return true;
        if (topic.startsWith(`app/${p.uid}/`)) return true;
        return `user ${p.uid} may publish only its own devices' down/rpc and app/${p.uid}/...`;
      }
      case 'observer':
        return isReserved(topic) ? 'anonymous observers may not publish to device/, appMsg/, app/ or $SYS/ topics' : true;
    }
  }

  /** Whether `p` may subscribe to `filter`; a reason when not. */
  canSubscribe(p: Principal, filter: string): true | string {
    switch (p.role) {
      case 'device': {
        const did = topicDid(filter);
        if (did && this.speaksFor(p.did, did) && (filter === `device/${did}/down/#` || filter.startsWith(`device/${did}/down/`))) return true;
        return `device ${p.did} may subscribe only to device/${p.did}/down/#`;
      }
      case 'app': {
        const did = topicDid(filter);
        if (did && this.mayUse(p.uid, did)) return true;
        if (filter.startsWith(`app/${p.uid}/`) || filtersOverlap(filter, PLATFORM_FILTER)) return true;
        return `user ${p.uid} may subscribe only to its own devices' topics, app/${p.uid}/... and ${PLATFORM_FILTER}`;
      }
      case 'operator':
        return true;
      case 'observer':
        if (this.anonymous === 'all' || TELEMETRY_FILTERS.some((f) => filtersOverlap(filter, f)) || !onlyReserved(filter)) return true;
        return `anonymous clients read only device telemetry and state (${TELEMETRY_FILTERS.join(', ')}) and topics outside device/, app/, appMsg/, $SYS/`;
    }
  }

  /**
   * Whether a message on `topic` may be delivered to `p` (checked for every delivery, the offline
   * queue included). Cheap: it runs once per message and subscriber.
   */
  canRead(p: Principal, topic: string): boolean {
    switch (p.role) {
      case 'operator':
        return true;
      case 'device': {
        const did = topicDid(topic);
        return did !== undefined && this.speaksFor(p.did, did) && topic.startsWith(`device/${did}/down/`);
      }
      case 'app': {
        const did = topicDid(topic);
        if (did !== undefined) return this.mayUse(p.uid, did);
        return topic.startsWith(`app/${p.uid}/`) || topic.startsWith(PLATFORM_PREFIX);
      }
      case 'observer':
        return this.anonymous === 'all' || (this.anonymous === 'telemetry' && (isTelemetry(topic) || !isReserved(topic)));
    }
  }

  /** Whether device `self` speaks for the did at `topic[start, end)`. */
  private speaksForAt(self: string, topic: string, start: number, end: number): boolean {
    if (end - start === self.length && topic.startsWith(self, start)) return true;
    const did = topic.slice(start, end);
    return did !== '+' && did !== '#' && this.parentOf.get(did) === self;
  }

  /** A device speaks for itself and, if a gateway, for its children. */
  private speaksFor(self: string, did: string): boolean {
    return did === self || this.parentOf.get(did) === self;
  }
}

/** The platform's figures, which app users may read: `$SYS/aiot-sim/...` (not the broker's client lists). */
const PLATFORM_PREFIX = '$SYS/aiot-sim/';
const PLATFORM_FILTER = '$SYS/aiot-sim/#';

function isReserved(topic: string): boolean {
  return RESERVED.some((r) => topic.startsWith(r));
}

/** Whether every topic `filter` matches lies under a reserved prefix. */
function onlyReserved(filter: string): boolean {
  return RESERVED.some((r) => filter.startsWith(r));
}

/** Whether `topic` is device telemetry or state (TELEMETRY_FILTERS, written out: this runs per delivery). */
function isTelemetry(topic: string): boolean {
  if (topic.startsWith('device/')) {
    const end = topic.indexOf('/', 7);
    if (end <= 7) return false;
    const rest = topic.slice(end);
    return rest === '/state' || rest.startsWith('/up/properties_changed/') || rest.startsWith('/up/event_occured/');
  }
  if (topic.startsWith(HUB_PREFIX)) {
    const parts = topic.split('/');
    return parts.length === 6 && parts[3] !== '' && (parts[4] === 'property' || parts[4] === 'event');
  }
  return false;
}

/** The did in `device/{did}/...` or `appMsg/notify/iot/{did}/...` when it is a literal (no wildcard). */
function topicDid(topic: string): string | undefined {
  // indexOf instead of split: this runs for every PUBLISH, and split allocated an array per message.
  const start = topic.startsWith('device/') ? 7 : topic.startsWith(HUB_PREFIX) ? HUB_PREFIX.length : -1;
  if (start < 0) return undefined;
  const end = topic.indexOf('/', start);
  if (end < 0) return undefined;
  const did = topic.slice(start, end);
  return did && did !== '+' && did !== '#' ? did : undefined;
}
