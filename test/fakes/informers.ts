import type { Informer, InformerHandlers, KubeObject } from '../../src/kube/informer.js';
import type { InformerSource } from '../../src/kube/shared-informers.js';

/** An informer cache the test fills by hand; handlers fire as the test changes it. */
export class FakeInformer<T extends KubeObject> {
  private readonly items = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];

  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }

  list(): T[] {
    return [...this.items.values()];
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  hasSynced(): boolean {
    return true;
  }

  upsert(object: T): void {
    const key = `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
    const previous = this.items.get(key);
    this.items.set(key, object);
    for (const h of this.handlers) {
      if (previous) h.onUpdate?.(previous, object);
      else h.onAdd?.(object);
    }
  }

  remove(object: T): void {
    const key = `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
    this.items.delete(key);
    for (const h of this.handlers) h.onDelete?.(object);
  }
}

/** An InformerSource of FakeInformers, one per path. */
export class FakeInformers implements InformerSource {
  private readonly byPath = new Map<string, FakeInformer<KubeObject>>();

  informer<T extends KubeObject>(path: string): Informer<T> {
    return this.fake<T>(path) as unknown as Informer<T>;
  }

  fake<T extends KubeObject>(path: string): FakeInformer<T> {
    let informer = this.byPath.get(path);
    if (!informer) {
      informer = new FakeInformer<KubeObject>();
      this.byPath.set(path, informer);
    }
    return informer as unknown as FakeInformer<T>;
  }
}
