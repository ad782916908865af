/**
 * The dashboard end to end in headless Chromium (Debian's `chromium`, driven by playwright-core):
 * the page loads from the package, its figures and charts follow the simulation, the event feed
 * taps /ws, and a set_properties sent from the page changes the device (checked on the device
 * itself) while the page's MQTT-over-WebSocket client sees the change the device reports.
 *
 * Then how it reads, on a scenario with faults, on a desktop and on a phone: time axes from the
 * first point, DAU/WAU/MAU distinguishable where they coincide, fault windows shaded, the
 * breakdown filling its row, the device search, no sideways scrolling on a phone. Screenshots go
 * to test-artifacts/dashboard/ (git-ignored) for a person to look at.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MonitorServer } from '../../src/monitor/server.js';
import { monitorShardedSimulation, monitorSimulation } from '../../src/monitor/simulation.js';
import { createShardedSimulation } from '../../src/sim/sharded.js';
import { createSimulation, type Simulation } from '../../src/sim/simulation.js';
import { PACKAGE_DIR } from '../helpers/cli.js';
import { until } from '../helpers/mqtt.js';
import { reduced, tinyScenario } from '../helpers/scenario.js';

const CHROMIUM = '/usr/bin/chromium';
const LIGHT = 'yeelink.light.mono6';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];
/** The little of a canvas the pixel check reads (the tests compile without the DOM's types). */
interface Canvas { width: number; height: number; getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } }
/** Where the screenshots are kept (git-ignored). */
const ARTIFACTS = join(PACKAGE_DIR, 'test-artifacts', 'dashboard');

let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install the Debian package chromium (npm test's pretest step does, as root or with sudo)`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
}, 60_000);
afterAll(async () => { await browser?.close(); });

