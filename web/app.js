// aiot-sim live monitor page: figures and charts from /ws, an event feed through /ws taps, and a
// device view that reads and commands devices through /api and follows them over MQTT over WebSocket.
// Untrusted text (topics, payloads, names) only ever goes into textContent.
// Type-checked against the server's own types (tsconfig.web.json, part of `npm run typecheck`).
// @ts-check
import mqtt from '/vendor/mqtt.esm.js';

/** @typedef {import('../src/monitor/protocol.js').ServerFrame} ServerFrame */
/** @typedef {import('../src/monitor/protocol.js').ClientFrame} ClientFrame */
/** @typedef {import('../src/monitor/protocol.js').MonitorStats} MonitorStats */
/** @typedef {import('../src/monitor/protocol.js').MessageFrame} MessageFrame */
/** @typedef {import('../src/monitor/source.js').MonitorInfo} MonitorInfo */
/** @typedef {import('../src/monitor/source.js').DeviceSummary} DeviceSummary */
/** @typedef {import('../src/monitor/source.js').DeviceReading} DeviceReading */
/** @typedef {import('../src/monitor/source.js').PropertyInfo} PropertyInfo */
/** @typedef {import('../src/contract/wire.js').RpcResponse} RpcResponse */
/** @typedef {import('/vendor/mqtt.esm.js').MqttClient} MqttClient */

/**
 * The page's element with this id, of the type the script expects (index.html and this file go together).
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{ new (): T, name: string }} type
 * @returns {T}
 */
function el(id, type) {
  const e = document.getElementById(id);
  if (!(e instanceof type)) throw new Error(`the page has no ${type.name} #${id}`);
  return e;
}
/** @param {string} id */
const $ = (id) => el(id, HTMLElement);
const MAX_POINTS = 600;
const MAX_FEED = 200;

// The token comes in the URL the CLI printed; keep it for this tab only and out of the address bar.
const params = new URLSearchParams(location.search);
const token = params.get('token') ?? sessionStorage.getItem('aiot-sim-token');
if (token !== null && params.has('token')) {
  sessionStorage.setItem('aiot-sim-token', token);
  history.replaceState(null, '', location.pathname);
}

/**
 * @param {string} state
 * @param {string} text
 */
function setStatus(state, text) {
  const status = $('status');
  status.dataset['state'] = state;
  status.textContent = text;
}

/**
 * An /api call with the token; the body as the caller says it is (the server's types are the contract).
 * @template T
 * @param {string} path
 * @param {RequestInit} [init]
 * @returns {Promise<T>}
 */
async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { ...init.headers, authorization: `Bearer ${token}` } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

/** @param {unknown} n */
const fmt = (n) => (typeof n === 'number' ? n.toLocaleString('en') : '–');
/** @param {number | null | undefined} ms */
const vtime = (ms) => (ms == null ? '–' : `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`);
/** @param {unknown} err */
const messageOf = (err) => (err instanceof Error ? err.message : String(err));

// ---------------------------------------------------------------- charts (uPlot, x = virtual time)

/**
 * A line chart over virtual time.
 * @param {HTMLElement} box
 * @param {Array<[label: string, stroke: string]>} series
 */
function chart(box, series) {
  /** @type {[x: number[], ...y: number[][]]} */
  const data = [[], ...series.map(() => [])];
  const plot = new uPlot({
    width: Math.max(300, box.clientWidth), height: 200,
    scales: { x: { time: true } },
    series: [{ label: 'virtual time' }, ...series.map(([label, stroke]) => ({ label, stroke, width: 2 }))],
    axes: [{}, { size: 60 }],
    legend: { live: false },
  }, data, box);
  return {
    plot,
    /**
     * @param {number} x
     * @param {number[]} values
     */
    push(x, values) {
      const xs = data[0];
      const last = xs.at(-1);
      if (last !== undefined && x <= last) {
        // The virtual clock did not move (or went back after a restart): replace the last point.
        if (x < last) for (const d of data) d.length = 0;
        else for (const d of data) d.pop();
      }
      xs.push(x);
      values.forEach((v, i) => data[i + 1]?.push(v));
      if (xs.length > MAX_POINTS) for (const d of data) d.shift();
      plot.setData(data);
    },
    resize() { plot.setSize({ width: Math.max(300, box.clientWidth), height: 200 }); },
  };
}

