/**
 * The bench report (JSON, `version: 1`; field names are a contract, documented in
 * docs/bench.md, "The report") and its Markdown rendering.
 */
import type { OverloadStats } from '../broker/overload.js';
import type { WireProfile } from '../contract/wire.js';
import type { BenchConfig } from './options.js';
import type { GeneratorStats, LatencySummaryUs, NotSentWhy, ProbeStats } from './protocol.js';
import { checkSlo, type SloCheck } from './slo.js';

export interface LatencyMs { count: number; p50: number | null; p90: number | null; p99: number | null; p999: number | null; max: number | null; mean: number | null }

export interface TimelinePoint {
  /** Index of the (about one-second) interval since traffic started, warm-up included; the last point covers the rest, up to the end of the drain. */
  second: number;
  /** Messages written by the generators in this second. */
  sent: number;
  /** Bench messages received by the probe in this second. */
  received: number;
  /** p99 latency of this second's messages, ms (null: none arrived). */
  p99Ms: number | null;
  /** Device connections up at the end of this second. */
  connected: number;
  /** Embedded broker: heap used by its thread (the main thread) at the end of this second, bytes; null otherwise. */
  brokerHeapBytes: number | null;
}

export interface BenchReport {
  tool: 'aiot-sim bench';
  version: 1;
  startedAt: string;
  wallSeconds: number;
  target: { broker: 'embedded' | 'external'; url: string; transport: 'tcp' | 'ws' };
  config: {
    devices: number; workers: number; qos: 0 | 1;
    /** Target message rate, all devices together, msg/s. */
    rate: number; ratePerDevice: number;
    durationSeconds: number; warmupSeconds: number;
    /** Connections per second while connecting (0: as fast as possible). */
    rampPerSecond: number;
    /** Minimum payload size in bytes (0: natural size). */
    payloadSize: number; payloadBytes: { min: number; max: number };
    eventShare: number; models: string[]; reconnectJitterMs: number;
    /** QoS 1 messages a device may have unacknowledged (`--inflight`). */
    inflight: number;
    /** Xiaomi format of the messages: the cloud push or the central hub. */
    wire: WireProfile;
    /** "broker": device -> broker -> probe. "round-trip": device -> broker -> consumer -> reply topic -> probe. */
    measure: 'broker' | 'round-trip';
    replyTopic: string | null;
  };
  connections: {
    devices: number;
    /** Successful CONNECTs (reconnects included). */
    succeeded: number;
    /** Failed CONNECT attempts (refused, timed out, no route). */
    failed: number;
    /** Connections lost while running. */
    disconnects: number;
    /** Seconds until every device had tried once, and devices connected per second over it. */
    connectSeconds: number; connectRate: number;
    slowestConnectMs: number;
    errors: Record<string, number>;
    /**
     * CPU time (user + system) of the generator threads per connection made while the devices
     * connected: the kernel's work for both ends of a loopback TCP handshake is mostly here. Beside
     * `brokerCpu.microsPerConnection` it says which side limits the connect rate. Null when unknown
     * (not Linux).
     */
    generatorCpuMicrosPerConnection: number | null;
  };
  /** Messages of the measured window (sent after the warm-up, before the end). */
  messages: {
    sent: number; received: number; lost: number;
    /** Of `lost`, those written on a connection that then closed (the broker drops what it had not read). */
    lostOnDroppedConnections: number;
    duplicates: number;
    /** lost / sent (null when nothing was sent). */
    lossRatio: number | null;
    /** Messages the rate asked for in the measured window that a generator could not write (connection backed up or down, QoS 1 window full). */
    notSent: number;
    /** `notSent` by why: the generator's thread ran late, the connection was backed up or down, the QoS 1 window was full. */
    notSentWhy: NotSentWhy;
    /** Messages not written during the warm-up (not part of the measured window, like the other figures here). */
    notSentWarmup: number;
    /** QoS 1: PUBACKs the generators received (whole run). */
    acked: number;
  };
  /** msg/s over the measured window. */
  rate: { target: number; sent: number; received: number };
  latencyMs: LatencyMs;
  timeline: TimelinePoint[];
  /** Embedded broker only (null against an external broker). */
  broker: null | {
    published: number; delivered: number; rejected: number;
    overload: OverloadStats;
    emitter: { maxQueued: number; waited: number };
    memory: {
      /** Main-thread heap (the broker's) before devices connected and with all connected, bytes. */
      heapUsedBeforeBytes: number; heapUsedConnectedBytes: number; heapBytesPerConnection: number;
      heapUsedMaxBytes: number; rssMaxBytes: number;
    };
    /** A fresh client could connect after the run. */
    aliveAfter: boolean;
  };
  probe: { foreign: number; negativeLatencies: number };
  /**
   * Event-loop utilisation (0..1) of each thread from the start of traffic until the generators
   * stopped: the embedded broker's thread (null for an external broker), the probe, each generator.
   * A thread near 1 is saturated and is what limits the rate.
   */
  utilization: { broker: number | null; probe: number; generators: number[] };
  /**
   * The broker's CPU time from the start of traffic (warm-up included) until the drain ended, and
   * per message sent meanwhile (one PUBLISH in, one delivery out): the embedded broker's thread,
   * or an external broker's process given its pid (`brokerPid`). Unlike utilisation it does not
   * count time spent waiting for a core. Null when unknown (external broker without a pid, not Linux).
   */
  brokerCpu: null | {
    seconds: number; messages: number; microsPerMessage: number;
    /** While the devices connected (the full GCs around it left out): CPU seconds, connections made, per connection. */
    connectSeconds: number; connections: number; microsPerConnection: number | null;
  };
  slo: null | { passed: boolean; checks: SloCheck[] };
}

