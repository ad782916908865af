/**
 * The dashboard's files: the page from the package's `web/` folder, the wire contract as built
 * (`dist/contract/wire.js`, a module that imports nothing), the chart library (uPlot) and the
 * browser MQTT client (mqtt.js's browser bundle) from node_modules. Served from an allowlist,
 * read once and kept in memory; nothing comes from a CDN.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PACKAGE_ROOT } from '../paths.js';

const require = createRequire(import.meta.url);

function packageDir(name: string): string {
  return dirname(require.resolve(`${name}/package.json`));
}

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/** URL path -> file on disk. */
function files(): Record<string, string> {
  const web = join(PACKAGE_ROOT, 'web');
  const uplot = join(packageDir('uplot'), 'dist');
  return {
    '/': join(web, 'index.html'),
    '/index.html': join(web, 'index.html'),
    '/app.js': join(web, 'app.js'),
    '/page.js': join(web, 'page.js'),
    '/charts.js': join(web, 'charts.js'),
    '/device.js': join(web, 'device.js'),
    '/style.css': join(web, 'style.css'),
    // The wire contract, compiled: the page reads device messages with the platform's own reader.
    '/wire.js': join(PACKAGE_ROOT, 'dist', 'contract', 'wire.js'),
    '/vendor/uPlot.iife.min.js': join(uplot, 'uPlot.iife.min.js'),
    '/vendor/uPlot.min.css': join(uplot, 'uPlot.min.css'),
    '/vendor/mqtt.esm.js': join(packageDir('mqtt'), 'dist', 'mqtt.esm.js'),
  };
}

export interface Asset { body: Buffer; type: string }

export class Assets {
  private readonly paths = files();
  private readonly cache = new Map<string, Promise<Asset>>();

  has(path: string): boolean { return Object.hasOwn(this.paths, path); }

  get(path: string): Promise<Asset> {
    let a = this.cache.get(path);
    if (!a) {
      const file = this.paths[path]!;
      const ext = file.slice(file.lastIndexOf('.') + 1);
      a = readFile(file).then((body) => ({ body, type: TYPES[ext] ?? 'application/octet-stream' }));
      a.catch(() => this.cache.delete(path));
      this.cache.set(path, a);
    }
    return a;
  }
}