const charts = {
  connections: chart($('chart-connections'), [['devices online', '#ff6900'], ['MQTT clients', '#2563eb']]),
  rates: chart($('chart-rates'), [['in / s', '#16a34a'], ['out / s', '#9333ea']]),
  users: chart($('chart-users'), [['DAU', '#dc2626'], ['WAU', '#f59e0b'], ['MAU', '#0891b2']]),
};
window.addEventListener('resize', () => Object.values(charts).forEach((c) => c.resize()));

/**
 * @param {HTMLElement} table
 * @param {Record<string, number>} counts
 */
function bars(table, counts) {
  const entries = Object.entries(counts ?? {}).sort((a, b) => b[1] - a[1]);
  const max = Math.max(1, ...entries.map(([, v]) => v));
  const rows = entries.map(([k, v]) => {
    const tr = document.createElement('tr');
    const name = document.createElement('td');
    name.textContent = k;
    const n = document.createElement('td');
    n.textContent = fmt(v);
    const bar = document.createElement('td');
    bar.className = 'bar';
    const span = document.createElement('span');
    span.style.width = `${(100 * v) / max}%`;
    bar.append(span);
    tr.append(name, n, bar);
    return tr;
  });
  table.replaceChildren(...rows);
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
  $('faults').textContent = faults.length ? `${running} / ${faults.length}` : '0';
  $('rate').textContent = fmt(s.rates.publishedPerSecond);
  $('dau').textContent = fmt(s.activeUsers.dau);
  $('mau').textContent = fmt(s.activeUsers.mau);
  bars($('by-region'), s.byRegion);
  bars($('by-category'), s.byCategory);
  const x = (s.virtualTime ?? s.ts) / 1000;
  charts.connections.push(x, [s.online, s.clients]);
  charts.rates.push(x, [s.rates.publishedPerSecond, s.rates.deliveredPerSecond]);
  charts.users.push(x, [s.activeUsers.dau, s.activeUsers.wau, s.activeUsers.mau]);
}

// ---------------------------------------------------------------- /ws: figures and the event feed

/** @type {WebSocket | null} */
let ws = null;
/** @type {string[]} */
let filters = [];
let paused = false;
let missed = 0;

/**
 * @param {HTMLElement} list
 * @param {string} cls
 * @param {Array<[text: string, cls?: string]>} parts
 */
function feedLine(list, cls, parts) {
  const li = document.createElement('li');
  if (cls) li.className = cls;
  for (const [text, c] of parts) {
    const span = document.createElement('span');
    if (c) span.className = c;
    span.textContent = text;
    li.append(span, ' ');
  }
  list.prepend(li);
  while (list.children.length > MAX_FEED) list.lastElementChild?.remove();
}

