/**
 * Subscriptions indexed for matching published topics. Aedes keeps its subscriptions in topic
 * tries (qlobber): the emitter's, to deliver, and the persistence's (QoS 1), to queue for
 * sessions. Nearly every subscription in a simulation is to a literal topic (each device to its
 * own `device/{did}/down/rpc`); in a trie each costs a split into levels and a Map per level when
 * it is added, and every match splits the topic and walks the levels. Here literal filters sit in
 * one Map keyed by the filter (a literal filter matches exactly the topic equal to it) and only
 * filters with wildcards go to tries; what the wildcard filters match is remembered per topic
 * (TopicCache, match-cache.ts) until a wildcard subscription that could change it comes or goes.
 * A topic no wildcard filter can reach by its last or first level (WildcardReach) skips them
 * altogether: each device's state topic is published once when it comes online, and would
 * otherwise be matched and remembered once, for nothing (the simulation's operator subscribes to
 * `device/+/up/rpc`, which only topics ending in `/rpc` can match). Likewise a topic whose last
 * level ends no literal filter skips the Map: a published topic is a new string, so looking it up
 * hashes all of it and then reads a slot of a table with an entry per subscription (cold in the
 * cache), for nothing when, as in a simulation, every literal filter ends in `/rpc` and devices
 * publish on their telemetry topics.
 *
 * The order of a match is the trie's. qlobber walks the levels depth first, at each level the
 * `#` branch before the level's word and the word before `+`; a wildcard filter leaves a topic's
 * literal path at its first wildcard level. So the wildcard filters whose first wildcard is `#`
 * come before the topic's literal subscribers and those whose first is `+` after, and each kind
 * has a trie of its own to put the literal subscribers between them. Values of one filter keep
 * the order they were added in (a value added twice is there twice), as in qlobber.
 */
import { createRequire } from 'node:module';
import { TopicCache } from './match-cache.js';

/** What mqemitter and aedes-persistence use of a qlobber trie. */
export interface TopicMatcher<V> {
  add(filter: string, value: V): unknown;
  /** Without `value`: every value of `filter`. */
  remove(filter: string, value?: V): unknown;
  match(topic: string): V[];
}

/** qlobber (the trie mqemitter and aedes-persistence use; it ships no type declarations). */
const { Qlobber } = createRequire(import.meta.url)('qlobber') as { Qlobber: new (options: object) => TopicMatcher<unknown> };

/** The first wildcard level of `filter` (`#` or `+`), or null for a literal filter. */
export function firstWildcard(filter: string): '#' | '+' | null {
  if (!filter.includes('+') && !filter.includes('#')) return null;
  for (const level of filter.split('/')) if (level === '#' || level === '+') return level;
  return null; // a '+' or '#' inside a level is not a wildcard (and MQTT forbids it in filters)
}

/** The wildcard filters' values matching a topic: `before` of them go before its literal subscribers. */
interface WildMatch<V> {
  readonly values: V[];
  readonly before: number;
}

export interface TopicIndexOptions {
  /** Whether `+` also matches an empty level (mqemitter's `matchEmptyLevels`, qlobber's `match_empty_levels`). */
  matchEmptyLevels?: boolean;
}

export class TopicIndex<V> implements TopicMatcher<V> {
  /** Each literal filter's values; an array is replaced, never changed, once a match may have returned it. */
  private readonly literal = new Map<string, V[]>();
  private readonly hashFirst: TopicMatcher<V>;
  private readonly plusFirst: TopicMatcher<V>;
  /** Each wildcard filter's values (the tries hold them too; these say what a removal removes). */
  private readonly wildcards = new Map<string, V[]>();
  private readonly reach = new WildcardReach();
  /** The literal filters, counted by their last level. */
  private readonly literalLast = new Levels('last');
  /** What the wildcard filters match, per topic. */
  readonly remembered = new TopicCache<WildMatch<V>>();

  constructor(options: TopicIndexOptions = {}) {
    const trie = { separator: '/', wildcard_one: '+', wildcard_some: '#', match_empty_levels: options.matchEmptyLevels === true };
    this.hashFirst = new Qlobber(trie) as TopicMatcher<V>;
    this.plusFirst = new Qlobber(trie) as TopicMatcher<V>;
  }

  add(filter: string, value: V): this {
    const wildcard = firstWildcard(filter);
    if (wildcard === null) {
      const had = this.literal.get(filter);
      this.literal.set(filter, had ? [...had, value] : [value]);
      if (!had) this.literalLast.change(lastLevel(filter), 1);
      return this;
    }
    this.remembered.forget(filter);
    (wildcard === '#' ? this.hashFirst : this.plusFirst).add(filter, value);
    const had = this.wildcards.get(filter);
    if (had) had.push(value);
    else {
      this.wildcards.set(filter, [value]);
      this.reach.add(filter);
    }
    return this;
  }

