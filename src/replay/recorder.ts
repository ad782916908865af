/**
 * `aiot-sim record`: capture a broker's traffic (ours or anyone's) into a recording, the NDJSON
 * format `run --trace` writes (contract/recording.ts), with each message's receive time as `ts`,
 * its QoS as delivered and its retain flag. Lines are written as messages arrive: what arrived in
 * one turn of the event loop is written with one synchronous write right after it, so stopping
 * (Ctrl-C, the duration, `stop()`) loses nothing that was received, and even a killed process
 * loses at most that last turn.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { MqttClient } from 'mqtt';
import { formatRecordLine, type QoS } from '../contract/recording.js';
import { AiotSimError, OptionsError } from '../errors.js';
import { isInt, positive, Problems } from '../load/options.js';
import { filterProblem } from '../monitor/topic-filter.js';
import { connectExternal } from '../platform/external.js';
import { checkBrokerUrl } from '../platform/urls.js';

export interface RecordOptions {
  /** The broker: mqtt://HOST:PORT, mqtts://, ws://HOST:PORT/PATH or wss://. */
  broker: string;
  username?: string;
  password?: string;
  /** Topic filters to record. Default ["#"] (every topic but $SYS/...). */
  topics?: string[];
  /** QoS of the subscription: a message is recorded with the QoS it was delivered at (at most this). Default 2, so QoS is kept. */
  qos?: QoS;
  /** The recording to write (created or replaced). */
  out: string;
  /** Stop after this long, ms; absent: until `stop()`. */
  durationMs?: number;
  /** Client id. Default "aiot-sim-record-" and a random suffix. */
  clientId?: string;
}

export interface RecordSummary {
  file: string;
  messages: number;
  bytes: number;
  seconds: number;
  /** Times the connection was lost (the recorder reconnects by itself). */
  disconnects: number;
}

export class Recorder {
  private pending: string[] = [];
  private flushScheduled = false;
  private fd: number | null;
  private count = 0;
  private bytes = 0;
  private disconnectCount = 0;
  private readonly t0 = performance.now();
  private timer: NodeJS.Timeout | null = null;
  private stopping: Promise<RecordSummary> | null = null;
  private resolveFinished!: (s: RecordSummary) => void;
  private rejectFinished!: (e: unknown) => void;
  /** Resolves with the summary when the recording ends (duration reached, or `stop()`). */
  readonly finished: Promise<RecordSummary>;

  private constructor(private readonly client: MqttClient, fd: number, readonly file: string, durationMs: number | undefined) {
    this.fd = fd;
    this.finished = new Promise((res, rej) => { this.resolveFinished = res; this.rejectFinished = rej; });
    this.finished.catch(() => undefined);
    client.on('message', (topic, payload, packet) => this.onMessage(topic, payload, packet.qos, packet.retain));
    // Connected now; each loss of the connection counts once (not each failed attempt to come back).
    let up = true;
    client.on('connect', () => { up = true; });
    client.on('close', () => {
      if (up && !this.stopping) this.disconnectCount++;
      up = false;
    });
    if (durationMs !== undefined) this.timer = setTimeout(() => { void this.stop(); }, durationMs);
  }

  /** Check the options, open the file, connect and subscribe; resolves once recording. */
  static async start(o: RecordOptions): Promise<Recorder> {
    const p = new Problems();
    const topics = o.topics?.length ? o.topics : ['#'];
    for (const t of topics) {
      const why = filterProblem(t);
      if (why) p.reject('topics', `expected MQTT topic filters (${why})`, t);
    }
    const qos = p.check<number>('qos', o.qos, 2, isInt(0, 2), 'expected 0, 1 or 2') as QoS;
    if (o.durationMs !== undefined) p.check('durationMs', o.durationMs, 0, positive, 'expected a positive duration');
    if (typeof o.out !== 'string' || o.out === '') p.add('out', 'expected the file to write');
    try {
      checkBrokerUrl(o.broker);
    } catch (e) {
      p.reject('broker', (e as Error).message.replace(/^--broker: /, ''), o.broker);
    }
    if (p.list.length) throw new OptionsError('E_RECORD_INPUT', p.list);
    const file = resolve(o.out);
    let fd: number;
    try {
      mkdirSync(dirname(file), { recursive: true });
      fd = openSync(file, 'w');
    } catch (e) {
      throw new AiotSimError('E_RECORD_FILE', 'environment', `cannot write ${o.out}: ${(e as Error).message}`);
    }
    let client: MqttClient;
    try {
      client = await connectExternal(o.broker, o.clientId ?? `aiot-sim-record-${randomBytes(4).toString('hex')}`, {
        ...(o.username !== undefined ? { username: o.username } : {}), ...(o.password !== undefined ? { password: o.password } : {}),
      });
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    const recorder = new Recorder(client, fd, file, o.durationMs);
    try {
      await subscribe(client, topics, qos);
    } catch (e) {
      await recorder.stop();
      throw e;
    }
    return recorder;
  }

  /** Messages recorded so far (written, or about to be in this turn of the event loop). */
  get messages(): number { return this.count; }

  /** Times the connection was lost so far. */
  get disconnects(): number { return this.disconnectCount; }

  /** Stop: unsubscribe and disconnect, write what is pending, close the file; resolves with the summary. */
  stop(): Promise<RecordSummary> {
    this.stopping ??= (async () => {
      if (this.timer) clearTimeout(this.timer);
      // Messages arriving until the DISCONNECT is out are still recorded; then the file is closed.
      await new Promise<void>((res) => this.client.end(false, {}, () => res()));
      this.flush();
      if (this.fd !== null) closeSync(this.fd);
      this.fd = null;
      const summary = { file: this.file, messages: this.count, bytes: this.bytes, seconds: Math.round(performance.now() - this.t0) / 1000, disconnects: this.disconnectCount };
      this.resolveFinished(summary);
      return summary;
    })();
    return this.stopping;
  }

  private onMessage(topic: string, payload: Buffer, qos: QoS, retain: boolean): void {
    if (this.fd === null) return;
    this.pending.push(formatRecordLine(Date.now(), topic, payload, qos, retain));
    this.count++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.fd === null || this.pending.length === 0) return;
    const chunk = Buffer.from(this.pending.join(''), 'utf8');
    this.pending = [];
    try {
      let off = 0;
      while (off < chunk.length) off += writeSync(this.fd, chunk, off);
      this.bytes += chunk.length;
    } catch (e) {
      this.rejectFinished(new AiotSimError('E_RECORD_FILE', 'environment', `cannot write ${this.file}: ${(e as Error).message}`));
      void this.stop();
    }
  }
}

/** SUBSCRIBE; rejects naming a filter the broker refused (SUBACK 0x80). */
function subscribe(client: MqttClient, topics: string[], qos: QoS): Promise<void> {
  return new Promise((res, rej) => {
    client.subscribe(Object.fromEntries(topics.map((t) => [t, { qos }])), (err, granted) => {
      const codes = granted?.map((g) => g.qos) ?? (err as { packet?: { granted?: number[] } } | null)?.packet?.granted;
      const refused = codes?.findIndex((c) => c === 0x80) ?? -1;
      if (refused >= 0) rej(new AiotSimError('E_RECORD_REFUSED', 'environment', `the broker refused the subscription to "${topics[refused]}" (its access rules: give --username/--password, or a narrower --topic)`));
      else if (err) rej(new AiotSimError('E_RECORD_REFUSED', 'environment', `subscribe failed: ${err.message}`));
      else res();
    });
  });
}
