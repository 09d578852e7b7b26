/**
 * The LoadBalancer controller with a fake cache, a fake API and a recording provider (as
 * k8s.io/cloud-provider's controller_test.go does): what it writes and calls for each state.
 */
import type { V1Node, V1Service } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { EventSink, EventType, ObjectReference } from '../../../src/kube/events.js';
import { createLogger } from '../../../src/kube/logger.js';
import { ProviderError, type LoadBalancerProvider } from '../../../src/providers/provider.js';
import { LoadBalancerController } from '../../../src/reconcile/loadbalancer/controller.js';
import { FINALIZER, PROVISIONED_BY_ANNOTATION, READY_CONDITION } from '../../../src/reconcile/loadbalancer/planner.js';
import { deleting, node, provisionedWith, svc, withClass, withIngress, withType } from '../../builders/service.js';
import { FakeCache } from '../../fakes/cache.js';
import { FakeClock } from '../../fakes/clock.js';
import { FlakyProvider, TEST_CLOUD } from '../../fakes/flaky-provider.js';
import { FakeServiceApi } from '../../fakes/service-api.js';

class RecordingEvents implements EventSink {
  readonly events: { name: string; uid: string | undefined; type: EventType; reason: string; message: string }[] = [];
  record(object: ObjectReference, type: EventType, reason: string, message: string): void {
    this.events.push({ name: object.name, uid: object.uid, type, reason, message });
  }
  reasons(): string[] {
    return this.events.map((e) => e.reason);
  }
}

interface Harness {
  controller: LoadBalancerController;
  services: FakeCache<V1Service>;
  nodes: FakeCache<V1Node>;
  api: FakeServiceApi;
  provider: FlakyProvider;
  events: RecordingEvents;
  signal: AbortSignal;
  reconcile(name: string): ReturnType<LoadBalancerController['reconcileKey']>;
  service(name: string): V1Service | undefined;
}

async function harness(options: { services?: V1Service[]; nodes?: V1Node[]; provider?: FlakyProvider; providers?: LoadBalancerProvider[] } = {}): Promise<Harness> {
  const services = new FakeCache<V1Service>(options.services ?? []);
  const nodes = new FakeCache<V1Node>(options.nodes ?? [node('n1')]);
  const api = new FakeServiceApi(services);
  const provider = options.provider ?? new FlakyProvider(TEST_CLOUD, 0, () => new ProviderError('unused', { retryable: true }));
  const events = new RecordingEvents();
  const all = options.providers ?? [provider];
  const controller = new LoadBalancerController({
    client: api,
    services,
    nodes,
    providers: new Map(all.map((p) => [p.providerClass, p])),
    knownClasses: new Set([...all.map((p) => p.providerClass), 'portico.dev/aws-nlb']),
    events,
    clock: new FakeClock(),
    logger: createLogger('silent'),
    registry: new Registry(),
  });
  const signal = new AbortController().signal;
  await controller.prepare(signal);
  return {
    controller,
    services,
    nodes,
    api,
    provider,
    events,
    signal,
    reconcile: (name) => controller.reconcileKey(`default/${name}`, signal),
    service: (name) => services.get(`default/${name}`),
  };
}

