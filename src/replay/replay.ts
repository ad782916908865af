/**
 * `aiot-sim replay` as a library call: play a recording back into a broker (the embedded one, or
 * any MQTT 3.1.1 broker by URL) with its original timing scaled, QoS and retain flags kept, and
 * device ids optionally rewritten so one recording stands for many devices; return the report.
 *
 * Each device publishes on a session of its own (client id = its did on the embedded broker,
 * where replay provisions device accounts; on yours, the --username/--password given), so its
 * messages keep their order; everything else goes over one more session (the operator on the
 * embedded broker). Messages go out when due: `lateness` is how far behind the schedule each
 * went. With a reply topic, each JSON payload carries the bench header (`"bench":{...}`, last)
 * and the bench's probe measures the round trip through your consumer, as `aiot-sim bench` does.
 */
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { setImmediate as yieldNow, setTimeout as sleep } from 'node:timers/promises';
import type { Principal } from '../broker/access.js';
import { EmbeddedBroker } from '../broker/broker.js';
import type { RecordedMessage } from '../contract/recording.js';
import { AiotSimError } from '../errors.js';
import { newHistogram, summarise } from '../load/probe.js';
import { ProbeThread } from '../load/probe-thread.js';
import { wallUs, type ProbeStats } from '../load/protocol.js';
import { BenchError } from '../load/thread.js';
import { openStream, targetUrl, type WireTarget } from '../load/wire.js';
import { MAX_EXTERNAL_CONNECTIONS } from '../sim/simulation.js';
import { resolveReplayConfig, type ReplayConfig, type ReplayOptions } from './options.js';
import { readRecording, type Recording } from './recording.js';
import { buildReplayReport, type ReplayOutcome, type ReplayReport, type ReplayTimelinePoint } from './report.js';
import { DidRewriter, topicDid } from './rewrite.js';
import { Schedule } from './schedule.js';
import { ReplaySession, type SessionCounters, type SessionLogin } from './session.js';

export type { ReplayOptions, ReplayProgress } from './options.js';

/** Sessions connecting at once. */
const CONNECT_CONCURRENCY = 200;
/** In fast mode (and bursts), give the event loop a turn every this many messages. */
const BURST = 500;
/** The drain of replies ends when none arrived for this long. */
const DRAIN_QUIET_MS = 1000;

/** Where the replay publishes: the embedded broker it started, or the user's. */
interface Target {
  wire: WireTarget;
  embedded: EmbeddedBroker | null;
  /** A fresh connection for one session. */
  open: () => Promise<Duplex>;
  /** The login of the session of sender `key` (the `index`th session). */
  login: (key: string, index: number) => SessionLogin;
  /** Why the embedded broker would refuse `topic` from the sender `key` (null: it is allowed). */
  refusal: (key: string, topic: string) => string | null;
  /** How the probe logs in: the operator on the embedded broker (whatever its anonymous access), the given account on yours. */
  probeLogin: { username?: string; password?: string };
}

/** The session a message goes out on: its device's (a device topic of either profile, commands to it excepted), or the one for everything else. */
function senderOf(topic: string): string {
  const did = topicDid(topic);
  return did !== undefined && !topic.startsWith(`device/${did}/down/`) ? `device:${did}` : 'other';
}

