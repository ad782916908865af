/**
 * The device-side trace: every message devices publish, in order, with its virtual time. Its
 * sha256 digest (`traceDigest` in the report) is the reproducibility check: same scenario and
 * seed, same digest. Optionally written as NDJSON (`--trace FILE`) in the recording format
 * (contract/recording.ts) that `aiot-sim replay` reads; the digest covers ts, topic and payload.
 */
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { formatRecordLine, type QoS } from '../contract/recording.js';

export class TraceRecorder {
  private readonly hash: Hash = createHash('sha256');
  private file: WriteStream | null = null;
  count = 0;

  /** Also write each entry to `path` as one JSON line {ts, topic, payload, qos, retain?}. */
  writeTo(path: string): void {
    this.file = createWriteStream(path, { encoding: 'utf8' });
  }

  record(ts: number, topic: string, payload: string, qos: QoS, retain: boolean): void {
    this.count++;
    this.hash.update(`${ts}\t${topic}\t${payload}\n`);
    if (this.file) this.file.write(formatRecordLine(ts, topic, payload, qos, retain));
  }

  /** Finish: the hex digest of everything recorded. Call once. */
  async finish(): Promise<string> {
    const file = this.file;
    if (file) await new Promise<void>((resolve, reject) => file.end((err?: Error | null) => (err ? reject(err) : resolve())));
    return this.hash.digest('hex');
  }
}
