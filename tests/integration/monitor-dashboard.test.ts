/**
 * The dashboard end to end in headless Chromium (Debian's `chromium`, driven by playwright-core):
 * the page loads from the package, its figures and charts follow the simulation, the event feed
 * taps /ws, and a set_properties sent from the page changes the device (checked on the device
 * itself) while the page's MQTT-over-WebSocket client sees the change the device reports.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MonitorServer } from '../../src/monitor/server.js';
import { monitorSimulation } from '../../src/monitor/simulation.js';
import { createSimulation, type Simulation } from '../../src/sim/simulation.js';
import { until } from '../helpers/mqtt.js';
import { tinyScenario } from '../helpers/scenario.js';

const CHROMIUM = '/usr/bin/chromium';
const LIGHT = 'yeelink.light.mono6';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

describe('dashboard in headless Chromium', () => {
  let sim: Simulation;
  let monitor: MonitorServer;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run does)`);
    sim = await createSimulation({
      scenario: tinyScenario({ homes: 4, mix: { [LIGHT]: 1, 'lumi.sensor_motion.v2': 1, speaker: 1 }, devicesPerHome: { '4': 1 }, regions: { es: 1, cn: 1 } }),
      speed: 'manual', broker: { mqttPort: 0, wsPort: 0 },
    });
    monitor = await monitorSimulation(sim, { port: 0, statsIntervalMs: 200 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    page = await browser.newPage();
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => { if (msg.type() === 'error') problems.push(`console: ${msg.text()}`); });
    page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()}`));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await monitor?.stop();
    await sim?.stop();
  });

  const text = (sel: string): Promise<string> => page.locator(sel).innerText();
  const num = async (sel: string): Promise<number> => Number((await text(sel)).replace(/,/g, ''));
  /** Poll the page (bounded) until `cond` holds. */
  async function pageUntil(what: string, cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}; problems: ${problems.join('; ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

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
    await page.selectOption('#device-select', did);
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
