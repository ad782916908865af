/**
 * The QoS 1 messages each persistent session holds: queued while it is offline, or sent and not
 * yet acknowledged. aedes-persistence keeps them in an array per client id with no bound, so an
 * anonymous CleanSession=0 session subscribed to `#` that drops off (or never acknowledges) holds
 * every QoS 1 message from then on. Here each queue is bounded in messages and bytes; over a
 * bound the oldest message is dropped and counted (as Mosquitto's max_queued_messages does).
 *
 * What a session may receive is decided when a message is queued, not only when it is delivered:
 * Aedes 1.2 stores a CleanSession=0 client's whole SUBSCRIBE, refused filters included, so without
 * `admit` a device could queue another device's commands and read them after a reconnect.
 */
import { Readable } from 'node:stream';
import memory from 'aedes-persistence';

export interface QueuedPacket {
  topic: string;
  payload: Buffer | string;
  messageId?: number;
  brokerId?: string;
  brokerCounter?: number;
  [key: string]: unknown;
}

type PacketClass = new (p: QueuedPacket, broker?: { id: string; counter: number }) => QueuedPacket;
/**
 * aedes-packet, as aedes-persistence stores it (copies the fields Aedes needs; given the broker,
 * a packet without a broker id and counter gets the broker's, as Aedes' own copies do).
 */
export const Packet = (memory as unknown as { Packet: PacketClass }).Packet;

export interface QueueBounds { maxMessages: number; maxBytes: number }

/** One queued message of one session: the message (shared by every session it is queued for) and this session's message id. */
interface Entry { packet: QueuedPacket; messageId: number | undefined; size: number }

interface Queue { entries: Entry[]; bytes: number }

export class SessionQueues {
  /** Messages dropped from full queues since the start. */
  dropped = 0;
  /** Messages and bytes held now, over every session. */
  messages = 0;
  bytes = 0;
  private readonly queues = new Map<string, Queue>();
  /** The stored copy of each message, made once however many sessions queue it. */
  private readonly stored = new WeakMap<object, QueuedPacket>();

  /**
   * @param admit the packet to queue for `clientId` (the same, or a copy with fields removed), or
   *   null when that session may not receive it.
   */
  constructor(private readonly bounds: QueueBounds, private readonly admit: (clientId: string, packet: QueuedPacket) => QueuedPacket | null) {}

  enqueue(clientId: string, packet: QueuedPacket): void {
    const allowed = this.admit(clientId, packet);
    if (!allowed) return;
    let q = this.queues.get(clientId);
    if (!q) this.queues.set(clientId, (q = { entries: [], bytes: 0 }));
    let stored = this.stored.get(allowed);
    if (!stored) this.stored.set(allowed, (stored = new Packet(allowed)));
    // Until it is sent, the message id is the publisher's, as aedes-persistence keeps it.
    const entry: Entry = { packet: stored, messageId: stored.messageId, size: sizeOf(stored) };
    q.entries.push(entry);
    this.messages++;
    this.add(q, entry.size);
    while (q.entries.length > this.bounds.maxMessages || (q.bytes > this.bounds.maxBytes && q.entries.length > 1)) {
      this.add(q, -q.entries.shift()!.size);
      this.messages--;
      this.dropped++;
    }
  }

  /**
   * The packet got its message id as it was sent. A packet no longer queued (dropped from a full
   * queue since) is sent anyway, unstored: Aedes would close the connection on an error here.
   */
  update(clientId: string, packet: QueuedPacket): void {
    const q = this.queues.get(clientId);
    if (!q) return;
    for (const e of q.entries) {
      if (e.packet.brokerId === packet.brokerId) {
        if (e.packet.brokerCounter === packet.brokerCounter) {
          e.messageId = packet.messageId;
          return;
        }
      } else if (e.messageId === packet.messageId) {
        // The same message id reused for another broker's packet: that one is now in flight.
        const size = sizeOf(packet);
        this.add(q, size - e.size);
        Object.assign(e, { packet: new Packet(packet), messageId: packet.messageId, size });
        return;
      }
    }
  }

  /** The acknowledged (or abandoned) packet with this message id, removed; undefined when none. */
  clear(clientId: string, packet: { messageId?: number }): QueuedPacket | undefined {
    const q = this.queues.get(clientId);
    if (!q) return undefined;
    const i = q.entries.findIndex((e) => e.messageId === packet.messageId);
    if (i < 0) return undefined;
    const [e] = q.entries.splice(i, 1);
    this.messages--;
    this.add(q, -e!.size);
    if (q.entries.length === 0) this.queues.delete(clientId);
    return withId(e!);
  }

  /** Whether anything is queued for `clientId`. */
  has(clientId: string): boolean {
    return (this.queues.get(clientId)?.entries.length ?? 0) > 0;
  }

  /** What is queued for `clientId`, oldest first (a copy: sending it does not race new arrivals). */
  stream(clientId: string): Readable {
    return Readable.from((this.queues.get(clientId)?.entries ?? []).map(withId));
  }

  /** The session ended (a clean one took its id over): its queue goes with it. */
  forget(clientId: string): void {
    const q = this.queues.get(clientId);
    if (!q) return;
    this.messages -= q.entries.length;
    this.bytes -= q.bytes;
    this.queues.delete(clientId);
  }

  private add(q: Queue, bytes: number): void {
    q.bytes += bytes;
    this.bytes += bytes;
  }
}

/** A session's queued message as Aedes reads it: the message with this session's message id. */
function withId(e: Entry): QueuedPacket {
  return { ...e.packet, messageId: e.messageId };
}

function sizeOf(p: QueuedPacket): number {
  const payload = typeof p.payload === 'string' ? Buffer.byteLength(p.payload) : p.payload.length;
  return Buffer.byteLength(p.topic) + payload;
}
