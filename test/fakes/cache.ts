import type { Cache, InformerHandlers, KubeObject } from '../../src/kube/informer.js';
import { objectKey } from '../../src/kube/informer.js';

/**
 * An informer cache the test fills by hand: synced from the start, handlers called on every
 * change. Objects are frozen on the way in, so a consumer that mutates cached objects throws.
 */
export class FakeCache<T extends KubeObject> implements Cache<T> {
  private readonly store = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];

  constructor(items: readonly T[] = []) {
    for (const item of items) this.store.set(objectKey(item), deepFreeze(structuredClone(item)));
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }

  waitForSync(): Promise<boolean> {
    return Promise.resolve(true);
  }

  set(item: T): void {
    const frozen = deepFreeze(structuredClone(item));
    const key = objectKey(frozen);
    const old = this.store.get(key);
    this.store.set(key, frozen);
    for (const h of this.handlers) {
      if (old) h.onUpdate?.(old, frozen);
      else h.onAdd?.(frozen);
    }
  }

  delete(key: string): void {
    const old = this.store.get(key);
    if (!old) return;
    this.store.delete(key);
    for (const h of this.handlers) h.onDelete?.(old);
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
