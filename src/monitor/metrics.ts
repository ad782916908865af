/**
 * Prometheus metrics (prom-client, on a Registry of our own, never the global one). Broker and
 * platform figures are read when scraped (collect callbacks); the monitor's own counters and the
 * latency histograms are updated as things happen.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ClusterHealth } from '../broker/cluster.js';
import type { LimitHits, LimitReport, ResolvedLimits } from '../broker/limits.js';
import type { MonitoredBroker, MonitoredPlatform } from './source.js';

/** Seconds; from 50 µs to 5 s. */
const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class MonitorMetrics {
  readonly registry = new Registry();
  /**
   * Broker delivery latency: wall time from the broker publishing a probe message to the probe
   * client receiving it (in-process transport, QoS 0), sampled once per probe interval. It rises
   * when the broker's queues back up.
   */
  readonly deliveryLatency: Histogram;
  /**
   * Tap latency: wall time from the broker accepting a message to its frame being written to a
   * monitor's socket; sampled once per write round of each client (its oldest message then).
   */
  readonly tapLatency: Histogram;
  /** Requests and upgrades refused by the Host or Origin check (`reason`: host, origin). */
  readonly requestsRefused: Counter<'reason'>;

  constructor(broker: MonitoredBroker, platform: MonitoredPlatform, hub: () => { clientCount: number; sent: number; dropped: number } | null) {
    const registers = [this.registry];
    const fromCounter = (name: string, help: string, read: () => number): void => {
      let last = 0;
      new Counter({
        name, help, registers,
        collect() {
          const v = read();
          if (v > last) this.inc(v - last);
          last = v;
        },
      });
    };
    fromCounter('aiot_sim_messages_published_total', 'PUBLISH packets the broker accepted from clients (messages in)', () => broker.counters.published);
    fromCounter('aiot_sim_messages_delivered_total', 'Messages the broker forwarded to subscribers, one per receiving client (messages out)', () => broker.counters.delivered);
    fromCounter('aiot_sim_messages_rejected_total', 'Publishes, subscriptions and CONNECTs the broker refused', () => broker.counters.rejected);
    new Gauge({ name: 'aiot_sim_broker_clients', help: 'MQTT clients connected to the broker', registers, collect() { this.set(broker.connectedClients); } });
    if (broker.limitReport) brokerLimitMetrics(registers, () => broker.limitReport!());
    const cluster = broker.clusterHealth?.() ? (): ClusterHealth => broker.clusterHealth!()! : null;
    if (cluster) {
      new Gauge({ name: 'aiot_sim_cluster_store_up', help: 'Whether this broker node reaches the cluster\'s Redis (1) or not (0)', registers, collect() { this.set(cluster().up ? 1 : 0); } });
      fromCounter('aiot_sim_cluster_store_outages_total', 'Times the cluster\'s Redis became unreachable from this node', () => cluster().outages);
      fromCounter('aiot_sim_cluster_store_down_seconds_total', 'Seconds the cluster\'s Redis was unreachable from this node (the current outage included)', () => cluster().downSeconds);
      fromCounter('aiot_sim_cluster_unrouted_messages_total',
        'Messages clients published at this node while the cluster\'s Redis was unreachable: delivered to this node\'s subscribers only, never to the other nodes', () => cluster().unroutedMessages);
      fromCounter('aiot_sim_cluster_refused_connects_total', 'CONNECTs this node refused (CONNACK 3) while the cluster\'s Redis was unreachable', () => cluster().refusedConnects);
      fromCounter('aiot_sim_cluster_store_resets_total',
        'Times the cluster\'s Redis came back without its data: retained messages, persistent sessions (subscriptions, queued messages) and the access directory kept in it were lost', () => cluster().resets);
    }

    // One platform snapshot per scrape, shared by the gauges below (collect runs them in order).
    let snap: ReturnType<MonitoredPlatform['snapshot']> | null = null;
    const current = (): ReturnType<MonitoredPlatform['snapshot']> => (snap ??= platform.snapshot());
    new Gauge({
      name: 'aiot_sim_devices_online', help: 'Devices online as the platform observed them', registers,
      collect() { snap = null; this.set(current().connections.online); },
    });
    const byLabel = (name: string, help: string, label: string, pick: (s: ReturnType<MonitoredPlatform['snapshot']>) => Record<string, number>): void => {
      new Gauge({
        name, help, labelNames: [label], registers,
        collect() {
          this.reset();
          for (const [k, v] of Object.entries(pick(current()))) this.set({ [label]: k }, v);
        },
      });
    };
    byLabel('aiot_sim_devices_online_by_category', 'Devices online by device category', 'category', (s) => s.connections.byCategory);
    byLabel('aiot_sim_devices_online_by_region', 'Devices online by the owner\'s region', 'region', (s) => s.connections.byRegion);
    byLabel('aiot_sim_devices_online_by_transport', 'Devices online by transport (tcp, ws, in-process, zigbee, ble)', 'transport', (s) => s.connections.byTransport);
    new Gauge({
      name: 'aiot_sim_active_users', help: 'Users with an app session or a voice request in the last 1 (dau), 7 (wau), 30 (mau) event-time days', labelNames: ['window'], registers,
      collect() {
        const u = current().activeUsers;
        this.set({ window: 'dau' }, u.dau);
        this.set({ window: 'wau' }, u.wau);
        this.set({ window: 'mau' }, u.mau);
      },
    });
    new Gauge({ name: 'aiot_sim_daily_active_devices', help: 'Devices used on the latest event-time day', registers, collect() { this.set(current().dailyActiveDevices); } });
    new Gauge({
      name: 'aiot_sim_platform_event_time_seconds', help: 'Latest virtual time the platform saw (Unix seconds; 0 before any)', registers,
      collect() { this.set((current().eventTime ?? 0) / 1000); },
    });
    new Gauge({
      name: 'aiot_sim_platform_malformed_messages', help: 'Device messages the platform could not use', registers,
      collect() { this.set(current().messages.malformed); },
    });
    new Gauge({ name: 'aiot_sim_monitor_clients', help: 'WebSocket monitors connected', registers, collect() { this.set(hub()?.clientCount ?? 0); } });
    fromCounter('aiot_sim_monitor_tap_messages_total', 'Tapped messages sent to WebSocket monitors', () => hub()?.sent ?? 0);
    fromCounter('aiot_sim_monitor_dropped_total', 'Tapped messages dropped for slow or over-rate monitors', () => hub()?.dropped ?? 0);
    this.deliveryLatency = new Histogram({
      name: 'aiot_sim_broker_delivery_seconds', registers, buckets: LATENCY_BUCKETS,
      help: 'Broker delivery latency: a probe message from the broker publishing it to the probe client receiving it (in-process, QoS 0)',
    });
    this.tapLatency = new Histogram({
      name: 'aiot_sim_monitor_tap_latency_seconds', registers, buckets: LATENCY_BUCKETS,
      help: 'Wall time from the broker accepting a message to its frame being written to a monitor\'s socket (the oldest message of each write round)',
    });
    this.requestsRefused = new Counter({
      name: 'aiot_sim_monitor_refused_requests_total', registers, labelNames: ['reason'],
      help: 'Monitor requests and WebSocket upgrades refused by the Host check (reason="host", DNS rebinding) or the Origin check (reason="origin")',
    });
  }

  /** Prometheus text exposition. */
  text(): Promise<string> { return this.registry.metrics(); }
  get contentType(): string { return this.registry.contentType; }
}

