/**
 * The delivery-latency probe: the broker publishes a small message on its own `$SYS/aiot-sim/
 * monitor/probe/{id}` topic every interval, and an in-process MQTT client (QoS 0, connected as the
 * operator: `$SYS/` is not for anonymous clients) subscribed to it records how long the broker
 * took to deliver it: the same emitter queue and delivery path device messages take. Publishing
 * as the broker keeps it out of the `published` counter and out of taps; each probe adds one to
 * `delivered`, and the probe client counts as one MQTT client. Without an in-process transport
 * there is no probe (and the histogram stays empty).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { MqttClient } from 'mqtt';
import { logger } from '../log.js';
import type { MonitoredBroker } from './source.js';

const log = logger('monitor');

export class DeliveryProbe {
  private client: MqttClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly topic = `$SYS/aiot-sim/monitor/probe/${randomBytes(4).toString('hex')}`;
  private sentAt = new Map<number, number>();
  private seq = 0;

  constructor(private readonly broker: MonitoredBroker, private readonly intervalMs: number, private readonly observe: (seconds: number) => void) {}

  async start(): Promise<void> {
    const open = this.broker.connectInProcess?.bind(this.broker);
    if (!open || !this.broker.publish) return;
    const client = new MqttClient(() => open({ asOperator: true }), {
      clientId: `aiot-sim-probe-${randomBytes(4).toString('hex')}`, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, keepalive: 0,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
        client.once('close', () => reject(new Error('closed before CONNACK')));
      });
      await client.subscribeAsync(this.topic, { qos: 0 });
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'delivery-latency probe disabled: the broker refused its connection');
      client.end(true);
      return;
    }
    client.on('error', () => undefined);
    client.on('message', (_topic, payload) => {
      const seq = Number(payload.toString());
      const t = this.sentAt.get(seq);
      if (t === undefined) return;
      this.sentAt.delete(seq);
      this.observe((performance.now() - t) / 1000);
    });
    this.client = client;
    this.timer = setInterval(() => this.send(), this.intervalMs);
    this.timer.unref();
  }

  private send(): void {
    if (!this.client?.connected || !this.broker.publish) return;
    // A probe that never came back (broker closing) is forgotten after a few rounds.
    if (this.sentAt.size > 8) this.sentAt.clear();
    const seq = ++this.seq;
    this.sentAt.set(seq, performance.now());
    this.broker.publish(this.topic, String(seq)).catch(() => undefined);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const c = this.client;
    this.client = null;
    if (c) await c.endAsync(true).catch(() => undefined);
  }
}
