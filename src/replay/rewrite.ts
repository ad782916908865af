/**
 * Device ids rewritten so one recording stands for many devices (`replay --rewrite-did N`): copy
 * k of the recording (1..N) gives every device its own did, the same in every message of the
 * copy: in the topic (`device/{did}/...`, or the central hub's `appMsg/notify/iot/{did}/...`)
 * and wherever the payload carries it as a JSON string ("did", "parent_id", "device_id", a
 * result's "did"...). A new did keeps the old one's shape, so consumers that check it still
 * accept it: the part after the last "." is redrawn character by character (digits stay digits,
 * hex letters hex letters), from a hash of the old did and k.
 */
import { createHash } from 'node:crypto';
import { HUB_PREFIX } from '../contract/wire.js';

/** Where a device's did sits in a topic of either wire profile: `device/{did}/...`, `appMsg/notify/iot/{did}/...`. */
const DID_PREFIXES = ['device/', HUB_PREFIX];

/** The did in a device topic (either profile) and where it starts, else undefined. */
export function didInTopic(topic: string): { did: string; at: number } | undefined {
  const prefix = DID_PREFIXES.find((p) => topic.startsWith(p));
  if (prefix === undefined) return undefined;
  const end = topic.indexOf('/', prefix.length);
  const did = end < 0 ? topic.slice(prefix.length) : topic.slice(prefix.length, end);
  return did === '' ? undefined : { did, at: prefix.length };
}

/** The did of a device topic of either profile, else undefined. */
export const topicDid = (topic: string): string | undefined => didInTopic(topic)?.did;

const DIGITS = '0123456789';
const HEX = '0123456789abcdef';
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/** A did of the same shape as `did`, drawn from (did, copy, salt). */
function redraw(did: string, copy: number, salt: number): string {
  const cut = did.lastIndexOf('.') + 1;
  const tail = did.slice(cut);
  let bytes = createHash('sha256').update(`${did}\u0000${copy}\u0000${salt}`).digest();
  let out = '';
  for (let i = 0; i < tail.length; i++) {
    if (i > 0 && i % bytes.length === 0) bytes = createHash('sha256').update(bytes).digest();
    const b = bytes[i % bytes.length]!;
    const c = tail[i]!;
    if (c >= '0' && c <= '9') out += i === 0 && tail.length > 1 ? DIGITS[1 + (b % 9)] : DIGITS[b % 10];
    else if (c >= 'a' && c <= 'f') out += HEX[b % 16];
    else if (c >= 'A' && c <= 'F') out += HEX[b % 16]!.toUpperCase();
    else if (c >= 'a' && c <= 'z') out += LETTERS[b % 26];
    else if (c >= 'A' && c <= 'Z') out += LETTERS[b % 26]!.toUpperCase();
    else out += c;
  }
  return did.slice(0, cut) + out;
}

export class DidRewriter {
  /** Per copy (index 0 = copy 1): old did -> new did. */
  private readonly maps: Array<Map<string, string>> = [];

  /** `dids`: every device of the recording; `copies`: how many rewritten copies. */
  constructor(dids: Iterable<string>, readonly copies: number) {
    const originals = [...new Set(dids)];
    const taken = new Set(originals);
    for (let k = 1; k <= copies; k++) {
      const map = new Map<string, string>();
      for (const did of originals) {
        let salt = 0;
        let next = redraw(did, k, salt);
        // A collision (short dids have few of their shape) is drawn again; a did with nothing to
        // redraw (no letters or digits after its last dot) gets a suffix instead.
        while (taken.has(next)) next = ++salt < 16 ? redraw(did, k, salt) : `${did}-${k}${salt > 16 ? `-${salt}` : ''}`;
        taken.add(next);
        map.set(did, next);
      }
      this.maps.push(map);
    }
  }

  /** The new did of `did` in copy `copy` (1-based); `did` itself when it is not a device of the recording. */
  did(did: string, copy: number): string {
    return this.maps[copy - 1]?.get(did) ?? did;
  }

  /** The topic with its did rewritten for `copy`. */
  topic(topic: string, copy: number): string {
    const t = didInTopic(topic);
    if (t === undefined) return topic;
    return `${topic.slice(0, t.at)}${this.did(t.did, copy)}${topic.slice(t.at + t.did.length)}`;
  }

  /** The payload with every JSON string that is a device's did rewritten for `copy` (other bytes unchanged). */
  payload(payload: Buffer, copy: number): Buffer {
    const map = this.maps[copy - 1];
    if (!map || payload.indexOf(0x22) < 0) return payload;
    const text = payload.toString('utf8');
    let out = '';
    let copied = 0;
    // Walk the string literals (skipping escaped quotes); a literal with no escapes that is a did is replaced.
    for (let i = text.indexOf('"'); i >= 0; i = text.indexOf('"', i + 1)) {
      let end = i + 1;
      let escaped = false;
      while (end < text.length && text[end] !== '"') {
        if (text[end] === '\\') { escaped = true; end++; }
        end++;
      }
      if (end >= text.length) break;
      const to = escaped ? undefined : map.get(text.slice(i + 1, end));
      if (to !== undefined) {
        out += `${text.slice(copied, i + 1)}${to}`;
        copied = end;
      }
      i = end;
    }
    return copied === 0 ? payload : Buffer.from(out + text.slice(copied), 'utf8');
  }
}
