/**
 * The catalogue the build validated (src/catalog/prebuilt.ts): taken only for a folder that is
 * byte for byte what it was made from; any edit, added or removed model, or changed fragment
 * sends the loader back to the files, where the problems are reported. And the build's own
 * prebuilt file (dist/) holds exactly what validating devices/ gives.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadCatalog, readCatalogFiles } from '../../src/catalog/catalog.js';
import { prebuiltModels, writePrebuilt } from '../../src/catalog/prebuilt.js';
import { ValidationError } from '../../src/errors.js';

const root = join(import.meta.dirname, '..', '..');
const devicesDir = join(root, 'devices');
const MODEL = 'chuangmi.plug.212a01.yaml';

describe('the prebuilt catalogue', () => {
  let work: string;
  let dir: string;
  let file: string;
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'aiot-prebuilt-'));
    dir = join(work, 'devices');
    cpSync(devicesDir, dir, { recursive: true });
    file = join(work, 'devices.prebuilt.json');
  });
  afterEach(() => rmSync(work, { recursive: true, force: true }));

  it('gives back the validated models for the folder they were made from', async () => {
    const models = await readCatalogFiles(dir);
    await writePrebuilt(dir, models, file);
    const again = await prebuiltModels(dir, file);
    expect(again).toStrictEqual(models);
    expect(again!.map((m) => m.model)).toContain('chuangmi.plug.212a01');
  });

  it('is not taken once a model, a fragment or the set of files changed', async () => {
    await writePrebuilt(dir, await readCatalogFiles(dir), file);
    const model = join(dir, MODEL);
    const text = readFileSync(model, 'utf8');

    writeFileSync(model, text.replace('name: Mi Smart Power Plug 2', 'name: Mi Smart Power Plug 2 (edited)'));
    expect(await prebuiltModels(dir, file)).toBeNull();
    // The files' path sees the edit.
    const edited = (await readCatalogFiles(dir)).find((m) => m.model === 'chuangmi.plug.212a01');
    expect(edited?.name).toBe('Mi Smart Power Plug 2 (edited)');
    writeFileSync(model, text);
    expect(await prebuiltModels(dir, file)).not.toBeNull();

    const fragment = join(dir, 'fragments', 'device-information.yaml');
    const fragmentText = readFileSync(fragment, 'utf8');
    writeFileSync(fragment, `${fragmentText}\n# a comment is a change too\n`);
    expect(await prebuiltModels(dir, file)).toBeNull();
    writeFileSync(fragment, fragmentText);

    unlinkSync(model);
    expect(await prebuiltModels(dir, file)).toBeNull();
  });

  it('does not hide a broken model: the loader reports it from the file', async () => {
    await writePrebuilt(dir, await readCatalogFiles(dir), file);
    writeFileSync(join(dir, MODEL), readFileSync(join(dir, MODEL), 'utf8').replace('category: plug', 'category: toaster'));
    expect(await prebuiltModels(dir, file)).toBeNull();
    const err = await loadCatalog(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(String((err as Error).message)).toContain(MODEL);
  });

  it('is missing or unreadable: nothing is taken', async () => {
    expect(await prebuiltModels(dir, join(work, 'absent.json'))).toBeNull();
    writeFileSync(file, '{"format": 1, "digest": "x", "mod');
    expect(await prebuiltModels(dir, file)).toBeNull();
  });

  it('in the build (dist/) holds what validating devices/ gives, and the built loader takes it', async () => {
    const dist = join(root, 'dist', 'catalog');
    const built = (await import(pathToFileURL(join(dist, 'prebuilt.js')).href)) as typeof import('../../src/catalog/prebuilt.js');
    const fromBuild = await built.prebuiltModels(devicesDir);
    expect(fromBuild).not.toBeNull();
    expect(fromBuild).toStrictEqual(await readCatalogFiles(devicesDir));
  });
});
