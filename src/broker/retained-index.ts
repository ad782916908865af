/**
 * Retained messages looked up by topic instead of by scan.
 *
 * aedes-persistence (memory) answers every SUBSCRIBE by testing the filter against every retained
 * message. Our devices keep a retained state each, and every device and app client subscribes to
 * literal topics (`device/{did}/down/rpc`, `device/{did}/up/rpc`), so connecting N devices costs
 * N x retained tests: a third of the CPU of a 10,000-device run. This wrapper keeps an index of
 * the retained messages by topic, answers literal filters from it, and passes filters with
 * wildcards to the original (same semantics).
 */
import { Readable } from 'node:stream';
import memory from 'aedes-persistence';

interface RetainedPacket { topic: string; payload: Buffer; [key: string]: unknown }
interface MemoryPersistence {
  storeRetained(packet: RetainedPacket): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): Readable;
  createRetainedStream(pattern: string): Readable;
}

const isLiteral = (pattern: string): boolean => !pattern.includes('+') && !pattern.includes('#');

/** The default in-memory persistence of Aedes with a by-topic index of retained messages. */
export function indexedMemoryPersistence(): object {
  const base = (memory as unknown as () => MemoryPersistence)();
  const retained = new Map<string, RetainedPacket>();

  const storeRetained = async (packet: RetainedPacket): Promise<void> => {
    await base.storeRetained(packet);
    if (packet.payload.length === 0) retained.delete(packet.topic);
    else retained.set(packet.topic, { ...packet });
  };
  const combi = (patterns: string[]): Readable => {
    const literal = patterns.filter(isLiteral);
    const wild = patterns.filter((p) => !isLiteral(p));
    if (wild.length === 0) {
      return Readable.from(literal.flatMap((p) => (retained.has(p) ? [retained.get(p)!] : [])));
    }
    const rest = base.createRetainedStreamCombi(wild);
    return Readable.from((async function* () {
      for (const p of literal) if (retained.has(p)) yield retained.get(p)!;
      for await (const packet of rest) yield packet as RetainedPacket;
    })());
  };
  const single = (pattern: string): Readable => combi([pattern]);

  return new Proxy(base as object, {
    get(target, prop) {
      if (prop === 'storeRetained') return storeRetained;
      if (prop === 'createRetainedStreamCombi') return combi;
      if (prop === 'createRetainedStream') return single;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
