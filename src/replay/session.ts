/**
 * One MQTT session replay publishes on: a device's own session (its messages keep their order on
 * one connection, as the device sent them), or the session of everything else. Built on the
 * bench's lean client (load/wire.ts): PUBLISH packets are written as they are due, QoS 1 and 2
 * complete their handshakes, and a session that is backed up (1 MiB unwritten, or its window of
 * unacknowledged messages full) makes the replay wait, which shows as lateness.
 */
import type { Duplex } from 'node:stream';
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { QoS } from '../contract/recording.js';
import { WireClient } from '../load/wire.js';

/** Bytes unwritten on a connection before the replay waits for it. */
const MAX_BUFFERED = 1 << 20;
/** QoS 1/2 messages a session may have unacknowledged. */
const WINDOW = 1000;
/** A dropped session connects again after this long. */
const RECONNECT_MS = 1000;

export interface SessionLogin { clientId: string; username?: string; password?: string }

export interface SessionCounters {
  sent: number;
  /** QoS 1 PUBACKs and QoS 2 PUBCOMPs received. */
  acked: number;
  /** Messages not sent because the session was down. */
  notSent: number;
  connectOk: number;
  connectFailed: number;
  disconnects: number;
  connectErrors: Record<string, number>;
}

export class ReplaySession {
  private client: WireClient | null = null;
  private nextId = 1;
  /** Message ids waiting for PUBACK / PUBCOMP. */
  private readonly unacked = new Set<number>();
  private waiters: Array<() => void> = [];
  private closing = false;
  private retry: NodeJS.Timeout | null = null;

  constructor(
    private readonly open: () => Promise<Duplex>,
    readonly login: SessionLogin,
    private readonly counters: SessionCounters,
  ) {}

  get connected(): boolean { return this.client !== null && !this.client.isClosed; }

  /** Connect (CONNECT, CONNACK); rejects with the broker's reason when refused or unreachable. */
  async connect(timeoutMs = 10_000): Promise<void> {
    try {
      const c = await WireClient.over(await this.open(), { ...this.login, keepalive: 60, timeoutMs });
      this.counters.connectOk++;
      if (this.closing) c.end();
      else this.attach(c);
    } catch (e) {
      this.counters.connectFailed++;
      const why = (e as Error).message;
      this.counters.connectErrors[why] = (this.counters.connectErrors[why] ?? 0) + 1;
      throw e;
    }
  }

  /** Resolves when a message can be written now: the connection is not backed up and the QoS 1/2 window has room (or the session is down). */
  ready(): Promise<void> | null {
    const c = this.client;
    if (!c || c.isClosed || (c.buffered < MAX_BUFFERED && this.unacked.size < WINDOW)) return null;
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      if (c.buffered >= MAX_BUFFERED) c.stream.once('drain', () => this.wake());
    });
  }

  /** Write one PUBLISH; false when the session is down (counted as not sent). */
  publish(topic: string, payload: Buffer, qos: QoS, retain: boolean): boolean {
    const c = this.client;
    if (!c || c.isClosed) {
      this.counters.notSent++;
      return false;
    }
    let messageId: number | undefined;
    if (qos > 0) {
      messageId = this.takeId();
      this.unacked.add(messageId);
    }
    c.write(mqttPacket.generate({ cmd: 'publish', topic, payload, qos, retain, dup: false, ...(messageId !== undefined ? { messageId } : {}) }));
    this.counters.sent++;
    return true;
  }

  /** Wait (at most `ms`) for every QoS 1/2 message to be acknowledged, then DISCONNECT. */
  async close(ms: number): Promise<void> {
    this.closing = true;
    if (this.retry) clearTimeout(this.retry);
    const end = Date.now() + ms;
    while (this.unacked.size > 0 && this.connected && Date.now() < end) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(1, end - Date.now()));
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    this.client?.end();
    this.client = null;
    this.wake();
  }

  private attach(c: WireClient): void {
    this.client = c;
    c.onPuback = (id) => this.acked(id);
    c.onPacket = (p: Packet) => {
      if (p.cmd === 'pubrec' && p.messageId !== undefined) c.write(mqttPacket.generate({ cmd: 'pubrel', messageId: p.messageId }));
      else if (p.cmd === 'pubcomp' && p.messageId !== undefined) this.acked(p.messageId);
    };
    c.onClose = () => {
      // Messages in flight on a lost connection are written off; the session comes back by itself.
      this.unacked.clear();
      this.client = null;
      this.wake();
      if (this.closing) return;
      this.counters.disconnects++;
      this.reconnectLater();
    };
  }

  private reconnectLater(): void {
    this.retry = setTimeout(() => {
      this.retry = null;
      if (!this.closing) this.connect().catch(() => { if (!this.closing) this.reconnectLater(); });
    }, RECONNECT_MS);
  }

  private acked(id: number): void {
    if (!this.unacked.delete(id)) return;
    this.counters.acked++;
    if (this.waiters.length && this.unacked.size < WINDOW) this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  private takeId(): number {
    while (this.unacked.has(this.nextId)) this.nextId = (this.nextId % 65535) + 1;
    const id = this.nextId;
    this.nextId = (this.nextId % 65535) + 1;
    return id;
  }
}
