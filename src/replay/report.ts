/**
 * The replay report (JSON, `version: 1`; field names are a contract, documented in
 * docs/bench.md, "Record and replay"): what was sent, how late against the schedule, and with a
 * consumer's replies (`replyTopic`) the round trip's latency and loss, in the bench report's
 * shapes and with its SLO checks; and its Markdown rendering.
 */
import type { BenchReport, LatencyMs, TimelinePoint } from '../load/report.js';
import { latencyTable, num, round, sloTable, toMs } from '../load/report.js';
import type { LatencySummaryUs, ProbeStats } from '../load/protocol.js';
import { checkSlo } from '../load/slo.js';
import type { SessionCounters } from './session.js';
import type { ReplayConfig } from './options.js';

export interface ReplayTimelinePoint extends TimelinePoint {
  /** p99 lateness against the schedule of this second's messages, ms (null: fast, or none sent). */
  lateP99Ms: number | null;
}

export interface ReplayReport {
  tool: 'aiot-sim replay';
  version: 1;
  startedAt: string;
  wallSeconds: number;
  target: BenchReport['target'];
  recording: {
    file: string;
    /** Messages (lines) in the file. */
    messages: number;
    /** Distinct devices (dids of `device/{did}/...` topics). */
    devices: number;
    /** Last ts - first ts, seconds. */
    spanSeconds: number;
    /** Lines whose ts went back in time (replayed at the previous line's time). */
    backwards: number;
  };
  config: {
    speed: number | 'fast';
    loops: number;
    /** Copies with device ids of their own (`--rewrite-did`), null: the dids as recorded. */
    rewriteDid: number | null;
    /** MQTT sessions replay published on: one per device (per copy), one for the other topics. */
    sessions: number;
    /** "sent": what replay sent. "round-trip": replayed -> broker -> consumer -> reply topic -> probe. */
    measure: 'sent' | 'round-trip';
    replyTopic: string | null;
  };
  connections: {
    sessions: number;
    /** Successful CONNECTs (reconnects included). */
    succeeded: number;
    failed: number;
    /** Sessions lost while replaying (each comes back by itself). */
    disconnects: number;
    connectSeconds: number;
    errors: Record<string, number>;
  };
  messages: {
    /** Messages the replay was to send (recording x loops x copies). */
    scheduled: number;
    sent: number;
    /** QoS of what was sent. */
    byQos: { 0: number; 1: number; 2: number };
    /** QoS 1 PUBACKs and QoS 2 PUBCOMPs received. */
    acked: number;
    /** Not sent: their session was down. */
    notSent: number;
    /** Not sent: the embedded broker's access rules refuse them to any session replay has (reason -> count). */
    skipped: number;
    skippedReasons: Record<string, number>;
    /** Round trip: replies received (unique), lost, duplicated; null without a reply topic. */
    received: number | null;
    lost: number | null;
    duplicates: number | null;
    lossRatio: number | null;
    /** Round trip: messages sent that cannot be measured (their payload is not a JSON object). */
    unmeasured: number;
  };
  rate: {
    /** The schedule's mean rate, msg/s (null: fast). */
    scheduled: number | null;
    /** Sent, msg/s, from the first message to the last. */
    sent: number;
    /** Replies received, msg/s over the same time (null without a reply topic). */
    received: number | null;
  };
  /** How late each message went out against its due time, ms (null: fast, which has no schedule). */
  latenessMs: LatencyMs | null;
  /** Round-trip latency through the consumer, ms (count 0 without a reply topic). */
  latencyMs: LatencyMs;
  timeline: ReplayTimelinePoint[];
  probe: BenchReport['probe'] | null;
  slo: BenchReport['slo'];
}

/** Everything a finished replay measured, for `buildReplayReport`. */
export interface ReplayOutcome {
  config: ReplayConfig;
  startedAt: Date;
  wallSeconds: number;
  target: BenchReport['target'];
  recording: ReplayReport['recording'];
  sessions: number;
  counters: SessionCounters;
  connectSeconds: number;
  scheduled: number;
  /** Due time of the last message, ms after the start. */
  scheduleMs: number;
  /** From the start of the schedule to the last message sent, ms. */
  sendMs: number;
  byQos: { 0: number; 1: number; 2: number };
  skippedReasons: Record<string, number>;
  unmeasured: number;
  /** Messages the probe should get back (sent with a header). */
  measured: number;
  lateness: LatencySummaryUs | null;
  probe: { stats: ProbeStats; latencyUs: LatencySummaryUs | null } | null;
  timeline: ReplayTimelinePoint[];
}

