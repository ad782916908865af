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
  /** For gateways: children that publish no state of their own (BLE), online exactly while the gateway is. */
  statelessChildren?: string[];
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

/** Counts by one key (online devices by category, say), kept up to date as they come and go. */
export class Tally {
  private readonly n = new Map<string, number>();
  add(k: string, d: number): void {
    const v = (this.n.get(k) ?? 0) + d;
    if (v > 0) this.n.set(k, v);
    else this.n.delete(k);
  }
  /** The counts as a plain object, keys sorted. */
  record(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of [...this.n.keys()].sort()) out[k] = this.n.get(k)!;
    return out;
  }
}

export class ConnectionRegistry {
  private readonly online = new Map<string, Entry>();
  // Snapshots come every few virtual minutes: counting 10^4-10^5 entries each time showed in profiles.
  private readonly byCategory = new Tally();
  private readonly byModel = new Tally();
  private readonly byRegion = new Tally();
  private readonly byTransport = new Tally();
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
    this.remove(did);
    this.online.set(did, entry);
    this.tally(entry, 1);
  }

  /** A device went offline (its own message, a last will, or its session ended). */
  markOffline(did: string): void {
    this.remove(did);
    const kids = this.childrenOf.get(did);
    if (kids) {
      for (const k of kids) this.remove(k);
      this.childrenOf.delete(did);
    }
  }

  counts(): ConnectionCounts {
    return {
      online: this.online.size,
      byCategory: this.byCategory.record(),
      byModel: this.byModel.record(),
      byRegion: this.byRegion.record(),
      byTransport: this.byTransport.record(),
    };
  }

  private remove(did: string): void {
    const e = this.online.get(did);
    if (!e) return;
    this.online.delete(did);
    this.tally(e, -1);
  }

  private tally(e: Entry, d: 1 | -1): void {
    this.byCategory.add(e.facts.category, d);
    this.byModel.add(e.facts.model, d);
    this.byRegion.add(e.facts.region, d);
    this.byTransport.add(e.transport, d);
  }
}
