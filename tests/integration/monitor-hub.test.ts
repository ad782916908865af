/**
 * The /ws hub's lifecycle on a real broker and a real HTTP server: constructing it does nothing,
 * start() taps the broker and serves, close() closes every client and takes its broker listener
 * away. Real `ws` clients on port 0, loopback only.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedBroker } from '../../src/broker/broker.js';
import { MonitorHub } from '../../src/monitor/hub.js';
import { PlatformService } from '../../src/platform/service.js';
import { until } from '../helpers/mqtt.js';
import { openMonitor, wsUrl, type MonitorClient } from '../helpers/ws.js';

const TOKEN = 'hub-lifecycle-token';

describe('MonitorHub lifecycle', () => {
  let broker: EmbeddedBroker | null = null;
  let hub: MonitorHub | null = null;
  let server: Server | null = null;
  const monitors: MonitorClient[] = [];

  afterEach(async () => {
    await Promise.all(monitors.splice(0).map((m) => m.close()));
    await hub?.close();
    hub = null;
    const s = server;
    server = null;
    if (s) await new Promise<void>((resolve) => { s.close(() => resolve()); s.closeAllConnections(); });
    await broker?.close();
    broker = null;
  });

  /** A broker, a platform and an HTTP server whose upgrades go to a hub that is not started yet. */
  async function setup(): Promise<{ b: EmbeddedBroker; h: MonitorHub; url: string }> {
    const b = await EmbeddedBroker.start({ mqttPort: 0, operatorToken: 'operator-token-1' });
    broker = b;
    const platform = new PlatformService(() => undefined);
    platform.observe(b);
    const h = new MonitorHub(b, platform, { token: TOKEN, statsIntervalMs: 100 });
    hub = h;
    const s = createServer((_req, res) => res.writeHead(404).end());
    s.on('upgrade', (req, socket, head) => h.handleUpgrade(req, socket, head, new URL(req.url ?? '/', 'http://hub')));
    server = s;
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
    return { b, h, url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/` };
  }

  it('does nothing until started, serves once started, and takes everything away on close', async () => {
    const { b, h, url } = await setup();
    const baseline = b.listenerCount('message');
    expect(baseline).toBeGreaterThan(0); // the platform's
    await expect(openMonitor(wsUrl(url, TOKEN))).rejects.toMatchObject({ status: 503, body: expect.stringContaining('not started') });

    h.start();
    h.start(); // once only
    expect(b.listenerCount('message')).toBe(baseline + 1);
    const c = await openMonitor(wsUrl(url, TOKEN));
    monitors.push(c);
    await c.next('snapshot');
    await c.next('stats');
    expect(h.clientCount).toBe(1);

    await h.close();
    expect(b.listenerCount('message')).toBe(baseline);
    await until(() => c.closed(), 5000, 'the client closed by the hub');
    expect(h.clientCount).toBe(0);
    await expect(openMonitor(wsUrl(url, TOKEN))).rejects.toMatchObject({ status: 503, body: expect.stringContaining('stopping') });
    h.start(); // a closed hub stays closed
    expect(b.listenerCount('message')).toBe(baseline);
  });
});
