// Charts over virtual time (uPlot, loaded by index.html as the global `uPlot`) and bar tables.
// @ts-check
import { fmt } from './page.js';

const MAX_POINTS = 600;
/** A time axis spans at least this much virtual time (seconds), from the first point on. */
const MIN_SPAN_S = 60;
const HEIGHT = 200;

/**
 * How one line looks: MAU, WAU and DAU coincide on a run's first day, so the chart of the three
 * draws them as a wide pale band, a dashed line and a thin line on top, all three visible at once.
 * @typedef {{ label: string, stroke: string, width?: number, dash?: number[] }} LineStyle
 */

/**
 * A shaded span of the time axis (a scenario fault), in epoch ms.
 * @typedef {{ from: number, to: number, label: string }} Band
 */

/** @param {HTMLElement} box */
const widthOf = (box) => Math.max(200, box.clientWidth);

/**
 * Axis labels in UTC (the virtual time the header shows): times, and the date where it changes.
 * @param {number[]} splits seconds
 * @param {number} incr seconds between splits
 */
function timeLabels(splits, incr) {
  return splits.map((s, i) => {
    const iso = new Date(s * 1000).toISOString();
    const day = iso.slice(5, 10);
    if (incr >= 86_400) return day;
    const time = incr < 60 ? iso.slice(11, 19) : iso.slice(11, 16);
    const prev = i > 0 ? new Date((splits[i - 1] ?? s) * 1000).toISOString().slice(5, 10) : null;
    return prev === day ? time : `${time}\n${day}`;
  });
}

/**
 * The time axis: from the first point to the last, at least MIN_SPAN_S.
 * @param {number[]} xs
 * @returns {[number, number]}
 */
function xRange(xs) {
  const first = xs[0];
  if (first === undefined) return [0, MIN_SPAN_S];
  return [first, Math.max(xs.at(-1) ?? first, first + MIN_SPAN_S)];
}

/**
 * Shade each fault band over a chart's plot area, clipped to the axis.
 * @param {uPlot} u
 * @param {HTMLElement} layer the element holding one `.fault-band` per band
 * @param {Band[]} bands
 */
function placeBands(u, layer, bands) {
  const width = u.under.clientWidth;
  // One element per band, kept across redraws (only their place changes as the axis grows).
  while (layer.children.length > bands.length) layer.lastElementChild?.remove();
  bands.forEach((b, i) => {
    let el = /** @type {HTMLElement | undefined} */ (layer.children[i]);
    if (!el) {
      el = document.createElement('div');
      el.className = 'fault-band';
      el.append(document.createElement('span'));
      layer.append(el);
    }
    const left = Math.max(0, u.valToPos(b.from / 1000, 'x'));
    const right = Math.min(width, u.valToPos(b.to / 1000, 'x'));
    el.hidden = !(right > left);
    el.style.left = `${left}px`;
    el.style.width = `${Math.max(2, right - left)}px`;
    el.title = b.label;
    el.dataset['from'] = String(b.from);
    el.dataset['to'] = String(b.to);
    const tag = /** @type {HTMLElement} */ (el.firstElementChild);
    tag.textContent = right - left > 48 ? (b.label.split(',')[0] ?? '') : '';
  });
}

/**
 * A line chart over virtual time: the axis runs from the first point (at least MIN_SPAN_S), the
 * values from 0; fault windows are shaded behind the lines (`.fault-band` elements).
 * @param {HTMLElement} box
 * @param {LineStyle[]} lines
 */
export function chart(box, lines) {
  /** @type {[x: number[], ...y: number[][]]} */
  const data = [[], ...lines.map(() => [])];
  /** @type {Band[]} */
  let bands = [];
  const layer = document.createElement('div');
  layer.className = 'fault-bands';
  const plot = new uPlot({
    width: widthOf(box), height: HEIGHT,
    // Split the time axis at UTC hours and midnights, as the labels read.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    scales: {
      // From the data, not from uPlot's guess: with one point it pads the axis by 1,000 days.
      x: { time: true, range: () => xRange(data[0]) },
      y: { range: (_u, _min, max) => [0, max != null && max > 0 ? max * 1.1 : 1] },
    },
    series: [
      { label: 'virtual time (UTC)' },
      ...lines.map((l) => ({
        label: l.label, stroke: l.stroke, width: l.width ?? 2, ...(l.dash ? { dash: l.dash } : {}),
        // A wide band shows no points (they would be blobs); the lines on it show theirs.
        ...((l.width ?? 2) > 6 ? { points: { show: false } } : {}),
      })),
    ],
    axes: [
      { values: (_u, splits, _axis, _space, incr) => timeLabels(splits, incr), space: 60 },
      { size: 56, values: (_u, splits) => splits.map((v) => fmt(v)) },
    ],
    // Room on the right for the last time label; the legend names the lines (the figures above give the values).
    padding: [12, 24, 0, 0],
    legend: { live: false },
    hooks: { draw: [(u) => placeBands(u, layer, bands)] },
  }, data, box);
  plot.under.append(layer);

  return {
    plot,
    /**
     * @param {number} x virtual time, seconds
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
      // The time axis's span, in virtual epoch ms (for tests and tools reading the page).
      const [from, to] = xRange(xs);
      box.dataset['xFrom'] = String(Math.round(from * 1000));
      box.dataset['xTo'] = String(Math.round(to * 1000));
    },
    /** @param {Band[]} next the fault windows to shade */
    bands(next) {
      const key = (/** @type {Band[]} */ l) => l.map((b) => `${b.from}-${b.to}-${b.label}`).join('|');
      if (key(next) === key(bands)) return;
      bands = next;
      placeBands(plot, layer, bands);
    },
    resize() { plot.setSize({ width: widthOf(box), height: HEIGHT }); },
  };
}

/**
 * A table of counts with bars, largest first.
 * @param {HTMLElement} table
 * @param {Record<string, number>} counts
 */
export function bars(table, counts) {
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
