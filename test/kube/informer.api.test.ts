/**
 * The informer against a real API server: events, recovery from an apiserver restart mid-watch,
 * and from an expired resourceVersion (410 Gone).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/control-plane.js';
import { Informer } from '../../src/kube/informer.js';
import { KubeApiError, type RestClient } from '../../src/kube/rest.js';
import { eventually, testClient, useNamespace } from '../support/kube.js';

interface ConfigMap {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

function recording(informer: Informer<ConfigMap>): string[] {
  const seen: string[] = [];
  informer.on({
    onAdd: (cm) => seen.push(`add ${cm.metadata.name}`),
    onUpdate: (_old, cm) => seen.push(`update ${cm.metadata.name} ${cm.data?.v ?? ''}`),
    onDelete: (cm) => seen.push(`delete ${cm.metadata.name}`),
  });
  return seen;
}

async function createCm(client: RestClient, ns: string, name: string, v = '1'): Promise<ConfigMap> {
  return client.request<ConfigMap>('POST', `/api/v1/namespaces/${ns}/configmaps`, { body: { metadata: { name }, data: { v } } });
}

async function updateCm(client: RestClient, ns: string, name: string, v: string): Promise<void> {
  await client.request('PATCH', `/api/v1/namespaces/${ns}/configmaps/${name}`, { body: { data: { v } }, patchType: 'merge' });
}

async function deleteCm(client: RestClient, ns: string, name: string): Promise<void> {
  await client.request('DELETE', `/api/v1/namespaces/${ns}/configmaps/${name}`);
}

function names(informer: Informer<ConfigMap>): string[] {
  return informer
    .list()
    .map((c) => `${c.metadata.name}=${c.data?.v ?? ''}`)
    .filter((n) => !n.startsWith('kube-root-ca.crt'))
    .sort();
}

describe('informer on the shared API server', () => {
  const ns = useNamespace('informer');

  it('lists existing objects, then sees create, update and delete in order', async () => {
    await createCm(ns.client, ns.name, 'before');
    const informer = new Informer<ConfigMap>(ns.client, { path: `/api/v1/namespaces/${ns.name}/configmaps`, fieldSelector: 'metadata.name!=kube-root-ca.crt' });
    const seen = recording(informer);
    const abort = new AbortController();
    const running = informer.run(abort.signal);
    expect(await informer.waitForSync()).toBe(true);
    expect(seen).toEqual(['add before']);
    await createCm(ns.client, ns.name, 'a');
    await updateCm(ns.client, ns.name, 'a', '2');
    await deleteCm(ns.client, ns.name, 'before');
    await eventually(() => (seen.length >= 4 ? true : undefined), 'four events');
    expect(seen).toEqual(['add before', 'add a', 'update a 2', 'delete before']);
    expect(names(informer)).toEqual(['a=2']);
    abort.abort();
    await running;
  });
});

describe('informer across apiserver restarts', () => {
  let cp: ControlPlane;
  let client: RestClient;
  const ns = 'default';

  beforeAll(async () => {
    // Its own control plane, since this one gets stopped. Without the watch cache (which keeps
    // 75 s of history) and with compaction every second, old resourceVersions expire quickly.
    cp = await startControlPlane({ controllerManager: false, apiserverArgs: ['--etcd-compaction-interval=1s', '--watch-cache=false'] });
    client = testClient(cp.kubeconfigPath);
  });

  afterAll(async () => {
    await cp.stop();
  });

  it('catches up on changes made while it was disconnected by an apiserver restart', async () => {
    await createCm(client, ns, 'r-keep');
    await createCm(client, ns, 'r-gone');
    const informer = new Informer<ConfigMap>(client, { path: `/api/v1/namespaces/${ns}/configmaps`, fieldSelector: 'metadata.name!=kube-root-ca.crt', backoffBaseMs: 200, backoffMaxMs: 1_000 });
    const seen = recording(informer);
    const abort = new AbortController();
    const running = informer.run(abort.signal);
    await informer.waitForSync();

    await cp.stopApiServer();
    await cp.startApiServer();
    await createCm(client, ns, 'r-new');
    await updateCm(client, ns, 'r-keep', '2');
    await deleteCm(client, ns, 'r-gone');

    await eventually(() => (names(informer).join(',') === 'r-keep=2,r-new=1' ? true : undefined), 'the store to catch up');
    expect(seen).toEqual(expect.arrayContaining(['add r-new', 'update r-keep 2', 'delete r-gone']));
    expect(informer.stats.errors).toBeGreaterThan(0);
    // Keeps watching after the restart.
    await createCm(client, ns, 'r-later');
    await eventually(() => (seen.includes('add r-later') ? true : undefined), 'events after the restart');
    abort.abort();
    await running;
    for (const name of ['r-keep', 'r-new', 'r-later']) await deleteCm(client, ns, name);
  });

  it('relists when its resourceVersion has expired (410 Gone) and reports what changed meanwhile', async () => {
    await createCm(client, ns, 'g-keep');
    await createCm(client, ns, 'g-gone');
    const informer = new Informer<ConfigMap>(client, { path: `/api/v1/namespaces/${ns}/configmaps`, fieldSelector: 'metadata.name!=kube-root-ca.crt' });
    const seen = recording(informer);
    const first = new AbortController();
    const running = informer.run(first.signal);
    await informer.waitForSync();
    first.abort();
    await running;
    const staleVersion = informer.list().map((c) => Number(c.metadata.resourceVersion)).sort((a, b) => b - a)[0];

    await deleteCm(client, ns, 'g-gone');
    await createCm(client, ns, 'g-new');
    // Churn so compaction moves past the informer's resourceVersion; wait until the server says so.
    await eventually(async () => {
      await updateCm(client, ns, 'g-keep', String(Date.now()));
      try {
        const probe = new AbortController();
        setTimeout(() => probe.abort(), 300);
        const seen = { gone: false };
        await client.watch<{ code?: number }>(`/api/v1/namespaces/${ns}/configmaps`, { resourceVersion: String(staleVersion) }, (event) => {
          seen.gone ||= event.type === 'ERROR' && event.object.code === 410;
        }, probe.signal);
        return seen.gone ? true : undefined;
      } catch (error) {
        return error instanceof KubeApiError && error.isGone ? true : undefined;
      }
    }, 'the old resourceVersion to expire', 40_000, 500);
    await updateCm(client, ns, 'g-keep', 'final');

    const second = new AbortController();
    const resumed = informer.run(second.signal);
    await eventually(() => (names(informer).join(',') === 'g-keep=final,g-new=1' ? true : undefined), 'the store after relist');
    expect(informer.stats.lists).toBe(2);
    expect(seen).toEqual(expect.arrayContaining(['delete g-gone', 'add g-new', 'update g-keep final']));
    second.abort();
    await resumed;
  });
});
