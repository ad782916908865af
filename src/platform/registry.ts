/**
 * Which devices are online, learned only from what the broker sees: sessions coming and going,
 * retained state messages and last wills. A gateway's children are online while the gateway
 * announces them and go offline with it.
 */
export interface DeviceFacts {
  model: string;
  category: string;
  region: string;
  /** Wi-Fi devices: undefined (the session's transport applies); children: "zigbee" / "ble". */
  radio?: string;
  /** Owner's user id (from the binding). */
  uid?: string;
  /** For smart speakers: the event that reports a voice request, and the argument carrying the user id. */
  voice?: { siid: number; eiid: number; userPiid: number };
}

/** What the cloud knows about a device from its binding (model, owner's region), by did. */
export type DeviceLookup = (did: string) => DeviceFacts | undefined;

interface Entry { facts: DeviceFacts; transport: string; parent?: string }

export interface ConnectionCounts {
  online: number;
  byCategory: Record<string, number>;
  byModel: Record<string, number>;
  byRegion: Record<string, number>;
  byTransport: Record<string, number>;
}

export class ConnectionRegistry {
  private readonly online = new Map<string, Entry>();
  private readonly sessionTransport = new Map<string, string>();
  private readonly sessionConn = new Map<string, number>();
  private readonly childrenOf = new Map<string, Set<string>>();
  /** State messages for dids the platform does not know. */
  unknown = 0;

  constructor(private readonly lookup: DeviceLookup) {}

  get size(): number { return this.online.size; }
  isOnline(did: string): boolean { return this.online.has(did); }

  /** An MQTT session for `did` was accepted. */
  sessionUp(did: string, transport: string, connId = 0): void {
    this.sessionTransport.set(did, transport);
    this.sessionConn.set(did, connId);
  }

  /**
   * The session `connId` for `did` is gone: it and every child it carried are offline. A stale
   * session (one already replaced by a reconnect with the same client id) changes nothing.
   */
  sessionDown(did: string, connId = 0): void {
    if ((this.sessionConn.get(did) ?? 0) !== connId) return;
    this.sessionConn.delete(did);
    this.sessionTransport.delete(did);
    this.markOffline(did);
  }

  /** A device (or a gateway for a child) announced it is online. */
  markOnline(did: string, parent?: string): void {
    const facts = this.lookup(did);
    if (!facts) {
      this.unknown++;
      return;
    }
    const transport = facts.radio ?? this.sessionTransport.get(parent ?? did) ?? 'tcp';
    const entry: Entry = { facts, transport };
    if (parent) {
      entry.parent = parent;
      let set = this.childrenOf.get(parent);
      if (!set) this.childrenOf.set(parent, (set = new Set()));
      set.add(did);
    }
    this.online.set(did, entry);
  }

  /** A device went offline (its own message, a last will, or its session ended). */
  markOffline(did: string): void {
    this.online.delete(did);
    const kids = this.childrenOf.get(did);
    if (kids) {
      for (const k of kids) this.online.delete(k);
      this.childrenOf.delete(did);
    }
  }

  counts(): ConnectionCounts {
    const c: ConnectionCounts = { online: this.online.size, byCategory: {}, byModel: {}, byRegion: {}, byTransport: {} };
    const inc = (m: Record<string, number>, k: string): void => { m[k] = (m[k] ?? 0) + 1; };
    for (const e of this.online.values()) {
      inc(c.byCategory, e.facts.category);
      inc(c.byModel, e.facts.model);
      inc(c.byRegion, e.facts.region);
      inc(c.byTransport, e.transport);
    }
    for (const m of [c.byCategory, c.byModel, c.byRegion, c.byTransport]) sortKeys(m);
    return c;
  }
}

function sortKeys(m: Record<string, number>): void {
  const entries = Object.entries(m).sort(([a], [b]) => (a < b ? -1 : 1));
  for (const k of Object.keys(m)) delete m[k];
  for (const [k, v] of entries) m[k] = v;
}