/** Everything a finished bench measured, for `buildBenchReport`. */
export interface BenchOutcome {
  config: BenchConfig;
  startedAt: Date;
  wallSeconds: number;
  target: BenchReport['target'];
  /** Until every device had tried once. */
  connectSeconds: number;
  /** The generator threads' CPU seconds meanwhile and the connections made, when known. */
  generatorConnectCpu: { seconds: number; connections: number } | null;
  /** The generators' final stats, summed. */
  generators: GeneratorStats;
  probe: ProbeStats;
  latencyUs: LatencySummaryUs | null;
  timeline: TimelinePoint[];
  /** Embedded broker only. */
  broker: null | {
    counters: { published: number; delivered: number; rejected: number };
    overload: OverloadStats;
    emitter: { maxQueued: number; waited: number };
    heapBefore: number; heapConnected: number; heapMax: number; rssMax: number;
    aliveAfter: boolean;
  };
  utilization: BenchReport['utilization'];
  /** The broker's CPU seconds while devices connected (and how many did) and over the traffic and drain, when known. */
  brokerCpu: { connectSeconds: number; connections: number; trafficSeconds: number } | null;
}

/** The report of a finished bench: a pure function of what it measured. */
export function buildBenchReport(o: BenchOutcome): BenchReport {
  const c = o.config;
  const g = o.generators;
  const p = o.probe;
  const measuredSeconds = c.durationMs / 1000;
  const lost = Math.max(0, g.sentMeasured - p.received);
  const report: BenchReport = {
    tool: 'aiot-sim bench', version: 1, startedAt: o.startedAt.toISOString(), wallSeconds: o.wallSeconds,
    target: o.target,
    config: {
      devices: c.devices, workers: c.workers, qos: c.qos, rate: c.rate, ratePerDevice: c.rate / c.devices, durationSeconds: c.durationMs / 1000,
      warmupSeconds: c.warmupMs / 1000, rampPerSecond: c.rampPerSecond, payloadSize: c.payloadSize, payloadBytes: c.payloadBytes, eventShare: c.eventShare,
      models: c.models, reconnectJitterMs: c.reconnectJitterMs, inflight: c.inflight, wire: c.wire, measure: c.replyTopic !== null ? 'round-trip' : 'broker', replyTopic: c.replyTopic,
    },
    connections: {
      devices: c.devices, succeeded: g.connectOk, failed: g.connectFailed, disconnects: g.disconnects,
      connectSeconds: round(o.connectSeconds, 3), connectRate: round(c.devices / Math.max(o.connectSeconds, 0.001), 1),
      slowestConnectMs: round(g.connectMaxMs, 1), errors: g.connectErrors,
      generatorCpuMicrosPerConnection: o.generatorConnectCpu && o.generatorConnectCpu.connections > 0
        ? round((o.generatorConnectCpu.seconds * 1e6) / o.generatorConnectCpu.connections, 1) : null,
    },
    messages: {
      sent: g.sentMeasured, received: p.received, lost, lostOnDroppedConnections: Math.min(lost, p.lostOnDroppedConnections), duplicates: p.duplicates,
      lossRatio: g.sentMeasured > 0 ? lost / g.sentMeasured : null, notSent: g.notSentMeasured, notSentWhy: { ...g.notSentWhyMeasured }, notSentWarmup: g.notSent - g.notSentMeasured, acked: g.acked,
    },
    rate: { target: c.rate, sent: round(g.sentMeasured / measuredSeconds, 1), received: round(p.received / measuredSeconds, 1) },
    latencyMs: toMs(o.latencyUs),
    timeline: o.timeline,
    broker: o.broker && brokerFigures(o.broker, c.devices),
    probe: { foreign: p.foreign, negativeLatencies: p.negative },
    utilization: o.utilization,
    brokerCpu: o.brokerCpu === null || g.sent === 0 ? null : {
      seconds: round(o.brokerCpu.trafficSeconds, 2), messages: g.sent, microsPerMessage: round((o.brokerCpu.trafficSeconds * 1e6) / g.sent, 2),
      connectSeconds: round(o.brokerCpu.connectSeconds, 2), connections: o.brokerCpu.connections,
      microsPerConnection: o.brokerCpu.connections ? round((o.brokerCpu.connectSeconds * 1e6) / o.brokerCpu.connections, 1) : null,
    },
    slo: null,
  };
  if (c.slo.length) report.slo = checkSlo(c.slo, { latencyMs: report.latencyMs, messages: report.messages, rate: report.rate, connections: report.connections });
  return report;
}