/** @param {MessageFrame} m */
function onTap(m) {
  if (paused) {
    missed++;
    return;
  }
  let when = new Date(m.ts).toISOString().slice(11, 19);
  try {
    const body = JSON.parse(m.payload);
    if (typeof body.ts === 'number') when = vtime(body.ts).slice(11, 19);
  } catch { /* not JSON: shown as is */ }
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

// ---------------------------------------------------------------- device view

/** @type {MqttClient | null} */
let mqttClient = null;
/** @type {DeviceReading | null} the device shown */
let current = null;

/** @param {string} url */
function connectMqtt(url) {
  const u = new URL(url);
  if (u.hostname === '0.0.0.0' || u.hostname === '[::]') u.hostname = location.hostname;
  const status = $('mqtt-status');
  // An anonymous observer: it may watch device topics, never publish to them.
  const client = mqtt.connect(u.toString(), {
    protocolVersion: 4, clientId: `aiot-sim-dashboard-${Math.random().toString(16).slice(2, 10)}`, reconnectPeriod: 5000, clean: true,
  });
  mqttClient = client;
  client.on('connect', () => {
    status.dataset['state'] = 'connected';
    status.textContent = `MQTT over WebSocket: connected to ${u}`;
    if (current) client.subscribe([`device/${current.did}/up/#`, `device/${current.did}/state`]);
  });
  client.on('close', () => { status.dataset['state'] = 'closed'; status.textContent = 'MQTT over WebSocket: disconnected'; });
  client.on('error', (err) => { status.dataset['state'] = 'error'; status.textContent = `MQTT over WebSocket: ${err.message}`; });
  client.on('message', (topic, payload) => {
    if (!current || !topic.startsWith(`device/${current.did}/`)) return;
    const text = payload.toString();
    feedLine($('device-live'), '', [[topic.slice(`device/${current.did}/`.length), 'topic'], [text]]);
    let body;
    try { body = JSON.parse(text); } catch { return; }
    if (topic.includes('/up/properties_changed/')) setValue(`${body.siid}.${body.piid}`, body.value, true);
    if (topic.endsWith('/state')) $('device-info').dataset['state'] = body.event;
  });
}

/**
 * @param {string} key `siid.piid`
 * @param {unknown} value
 * @param {boolean} changed
 */
function setValue(key, value, changed) {
  const row = document.querySelector(`#props tr[data-key="${CSS.escape(key)}"]`);
  const cell = row?.querySelector('td.value');
  if (!row || !(cell instanceof HTMLElement)) return;
  cell.textContent = value === undefined ? '–' : String(value);
  cell.dataset['value'] = JSON.stringify(value ?? null);
  if (changed) {
    row.classList.add('changed');
    setTimeout(() => row.classList.remove('changed'), 1500);
  }
}

/**
 * @param {PropertyInfo} p
 * @returns {HTMLInputElement | HTMLSelectElement}
 */
function editor(p) {
  let input;
  if (p.format === 'bool') {
    input = document.createElement('select');
    for (const v of ['true', 'false']) input.append(new Option(v, v));
  } else if (p.values) {
    input = document.createElement('select');
    for (const v of p.values) input.append(new Option(`${v.value} ${v.description}`, String(v.value)));
  } else {
    input = document.createElement('input');
    if (p.format === 'string') input.type = 'text';
    else {
      input.type = 'number';
      if (p.range) { input.min = String(p.range[0]); input.max = String(p.range[1]); input.step = String(p.range[2]); }
      else if (p.format === 'float') input.step = 'any';
    }
  }
  input.setAttribute('aria-label', `new value of ${p.name}`);
  return input;
}

/**
 * @param {PropertyInfo} p
 * @param {HTMLInputElement | HTMLSelectElement} input
 */
function parseInput(p, input) {
  if (p.format === 'bool') return input.value === 'true';
  if (p.format === 'string') return input.value;
  return Number(input.value);
}

/**
 * @param {string} did
 * @param {PropertyInfo} p
 * @param {HTMLInputElement | HTMLSelectElement} input
 */
async function setProperty(did, p, input) {
  const value = parseInput(p, input);
  const result = $('device-result');
  result.className = 'hint';
  result.textContent = `setting ${p.name} to ${JSON.stringify(value)}…`;
  try {
    /** @type {RpcResponse} */
    const res = await api(`/api/devices/${encodeURIComponent(did)}/rpc`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ method: 'set_properties', params: [{ did, siid: p.siid, piid: p.piid, value }] }),
    });
    if ('error' in res) throw new Error(res.error.message);
    const r = Array.isArray(res.result) ? res.result[0] : undefined;
    if (!r) throw new Error('no result');
    result.className = r.code === 0 || r.code === 1 ? 'hint' : 'hint error';
    result.textContent = `${p.name} := ${JSON.stringify(value)}: code ${r.code}${r.code === 0 ? ' (ok)' : ''}`;
    result.dataset['code'] = String(r.code);
    if (r.code === 0) setValue(`${p.siid}.${p.piid}`, value, true);
  } catch (err) {
    result.className = 'hint error';
    result.textContent = `set ${p.name}: ${messageOf(err)}`;
  }
}