/** Read the recording and replay it; resolves with the report. Throws OptionsError on bad options, ValidationError on a bad recording, BenchError when the broker cannot be reached. */
export async function runReplay(o: ReplayOptions): Promise<ReplayReport> {
  const startedAt = new Date();
  const t0 = performance.now();
  const cfg = resolveReplayConfig(o);
  const recording = await readRecording(cfg.file);
  const dids = new Set(recording.messages.map((m) => topicDid(m.topic)).filter((d) => d !== undefined));
  const rewriter = cfg.copies ? new DidRewriter(dids, cfg.copies) : null;
  const copies = Math.max(1, cfg.copies);
  const senders = [...new Set(recording.messages.map((m) => senderOf(m.topic)))];
  const sessionCount = senders.length * copies;
  if (cfg.target.kind === 'external' && sessionCount > MAX_EXTERNAL_CONNECTIONS) {
    throw new AiotSimError('E_REPLAY_INPUT', 'input',
      `replay opens one session per device: ${sessionCount.toLocaleString('en-US')} (${senders.length} x ${copies} copies) is more sockets than one process opens (${MAX_EXTERNAL_CONNECTIONS.toLocaleString('en-US')}); use fewer --rewrite-did copies`);
  }
  const runId = randomBytes(3).toString('base64url').slice(0, 4);
  const target = await openTarget(cfg, runId);
  const counters: SessionCounters = { sent: 0, acked: 0, notSent: 0, connectOk: 0, connectFailed: 0, disconnects: 0, connectErrors: {} };
  const sessions = new Map<string, ReplaySession>();
  let probe: ProbeThread | null = null;
  let progress: Progress | null = null;
  try {
    await o.onBroker?.({ url: targetUrl(target.wire), embedded: target.embedded !== null });
    if (cfg.waitMs > 0) await sleep(cfg.waitMs);
    // One session per (copy, sender): keys are the rewritten sender, so copy k's device k is a device of its own.
    const keys: string[] = [];
    for (let c = cfg.copies ? 1 : 0; c <= cfg.copies; c++) {
      for (const s of senders) keys.push(rewriter && s.startsWith('device:') ? `device:${rewriter.did(s.slice(7), c)}` : s);
    }
    const uniqueKeys = [...new Set(keys)];
    uniqueKeys.forEach((k, i) => sessions.set(k, new ReplaySession(target.open, target.login(k, i), counters)));
    const first = recording.messages[0]!.ts;
    const schedule = new Schedule(recording.messages.map((m) => m.ts - first), { speed: cfg.speed === 'fast' ? 1 : cfg.speed, loops: cfg.loops, copies: cfg.copies });
    progress = new Progress(o, cfg, sessions, () => probe?.stats ?? null, target.embedded !== null, schedule.total);
    progress.phase = 'connecting';
    const connectStart = performance.now();
    await connectAll([...sessions.values()], target.wire);
    const connectSeconds = (performance.now() - connectStart) / 1000;
    if (cfg.replyTopic !== null) {
      const login = target.probeLogin;
      probe = new ProbeThread({
        target: target.wire, clientId: `aiot-replay-probe-${runId}`, filters: [cfg.replyTopic], qos: 1, runId, devices: uniqueKeys.length,
        ...(login.username !== undefined ? { username: login.username, password: login.password ?? '' } : {}),
      });
      await probe.start();
      probe.window(wallUs(), Number.MAX_SAFE_INTEGER);
    }
    progress.phase = 'replaying';
    const played = await play(cfg, recording, schedule, rewriter, target, sessions, uniqueKeys, runId, probe !== null, progress);
    let final: { stats: ProbeStats; latencyUs: ReturnType<typeof summarise> } | null = null;
    if (probe) {
      progress.phase = 'draining';
      await probe.drain(played.measured, DRAIN_QUIET_MS, cfg.drainMs);
      final = await probe.finish();
    }
    await Promise.all([...sessions.values()].map((s) => s.close(10_000)));
    // The embedded broker publishes what it acknowledged before it closes (Aedes acknowledges a
    // QoS 1 message before it forwards it): subscribers get the last messages too.
    await target.embedded?.goDown();
    progress.stop(final?.stats ?? null);
    return buildReplayReport({
      config: cfg, startedAt, wallSeconds: Math.round(performance.now() - t0) / 1000,
      target: { broker: target.embedded ? 'embedded' : 'external', url: targetUrl(target.wire), transport: target.wire.transport },
      recording: { file: recording.file, messages: recording.messages.length, devices: dids.size, spanSeconds: recording.spanMs / 1000, backwards: recording.backwards },
      sessions: uniqueKeys.length, counters, connectSeconds,
      ...played, probe: final, timeline: progress.timeline,
    });
  } finally {
    progress?.dispose();
    await Promise.all([...sessions.values()].map((s) => s.close(0)));
    await probe?.stop();
    await target.embedded?.close();
  }
}

