/** Finalizer and status helpers against the real API server: no write when unchanged, 409 retried. */
import type { V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { patchStatus, setFinalizer } from '../../src/kube/patch.js';
import { useNamespace } from '../support/kube.js';

const ns = useNamespace('patch');

async function createService(name: string): Promise<V1Service> {
  return ns.client.request<V1Service>('POST', `/api/v1/namespaces/${ns.name}/services`, {
    body: { metadata: { name }, spec: { type: 'LoadBalancer', loadBalancerClass: 'example.com/none', ports: [{ port: 80 }] } },
  });
}

const path = (name: string): string => `/api/v1/namespaces/${ns.name}/services/${name}`;

describe('setFinalizer', () => {
  it('adds once, then makes no write; removes only ours', async () => {
    const created = await createService('fin');
    const added = await setFinalizer(ns.client, path('fin'), created, 'example.com/a', true);
    expect(added.wrote).toBe(true);
    const again = await setFinalizer(ns.client, path('fin'), added.object, 'example.com/a', true);
    expect(again.wrote).toBe(false);
    expect(again.object.metadata?.resourceVersion).toBe(added.object.metadata?.resourceVersion);
    const other = await setFinalizer(ns.client, path('fin'), again.object, 'example.com/b', true);
    const removed = await setFinalizer(ns.client, path('fin'), other.object, 'example.com/a', false);
    expect(removed.object.metadata?.finalizers).toEqual(['example.com/b']);
    await setFinalizer(ns.client, path('fin'), removed.object, 'example.com/b', false);
  });

  it('retries on 409 Conflict from a stale copy without losing the concurrent change', async () => {
    const created = await createService('conflict');
    // Someone else adds their finalizer after we read.
    await ns.client.request('PATCH', path('conflict'), { body: { metadata: { finalizers: ['example.com/theirs'] } }, patchType: 'merge' });
    const result = await setFinalizer(ns.client, path('conflict'), created, 'example.com/ours', true);
    expect(result.wrote).toBe(true);
    expect(result.object.metadata?.finalizers).toEqual(['example.com/theirs', 'example.com/ours']);
    await ns.client.request('PATCH', path('conflict'), { body: { metadata: { finalizers: null } }, patchType: 'merge' });
  });
});

describe('patchStatus', () => {
  it('writes through the status subresource once, then not again for an equal status', async () => {
    const created = await createService('status');
    const desired = () => ({ loadBalancer: { ingress: [{ ip: '192.0.2.7', ipMode: 'VIP', ports: [{ port: 80, protocol: 'TCP' }] }] } });
    const first = await patchStatus(ns.client, path('status'), created as V1Service & { status?: Record<string, unknown> }, desired);
    expect(first.wrote).toBe(true);
    expect(first.object.status?.loadBalancer?.ingress?.[0]?.ip).toBe('192.0.2.7');
    const second = await patchStatus(ns.client, path('status'), first.object, desired);
    expect(second.wrote).toBe(false);
    // Spec writes through /status are ignored by the server: the helper only touches status.
    expect(second.object.spec?.type).toBe('LoadBalancer');
  });

  it('retries a status write that raced another writer', async () => {
    const created = await createService('status-race');
    await ns.client.request('PATCH', path('status-race'), { body: { metadata: { labels: { bumped: 'yes' } } }, patchType: 'merge' });
    const result = await patchStatus(ns.client, path('status-race'), created as V1Service & { status?: Record<string, unknown> }, () => ({ loadBalancer: { ingress: [{ ip: '192.0.2.8' }] } }));
    expect(result.wrote).toBe(true);
    expect(result.object.metadata?.labels?.bumped).toBe('yes');
  });
});
