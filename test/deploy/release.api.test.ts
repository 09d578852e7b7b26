/**
 * `portico release --all` against the real API server, with the real controller having
 * provisioned the Services first: the bare-metal provider through the registry, a cloud-like
 * fake provider whose ensureDeleted must be called (and whose failure keeps the finalizer), and a
 * Service of a provider not enabled here (skipped unless --force). Afterwards nothing is stuck
 * Terminating.
 */
import type { CoreV1Event, V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runRelease } from '../../src/cmd/release.js';
import { createLogger } from '../../src/kube/logger.js';
import { isKubeError } from '../../src/kube/rest.js';
import { defineProvider, ProviderError, type ProviderContext, type ReadonlyService } from '../../src/providers/provider.js';
import { FINALIZER, PROVISIONED_BY_ANNOTATION, READY_CONDITION } from '../../src/reconcile/loadbalancer/planner.js';
import { fakeProviderModule, FlakyProvider, TEST_CLOUD } from '../fakes/flaky-provider.js';
import { installCrds, startTestController, type TestController } from '../support/controller.js';
import { eventually, useNamespace } from '../support/kube.js';

const ns = useNamespace('release');
const client = ns.client;
const POOLS = '/apis/portico.dev/v1alpha1/addresspools';
const poolName = `${ns.name}-pool`;
const L2 = 'portico.dev/l2';
const NOT_ENABLED = 'portico.dev/aws-nlb';
let controller: TestController | undefined;

/** Its ensureDeleted fails like a cloud API outage. */
class FailingDeleteProvider extends FlakyProvider {
  override ensureDeleted(ctx: ProviderContext, service: ReadonlyService): Promise<void> {
    void super.ensureDeleted(ctx, service);
    return Promise.reject(new ProviderError('DeleteLoadBalancer: service unavailable', { retryable: true }));
  }
}

const path = (name: string): string => `/api/v1/namespaces/${ns.name}/services/${name}`;
const get = (name: string): Promise<V1Service> => client.request<V1Service>('GET', path(name));

function service(name: string, loadBalancerClass: string, metadata: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, ...metadata }, spec: { type: 'LoadBalancer', loadBalancerClass, selector: { app: name }, ports: [{ port: 80, protocol: 'TCP' }] } };
}

interface Run {
  code: number;
  out: string;
  err: string;
}

async function release(...args: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const modules = args.includes('--failing-cloud') ? [fakeProviderModule(new FailingDeleteProvider(TEST_CLOUD, 0, () => new ProviderError('x', { retryable: true })))] : [fakeProviderModule(cloudAtRelease)];
  const code = await runRelease(
    [`--kubeconfig=${inject('kubeconfig')}`, `--providers=${L2},${TEST_CLOUD}`, `--leader-elect-namespace=${ns.name}`, ...args.filter((a) => a !== '--failing-cloud')],
    { stdout: (t) => (out += t), stderr: (t) => (err += t), logger: createLogger('silent'), providerModules: modules },
  );
  return { code, out, err };
}

/** A fresh provider instance, as a new `portico release` process has: it knows nothing in memory. */
const cloudAtRelease = new FlakyProvider(TEST_CLOUD, 0, () => new ProviderError('x', { retryable: true }));

function marks(s: V1Service): { finalizer: boolean; annotation: boolean; ingress: number; ready: boolean } {
  return {
    finalizer: (s.metadata?.finalizers ?? []).includes(FINALIZER),
    annotation: s.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION] !== undefined,
    ingress: (s.status?.loadBalancer?.ingress ?? []).length,
    ready: (s.status?.conditions ?? []).some((c) => c.type === READY_CONDITION),
  };
}

