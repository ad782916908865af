/**
 * One value per object, kept on the object itself under a private symbol: what a `WeakMap` keyed
 * by the object does, without a table entry beside it. The broker keeps a few facts per
 * connection and per client (its transport, its outbox, its principal...), hundreds of thousands
 * of them with a fleet in process; in weak maps every entry is an ephemeron the collector must
 * trace apart on each full collection, here it is a field of an object already traced. Values go
 * with their object, as in a weak map. A symbol key stays out of `Object.keys`, `for...in` and
 * JSON, and no other code holds the symbol, so Aedes' own fields and code never meet it.
 */
export class Slot<K extends object, V> {
  private readonly key: symbol;

  constructor(name: string) {
    this.key = Symbol(name);
  }

  get(obj: K): V | undefined {
    return (obj as unknown as Record<symbol, V | undefined>)[this.key];
  }

  set(obj: K, value: V): void {
    (obj as unknown as Record<symbol, V | undefined>)[this.key] = value;
  }
}
