/**
 * What `runReplay` is asked to do (`ReplayOptions`) and the checked plan it runs (`ReplayConfig`):
 * every option checked at once (an `OptionsError` naming each problem), defaults filled in.
 */
import { ANONYMOUS_ACCESS, type AnonymousAccess } from '../broker/access.js';
import { OptionsError } from '../errors.js';
import { filterProblem } from '../monitor/topic-filter.js';
import { atLeast, isInt, positive, Problems, resolveTarget, type BenchTargetPlan, type TargetOptions } from '../load/options.js';
import type { SloTerm } from '../load/slo.js';

export interface ReplayOptions extends Pick<TargetOptions, 'broker' | 'username' | 'password' | 'host' | 'mqttPort'> {
  /** The recording (NDJSON, as `aiot-sim record` or `run --trace` write it). */
  file: string;
  /** Recorded ms per replayed ms (10: ten times as fast), or 'fast': no waiting at all. Default 1. */
  speed?: number | 'fast';
  /** Play the recording this many times, one after the other. Default 1. */
  loops?: number;
  /** Play this many copies side by side, each with device ids of its own (one recording stands for many devices). Default: none, the dids as recorded. */
  rewriteDid?: number;
  /**
   * Embedded broker: what clients without a user name (your consumer) may do, as `run --anonymous`:
   * `telemetry` reads device telemetry and state (states without their owner's `uid`), `all` reads
   * everything as recorded, `none` refuses them. Default: the broker's (`telemetry` on loopback).
   */
  anonymous?: AnonymousAccess;
  /** Measure the round trip through a consumer that republishes each replayed message on a topic matching this filter. */
  replyTopic?: string;
  /** Wait this long after the broker is up, before connecting (time to start a consumer), ms. Default 0. */
  waitMs?: number;
  /** With replyTopic: after the last message, wait at most this long for replies still on their way, ms. Default 5,000. */
  drainMs?: number;
  /** SLO terms checked into the report. */
  slo?: SloTerm[];
  /** Called once the target is known (the embedded broker listening); replay waits for a returned promise before connecting. */
  onBroker?: (info: { url: string; embedded: boolean }) => void | Promise<void>;
  /** Called about once a second while running. */
  onProgress?: (p: ReplayProgress) => void;
}

export interface ReplayProgress {
  phase: 'connecting' | 'replaying' | 'draining';
  seconds: number;
  sent: number;
  /** Messages the whole replay sends. */
  total: number;
  sendRate: number;
  receiveRate: number;
  /** p99 of this second's lateness against the schedule, ms (null: fast, or nothing sent). */
  lateP99Ms: number | null;
  connected: number;
  sessions: number;
}

export interface ReplayConfig {
  file: string;
  target: BenchTargetPlan;
  /** Embedded broker: its anonymous access (undefined: the broker's default). */
  anonymous: AnonymousAccess | undefined;
  speed: number | 'fast';
  loops: number;
  copies: number;
  replyTopic: string | null;
  waitMs: number;
  drainMs: number;
  slo: SloTerm[];
}

/** Metrics of an SLO that only a consumer's replies can give (latency, loss, duplicates, received rate). */
const NEEDS_REPLIES = new Set(['p50', 'p90', 'p99', 'p999', 'max', 'loss', 'dups', 'rate']);

/** Check every option (all problems at once, as an OptionsError) and fill in the defaults. */
export function resolveReplayConfig(o: ReplayOptions): ReplayConfig {
  const p = new Problems();
  const target = resolveTarget(o, p);
  let replyTopic: string | null = null;
  if (o.replyTopic !== undefined) {
    const why = filterProblem(o.replyTopic);
    if (why) p.reject('replyTopic', `expected an MQTT topic filter (${why})`, o.replyTopic);
    replyTopic = o.replyTopic;
  }
  const speed = o.speed === 'fast' ? 'fast' : p.check('speed', o.speed, 1, positive, 'expected a positive number (recorded seconds per second) or "fast"');
  const slo = o.slo ?? [];
  if (replyTopic === null) {
    for (const t of slo.filter((s) => NEEDS_REPLIES.has(s.metric))) {
      p.reject('slo', `${t.metric} is measured on a consumer's replies: give {replyTopic} (without it replay reports what it sent)`, t.term);
    }
  }
  if (o.anonymous !== undefined) {
    if (target.kind === 'external') p.add('anonymous', 'configures the embedded broker; your broker ({broker}) has its own rules');
    else if (!ANONYMOUS_ACCESS.includes(o.anonymous)) p.reject('anonymous', `expected ${ANONYMOUS_ACCESS.map((a) => `"${a}"`).join(', ')}`, o.anonymous);
  }
  const config: ReplayConfig = {
    file: o.file, target, speed, anonymous: o.anonymous,
    loops: p.check('loops', o.loops, 1, isInt(1, 1_000_000), 'expected an integer from 1 to 1000000'),
    copies: o.rewriteDid === undefined ? 0 : p.check('rewriteDid', o.rewriteDid, 1, isInt(1, 100_000), 'expected a number of copies from 1 to 100000'),
    replyTopic,
    waitMs: p.check('waitMs', o.waitMs, 0, atLeast(0), 'expected a duration of zero or more'),
    drainMs: p.check('drainMs', o.drainMs, 5000, atLeast(0), 'expected a duration of zero or more'),
    slo,
  };
  if (typeof o.file !== 'string' || o.file === '') p.add('file', 'expected the path of a recording');
  if (p.list.length) throw new OptionsError('E_REPLAY_INPUT', p.list);
  return config;
}
