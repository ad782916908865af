/**
 * Who may connect, publish and subscribe (DESIGN.md "Security defaults").
 *
 * - device: username = did, password = its token; client id must be the did. Publishes only its
 *   own `device/{did}/up/...`, `device/{did}/state` and central-hub notifications
 *   `appMsg/notify/iot/{did}/property|event/...` (a gateway also its children's); subscribes only
 *   its own `device/{did}/down/...` (a gateway also its children's).
 * - operator: username `operator`, password = the operator token. Publishes commands to any
 *   device's `down/rpc`; subscribes to anything.
 * - app: username `app:{uid}`, password = the user's token. Commands and watches the devices of
 *   the homes the user owns or belongs to (both wire profiles); publishes under `app/{uid}/...`.
 * - observer: no username. Subscribes to anything; never publishes to `device/`, `appMsg/`,
 *   `app/`, `$SYS/`.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { HUB_PREFIX } from '../contract/wire.js';

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
const RESERVED = ['device/', 'appMsg/', 'app/', '$SYS/'];

/** Constant-time string comparison (hash first so lengths do not leak). */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** The credentials and ownership the platform provisions; the broker's auth reads it. */
export class AccessDirectory {
  private readonly devices = new Map<string, DeviceCredential>();
  private readonly parentOf = new Map<string, string>();
  private readonly users = new Map<string, string>();
  allowAnonymous = true;

  constructor(public operatorToken: string) {}

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

  /** Decide a CONNECT. Returns the principal, or a reason for refusing. */
  authenticate(clientId: string, username: string | undefined, password: string | undefined): Principal | { refused: string; returnCode: 2 | 4 } {
    // A device's did is its client id; nobody else may use it (taking it over would close the device's session).
    const deviceId = this.devices.has(clientId) || this.parentOf.has(clientId);
    if (deviceId && username !== clientId) return { refused: `client id "${clientId}" belongs to a device`, returnCode: 2 };
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
        const did = topicDid(topic);
        if (did && this.speaksFor(p.did, did)) {
          if (topic === `device/${did}/state` || topic.startsWith(`device/${did}/up/`)) return true;
          if (topic.startsWith(`${HUB_PREFIX}${did}/property/`) || topic.startsWith(`${HUB_PREFIX}${did}/event/`)) return true;
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
        if (filter.startsWith(`app/${p.uid}/`) || filter.startsWith('$SYS/')) return true;
        return `user ${p.uid} may subscribe only to its own devices' topics, app/${p.uid}/... and $SYS/...`;
      }
      case 'operator':
      case 'observer':
        return true;
    }
  }

  /** A device speaks for itself and, if a gateway, for its children. */
  private speaksFor(self: string, did: string): boolean {
    return did === self || this.parentOf.get(did) === self;
  }
}

function isReserved(topic: string): boolean {
  return RESERVED.some((r) => topic.startsWith(r));
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
