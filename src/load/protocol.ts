/** Messages between the bench orchestrator and its generator and probe worker threads. */
import type { MessageShape } from './payloads.js';
import type { WireTarget } from './wire.js';

export interface BenchDevice { index: number; did: string; model: string; username?: string; password?: string }

export interface GeneratorConfig {
  target: WireTarget;
  devices: BenchDevice[];
  /** Message shapes per model name. */
  shapes: Record<string, { properties: MessageShape[]; events: MessageShape[] }>;
  /** Share of event_occured messages (0..1) for models that have events. */
  eventShare: number;
  qos: 0 | 1;
  /** This worker's share of the message rate, messages/s. */
  ratePerSecond: number;
  /** This worker's share of the connection ramp, connections/s; 0 = as fast as possible. */
  rampPerSecond: number;
  payloadSize: number;
  runId: string;
  reconnectJitterMs: number;
  /** Unacknowledged QoS 1 PUBLISHes allowed per connection. */
  inflight: number;
  /** A connection with more than this many bytes waiting to be written gets no new messages. */
  maxBufferedBytes: number;
  seed: number;
  keepalive: number;
}

/**
 * Why messages were not sent: `late`, the generator's thread ran late (a stall of its own, e.g. no
 * free core) and does not send the backlog in a burst; `backedUp`, the connection was down or had
 * more than maxBufferedBytes unwritten (the broker was not reading); `windowFull`, QoS 1 and the
 * connection's window of unacknowledged PUBLISHes was full (the broker was slow to PUBACK).
 */
export interface NotSentWhy { late: number; backedUp: number; windowFull: number }

export interface GeneratorStats {
  /** PUBLISH packets written. */
  sent: number;
  /** Of those, sent inside the measured window. */
  sentMeasured: number;
  /** Messages the rate asked for but not written: the connection was backed up or offline, or the QoS 1 window was full (whole run, warm-up included). */
  notSent: number;
  /** `notSent` by why (they add up to it). */
  notSentWhy: NotSentWhy;
  /** Of `notSent`, those the rate asked for inside the measured window. */
  notSentMeasured: number;
  /** `notSentMeasured` by why. */
  notSentWhyMeasured: NotSentWhy;
  connectOk: number;
  connectFailed: number;
  /** Connections lost while running (each one is reconnected after the jitter). */
  disconnects: number;
  connected: number;
  acked: number;
  inflight: number;
  /** Slowest CONNECT -> CONNACK, ms. */
  connectMaxMs: number;
  /**
   * CPU seconds (user + system) the generator's thread spent connecting its devices, from its
   * first CONNECT until every device had tried once (0 until then); null where a thread's CPU
   * cannot be read (not Linux). On loopback the system part includes the kernel's work for both
   * ends of each TCP handshake.
   */
  connectCpuSeconds: number | null;
  connectErrors: Record<string, number>;
  /**
   * Measured messages written on connections that then closed under them, as flat triples
   * (device index, first seq, end seq): the ones of these that never arrived went with the
   * connection (the broker discards what it had not read when it closes a socket).
   */
  droppedRanges: number[];
}

export type ToGenerator =
  | { type: 'go'; measureFromUs: number; measureUntilUs: number }
  | { type: 'close' };

export type FromGenerator =
  | { type: 'connected'; stats: GeneratorStats; seconds: number }
  | { type: 'stats'; stats: GeneratorStats }
  | { type: 'stopped'; stats: GeneratorStats }
  | { type: 'closed' }
  | { type: 'fatal'; error: string };

export interface ProbeConfig {
  target: WireTarget;
  username?: string;
  password?: string;
  clientId: string;
  filters: string[];
  qos: 0 | 1;
  runId: string;
  devices: number;
}

export interface LatencySummaryUs { count: number; p50: number; p90: number; p99: number; p999: number; max: number; mean: number }

export interface ProbeStats {
  /** Unique bench messages of this run received from the measured window. */
  received: number;
  /** Every bench message of this run received (warm-up included, duplicates included). */
  receivedAll: number;
  duplicates: number;
  /** Messages on the subscribed filters without this run's bench header. */
  foreign: number;
  /** Latency samples below zero (clock skew); recorded as 0. */
  negative: number;
  /** Of the measured messages not received, those written on a connection that then closed (known at `finish`; 0 before). */
  lostOnDroppedConnections: number;
  /** Bench messages received since the previous stats message (warm-up included) and their p99 latency, µs. */
  interval: { received: number; p99Us: number | null };
}

export type ToProbe =
  | { type: 'window'; fromUs: number; untilUs: number }
  /** Answer `drained` once `expected` measured messages arrived, or none arrived for `quietMs`. */
  | { type: 'drain'; expected: number; quietMs: number }
  /** `droppedRanges`: the generators' (see GeneratorStats), to tell what went with a closed connection. */
  | { type: 'finish'; droppedRanges?: number[] };

export type FromProbe =
  | { type: 'ready' }
  | { type: 'stats'; stats: ProbeStats }
  | { type: 'drained'; stats: ProbeStats }
  | { type: 'finished'; stats: ProbeStats; latencyUs: LatencySummaryUs | null }
  | { type: 'fatal'; error: string };

/** A generator's figures before anything happened (one generator's start, or a sum's). */
export function emptyStats(): GeneratorStats {
  return {
    sent: 0, sentMeasured: 0, notSent: 0, notSentWhy: noneNotSent(), notSentMeasured: 0, notSentWhyMeasured: noneNotSent(),
    connectOk: 0, connectFailed: 0, disconnects: 0, connected: 0, acked: 0, inflight: 0, connectMaxMs: 0, connectCpuSeconds: 0, connectErrors: {}, droppedRanges: [],
  };
}

function noneNotSent(): NotSentWhy { return { late: 0, backedUp: 0, windowFull: 0 }; }

/** Add `from`'s reasons to `into`'s. */
export function addNotSent(into: NotSentWhy, from: NotSentWhy): void {
  into.late += from.late;
  into.backedUp += from.backedUp;
  into.windowFull += from.windowFull;
}

/** Wall-clock time in microseconds since the epoch (shared by every thread of the machine). */
export function wallUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}
