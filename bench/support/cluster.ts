/** Kubernetes helpers for benchmarks: bulk create/clean up, paginated lists, a completion watch. */
import { performance } from 'node:perf_hooks';
import type { V1Service } from '@kubernetes/client-node';
import { renderCrdFiles } from '../../src/api/render.js';
import { applyYaml } from '../../src/kube/apply.js';
import { isKubeError, type KubeClient, type WatchEvent } from '../../src/kube/rest.js';
import { forEachLimit, sleep } from './util.js';

interface List<T> {
  items?: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

/** Lists a collection page by page, like the informer does (limit 500 by default). */
export async function listAll(client: KubeClient, path: string, pageSize = 500, signal?: AbortSignal): Promise<{ items: V1Service[]; resourceVersion: string }> {
  const items: V1Service[] = [];
  let continueToken: string | undefined;
  let resourceVersion = '';
  do {
    const page = await client.request<List<V1Service>>('GET', path, { query: { limit: pageSize, continue: continueToken }, signal });
    items.push(...(page.items ?? []));
    continueToken = page.metadata?.continue || undefined;
    resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
  } while (continueToken);
  return { items, resourceVersion };
}

/** Retries a request that failed for a server-side or throttling reason (creation and cleanup only). */
async function withRetry<T>(fn: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (attempt >= attempts || !isKubeError(error) || !error.retryable) throw error;
      await sleep(error.retryAfterMs ?? 200 * attempt);
    }
  }
}

export async function ensureNamespace(client: KubeClient, name: string, labels: Record<string, string> = {}): Promise<void> {
  await client.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } } }).catch((error: unknown) => {
    if (!isKubeError(error, 409)) throw error;
  });
}

export interface ServiceShape {
  loadBalancerClass: string;
  ipFamilies: string[];
  ipFamilyPolicy: string;
}

export function serviceName(index: number): string {
  return `lb-${String(index).padStart(5, '0')}`;
}

export function loadBalancerService(namespace: string, name: string, shape: ServiceShape): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace, labels: { app: 'bench' } },
    spec: {
      type: 'LoadBalancer',
      loadBalancerClass: shape.loadBalancerClass,
      ipFamilies: shape.ipFamilies,
      ipFamilyPolicy: shape.ipFamilyPolicy,
      // Thousands of LoadBalancer Services would exhaust the 2768-port NodePort range; the
      // benchmark has no nodes, so none are needed.
      allocateLoadBalancerNodePorts: false,
      selector: { app: name },
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 80 }],
    },
  };
}

/** Creates `count` Services with at most `concurrency` requests in flight. */
export async function createServices(client: KubeClient, namespace: string, count: number, shape: ServiceShape, concurrency: number): Promise<void> {
  const indexes = Array.from({ length: count }, (_, i) => i);
  await forEachLimit(indexes, concurrency, async (i) => {
    const body = loadBalancerService(namespace, serviceName(i), shape);
    await withRetry(() => client.request('POST', `/api/v1/namespaces/${namespace}/services`, { body }));
  });
}

/** Strips all finalizers from every Service in `namespace` and deletes them (cleanup between rounds). */
export async function deleteAllServices(client: KubeClient, namespace: string, concurrency: number): Promise<number> {
  const { items } = await listAll(client, `/api/v1/namespaces/${namespace}/services`);
  await forEachLimit(items, concurrency, async (service) => {
    const path = `/api/v1/namespaces/${namespace}/services/${service.metadata?.name ?? ''}`;
    const ignoreGone = (error: unknown): void => {
      if (!isKubeError(error, 404)) throw error;
    };
    if ((service.metadata?.finalizers ?? []).length > 0) {
      await withRetry(() => client.request('PATCH', path, { body: { metadata: { finalizers: null } }, patchType: 'merge' })).catch(ignoreGone);
    }
    await withRetry(() => client.request('DELETE', path)).catch(ignoreGone);
  });
  return items.length;
}

export interface Completion {
  /** performance.now() when the last object became done, or undefined when stopped first. */
  finished: Promise<number | undefined>;
  done(): number;
  stop(): void;
}

/**
 * Counts the Services in a collection that satisfy `isDone` and resolves when `expected` of them
 * do. Lists once (so the count is right from the start), then follows a watch from that list's
 * resourceVersion; a broken watch relists. Call and await it *before* starting the work, so
 * the watch sees every change.
 */
export async function watchCompletion(client: KubeClient, path: string, expected: number, isDone: (service: V1Service) => boolean): Promise<Completion> {
  const stopper = new AbortController();
  const doneNames = new Set<string>();
  let resolveFinished: (at: number | undefined) => void = () => undefined;
  const finished = new Promise<number | undefined>((resolve) => (resolveFinished = resolve));
  let finishedAt: number | undefined;

  const observe = (object: V1Service, deleted: boolean): void => {
    const name = object.metadata?.name ?? '';
    if (!deleted && isDone(object)) doneNames.add(name);
    else doneNames.delete(name);
    if (finishedAt === undefined && doneNames.size >= expected) {
      finishedAt = performance.now();
      resolveFinished(finishedAt);
      stopper.abort();
    }
  };

  const relist = async (): Promise<string> => {
    const { items, resourceVersion } = await listAll(client, path, 500, stopper.signal);
    doneNames.clear();
    for (const item of items) observe(item, false);
    return resourceVersion;
  };

  let resourceVersion = await relist();
  // A function, so that checks after an await are not narrowed away.
  const stopped = (): boolean => stopper.signal.aborted;
  const follow = async (): Promise<void> => {
    while (!stopped()) {
      try {
        const state = { gone: false };
        await client.watch<V1Service>(
          path,
          { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 600 },
          (event: WatchEvent<V1Service>) => {
            if (event.type === 'ERROR') {
              state.gone = true;
              return;
            }
            resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
            if (event.type !== 'BOOKMARK') observe(event.object, event.type === 'DELETED');
          },
          stopper.signal,
        );
        if (state.gone && !stopped()) resourceVersion = await relist();
      } catch {
        if (stopped()) break;
        await sleep(250);
        resourceVersion = await relist().catch(() => resourceVersion);
      }
    }
  };
  if (finishedAt === undefined) {
    void follow().finally(() => resolveFinished(finishedAt));
  }
  return {
    finished,
    done: () => doneNames.size,
    stop: () => {
      stopper.abort();
      resolveFinished(finishedAt);
    },
  };
}

/** Applies Portico's CRDs and waits until the API server serves AddressPools. */
export async function installCrds(client: KubeClient): Promise<void> {
  for (const text of Object.values(renderCrdFiles())) await applyYaml(client, text);
  for (let attempt = 0; ; attempt++) {
    try {
      await client.request('GET', '/apis/portico.dev/v1alpha1/addresspools');
      return;
    } catch (error) {
      if (attempt > 100) throw error;
      await sleep(100);
    }
  }
}
