/** The client frames of /ws, checked by one schema: what passes, and the error frame for what does not. */
import { describe, expect, it } from 'vitest';
import { parseClientFrame } from '../../src/monitor/requests.js';

const parse = (frame: unknown): ReturnType<typeof parseClientFrame> =>
  parseClientFrame(Buffer.from(typeof frame === 'string' ? frame : JSON.stringify(frame)), false);

describe('parseClientFrame', () => {
  it('passes the three requests, ignoring fields it does not know', () => {
    expect(parse({ type: 'subscribe', topics: ['device/+/state', 'a/#'] })).toEqual({ type: 'subscribe', topics: ['device/+/state', 'a/#'] });
    expect(parse({ type: 'unsubscribe', topics: ['a/#'], note: 'x' })).toEqual({ type: 'unsubscribe', topics: ['a/#'] });
    expect(parse({ type: 'ping', at: 1 })).toEqual({ type: 'ping' });
  });

  it('reads text however ws hands it over', () => {
    const text = '{"type":"ping"}';
    expect(parseClientFrame([Buffer.from(text.slice(0, 5)), Buffer.from(text.slice(5))], false)).toEqual({ type: 'ping' });
    expect(parseClientFrame(new TextEncoder().encode(text).buffer, false)).toEqual({ type: 'ping' });
  });

  it.each<[unknown, string, string]>([
    ['{"type":', 'E_JSON', 'the frame is not valid JSON'],
    ['[1,2]', 'E_FRAME', 'expected a JSON object with a "type"'],
    ['null', 'E_FRAME', 'expected a JSON object with a "type"'],
    [{ type: 'publish', topics: ['a'] }, 'E_TYPE', 'type: expected "subscribe", "unsubscribe" or "ping", got "publish"'],
    [{ type: 7 }, 'E_TYPE', 'type: expected "subscribe", "unsubscribe" or "ping", got 7'],
    [{ topics: ['a'] }, 'E_TYPE', 'type: expected "subscribe", "unsubscribe" or "ping", got nothing'],
    [{ type: 'subscribe' }, 'E_TOPICS', 'topics: expected a non-empty array of MQTT topic filters'],
    [{ type: 'unsubscribe', topics: 'a/#' }, 'E_TOPICS', 'topics: expected a non-empty array of MQTT topic filters'],
    [{ type: 'subscribe', topics: [] }, 'E_TOPICS', 'topics: expected a non-empty array of MQTT topic filters'],
    [{ type: 'subscribe', topics: ['ok/#', 7] }, 'E_FILTER', 'topics[1]: expected a string, got number'],
    [{ type: 'subscribe', topics: [null] }, 'E_FILTER', 'topics[0]: expected a string, got null'],
    [{ type: 'subscribe', topics: ['a', ['b']] }, 'E_FILTER', 'topics[1]: expected a string, got an array'],
    [{ type: 'subscribe', topics: ['device/#/up'] }, 'E_FILTER', 'topics[0]: "device/#/up": "#" must be a whole level and the last one'],
    [{ type: 'subscribe', topics: ['a', 'device/a+/up'] }, 'E_FILTER', 'topics[1]: "device/a+/up": "+" must be a whole level'],
  ])('answers %j with %s', (frame, code, message) => {
    expect(parse(frame)).toEqual({ type: 'error', code, message });
  });

  it('refuses binary frames', () => {
    expect(parseClientFrame(Buffer.from('{"type":"ping"}'), true)).toMatchObject({ type: 'error', code: 'E_FRAME', message: expect.stringMatching(/binary/) });
  });
});
