/**
 * Broker throughput (each in a fresh process, see worker.ts): K in-process device publishers ->
 * embedded broker -> one TCP observer in another process (subscriber.ts); once more with the live
 * monitor serving WebSocket clients from a third process (monitors.ts).
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { MqttClient } from 'mqtt';
import { EmbeddedBroker, MonitorServer, PlatformService, type MonitorClientInfo } from 'aiot-sim';
import { IpcChild } from '../../tests/helpers/child.js';
import { fullGc, memory, now, round, sleep } from '../common.js';
import type { FromMonitors, FromSubscriber, MonitorClientReport, MonitorSpec, SubscriberDone, ToMonitors, ToSubscriber } from '../ipc.js';

interface Publisher { did: string; client: MqttClient }
type Subscriber = IpcChild<ToSubscriber, FromSubscriber>;

/** A sibling script of the benchmark (compiled next to this folder). */
const script = (name: string): string => fileURLToPath(new URL(`../${name}.js`, import.meta.url));
const TS0 = Date.parse('2026-07-15T16:00:00Z');

function startSubscriber(port: number, qos: 0 | 1): Subscriber {
  return new IpcChild(fork(script('subscriber'), [String(port), String(qos)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }), 'subscriber');
}

/** The next answer of `child`, which must be of type `type`. */
async function expectAnswer<M extends { type: string }, T extends M['type']>(child: IpcChild<unknown, M>, type: T, timeoutMs: number, what: string): Promise<Extract<M, { type: T }>> {
  const m = await child.next(timeoutMs);
  if (m.type !== type) throw new Error(`${what}: ${JSON.stringify(m)}`);
  return m as Extract<M, { type: T }>;
}

interface Counted {
  done: SubscriberDone;
  sent: number;
  /** From the first publish until the last was handed over / until the observer had them all. */
  sendSeconds: number;
  seconds: number;
  /** CPU time of this process (user + system) meanwhile. */
  cpuSeconds: number;
}