function brokerFigures(b: NonNullable<BenchOutcome['broker']>, devices: number): NonNullable<BenchReport['broker']> {
  return {
    published: b.counters.published, delivered: b.counters.delivered, rejected: b.counters.rejected,
    overload: { ...b.overload },
    emitter: { maxQueued: b.emitter.maxQueued, waited: b.emitter.waited },
    memory: {
      heapUsedBeforeBytes: b.heapBefore, heapUsedConnectedBytes: b.heapConnected,
      heapBytesPerConnection: Math.round((b.heapConnected - b.heapBefore) / devices), heapUsedMaxBytes: b.heapMax, rssMaxBytes: b.rssMax,
    },
    aliveAfter: b.aliveAfter,
  };
}

/** An HDR summary in µs as the report's milliseconds (all null when nothing was recorded). */
export function toMs(l: LatencySummaryUs | null): LatencyMs {
  if (!l) return { count: 0, p50: null, p90: null, p99: null, p999: null, max: null, mean: null };
  // HDR percentiles are the highest value equivalent to their bucket (3 significant digits), which
  // can lie a hair above the exact maximum: clamp so p50 <= ... <= p999 <= max always holds.
  const ms = (us: number): number => Math.round(Math.min(us, l.max)) / 1000;
  return { count: l.count, p50: ms(l.p50), p90: ms(l.p90), p99: ms(l.p99), p999: ms(l.p999), max: ms(l.max), mean: ms(l.mean) };
}

export function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

/** A figure for Markdown: grouped digits, at most `d` decimals, "-" for none. */
export const num = (x: number | null, d = 2): string => (x === null ? '-' : x.toLocaleString('en-US', { maximumFractionDigits: d }));