  /** Removes the last-added occurrence of `value` under `filter`, or every value of `filter` (as qlobber). */
  remove(filter: string, value?: V): this {
    const wildcard = firstWildcard(filter);
    if (wildcard === null) {
      const had = this.literal.get(filter);
      if (!had) return this;
      const at = value === undefined ? -1 : had.lastIndexOf(value);
      if (value === undefined || (at >= 0 && had.length === 1)) {
        this.literal.delete(filter);
        this.literalLast.change(lastLevel(filter), -1);
      } else if (at >= 0) this.literal.set(filter, [...had.slice(0, at), ...had.slice(at + 1)]);
      return this;
    }
    const had = this.wildcards.get(filter);
    const at = had && value !== undefined ? had.lastIndexOf(value) : -1;
    if (!had || (value !== undefined && at < 0)) return this; // nothing to remove
    this.remembered.forget(filter);
    const trie = wildcard === '#' ? this.hashFirst : this.plusFirst;
    if (value === undefined) trie.remove(filter);
    else trie.remove(filter, value);
    if (value !== undefined && had.length > 1) {
      had.splice(at, 1);
      return this;
    }
    this.wildcards.delete(filter);
    this.reach.remove(filter);
    return this;
  }

  /** The values of every filter matching `topic`, in qlobber's order. Callers must not change the array. */
  match(topic: string): V[] {
    if (!this.reach.mayMatch(topic)) return this.literalOf(topic) ?? NO_MATCH.values;
    let wild = this.remembered.get(topic);
    if (wild === undefined) {
      wild = this.matchWildcards(topic);
      this.remembered.set(topic, wild);
    }
    const literal = this.literalOf(topic);
    if (literal === undefined) return wild.values;
    if (wild.values.length === 0) return literal;
    return [...wild.values.slice(0, wild.before), ...literal, ...wild.values.slice(wild.before)];
  }

  /** The values of the literal filter equal to `topic`; the Map is not asked when no literal filter ends as `topic` does. */
  private literalOf(topic: string): V[] | undefined {
    return this.literalLast.has(topic) ? this.literal.get(topic) : undefined;
  }

  private matchWildcards(topic: string): WildMatch<V> {
    const before = this.hashFirst.match(topic);
    const after = this.plusFirst.match(topic);
    if (after.length === 0) return before.length === 0 ? NO_MATCH : { values: before, before: before.length };
    return { values: before.length === 0 ? after : before.concat(after), before: before.length };
  }
}

const NO_MATCH: WildMatch<never> = { values: [], before: 0 };

/**
 * Which topics the wildcard filters can reach, going by one level of each: a filter whose last
 * level is literal (`device/+/up/rpc`) matches only topics with that last level; one whose last
 * is a wildcard but whose first is literal (`device/#`) only topics with that first level; one
 * that starts and ends with wildcards (`#`, `+/x/+`) any topic.
 */
export class WildcardReach {
  private readonly byLast = new Levels('last');
  private readonly byFirst = new Levels('first');
  private anywhere = 0;

  add(filter: string): void { this.change(filter, 1); }
  remove(filter: string): void { this.change(filter, -1); }

  /** False when no wildcard filter added (and not removed) can match `topic`. */
  mayMatch(topic: string): boolean {
    return this.anywhere > 0 || this.byLast.has(topic) || this.byFirst.has(topic);
  }

  private change(filter: string, by: 1 | -1): void {
    const last = lastLevel(filter);
    if (!isWildcard(last)) return this.byLast.change(last, by);
    const first = firstLevel(filter);
    if (!isWildcard(first)) return this.byFirst.change(first, by);
    this.anywhere += by;
  }
}

const isWildcard = (level: string): boolean => level === '+' || level === '#';

/** A count of filters per level (a topic's first or last). */
class Levels {
  private readonly counts = new Map<string, number>();
  constructor(private readonly at: 'first' | 'last') {}

  change(level: string, by: 1 | -1): void {
    const n = (this.counts.get(level) ?? 0) + by;
    if (n > 0) this.counts.set(level, n);
    else this.counts.delete(level);
  }

  /** Whether `topic`'s first (or last) level is one counted; a few levels are compared in place, without a substring. */
  has(topic: string): boolean {
    const counts = this.counts;
    if (counts.size === 0) return false;
    if (counts.size <= 8) {
      for (const level of counts.keys()) if (this.at === 'last' ? endsWithLevel(topic, level) : startsWithLevel(topic, level)) return true;
      return false;
    }
    return counts.has(this.at === 'last' ? lastLevel(topic) : firstLevel(topic));
  }
}

/** The first level of a topic or filter. */
function firstLevel(s: string): string {
  const i = s.indexOf('/');
  return i < 0 ? s : s.slice(0, i);
}

/** The last level of a topic or filter. */
function lastLevel(s: string): string {
  return s.slice(s.lastIndexOf('/') + 1);
}

/** Whether `level` is `topic`'s first level. */
function startsWithLevel(topic: string, level: string): boolean {
  return topic.startsWith(level) && (topic.length === level.length || topic.charCodeAt(level.length) === SLASH);
}

/** Whether `level` is `topic`'s last level. */
function endsWithLevel(topic: string, level: string): boolean {
  return topic.endsWith(level) && (topic.length === level.length || topic.charCodeAt(topic.length - level.length - 1) === SLASH);
}

const SLASH = 0x2f;
