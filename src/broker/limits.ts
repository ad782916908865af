/**
 * The embedded broker's bounds: every listener and every session has one, so no client can make
 * the broker hold memory without limit. Defaults are sized for a 2-core machine with 24 GiB that
 * also runs the simulation; each bound has a counter of the times it was hit (`/metrics`).
 */
import { OptionsError, type OptionProblem } from '../errors.js';
import { DEFAULT_MAX_PACKET_SIZE } from './packet-guard.js';

export interface BrokerLimits {
  /** Largest MQTT packet accepted, bytes (fixed header included); also the largest WebSocket frame. Bigger ones close the connection. Default 256 KiB. */
  maxPacketSize?: number;
  /** Connections open at once on each network listener (TCP; WebSocket); more are closed at once. Default 10,000. */
  maxConnections?: number;
  /** Milliseconds a network connection has to send CONNECT (on WebSocket, also to finish the upgrade). Default 10,000. */
  connectTimeoutMs?: number;
  /** Keep-alive ceiling, seconds: a network client asking for 0 (none) or more is held to it (closed after 1.5 times it without a packet). Default 300. */
  maxKeepAliveSeconds?: number;
  /** Longest client id, characters; longer ones are refused (CONNACK 2). Default 128. */
  maxClientIdLength?: number;
  /** QoS 1 messages queued per session (offline, or sent and not acknowledged); over it the oldest is dropped. Default 1,000. */
  maxQueuedMessages?: number;
  /** Bytes (topic and payload) queued per session; over it the oldest messages are dropped. Default 1 MiB. */
  maxQueuedBytes?: number;
  /** Persistent (CleanSession=0) sessions of anonymous clients; a new one over it is refused (CONNACK 3). Default 1,000. */
  maxAnonymousSessions?: number;
  /** Retained messages, besides devices' own state and the broker's `$SYS/`; a new retained topic over it is delivered but not kept. Default 10,000. */
  maxRetainedMessages?: number;
  /** Bytes (topic and payload) of those retained messages. Default 64 MiB. */
  maxRetainedBytes?: number;
  /** Bytes waiting to be written to all subscribers together; over it, subscribers more than 64 KiB behind get nothing more until it falls. Default 256 MiB. */
  maxBacklogBytes?: number;
}

export type ResolvedLimits = Required<BrokerLimits>;

export const DEFAULT_LIMITS: ResolvedLimits = {
  maxPacketSize: DEFAULT_MAX_PACKET_SIZE,
  maxConnections: 10_000,
  connectTimeoutMs: 10_000,
  maxKeepAliveSeconds: 300,
  maxClientIdLength: 128,
  maxQueuedMessages: 1000,
  maxQueuedBytes: 1024 * 1024,
  maxAnonymousSessions: 1000,
  maxRetainedMessages: 10_000,
  maxRetainedBytes: 64 * 1024 * 1024,
  maxBacklogBytes: 256 * 1024 * 1024,
};

/** The smallest value each bound takes (a smaller one would make the broker unusable). */
const MINIMUM: ResolvedLimits = {
  maxPacketSize: 64,
  maxConnections: 1,
  connectTimeoutMs: 100,
  maxKeepAliveSeconds: 1,
  maxClientIdLength: 23, // MQTT-3.1.3-5: a server must allow 1 to 23 characters
  maxQueuedMessages: 1,
  maxQueuedBytes: 1024,
  maxAnonymousSessions: 0,
  maxRetainedMessages: 0,
  maxRetainedBytes: 0,
  maxBacklogBytes: 1024 * 1024,
};

/** What is wrong with the bounds given, each named by its option. */
export function limitProblems(given: BrokerLimits): OptionProblem[] {
  const problems: OptionProblem[] = [];
  for (const key of Object.keys(DEFAULT_LIMITS) as Array<keyof ResolvedLimits>) {
    const v = given[key];
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= MINIMUM[key])) problems.push({ option: key, message: `expected an integer of at least ${MINIMUM[key]}`, value: v });
  }
  return problems;
}

/** The bounds with defaults filled in; throws an OptionsError (E_OPTIONS) naming every bad one. */
export function resolveLimits(given: BrokerLimits): ResolvedLimits {
  const problems = limitProblems(given);
  if (problems.length) throw new OptionsError('E_OPTIONS', problems);
  const out = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(DEFAULT_LIMITS) as Array<keyof ResolvedLimits>) out[key] = given[key] ?? DEFAULT_LIMITS[key];
  return out;
}

/** What the bounds stopped, by bound. */
export interface LimitHits {
  /** Packets over `maxPacketSize` (and WebSocket frames over it). */
  packetSize: number;
  /** Connections closed at once because their listener was full. */
  connections: number;
  /** Connections closed for not sending CONNECT (or finishing the upgrade) in time. */
  connectTimeout: number;
  /** CONNECTs whose keep-alive was 0 or above the ceiling, held to the ceiling. */
  keepAlive: number;
  /** CONNECTs refused for a client id over `maxClientIdLength`. */
  clientIdLength: number;
  /** Queued QoS 1 messages dropped (oldest first) from a full session queue. */
  queueDropped: number;
  /** New anonymous persistent sessions refused. */
  anonymousSessions: number;
  /** Retained messages not kept because the retained store was full. */
  retained: number;
  /** Deliveries shed because the subscribers' backlog together was over `maxBacklogBytes`. */
  backlog: number;
  /** WebSocket upgrades refused by the Host check (DNS rebinding). */
  host: number;
  /** WebSocket upgrades refused by the Origin check. */
  origin: number;
}

export function noHits(): LimitHits {
  return { packetSize: 0, connections: 0, connectTimeout: 0, keepAlive: 0, clientIdLength: 0, queueDropped: 0, anonymousSessions: 0, retained: 0, backlog: 0, host: 0, origin: 0 };
}

/** What the bounded stores hold now. */
export interface LimitUsage {
  /** Open connections by network listener. */
  connections: { tcp: number; ws: number };
  /** QoS 1 messages and bytes queued over every session. */
  queuedMessages: number;
  queuedBytes: number;
  /** Persistent sessions of anonymous clients. */
  anonymousSessions: number;
  /** Retained messages and bytes counted against the bounds. */
  retainedMessages: number;
  retainedBytes: number;
  /** Bytes waiting to be written to subscribers (as last seen). */
  backlogBytes: number;
}

/** The bounds, what they stopped, what they hold: what `/metrics` shows. */
export interface LimitReport { limits: ResolvedLimits; hits: LimitHits; usage: LimitUsage }
