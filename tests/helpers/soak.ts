/**
 * A soak of the embedded broker under attack while a simulation runs on it (issue 14): for
 * `seconds`, over its TCP and WebSocket listeners at once,
 * - malformed MQTT packets and WebSocket frames of every size (`malformed` in all, spread evenly),
 * - idle connections (no CONNECT, some upgraded to WebSocket) that keep each listener at its cap,
 *   with bursts past it,
 * - stalled subscribers to `#` that stop reading, QoS 1 sinks that read and never acknowledge,
 *   anonymous persistent sessions that subscribe to `#` and drop off, a retained-message flood,
 * while well-behaved devices (in-process sessions of a simulation) send QoS 1 events. It records
 * the process's RSS, and ends by checking that the broker still answers (a fresh client over TCP
 * and over WebSocket round-trips a message) and that every QoS 1 event reached the platform.
 *
 * Shared by the benchmark (bench/tasks/soak.ts: 60 s, `BENCH_ONLY=soak`) and the test suite
 * (tests/integration/soak.test.ts: a few seconds). It uses the package's public API only.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { createSimulation, type BrokerLimits, type LimitReport, type Simulation } from 'aiot-sim';
import { connectPacket, encode as gen } from './mqtt-bytes.js';
import { frameHeader, frameSizes, malformedPacket, random } from './soak-cases.js';

export interface SoakOptions {
  seconds: number;
  /** Malformed packets and WebSocket frames to send in all. */
  malformed: number;
  /** The broker's connection cap per listener; idle connections keep each listener near it. */
  maxConnections: number;
  /** Subscribers to `#` that stop reading, per listener. */
  stalled: number;
  /** QoS 1 persistent subscribers that read and never acknowledge. */
  sinks: number;
  /** Anonymous persistent sessions subscribed to `#` that drop off (the broker's cap for them). */
  offlineSessions: number;
  /** One-speaker homes: the well-behaved devices, each sending QoS 1 voice events. */
  homes: number;
  seed?: number;
}

export interface SoakResult {
  /** How long the attack lasted (`seconds`, or more if the malformed cases took longer to send). */
  seconds: number;
  limits: LimitReport['limits'];
  sent: { malformedTcp: number; malformedWs: number; frames: number; frameSizes: number; idleOpened: number; stalledOpened: number; retained: number };
  peakConnections: { tcp: number; ws: number };
  hits: LimitReport['hits'];
  /**
   * `baseline`: the peak of the control phase (the simulation alone); `peak`: during the attack;
   * `bound`: baseline + 2 x the sum of `boundParts` (what the limits let the attack hold).
   */
  rssMiB: { baseline: number; peak: number; end: number; bound: number; boundParts: Record<string, number>; withinBound: boolean; atPeak: Record<string, number> };
  wsFailures: Record<string, number>;
  /** Round trips through the broker (a client publishing to itself) without and during the attack, ms. */
  pingMs: { control: { count: number; max: number }; attack: { count: number; max: number } };
  brokerAnswering: boolean;
  events: { published: number; atPlatform: number; lost: number; missing: number; bufferOverflow: number };
}

const MiB = 1024 * 1024;

const wsFailures = new Map<string, number>();

/** Everything the soak opened, so it can all be closed at the end. */
class Sockets {
  readonly open = new Set<Socket>();
  add(s: Socket): Socket {
    this.open.add(s);
    s.on('error', () => undefined);
    s.once('close', () => this.open.delete(s));
    return s;
  }
  async closeAll(): Promise<void> {
    const all = [...this.open];
    for (const s of all) s.destroy();
    await Promise.all(all.map((s) => (s.closed ? undefined : new Promise((r) => s.once('close', r)))));
  }
}

/** Every wait on the broker is bounded: a busy broker must not hang the soak. */
const CONNECT_WAIT_MS = 5000;