/** Start the embedded broker (device accounts are provisioned per session) or point at the external one. */
async function openTarget(cfg: ReplayConfig, runId: string): Promise<Target> {
  const plan = cfg.target;
  if (plan.kind === 'external') {
    const creds = { ...(plan.username !== undefined ? { username: plan.username } : {}), ...(plan.password !== undefined ? { password: plan.password } : {}) };
    return {
      wire: plan.target, embedded: null,
      open: () => openStream(plan.target, 10_000),
      login: (_key, i) => ({ clientId: `aiot-replay-${runId}-${i}`, ...creds }),
      refusal: () => null,
      probeLogin: creds,
    };
  }
  const operatorToken = randomBytes(16).toString('hex');
  const b = await EmbeddedBroker.start({
    host: plan.host, mqttPort: plan.mqttPort, wsPort: null, operatorToken, ...(cfg.anonymous !== undefined ? { anonymous: cfg.anonymous } : {}),
  });
  const addr = b.mqttAddress!;
  const principal = (key: string): Principal => (key.startsWith('device:') ? { role: 'device', did: key.slice(7) } : { role: 'operator' });
  return {
    wire: { transport: 'tcp', host: addr.host, port: addr.port, path: '' }, embedded: b,
    // Sessions go over in-process pipes: real MQTT packets, no socket (and no file descriptor) per device.
    open: () => Promise.resolve(b.connectInProcess()),
    login: (key) => {
      if (!key.startsWith('device:')) return { clientId: `aiot-replay-${runId}`, username: 'operator', password: operatorToken };
      const did = key.slice(7);
      const token = randomBytes(12).toString('hex');
      b.access.registerDevice(did, { token, uid: 'replay' });
      return { clientId: did, username: did, password: token };
    },
    refusal: (key, topic) => {
      const ok = b.access.canPublish(principal(key), topic);
      return ok === true ? null : ok;
    },
    probeLogin: { username: 'operator', password: operatorToken },
  };
}

/** Connect every session, a few at a time; the first failure to reach the broker at all ends the replay. */
async function connectAll(sessions: ReplaySession[], wire: WireTarget): Promise<void> {
  let next = 0;
  let ok = 0;
  let firstError: Error | null = null;
  const worker = async (): Promise<void> => {
    while (next < sessions.length) {
      const s = sessions[next++]!;
      try {
        await s.connect();
        ok++;
      } catch (e) {
        firstError ??= e as Error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, sessions.length) }, worker));
  if (ok === 0 && firstError) throw new BenchError(`cannot replay into ${targetUrl(wire)}: ${(firstError as Error).message}`, 'environment');
}

/** What the schedule sent, as the report takes it. */
type Played = Pick<ReplayOutcome, 'scheduled' | 'scheduleMs' | 'sendMs' | 'byQos' | 'skippedReasons' | 'unmeasured' | 'measured' | 'lateness'>;

/** Send every message when it is due (or at once, fast); returns what went out. */
async function play(
  cfg: ReplayConfig, rec: Recording, schedule: Schedule, rw: DidRewriter | null, target: Target, sessions: Map<string, ReplaySession>,
  keys: string[], runId: string, measure: boolean, progress: Progress,
): Promise<Played> {
  const fast = cfg.speed === 'fast';
  const devOf = new Map(keys.map((k, i) => [k, i]));
  const seqOf = new Uint32Array(keys.length);
  const lateness = newHistogram();
  const byQos = { 0: 0, 1: 0, 2: 0 };
  const skipped: Record<string, number> = {};
  let unmeasured = 0;
  let burst = 0;
  const start = performance.now();
  let lastSend = start;
  for (let e = schedule.next(); e; e = schedule.next()) {
    const m: RecordedMessage = rec.messages[e.index]!;
    const topic = rw ? rw.topic(m.topic, e.copy) : m.topic;
    const key = senderOf(topic);
    const why = target.refusal(key, topic);
    if (why !== null) {
      skipped[why] = (skipped[why] ?? 0) + 1;
      continue;
    }
    const due = start + e.due;
    if (!fast) {
      const wait = due - performance.now();
      if (wait >= 1) { await sleep(wait); burst = 0; }
    }
    if (++burst >= BURST) { await yieldNow(); burst = 0; }
    const session = sessions.get(key)!;
    const backedUp = session.ready();
    if (backedUp) await backedUp;
    let payload = rw ? rw.payload(m.payload, e.copy) : m.payload;
    const now = performance.now();
    if (measure) {
      const dev = devOf.get(key)!;
      const stamped = withBenchHeader(payload, runId, dev, seqOf[dev]!, wallUs());
      if (stamped) { payload = stamped; seqOf[dev]!++; } else unmeasured++;
    }
    if (!session.publish(topic, payload, m.qos, m.retain)) continue;
    byQos[m.qos]++;
    lastSend = now;
    progress.sent++;
    if (!fast) {
      const late = Math.max(0, Math.round((now - due) * 1000));
      lateness.recordValue(late);
      progress.late(late);
    }
  }
  return {
    scheduled: schedule.total, scheduleMs: schedule.lastDue, sendMs: lastSend - start, byQos, skippedReasons: skipped, unmeasured,
    measured: measure ? [...seqOf].reduce((a, b) => a + b, 0) : 0, lateness: fast ? null : summarise(lateness),
  };
}