beforeAll(async () => {
  await installCrds(client);
  await client.request('POST', POOLS, { body: { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name: poolName }, spec: { addresses: ['198.51.100.232/29'], allocation: { namespaces: [ns.name] } } } });
  const cloud = new FlakyProvider(TEST_CLOUD, 0, () => new ProviderError('x', { retryable: true }));
  controller = await startTestController([`--providers=${L2},${TEST_CLOUD}`], { providerModules: [fakeProviderModule(cloud)] });
  for (const body of [service('web', L2), service('stuck-l2', L2), service('cloud', TEST_CLOUD), service('foreign', 'example.com/other')]) await client.request('POST', `/api/v1/namespaces/${ns.name}/services`, { body });
  for (const name of ['web', 'stuck-l2', 'cloud']) {
    await eventually(async () => {
      const m = marks(await get(name));
      return m.finalizer && m.ingress > 0 && m.ready ? true : undefined;
    }, `${name} provisioned`);
  }
  await controller.stop();
  controller = undefined;
  // Deleted after the controller stopped: stuck Terminating on the finalizer, as users found it.
  await client.request('DELETE', path('stuck-l2'));
  expect((await get('stuck-l2')).metadata?.deletionTimestamp).toBeDefined();
  // Left behind by a provider this build or this run does not have.
  await client.request('POST', `/api/v1/namespaces/${ns.name}/services`, { body: service('orphan', NOT_ENABLED, { finalizers: [FINALIZER], annotations: { [PROVISIONED_BY_ANNOTATION]: NOT_ENABLED } }) });
}, 120_000);

afterAll(async () => {
  await controller?.stop();
  for (const name of ['web', 'stuck-l2', 'cloud', 'orphan', 'foreign', 'stuck']) {
    await client.request('PATCH', path(name), { body: { metadata: { finalizers: null } }, patchType: 'merge' }).catch(() => undefined);
  }
  await client.request('DELETE', `${POOLS}/${poolName}`).catch(() => undefined);
});

describe('portico release --all', () => {
  it('refuses while a controller holds the Lease, and changes nothing', async () => {
    const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'portico-controller' }, spec: { holderIdentity: 'portico-controller-abc', leaseDurationSeconds: 15, renewTime: new Date().toISOString().replace('Z', '000Z') } };
    await client.request('POST', `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases`, { body: lease });
    const run = await release('--all');
    await client.request('DELETE', `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/portico-controller`);
    expect(run.code).toBe(1);
    expect(run.err).toContain('portico-controller-abc holds the Lease');
    expect(marks(await get('web')).finalizer).toBe(true);
  });

  it('needs --all', async () => {
    const run = await release();
    expect(run.code).toBe(2);
    expect(run.err).toContain('pass --all');
  });

  it('--dry-run lists what it would do and writes nothing', async () => {
    const before = (await get('web')).metadata?.resourceVersion;
    const run = await release('--all', '--dry-run');
    expect(run.code).toBe(0);
    expect(run.out).toContain(`would release ${ns.name}/web: release the balancer through ${L2}; clear status.loadBalancer and the ${READY_CONDITION} condition; remove finalizer ${FINALIZER} and annotation ${PROVISIONED_BY_ANNOTATION}`);
    expect(run.out).toContain(`would release ${ns.name}/cloud: release the balancer through ${TEST_CLOUD}`);
    expect(run.out).toContain(`would skip ${ns.name}/orphan: provisioned by ${NOT_ENABLED}, which is not enabled here`);
    expect(run.out).not.toContain(`${ns.name}/foreign`);
    expect((await get('web')).metadata?.resourceVersion).toBe(before);
  });

  it('keeps the finalizer of a Service whose provider could not delete its balancer, and releases the others', async () => {
    const run = await release('--all', '--failing-cloud');
    expect(run.code).toBe(1);
    expect(run.out).toContain(`FAILED ${ns.name}/cloud: DeleteLoadBalancer: service unavailable`);
    expect(marks(await get('cloud'))).toMatchObject({ finalizer: true, annotation: true });
    const web = await get('web');
    expect(marks(web)).toEqual({ finalizer: false, annotation: false, ingress: 0, ready: false });
    const events = await eventually(async () => {
      const list = await client.request<{ items: CoreV1Event[] }>('GET', `/api/v1/namespaces/${ns.name}/events`, { query: { fieldSelector: 'involvedObject.name=web,reason=DeletedLoadBalancer' } });
      return list.items.length > 0 ? list.items : undefined;
    }, 'DeletedLoadBalancer Event on web');
    // With the uid, so `kubectl describe service web` shows it.
    expect(events[0]?.involvedObject.uid).toBe(web.metadata?.uid);
    // The Service stuck Terminating is gone once released.
    await eventually(() => get('stuck-l2').then(() => undefined, (error: unknown) => (isKubeError(error, 404) ? true : undefined)), 'stuck-l2 deleted');
  });

  it('calls ensureDeleted of the provider that made the balancer, through the registry', async () => {
    const run = await release('--all');
    expect(cloudAtRelease.callsFor(`${ns.name}/cloud`, 'ensureDeleted')).toHaveLength(1);
    expect(marks(await get('cloud'))).toEqual({ finalizer: false, annotation: false, ingress: 0, ready: false });
    // The orphan's provider is not enabled: skipped, so the exit code says something is left.
    expect(run.out).toContain(`skipped ${ns.name}/orphan`);
    expect(run.code).toBe(1);
    expect(marks(await get('orphan')).finalizer).toBe(true);
    expect((await get('foreign')).metadata?.finalizers ?? []).toEqual([]);
  });

  it('--force drops the marks of a Service whose provider is not enabled', async () => {
    const run = await release('--all', '--force');
    expect(run.out).toContain(`released ${ns.name}/orphan: leave the balancer of ${NOT_ENABLED} alone (--force)`);
    expect(marks(await get('orphan'))).toMatchObject({ finalizer: false, annotation: false });
  });

  it('leaves nothing stuck Terminating', async () => {
    for (const name of ['web', 'cloud', 'orphan', 'foreign']) await client.request('DELETE', path(name));
    for (const name of ['web', 'cloud', 'orphan', 'foreign']) {
      await eventually(() => get(name).then(() => undefined, (error: unknown) => (isKubeError(error, 404) ? true : undefined)), `${name} deleted`);
    }
    const again = await release('--all', '--dry-run');
    expect(again.out).not.toContain(ns.name);
  });
});

