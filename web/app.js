// aiot-sim live monitor page: figures and charts from /ws, an event feed through /ws taps, and a
// device view (device.js) that reads and commands devices through /api and follows them over MQTT
// over WebSocket. Untrusted text (topics, payloads, names) only ever goes into textContent.
// The page's scripts are type-checked against the server's own types (tsconfig.web.json, part of
// `npm run typecheck`).
// @ts-check
import { bars, chart } from './charts.js';
import { connectMqtt, listDevices } from './device.js';
import { parseDeviceTopic, readDeviceMessage } from '/wire.js';
import { $, api, el, feedLine, fmt, messageOf, token, vtime } from './page.js';

/** @typedef {import('../src/monitor/protocol.js').ServerFrame} ServerFrame */
/** @typedef {import('../src/monitor/protocol.js').ClientFrame} ClientFrame */
/** @typedef {import('../src/monitor/protocol.js').MonitorStats} MonitorStats */
/** @typedef {import('../src/monitor/protocol.js').MessageFrame} MessageFrame */
/** @typedef {import('../src/monitor/source.js').MonitorInfo} MonitorInfo */

/**
 * @param {string} state
 * @param {string} text
 */
function setStatus(state, text) {
  const status = $('status');
  status.dataset['state'] = state;
  status.textContent = text;
}

// ---------------------------------------------------------------- charts (uPlot, x = virtual time)

const charts = {
  connections: chart($('chart-connections'), [{ label: 'devices online', stroke: '#ff6900' }, { label: 'MQTT clients', stroke: '#2563eb' }]),
  rates: chart($('chart-rates'), [{ label: 'in / s', stroke: '#16a34a' }, { label: 'out / s', stroke: '#9333ea' }]),
  // On a run's first day the three windows hold the same days and the lines coincide: MAU is a wide
  // pale band, WAU a dashed line over it, DAU a thin line on top, so each stays visible.
  users: chart($('chart-users'), [
    { label: 'MAU', stroke: 'rgba(8, 145, 178, 0.35)', width: 12 },
    { label: 'WAU', stroke: '#d97706', width: 3.5, dash: [12, 8] },
    { label: 'DAU', stroke: '#be123c', width: 1.5 },
  ]),
};
window.addEventListener('resize', () => Object.values(charts).forEach((c) => c.resize()));

/**
 * The fault windows so far, to shade on the time charts.
 * @param {MonitorStats['faults']} faults
 */
function faultBands(faults) {
  return (faults ?? []).map((f) => ({
    from: Date.parse(f.from), to: Date.parse(f.to),
    label: `${f.type}${f.region ? ` ${f.region}` : ''}, ${f.from.slice(11, 16)}–${f.to.slice(11, 16)} UTC, ${fmt(f.sessions)} sessions`,
  }));
}

let ticks = 0;
/** @param {MonitorStats} s */
function showStats(s) {
  ticks++;
  document.body.dataset.ticks = String(ticks);
  $('vtime').textContent = vtime(s.virtualTime);
  $('online').textContent = fmt(s.online);
  $('clients').textContent = fmt(s.clients);
  $('published').textContent = fmt(s.messages.published);
  $('rejected').textContent = fmt(s.messages.rejected);
  const faults = s.faults ?? [];
  const now = s.virtualTime;
  const running = now === null ? 0 : faults.filter((f) => Date.parse(f.from) <= now && now < Date.parse(f.to)).length;
  const over = now === null ? 0 : faults.filter((f) => Date.parse(f.to) <= now).length;
  $('faults').textContent = faults.length ? `${running ? `${running} now · ` : ''}${over} of ${faults.length} over` : 'none';
  $('rate').textContent = fmt(s.rates.publishedPerSecond);
  $('dau').textContent = fmt(s.activeUsers.dau);
  $('mau').textContent = fmt(s.activeUsers.mau);
  bars($('by-region'), s.byRegion);
  bars($('by-category'), s.byCategory);
  const { dau, wau, mau } = s.activeUsers;
  $('users-now').textContent = `DAU ${fmt(dau)} · WAU ${fmt(wau)} · MAU ${fmt(mau)}${dau === mau && mau > 0 ? ' (the same so far: every window holds the same days)' : ''}`;
  const x = (s.virtualTime ?? s.ts) / 1000;
  const bands = faultBands(s.faults);
  for (const c of Object.values(charts)) c.bands(bands);
  charts.connections.push(x, [s.online, s.clients]);
  charts.rates.push(x, [s.rates.publishedPerSecond, s.rates.deliveredPerSecond]);
  charts.users.push(x, [mau, wau, dau]);
}

// ---------------------------------------------------------------- /ws: figures and the event feed

