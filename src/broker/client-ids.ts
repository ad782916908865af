/**
 * Who may use which client id. MQTT closes the session of a client id when a new CONNECT comes
 * with it (MQTT-3.1.4-2), so whoever may connect with an id may throw its holder off, again and
 * again, and with CleanSession=0 take its queued messages. Ids are therefore owned:
 *
 * - a device's did (children's included) belongs to that device;
 * - `app-{uid}` and `app-{uid}-...` belong to app user `uid` (and no other `app-` id is usable);
 * - `aiot-sim-operator-...` belongs to the operator account (the simulator's own operator clients);
 * - any other id belongs, while a session holds it (connected, or stored with CleanSession=0), to
 *   the principal that holds it: only the same principal may connect with it again. Anonymous
 *   clients are one principal among themselves (they have no identity to tell apart).
 *
 * The registry also remembers each session's principal, for deliveries to stored sessions, and
 * counts anonymous persistent sessions (they hold memory nobody accounts for).
 */
import type { AccessDirectory, Principal } from './access.js';

export const APP_ID_PREFIX = 'app-';
export const OPERATOR_ID_PREFIX = 'aiot-sim-operator-';

interface Holding {
  principal: Principal;
  /** CleanSession=0: the session outlives the connection. */
  persistent: boolean;
  /** The connection holding it now, or null (a stored session). */
  holder: object | null;
}

export class ClientIdRegistry {
  private readonly held = new Map<string, Holding>();
  private anonymousStored = 0;

  constructor(private readonly access: AccessDirectory) {}

  /** Persistent sessions of anonymous clients (connected or stored). */
  get anonymousSessions(): number { return this.anonymousStored; }

  /** Sessions known (connected, or stored with CleanSession=0). */
  get size(): number { return this.held.size; }

  /** Null when `p` may connect with `clientId`; otherwise why not (CONNACK return code 2). */
  refusal(clientId: string, p: Principal): string | null {
    if (this.access.isDeviceId(clientId)) {
      return p.role === 'device' && p.did === clientId ? null : `client id "${clientId}" belongs to a device`;
    }
    if (clientId.startsWith(APP_ID_PREFIX)) {
      const own = p.role === 'app' && (clientId === `${APP_ID_PREFIX}${p.uid}` || clientId.startsWith(`${APP_ID_PREFIX}${p.uid}-`));
      return own ? null : `client ids "${APP_ID_PREFIX}..." belong to app users ("${APP_ID_PREFIX}{uid}" for user uid)`;
    }
    if (clientId.startsWith(OPERATOR_ID_PREFIX)) {
      return p.role === 'operator' ? null : `client ids "${OPERATOR_ID_PREFIX}..." belong to the operator`;
    }
    const h = this.held.get(clientId);
    if (h && !samePrincipal(h.principal, p)) return `client id "${clientId}" is in use by another account's session`;
    return null;
  }

  /** `holder` (a connection) now holds `clientId` as `p`; `persistent` for CleanSession=0. */
  hold(clientId: string, p: Principal, persistent: boolean, holder: object): void {
    const before = this.held.get(clientId);
    if (before && isAnonymousStored(before)) this.anonymousStored--;
    const h: Holding = { principal: p, persistent, holder };
    this.held.set(clientId, h);
    if (isAnonymousStored(h)) this.anonymousStored++;
  }

  /** The connection `holder` ended: a clean session's id is free again, a persistent one stays its principal's. */
  release(clientId: string, holder: object): void {
    const h = this.held.get(clientId);
    if (!h || h.holder !== holder) return;
    if (h.persistent) h.holder = null;
    else this.held.delete(clientId);
  }

  /** Whether a new persistent anonymous session for `clientId` would be one more (not a resumed one). */
  isNewAnonymousSession(clientId: string): boolean {
    const h = this.held.get(clientId);
    return !(h && isAnonymousStored(h));
  }

  /** The principal of the session `clientId` (connected or stored), if any. */
  principalOf(clientId: string): Principal | undefined {
    return this.held.get(clientId)?.principal;
  }
}

function isAnonymousStored(h: Holding): boolean {
  return h.persistent && h.principal.role === 'observer';
}

function samePrincipal(a: Principal, b: Principal): boolean {
  if (a.role !== b.role) return false;
  if (a.role === 'device') return a.did === (b as { did: string }).did;
  if (a.role === 'app') return a.uid === (b as { uid: string }).uid;
  return true;
}