describe('portico release --all when a provider cannot start', () => {
  // Its informer lists a resource that does not exist, as the bare-metal provider's does once
  // the AddressPool CRD was deleted before the release.
  const NO_CRD = 'portico.dev/test-nocrd';
  const module = defineProvider({
    providerClass: NO_CRD,
    description: 'test fake needing a missing CRD',
    flags: {},
    parseSettings: () => ({ settings: {} }),
    create: (deps) => {
      deps.informers.informer('/apis/missing.example.com/v1/things');
      return new FlakyProvider(NO_CRD, 0, () => new ProviderError('x', { retryable: true }));
    },
  });
  const run = async (...args: string[]): Promise<Run> => {
    let out = '';
    let err = '';
    const code = await runRelease([`--kubeconfig=${inject('kubeconfig')}`, `--providers=${NO_CRD}`, `--leader-elect-namespace=${ns.name}`, '--all', ...args], {
      stdout: (t) => (out += t),
      stderr: (t) => (err += t),
      logger: createLogger('silent'),
      providerModules: [module],
      syncTimeoutMs: 1500,
    });
    return { code, out, err };
  };

  it('does not hang: skips its Services, and --force releases them without it', async () => {
    await client.request('POST', `/api/v1/namespaces/${ns.name}/services`, { body: service('stuck', NO_CRD, { finalizers: [FINALIZER], annotations: { [PROVISIONED_BY_ANNOTATION]: NO_CRD } }) });
    const first = await run();
    expect(first.out).toContain(`providers ${NO_CRD} could not start: /apis/missing.example.com/v1/things did not list within 2 s`);
    expect(first.out).toContain(`skipped ${ns.name}/stuck: ${NO_CRD} could not start`);
    expect(first.code).toBe(1);
    expect(marks(await get('stuck')).finalizer).toBe(true);
    const forced = await run('--force');
    expect(forced.out).toContain(`released ${ns.name}/stuck`);
    expect(marks(await get('stuck')).finalizer).toBe(false);
    await client.request('DELETE', path('stuck'));
  });
});