/** Poll the page (bounded) until `cond` holds. */
async function pageUntilOn(what: string, cond: () => Promise<boolean>, problems: string[], ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; problems: ${problems.join('; ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A new page that records its errors in `problems`. */
async function openPage(viewport: { width: number; height: number }, problems: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`); });
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()}`));
  return page;
}

describe('dashboard in headless Chromium', () => {
  let sim: Simulation;
  let monitor: MonitorServer;
  let page: Page;
  const problems: string[] = [];

  beforeAll(async () => {
    sim = await createSimulation({
      scenario: tinyScenario({ homes: 4, mix: { [LIGHT]: 1, 'lumi.sensor_motion.v2': 1, speaker: 1 }, devicesPerHome: { '4': 1 }, regions: { es: 1, cn: 1 } }),
      speed: 'manual', broker: { mqttPort: 0, wsPort: 0 },
    });
    monitor = await monitorSimulation(sim, { port: 0, statsIntervalMs: 200 });
    page = await openPage({ width: 1280, height: 720 }, problems);
  }, 60_000);

  afterAll(async () => {
    await page?.close();
    await monitor?.stop();
    await sim?.stop();
  });

  const text = (sel: string): Promise<string> => page.locator(sel).innerText();
  const num = async (sel: string): Promise<number> => Number((await text(sel)).replace(/,/g, ''));
  const pageUntil = (what: string, cond: () => Promise<boolean>, ms = 10_000): Promise<void> => pageUntilOn(what, cond, problems, ms);

  it('loads with the token, shows the live figures and follows the virtual clock', async () => {
    await page.goto(monitor.dashboardUrl);
    await page.locator('#status[data-state="live"]').waitFor({ timeout: 15_000 });
    expect(new URL(page.url()).search).toBe(''); // the token left the address bar
    await until(() => sim.snapshot().connections.online === sim.population.devices.length, 10_000, 'every device online');
    await pageUntil('the page to show every device online', async () => (await num('#online')) === sim.population.devices.length);
    expect(await text('#title')).toBe('integration');
    expect(await page.locator('.uplot').count()).toBe(3);
    expect(await page.locator('#by-region tr').count()).toBe(Object.keys(sim.snapshot().connections.byRegion).length);

    const published = await num('#published');
    const vt = await text('#vtime');
    const ticks = Number(await page.locator('body').getAttribute('data-ticks'));
    await sim.advance(3 * 3600_000);
    await pageUntil('more messages on the page', async () => (await num('#published')) > published);
    const shown = `${new Date(sim.scheduler.now()).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
    expect(shown).not.toBe(vt);
    await pageUntil(`the page to show virtual time ${shown}`, async () => (await text('#vtime')) === shown);
    expect(Number(await page.locator('body').getAttribute('data-ticks'))).toBeGreaterThan(ticks);
    expect(problems).toEqual([]);
  });

  it('taps device messages into the live feed with the filters typed on the page', async () => {
    await page.locator('#feed-filter').fill('device/+/up/properties_changed/#');
    await page.locator('#feed-form button[type="submit"]').click();
    await page.locator('#feed-info', { hasText: 'tapping device/+/up/properties_changed/#' }).waitFor({ timeout: 10_000 });
    const before = await page.locator('#feed li').count();
    await sim.advance(2 * 3600_000);
    await pageUntil('tapped messages in the feed', async () => (await page.locator('#feed li').count()) > before);
    const topics = await page.locator('#feed li .topic').allInnerTexts();
    expect(topics.length).toBeGreaterThan(0);
    for (const t of topics.slice(0, topics.length - before)) expect(t).toMatch(/^device\/[^/]+\/up\/properties_changed\//);
    expect(problems).toEqual([]);
  });

  it('shows a device, and a set_properties from the page changes it; the page\'s MQTT client sees the report', async () => {
    const did = sim.population.devices.find((d) => d.model.model === LIGHT)!.did;
    await page.locator('#mqtt-status[data-state="connected"]').waitFor({ timeout: 15_000 });
    expect(await text('#mqtt-status')).toContain(`ws://127.0.0.1:${sim.broker.wsAddress!.port}/mqtt`);
    await page.locator('#device-search').fill(did);
    await page.locator(`#device-results button[data-did="${did}"]`).click();
    const onCell = page.locator('#props tr[data-key="2.1"] td.value');
    await onCell.waitFor({ timeout: 10_000 });
    const device = sim.device(did)!;
    expect(await onCell.innerText()).toBe(String(device.store.get('2.1')));
    expect(await page.locator('#props tr[data-key="1.2"] td.value').innerText()).toBe(LIGHT);

    const want = !(device.store.get('2.1') as boolean);
    await page.locator('#props tr[data-key="2.1"] select').selectOption(String(want));
    await page.locator('#props tr[data-key="2.1"] button').click();
    await page.locator('#device-result[data-code="0"]').waitFor({ timeout: 10_000 });
    await until(() => device.store.get('2.1') === want, 5000, 'the device switched by the page');
    expect(await onCell.innerText()).toBe(String(want));
    // The device reports the change on its topic; the page's own MQTT over WebSocket client gets it.
    await page.locator('#device-live li', { hasText: 'up/properties_changed/2/1' }).waitFor({ timeout: 10_000 });
    // A change the page did not make reaches the table only through that client, read from the cloud payload's params.
    await sim.command(did, 'set_properties', [{ did, siid: 2, piid: 1, value: !want }]);
    await sim.advance(1000); // a property is reported at most once per virtual second
    await pageUntil('the reported value in the table', async () => (await onCell.innerText()) === String(!want));

    // A value the device refuses is shown with its MIoT code, and changes nothing.
    await page.locator('#props tr[data-key="2.3"] input').fill('500');
    await page.locator('#props tr[data-key="2.3"] button').click();
    await page.locator('#device-result[data-code="-4005"]').waitFor({ timeout: 10_000 });
    expect(device.store.get('2.3')).not.toBe(500);
    expect(problems).toEqual([]);
  });
});

describe('the dashboard reads right, on a desktop and on a phone', () => {
  let sim: Simulation;
  let monitor: MonitorServer;
  let desktop: Page;
  let phone: Page;
  const problems: string[] = [];
  const until = (what: string, cond: () => Promise<boolean>, ms = 10_000): Promise<void> => pageUntilOn(what, cond, problems, ms);
  const ticks = async (p: Page): Promise<number> => Number(await p.locator('body').getAttribute('data-ticks'));
  /** Advance the simulation and wait until both pages drew a point after it. */
  async function advance(ms: number): Promise<void> {
    const before = [await ticks(desktop), await ticks(phone)];
    await sim.advance(ms);
    const vt = sim.scheduler.now();
    await until('both pages to show the new virtual time', async () =>
      (await ticks(desktop)) > before[0]! && (await ticks(phone)) > before[1]!
      && Number(await desktop.locator('#chart-users').getAttribute('data-x-to')) >= vt
      && Number(await phone.locator('#chart-users').getAttribute('data-x-to')) >= vt);
  }
  const box = async (p: Page, sel: string): Promise<{ x: number; y: number; width: number; height: number }> => (await p.locator(sel).boundingBox())!;

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    sim = await createSimulation({
      scenario: {
        ...tinyScenario({
          name: 'evening with faults', homes: 8, regions: { es: 1, cn: 1, mx: 1 }, devicesPerHome: { '4': 1, '6': 1 },
          mix: { [LIGHT]: 2, 'lumi.sensor_motion.v2': 1, speaker: 1, plug: 1 },
        }),
        faults: [
          { type: 'devices-offline', share: 0.4, at: '1h', duration: '40m' },
          { type: 'region-outage', region: 'es', at: '3h', duration: '30m' },
        ],
      },
      speed: 'manual', broker: { mqttPort: 0, wsPort: 0 },
    });
    monitor = await monitorSimulation(sim, { port: 0, statsIntervalMs: 200 });
    desktop = await openPage({ width: 1440, height: 900 }, problems);
    phone = await openPage({ width: 390, height: 844 }, problems);
    for (const p of [desktop, phone]) {
      await p.goto(monitor.dashboardUrl);
      await p.locator('#status[data-state="live"]').waitFor({ timeout: 15_000 });
    }
  }, 60_000);

  afterAll(async () => {
    await desktop?.close();
    await phone?.close();
    await monitor?.stop();
    await sim?.stop();
  });

  it('with one point, the time axis starts at it and spans a minute, not years', async () => {
    const start = sim.scheduler.now();
    await until('the first point', async () => (await desktop.locator('#chart-users').getAttribute('data-x-from')) !== null);
    for (const id of ['chart-connections', 'chart-rates', 'chart-users']) {
      const chart = desktop.locator(`#${id}`);
      expect(Number(await chart.getAttribute('data-x-from'))).toBe(start);
      expect(Number(await chart.getAttribute('data-x-to'))).toBe(start + 60_000);
    }
    await desktop.screenshot({ path: join(ARTIFACTS, 'desktop-first-point.png'), fullPage: true });
  });

  it('follows the run through its faults: axes from the first point to the last, fault windows shaded', async () => {
    const start = sim.scheduler.now();
    for (let i = 0; i < 6; i++) await advance(40 * 60_000);
    const end = sim.scheduler.now();
    const faults = sim.faults.records;
    expect(faults.map((f) => f.type)).toEqual(['devices-offline', 'region-outage']);
    for (const p of [desktop, phone]) {
      for (const id of ['chart-connections', 'chart-rates', 'chart-users']) {
        const chart = p.locator(`#${id}`);
        expect(Number(await chart.getAttribute('data-x-from'))).toBe(start);
        expect(Number(await chart.getAttribute('data-x-to'))).toBe(end);
        const bands = chart.locator('.fault-band');
        expect(await bands.count()).toBe(faults.length);
        // Each band covers its fault's window on the axis: its share of the plot's width is the fault's share of the run.
        const plot = (await chart.locator('.u-under').boundingBox())!;
        for (const [i, f] of faults.entries()) {
          const band = bands.nth(i);
          expect(Number(await band.getAttribute('data-from'))).toBe(Date.parse(f.from));
          expect(Number(await band.getAttribute('data-to'))).toBe(Date.parse(f.to));
          const b = (await band.boundingBox())!;
          const at = (t: number): number => plot.x + ((t - start) / (end - start)) * plot.width;
          expect(Math.abs(b.x - at(Date.parse(f.from)))).toBeLessThan(2);
          expect(Math.abs(b.x + b.width - at(Date.parse(f.to)))).toBeLessThan(2);
          expect(await band.getAttribute('title')).toContain(f.type);
        }
      }
    }
    await desktop.screenshot({ path: join(ARTIFACTS, 'desktop.png'), fullPage: true });
    await phone.screenshot({ path: join(ARTIFACTS, 'phone.png'), fullPage: true });
    expect(problems).toEqual([]);
  });

  it('draws DAU, WAU and MAU distinguishably where they coincide', async () => {
    const s = sim.snapshot().activeUsers;
    expect(s.dau).toBeGreaterThan(0);
    expect(s.mau).toBe(s.dau); // the run's first day: the three windows hold the same day
    await expect.poll(() => desktop.locator('#users-now').innerText()).toContain(`DAU ${s.dau} · WAU ${s.wau} · MAU ${s.mau}`);
    expect(await desktop.locator('#chart-users .u-legend .u-series th').allInnerTexts()).toEqual(expect.arrayContaining(['MAU', 'WAU', 'DAU']));
    // Count the pixels of each line's colour on the chart's canvas: all three show, none hides another.
    const counts = await desktop.locator('#chart-users canvas').evaluate((el) => {
      const c = el as unknown as Canvas;
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      // Each colour as it shows on the white card (MAU's band is translucent).
      const colours = { mau: [171, 215, 227], wau: [217, 119, 6], dau: [190, 18, 60] };
      const n = { mau: 0, wau: 0, dau: 0 };
      for (let i = 0; i < px.length; i += 4) {
        const a = px[i + 3]! / 255;
        if (a === 0) continue;
        const rgb = [0, 1, 2].map((k) => px[i + k]! * a + 255 * (1 - a));
        for (const [k, [r, g, b]] of Object.entries(colours) as Array<[keyof typeof n, number[]]>) {
          if (Math.abs(rgb[0]! - r!) + Math.abs(rgb[1]! - g!) + Math.abs(rgb[2]! - b!) < 40) n[k]++;
        }
      }
      return n;
    });
    expect(counts.mau).toBeGreaterThan(1000);
    expect(counts.wau).toBeGreaterThan(200);
    expect(counts.dau).toBeGreaterThan(100);
    await desktop.locator('#chart-users').screenshot({ path: join(ARTIFACTS, 'desktop-active-users.png') });
  });

  it('fills the rows of charts: "Online by region and category" beside the users chart, as wide', async () => {
    const users = await box(desktop, '#chart-users');
    const figUsers = await box(desktop, 'figure:has(#chart-users)');
    const figBreak = await box(desktop, 'figure:has(#by-region)');
    const section = await box(desktop, '.charts');
    expect(Math.abs(figBreak.y - figUsers.y)).toBeLessThan(1);
    expect(Math.abs(figBreak.width - figUsers.width)).toBeLessThan(2);
    expect(figBreak.x + figBreak.width).toBeGreaterThan(section.x + section.width - 30);
    expect(users.width).toBeGreaterThan(500);
    expect(await desktop.locator('#by-region tr').count()).toBe(3);
    expect(await desktop.locator('#by-category tr').count()).toBe(Object.keys(sim.snapshot().connections.byCategory).length);
  });

  it('finds devices by did, model or home, and opens one from the results', async () => {
    const all = sim.population.devices;
    // Before any search the panel already lists devices, and says how many there are.
    expect(await desktop.locator('#device-results li').count()).toBe(8);
    expect(await desktop.locator('#device-count').innerText()).toContain(`${all.length} devices`);
    const search = async (q: string): Promise<string[]> => {
      await desktop.locator('#device-search').fill(q);
      await until(`results for "${q}"`, async () => (await desktop.locator('#device-count').innerText()).includes('match'));
      return desktop.locator('#device-results button').evaluateAll((bs) => bs.map((b) => b.getAttribute('data-did') ?? ''));
    };
    const motion = all.filter((d) => d.model.model === 'lumi.sensor_motion.v2').map((d) => d.did);
    expect(motion.length).toBeGreaterThan(0);
    expect(new Set(await search('lumi.sensor_motion.v2'))).toEqual(new Set(motion.slice(0, 8)));
    expect(await desktop.locator('#device-count').getAttribute('data-matching')).toBe(String(motion.length));
    const home2 = all.filter((d) => d.homeId === 'home-2').map((d) => d.did);
    expect(new Set(await search('home-2'))).toEqual(new Set(home2));
    const light = all.find((d) => d.model.model === LIGHT)!;
    expect(await search(`${light.model.model} ${light.homeId}`)).toContain(light.did);
    expect(await search(light.did)).toEqual([light.did]);
    await desktop.locator(`#device-results button[data-did="${light.did}"]`).click();
    await desktop.locator('#props tr[data-key="1.2"] td.value', { hasText: LIGHT }).waitFor({ timeout: 10_000 });
    expect(await desktop.locator(`#device-results button[data-did="${light.did}"]`).getAttribute('aria-current')).toBe('true');
    expect(await desktop.locator('#device-info').innerText()).toContain(LIGHT);
    await desktop.screenshot({ path: join(ARTIFACTS, 'desktop-device.png'), fullPage: true });
  });

  it('stays usable on a phone: nothing wider than the screen, the search and a device view work', async () => {
    const pageWidth = (): Promise<{ page: number; view: number }> => phone.evaluate(() => {
      const w = globalThis as unknown as { document: { documentElement: { scrollWidth: number } }; innerWidth: number };
      return { page: w.document.documentElement.scrollWidth, view: w.innerWidth };
    });
    const overflow = await pageWidth();
    expect(overflow.page).toBeLessThanOrEqual(overflow.view);
    for (const sel of ['.figures', '.charts figure', '.panel', 'canvas']) {
      for (const b of await phone.locator(sel).evaluateAll((els) => els.map((e) => e.getBoundingClientRect().right))) expect(b).toBeLessThanOrEqual(390);
    }
    const did = sim.population.devices.find((d) => d.model.model === 'plug' || d.model.category === 'plug')!.did;
    await phone.locator('#device-search').fill(did);
    await phone.locator(`#device-results button[data-did="${did}"]`).click();
    await phone.locator('#props tr[data-key="2.1"] td.value').waitFor({ timeout: 10_000 });
    expect((await pageWidth()).page).toBeLessThanOrEqual(390);
    await phone.screenshot({ path: join(ARTIFACTS, 'phone-device.png'), fullPage: true });
    expect(problems).toEqual([]);
  });
});

