/**
 * One benchmark measurement in a fresh process. Started by run.js with
 *   child_process.fork('bench/worker.js', [task, jsonArgs], { execArgv: ['--expose-gc'] })
 * and answers with one IPC message { ok: true, result } or { ok: false, error }.
 * Progress goes to stderr. Tasks: connect, memory, throughput, fast, monitorLoad, faults, snapshot, loadSearch,
 * loadLatency, loadConnect, loadOverload.
 */
import { fork, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect } from 'node:net';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MqttClient } from 'mqtt';
import { EmbeddedBroker } from '../dist/broker/broker.js';
import { loadCatalog } from '../dist/catalog/catalog.js';
import { MonitorServer } from '../dist/monitor/server.js';
import { PACKAGE_ROOT } from '../dist/paths.js';
import { PlatformService } from '../dist/platform/service.js';
import { Simulation } from '../dist/sim/simulation.js';
import { ShardedSimulation } from '../dist/sim/sharded.js';
import { runBench } from '../dist/load/bench.js';
import { findMaxRate } from '../dist/load/search.js';
import { fullGc, log, memory, now, round, sleep, tick, waitFor } from './common.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));

/** A Wi-Fi-only population of `homes` homes with one device each (one MQTT session per device). */
function wifiScenario(name, homes) {
  return {
    name,
    seed: 7,
    start: '2026-07-15T18:00:00+02:00',
    speed: 1,
    population: {
      homes,
      regions: { cn: 1, es: 1, mx: 1 },
      devicesPerHome: { 1: 1 },
      mix: { plug: 1, light: 1, speaker: 1 },
      membersPerHome: [0, 0],
    },
  };
}

const NO_LISTENERS = { mqttPort: null, wsPort: null };

// ------------------------------------------------------------------------------------------------
// 1. connectRate: time `await sim.start()` for N one-device homes over the in-process transport.

async function connect({ homes }) {
  const catalog = await loadCatalog(join(PACKAGE_ROOT, 'devices'));
  const sim = await Simulation.create({ scenario: wifiScenario('bench-connect', homes), catalog, speed: 'manual', broker: NO_LISTENERS });
  const t0 = now();
  await sim.start();
  const seconds = (now() - t0) / 1000;
  const st = sim.status();
  // Every MQTT client start() connected: device sessions, the operator, and (when the simulation has
  // app users) one app client per home user.
  const brokerClients = sim.broker.connectedClients;
  // Separately: how long until the platform has seen every device's retained "online" state.
  const allOnline = await waitFor(() => sim.status().online >= st.sessions, 30_000, 2);
  const onlineSeconds = (now() - t0) / 1000;
  const after = sim.status();
  const t1 = now();
  const report = await sim.stop();
  const stopSeconds = (now() - t1) / 1000;
  return {
    sessions: st.sessions,
    sessionsConnected: st.sessionsConnected,
    devices: st.devices,
    startSeconds: round(seconds, 3),
    devicesPerSecond: round(st.sessions / seconds, 1),
    brokerClients,
    otherClients: brokerClients - st.sessions,
    clientsPerSecond: round(brokerClients / seconds, 1),
    platformOnline: after.online,
    allOnline,
    secondsUntilAllOnline: round(onlineSeconds, 3),
    stopSeconds: round(stopSeconds, 3),
    rejected: report.messages.rejected,
  };
}

// ------------------------------------------------------------------------------------------------
// 2. memoryPerDevice: heap (after full GC) with N sessions connected, minus the heap before.

