/**
 * Remembering which subscriptions a topic matches. Aedes matches every published topic twice
 * against a topic trie (qlobber): in the emitter, to find the subscribers to deliver to, and for
 * QoS 1 in the persistence, to find the persistent sessions to queue for. Each match splits the
 * topic into levels and walks the trie; a device publishes on the same few topics again and
 * again, and subscriptions change rarely once clients are connected. So a match is kept per topic
 * until any subscription changes (all are forgotten then: simple and always right), and at most
 * `MAX_TOPICS` topics are kept (all are forgotten when full, so many distinct topics cost one
 * map insert each and never grow memory).
 */

/** Topics remembered at once. */
export const MAX_TOPICS = 8192;

export class TopicCache<T> {
  private entries = new Map<string, T>();
  /** Bumped by every clear(): a match computed before it must not be remembered after it. */
  version = 0;

  get(topic: string): T | undefined {
    return this.entries.get(topic);
  }

  /** Remember `value` for `topic`, unless subscriptions changed since `asOf` (the version when it was computed). */
  set(topic: string, value: T, asOf = this.version): void {
    if (asOf !== this.version) return;
    if (this.entries.size >= MAX_TOPICS) this.entries = new Map();
    this.entries.set(topic, value);
  }

  /** Subscriptions changed: nothing remembered holds any more. */
  clear(): void {
    this.version++;
    if (this.entries.size > 0) this.entries = new Map();
  }

  get size(): number { return this.entries.size; }
}

/** The matcher mqemitter keeps in `_matcher` (a qlobber Qlobber). */
export interface TopicMatcher<V> {
  add(topic: string, value: V): unknown;
  remove(topic: string, value?: V): unknown;
  match(topic: string): V[];
}

/**
 * Make `matcher` remember its matches (in place: the same object, its add/remove/match wrapped).
 * Callers must not change the arrays `match` returns (mqemitter only reads them).
 */
export function rememberMatches<V>(matcher: TopicMatcher<V>): TopicCache<V[]> {
  const cache = new TopicCache<V[]>();
  const add = matcher.add.bind(matcher);
  const remove = matcher.remove.bind(matcher);
  const match = matcher.match.bind(matcher);
  matcher.add = (topic, value) => {
    cache.clear();
    return add(topic, value);
  };
  matcher.remove = (topic, value) => {
    cache.clear();
    return value === undefined ? remove(topic) : remove(topic, value);
  };
  matcher.match = (topic) => {
    let found = cache.get(topic);
    if (found === undefined) {
      found = match(topic);
      cache.set(topic, found);
    }
    return found;
  };
  return cache;
}