/** Prometheus label of each bound (snake case of the option name without "max"). */
const LIMIT_LABELS: Record<keyof ResolvedLimits, string> = {
  maxPacketSize: 'packet_size_bytes', maxConnections: 'connections', connectTimeoutMs: 'connect_timeout_ms', maxKeepAliveSeconds: 'keepalive_seconds',
  maxClientIdLength: 'client_id_length', maxQueuedMessages: 'queued_messages', maxQueuedBytes: 'queued_bytes',
  maxAnonymousSessions: 'anonymous_sessions', maxRetainedMessages: 'retained_messages', maxRetainedBytes: 'retained_bytes',
  maxBacklogBytes: 'backlog_bytes',
};
const HIT_LABELS: Record<keyof LimitHits, string> = {
  packetSize: 'packet_size', connections: 'connections', connectTimeout: 'connect_timeout', keepAlive: 'keepalive', clientIdLength: 'client_id_length',
  queueDropped: 'queued_messages', anonymousSessions: 'anonymous_sessions', retained: 'retained', backlog: 'backlog', host: 'host', origin: 'origin',
};

/** The embedded broker's bounds (limits.ts): each bound, the times it was hit, and what the bounded stores hold. */
function brokerLimitMetrics(registers: Registry[], read: () => LimitReport): void {
  // One report per scrape, shared by the metrics below (collect runs them in order).
  let report: LimitReport | null = null;
  const current = (): LimitReport => (report ??= read());
  new Gauge({
    name: 'aiot_sim_broker_limit', help: 'Each bound of the embedded broker as configured (see docs/broker.md, "The embedded broker")', labelNames: ['limit'], registers,
    collect() {
      report = null;
      for (const [k, label] of Object.entries(LIMIT_LABELS)) this.set({ limit: label }, current().limits[k as keyof ResolvedLimits]);
    },
  });
  const last = new Map<string, number>();
  new Counter({
    name: 'aiot_sim_broker_limit_hits_total', labelNames: ['limit'], registers,
    help: 'Times a bound stopped something: connections refused or closed, keep-alives capped, client ids refused, queued messages dropped, retained messages not kept, deliveries shed over the total backlog, WebSocket upgrades refused (host, origin)',
    collect() {
      for (const [k, label] of Object.entries(HIT_LABELS)) {
        const v = current().hits[k as keyof LimitHits];
        const before = last.get(label) ?? 0;
        if (v > before) this.inc({ limit: label }, v - before);
        else if (!last.has(label)) this.inc({ limit: label }, 0);
        last.set(label, v);
      }
    },
  });
  new Gauge({
    name: 'aiot_sim_broker_connections', help: 'Connections open on each network listener of the embedded broker', labelNames: ['listener'], registers,
    collect() {
      const c = current().usage.connections;
      this.set({ listener: 'tcp' }, c.tcp);
      this.set({ listener: 'ws' }, c.ws);
    },
  });
  const usage = (name: string, help: string, pick: (u: LimitReport['usage']) => number): void => {
    new Gauge({ name, help, registers, collect() { this.set(pick(current().usage)); } });
  };
  usage('aiot_sim_broker_queued_messages', 'QoS 1 messages held for persistent sessions (offline, or sent and not acknowledged)', (u) => u.queuedMessages);
  usage('aiot_sim_broker_queued_bytes', 'Bytes (topic and payload) of those messages', (u) => u.queuedBytes);
  usage('aiot_sim_broker_anonymous_sessions', 'Persistent sessions of anonymous clients', (u) => u.anonymousSessions);
  usage('aiot_sim_broker_retained_messages', 'Retained messages counted against the bound (all but devices\' state and $SYS/)', (u) => u.retainedMessages);
  usage('aiot_sim_broker_retained_bytes', 'Bytes (topic and payload) of those retained messages', (u) => u.retainedBytes);
  usage('aiot_sim_broker_backlog_bytes', 'Bytes waiting to be written to subscribers, all together (as last seen)', (u) => u.backlogBytes);
}