async function memoryTask({ homes }) {
  const catalog = await loadCatalog(join(PACKAGE_ROOT, 'devices'));
  // Warm-up: a tiny simulation, so compiled code and module-level caches are in the baseline.
  {
    const warm = await Simulation.create({ scenario: wifiScenario('bench-warmup', 30), catalog, speed: 'manual', broker: NO_LISTENERS });
    await warm.start();
    warm.advance(60_000);
    await waitFor(() => warm.status().online >= 30, 5000);
    await warm.stop();
  }
  await fullGc();
  const before = memory();

  let sim = await Simulation.create({ scenario: wifiScenario('bench-memory', homes), catalog, speed: 'manual', broker: NO_LISTENERS });
  await fullGc();
  const afterCreate = memory();

  const t0 = now();
  await sim.start();
  const startSeconds = (now() - t0) / 1000;
  const st = sim.status();
  const allOnline = await waitFor(() => sim.status().online >= st.sessions, 30_000, 5);
  // Let in-flight retained "online" publishes and their QoS 1 acks finish.
  await waitFor(() => sim.broker.emitterStats.queued === 0 && sim.broker.emitterStats.inFlight === 0, 5000, 5);
  await sleep(200);
  await fullGc();
  const connected = memory();
  const n = st.sessions;
  const status = sim.status();
  const brokerClients = sim.broker.connectedClients;

  await sim.stop();
  sim = null;
  await sleep(100);
  await fullGc();
  const afterStop = memory();

  const per = (a, b, k) => round((a[k] - b[k]) / n, 0);
  return {
    devices: status.devices,
    sessions: n,
    sessionsConnected: status.sessionsConnected,
    platformOnline: status.online,
    brokerClients,
    otherClients: brokerClients - n,
    allOnline,
    startSeconds: round(startSeconds, 3),
    heapBytesPerDevice: per(connected, before, 'heapUsed'),
    rssBytesPerDevice: per(connected, before, 'rss'),
    externalBytesPerDevice: per(connected, before, 'external'),
    heapBytesPerClient: round((connected.heapUsed - before.heapUsed) / brokerClients, 0),
    // Breakdown: the population plan and Simulation object (create) vs devices + sessions + broker state (start).
    heapBytesPerDevicePlan: per(afterCreate, before, 'heapUsed'),
    heapBytesPerDeviceSession: per(connected, afterCreate, 'heapUsed'),
    // What stays on the heap after stop() once the Simulation is unreachable (should be ~0).
    heapBytesPerDeviceLeftAfterStop: per(afterStop, before, 'heapUsed'),
    heap: { before: before.heapUsed, afterCreate: afterCreate.heapUsed, connected: connected.heapUsed, afterStop: afterStop.heapUsed },
    rss: { before: before.rss, connected: connected.rss, afterStop: afterStop.rss },
  };
}

// ------------------------------------------------------------------------------------------------
// 3. throughput: K in-process device publishers -> embedded broker -> one TCP observer (separate process).

function startSubscriber(port, qos) {
  return ipcChild(fork(join(HERE, 'subscriber.js'), [String(port), String(qos)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }), 'subscriber');
}

