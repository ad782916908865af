import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { formatWall, Progress } from '../../src/cli/format.js';
import type { SimulationStatus } from '../../src/sim/simulation.js';

const start = Date.parse('2019-09-01T00:00:00Z');
const DAY = 86_400_000;
const status = (virtualTime: number, published: number): SimulationStatus => ({
  virtualTime, virtualStart: start, virtualEnd: start + 30 * DAY, devices: 10, sessions: 10, sessionsConnected: 10,
  online: 10, published, delivered: 0, rejected: 0, events: 0, reconnectAttempts: 0, stopping: false,
});

describe('run progress', () => {
  it('writes plain lines with the share done and the time left when not on a terminal', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => { text += c.toString(); });
    let wall = 1_000_000;
    const p = new Progress(out, 'log', 0, () => wall);
    p.update(status(start, 0));
    wall += 5000;
    p.update(status(start + 3 * DAY, 1000));
    const lines = text.trim().split('\n');
    expect(lines.every((l) => l.startsWith('aiot-sim: virtual '))).toBe(true);
    expect(text).not.toContain('\r');
    const last = lines.at(-1)!;
    expect(last).toContain('2019-09-04 00:00:00Z 10%');
    // 3 of 30 days took 5 s: 27 more take 45 s. 1,000 messages in 5 s.
    expect(last).toContain('about 45 s left');
    expect(last).toContain('200.0 msg/s');
  });

  it('shows how many sessions are still connected while the run stops', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => { text += c.toString(); });
    const p = new Progress(out, 'tty', 0);
    p.update(status(start + DAY, 10));
    p.update({ ...status(start + DAY, 10), stopping: true, sessionsConnected: 4 });
    const shown = text.split('\r\x1b[2K').filter(Boolean);
    expect(shown[0]).toContain('virtual 2019-09-02');
    expect(shown.at(-1)).toBe('stopping: 4 of 10 sessions still connected');
    p.update({ ...status(start + DAY, 10), stopping: true, sessionsConnected: 4, stopStep: 'the other shards to end' });
    expect(text.split('\r\x1b[2K').filter(Boolean).at(-1)).toBe('stopping: waiting for the other shards to end; 4 of 10 sessions still connected');
  });

  it('says nothing when quiet', () => {
    const out = new PassThrough();
    const p = new Progress(out, 'off', 0);
    p.connecting(50, 100);
    p.update(status(start + DAY, 10));
    expect(out.read()).toBeNull();
  });

  it('formats wall durations for people', () => {
    expect(formatWall(45_000)).toBe('45 s');
    expect(formatWall(12 * 60_000)).toBe('12 min');
    expect(formatWall(80 * 60_000)).toBe('80 min');
    expect(formatWall(125 * 60_000)).toBe('2 h 5 min');
  });
});
