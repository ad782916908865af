/**
 * The broker's end of a fleet session's connection (sim/fleet/link.ts), an emitter read as a
 * stream: read the way Aedes reads it ('readable', then `read()` of everything there is) or by
 * size, it hands over every pushed byte once and in order, says "wait" at its high-water mark and
 * "go on" (`LinkOwner.readable`, which sends what the device queued meanwhile) once read, ends
 * after what it holds, and closes as a stream does (what `stream.finished`, which Aedes uses, hears).
 */
import { finished } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { FleetLink, type LinkOwner } from '../../src/sim/fleet/link.js';

interface Heard { readable: number; closed: number; received: Buffer[] }

function link(): { l: FleetLink; heard: Heard } {
  const heard: Heard = { readable: 0, closed: 0, received: [] };
  const owner: LinkOwner = {
    received: (_l, bytes) => { heard.received.push(bytes); },
    readable: () => { heard.readable++; },
    linkClosed: () => { heard.closed++; },
  };
  return { l: new FleetLink(owner, 0), heard };
}

/** Read like Aedes' client: on each 'readable', take what is there with read(null). */
function readLikeAedes(l: FleetLink): { got: Buffer[]; wakes: () => number } {
  const got: Buffer[] = [];
  let wakes = 0;
  l.on('readable', () => {
    wakes++;
    const b = l.read(null as unknown as number) as Buffer | null;
    if (b) got.push(b);
  });
  return { got, wakes: () => wakes };
}

const bytes = (n: number, fill: number): Buffer => Buffer.alloc(n, fill);