/** Arm the observer for `count` messages, send them, and wait for its count (or its timeout); timed from the first publish. */
async function counted(sub: Subscriber, count: number, timeoutMs: number, send: () => Promise<number>): Promise<Counted> {
  sub.send({ type: 'expect', count, timeoutMs });
  await expectAnswer(sub, 'armed', 5000, 'subscriber');
  const cpu0 = process.cpuUsage();
  const t0 = now();
  const sent = await send();
  const sendSeconds = (now() - t0) / 1000;
  // The subscriber answers 'done' when it has all of them, or after timeoutMs without finishing.
  const done = await expectAnswer(sub, 'done', timeoutMs + 5000, 'subscriber');
  const seconds = (now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { done, sent, sendSeconds, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

function connectPublisher(broker: EmbeddedBroker, did: string, token: string): Promise<MqttClient> {
  const client = new MqttClient(() => broker.connectInProcess(), {
    clientId: did, username: did, password: token, protocolVersion: 4, clean: true, keepalive: 60,
    reconnectPeriod: 0, connectTimeout: 10_000,
    will: { topic: `device/${did}/state`, payload: Buffer.from(JSON.stringify({ did, event: 'offline', model: 'chuangmi.plug.212a01', uid: '1000000001', ts: 0 })), qos: 1, retain: true },
  });
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}

/** `count` device sessions with their own accounts, connected 100 at a time; `onDevice` learns each did first. */
async function publishers(broker: EmbeddedBroker, count: number, onDevice: (did: string, k: number) => void = () => undefined): Promise<Publisher[]> {
  const pubs: Publisher[] = [];
  for (let k = 0; k < count; k += 100) {
    pubs.push(...await Promise.all(Array.from({ length: Math.min(100, count - k) }, async (_, j) => {
      const did = String(300_000_000 + (k + j) * 7919);
      const token = randomBytes(16).toString('hex');
      broker.access.registerDevice(did, { token, uid: String(1_000_000_000 + k + j) });
      onDevice(did, k + j);
      return { did, client: await connectPublisher(broker, did, token) };
    })));
  }
  return pubs;
}

/** Send `count` messages of one publisher in batches of `batch`, each batch waiting for its callbacks. */
async function publishOne({ client, did }: Publisher, count: number, qos: 0 | 1, batch: number, ts0: number): Promise<void> {
  const topic = `device/${did}/up/properties_changed/2/1`;
  let i = 0;
  while (i < count) {
    const n = Math.min(batch, count - i);
    await new Promise<void>((resolve, reject) => {
      let left = n;
      const cb = (err?: Error): void => {
        if (err) { reject(err); return; }
        if (--left === 0) resolve();
      };
      for (let j = 0; j < n; j++, i++) {
        const payload = `{"params":{"did":"${did}","siid":2,"piid":1,"value":${i % 2 === 0},"ts":${ts0 + i * 1000}}}`;
        client.publish(topic, payload, { qos, retain: false }, cb);
      }
    });
  }
}

/**
 * Publish `total` messages spread over the publishers. Each publisher sends batches of `batch`
 * and waits for the batch's callbacks (written to the pipe for QoS 0, PUBACK for QoS 1) before the
 * next one; all publishers run at once, so up to publishers x batch messages are in flight.
 */
async function publishAll(pubs: Publisher[], total: number, qos: 0 | 1, batch: number, ts0: number): Promise<number> {
  const per = Math.floor(total / pubs.length);
  const extra = total - per * pubs.length;
  await Promise.all(pubs.map((p, k) => publishOne(p, per + (k < extra ? 1 : 0), qos, batch, ts0)));
  return total;
}

async function endAll(pubs: Publisher[]): Promise<void> {
  for (const p of pubs) await p.client.endAsync(false).catch(() => undefined);
}

interface ThroughputArgs { publishers: number; messages: number; warmup: number; qos: 0 | 1; batch: number; timeoutMs: number }

/** throughput: `messages` properties_changed messages through the embedded broker to the observer; first publish -> last received. */
export async function throughput({ publishers: k, messages, warmup, qos, batch, timeoutMs }: ThroughputArgs) {
  const broker = await EmbeddedBroker.start({ operatorToken: randomBytes(12).toString('hex'), mqttPort: 0, wsPort: null });
  const sub = startSubscriber(broker.mqttAddress!.port, qos);
  try {
    await expectAnswer(sub, 'ready', 15_000, 'subscriber');
    const pubs = await publishers(broker, k);
    // Warm-up (not timed): JIT, buffers, subscription caches.
    const w = await counted(sub, warmup, timeoutMs, () => publishAll(pubs, warmup, qos, batch, TS0));
    if (w.done.received < warmup) throw new Error(`warm-up: ${JSON.stringify(w.done)}`);
    const base = { ...broker.counters };
    const { done: res, sent, sendSeconds, seconds } = await counted(sub, messages, timeoutMs, () => publishAll(pubs, messages, qos, batch, TS0));
    const counters = broker.counters;
    const result = {
      qos, publishers: k, batch, messages, sent,
      received: res.received,
      allArrived: res.received === messages,
      duplicates: res.duplicates,
      seconds: round(seconds, 3),
      messagesPerSecond: round(res.received / seconds, 0),
      publishSeconds: round(sendSeconds, 3),
      subscriberReceiveSeconds: round(res.receiveMs / 1000, 3),
      brokerPublished: counters.published - base.published,
      brokerDelivered: counters.delivered - base.delivered,
      emitterMaxQueued: broker.emitterStats.maxQueued,
      rejected: counters.rejected,
      timedOut: res.timedOut,
    };
    await endAll(pubs);
    return result;
  } finally {
    await sub.close({ type: 'quit' });
    await broker.close();
  }
}

interface MonitorLoadArgs { publishers: number; messages: number; warmup: number; batch: number; monitors: number; timeoutMs: number }

/**
 * Dashboards watching one device each (the device view), one reading the whole stream (held to
 * the per-client rate limit), and one that stops reading once subscribed, in their own process.
 */
async function startMonitors(monitor: MonitorServer, token: string, pubs: Publisher[], monitors: number): Promise<IpcChild<ToMonitors, FromMonitors>> {
  const specs: MonitorSpec[] = Array.from({ length: monitors - 2 }, (_, i) => ({ filters: [`device/${pubs[i % pubs.length]!.did}/#`] }));
  specs.push({ filters: ['device/#'] }, { filters: ['device/#'], stall: true });
  const mons = new IpcChild<ToMonitors, FromMonitors>(
    fork(script('monitors'), [monitor.url, token, JSON.stringify(specs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }), 'monitors');
  await expectAnswer(mons, 'ready', 30_000, 'monitors');
  return mons;
}

/** What the server holds for its clients, and what the monitor clients got. */
async function monitorFigures(mons: IpcChild<ToMonitors, FromMonitors> | null, hub: MonitorClientInfo[]) {
  const clients: MonitorClientReport[] = [];
  if (mons) {
    mons.send({ type: 'report' });
    clients.push(...(await expectAnswer(mons, 'report', 10_000, 'monitors')).clients);
  }
  const tapped = clients.filter((c) => !c.stall);
  const stalled = clients.filter((c) => c.stall);
  return {
    tapMessagesReceived: tapped.reduce((n, c) => n + c.messages, 0),
    tapMessagesDropped: tapped.reduce((n, c) => n + c.dropped, 0),
    statsFramesReceived: clients.reduce((n, c) => n + c.stats, 0),
    stalledClientReceived: stalled.length ? stalled[0]!.messages : null,
    // The server's side of the two whole-stream clients (one reading, one stalled) at the end:
    // bounded by maxQueue (1000 messages) and maxBufferedBytes (1 MiB) whatever the client does.
    wholeStreamClients: hub.filter((c) => c.filters.includes('device/#'))
      .map((c) => ({ queued: c.queued, bufferedBytes: c.bufferedAmount, sent: c.sent, dropped: c.dropped })),
    serverMaxQueued: hub.length ? Math.max(...hub.map((c) => c.queued)) : null,
    serverMaxBufferedBytes: hub.length ? Math.max(...hub.map((c) => c.bufferedAmount)) : null,
  };
}

/**
 * monitorLoad: broker throughput (as `throughput`, QoS 0, with the platform observing) without
 * (monitors: 0) or with the live monitor serving `monitors` WebSocket clients with taps.
 */
export async function monitorLoad({ publishers: k, messages, warmup, batch, monitors, timeoutMs }: MonitorLoadArgs) {
  const operatorToken = randomBytes(12).toString('hex');
  // The observer may fall 64 MiB behind before the broker sheds its QoS 0 deliveries (default 1 MiB),
  // with and without monitors alike: with three processes on two cores it sometimes fell 1 MiB
  // behind, was shed, and its count then waited out the timeout, which measured nothing.
  const broker = await EmbeddedBroker.start({ operatorToken, mqttPort: 0, wsPort: null, overload: { qos0Bytes: 64 * 1024 * 1024 } });
  const facts = new Map<string, { model: string; category: string; region: string }>();
  const platform = new PlatformService((did) => facts.get(did));
  platform.observe(broker);
  const sub = startSubscriber(broker.mqttAddress!.port, 0);
  let monitor: MonitorServer | null = null;
  let mons: IpcChild<ToMonitors, FromMonitors> | null = null;
  try {
    await expectAnswer(sub, 'ready', 15_000, 'subscriber');
    const regions = ['cn', 'es', 'mx'];
    const pubs = await publishers(broker, k, (did, i) => facts.set(did, { model: 'chuangmi.plug.212a01', category: 'plug', region: regions[i % 3]! }));
    if (monitors > 0) {
      monitor = await MonitorServer.start({ broker, platform, token: operatorToken, port: 0 });
      mons = await startMonitors(monitor, operatorToken, pubs, monitors);
    }
    const w = await counted(sub, warmup, timeoutMs, () => publishAll(pubs, warmup, 0, batch, TS0));
    if (w.done.received < warmup) throw new Error(`warm-up: ${JSON.stringify(w.done)}`);
    await fullGc();
    const before = memory();
    const { done: res, seconds, cpuSeconds } = await counted(sub, messages, timeoutMs, () => publishAll(pubs, messages, 0, batch, TS0 + warmup * 1000));
    const hub = monitor ? monitor.hub.clientInfo() : [];
    await sleep(200);
    await fullGc();
    const after = memory();
    const result = {
      monitors, publishers: k, messages,
      received: res.received,
      allArrived: res.received === messages,
      seconds: round(seconds, 3),
      messagesPerSecond: round(res.received / seconds, 0),
      // CPU time of this process (broker, publishers, platform, monitor) per message: what the
      // broker's thread spends, much less sensitive than wall time to other processes' load.
      cpuSeconds: round(cpuSeconds, 3),
      cpuMicrosPerMessage: round((cpuSeconds * 1e6) / messages, 2),
      messagesPerCpuSecond: round(messages / cpuSeconds, 0),
      heapGrowthBytes: after.heapUsed - before.heapUsed,
      rssGrowthBytes: after.rss - before.rss,
      heapUsedAfter: after.heapUsed,
      ...await monitorFigures(mons, hub),
      loadAverage1m: round(loadavg()[0]!, 2),
      platformOnline: platform.snapshot().connections.online,
      rejected: broker.counters.rejected,
      // Deliveries the broker shed to subscribers that could not keep up (the observer among them: then not all arrive).
      shed: { qos0: broker.overload.stats.shedQos0, qos1: broker.overload.stats.shedQos1 },
    };
    await endAll(pubs);
    return result;
  } finally {
    await mons?.close({ type: 'quit' });
    await monitor?.stop();
    await sub.close({ type: 'quit' });
    await broker.close();
  }
}