describe('the dashboard of a run over worker threads', () => {
  it('shows every shard\'s figures, merged, while the shards run', { timeout: 120_000 }, async () => {
    // The workers run dist/sim/shard-worker.js (npm test builds it).
    const sim = await createShardedSimulation({ scenario: reduced('snapshot-2018.yaml', 40), workers: 2, duration: '30d' });
    const problems: string[] = [];
    let monitor: MonitorServer | null = null;
    let page: Page | null = null;
    try {
      monitor = await monitorShardedSimulation(sim, { port: 0, statsIntervalMs: 200 });
      page = await openPage({ width: 1280, height: 720 }, problems);
      const p = page;
      const num = async (sel: string): Promise<number> => Number((await p.locator(sel).innerText()).replace(/,/g, ''));
      await p.goto(monitor.dashboardUrl);
      await p.locator('#status[data-state="live"]').waitFor({ timeout: 15_000 });
      const total = sim.population.devices.length;
      await pageUntilOn(`the page to show all ${total} devices online`, async () => (await num('#online')) === total, problems, 30_000);
      expect(await p.locator('#title').innerText()).toBe(sim.scenario.name);
      expect(await p.locator('#by-region tr').count()).toBe(Object.keys(sim.snapshot().connections.byRegion).length);
      const published = await num('#published');
      await pageUntilOn('more messages on the page', async () => (await num('#published')) > published, problems, 30_000);
      // No devices to list or command here: they are inside the worker threads.
      expect(await p.locator('#device-results li').count()).toBe(0);
      expect(problems).toEqual([]);
    } finally {
      await page?.close();
      await monitor?.stop();
      await sim.stop();
    }
  });
});
