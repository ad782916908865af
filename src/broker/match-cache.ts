/**
 * Remembering what a topic matches. Matching a published topic against wildcard filters splits
 * the topic into levels and walks a trie (qlobber); a device publishes on the same few topics
 * again and again, so a match is kept per topic until a filter that could change it comes or goes
 * (topic-index.ts keeps the wildcard filters' matches here; the monitor its taps').
 *
 * Filters change all the time in a running simulation, so a change forgets only what it can
 * change: topics are grouped by their first two levels (`device/{did}`), and a filter whose first
 * two levels are literal can only match topics of its own group; a filter with a wildcard there
 * (`device/+/up/#`, `#`, a `$share/` group) forgets everything. At most `MAX_TOPICS` topics are
 * kept (all are forgotten when full, so many distinct topics cost one map insert each and never
 * grow memory without bound).
 */

/** Topics remembered at once. */
export const MAX_TOPICS = 65_536;

/** A topic's group: its first two levels (the whole topic if it has fewer). */
function groupOf(topic: string): string {
  const i = topic.indexOf('/');
  if (i < 0) return topic;
  const j = topic.indexOf('/', i + 1);
  return j < 0 ? topic : topic.slice(0, j);
}

/** The only group whose topics `filter` can match, or null when it may match topics of any group. */
export function filterGroup(filter: string): string | null {
  if (filter.startsWith('$share/')) return null;
  const g = groupOf(filter);
  return g.includes('+') || g.includes('#') ? null : g;
}

export class TopicCache<T> {
  private entries = new Map<string, T>();
  /** The remembered topics of each group. */
  private groups = new Map<string, string[]>();
  /** Bumped by every forgetting: a match computed before it must not be remembered after it. */
  version = 0;

  get(topic: string): T | undefined {
    return this.entries.get(topic);
  }

  /** Remember `value` for `topic`, unless subscriptions changed since `asOf` (the version when it was computed). */
  set(topic: string, value: T, asOf = this.version): void {
    if (asOf !== this.version) return;
    if (this.entries.size >= MAX_TOPICS) this.reset();
    if (!this.entries.has(topic)) {
      const g = groupOf(topic);
      const members = this.groups.get(g);
      if (members) members.push(topic);
      else this.groups.set(g, [topic]);
    }
    this.entries.set(topic, value);
  }

  /** A subscription to `filter` came or went: forget every remembered topic it could match. */
  forget(filter: string): void {
    const g = filterGroup(filter);
    if (g === null) {
      this.clear();
      return;
    }
    this.version++;
    const members = this.groups.get(g);
    if (!members) return;
    for (const t of members) this.entries.delete(t);
    this.groups.delete(g);
  }

  /** Nothing remembered holds any more. */
  clear(): void {
    this.version++;
    if (this.entries.size > 0) this.reset();
  }

  get size(): number { return this.entries.size; }

  private reset(): void {
    this.entries = new Map();
    this.groups = new Map();
  }
}
