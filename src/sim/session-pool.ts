/**
 * The device sessions of a run: creates one MQTT session per Wi-Fi device or gateway (the fleet
 * engine's on the embedded broker's in-process transport, an mqtt.js client each otherwise),
 * connects them with bounded concurrency (reporting progress), announces them in population order, and
 * counts what they have in flight, so the simulation can wait until everything handed to the
 * broker has been written (`drained()`) or every session is down (`allDown()`), as events, not
 * by polling.
 */
import type { Clock } from '../contract/clock.js';
import type { Device } from '../device/device.js';
import type { ReconnectPolicy } from './backoff.js';
import { FLEET_CONNECT_CONCURRENCY, FleetEngine } from './fleet/engine.js';
import { ClientSession, type Connector, type DeviceSession } from './session.js';
import type { TraceRecorder } from './trace.js';
import { Gauge } from './waits.js';

/** One session to open: a Wi-Fi device, or a gateway with its Zigbee/BLE children, and its token. */
export interface SessionPlan {
  device: Device;
  children: Device[];
  token: string;
}

export interface SessionPoolOptions {
  clock: Clock;
  trace: TraceRecorder;
  /** Reconnection delays after a drop. */
  reconnect: ReconnectPolicy;
  /** Seed of the reconnection jitter. */
  seed: number;
  /** Connection attempts under way at once while the fleet connects. Default 200 (mqtt.js clients), 2,000 (fleet engine). */
  concurrency?: number;
  /** Called after each session connects, with how many have and how many there are. */
  onProgress?: (connected: number, total: number) => void;
}

/** Above this many publishes in flight, the broker is behind and fast mode waits. */
const CONGESTED_INFLIGHT = 20_000;
const DEFAULT_CONCURRENCY = 200;
/** Sessions announced per turn of the event loop (goOnline). */
const ANNOUNCE_SLICE = 2000;
/** Sessions stopped at once (stop). */
const STOP_SLICE = 2000;

export class SessionPool {
  private readonly list: DeviceSession[] = [];
  /** The fleet engine, once sessions were opened on the `fleet` connector. */
  private engine: FleetEngine | null = null;
  /** Publishes handed to sessions and not yet written (QoS 0) or acknowledged (QoS 1). */
  readonly inflight = new Gauge();
  /** Sessions connected now. */
  readonly connected = new Gauge();
  /** Reconnection attempts of every session so far. */
  private readonly reconnects = new Gauge();

  constructor(private readonly opts: SessionPoolOptions) {}

  /** Every session, in population order. */
  get sessions(): readonly DeviceSession[] { return this.list; }

  /** The fleet engine, once sessions were opened on the `fleet` connector (app users' sessions may join it). */
  get fleetEngine(): FleetEngine | null { return this.engine; }

  /** Whether device messages are backed up (fast mode waits before moving the clock on). */
  get congested(): boolean { return this.inflight.value > CONGESTED_INFLIGHT; }

  /** Resolves once device messages are no longer backed up (at once if they are not). */
  decongested(): Promise<boolean> {
    return this.inflight.until((n) => n <= CONGESTED_INFLIGHT);
  }

  /** Connection attempts sessions made after losing the broker (counted as they happen: status() reads it every second). */
  get reconnectAttempts(): number { return this.reconnects.value; }

  /** Create a session per plan (in order) and connect them all; rejects if one is refused. */
  async open(plans: readonly SessionPlan[], connector: Connector): Promise<void> {
    const o = this.opts;
    const hooks = { clock: o.clock, trace: o.trace, inflight: this.inflight, connected: this.connected, reconnects: this.reconnects, reconnect: o.reconnect, seed: o.seed };
    if (connector.kind === 'fleet') {
      const engine = (this.engine ??= new FleetEngine({ ...hooks, attach: connector.attach }));
      const created = plans.map((p) => engine.create(p.device, p.children, p.token));
      // A loop, not push(...created): hundreds of thousands of arguments overflow the stack.
      for (const s of created) this.list.push(s);
      await engine.connectAll(created, o.concurrency ?? FLEET_CONNECT_CONCURRENCY, o.onProgress);
      return;
    }
    const created = plans.map((p) => new ClientSession(p.device, p.children, p.token, connector, hooks));
    for (const s of created) this.list.push(s);
    let done = 0;
    const queue = [...created];
    const worker = async (): Promise<void> => {
      for (let s = queue.shift(); s; s = queue.shift()) {
        await s.connect();
        done++;
        o.onProgress?.(done, created.length);
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.concurrency ?? DEFAULT_CONCURRENCY, queue.length) }, worker));
  }

  /**
   * Announce every session in population order (first connection: a reproducible trace), a slice
   * at a time: the broker handles what an in-process session hands it at once, so half a million
   * announcements in one go kept the event loop for over a minute, and the broker's keep-alive
   * timers, refreshed meanwhile with the loop's stale time, then closed the sessions en masse. The
   * clock does not run before the devices start, so the trace is the same.
   */
  async goOnline(): Promise<void> {
    const list = this.list;
    for (let i = 0; i < list.length; i++) {
      if (i > 0 && i % ANNOUNCE_SLICE === 0) await new Promise((r) => setImmediate(r));
      list[i]!.goOnline();
    }
  }

  /** Resolves true when nothing is in flight (at once if nothing is); false after `timeoutMs` if given. */
  drained(timeoutMs?: number): Promise<boolean> {
    return this.inflight.until((n) => n <= 0, timeoutMs);
  }

  /**
   * Wait (bounded) until device publishes handed to sessions have been written to the broker,
   * then let pending I/O run once (the broker reads what was written).
   */
  async settle(maxMs = 5000): Promise<void> {
    await this.drained(maxMs);
    await new Promise((r) => setImmediate(r));
  }

  /** Resolves true once no session is connected; false after `timeoutMs`. */
  allDown(timeoutMs: number): Promise<boolean> {
    return this.connected.until((n) => n <= 0, timeoutMs);
  }

  /**
   * Every session goes offline cleanly (see `DeviceSession.stop`), a slice at a time in population
   * order: a fleet of 300,000 sessions all saying "offline" at once queued every packet before the
   * broker took any, and that heap was the run's peak memory.
   */
  async stop(): Promise<void> {
    const list = this.list;
    for (let i = 0; i < list.length; i += STOP_SLICE) await Promise.all(list.slice(i, i + STOP_SLICE).map((s) => s.stop()));
    this.close();
  }

  /** Stop the fleet engine's timers (retries, keep-alive): after stop(), or when the run could not start. */
  close(): void {
    this.engine?.close();
  }
}
