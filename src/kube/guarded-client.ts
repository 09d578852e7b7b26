/**
 * A KubeClient that refuses writes when `mayWrite()` says no: a leader checks, locally and
 * right before every write, that its Lease is still held with margin. A paused process (GC,
 * SIGSTOP, a stalled VM) resumes with its timers late; this check needs no timer, so a deposed
 * leader's first write after resuming is refused, not sent.
 */
import type { KubeClient, RequestParams, WatchEvent } from './rest.js';

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export class NotLeaderError extends Error {
  constructor(method: string, path: string) {
    super(`not leading: refusing ${method} ${path}`);
    this.name = 'NotLeaderError';
  }
}

export class GuardedClient implements KubeClient {
  /** Writes refused so far, for tests and metrics. */
  refused = 0;

  constructor(
    private readonly inner: KubeClient,
    private readonly mayWrite: () => boolean,
  ) {}

  request<T>(method: string, path: string, params?: RequestParams): Promise<T> {
    if (!READ_METHODS.has(method.toUpperCase()) && !this.mayWrite()) {
      this.refused++;
      return Promise.reject(new NotLeaderError(method, path));
    }
    return this.inner.request<T>(method, path, params);
  }

  watch<T>(path: string, query: Record<string, string | number | boolean | undefined>, onEvent: (event: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    return this.inner.watch(path, query, onEvent, signal);
  }
}
