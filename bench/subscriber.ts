/**
 * The throughput benchmark's observer, in its own process (as a real consumer would be): an
 * anonymous MQTT 3.1.1 client over TCP subscribed to device/#, driven over IPC by tasks/traffic.ts
 * (messages in ipc.ts). argv: PORT QOS. Only properties_changed messages are counted.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import mqtt from 'mqtt';
import { toParent, type FromSubscriber, type ToSubscriber } from './ipc.js';

const [port, qosArg] = process.argv.slice(2);
const qos = Number(qosArg) === 1 ? 1 : 0;
const reply = (m: FromSubscriber): void => toParent(m);

/** The current count: started by 'expect', finished when `target` messages arrived or the time is up. */
let target = Infinity;
let received = 0;
let duplicates = 0;
let first = 0;
let timer: NodeJS.Timeout | null = null;
let finished = true;

const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
  clientId: `bench-observer-${randomBytes(4).toString('hex')}`, protocolVersion: 4, clean: true,
  keepalive: 60, reconnectPeriod: 0, connectTimeout: 10_000,
});

function finish(timedOut: boolean): void {
  if (finished) return;
  finished = true;
  if (timer) clearTimeout(timer);
  timer = null;
  reply({ type: 'done', received, duplicates, receiveMs: received ? performance.now() - first : 0, timedOut });
}

client.on('message', (topic, _payload, packet) => {
  if (!topic.includes('/up/properties_changed/')) return;
  if (packet.dup) duplicates++;
  if (received++ === 0) first = performance.now();
  if (received >= target) finish(false);
});
client.on('error', (err) => {
  process.stderr.write(`[subscriber] ${err.message}\n`);
  reply({ type: 'error', error: err.message });
});
client.once('connect', () => {
  client.subscribe('device/#', { qos }, (err, granted) => {
    if (err || !granted || granted[0]?.qos === 128) reply({ type: 'error', error: `subscribe failed: ${err?.message ?? JSON.stringify(granted)}` });
    else reply({ type: 'ready' });
  });
});

process.on('message', (m: ToSubscriber) => {
  if (m.type === 'expect') {
    target = m.count;
    received = 0;
    duplicates = 0;
    first = 0;
    finished = false;
    timer = setTimeout(() => finish(true), m.timeoutMs ?? 60_000);
    reply({ type: 'armed' });
  } else if (m.type === 'quit') {
    if (timer) clearTimeout(timer);
    client.end(true, () => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  }
});
process.on('disconnect', () => process.exit(0));
