// Charts over virtual time (uPlot, loaded by index.html as the global `uPlot`) and bar tables.
// @ts-check
import { fmt } from './page.js';

const MAX_POINTS = 600;

/**
 * A line chart over virtual time.
 * @param {HTMLElement} box
 * @param {Array<[label: string, stroke: string]>} series
 */
export function chart(box, series) {
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