describe('LoadBalancerController', () => {
  it('claims a new Service in one write, ensures it with the eligible nodes, then writes status once', async () => {
    const h = await harness({ services: [svc('web', withClass(TEST_CLOUD))], nodes: [node('n1'), node('n2')] });
    const outcome = await h.reconcile('web');
    expect(outcome.kind).toBe('requeueAfter');
    const writes = h.api.objectWrites();
    expect(writes.map((w) => `${w.method} ${w.path}`)).toEqual(['PATCH /api/v1/namespaces/default/services/web', 'PATCH /api/v1/namespaces/default/services/web/status']);
    expect(writes[0]?.body).toMatchObject({ metadata: { finalizers: [FINALIZER], annotations: { [PROVISIONED_BY_ANNOTATION]: TEST_CLOUD } } });
    expect(h.provider.callsFor('default/web')).toEqual([{ method: 'ensure', key: 'default/web', nodes: ['n1', 'n2'], abortedAtEnd: false }]);
    expect(h.service('web')?.status?.loadBalancer?.ingress).toEqual([{ hostname: 'web.lb.example.test' }]);
    expect(h.events.events.find((e) => e.reason === 'EnsuredLoadBalancer')).toMatchObject({ uid: 'uid-web', message: 'Ensured load balancer: web.lb.example.test' });
  });

  it('makes no write and no provider call when nothing changed', async () => {
    const h = await harness({ services: [svc('web', withClass(TEST_CLOUD))] });
    await h.reconcile('web');
    const writes = h.api.writes.length;
    const calls = h.provider.calls.length;
    const outcome = await h.reconcile('web');
    expect(outcome.kind).toBe('requeueAfter');
    expect(h.api.writes.length).toBe(writes);
    expect(h.provider.calls.length).toBe(calls);
  });

  it('schedules no re-ensure for a provider that is not resynced: a resting controller has no timer per Service', async () => {
    const provider = Object.assign(new FlakyProvider(TEST_CLOUD, 0, () => new ProviderError('unused', { retryable: true })), { resync: false });
    const h = await harness({ services: [svc('web', withClass(TEST_CLOUD))], provider });
    expect((await h.reconcile('web')).kind).toBe('done');
    const calls = h.provider.calls.length;
    expect((await h.reconcile('web')).kind).toBe('done');
    expect(h.provider.calls.length).toBe(calls);
    // Events still bring it back: a spec change is ensured at once.
    h.services.set({ ...svc('web', withClass(TEST_CLOUD)), spec: { ...h.service('web')?.spec, ports: [{ port: 8443, protocol: 'TCP' }] } });
    await h.reconcile('web');
    expect(h.provider.callsFor('default/web', 'ensure')).toHaveLength(2);
  });

  it('does not queue a Service again for its own writes, whose watch events arrive before their answers', async () => {
    const h = await harness({ services: [svc('web', withClass(TEST_CLOUD))] });
    await h.reconcile('web');
    expect(h.api.objectWrites()).toHaveLength(2);
    expect(h.controller.queue.len()).toBe(0);
  });

  it('queues a Service again when someone else changed it while our write was in flight', async () => {
    const h = await harness({ services: [svc('web', withClass(TEST_CLOUD))] });
    h.api.beforeWrite = (_method, path) => {
      if (!path.endsWith('/status')) return;
      h.api.beforeWrite = undefined;
      const current = h.service('web');
      if (!current) throw new Error('missing');
      // Not an input of ours (spec, labels, annotations): only the version tells it is not our write.
      h.services.set({ ...current, metadata: { ...current.metadata, resourceVersion: '999' }, status: { loadBalancer: { ingress: [{ ip: '203.0.113.9' }] } } });
    };
    await h.reconcile('web');
    expect(h.controller.queue.len()).toBe(1);
  });

  it('updates backends only (no ensure, no write) when the eligible node set changes', async () => {
    const h = await harness({ services: [svc('web', withClass(TEST_CLOUD))] });
    await h.reconcile('web');
    const writes = h.api.objectWrites().length;
    h.nodes.set(node('n2'));
    await h.reconcile('web');
    expect(h.provider.callsFor('default/web').map((c) => c.method)).toEqual(['ensure', 'updateBackends']);
    expect(h.provider.callsFor('default/web', 'updateBackends')[0]?.nodes).toEqual(['n1', 'n2']);
    expect(h.api.objectWrites().length).toBe(writes);
  });

  it('deletes the balancer and then releases the finalizer of a deleted Service', async () => {
    const h = await harness({ services: [svc('web', withClass(TEST_CLOUD))] });
    await h.reconcile('web');
    const current = h.service('web');
    if (!current) throw new Error('missing');
    h.services.set({ ...structuredClone(current), metadata: { ...structuredClone(current.metadata), deletionTimestamp: new Date() } });
    await h.reconcile('web');
    expect(h.provider.callsFor('default/web').map((c) => c.method)).toEqual(['ensure', 'ensureDeleted']);
    expect(h.service('web')).toBeUndefined();
    expect(h.events.reasons()).toEqual(expect.arrayContaining(['DeletingLoadBalancer', 'DeletedLoadBalancer']));
  });

  it('never queues or touches Services that are not ours', async () => {
    const h = await harness({ services: [svc('other', withClass('example.com/lb')), svc('cip', withType('ClusterIP'))] });
    expect(h.controller.queue.len()).toBe(0);
    await h.reconcile('other');
    await h.reconcile('cip');
    expect(h.api.writes).toEqual([]);
    expect(h.provider.calls).toEqual([]);
  });

  it('surfaces a retryable provider error as a condition and retries after the hinted delay', async () => {
    const flaky = new FlakyProvider(TEST_CLOUD, 1, () => new ProviderError('Throttling: rate exceeded', { retryable: true, retryAfterMs: 1_500 }));
    const h = await harness({ services: [svc('web', withClass(TEST_CLOUD))], provider: flaky });
    expect(await h.reconcile('web')).toEqual({ kind: 'requeueAfter', ms: 1_500 });
    const condition = h.service('web')?.status?.conditions?.find((c) => c.type === READY_CONDITION);
    expect(condition).toMatchObject({ status: 'False', reason: 'ProviderError', message: 'Throttling: rate exceeded' });
    expect(h.events.reasons()).toContain('SyncLoadBalancerFailed');
    expect((await h.reconcile('web')).kind).toBe('requeueAfter');
    expect(h.service('web')?.status?.conditions?.find((c) => c.type === READY_CONDITION)?.status).toBe('True');
  });

  it('folds what the provider did into the one EnsuredLoadBalancer; its Warnings go out on their own', async () => {
    const provider = new FlakyProvider(TEST_CLOUD, 0, () => new ProviderError('unused', { retryable: true }));
    provider.eventsOnEnsure.push(
      { type: 'Normal', reason: 'CreatedSecurityGroup', message: 'created security group web-sg (sg-1)' },
      { type: 'Warning', reason: 'UnusableProviderID', message: 'node n9 has no instance' },
      { type: 'Normal', reason: 'CreatedLoadBalancer', message: 'created NLB web' },
    );
    const h = await harness({ services: [svc('web', withClass(TEST_CLOUD))], provider });
    await h.reconcile('web');
    expect(h.events.events.map((e) => `${e.type} ${e.reason}: ${e.message}`)).toEqual([
      'Warning UnusableProviderID: node n9 has no instance',
      'Normal EnsuredLoadBalancer: Ensured load balancer: web.lb.example.test (created security group web-sg (sg-1); created NLB web)',
    ]);
  });

  it('records what the provider did before a failed ensure on its own, before the failure', async () => {
    const provider = new FlakyProvider(TEST_CLOUD, 1, () => new ProviderError('CreateListener: throttled', { retryable: true }));
    provider.eventsOnEnsure.push({ type: 'Normal', reason: 'CreatedLoadBalancer', message: 'created NLB web' });
    const h = await harness({ services: [svc('web', withClass(TEST_CLOUD))], provider });
    await h.reconcile('web');
    expect(h.events.events.map((e) => `${e.type} ${e.reason}: ${e.message}`)).toEqual(['Normal CreatedLoadBalancer: created NLB web', 'Warning SyncLoadBalancerFailed: CreateListener: throttled']);
  });

  it('releases a deleted Service whose provisioned-by names a provider not running here, asking every provider', async () => {
    const h = await harness({ services: [svc('web', withClass(TEST_CLOUD), provisionedWith('portico.dev/aws-nlb'), withIngress('203.0.113.10'), deleting)] });
    await h.reconcile('web');
    expect(h.provider.callsFor('default/web', 'ensureDeleted')).toHaveLength(1);
    expect(h.service('web')).toBeUndefined();
    expect(h.events.events.find((e) => e.reason === 'ReleasedUnknownOwner')?.message).toContain('portico.dev/aws-nlb is not enabled');
  });

  it('names an unknown portico.dev class in the condition and holds nothing for it', async () => {
    const h = await harness({ services: [svc('typo', withClass('portico.dev/l3'))] });
    expect((await h.reconcile('typo')).kind).toBe('terminal');
    const condition = h.service('typo')?.status?.conditions?.find((c) => c.type === READY_CONDITION);
    expect(condition).toMatchObject({ status: 'False', reason: 'ProviderNotConfigured' });
    expect(condition?.message).toContain('portico.dev/l3 is not a load-balancer class');
    expect(h.service('typo')?.metadata?.finalizers).toBeUndefined();
  });
});