/**
 * The payload with the bench header (`"bench":{"run","dev","seq","t"}`, the probe's key) added as
 * its last field; null when the payload is not a JSON object (it is sent as is, not measured).
 */
export function withBenchHeader(payload: Buffer, runId: string, dev: number, seq: number, tUs: number): Buffer | null {
  const space = (c: number | undefined): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
  let end = payload.length - 1;
  while (end >= 0 && space(payload[end])) end--;
  let start = 0;
  while (start < end && space(payload[start])) start++;
  if (end < 1 || payload[start] !== 0x7b || payload[end] !== 0x7d) return null;
  let inner = end - 1;
  while (inner > start && space(payload[inner])) inner--;
  const header = `${inner === start ? '' : ','}"bench":{"run":"${runId}","dev":${dev},"seq":${seq},"t":${tUs}}`;
  return Buffer.concat([payload.subarray(0, end), Buffer.from(header), payload.subarray(end)]);
}

/** The timeline (a point a second) and the live progress. */
class Progress {
  phase: 'connecting' | 'replaying' | 'draining' = 'connecting';
  sent = 0;
  readonly timeline: ReplayTimelinePoint[] = [];
  private readonly ticker: NodeJS.Timeout;
  private readonly secondLate = newHistogram();
  private sentAtPoint = 0;
  private readonly t0 = performance.now();

  constructor(
    private readonly o: ReplayOptions, private readonly cfg: ReplayConfig, private readonly sessions: Map<string, ReplaySession>,
    private readonly probeStats: () => ProbeStats | null, private readonly embedded: boolean, private readonly total: number,
  ) {
    this.ticker = setInterval(() => this.tick(this.probeStats()), 1000);
  }

  late(us: number): void { this.secondLate.recordValue(us); }

  dispose(): void { clearInterval(this.ticker); }

  /** The last, partial second. */
  stop(finalProbe: ProbeStats | null): void {
    this.dispose();
    if (this.sent > this.sentAtPoint || finalProbe) this.point(finalProbe);
  }

  private tick(ps: ProbeStats | null): void {
    if (this.phase === 'connecting') {
      this.report(null);
      return;
    }
    this.report(this.point(ps));
  }

  private point(ps: ProbeStats | null): ReplayTimelinePoint {
    const p: ReplayTimelinePoint = {
      second: this.timeline.length + 1, sent: this.sent - this.sentAtPoint, received: ps?.interval.received ?? 0,
      p99Ms: ps?.interval.p99Us != null ? ps.interval.p99Us / 1000 : null,
      connected: [...this.sessions.values()].filter((s) => s.connected).length,
      brokerHeapBytes: this.embedded ? process.memoryUsage().heapUsed : null,
      lateP99Ms: this.cfg.speed !== 'fast' && this.secondLate.totalCount ? this.secondLate.getValueAtPercentile(99) / 1000 : null,
    };
    this.secondLate.reset();
    this.sentAtPoint = this.sent;
    this.timeline.push(p);
    return p;
  }

  private report(p: ReplayTimelinePoint | null): void {
    this.o.onProgress?.({
      phase: this.phase, seconds: (performance.now() - this.t0) / 1000, sent: this.sent, total: this.total,
      sendRate: p?.sent ?? 0, receiveRate: p?.received ?? 0, lateP99Ms: p?.lateP99Ms ?? null,
      connected: [...this.sessions.values()].filter((s) => s.connected).length, sessions: this.sessions.size,
    });
  }
}
