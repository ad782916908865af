/**
 * MQTT 3.1.1 topic filters for the monitor's tap: validation with a message naming the problem
 * (contract/mqtt-topics.ts, shared with the broker), and an index that finds every owner whose
 * filters match a topic in time proportional to the topic's depth, not to the number of owners
 * or filters.
 */

import { TopicCache } from '../broker/match-cache.js';

export { filterProblem } from '../contract/mqtt-topics.js';

interface Node<T> {
  children: Map<string, Node<T>>;
  plus: Node<T> | null;
  /** Owners of a filter ending here with "#". */
  hash: Set<T> | null;
  /** Owners of a filter ending exactly here. */
  exact: Set<T> | null;
}

const node = <T>(): Node<T> => ({ children: new Map(), plus: null, hash: null, exact: null });

const NONE: readonly never[] = Object.freeze([]);

/**
 * Filters by owner, as a trie of levels. Owners are compared by identity. Each topic's matching
 * owners are remembered (the broker's TopicCache, match-cache.ts) until a filter that can match
 * it comes or goes: devices publish on the same few topics again and again, and the monitor asks
 * for every message the broker carries.
 */
export class FilterIndex<T> {
  private readonly root: Node<T> = node();
  private filters = 0;
  private readonly remembered = new TopicCache<readonly T[]>();

  /** Number of (owner, filter) pairs in the index. */
  get size(): number { return this.filters; }

  /** Add `owner`'s interest in a valid filter; returns false if it was there already. */
  add(filter: string, owner: T): boolean {
    const added = this.insert(filter, owner);
    if (added) this.remembered.forget(filter);
    return added;
  }

  private insert(filter: string, owner: T): boolean {
    let n = this.root;
    const levels = filter.split('/');
    for (let i = 0; i < levels.length; i++) {
      const l = levels[i]!;
      if (l === '#') {
        n.hash ??= new Set();
        return this.put(n.hash, owner);
      }
      if (l === '+') n = n.plus ??= node();
      else {
        let c = n.children.get(l);
        if (!c) n.children.set(l, (c = node()));
        n = c;
      }
    }
    n.exact ??= new Set();
    return this.put(n.exact, owner);
  }

  /** Remove `owner`'s interest in `filter`; returns false if it was not there. Prunes empty branches. */
  remove(filter: string, owner: T): boolean {
    const removed = this.removeAt(this.root, filter.split('/'), 0, owner);
    if (removed) {
      this.filters--;
      this.remembered.forget(filter);
    }
    return removed;
  }

  /**
   * Call `fn` once for each owner with a filter matching `topic` (an owner with several matching
   * filters: once), in the order of the owners' matching filters as they were when the topic was
   * last looked up. `fn` may change the index; the owners called are those matching before.
   */
  match(topic: string, fn: (owner: T) => void): void {
    const owners = this.matching(topic);
    for (let i = 0; i < owners.length; i++) fn(owners[i]!);
  }

  /** The owners `match` would call, as a list the index keeps (do not change it). */
  matching(topic: string): readonly T[] {
    if (this.filters === 0) return NONE;
    let owners = this.remembered.get(topic);
    if (owners === undefined) {
      owners = this.lookup(topic);
      this.remembered.set(topic, owners);
    }
    return owners;
  }

  /** Topics whose matches are remembered now. */
  get rememberedTopics(): number { return this.remembered.size; }

  /** Every owner with a filter matching `topic`, once each. */
  private lookup(topic: string): T[] {
    const sets = this.scratch;
    sets.length = 0;
    // MQTT-4.7.2-1: filters starting with a wildcard do not match topics starting with "$".
    this.collect(this.root, topic, 0, topic.startsWith('$'), sets);
    const owners = sets.length === 1 ? [...sets[0]!] : sets.length > 1 ? [...new Set(sets.flatMap((set) => [...set]))] : [];
    sets.length = 0;
    return owners;
  }

  private readonly scratch: Array<Set<T>> = [];

  /** The owner sets of every filter matching the levels of `topic` from offset `start` on (no split: this runs per message). */
  private collect(n: Node<T>, topic: string, start: number, dollar: boolean, out: Array<Set<T>>): void {
    const top = dollar && start === 0;
    if (!top && n.hash?.size) out.push(n.hash); // "a/#" also matches "a"
    if (start > topic.length) {
      if (n.exact?.size) out.push(n.exact);
      return;
    }
    let end = topic.indexOf('/', start);
    if (end === -1) end = topic.length;
    if (n.children.size) {
      const c = n.children.get(topic.slice(start, end));
      if (c) this.collect(c, topic, end + 1, dollar, out);
    }
    if (n.plus && !top) this.collect(n.plus, topic, end + 1, dollar, out);
  }

  private put(set: Set<T>, owner: T): boolean {
    if (set.has(owner)) return false;
    set.add(owner);
    this.filters++;
    return true;
  }

  private removeAt(n: Node<T>, levels: string[], i: number, owner: T): boolean {
    const l = levels[i];
    if (l === undefined) return n.exact?.delete(owner) ?? false;
    if (l === '#') return n.hash?.delete(owner) ?? false;
    const child = l === '+' ? n.plus : n.children.get(l);
    if (!child) return false;
    const removed = this.removeAt(child, levels, i + 1, owner);
    if (removed && isEmpty(child)) {
      if (l === '+') n.plus = null;
      else n.children.delete(l);
    }
    return removed;
  }
}

function isEmpty<T>(n: Node<T>): boolean {
  return n.children.size === 0 && n.plus === null && !n.hash?.size && !n.exact?.size;
}