const props = el('props', HTMLTableElement);
const propRows = () => /** @type {HTMLTableSectionElement} */ (props.tBodies[0]);
const deviceSelect = el('device-select', HTMLSelectElement);

/** @param {string} did */
async function loadDevice(did) {
  if (mqttClient?.connected && current) mqttClient.unsubscribe([`device/${current.did}/up/#`, `device/${current.did}/state`]);
  current = null;
  propRows().replaceChildren();
  $('device-live').replaceChildren();
  $('device-result').textContent = '';
  if (!did) return;
  $('device-info').textContent = 'reading…';
  try {
    /** @type {DeviceReading} */
    const d = await api(`/api/devices/${encodeURIComponent(did)}`);
    current = d;
    $('device-info').textContent = `${d.name} (${d.model}), ${d.category}${d.parentId ? `, behind ${d.parentId}` : ''}, owner ${d.uid}`;
    const rows = d.properties.map((p) => {
      const tr = document.createElement('tr');
      tr.dataset.key = `${p.siid}.${p.piid}`;
      const name = document.createElement('td');
      name.textContent = `${p.service}.${p.name}${p.unit && p.unit !== 'none' ? ` (${p.unit})` : ''}`;
      name.title = `siid ${p.siid}, piid ${p.piid}, ${p.format}, ${p.access.join('/')}`;
      const value = document.createElement('td');
      value.className = 'value';
      const set = document.createElement('td');
      if (p.access.includes('write')) {
        const input = editor(p);
        const btn = document.createElement('button');
        btn.type = 'button';
        btn.textContent = 'Set';
        btn.addEventListener('click', () => setProperty(d.did, p, input));
        set.append(input, ' ', btn);
      }
      tr.append(name, value, set);
      return tr;
    });
    propRows().replaceChildren(...rows);
    for (const [key, v] of Object.entries(d.values)) setValue(key, v.code === 0 ? v.value : `code ${v.code}`, false);
    for (const p of d.properties) {
      const v = d.values[`${p.siid}.${p.piid}`];
      const input = document.querySelector(`#props tr[data-key="${p.siid}.${p.piid}"] select, #props tr[data-key="${p.siid}.${p.piid}"] input`);
      if ((input instanceof HTMLInputElement || input instanceof HTMLSelectElement) && v?.code === 0) input.value = String(v.value);
    }
    if (mqttClient?.connected) mqttClient.subscribe([`device/${d.did}/up/#`, `device/${d.did}/state`]);
  } catch (err) {
    $('device-info').textContent = messageOf(err);
  }
}

deviceSelect.addEventListener('change', () => loadDevice(deviceSelect.value));
$('device-refresh').addEventListener('click', () => loadDevice(deviceSelect.value));

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
  if (info.mqttWs) connectMqtt(info.mqttWs);
  if (info.devices) {
    /** @type {DeviceSummary[]} */
    const list = await api('/api/devices');
    list.sort((a, b) => a.category.localeCompare(b.category) || a.did.localeCompare(b.did));
    for (const d of list) deviceSelect.append(new Option(`${d.category} · ${d.name} · ${d.did}`, d.did));
  } else {
    deviceSelect.disabled = true;
    $('device-info').textContent = 'no simulated devices here (aiot-sim serve)';
  }
}
main();