describe('FleetLink', () => {
  it('hands a reader that reads on "readable" every packet pushed in a turn, joined and in order, woken once', async () => {
    const { l } = link();
    const r = readLikeAedes(l);
    await turn();
    l.push(Buffer.from('ab'));
    l.push(Buffer.from('cd'));
    l.push(Buffer.from('ef'));
    expect(r.got).toEqual([]); // not within the pushing turn
    await turn();
    expect(Buffer.concat(r.got).toString()).toBe('abcdef');
    expect(r.wakes()).toBe(1);
    l.push(Buffer.from('gh'));
    await turn();
    expect(Buffer.concat(r.got).toString()).toBe('abcdefgh');
    expect(r.wakes()).toBe(2);
  });

  it('keeps what the reader leaves unread until it reads, and wakes it again for more', async () => {
    const { l } = link();
    let take = false;
    const got: Buffer[] = [];
    l.on('readable', () => {
      if (!take) return; // as Aedes while a batch is still being handled
      const b = l.read(null as unknown as number) as Buffer | null;
      if (b) got.push(b);
    });
    l.push(Buffer.from('one'));
    await turn();
    expect(got).toEqual([]);
    take = true;
    l.push(Buffer.from('two'));
    await turn();
    expect(Buffer.concat(got).toString()).toBe('onetwo');
  });

  it('says "wait" at 64 KiB unread and tells its owner to go on once the reader has read', async () => {
    const { l, heard } = link();
    const got: Buffer[] = [];
    let take = false;
    const readAll = (): void => {
      const b = l.read(null as unknown as number) as Buffer | null;
      if (b) got.push(b);
    };
    l.on('readable', () => { if (take) readAll(); });
    await turn();
    const oks: boolean[] = [];
    for (let i = 0; i < 20; i++) oks.push(l.push(bytes(4096, i)));
    expect(oks.indexOf(false)).toBe(15); // the 16th 4 KiB packet reaches 64 KiB
    await turn();
    const before = heard.readable;
    // As Aedes does once it has handled a batch: it reads again by itself.
    take = true;
    readAll();
    await turn();
    expect(heard.readable).toBeGreaterThan(before);
    l.push(bytes(1, 99));
    await turn();
    const all = Buffer.concat(got);
    expect(all.length).toBe(20 * 4096 + 1);
    for (let i = 0; i < 20; i++) expect(all[i * 4096]).toBe(i);
    expect(all[20 * 4096]).toBe(99);
  });

  it('ends after what it holds: the reader gets the bytes, then "end"', async () => {
    const { l } = link();
    const r = readLikeAedes(l);
    let ended = false;
    l.on('end', () => { ended = true; });
    l.push(Buffer.from('last words'));
    l.push(null);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(Buffer.concat(r.got).toString()).toBe('last words');
    expect(ended).toBe(true);
  });

  it('gives a reader by size every byte in order', async () => {
    const { l } = link();
    l.push(Buffer.from('abc'));
    l.push(Buffer.from('def'));
    await turn();
    expect((l.read(2) as Buffer).toString()).toBe('ab');
    l.push(Buffer.from('ghi'));
    expect((l.read(5) as Buffer).toString()).toBe('cdefg');
    expect((l.read() as Buffer).toString()).toBe('hi');
    expect(l.read()).toBeNull();
  });

  it('is watched as Node watches a stream: finished() hears the device end it, after "end"', async () => {
    const { l, heard } = link();
    const r = readLikeAedes(l);
    const said: string[] = [];
    l.on('end', () => said.push('end'));
    l.on('close', () => said.push('close'));
    const done = new Promise<Error | undefined>((resolve) => { finished(l as unknown as NodeJS.WritableStream, (err) => resolve(err ?? undefined)); });
    l.push(Buffer.from('bye'));
    l.push(null);
    expect(l.push(Buffer.from('late'))).toBe(false);
    await done;
    expect(Buffer.concat(r.got).toString()).toBe('bye');
    expect(said).toEqual(['end', 'close']);
    expect(l.destroyed).toBe(true);
    expect(heard.closed).toBe(1);
  });

  it('says "error" and then "close" on the next turn when destroyed with an error, and tells its owner at once', async () => {
    const { l, heard } = link();
    const said: string[] = [];
    l.on('error', (err: Error) => said.push(`error: ${err.message}`));
    l.on('close', () => said.push('close'));
    l.destroy(new Error('gone'));
    l.destroy(new Error('twice'));
    expect(heard.closed).toBe(1);
    expect(said).toEqual([]);
    await turn();
    expect(said).toEqual(['error: gone', 'close']);
    expect(l.writable).toBe(false);
  });

  it('a reader that throws loses its own link, and the links pushed to in the same turn are read', async () => {
    const a = link();
    const b = link();
    const errors: Error[] = [];
    a.l.on('error', (err) => errors.push(err));
    a.l.on('readable', () => { throw new Error('reader failed'); });
    const rb = readLikeAedes(b.l);
    a.l.push(Buffer.from('bad'));
    b.l.push(Buffer.from('good'));
    await turn();
    expect(Buffer.concat(rb.got).toString()).toBe('good');
    expect(a.l.destroyed).toBe(true);
    expect(errors.map((e) => e.message)).toEqual(['reader failed']);
    expect(a.heard.closed).toBe(1);
    b.l.push(Buffer.from(' again'));
    await turn();
    expect(Buffer.concat(rb.got).toString()).toBe('good again');
  });

  it('drops what it holds when destroyed, and tells its owner', async () => {
    const { l, heard } = link();
    const r = readLikeAedes(l);
    l.push(Buffer.from('never read'));
    l.destroy();
    await turn();
    expect(r.got).toEqual([]);
    expect(heard.closed).toBe(1);
    expect(l.push(Buffer.from('x'))).toBe(false);
  });

  it('passes what the broker writes straight to its owner', () => {
    const { l, heard } = link();
    l.write(Buffer.from([0x20, 0x02, 0x00, 0x00]));
    l.write(Buffer.from([0x90, 0x03, 0x00, 0x01, 0x01]));
    expect(heard.received.map((b) => b.toString('hex'))).toEqual(['20020000', '9003000101']);
  });
});
