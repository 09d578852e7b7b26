import type { KubeClient, RequestParams, WatchEvent } from '../../src/kube/rest.js';

/**
 * A KubeClient whose list answers from `items` and whose watches stay open, silent, until
 * aborted — unless the test pushes events into them. Records every call.
 */
export class SilentWatchClient implements KubeClient {
  readonly calls: string[] = [];
  items: object[] = [];
  private listeners: ((event: WatchEvent<unknown>) => void)[] = [];

  request<T>(method: string, path: string, _params?: RequestParams): Promise<T> {
    this.calls.push(`${method} ${path}`);
    return Promise.resolve({ items: this.items, metadata: { resourceVersion: '10' } } as T);
  }

  watch<T>(path: string, query: Record<string, string | number | boolean | undefined>, onEvent: (event: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    this.calls.push(`WATCH ${path} rv=${String(query.resourceVersion)}`);
    const listener = onEvent as (event: WatchEvent<unknown>) => void;
    this.listeners.push(listener);
    return new Promise((resolve) => {
      // As a real client: a watch started on an aborted signal ends at once.
      if (signal.aborted) {
        this.listeners = this.listeners.filter((l) => l !== listener);
        resolve();
        return;
      }
      signal.addEventListener('abort', () => {
        this.listeners = this.listeners.filter((l) => l !== listener);
        resolve();
      }, { once: true });
    });
  }

  push(event: WatchEvent<unknown>): void {
    for (const listener of this.listeners) listener(event);
  }
}
