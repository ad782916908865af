/** Test helpers: real mqtt clients against a real broker, with bounded waits (no sleeps on the wall clock). */
import mqtt, { MqttClient, type IClientOptions } from 'mqtt';
import type { EmbeddedBroker } from '../../src/broker/broker.js';

export function tcpUrl(broker: EmbeddedBroker): string {
  const a = broker.mqttAddress;
  if (!a) throw new Error('broker has no TCP listener');
  return `mqtt://${a.host}:${a.port}`;
}

/** Connect over TCP; rejects on CONNACK refusal. */
export function connectTcp(broker: EmbeddedBroker, opts: IClientOptions = {}): Promise<MqttClient> {
  return mqtt.connectAsync(tcpUrl(broker), { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
}

/** Connect over the in-process pipe; rejects on CONNACK refusal. */
export function connectInProcess(broker: EmbeddedBroker, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = new MqttClient(() => broker.connectInProcess(), { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', (err) => { client.end(true); reject(err); });
  });
}

/** Resolve with the first message matching `pred`, or reject after `ms`. */
export function nextMessage(client: MqttClient, pred: (topic: string, payload: string) => boolean = () => true, ms = 5000): Promise<{ topic: string; payload: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { client.off('message', on); reject(new Error(`no matching message within ${ms} ms`)); }, ms);
    const on = (topic: string, payload: Buffer): void => {
      const text = payload.toString('utf8');
      if (!pred(topic, text)) return;
      clearTimeout(timer);
      client.off('message', on);
      resolve({ topic, payload: text });
    };
    client.on('message', on);
  });
}

/** Poll `cond` until true or fail after `ms` (for counters updated asynchronously). */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** SUBACK return codes for one filter, whether MQTT.js treats 0x80 as an error or not. */
export function subscribeGranted(client: MqttClient, filter: string): Promise<number[]> {
  return new Promise((resolve, reject) => {
    client.subscribe(filter, { qos: 0 }, (err, _granted, packet) => {
      const codes = (packet as { granted?: number[] } | undefined)?.granted
        ?? (err as { packet?: { granted?: number[] } } | null)?.packet?.granted;
      if (codes) resolve(codes);
      else reject(err ?? new Error('no SUBACK'));
    });
  });
}

/** The CONNACK return code a refused connect carried (MQTT.js puts it in err.code); throws if the connect was accepted. */
export async function refusalCode(p: Promise<MqttClient>): Promise<number> {
  try {
    const c = await p;
    c.end(true);
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
  throw new Error('the connection was accepted');
}
