/**
 * Catalogue fragments through real files: a folder of models and `fragments/`, loaded the way
 * `aiot-sim validate`, `aiot-sim devices` and a simulation load them.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCatalogFile, loadCatalog, loadDeviceFile, loadFragmentFile } from '../../src/catalog/catalog.js';
import { ValidationError, type Problem } from '../../src/errors.js';

const INFO = `
services:
  - siid: 1
    name: device-information
    properties:
      - { piid: 1, name: manufacturer, format: string, access: [read], default: "\${vendor}" }
      - { piid: 2, name: model, format: string, access: [read], default: "\${model}" }
`;
const CLOCK = `
description: a clock service at siid 6
services:
  - siid: 6
    name: clock
    actions:
      - { aiid: 1, name: stop-alarm }
`;
const head = (model: string, include: string): string => `
model: ${model}
name: Test plug
category: plug
urn: urn:miot-spec-v2:device:outlet:0000A002:${model.split('.')[0]}-${model.split('.')[2]}:1
transport: wifi
source: test
include: ${include}
`;
const SWITCH = `
services:
  - siid: 2
    name: switch
    properties:
      - { piid: 1, name: "on", format: bool, access: [read, write, notify], default: false }
behaviours:
  - { use: power-draw, "on": "2.1", watts: [1, 5] }
`;

describe('device files with include: fragments', () => {
  let root: string;
  let n = 0;
  beforeAll(async () => { root = await mkdtemp(join(tmpdir(), 'aiot-sim-fragments-')); });
  afterAll(async () => { await rm(root, { recursive: true, force: true }); });

  /** A fresh catalogue folder with these files (paths relative to it). */
  async function folder(files: Record<string, string>): Promise<string> {
    const dir = join(root, `case-${++n}`);
    await mkdir(join(dir, 'fragments'), { recursive: true });
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    return dir;
  }
  const load = (dir: string, file: string) => loadDeviceFile(join(dir, file), dir);
  const lines = (problems: Problem[]): string[] => problems.map((p) => `${p.file}: ${p.path}: ${p.message}`);

  it('resolves to exactly the model written out in full, services in siid order, placeholders filled in', async () => {
    const dir = await folder({
      'fragments/device-information.yaml': INFO,
      'fragments/clock.yaml': CLOCK,
      'acme.plug.p1.yaml': head('acme.plug.p1', '[clock, device-information]') + SWITCH,
      'written.yaml': `${head('acme.plug.p1', '[]')}${SWITCH.replace('services:\n', `services:
  - siid: 1
    name: device-information
    properties:
      - { piid: 1, name: manufacturer, format: string, access: [read], default: acme }
      - { piid: 2, name: model, format: string, access: [read], default: acme.plug.p1 }
`).replace('behaviours:', `  - siid: 6
    name: clock
    actions:
      - { aiid: 1, name: stop-alarm }
behaviours:`)}`,
    });
    const included = await load(dir, 'acme.plug.p1.yaml');
    const written = await load(dir, 'written.yaml');
    expect(included.problems).toEqual([]);
    expect(written.problems).toEqual([]);
    expect(JSON.stringify(included.model)).toBe(JSON.stringify(written.model));
    expect(included.model!.services.map((s) => s.siid)).toEqual([1, 2, 6]);
    expect(included.model!.services[0]!.properties.map((p) => p.default)).toEqual(['acme', 'acme.plug.p1']);
    expect(included.model).not.toHaveProperty('include');
  });

  it('names the include entry of an unknown fragment, and the fragments there are', async () => {
    const dir = await folder({ 'fragments/device-information.yaml': INFO, 'acme.plug.p1.yaml': head('acme.plug.p1', '[device-information, device-info]') + SWITCH });
    const res = await load(dir, 'acme.plug.p1.yaml');
    expect(res.model).toBeUndefined();
    expect(lines(res.problems)).toEqual([
      `acme.plug.p1.yaml: include[1]: unknown fragment "device-info": no fragments/device-info.yaml (fragments: device-information)`,
    ]);
  });

  it('reports a siid clash where it is written: the own service, or the second fragment', async () => {
    const dir = await folder({
      'fragments/device-information.yaml': INFO,
      'fragments/clock.yaml': CLOCK,
      'fragments/alarm-clock.yaml': CLOCK.replace('name: clock', 'name: alarm-clock'),
      'acme.plug.p1.yaml': head('acme.plug.p1', '[device-information, clock, alarm-clock]') + SWITCH.replace('siid: 2', 'siid: 1'),
    });
    const res = await load(dir, 'acme.plug.p1.yaml');
    expect(lines(res.problems)).toEqual(expect.arrayContaining([
      'acme.plug.p1.yaml: services[0].siid: siid 1 is already declared by fragment "device-information" (include[0])',
      'acme.plug.p1.yaml: include[2]: fragment "alarm-clock" declares siid 6, as does fragment "clock" (include[1])',
    ]));
  });

  it('an invalid fragment: the include entry names it, and its own problems name its file and path', async () => {
    const dir = await folder({
      'fragments/device-information.yaml': INFO.replace('format: string, access: [read], default: "${model}"', 'format: uint8, access: [read], default: "${brand}"'),
      'acme.plug.p1.yaml': head('acme.plug.p1', '[device-information]') + SWITCH,
    });
    const res = await load(dir, 'acme.plug.p1.yaml');
    const fragment = join('fragments', 'device-information.yaml');
    expect(lines(res.problems)).toEqual([
      `acme.plug.p1.yaml: include[0]: fragment "device-information" is invalid: 2 problems in ${fragment}`,
      `${fragment}: services[0].properties[1].default: expected a number, got "\${brand}"`,
      `${fragment}: services[0].properties[1].default: unknown placeholder \${brand}: a fragment may use \${model} and \${vendor}`,
    ]);
    // The fragment file checked on its own (as aiot-sim validate devices/fragments/x.yaml does) gives the same problems.
    expect((await loadFragmentFile(join(dir, fragment), dir)).problems).toEqual(res.problems.slice(1));
    expect(await checkCatalogFile(join(dir, fragment))).toHaveLength(2);
  });

  it('a reference that does not hold in the including model is reported at its include entry', async () => {
    const dir = await folder({
      'fragments/device-information.yaml': INFO,
      'fragments/reset.yaml': `
services:
  - siid: 7
    name: maintenance
    actions:
      - { aiid: 1, name: reset, effect: { set: [{ property: "2.9", value: true }] } }
`,
      'acme.plug.p1.yaml': head('acme.plug.p1', '[device-information, reset]') + SWITCH,
    });
    const res = await load(dir, 'acme.plug.p1.yaml');
    expect(lines(res.problems)).toEqual([
      `acme.plug.p1.yaml: include[1]: fragment "reset" (${join('fragments', 'reset.yaml')}) services[0].actions[0].effect.set[0].property: property 2.9 does not exist in this model`,
    ]);
  });

  it('names a fragment included twice', async () => {
    const dir = await folder({
      'fragments/device-information.yaml': INFO,
      'acme.plug.p1.yaml': head('acme.plug.p1', '[device-information, device-information]') + SWITCH,
    });
    expect(lines((await load(dir, 'acme.plug.p1.yaml')).problems)).toEqual([
      'acme.plug.p1.yaml: include[1]: fragment "device-information" is already included at include[0]',
    ]);
  });

  it('the file\'s own problems keep their paths as written, though fragments come before its services', async () => {
    const dir = await folder({
      'fragments/device-information.yaml': INFO,
      'acme.plug.p1.yaml': head('acme.plug.p1', '[device-information]')
        + SWITCH.replace('default: false', 'default: 3').replace('"on": "2.1"', '"on": "2.4"'),
    });
    expect(lines((await load(dir, 'acme.plug.p1.yaml')).problems)).toEqual([
      'acme.plug.p1.yaml: services[0].properties[0].default: expected a bool, got number 3',
      'acme.plug.p1.yaml: behaviours[0].on: property 2.4 does not exist in this model',
    ]);
  });

  it('a catalogue whose models share a broken fragment reports its problems once', async () => {
    const dir = await folder({
      'fragments/device-information.yaml': INFO.replace('siid: 1', 'siid: 0'),
      'acme.plug.p1.yaml': head('acme.plug.p1', '[device-information]') + SWITCH,
      'acme.plug.p2.yaml': head('acme.plug.p2', '[device-information]') + SWITCH,
    });
    const err = await loadCatalog(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    const problems = (err as ValidationError).problems;
    expect(problems.filter((p) => p.path === 'services[0].siid')).toHaveLength(1);
    expect(problems.filter((p) => p.path === 'include[0]').map((p) => p.file).sort()).toEqual(
      // The folder is outside the working directory, so the files are named by their full paths.
      ['acme.plug.p1.yaml', 'acme.plug.p2.yaml'].map((f) => join(dir, f)),
    );
  });
});
