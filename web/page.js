// The page's shared pieces: its elements, the token, /api calls, number and time formats, feeds.
// Untrusted text (topics, payloads, names) only ever goes into textContent.
// @ts-check

/**
 * The page's element with this id, of the type the script expects (index.html and the scripts go together).
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{ new (): T, name: string }} type
 * @returns {T}
 */
export function el(id, type) {
  const e = document.getElementById(id);
  if (!(e instanceof type)) throw new Error(`the page has no ${type.name} #${id}`);
  return e;
}

/** @param {string} id */
export const $ = (id) => el(id, HTMLElement);

// The token comes in the URL the CLI printed; keep it for this tab only and out of the address bar.
const params = new URLSearchParams(location.search);
export const token = params.get('token') ?? sessionStorage.getItem('aiot-sim-token');
if (token !== null && params.has('token')) {
  sessionStorage.setItem('aiot-sim-token', token);
  history.replaceState(null, '', location.pathname);
}

/**
 * An /api call with the token; the body as the caller says it is (the server's types are the contract).
 * @template T
 * @param {string} path
 * @param {RequestInit} [init]
 * @returns {Promise<T>}
 */
export async function api(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { ...init.headers, authorization: `Bearer ${token}` } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

/** @param {unknown} n */
export const fmt = (n) => (typeof n === 'number' ? n.toLocaleString('en') : '–');
/** @param {number | null | undefined} ms */
export const vtime = (ms) => (ms == null ? '–' : `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`);
/** @param {unknown} err */
export const messageOf = (err) => (err instanceof Error ? err.message : String(err));

const MAX_FEED = 200;

/**
 * Add a line on top of a feed (the newest MAX_FEED are kept).
 * @param {HTMLElement} list
 * @param {string} cls
 * @param {Array<[text: string, cls?: string]>} parts
 */
export function feedLine(list, cls, parts) {
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
