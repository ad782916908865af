/**
 * The device-side trace: every message devices publish, in order, with its virtual time. Its
 * sha256 digest (`traceDigest` in the report) is the reproducibility check: same scenario and
 * seed, same digest. Optionally written as NDJSON (`--trace FILE`) in the recording format
 * (contract/recording.ts) that `aiot-sim replay` reads; the digest covers ts, topic and payload.
 */
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { formatRecordLine, type QoS } from '../contract/recording.js';
import { MOST_NUMBER_BYTES, putNumber } from '../contract/wire.js';

/**
 * The lines not hashed yet are written into one buffer, hashed when it is full: it stays in the
 * CPU's cache, and a fleet's property reports are copied into it from their packets' bytes,
 * without a string made for them (`recordPublish`). (Before, each line was a string, hashed 16 at
 * a time: 0.32 µs a message in a profile of consumer-load's day.)
 */
const BUFFER_BYTES = 8 * 1024;

export class TraceRecorder {
  private readonly hash: Hash = createHash('sha256');
  private file: WriteStream | null = null;
  /** Lines not hashed yet, as UTF-8 (the digest of their concatenation is the digest of each in turn). */
  private readonly pending = Buffer.allocUnsafe(BUFFER_BYTES);
  private used = 0;
  count = 0;

  /** Also write each entry to `path` as one JSON line {ts, topic, payload, qos, retain?}. */
  writeTo(path: string): void {
    this.file = createWriteStream(path, { encoding: 'utf8' });
  }

  record(ts: number, topic: string, payload: string, qos: QoS, retain: boolean): void {
    this.count++;
    const line = `${ts}\t${topic}\t${payload}\n`;
    const most = 3 * line.length;
    if (this.used + most > BUFFER_BYTES) this.flush();
    if (most > BUFFER_BYTES) this.hash.update(line);
    else this.used += this.pending.write(line, this.used, 'utf8');
    if (this.file) this.file.write(formatRecordLine(ts, topic, payload, qos, retain));
  }

  /**
   * `record` for a message as the PUBLISH packet that carries it (MQTT 3.1.1, as the fleet writes
   * it): the same line, copied from the packet's bytes.
   */
  recordPublish(ts: number, packet: Buffer): void {
    let o = 1;
    while (packet[o]! & 0x80) o++;
    const topicAt = o + 3;
    const topicEnd = topicAt + ((packet[o + 1]! << 8) | packet[o + 2]!);
    const qos = ((packet[0]! >> 1) & 3) as QoS;
    const retain = (packet[0]! & 1) === 1;
    const payloadAt = topicEnd + (qos ? 2 : 0);
    const end = packet.length;
    // A time that is not a whole number of milliseconds is written as `${ts}` writes it.
    if (!(Number.isSafeInteger(ts) && ts >= 0)) {
      this.record(ts, packet.toString('utf8', topicAt, topicEnd), packet.toString('utf8', payloadAt), qos, retain);
      return;
    }
    this.count++;
    const most = MOST_NUMBER_BYTES + (topicEnd - topicAt) + (end - payloadAt) + 3;
    if (this.used + most > BUFFER_BYTES) this.flush();
    if (most > BUFFER_BYTES) {
      this.hash.update(`${ts}\t`).update(packet.subarray(topicAt, topicEnd)).update('\t').update(packet.subarray(payloadAt)).update('\n');
    } else {
      const buf = this.pending;
      let u = putNumber(buf, this.used, ts);
      buf[u++] = 0x09;
      for (let i = topicAt; i < topicEnd; i++) buf[u++] = packet[i]!;
      buf[u++] = 0x09;
      for (let i = payloadAt; i < end; i++) buf[u++] = packet[i]!;
      buf[u++] = 0x0a;
      this.used = u;
    }
    if (this.file) this.file.write(formatRecordLine(ts, packet.toString('utf8', topicAt, topicEnd), packet.toString('utf8', payloadAt), qos, retain));
  }

  private flush(): void {
    if (this.used === 0) return;
    this.hash.update(this.pending.subarray(0, this.used));
    this.used = 0;
  }

  /** Finish: the hex digest of everything recorded. Call once. */
  async finish(): Promise<string> {
    this.flush();
    const file = this.file;
    if (file) await new Promise<void>((resolve, reject) => file.end((err?: Error | null) => (err ? reject(err) : resolve())));
    return this.hash.digest('hex');
  }
}
