import type { V1Service } from '@kubernetes/client-node';
import type { KubeClient, RequestParams } from '../../src/kube/rest.js';
import { KubeApiError } from '../../src/kube/rest.js';
import type { FakeCache } from './cache.js';

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const base = target && typeof target === 'object' && !Array.isArray(target) ? (target as Record<string, unknown>) : {};
  const entries = new Map(Object.entries(base));
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) entries.delete(key);
    else entries.set(key, mergePatch(entries.get(key), value));
  }
  return Object.fromEntries(entries);
}

/**
 * The slice of the API server the LoadBalancer controller talks to, over a FakeCache of
 * Services: merge patches on a Service and its status (with resourceVersion checks), Event
 * writes. Every write is recorded; the cache sees each write as the watch would deliver it.
 */
export class FakeServiceApi implements KubeClient {
  readonly writes: { method: string; path: string; body: unknown }[] = [];
  /** Runs as a write reaches the fake, before it is applied: someone else's change in between. */
  beforeWrite: ((method: string, path: string) => void) | undefined;
  private version = 100;

  constructor(private readonly services: FakeCache<V1Service>) {}

  /** Writes other than Events: what a steady state must not make. */
  objectWrites(): { method: string; path: string; body: unknown }[] {
    return this.writes.filter((w) => !w.path.includes('/events'));
  }

  request<T>(method: string, path: string, params: RequestParams = {}): Promise<T> {
    if (method !== 'GET') {
      this.writes.push({ method, path, body: params.body });
      this.beforeWrite?.(method, path);
    }
    if (path.includes('/events')) return Promise.resolve({} as T);
    const match = /^\/api\/v1\/namespaces\/([^/]+)\/services\/([^/]+)(\/status)?$/.exec(path);
    if (!match) return Promise.reject(new KubeApiError(404, 'NotFound', `${method} ${path}: not in this fake`));
    const key = `${match[1] ?? ''}/${match[2] ?? ''}`;
    const current = this.services.get(key);
    if (!current) return Promise.reject(new KubeApiError(404, 'NotFound', `${key} not found`));
    if (method === 'GET') return Promise.resolve(structuredClone(current) as T);
    if (method !== 'PATCH') return Promise.reject(new KubeApiError(405, 'MethodNotAllowed', method));
    const body = params.body as { metadata?: { resourceVersion?: string } };
    const expected = body.metadata?.resourceVersion;
    if (expected !== undefined && expected !== current.metadata?.resourceVersion) return Promise.reject(new KubeApiError(409, 'Conflict', 'the object has been modified'));
    const { resourceVersion: _ignored, ...metadataPatch } = body.metadata ?? {};
    const patch = match[3] ? { status: (body as { status?: unknown }).status } : { ...body, metadata: metadataPatch, status: undefined };
    const next = mergePatch(structuredClone(current), JSON.parse(JSON.stringify(patch))) as V1Service;
    next.metadata = { ...next.metadata, resourceVersion: String(++this.version) };
    // Finalizers gone from a deleting object: the server deletes it.
    if (next.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) {
      this.services.delete(key);
      return Promise.resolve(next as T);
    }
    // The cache (the watch) sees the write before its answer arrives, as it often does.
    this.services.set(next);
    return Promise.resolve(structuredClone(next) as T);
  }

  watch(): Promise<void> {
    return Promise.reject(new Error('FakeServiceApi does not watch: use FakeCache'));
  }
}
