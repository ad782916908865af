/**
 * What a fleet's sessions and their engine know of each other. The engine drives `FleetPeer`s
 * (device sessions and cloud clients alike: it reads their links, times and pings them), and a
 * session reaches back into its engine through `FleetHost` (its clock, counters and deadlines).
 * Both sides import this file and neither imports the other for it: the engine creates the
 * sessions, so it alone names their classes.
 */
import type { BrokerConnection } from '../../broker/connection.js';
import type { Clock } from '../../contract/clock.js';
import type { ReconnectPolicy } from '../backoff.js';
import type { Counter } from '../session.js';
import type { TraceRecorder } from '../trace.js';
import type { FleetLink } from './link.js';

/** What the engine drives of a session, a device's or a cloud client's (an app user, the operator). */
export interface FleetPeer {
  /** Index in the engine's session table (links name their session by it). */
  readonly slot: number;
  /** Who the session is, for logs: a did, or the user name of a cloud client. */
  readonly label: string;
  link: FleetLink | null;
  lastSentTick: number;
  deadline: { at: number; cancelled: boolean } | null;
  /** The first connection (the engine's bulk connect calls it). */
  start(): void;
  onConnack(returnCode: number): void;
  onPublish(topic: string, payload: string, qos: number, id: number): void;
  onPuback(id: number): void;
  onSuback(id: number): void;
  onReadable(): void;
  onLinkClosed(link: FleetLink): void;
  onConnackTimeout(): void;
  /** The engine's retry deadline came. */
  retry(): void;
  ping(packet: Buffer): void;
}

/** What a session asks of its engine (engine.ts). */
export interface FleetHost {
  readonly clock: Clock;
  readonly trace: TraceRecorder;
  readonly inflight: Counter;
  readonly connected: Counter | undefined;
  readonly reconnects: Counter | undefined;
  readonly reconnect: ReconnectPolicy | undefined;
  readonly seed: number;
  /** Hand a connection to the broker; false while it does not serve (down or closed). */
  readonly attach: (conn: BrokerConnection) => boolean;
  readonly keepaliveSeconds: number;
  /** Keep-alive sweeps so far (sessions stamp the tick they last sent in). */
  readonly tick: number;
  /** A session's first connection succeeded or failed (for the bulk connect). */
  firstConnect(s: FleetPeer, err: Error | null): void;
  /** A new link for `s`'s next connection. */
  newLink(s: FleetPeer): FleetLink;
  /** Reconnect `s` after `delayMs` (wall clock). */
  retryAfter(s: FleetPeer, delayMs: number): void;
  /** Give `s` its time to be accepted (CONNACK). */
  awaitConnack(s: FleetPeer): void;
  /** Cancel `s`'s pending retry or CONNACK bound. */
  cancel(s: FleetPeer): void;
  /** Call `fire` after `delayMs` unless the returned handle is cancelled first. */
  deadlineAt(delayMs: number, fire: () => void): { cancelled: boolean };
}
