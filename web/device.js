// The device view: search the devices by did, model or home and pick one, read its properties
// through /api (get_properties via the broker), set a writable one (set_properties), and follow
// what it reports on the page's own MQTT-over-WebSocket connection to the broker (it watches,
// never publishes). It logs in as the operator with the page's token, which is the operator's in
// `run` and `serve`, so it works with `--anonymous none`; refused (another token), it watches as
// an anonymous client.
// @ts-check
import mqtt from '/vendor/mqtt.esm.js';
import { deviceFilters, parseDeviceTopic, readDeviceMessage } from '/wire.js';
import { $, api, el, feedLine, messageOf } from './page.js';

/** @typedef {import('../src/monitor/source.js').DeviceSummary} DeviceSummary */
/** @typedef {import('../src/monitor/source.js').DeviceReading} DeviceReading */
/** @typedef {import('../src/monitor/source.js').PropertyInfo} PropertyInfo */
/** @typedef {import('../src/contract/wire.js').RpcResponse} RpcResponse */
/** @typedef {import('/vendor/mqtt.esm.js').MqttClient} MqttClient */

/** @type {MqttClient | null} */
let mqttClient = null;
/** @type {DeviceReading | null} the device shown */
let current = null;

/**
 * Follow the shown device over MQTT over WebSocket.
 * @param {string} url the broker's, from /api/info
 * @param {string | null} token the page's token: tried as the operator's password first
 */
export function connectMqtt(url, token) {
  const u = new URL(url);
  if (u.hostname === '0.0.0.0' || u.hostname === '[::]') u.hostname = location.hostname;
  const status = $('mqtt-status');
  /** @type {import('/vendor/mqtt.esm.js').IClientOptions} */
  const opts = { protocolVersion: 4, clientId: `aiot-sim-dashboard-${Math.random().toString(16).slice(2, 10)}`, reconnectPeriod: 5000, clean: true };
  const login = token !== null;
  const client = mqtt.connect(u.toString(), login ? { ...opts, username: 'operator', password: token } : opts);
  mqttClient = client;
  // Not the operator's token (a monitor started with its own): watch anonymously instead.
  client.on('error', (err) => {
    const code = /** @type {{ code?: unknown }} */ (err).code;
    if (login && (code === 4 || code === 5) && mqttClient === client) {
      client.end(true);
      connectMqtt(url, null);
    }
  });
  client.on('connect', () => {
    status.dataset['state'] = 'connected';
    status.textContent = `MQTT over WebSocket: connected to ${u}`;
    if (current) client.subscribe(deviceFilters(current.did));
  });
  client.on('close', () => { status.dataset['state'] = 'closed'; status.textContent = 'MQTT over WebSocket: disconnected'; });
  client.on('error', (err) => { status.dataset['state'] = 'error'; status.textContent = `MQTT over WebSocket: ${err.message}`; });
  client.on('message', (topic, payload) => {
    // Either wire profile: the cloud push (device/{did}/...) or the central hub (appMsg/notify/iot/{did}/...).
    const t = parseDeviceTopic(topic);
    if (!current || t?.did !== current.did) return;
    const text = payload.toString();
    feedLine($('device-live'), '', [[topic.slice(topic.indexOf(`/${t.did}/`) + t.did.length + 2), 'topic'], [text]]);
    const m = readDeviceMessage(t, text);
    if ('problem' in m) return;
    if (m.kind === 'properties_changed') setValue(`${m.siid}.${m.piid}`, m.value, true);
    if (m.kind === 'state') $('device-info').dataset['state'] = String(m.event);
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
const search = el('device-search', HTMLInputElement);
const results = $('device-results');
/** Devices shown as results at most (the count says how many match). */
const MAX_RESULTS = 8;
/** @type {DeviceSummary[]} every device, from /api/devices */
let devices = [];

/** @param {DeviceSummary} d what a search looks in */
const searchTokens = (d) => [d.did, d.model, ...d.name.split(/\s+/), d.category, d.home ?? '', d.region ?? '', d.parentId ?? ''].map((t) => t.toLowerCase());

/**
 * The devices matching every word of the search (in their did, model, name, category, home or
 * region), those matching words exactly first ("home-1" before home-12's devices).
 * @param {string[]} words
 */
function matches(words) {
  if (!words.length) return devices;
  const scored = [];
  for (const d of devices) {
    const tokens = searchTokens(d);
    if (!words.every((w) => tokens.some((t) => t.includes(w)))) continue;
    scored.push({ d, exact: words.filter((w) => tokens.includes(w)).length });
  }
  return scored.sort((a, b) => b.exact - a.exact).map((x) => x.d);
}

/** Show the devices matching the search, the chosen one marked. */
function showResults() {
  const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
  const matching = matches(words);
  const items = matching.slice(0, MAX_RESULTS).map((d) => {
    const li = document.createElement('li');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.dataset['did'] = d.did;
    if (current?.did === d.did) btn.setAttribute('aria-current', 'true');
    const what = document.createElement('span');
    what.className = 'what';
    what.textContent = `${d.category} · ${d.name}`;
    const where = document.createElement('span');
    where.className = 'where';
    where.textContent = `${d.did}${d.home ? ` · ${d.home}${d.region ? ` (${d.region})` : ''}` : ''}`;
    btn.append(what, where);
    btn.addEventListener('click', () => loadDevice(d.did));
    li.append(btn);
    return li;
  });
  results.replaceChildren(...items);
  const count = $('device-count');
  count.dataset['matching'] = String(matching.length);
  count.textContent = words.length
    ? `${matching.length} of ${devices.length} devices match${matching.length > MAX_RESULTS ? `, the first ${MAX_RESULTS} shown` : ''}`
    : `${devices.length} devices${devices.length > MAX_RESULTS ? `, the first ${MAX_RESULTS} shown` : ''}: search by did, model or home, then pick one`;
}

/** @param {string} did */
async function loadDevice(did) {
  if (mqttClient?.connected && current) mqttClient.unsubscribe(deviceFilters(current.did));
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
    $('device-info').textContent = `${d.name} (${d.model}), ${d.category}${d.parentId ? `, behind ${d.parentId}` : ''}${d.home ? `, ${d.home}${d.region ? ` (${d.region})` : ''}` : ''}, owner ${d.uid}`;
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
    if (mqttClient?.connected) mqttClient.subscribe(deviceFilters(d.did));
    showResults();
  } catch (err) {
    $('device-info').textContent = messageOf(err);
  }
}

search.addEventListener('input', () => showResults());
// Enter opens the first match.
search.addEventListener('keydown', (ev) => {
  if (ev.key !== 'Enter') return;
  const first = results.querySelector('button[data-did]');
  if (first instanceof HTMLButtonElement) loadDevice(first.dataset['did'] ?? '');
});
$('device-refresh').addEventListener('click', () => { if (current) loadDevice(current.did); });

/**
 * Load the devices to search (a simulation), or say there are none (`aiot-sim serve`).
 * @param {boolean} any whether /api/info said there are any
 */
export async function listDevices(any) {
  if (!any) {
    search.disabled = true;
    $('device-info').textContent = 'no simulated devices here (aiot-sim serve)';
    return;
  }
  /** @type {DeviceSummary[]} */
  const list = await api('/api/devices');
  list.sort((a, b) => (a.home ?? '').localeCompare(b.home ?? '', 'en', { numeric: true }) || a.category.localeCompare(b.category) || a.did.localeCompare(b.did));
  devices = list;
  showResults();
}