/** @type {WebSocket | null} */
let ws = null;
/** @type {string[]} */
let filters = [];
let paused = false;
let missed = 0;

/**
 * The virtual time a message carries: a device message's (either wire profile), or another JSON
 * payload's `ts` (app sessions).
 * @param {string} topic
 * @param {string} payload
 * @returns {number | undefined}
 */
function eventTime(topic, payload) {
  const t = parseDeviceTopic(topic);
  if (t) {
    const m = readDeviceMessage(t, payload);
    return 'ts' in m ? m.ts : undefined;
  }
  try {
    const body = JSON.parse(payload);
    return typeof body?.ts === 'number' ? body.ts : undefined;
  } catch {
    return undefined; // not JSON: shown as is
  }
}

/** @param {MessageFrame} m */
function onTap(m) {
  if (paused) {
    missed++;
    return;
  }
  const ts = eventTime(m.topic, m.payload);
  const when = ts === undefined ? new Date(m.ts).toISOString().slice(11, 19) : vtime(ts).slice(11, 19);
  feedLine($('feed'), '', [[when, 'time'], [m.topic, 'topic'], [m.payload.length > 300 ? `${m.payload.slice(0, 300)}…` : m.payload, 'payload']]);
}

/** @param {ClientFrame} frame */
function send(frame) {
  ws?.send(JSON.stringify(frame));
}

/**
 * @param {string} tok
 * @param {number} attempt
 */
function connect(tok, attempt = 0) {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws?token=${encodeURIComponent(tok)}`;
  ws = new WebSocket(url);
  ws.onopen = () => {
    setStatus('live', 'live');
    attempt = 0;
    if (filters.length) send({ type: 'subscribe', topics: filters });
  };
  ws.onmessage = (ev) => {
    /** @type {ServerFrame} */
    const f = JSON.parse(ev.data);
    switch (f.type) {
      case 'snapshot': showStats(f.data.stats); break;
      case 'stats': showStats(f); break;
      case 'message': onTap(f); break;
      case 'dropped': feedLine($('feed'), 'dropped', [[`${fmt(f.count)} messages dropped (too fast for this page; ${fmt(f.total)} in all)`]]); break;
      case 'subscribed': $('feed-info').className = 'hint'; $('feed-info').textContent = `tapping ${f.topics.join(', ')}`; break;
      case 'error': $('feed-info').className = 'hint error'; $('feed-info').textContent = f.message; break;
      case 'fault': feedLine($('feed'), 'fault', [[vtime(f.ts), 'time'], [`fault ${f.record.type} ${f.phase === 'start' ? 'starts' : 'ends'}`], [`${fmt(f.record.sessions)} sessions${f.record.region ? `, region ${f.record.region}` : ''}`]]); break;
      default: break;
    }
  };
  ws.onclose = () => {
    setStatus('closed', 'disconnected, retrying…');
    setTimeout(() => connect(tok, attempt + 1), Math.min(10_000, 1000 * 2 ** attempt));
  };
}
setInterval(() => { if (ws?.readyState === WebSocket.OPEN) send({ type: 'ping' }); }, 20_000);

const feedFilter = el('feed-filter', HTMLInputElement);
el('feed-form', HTMLFormElement).addEventListener('submit', (ev) => {
  ev.preventDefault();
  const next = feedFilter.value.split(/[\s,]+/).filter(Boolean);
  if (ws?.readyState !== WebSocket.OPEN) return;
  if (filters.length) send({ type: 'unsubscribe', topics: filters });
  filters = next;
  if (filters.length) send({ type: 'subscribe', topics: filters });
  else $('feed-info').textContent = 'not tapping';
});
$('feed-pause').addEventListener('click', () => {
  paused = !paused;
  $('feed-pause').textContent = paused ? 'Resume' : 'Pause';
  if (!paused && missed) feedLine($('feed'), 'dropped', [[`${fmt(missed)} messages not shown while paused`]]);
  missed = 0;
});

// ---------------------------------------------------------------- start

async function main() {
  if (!token) {
    setStatus('error', 'no token: open the address aiot-sim printed (…/?token=…)');
    return;
  }
  /** @type {MonitorInfo} */
  let info;
  try {
    info = await api('/api/info');
  } catch (err) {
    setStatus('error', `cannot read /api/info: ${messageOf(err)}`);
    return;
  }
  $('title').textContent = info.title;
  document.title = `${info.title} – aiot-sim monitor`;
  filters = feedFilter.value.split(/[\s,]+/).filter(Boolean);
  connect(token);
  if (info.mqttWs) connectMqtt(info.mqttWs, token);
  await listDevices(info.devices);
}
main();