function tcp(port: number, sockets: Sockets): Promise<Socket | null> {
  return new Promise((resolve) => {
    const s = sockets.add(netConnect({ host: '127.0.0.1', port }));
    const t = setTimeout(() => { s.destroy(); resolve(null); }, CONNECT_WAIT_MS);
    s.once('connect', () => { clearTimeout(t); resolve(s); });
    s.once('close', () => { clearTimeout(t); resolve(null); });
  });
}

/** A WebSocket to /mqtt; resolves with the TCP socket under it (or null if refused). */
function wsSocket(port: number, sockets: Sockets): Promise<Socket | null> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, 'mqtt', { perMessageDeflate: false, handshakeTimeout: CONNECT_WAIT_MS });
    let socket: Socket | null = null;
    ws.on('error', (e) => { wsFailures.set(e.message, (wsFailures.get(e.message) ?? 0) + 1); resolve(null); });
    ws.once('unexpected-response', (_q, r) => { wsFailures.set(`HTTP ${r.statusCode}`, (wsFailures.get(`HTTP ${r.statusCode}`) ?? 0) + 1); resolve(null); });
    ws.once('upgrade', (res) => { socket = sockets.add(res.socket as Socket); });
    ws.once('open', () => resolve(socket));
  });
}

/** Resolves when `s` closes, or after `ms` (then destroys it). */
async function closedWithin(s: Socket, ms: number): Promise<void> {
  if (s.closed) return;
  await Promise.race([new Promise((r) => s.once('close', r)), sleep(ms)]);
  s.destroy();
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const rnd = random(o.seed ?? 14);
  const limits: BrokerLimits = {
    maxConnections: o.maxConnections, connectTimeoutMs: 15_000, maxKeepAliveSeconds: 3, maxQueuedMessages: 1000,
    maxQueuedBytes: 256 * 1024, maxAnonymousSessions: o.offlineSessions + o.sinks, maxRetainedMessages: 1000, maxRetainedBytes: 4 * MiB,
    maxBacklogBytes: 64 * MiB,
  };
  const sim = await createSimulation({
    scenario: {
      name: 'soak', seed: o.seed ?? 14, start: '2026-07-15T18:00:00+02:00', speed: 1,
      population: { homes: o.homes, regions: { cn: 1, es: 1 }, devicesPerHome: { 1: 1 }, mix: { speaker: 1 }, membersPerHome: [0, 0] },
      behaviour: { app: { sessionsPerUserPerDay: 0 }, voice: { interactionsPerSpeakerPerDay: 480, musicShare: 0, controlShare: 0 } },
      network: { offlineBuffer: 1000 },
    },
    speed: 'manual', broker: { mqttPort: 0, wsPort: 0, ...limits },
  });
  const broker = sim.broker;
  const l = broker.limitReport().limits;
  const tcpPort = broker.mqttAddress!.port;
  const wsPort = broker.wsAddress!.port;
  const sockets = new Sockets();
  const sent = { malformedTcp: 0, malformedWs: 0, frames: 0, frameSizes: 0, idleOpened: 0, stalledOpened: 0, retained: 0 };
  const sizesSent = new Set<number>();
  const pings = { count: 0, max: 0 };
  const peak = { tcp: 0, ws: 0 };
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  let peakRss = 0;
  let atPeak: Record<string, number> = {};
  // Control: the simulation alone, as it runs during the attack, for a sixth of the time (at most 10 s).
  let t0 = performance.now();
  let end = t0 + Math.min(10, o.seconds / 6) * 1000;
  let attacking = false;
  // The soak lasts `seconds`, and longer if the malformed cases are not all sent by then (a busy
  // machine), up to three times that or a minute, whichever is longer.
  let malformedLeft = 8;
  const overtimeMs = Math.max(3 * o.seconds, 60) * 1000;
  const running = (): boolean => performance.now() < end || (attacking && malformedLeft > 0 && performance.now() < t0 + overtimeMs);

  // The simulation's own clients hold some of each listener's places (app users speak MQTT over WebSocket).
  const simConnections = broker.limitReport().usage.connections;
  // Keep-alive 3 s: the soak's ceiling (the broker allows 1.5 times it between packets).
  const pinger = await mqtt.connectAsync(`mqtt://127.0.0.1:${tcpPort}`, { clientId: 'soak-pinger', username: 'operator', password: sim.operatorToken, keepalive: 3, reconnectPeriod: 500 });
  await pinger.subscribeAsync('soak/ping', { qos: 1 });

  await Promise.all([sample(), clock(sim), ping()]);
  const baseline = peakRss;
  const controlPings = { ...pings };
  pings.max = 0;
  // The sinks' persistent sessions first, then anonymous persistent sessions subscribed to # that
  // drop off, up to the cap for such sessions and one more (refused).
  for (let i = 0; i < o.sinks; i++) {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${tcpPort}`, { clientId: `soak-sink-${i}`, clean: false, reconnectPeriod: 0, connectTimeout: CONNECT_WAIT_MS });
    await c.subscribeAsync('device/#', { qos: 1 });
    await c.endAsync();
  }
  for (let i = 0; i <= o.offlineSessions; i++) {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${tcpPort}`, { clientId: `soak-offline-${i}`, clean: false, reconnectPeriod: 0, connectTimeout: CONNECT_WAIT_MS }).catch(() => null);
    if (!c) continue;
    await c.subscribeAsync('#', { qos: 1 });
    await c.endAsync();
  }
  attacking = true;
  t0 = performance.now();
  end = t0 + o.seconds * 1000;
  const loops: Array<Promise<unknown>> = [
    sample(), clock(sim), ping(), retained(),
    idle(tcpPort, 'tcp'), idle(wsPort, 'ws'), stalled(tcpPort, false), stalled(wsPort, true), sinks(),
    ...Array.from({ length: 8 }, (_, w) => malformed(w).finally(() => { malformedLeft--; })),
  ];
  await Promise.all(loops);
  const seconds = (performance.now() - t0) / 1000;
  await sockets.closeAll();
  pinger.end(true);

  const answering = await answers(tcpPort, wsPort, sim.operatorToken);
  await sim.advance(60_000);
  const eventsPublished = (): number => sim.dids.reduce((n, did) => n + (sim.device(did)?.lastEventSeq ?? 0), 0);
  const settleEnd = performance.now() + 30_000;
  while (sim.platform.dedup.stats.accepted < eventsPublished() && performance.now() < settleEnd) await sleep(20);
  const report = broker.limitReport();
  const stats = sim.platform.dedup.stats;
  const published = eventsPublished();
  const overflow = sim.dids.reduce((n, did) => n + (sim.device(did)?.counters.bufferOverflow ?? 0), 0);
  await sim.stop();
  const endRss = process.memoryUsage().rss;

  // The bound: the simulation's own peak without the attack (the control phase), plus twice what
  // the broker's bounds let the attack hold: the garbage collector lets a heap grow to about twice
  // what is live before it collects, and the attack allocates all the time.
  const held = {
    connections: (2 * l.maxConnections * (l.maxPacketSize + 64 * 1024)) / MiB,
    backlog: l.maxBacklogBytes / MiB,
    queues: ((o.offlineSessions + o.sinks) * l.maxQueuedBytes) / MiB,
    retained: l.maxRetainedBytes / MiB,
  };
  const boundParts = { ...held, gcFactor: 2 };
  const bound = baseline / MiB + 2 * Object.values(held).reduce((a, b) => a + b, 0);
  return {
    seconds: Math.round(seconds * 10) / 10, limits: l, sent, peakConnections: peak, hits: report.hits,
    rssMiB: {
      baseline: mib(baseline), peak: mib(peakRss), end: mib(endRss), bound: Math.round(bound),
      boundParts: Object.fromEntries(Object.entries(boundParts).map(([k, v]) => [k, Math.round(v)])), withinBound: peakRss / MiB <= bound, atPeak,
    },
    wsFailures: Object.fromEntries(wsFailures),
    pingMs: { control: controlPings, attack: { count: pings.count - controlPings.count, max: pings.max } },
    brokerAnswering: answering,
    events: { published, atPlatform: stats.accepted, lost: published - stats.accepted, missing: stats.missing, bufferOverflow: overflow },
  };

  async function sample(): Promise<void> {
    while (running()) {
      const m = process.memoryUsage();
      if (m.rss > peakRss) {
        peakRss = m.rss;
        atPeak = { heapUsed: mib(m.heapUsed), heapTotal: mib(m.heapTotal), external: mib(m.external), arrayBuffers: mib(m.arrayBuffers), queued: mib(broker.limitReport().usage.queuedBytes), backlog: mib(broker.limitReport().usage.backlogBytes), emitterQueued: broker.emitterStats.queued };
      }
      const c = broker.limitReport().usage.connections;
      peak.tcp = Math.max(peak.tcp, c.tcp);
      peak.ws = Math.max(peak.ws, c.ws);
      await sleep(100);
    }
  }

  /** The well-behaved devices' virtual time moves on: they keep sending QoS 1 events. */
  async function clock(s: Simulation): Promise<void> {
    while (running()) {
      await s.advance(20_000);
      await sleep(50);
    }
  }

  async function ping(): Promise<void> {
    while (running()) {
      const t = performance.now();
      const back = new Promise<void>((resolve) => pinger.once('message', () => resolve()));
      pinger.publish('soak/ping', String(t), { qos: 1 });
      await Promise.race([back, sleep(10_000)]);
      pings.count++;
      pings.max = Math.max(pings.max, Math.round(performance.now() - t));
      await sleep(500);
    }
  }

  /** An anonymous client retaining messages on ever new topics (the store keeps what its bounds allow). */
  async function retained(): Promise<void> {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${tcpPort}`, { clientId: 'soak-retainer', keepalive: 3, reconnectPeriod: 500, queueQoSZero: false });
    const payload = Buffer.alloc(1024, 0x61);
    while (running()) {
      c.publish(`soak/retained/${sent.retained++}`, payload, { qos: 0, retain: true });
      await sleep(5);
    }
    await c.endAsync(true);
  }

  /**
   * Connections that never send CONNECT (some upgraded to WebSocket), keeping the listener near
   * its cap (room is left for the other attacks), and every second a burst that goes past it.
   */
  async function idle(port: number, kind: 'tcp' | 'ws'): Promise<void> {
    const target = l.maxConnections - simConnections[kind] - Math.max(40, o.stalled + o.sinks + 40);
    const opened = (): Promise<Socket | null> => {
      sent.idleOpened++;
      return kind === 'ws' && sent.idleOpened % 2 === 0 ? wsSocket(port, sockets) : tcp(port, sockets);
    };
    let open = 0;
    let burstAt = performance.now() + 1000;
    while (running()) {
      const batch: Array<Promise<void>> = [];
      for (; open < target && batch.length < 50; open++) {
        batch.push(opened().then((s) => {
          if (!s) { open--; return; }
          s.once('close', () => { open--; });
        }));
      }
      await Promise.all(batch);
      if (performance.now() > burstAt) {
        burstAt = performance.now() + 2000;
        const extra = await Promise.all(Array.from({ length: l.maxConnections - simConnections[kind] - target + 10 }, opened));
        await sleep(50);
        for (const s of extra) s?.destroy();
      }
      await sleep(20);
    }
  }

  /** Subscribers to # that stop reading: the broker holds them to their backlog bounds, then the keep-alive ceiling ends them. */
  async function stalled(port: number, ws: boolean): Promise<void> {
    let n = 0;
    const live = new Set<Socket>();
    while (running()) {
      while (live.size < o.stalled && running()) {
        const s = ws ? await wsSocket(port, sockets) : await tcp(port, sockets);
        if (!s) break;
        const id = `soak-stalled-${ws ? 'ws' : 'tcp'}-${n++}`;
        const packets = Buffer.concat([connectPacket({ clientId: id }), gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 0 }, { topic: 'device/#', qos: 1 }] })]);
        if (ws) s.write(Buffer.concat([frameHeader(packets.length), packets]));
        else s.write(packets);
        sent.stalledOpened++;
        live.add(s);
        s.once('close', () => live.delete(s));
        setTimeout(() => s.pause(), 200).unref(); // read the CONNACK and SUBACK, then nothing more
      }
      await sleep(100);
    }
  }

  /** Persistent QoS 1 subscribers that read everything and acknowledge nothing (PINGREQ keeps them within the keep-alive ceiling). */
  async function sinks(): Promise<void> {
    const pingreq = gen({ cmd: 'pingreq' });
    const live = new Set<Socket>();
    let n = 0;
    while (running()) {
      while (live.size < o.sinks && running()) {
        const s = await tcp(tcpPort, sockets);
        if (!s) break;
        s.resume();
        s.write(Buffer.concat([connectPacket({ clientId: `soak-sink-${n++ % o.sinks}`, clean: false }), gen({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'device/#', qos: 1 }] })]));
        live.add(s);
        s.once('close', () => live.delete(s));
      }
      for (const s of live) s.write(pingreq);
      await sleep(1000);
    }
  }

  /**
   * Malformed packets over TCP and WebSocket, and WebSocket frames of every size; `malformed` in
   * all, spread evenly over the soak. Each connection is dropped 300 ms after its bytes (if the
   * broker has not closed it first); one refused at a full listener is tried again.
   */
  async function malformed(worker: number): Promise<void> {
    const sizes = frameSizes(l.maxPacketSize);
    const perWorker = Math.ceil(o.malformed / 8);
    const gapMs = (o.seconds * 1000) / perWorker;
    const lingering: Array<Promise<void>> = [];
    for (let k = 0; k < perWorker && running(); k++) {
      const i = k * 8 + worker;
      const overWs = i % 2 === 1;
      let s: Socket | null = null;
      while (!s && running()) {
        s = overWs ? await wsSocket(wsPort, sockets) : await tcp(tcpPort, sockets);
        if (!s) await sleep(20);
      }
      if (s) {
        s.resume();
        if (!overWs) {
          s.write(malformedPacket(i, rnd, l.maxPacketSize));
          sent.malformedTcp++;
        } else if (i % 4 === 1) {
          const size = sizes[Math.floor(i / 4) % sizes.length]!;
          // Frames over the limit are sent only in part: the broker must close before the rest.
          const body = Buffer.alloc(Math.min(size, l.maxPacketSize + 1024), 0x30 + (i % 10));
          s.write(Buffer.concat([frameHeader(size), body]));
          sizesSent.add(size);
          sent.frames++;
          sent.frameSizes = sizesSent.size;
          sent.malformedWs++;
        } else {
          const bad = malformedPacket(i, rnd, l.maxPacketSize);
          s.write(Buffer.concat([frameHeader(bad.length), bad]));
          sent.malformedWs++;
        }
        lingering.push(closedWithin(s, 300));
      }
      const wait = t0 + (k + 1) * gapMs - performance.now();
      if (wait > 0) await sleep(wait);
    }
    await Promise.all(lingering);
  }
}

function mib(bytes: number): number {
  return Math.round(bytes / MiB);
}

/** A fresh client over TCP and one over WebSocket each round-trip a message. */
async function answers(tcpPort: number, wsPort: number, token: string): Promise<boolean> {
  for (const url of [`mqtt://127.0.0.1:${tcpPort}`, `ws://127.0.0.1:${wsPort}/mqtt`]) {
    const c = await mqtt.connectAsync(url, { clientId: `soak-check-${url.slice(0, 2)}`, username: 'operator', password: token, reconnectPeriod: 0, connectTimeout: 5000 }).catch(() => null);
    if (!c) return false;
    try {
      await c.subscribeAsync('soak/check', { qos: 1 });
      const back = new Promise<boolean>((resolve) => c.once('message', () => resolve(true)));
      await c.publishAsync('soak/check', 'hello', { qos: 1 });
      if (!(await Promise.race([back, sleep(5000).then(() => false)]))) return false;
    } finally {
      await c.endAsync(true);
    }
  }
  return true;
}
