/**
 * One value per object, kept on the object itself under a private symbol: what a `WeakMap` keyed
 * by the object does, without a table entry beside it. The broker keeps a few facts per
 * connection and per client (its transport, its outbox, its principal...), hundreds of thousands
 * of them with a fleet in process; in weak maps every entry is an ephemeron the collector must
 * trace apart on each full collection, here it is a field of an object already traced. Values go
 * with their object, as in a weak map. Nothing outside this module can see or reach the symbol.
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

  has(obj: K): boolean {
    return (obj as unknown as Record<symbol, V | undefined>)[this.key] !== undefined;
  }

  /** Forget the value (the field stays, undefined, so the object keeps its shape). */
  delete(obj: K): void {
    (obj as unknown as Record<symbol, V | undefined>)[this.key] = undefined;
  }
}
