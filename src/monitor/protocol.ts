/**
 * The monitoring WebSocket protocol (`ws://HOST:PORT/ws?token=T`), shared by the server and its
 * clients (the dashboard page, your own monitors). Every frame is one JSON object with a `type`.
 *
 * Server -> client: `snapshot` first, then `stats` every interval; `message` for each tapped
 * device message; `dropped` when this client's queue overflowed; `subscribed` / `unsubscribed`
 * acknowledgements; `error` for a frame the server could not use; `pong` for an application ping;
 * `fault` when a scenario fault starts or ends.
 * Client -> server: `subscribe` / `unsubscribe` with MQTT topic filters, and `ping`.
 */
import type { PlatformSnapshot } from '../platform/service.js';
import type { FaultRecord } from '../sim/faults.js';

/** Broker and platform figures at one instant (the `stats` frame, also inside `snapshot`). */
export interface MonitorStats {
  /** Wall-clock time of this sample (epoch ms). */
  ts: number;
  /** The simulation's virtual time (epoch ms); the platform's event time without a simulation; null before any. */
  virtualTime: number | null;
  /** MQTT clients connected to the broker (devices, app users, operator, observers). */
  clients: number;
  /** Devices online as the platform observed them, in total and by category and region. */
  online: number;
  byCategory: Record<string, number>;
  byRegion: Record<string, number>;
  /** Broker counters since it started: PUBLISH packets accepted, deliveries to subscribers, refusals. */
  messages: { published: number; delivered: number; rejected: number };
  /** Per wall second since the previous sample of this interval (0 on the first sample). */
  rates: { publishedPerSecond: number; deliveredPerSecond: number };
  activeUsers: { dau: number; wau: number; mau: number };
  dailyActiveDevices: number;
  /** Daily active devices averaged over the 7 whole days before the latest (null on the first day). */
  dailyActiveDevicesWeekMean: number | null;
  /** WebSocket monitors connected to this server. */
  monitors: number;
  /** The scenario's faults so far (simulations only; empty otherwise), as in the run report. */
  faults: FaultRecord[];
}

export interface SnapshotFrame {
  type: 'snapshot';
  data: PlatformSnapshot & { stats: MonitorStats };
}

export interface StatsFrame extends MonitorStats {
  type: 'stats';
}

/** One device message seen by the broker, matching one of this client's filters. */
export interface MessageFrame {
  type: 'message';
  topic: string;
  /** The payload as UTF-8 text (device payloads are JSON), or base64 when `encoding` says so. */
  payload: string;
  encoding?: 'base64';
  /** Wall-clock time the broker accepted the message (epoch ms); the virtual `ts` is in the payload. */
  ts: number;
}

/** Messages this client missed since the previous `dropped` frame (queue full or rate limit), and in total. */
export interface DroppedFrame {
  type: 'dropped';
  count: number;
  total: number;
}

export interface SubscribedFrame { type: 'subscribed'; topics: string[] }
export interface UnsubscribedFrame { type: 'unsubscribed'; topics: string[] }
export interface PongFrame { type: 'pong' }

/** A client frame the server could not use; the connection stays open. */
export interface ErrorFrame {
  type: 'error';
  /** Stable code: E_JSON, E_FRAME, E_TYPE, E_TOPICS, E_FILTER, E_TOO_MANY_FILTERS. */
  code: string;
  message: string;
}

/** A scenario fault starting or ending (simulations only); `record` is the report's fault record so far. */
export interface FaultFrame {
  type: 'fault';
  phase: 'start' | 'end';
  /** Index of the fault in the scenario's `faults`. */
  index: number;
  /** Virtual time (epoch ms). */
  ts: number;
  record: FaultRecord;
}

export type ServerFrame =
  | SnapshotFrame | StatsFrame | MessageFrame | DroppedFrame | SubscribedFrame | UnsubscribedFrame | PongFrame | ErrorFrame | FaultFrame;

export interface SubscribeRequest { type: 'subscribe'; topics: string[] }
export interface UnsubscribeRequest { type: 'unsubscribe'; topics: string[] }
/** Application-level ping (browsers cannot send WebSocket pings); answered with `pong`. */
export interface PingRequest { type: 'ping' }

export type ClientFrame = SubscribeRequest | UnsubscribeRequest | PingRequest;