/** The report of a finished replay: a pure function of what it measured. */
export function buildReplayReport(o: ReplayOutcome): ReplayReport {
  const c = o.config;
  const k = o.counters;
  const seconds = Math.max(o.sendMs, 1) / 1000;
  const p = o.probe;
  const lost = p ? Math.max(0, o.measured - p.stats.received) : null;
  const report: ReplayReport = {
    tool: 'aiot-sim replay', version: 1, startedAt: o.startedAt.toISOString(), wallSeconds: o.wallSeconds,
    target: o.target,
    recording: o.recording,
    config: {
      speed: c.speed, loops: c.loops, rewriteDid: c.copies || null, sessions: o.sessions,
      measure: c.replyTopic !== null ? 'round-trip' : 'sent', replyTopic: c.replyTopic,
    },
    connections: {
      sessions: o.sessions, succeeded: k.connectOk, failed: k.connectFailed, disconnects: k.disconnects,
      connectSeconds: round(o.connectSeconds, 3), errors: k.connectErrors,
    },
    messages: {
      scheduled: o.scheduled, sent: k.sent, byQos: o.byQos, acked: k.acked, notSent: k.notSent,
      skipped: Object.values(o.skippedReasons).reduce((a, b) => a + b, 0), skippedReasons: o.skippedReasons,
      received: p ? p.stats.received : null, lost, duplicates: p ? p.stats.duplicates : null,
      lossRatio: p && o.measured > 0 ? lost! / o.measured : null, unmeasured: o.unmeasured,
    },
    rate: {
      scheduled: c.speed === 'fast' || o.scheduleMs <= 0 ? null : round(o.scheduled / (o.scheduleMs / 1000), 1),
      sent: round(k.sent / seconds, 1),
      received: p ? round(p.stats.received / seconds, 1) : null,
    },
    latenessMs: c.speed === 'fast' ? null : toMs(o.lateness),
    latencyMs: toMs(p?.latencyUs ?? null),
    timeline: o.timeline,
    probe: p ? { foreign: p.stats.foreign, negativeLatencies: p.stats.negative } : null,
    slo: null,
  };
  if (c.slo.length) {
    const m = report.messages;
    report.slo = checkSlo(c.slo, {
      latencyMs: report.latencyMs, messages: { lost: m.lost ?? 0, duplicates: m.duplicates ?? 0, lossRatio: m.lossRatio },
      rate: { received: report.rate.received ?? 0 }, connections: { failed: report.connections.failed },
    });
  }
  return report;
}

/** The report as a Markdown summary. */
export function toReplayMarkdown(r: ReplayReport): string {
  const c = r.config;
  const m = r.messages;
  const speed = c.speed === 'fast' ? 'fast' : `${c.speed}x`;
  const lines = [
    `## aiot-sim replay: ${r.recording.file}, ${num(r.recording.messages, 0)} messages of ${r.recording.devices} devices, ${speed}` +
      `${c.loops > 1 ? `, ${c.loops} loops` : ''}${c.rewriteDid ? `, ${c.rewriteDid} copies with their own dids` : ''}, against ${r.target.broker} ${r.target.url}`,
    '',
    '| figure | value |',
    '|---|---|',
    `| measured | ${c.measure === 'round-trip' ? `round trip through the consumer (reply topic \`${c.replyTopic ?? ''}\`)` : 'what replay sent'} |`,
    `| messages scheduled / sent | ${num(m.scheduled, 0)} / ${num(m.sent, 0)} (QoS 0/1/2: ${m.byQos[0]}/${m.byQos[1]}/${m.byQos[2]}) |`,
    `| rate scheduled / sent${m.received !== null ? ' / received' : ''} (msg/s) | ${num(r.rate.scheduled, 0)} / ${num(r.rate.sent, 0)}${m.received !== null ? ` / ${num(r.rate.received, 0)}` : ''} |`,
  ];
  if (m.received !== null) {
    lines.push(`| replies received / lost / duplicates | ${num(m.received, 0)} / ${num(m.lost, 0)} (${m.lossRatio === null ? '-' : `${num(m.lossRatio * 100, 3)} %`}) / ${num(m.duplicates, 0)} |`);
    if (m.unmeasured) lines.push(`| sent, not measurable (payload not a JSON object) | ${num(m.unmeasured, 0)} |`);
  }
  if (m.notSent) lines.push(`| not sent (session down) | ${num(m.notSent, 0)} |`);
  for (const [why, n] of Object.entries(m.skippedReasons)) lines.push(`| skipped: ${why} | ${num(n, 0)} |`);
  lines.push(`| sessions ok / failed / dropped | ${r.connections.succeeded} / ${r.connections.failed} / ${r.connections.disconnects} |`);
  const rows: Array<[string, LatencyMs]> = [];
  if (r.latenessMs) rows.push(['lateness against the schedule', r.latenessMs]);
  if (c.measure === 'round-trip') rows.push(['round trip', r.latencyMs]);
  if (rows.length) lines.push('', ...latencyTable(rows, 'ms'));
  lines.push(...sloTable(r.slo));
  return lines.join('\n') + '\n';
}