/** A child process answering over IPC: next(timeoutMs) resolves with its next message. */
function ipcChild(child, name) {
  const waiters = [];
  const inbox = [];
  child.on('message', (m) => {
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const next = (timeoutMs) => new Promise((resolve, reject) => {
    if (inbox.length) return resolve(inbox.shift());
    const timer = setTimeout(() => {
      const i = waiters.indexOf(ok);
      if (i >= 0) waiters.splice(i, 1);
      reject(new Error(`${name}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const ok = (m) => { clearTimeout(timer); resolve(m); };
    waiters.push(ok);
  });
  return { child, next, send: (m) => child.send(m), exited };
}

function connectPublisher(broker, did, token) {
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

/**
 * Publish `total` messages spread over the publishers. Each publisher sends batches of `batch`
 * and waits for the batch's callbacks (written to the pipe for QoS 0, PUBACK for QoS 1) before the
 * next one; all publishers run at once, so up to publishers x batch messages are in flight.
 */
async function publishAll(pubs, total, qos, batch, ts0) {
  const per = Math.floor(total / pubs.length);
  const extra = total - per * pubs.length;
  let sent = 0;
  const runOne = async ({ client, did }, count) => {
    const topic = `device/${did}/up/properties_changed/2/1`;
    let i = 0;
    while (i < count) {
      const n = Math.min(batch, count - i);
      await new Promise((resolve, reject) => {
        let left = n;
        const cb = (err) => {
          if (err) return reject(err);
          if (--left === 0) resolve();
        };
        for (let j = 0; j < n; j++, i++) {
          const payload = `{"did":"${did}","siid":2,"piid":1,"value":${i % 2 === 0},"ts":${ts0 + i * 1000}}`;
          client.publish(topic, payload, { qos, retain: false }, cb);
        }
      });
      sent += n;
    }
  };
  await Promise.all(pubs.map((p, k) => runOne(p, per + (k < extra ? 1 : 0))));
  return sent;
}

async function throughput({ publishers, messages, warmup, qos, batch, timeoutMs }) {
  const operatorToken = randomBytes(12).toString('hex');
  const broker = await EmbeddedBroker.start({ operatorToken, mqttPort: 0, wsPort: null });
  const sub = startSubscriber(broker.mqttAddress.port, qos);
  try {
    const ready = await sub.next(15_000);
    if (ready.type !== 'ready') throw new Error(`subscriber: ${JSON.stringify(ready)}`);

    const pubs = [];
    for (let k = 0; k < publishers; k++) {
      const did = String(300_000_000 + k * 7919);
      const token = randomBytes(16).toString('hex');
      broker.access.registerDevice(did, { token, uid: String(1_000_000_000 + k) });
      pubs.push({ did, client: await connectPublisher(broker, did, token) });
    }
    const ts0 = Date.parse('2026-07-15T16:00:00Z');

    // Warm-up (not timed): JIT, buffers, subscription caches.
    sub.send({ type: 'expect', count: warmup, timeoutMs });
    await sub.next(5000); // 'armed'
    await publishAll(pubs, warmup, qos, batch, ts0);
    const w = await sub.next(timeoutMs);
    if (w.type !== 'done' || w.received < warmup) throw new Error(`warm-up: ${JSON.stringify(w)}`);

    const base = { ...broker.counters };
    sub.send({ type: 'expect', count: messages, timeoutMs });
    await sub.next(5000); // 'armed'
    const t0 = now();
    const sent = await publishAll(pubs, messages, qos, batch, ts0);
    const tPublished = now();
    // The subscriber answers 'done' when it has all of them, or after timeoutMs without finishing.
    const res = await sub.next(timeoutMs + 5000);
    const t1 = now();
    const seconds = (t1 - t0) / 1000;
    const counters = broker.counters;
    const result = {
      qos,
      publishers,
      batch,
      messages,
      sent,
      received: res.received,
      allArrived: res.received === messages,
      duplicates: res.duplicates ?? 0,
      seconds: round(seconds, 3),
      messagesPerSecond: round(res.received / seconds, 0),
      publishSeconds: round((tPublished - t0) / 1000, 3),
      subscriberReceiveSeconds: round(res.receiveMs / 1000, 3),
      brokerPublished: counters.published - base.published,
      brokerDelivered: counters.delivered - base.delivered,
      emitterMaxQueued: broker.emitterStats.maxQueued,
      rejected: counters.rejected,
      timedOut: res.timedOut === true,
    };
    for (const p of pubs) await p.client.endAsync(false).catch(() => undefined);
    return result;
  } finally {
    sub.send({ type: 'quit' });
    await Promise.race([sub.exited, sleep(3000)]);
    if (sub.child.exitCode === null) sub.child.kill();
    await broker.close();
  }
}

// ------------------------------------------------------------------------------------------------
// 4. fastMode: a scenario (default: the default one), 24 virtual hours, as fast as it goes.

async function fast({ duration, scenario = 'default.yaml' }) {
  const sim = await Simulation.create({
    scenario: join(PACKAGE_ROOT, 'scenarios', scenario), speed: 'fast', duration, broker: NO_LISTENERS,
  });
  const t0 = now();
  await sim.start();
  const tStarted = now();
  const report = await sim.finished;
  const t1 = now();
  const st = sim.status();
  const runSeconds = (t1 - tStarted) / 1000;
  return {
    scenario,
    duration,
    devices: report.devices.total,
    sessions: report.devices.sessions,
    virtualSeconds: report.virtualSeconds,
    wallSeconds: report.wallSeconds,
    virtualSecondsPerWallSecond: round(report.virtualSeconds / report.wallSeconds, 0),
    events: st.events,
    eventsPerSecond: round(st.events / report.wallSeconds, 0),
    messagesPublished: report.messages.published,
    messagesPerSecond: round(report.messages.published / report.wallSeconds, 0),
    startSeconds: round((tStarted - t0) / 1000, 3),
    runSeconds: round(runSeconds, 3),
    traceDigest: report.traceDigest,
  };
}

/**
 * A snapshot scenario run in full (30 virtual days, fast): the platform's figures, scaled up, and
 * the wall and CPU time (CPU time moves less when other work shares the machine).
 */
async function snapshot({ scenario, seed, duration, workers = 1 }) {
  const opts = { scenario: join(PACKAGE_ROOT, 'scenarios', scenario), speed: 'fast' };
  if (seed !== undefined) opts.seed = seed;
  if (duration !== undefined) opts.duration = duration;
  // CPU time below is the process's: every worker thread's included.
  const sim = workers > 1 ? await ShardedSimulation.create({ ...opts, workers }) : await Simulation.create({ ...opts, broker: NO_LISTENERS });
  const t0 = now();
  const cpu0 = process.cpuUsage();
  await sim.start();
  const startSeconds = (now() - t0) / 1000;
  const report = await sim.finished;
  const cpu = process.cpuUsage(cpu0);
  const p = report.platform;
  return {
    scenario, seed: report.seed, workers: report.workers, devices: report.devices.total, virtualSeconds: report.virtualSeconds,
    telemetry: sim.scenario.behaviour.telemetry,
    wallSeconds: report.wallSeconds, startSeconds: round(startSeconds, 1), cpuSeconds: round((cpu.user + cpu.system) / 1e6, 1),
    loadAverage1m: round(os.loadavg()[0], 2),
    messagesPublished: report.messages.published,
    measured: {
      connections: p.connections.online, dailyActiveDevices: p.dailyActiveDevices,
      dailyActiveDevicesWeekMean: p.dailyActiveDevicesWeekMean, speakerMau: p.speakerMau,
      appMau: p.appMau, ownersWithMoreThan5Devices: p.ownersWithMoreThan5Devices, activeUsers: p.activeUsers,
    },
    scaled: p.scaled,
  };
}

// ------------------------------------------------------------------------------------------------
// 5. load: `aiot-sim bench` figures (issue 6) - the same generator and probe against the embedded
//    broker and against Mosquitto.

// ------------------------------------------------------------------------------------------------
// 5. monitorLoad: broker throughput (as in 3, QoS 0, with the platform observing) without and with
//    the live monitor serving `monitors` WebSocket clients with taps, in a separate process.

async function monitorLoad({ publishers, messages, warmup, batch, monitors, timeoutMs }) {
  const operatorToken = randomBytes(12).toString('hex');
  const broker = await EmbeddedBroker.start({ operatorToken, mqttPort: 0, wsPort: null });
  const facts = new Map();
  const platform = new PlatformService((did) => facts.get(did));
  platform.observe(broker);
  const sub = startSubscriber(broker.mqttAddress.port, 0);
  let monitor = null;
  let mons = null;
  try {
    const ready = await sub.next(15_000);
    if (ready.type !== 'ready') throw new Error(`subscriber: ${JSON.stringify(ready)}`);
    const pubs = [];
    for (let k = 0; k < publishers; k += 100) {
      pubs.push(...await Promise.all(Array.from({ length: Math.min(100, publishers - k) }, async (_, j) => {
        const did = String(300_000_000 + (k + j) * 7919);
        const token = randomBytes(16).toString('hex');
        broker.access.registerDevice(did, { token, uid: String(1_000_000_000 + k + j) });
        facts.set(did, { model: 'chuangmi.plug.212a01', category: 'plug', region: ['cn', 'es', 'mx'][(k + j) % 3] });
        return { did, client: await connectPublisher(broker, did, token) };
      })));
    }
    let specs = [];
    if (monitors > 0) {
      monitor = await MonitorServer.start({ broker, platform, token: operatorToken, port: 0 });
      // Dashboards watching one device each (the device view), one reading the whole stream
      // (held to the per-client rate limit), and one that stops reading once subscribed.
      specs = Array.from({ length: monitors - 2 }, (_, i) => ({ filters: [`device/${pubs[i % pubs.length].did}/#`] }));
      specs.push({ filters: ['device/#'] }, { filters: ['device/#'], stall: true });
      mons = ipcChild(fork(join(HERE, 'monitors.js'), [monitor.url, operatorToken, JSON.stringify(specs)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }), 'monitors');
      const r = await mons.next(30_000);
      if (r.type !== 'ready') throw new Error(`monitors: ${JSON.stringify(r)}`);
    }
    const ts0 = Date.parse('2026-07-15T16:00:00Z');
    sub.send({ type: 'expect', count: warmup, timeoutMs });
    await sub.next(5000);
    await publishAll(pubs, warmup, 0, batch, ts0);
    const w = await sub.next(timeoutMs);
    if (w.type !== 'done' || w.received < warmup) throw new Error(`warm-up: ${JSON.stringify(w)}`);

    await fullGc();
    const before = memory();
    sub.send({ type: 'expect', count: messages, timeoutMs });
    await sub.next(5000);
    const cpu0 = process.cpuUsage();
    const t0 = now();
    await publishAll(pubs, messages, 0, batch, ts0 + warmup * 1000);
    const res = await sub.next(timeoutMs + 5000);
    const seconds = (now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const hub = monitor ? monitor.hub.clientInfo() : [];
    await sleep(200);
    await fullGc();
    const after = memory();
    let clients = [];
    if (mons) {
      mons.send({ type: 'report' });
      const rep = await mons.next(10_000);
      clients = rep.clients ?? [];
    }
    const tapped = clients.filter((c) => !c.stall);
    const stalled = clients.filter((c) => c.stall);
    const result = {
      monitors,
      publishers,
      messages,
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
      tapMessagesReceived: tapped.reduce((n, c) => n + c.messages, 0),
      tapMessagesDropped: tapped.reduce((n, c) => n + c.dropped, 0),
      statsFramesReceived: clients.reduce((n, c) => n + c.stats, 0),
      stalledClientReceived: stalled.length ? stalled[0].messages : null,
      // The server's side of the two whole-stream clients (one reading, one stalled) at the end:
      // bounded by maxQueue (1000 messages) and maxBufferedBytes (1 MiB) whatever the client does.
      wholeStreamClients: hub.filter((c) => c.filters.includes('device/#'))
        .map((c) => ({ queued: c.queued, bufferedBytes: c.bufferedAmount, sent: c.sent, dropped: c.dropped })),
      serverMaxQueued: hub.length ? Math.max(...hub.map((c) => c.queued)) : null,
      serverMaxBufferedBytes: hub.length ? Math.max(...hub.map((c) => c.bufferedAmount)) : null,
      loadAverage1m: round(os.loadavg()[0], 2),
      platformOnline: platform.snapshot().connections.online,
      rejected: broker.counters.rejected,
    };
    for (const p of pubs) await p.client.endAsync(false).catch(() => undefined);
    return result;
  } finally {
    if (mons) {
      mons.send({ type: 'quit' });
      await Promise.race([mons.exited, sleep(3000)]);
      if (mons.child.exitCode === null) mons.child.kill();
    }
    await monitor?.stop();
    sub.send({ type: 'quit' });
    await Promise.race([sub.exited, sleep(3000)]);
    if (sub.child.exitCode === null) sub.child.kill();
    await broker.close();
  }
}


// 6. faults: a broker restart of N one-device homes (issue 7): reconnect time, QoS 1 events lost
//    (must be 0) and duplicates removed. First the scenario's broker-restart fault (the broker goes
//    down at a virtual time and comes back 5 virtual minutes later; sessions retry with backoff and
//    full jitter); then an unannounced restart in the middle of the traffic (sim.broker.restart()
//    while the clock runs), after which sessions find the broker and announce themselves by themselves.

function faultScenario(homes) {
  return {
    ...wifiScenario('bench-faults', homes),
    seed: 9,
    behaviour: {
      app: { sessionsPerUserPerDay: 0 },
      // Speakers report every voice request as a QoS 1 event: about one per speaker per 3 virtual minutes.
      voice: { interactionsPerSpeakerPerDay: 480, musicShare: 0, controlShare: 0 },
      appliances: { lightsEveningShare: 0, washerCyclesPerWeek: 0, vacuumRunsPerWeek: 0 },
    },
    network: { reconnect: { initialDelay: '500ms', maxDelay: '10s' }, offlineBuffer: 100 },
    faults: [{ type: 'broker-restart', at: '20m', duration: '5m' }],
  };
}

async function faults({ homes, downMs }) {
  const catalog = await loadCatalog(join(PACKAGE_ROOT, 'devices'));
  const sim = await Simulation.create({ scenario: faultScenario(homes), catalog, speed: 'manual', broker: NO_LISTENERS });
  await sim.start();
  const st = sim.status();
  await waitFor(() => sim.status().online >= st.devices, 60_000, 5);
  const published = () => sim.dids.reduce((n, did) => n + sim.device(did).lastEventSeq, 0);
  const accepted = () => sim.platform.dedup.stats.accepted;

  // The scenario's fault: down at 20 virtual minutes, back at 25.
  log(`faults: ${st.sessions} sessions online; scenario broker-restart`);
  await sim.advance(30 * 60_000);
  const rec = sim.faults.records[0];
  const allAtPlatform1 = await waitFor(() => accepted() >= published(), 30_000, 5);
  const published1 = published();

  // Unannounced: the broker restarts in the middle of the traffic.
  log('faults: unannounced restart while the clock runs');
  let t0 = 0;
  let restarted = null;
  const running = sim.advance(30 * 60_000);
  await sleep(50);
  t0 = now();
  restarted = sim.broker.restart(downMs);
  await restarted;
  const upAt = now();
  const allBack = await waitFor(() => sim.status().sessionsConnected === st.sessions, 120_000, 2);
  const reconnectSeconds = (now() - upAt) / 1000;
  const allOnline = await waitFor(() => sim.status().online >= st.devices, 120_000, 2);
  const onlineSeconds = (now() - upAt) / 1000;
  await running;
  const allAtPlatform2 = await waitFor(() => accepted() >= published(), 30_000, 5);
  const stats = sim.platform.dedup.stats;
  const overflow = sim.dids.reduce((n, did) => n + sim.device(did).counters.bufferOverflow, 0);
  const total = published();
  await sim.stop();
  return {
    sessions: st.sessions,
    devices: st.devices,
    scenarioRestart: {
      reconnectSeconds: round(rec.details.reconnectMs / 1000, 3),
      onlineSeconds: round(rec.details.onlineMs / 1000, 3),
      boundSeconds: rec.details.boundMs / 1000,
      notBack: rec.details.notBack,
      reconnectAttempts: rec.details.reconnectAttempts,
      eventsSoFar: published1,
      allEventsAtPlatform: allAtPlatform1,
    },
    unannouncedRestart: {
      downSeconds: round((upAt - t0) / 1000, 3),
      reconnectSeconds: round(reconnectSeconds, 3),
      onlineSeconds: round(onlineSeconds, 3),
      allBack,
      allOnline,
    },
    eventsPublished: total,
    eventsAtPlatform: stats.accepted,
    eventsLost: total - stats.accepted,
    duplicatesRemoved: stats.duplicates,
    eventsMissing: stats.missing,
    bufferOverflow: overflow,
    allEventsAtPlatform: allAtPlatform2,
  };
}


const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => existsSync(p)) ?? null;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** Mosquitto on a free loopback port. Outgoing QoS 1 window and queue raised from the defaults (20, 1000), which drop QoS 1 at a few 10k msg/s; Aedes has no such window. */
async function startMosquitto() {
  if (!MOSQUITTO) throw new Error('mosquitto is not installed (Debian package "mosquitto")');
  const dir = await mkdtemp(join(os.tmpdir(), 'aiot-bench-mosquitto-'));
  const port = await freePort();
  const conf = join(dir, 'mosquitto.conf');
  await writeFile(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false',
    'max_inflight_messages 1000', 'max_queued_messages 100000', ''].join('\n'));
  const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'ignore'] });
  const ok = await waitForAsync(() => new Promise((res) => {
    const s = netConnect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
  }), 5000);
  const stop = async () => {
    child.kill('SIGTERM');
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(3000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };
  if (!ok) { await stop(); throw new Error('mosquitto did not start'); }
  const version = await new Promise((res) => {
    const v = spawn(MOSQUITTO, ['-h'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    v.stdout.on('data', (d) => { text += d; });
    v.on('exit', () => res((/mosquitto version (\S+)/.exec(text) ?? [])[1] ?? null));
  });
  return { url: `mqtt://127.0.0.1:${port}`, pid: child.pid, version, stop };
}

async function waitForAsync(cond, maxMs) {
  const until = now() + maxMs;
  while (!(await cond())) {
    if (now() > until) return false;
    await sleep(20);
  }
  return true;
}

/** CPU seconds (user + system) a process has used, from /proc. */
function cpuSeconds(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (100/s on Linux)
  } catch {
    return null;
  }
}

function briefStep(s) {
  return { ...s, loadAverage1m: round(os.loadavg()[0], 2) };
}

/** Highest sustained rate with zero loss (see src/load/search.ts) against `target`. */
async function loadSearch({ target, qos, devices, start, budgetMs }) {
  const mosq = target === 'mosquitto' ? await startMosquitto() : null;
  try {
    const load0 = os.loadavg()[0];
    let cpu = mosq ? cpuSeconds(mosq.pid) : null;
    let t = now();
    const res = await findMaxRate({
      base: { devices, qos, ...(mosq ? { broker: mosq.url } : {}) }, start, budgetMs,
      onStep: (s) => {
        const step = briefStep(s);
        if (mosq) {
          const c = cpuSeconds(mosq.pid);
          step.mosquittoCpu = c === null || cpu === null ? null : round((c - cpu) / ((now() - t) / 1000), 3);
          cpu = c;
          t = now();
        }
        Object.assign(s, step);
        log(`  ${target} qos${qos} ${s.rate} msg/s: ${s.sustained ? 'sustained' : `not sustained (${s.reason})`}, p99 ${s.p99Ms} ms, ` +
          `utilisation broker ${s.utilization.broker ?? '-'} probe ${s.utilization.probe} generators ${s.utilization.generators.join('/')}` +
          `${step.mosquittoCpu != null ? ` mosquitto cpu ${step.mosquittoCpu}` : ''}`);
      },
    });
    return { target, qos, devices, mosquittoVersion: mosq?.version ?? null, loadAverage1mAtStart: round(load0, 2), loadAverage1mAtEnd: round(os.loadavg()[0], 2), ...res };
  } finally {
    await mosq?.stop();
  }
}

/** One bench at a fixed rate (latency at half the maximum). */
async function loadLatency({ rate, qos, devices, seconds }) {
  const r = await runBench({ devices, qos, rate, durationMs: seconds * 1000, warmupMs: 2000 });
  return { rate, qos, devices, loadAverage1m: round(os.loadavg()[0], 2), ...r.latencyMs, sentRate: r.rate.sent, receivedRate: r.rate.received, lost: r.messages.lost, utilization: r.utilization };
}

/** Connect `devices` device sessions (TCP, as fast as possible) and weigh them on the broker's heap. */
async function loadConnect({ devices }) {
  const r = await runBench({ devices, rate: Math.max(1, devices / 10), durationMs: 1000, warmupMs: 0, workers: 1 });
  const m = r.broker.memory;
  return {
    devices, connectRate: r.connections.connectRate, connectSeconds: r.connections.connectSeconds, slowestConnectMs: r.connections.slowestConnectMs,
    failed: r.connections.failed, heapBytesPerConnection: m.heapBytesPerConnection, heapUsedBeforeBytes: m.heapUsedBeforeBytes, heapUsedConnectedBytes: m.heapUsedConnectedBytes,
    loadAverage1m: round(os.loadavg()[0], 2),
  };
}

/** The embedded broker at `rate` (twice its saturation) for `seconds`: survival, memory, shed and delayed. */
async function loadOverload({ rate, seconds, devices }) {
  const r = await runBench({ devices, qos: 0, rate, durationMs: seconds * 1000, warmupMs: 2000, drainMs: 5000 });
  const heap = r.timeline.map((p) => p.brokerHeapBytes).filter((x) => typeof x === 'number');
  const half = Math.floor(heap.length / 2);
  const maxOf = (xs) => xs.reduce((a, b) => Math.max(a, b), 0);
  return {
    rate, seconds, devices, loadAverage1m: round(os.loadavg()[0], 2),
    brokerStayedUp: r.broker.aliveAfter,
    sentRate: r.rate.sent, receivedRate: r.rate.received,
    messages: r.messages,
    latencyMs: r.latencyMs,
    shed: r.broker.overload,
    emitter: r.broker.emitter,
    heapUsedMaxBytes: r.broker.memory.heapUsedMaxBytes,
    rssMaxBytes: r.broker.memory.rssMaxBytes,
    // Bounded memory: the heap saw-tooths with GC; neither its peaks nor its floors (after GC) climb from the first half to the second.
    heapMaxFirstHalfBytes: maxOf(heap.slice(0, half)),
    heapMaxSecondHalfBytes: maxOf(heap.slice(half)),
    heapMinFirstHalfBytes: Math.min(...heap.slice(0, half)),
    heapMinSecondHalfBytes: Math.min(...heap.slice(half)),
    utilization: r.utilization,
    timeline: r.timeline,
  };
}

const TASKS = { connect, memory: memoryTask, throughput, fast, monitorLoad, faults, snapshot, loadSearch, loadLatency, loadConnect, loadOverload };

async function main() {
  const [task, rawArgs] = process.argv.slice(2);
  const fn = TASKS[task];
  if (!fn) throw new Error(`unknown task "${task}"; one of ${Object.keys(TASKS).join(', ')}`);
  const args = rawArgs ? JSON.parse(rawArgs) : {};
  log(`${task} ${JSON.stringify(args)} (pid ${process.pid})`);
  const result = await fn(args);
  await tick();
  return result;
}

main().then(
  (result) => {
    if (process.send) process.send({ ok: true, result }, () => process.exit(0));
    else { process.stdout.write(`${JSON.stringify(result, null, 2)}\n`); process.exit(0); }
  },
  (err) => {
    const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    log(`failed: ${err?.stack ?? error}`);
    if (process.send) process.send({ ok: false, error }, () => process.exit(1));
    else process.exit(1);
  },
);