/** The report as a Markdown summary (two tables). */
export function toMarkdown(r: BenchReport): string {
  const c = r.config;
  const lines = [
    `## aiot-sim bench: ${c.devices} devices, QoS ${c.qos}, ${num(c.rate, 0)} msg/s target, ${c.durationSeconds} s against ${r.target.broker} ${r.target.url}`,
    '',
    '| figure | value |',
    '|---|---|',
    `| payloads | ${c.wire === 'cloud' ? 'Xiaomi cloud push (device/{did}/up/..., keys in params)' : 'Xiaomi central hub (appMsg/notify/iot/..., flat)'} |`,
    `| measured | ${c.measure === 'round-trip' ? `round trip through the consumer (reply topic \`${c.replyTopic ?? ''}\`)` : 'device -> broker -> probe'} |`,
    `| rate sent / received (msg/s) | ${num(r.rate.sent, 0)} / ${num(r.rate.received, 0)} |`,
    `| messages sent / received | ${num(r.messages.sent, 0)} / ${num(r.messages.received, 0)} |`,
    `| lost / duplicates | ${num(r.messages.lost, 0)} (${r.messages.lossRatio === null ? '-' : `${num(r.messages.lossRatio * 100, 3)} %`}${r.messages.lostOnDroppedConnections ? `; ${num(r.messages.lostOnDroppedConnections, 0)} on dropped connections` : ''}) / ${num(r.messages.duplicates, 0)} |`,
    `| not sent (backpressure) | ${num(r.messages.notSent, 0)}${r.messages.notSent ? ` (generator late ${num(r.messages.notSentWhy.late, 0)}, backed up or down ${num(r.messages.notSentWhy.backedUp, 0)}, QoS 1 window full ${num(r.messages.notSentWhy.windowFull, 0)}${r.messages.notSentWhy.windowFull ? ` with \`--inflight ${c.inflight}\`` : ''})` : ''}${r.messages.notSentWarmup ? `; ${num(r.messages.notSentWarmup, 0)} more in the warm-up` : ''} |`,
    `| connections ok / failed / dropped | ${r.connections.succeeded} / ${r.connections.failed} / ${r.connections.disconnects} |`,
    `| connect rate | ${num(r.connections.connectRate, 0)} /s |`,
    `| generator CPU per connection | ${r.connections.generatorCpuMicrosPerConnection === null ? '-' : `${num(r.connections.generatorCpuMicrosPerConnection, 1)} µs`} |`,
  ];
  if (r.broker) {
    const o = r.broker.overload;
    lines.push(`| broker shed QoS 0 / QoS 1, delayed QoS 1 | ${o.shedQos0} / ${o.shedQos1}, ${o.delayedQos1} |`);
    lines.push(`| broker heap per connection | ${num(r.broker.memory.heapBytesPerConnection, 0)} B |`);
    lines.push(`| broker peak RSS | ${num(r.broker.memory.rssMaxBytes / 2 ** 20, 1)} MiB |`);
  }
  if (r.brokerCpu) {
    lines.push(`| broker CPU per message | ${num(r.brokerCpu.microsPerMessage, 2)} µs (${num(r.brokerCpu.seconds, 2)} s for ${num(r.brokerCpu.messages, 0)}) |`);
    lines.push(`| broker CPU per connection | ${num(r.brokerCpu.microsPerConnection, 1)} µs (${num(r.brokerCpu.connectSeconds, 2)} s for ${num(r.brokerCpu.connections, 0)}) |`);
  }
  lines.push('', ...latencyTable([[c.measure === 'round-trip' ? 'round trip' : 'publish -> receive', r.latencyMs]]), ...sloTable(r.slo));
  return lines.join('\n') + '\n';
}

/** Markdown rows: a table of latency percentiles (ms), one row per labelled summary. */
export function latencyTable(rows: Array<[label: string, l: LatencyMs]>, what = 'latency (ms)'): string[] {
  return [`| ${what} | p50 | p90 | p99 | p99.9 | max | samples |`, '|---|---|---|---|---|---|---|',
    ...rows.map(([label, l]) => `| ${label} | ${num(l.p50, 3)} | ${num(l.p90, 3)} | ${num(l.p99, 3)} | ${num(l.p999, 3)} | ${num(l.max, 3)} | ${l.count} |`)];
}

/** Markdown rows: each SLO term, what was measured and whether it held (none without SLO). */
export function sloTable(slo: BenchReport['slo']): string[] {
  if (!slo) return [];
  return ['', '| SLO | measured | result |', '|---|---|---|',
    ...slo.checks.map((ch) => `| \`${ch.term}\` | ${num(ch.actual, 3)} | ${ch.passed ? 'pass' : '**FAIL**'} |`)];
}
