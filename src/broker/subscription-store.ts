/**
 * The sessions' subscriptions, for the in-memory persistence (persistence.ts): what
 * aedes-persistence's memory store keeps of them, with its semantics, and its topic trie
 * (QlobberSub) replaced by a TopicIndex (topic-index.ts), where each device's literal
 * subscription costs one Map entry instead of a trie path, and a QoS 1 publish finds the sessions
 * to queue for without splitting its topic.
 *
 * As aedes-persistence: each session keeps its subscriptions by filter, the last SUBSCRIBE to a
 * filter wins; only subscriptions with QoS above 0 are matched (they are what a session is sent
 * while it is offline); a match lists each (session, filter) pair once as { clientId, topic, qos,
 * rh, rap, nl }. The objects of a match are the store's own and live as long as the subscription:
 * Aedes only reads them.
 */
import { TopicIndex } from './topic-index.js';

/** A subscription as Aedes hands it to the persistence. */
export interface SubscriptionRequest {
  topic: string;
  qos: number;
  rh?: number;
  rap?: boolean;
  nl?: boolean;
  /** MQTT 5 subscription identifier: kept for the session, not in matches (as aedes-persistence). */
  subscriptionIdentifier?: number;
}

/** A subscription as a match lists it. */
export interface MatchedSubscription {
  clientId: string;
  topic: string;
  qos: number;
  rh: number | undefined;
  rap: boolean | undefined;
  nl: boolean | undefined;
}

interface Stored {
  request: Omit<SubscriptionRequest, 'topic'>;
  /** In the index while its QoS is above 0. */
  matched: MatchedSubscription | null;
}

export class SubscriptionStore {
  private readonly sessions = new Map<string, Map<string, Stored>>();
  private readonly index = new TopicIndex<MatchedSubscription>();
  private matchedCount = 0;

  add(clientId: string, subs: readonly SubscriptionRequest[]): void {
    let stored = this.sessions.get(clientId);
    if (!stored) this.sessions.set(clientId, (stored = new Map()));
    for (const sub of subs) {
      const { topic } = sub;
      const request: Stored['request'] = { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl };
      if (sub.subscriptionIdentifier !== undefined) request.subscriptionIdentifier = sub.subscriptionIdentifier;
      const old = stored.get(topic);
      let matched = old?.matched ?? null;
      if (sub.qos > 0) {
        if (matched) Object.assign(matched, { qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl });
        else {
          matched = { clientId, topic, qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl };
          this.index.add(topic, matched);
          this.matchedCount++;
        }
      } else if (matched) {
        this.unmatch(topic, matched);
        matched = null;
      }
      stored.set(topic, { request, matched });
    }
  }

  remove(clientId: string, topics: readonly string[]): void {
    const stored = this.sessions.get(clientId);
    if (!stored) return;
    for (const topic of topics) {
      const old = stored.get(topic);
      if (!old) continue;
      if (old.matched) this.unmatch(topic, old.matched);
      stored.delete(topic);
    }
    if (stored.size === 0) this.sessions.delete(clientId);
  }

  /** Every subscription of the session goes. */
  clean(clientId: string): void {
    const stored = this.sessions.get(clientId);
    if (!stored) return;
    for (const [topic, s] of stored) if (s.matched) this.unmatch(topic, s.matched);
    this.sessions.delete(clientId);
  }

  /** The session's subscriptions (fresh objects), as Aedes restores them. */
  of(clientId: string): Array<SubscriptionRequest & { topic: string }> {
    const stored = this.sessions.get(clientId);
    return stored ? [...stored].map(([topic, s]) => ({ topic, ...s.request })) : [];
  }

  /** The QoS > 0 subscriptions matching `topic`. The array must not be changed. */
  match(topic: string): MatchedSubscription[] {
    return this.index.match(topic);
  }

  /** The sessions subscribed to exactly `filter`. */
  *clientsOf(filter: string): Generator<string> {
    for (const [clientId, stored] of this.sessions) if (stored.has(filter)) yield clientId;
  }

  /** QoS > 0 subscriptions and sessions with any subscription (aedes-persistence's countOffline). */
  count(): { subsCount: number; clientsCount: number } {
    return { subsCount: this.matchedCount, clientsCount: this.sessions.size };
  }

  private unmatch(topic: string, matched: MatchedSubscription): void {
    this.index.remove(topic, matched);
    this.matchedCount--;
  }
}
