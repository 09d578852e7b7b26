/** Ownership marks and status helpers against the real API server: no write when unchanged, 409 retried. */
import type { V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { claimPatch, releasePatch, type OwnershipMarks } from '../../src/kube/ownership.js';
import { patchStatus, patchWithRetry } from '../../src/kube/patch.js';
import { useNamespace } from '../support/kube.js';

const ns = useNamespace('patch');

async function createService(name: string): Promise<V1Service> {
  return ns.client.request<V1Service>('POST', `/api/v1/namespaces/${ns.name}/services`, {
    body: { metadata: { name }, spec: { type: 'LoadBalancer', loadBalancerClass: 'example.com/none', ports: [{ port: 80 }] } },
  });
}

const path = (name: string): string => `/api/v1/namespaces/${ns.name}/services/${name}`;

const marks = (finalizer: string): OwnershipMarks => ({ finalizer, annotation: 'example.com/owner' });

describe('ownership marks (finalizer + owner annotation in one patch)', () => {
  it('claims once, then makes no write; releases only ours', async () => {
    const created = await createService('fin');
    const claim = (s: V1Service, finalizer: string, owner: string): Promise<{ object: V1Service; wrote: boolean }> => patchWithRetry(ns.client, path('fin'), s, (o) => claimPatch(o, marks(finalizer), owner));
    const added = await claim(created, 'example.com/a', 'one');
    expect(added.wrote).toBe(true);
    expect(added.object.metadata?.annotations?.['example.com/owner']).toBe('one');
    const again = await claim(added.object, 'example.com/a', 'one');
    expect(again.wrote).toBe(false);
    expect(again.object.metadata?.resourceVersion).toBe(added.object.metadata?.resourceVersion);
    const other = await ns.client.request<V1Service>('PATCH', path('fin'), { body: { metadata: { finalizers: ['example.com/a', 'example.com/b'] } }, patchType: 'merge' });
    const removed = await patchWithRetry(ns.client, path('fin'), other, (o) => releasePatch(o, marks('example.com/a')));
    expect(removed.object.metadata?.finalizers).toEqual(['example.com/b']);
    expect(removed.object.metadata?.annotations?.['example.com/owner']).toBeUndefined();
    expect((await patchWithRetry(ns.client, path('fin'), removed.object, (o) => releasePatch(o, marks('example.com/a')))).wrote).toBe(false);
    await ns.client.request('PATCH', path('fin'), { body: { metadata: { finalizers: null } }, patchType: 'merge' });
  });

  it('retries on 409 Conflict from a stale copy without losing the concurrent change', async () => {
    const created = await createService('conflict');
    // Someone else adds their finalizer after we read.
    await ns.client.request('PATCH', path('conflict'), { body: { metadata: { finalizers: ['example.com/theirs'] } }, patchType: 'merge' });
    const result = await patchWithRetry(ns.client, path('conflict'), created, (o) => claimPatch(o, marks('example.com/ours'), 'us'));
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
