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

type PacketClass = new (p: QueuedPacket) => QueuedPacket;
/** aedes-packet, as aedes-persistence stores it (copies the fields Aedes needs). */
const Packet = (memory as unknown as { Packet: PacketClass }).Packet;

export interface QueueBounds { maxMessages: number; maxBytes: number }

interface Queue { packets: QueuedPacket[]; bytes: number }

export class SessionQueues {
  /** Messages dropped from full queues since the start. */
  dropped = 0;
  /** Messages and bytes held now, over every session. */
  messages = 0;
  bytes = 0;
  private readonly queues = new Map<string, Queue>();

  /**
   * @param admit the packet to queue for `clientId` (the same, or a copy with fields removed), or
   *   null when that session may not receive it.
   */
  constructor(private readonly bounds: QueueBounds, private readonly admit: (clientId: string, packet: QueuedPacket) => QueuedPacket | null) {}

  enqueue(clientId: string, packet: QueuedPacket): void {
    const allowed = this.admit(clientId, packet);
    if (!allowed) return;
    let q = this.queues.get(clientId);
    if (!q) this.queues.set(clientId, (q = { packets: [], bytes: 0 }));
    const stored = new Packet(allowed);
    q.packets.push(stored);
    this.messages++;
    this.add(q, sizeOf(stored));
    while (q.packets.length > this.bounds.maxMessages || (q.bytes > this.bounds.maxBytes && q.packets.length > 1)) {
      this.add(q, -sizeOf(q.packets.shift()!));
      this.messages--;
      this.dropped++;
    }
  }

  /**
   * The packet got its message id as it was sent. A packet no longer queued (dropped from a full
   * queue since) is sent anyway, unstored: Aedes would close the connection on an error here.
   */
  update(clientId: string, packet: QueuedPacket): void {
    const packets = this.queues.get(clientId)?.packets ?? [];
    for (let i = 0; i < packets.length; i++) {
      const p = packets[i]!;
      if (p.brokerId === packet.brokerId) {
        if (p.brokerCounter === packet.brokerCounter) {
          p.messageId = packet.messageId;
          return;
        }
      } else if (p.messageId === packet.messageId) {
        // The same message id reused for another broker's packet: that one is now in flight.
        const q = this.queues.get(clientId)!;
        this.add(q, sizeOf(packet) - sizeOf(p));
        packets[i] = packet;
        return;
      }
    }
  }

  /** The acknowledged (or abandoned) packet with this message id, removed; undefined when none. */
  clear(clientId: string, packet: { messageId?: number }): QueuedPacket | undefined {
    const q = this.queues.get(clientId);
    if (!q) return undefined;
    const i = q.packets.findIndex((p) => p.messageId === packet.messageId);
    if (i < 0) return undefined;
    const [p] = q.packets.splice(i, 1);
    this.messages--;
    this.add(q, -sizeOf(p!));
    if (q.packets.length === 0) this.queues.delete(clientId);
    return p;
  }

  /** What is queued for `clientId`, oldest first (a copy: sending it does not race new arrivals). */
  stream(clientId: string): Readable {
    return Readable.from([...(this.queues.get(clientId)?.packets ?? [])]);
  }

  /** The session ended (a clean one took its id over): its queue goes with it. */
  forget(clientId: string): void {
    const q = this.queues.get(clientId);
    if (!q) return;
    this.messages -= q.packets.length;
    this.bytes -= q.bytes;
    this.queues.delete(clientId);
  }

  private add(q: Queue, bytes: number): void {
    q.bytes += bytes;
    this.bytes += bytes;
  }
}

function sizeOf(p: QueuedPacket): number {
  const payload = typeof p.payload === 'string' ? Buffer.byteLength(p.payload) : p.payload.length;
  return Buffer.byteLength(p.topic) + payload;
}
