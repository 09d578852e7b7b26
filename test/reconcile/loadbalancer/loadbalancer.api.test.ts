/**
 * The LoadBalancer controller end to end against the real API server: the bare-metal provider
 * with namespace-scoped pools, and a deliberately flaky provider for error handling.
 */
import type { V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyManifest, applyYaml, type Manifest } from '../../../src/kube/apply.js';
import { isKubeError } from '../../../src/kube/rest.js';
import { ProviderError } from '../../../src/providers/provider.js';
import { FINALIZER, PROVISIONED_BY_ANNOTATION } from '../../../src/reconcile/loadbalancer/planner.js';
import { fakeProviderModule, FlakyProvider, TEST_CLOUD } from '../../fakes/flaky-provider.js';
import { installCrds, readExample, startTestController, type TestController } from '../../support/controller.js';
import { eventually, useNamespace } from '../../support/kube.js';

const ns = useNamespace('lb');
const other = useNamespace('lb-other');
const { client } = ns;

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

function pool(name: string, addresses: string[], namespaces: string[], extra: Record<string, unknown> = {}): Manifest {
  return { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name }, spec: { addresses, allocation: { namespaces, ...extra } } };
}

function lbService(name: string, options: { annotations?: Record<string, string>; ports?: { port: number; protocol?: string }[]; spec?: Record<string, unknown>; namespace?: string } = {}): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: options.namespace ?? ns.name, annotations: options.annotations ?? {} },
    spec: {
      type: 'LoadBalancer',
      loadBalancerClass: 'portico.dev/l2',
      selector: { app: name },
      ports: (options.ports ?? [{ port: 80 }]).map((p, i) => ({ name: `p${String(i)}`, protocol: 'TCP', ...p })),
      ...options.spec,
    },
  };
}

async function getService(name: string, namespace = ns.name): Promise<V1Service> {
  return client.request<V1Service>('GET', `/api/v1/namespaces/${namespace}/services/${name}`);
}

function ingressIPs(service: V1Service): string[] {
  return (service.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? i.hostname ?? '');
}

function readyCondition(service: V1Service): Condition | undefined {
  return (service.status?.conditions as Condition[] | undefined)?.find((c) => c.type === 'LoadBalancerReady');
}

async function waitForIngress(name: string, count = 1, namespace = ns.name): Promise<V1Service> {
  return eventually(async () => {
    const s = await getService(name, namespace);
    return ingressIPs(s).length >= count && readyCondition(s)?.status === 'True' ? s : undefined;
  }, `${name} to get ${String(count)} address(es)`);
}

async function waitForCondition(name: string, reason: string, namespace = ns.name): Promise<Condition> {
  return eventually(async () => {
    const c = readyCondition(await getService(name, namespace));
    return c?.reason === reason ? c : undefined;
  }, `${name} to report ${reason}`);
}

async function deleteService(name: string, namespace = ns.name): Promise<void> {
  await client.request('DELETE', `/api/v1/namespaces/${namespace}/services/${name}`).catch((error: unknown) => {
    if (!isKubeError(error, 404)) throw error;
  });
}

/** Waits until `name` has an Event of this type and reason (Events are written asynchronously). */
async function waitForEvent(name: string, type: string, reason: string): Promise<void> {
  await eventually(async () => ((await eventsFor(name)).some((e) => e.type === type && e.reason === reason) ? true : undefined), `${type} ${reason} on ${name}`);
}

async function eventsFor(name: string): Promise<{ reason: string; message: string; type: string; count?: number }[]> {
  const list = await client.request<{ items: { reason: string; message: string; type: string; count?: number; involvedObject: { name: string } }[] }>('GET', `/api/v1/namespaces/${ns.name}/events`);
  return list.items.filter((e) => e.involvedObject.name === name);
}

let controller: TestController;
const pools: string[] = [];

beforeAll(async () => {
  await installCrds(client);
  // Small, namespace-scoped pools so exhaustion is reachable and other test files are unaffected.
  const main = pool(`${ns.name}-main`, ['192.0.2.16/29', '2001:db8:16::/125'], [ns.name], { priority: 1 });
  const spare = pool(`${ns.name}-spare`, ['192.0.2.32/30'], [ns.name], { priority: 2 });
  const foreign = pool(`${other.name}-only`, ['192.0.2.40/30'], [other.name]);
  for (const p of [main, spare, foreign]) {
    await applyManifest(client, p);
    pools.push(p.metadata.name);
  }
  controller = await startTestController(['--default-class=portico.dev/l2']);
});

afterAll(async () => {
  for (const name of (await client.request<{ items: V1Service[] }>('GET', `/api/v1/namespaces/${ns.name}/services`)).items.map((s) => s.metadata?.name ?? '')) {
    await deleteService(name);
  }
  await eventually(async () => ((await client.request<{ items: V1Service[] }>('GET', `/api/v1/namespaces/${ns.name}/services`)).items.length === 0 ? true : undefined), 'services deleted');
  await controller.stop();
  for (const name of pools) await client.request('DELETE', `/apis/portico.dev/v1alpha1/addresspools/${name}`).catch(() => undefined);
});

describe('bare-metal provider', () => {
  it('gives the seed nginx-loadbalancer an address, our finalizer and a Ready condition', async () => {
    await applyYaml(client, await readExample('seed/nginx-loadbalancer.yaml'), ns.name);
    const service = await waitForIngress('nginx-lb');
    expect(ingressIPs(service)[0]).toMatch(/^192\.0\.2\.(1[6-9]|2[0-3])$/);
    expect(service.metadata?.finalizers).toContain(FINALIZER);
    expect(service.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION]).toBe('portico.dev/l2');
    expect(service.status?.loadBalancer?.ingress?.[0]).toMatchObject({ ipMode: 'VIP', ports: [{ port: 80, protocol: 'TCP' }] });
    // One Event says it all: the address and the pool it came from.
    const ensured = await eventually(async () => (await eventsFor('nginx-lb')).find((e) => e.reason === 'EnsuredLoadBalancer'), 'EnsuredLoadBalancer');
    expect(ensured.message).toBe(`Ensured load balancer: ${ingressIPs(service)[0] ?? ''} (assigned from pool ${ns.name}-main)`);
    expect((await eventsFor('nginx-lb')).map((e) => e.reason)).not.toContain('IPAllocated');
  });

  it('makes no writes in steady state', async () => {
    const before = await getService('nginx-lb');
    // Re-queue the Service by touching an unrelated label; the controller must not write back.
    await client.request('PATCH', `/api/v1/namespaces/${ns.name}/services/nginx-lb`, { body: { metadata: { labels: { touched: 'yes' } } }, patchType: 'merge' });
    const touched = await getService('nginx-lb');
    await new Promise((resolve) => setTimeout(resolve, 1500)); // give the controller a chance to (wrongly) write
    const after = await getService('nginx-lb');
    expect(after.metadata?.resourceVersion).toBe(touched.metadata?.resourceVersion);
    expect(ingressIPs(after)).toEqual(ingressIPs(before));
  });

  it('releases the address and the finalizer when the Service becomes ClusterIP', async () => {
    await applyManifest(client, lbService('to-clusterip'));
    const service = await waitForIngress('to-clusterip');
    const ip = ingressIPs(service)[0];
    await client.request('PATCH', `/api/v1/namespaces/${ns.name}/services/to-clusterip`, {
      body: { spec: { type: 'ClusterIP', loadBalancerClass: null } },
      patchType: 'merge',
    });
    const cleaned = await eventually(async () => {
      const s = await getService('to-clusterip');
      return !(s.metadata?.finalizers ?? []).includes(FINALIZER) && ingressIPs(s).length === 0 ? s : undefined;
    }, 'finalizer and address released');
    expect(cleaned.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION]).toBeUndefined();
    expect(readyCondition(cleaned)).toBeUndefined();
    // The freed address is handed out again.
    await applyManifest(client, lbService('reuse', { annotations: { 'portico.dev/load-balancer-ips': ip ?? '' } }));
    expect(ingressIPs(await waitForIngress('reuse'))).toEqual([ip]);
    await deleteService('reuse');
  });

  it('lets a deleted Service go once its address is released', async () => {
    await applyManifest(client, lbService('doomed'));
    await waitForIngress('doomed');
    await deleteService('doomed');
    await eventually(async () => {
      try {
        await getService('doomed');
        return undefined;
      } catch (error) {
        return isKubeError(error, 404) ? true : undefined;
      }
    }, 'doomed to be gone');
    // Events are written off the reconcile path: poll for it.
    await eventually(async () => ((await eventsFor('doomed')).some((e) => e.reason === 'DeletedLoadBalancer') ? true : undefined), 'DeletedLoadBalancer event');
  });

  it('gives two sharing Services one address, and refuses a third that overlaps a port', async () => {
    const shared = { 'portico.dev/allow-shared-ip': 'web' };
    await applyManifest(client, lbService('share-http', { annotations: shared, ports: [{ port: 80 }] }));
    await applyManifest(client, lbService('share-https', { annotations: shared, ports: [{ port: 443 }] }));
    const a = await waitForIngress('share-http');
    const b = await waitForIngress('share-https');
    expect(ingressIPs(a)).toEqual(ingressIPs(b));

    await applyManifest(client, lbService('share-clash', { annotations: { ...shared, 'portico.dev/load-balancer-ips': ingressIPs(a)[0] ?? '' }, ports: [{ port: 80 }] }));
    const condition = await waitForCondition('share-clash', 'AllocationFailed');
    expect(condition.message).toMatch(/80/);
    await deleteService('share-clash');
  });

  it('refuses an address held by an unshared Service, saying so', async () => {
    const holder = await waitForIngress('nginx-lb');
    await applyManifest(client, lbService('wants-taken', { annotations: { 'portico.dev/load-balancer-ips': ingressIPs(holder)[0] ?? '' } }));
    const condition = await waitForCondition('wants-taken', 'AllocationFailed');
    expect(condition.message).toContain(ingressIPs(holder)[0]);
    await waitForEvent('wants-taken', 'Warning', 'AllocationFailed');
    await deleteService('wants-taken');
  });

  it('never hands out an address of a pool scoped to another namespace, even on request', async () => {
    await applyManifest(client, lbService('hijack', { annotations: { 'portico.dev/load-balancer-ips': '192.0.2.41' } }));
    const condition = await waitForCondition('hijack', 'AllocationFailed');
    expect(condition.message).toContain('AddressNotInAllowedPool');
    expect(ingressIPs(await getService('hijack'))).toEqual([]);
    // The rightful tenant gets it.
    await applyManifest(client, lbService('tenant', { namespace: other.name, annotations: { 'portico.dev/load-balancer-ips': '192.0.2.41' } }));
    expect(ingressIPs(await waitForIngress('tenant', 1, other.name))).toEqual(['192.0.2.41']);
    await deleteService('hijack');
    await deleteService('tenant', other.name);
  });

  it('assigns one address per family to a RequireDualStack Service', async () => {
    await applyManifest(client, lbService('dual', { spec: { ipFamilyPolicy: 'RequireDualStack', ipFamilies: ['IPv4', 'IPv6'] } }));
    const service = await waitForIngress('dual', 2);
    const ips = ingressIPs(service);
    expect(ips[0]).toMatch(/^192\.0\.2\./);
    expect(ips[1]).toMatch(/^2001:db8:16::/);
    await deleteService('dual');
  });

  it('reports malformed annotations as InvalidSpec naming the field, and keeps serving others', async () => {
    await applyManifest(client, lbService('malformed', { annotations: { 'portico.dev/load-balancer-ips': '192.0.2.999, ::zz' } }));
    const condition = await waitForCondition('malformed', 'InvalidSpec');
    expect(condition.message).toContain('metadata.annotations[portico.dev/load-balancer-ips]');
    await waitForEvent('malformed', 'Warning', 'SyncLoadBalancerFailed');
    await applyManifest(client, lbService('after-malformed'));
    await waitForIngress('after-malformed');
    // Fixing the annotation is picked up without a restart.
    await applyManifest(client, lbService('malformed'));
    await waitForIngress('malformed');
    await deleteService('malformed');
    await deleteService('after-malformed');
  });

  it('reports pool exhaustion and recovers as soon as an address frees', async () => {
    // main has 8 IPv4 addresses and spare 4; nginx-lb and the two sharing Services hold 2.
    const created: string[] = [];
    let exhausted: string | undefined;
    for (let i = 0; i < 12 && exhausted === undefined; i++) {
      const name = `fill-${String(i)}`;
      await applyManifest(client, lbService(name));
      created.push(name);
      const state = await eventually(async () => {
        const s = await getService(name);
        const c = readyCondition(s);
        return c?.status === 'True' ? 'ok' : c?.reason === 'AllocationFailed' ? 'exhausted' : undefined;
      }, `${name} to settle`);
      if (state === 'exhausted') exhausted = name;
    }
    expect(exhausted).toBeDefined();
    const condition = readyCondition(await getService(exhausted ?? ''));
    expect(condition?.message).toContain('PoolExhausted');
    await deleteService(created[0] ?? '');
    await waitForIngress(exhausted ?? '');
    for (const name of created) await deleteService(name);
  });
});

describe('controller restart', () => {
  it('restarting mid-burst hands out no address twice', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `burst-${String(i)}`);
    await controller.stop();
    await Promise.all(names.map((name) => applyManifest(client, lbService(name))));
    controller = await startTestController(['--default-class=portico.dev/l2']);
    // Stop again as soon as a few are done, then let a fresh controller finish the rest.
    await eventually(async () => {
      const list = await client.request<{ items: V1Service[] }>('GET', `/api/v1/namespaces/${ns.name}/services`);
      return list.items.filter((s) => s.metadata?.name?.startsWith('burst-') && ingressIPs(s).length > 0).length >= 3 ? true : undefined;
    }, 'a few burst Services to get addresses');
    await controller.stop();
    controller = await startTestController(['--default-class=portico.dev/l2']);
    const settled = await eventually(async () => {
      const list = await client.request<{ items: V1Service[] }>('GET', `/api/v1/namespaces/${ns.name}/services`);
      const lbs = list.items.filter((s) => s.spec?.type === 'LoadBalancer');
      return lbs.every((s) => readyCondition(s) !== undefined && (readyCondition(s)?.status === 'True' || readyCondition(s)?.reason === 'AllocationFailed')) ? lbs : undefined;
    }, 'every LoadBalancer Service to settle');
    const owners = new Map<string, string[]>();
    for (const s of settled) {
      const sharing = s.metadata?.annotations?.['portico.dev/allow-shared-ip'];
      for (const ip of ingressIPs(s)) owners.set(ip, [...(owners.get(ip) ?? []), sharing ? `shared:${sharing}` : (s.metadata?.name ?? '')]);
    }
    for (const [ip, holders] of owners) {
      const unshared = holders.filter((h) => !h.startsWith('shared:'));
      expect(unshared.length > 1 || (unshared.length === 1 && holders.length > 1), `${ip} held by ${holders.join(', ')}`).toBe(false);
    }
    for (const name of names) await deleteService(name);
  });
});

describe('Events', () => {
  it('gives each of many Services created together exactly one Normal Event, carrying its address', async () => {
    const name = `${ns.name}-events`;
    await applyManifest(client, pool(name, ['198.51.100.64/27'], [ns.name], { priority: 0 }));
    pools.push(name);
    const names = Array.from({ length: 24 }, (_, i) => `ev-${String(i)}`);
    await Promise.all(names.map((n) => applyManifest(client, lbService(n, { annotations: { 'portico.dev/address-pool': name } }))));
    const services = await Promise.all(names.map((n) => waitForIngress(n)));
    const normal = async (n: string): Promise<{ reason: string; message: string; count?: number }[]> => (await eventsFor(n)).filter((e) => e.type === 'Normal');
    await eventually(async () => ((await Promise.all(names.map(normal))).every((events) => events.length > 0) ? true : undefined), 'an Event on every Service');
    for (const service of services) {
      const n = service.metadata?.name ?? '';
      expect(await normal(n), n).toEqual([expect.objectContaining({ reason: 'EnsuredLoadBalancer', message: `Ensured load balancer: ${ingressIPs(service).join(', ')} (assigned from pool ${name})`, count: 1 })]);
    }
    for (const n of names) await deleteService(n);
  });
});

describe('provider errors', () => {
  it('converges after a provider fails N times with retryAfter, and is terminal for unsupported specs', async () => {
    await controller.stop();
    const flaky = new FlakyProvider(TEST_CLOUD, 3, () => new ProviderError('throttled', { retryable: true, retryAfterMs: 200 }));
    controller = await startTestController([`--providers=portico.dev/l2,${TEST_CLOUD}`, '--default-class=portico.dev/l2'], { providerModules: [fakeProviderModule(flaky)] });
    await applyManifest(client, lbService('flaky', { spec: { loadBalancerClass: TEST_CLOUD } }));
    const service = await waitForIngress('flaky');
    expect(ingressIPs(service)).toEqual(['flaky.lb.example.test']);
    expect(flaky.callsFor(`${ns.name}/flaky`, 'ensure').length).toBe(4);
    await waitForEvent('flaky', 'Warning', 'SyncLoadBalancerFailed');

    await applyManifest(client, lbService('sctp', { spec: { loadBalancerClass: TEST_CLOUD }, ports: [{ port: 5000, protocol: 'SCTP' }] }));
    const condition = await waitForCondition('sctp', 'InvalidSpec');
    expect(condition.message).toContain('spec.ports[0].protocol');
    expect(flaky.callsFor(`${ns.name}/sctp`)).toEqual([]);

    await deleteService('flaky');
    await eventually(() => (flaky.callsFor(`${ns.name}/flaky`, 'ensureDeleted').length > 0 ? true : undefined), 'flaky balancer deleted');
    await deleteService('sctp');
  });

  it('deletes the old balancer when a Service is recreated under the same name behind its back', async () => {
    await controller.stop();
    const cloud = new FlakyProvider(TEST_CLOUD, 0, () => new ProviderError('unused', { retryable: true }));
    controller = await startTestController([`--providers=portico.dev/l2,${TEST_CLOUD}`, '--default-class=portico.dev/l2'], { providerModules: [fakeProviderModule(cloud)] });
    const key = `${ns.name}/phoenix`;
    await applyManifest(client, lbService('phoenix', { spec: { loadBalancerClass: TEST_CLOUD } }));
    const first = await waitForIngress('phoenix');
    // Someone deletes the Service and forces our finalizer off, then creates it again at once.
    await deleteService('phoenix');
    await client.request('PATCH', `/api/v1/namespaces/${ns.name}/services/phoenix`, { body: { metadata: { finalizers: null } }, patchType: 'merge' }).catch((error: unknown) => {
      if (!isKubeError(error, 404)) throw error;
    });
    await eventually(async () => {
      try {
        await getService('phoenix');
        return undefined;
      } catch (error) {
        return isKubeError(error, 404) ? true : undefined;
      }
    }, 'the old phoenix to be gone');
    await applyManifest(client, lbService('phoenix', { spec: { loadBalancerClass: TEST_CLOUD } }));
    const second = await eventually(async () => {
      const s = await getService('phoenix');
      return s.metadata?.uid !== first.metadata?.uid && readyCondition(s)?.status === 'True' ? s : undefined;
    }, 'the new phoenix to be ready');
    expect(second.metadata?.finalizers).toContain(FINALIZER);
    // The old balancer was deleted before (or instead of being reused by) the new one.
    const calls = cloud.callsFor(key).map((c) => c.method);
    expect(calls.indexOf('ensureDeleted')).toBeGreaterThan(0);
    expect(calls.lastIndexOf('ensure')).toBeGreaterThan(calls.indexOf('ensureDeleted'));
    await deleteService('phoenix');
  });

  it('announces EnsuringLoadBalancer only when provisioning takes a while', async () => {
    await controller.stop();
    const slow = new FlakyProvider(TEST_CLOUD, 0, () => new ProviderError('unused', { retryable: true }), 1_500);
    controller = await startTestController([`--providers=portico.dev/l2,${TEST_CLOUD}`, '--default-class=portico.dev/l2'], { providerModules: [fakeProviderModule(slow)] });
    await applyManifest(client, lbService('slow', { spec: { loadBalancerClass: TEST_CLOUD } }));
    await waitForIngress('slow');
    const reasons = await eventually(async () => {
      const r = (await eventsFor('slow')).map((e) => e.reason);
      return r.includes('EnsuredLoadBalancer') && r.includes('EnsuringLoadBalancer') ? r : undefined;
    }, 'Ensuring and Ensured events');
    expect(reasons).toContain('EnsuringLoadBalancer');
    await deleteService('slow');
  });

  it('says when a Service asks for a provider this controller does not run', async () => {
    await applyManifest(client, lbService('no-provider', { spec: { loadBalancerClass: 'portico.dev/aliyun-slb' } }));
    const condition = await waitForCondition('no-provider', 'ProviderNotConfigured');
    expect(condition.message).toContain('portico.dev/aliyun-slb');
    const service = await getService('no-provider');
    expect(service.metadata?.finalizers ?? []).not.toContain(FINALIZER);
    await deleteService('no-provider');
  });
});

describe('nodes, resync and drift', () => {
  const nodeNames = [`${ns.name}-node-a`, `${ns.name}-node-b`];

  afterAll(async () => {
    for (const name of nodeNames) await client.request('DELETE', `/api/v1/nodes/${name}`).catch(() => undefined);
  });

  it('calls updateBackends (not ensure) only when the eligible node set changes', async () => {
    await controller.stop();
    for (const [i, name] of nodeNames.entries()) {
      await client.request('POST', '/api/v1/nodes', { body: { metadata: { name, labels: { 'portico.dev/test': ns.name } }, status: { addresses: [{ type: 'InternalIP', address: `192.0.2.${String(60 + i)}` }] } } });
    }
    const cloud = new FlakyProvider(TEST_CLOUD, 0, () => new ProviderError('unused', { retryable: true }));
    controller = await startTestController([`--providers=portico.dev/l2,${TEST_CLOUD}`, '--default-class=portico.dev/l2'], { providerModules: [fakeProviderModule(cloud)] });
    await applyManifest(client, lbService('backends', { spec: { loadBalancerClass: TEST_CLOUD } }));
    await waitForIngress('backends');
    const key = `${ns.name}/backends`;
    const ensured = cloud.callsFor(key, 'ensure');
    expect(ensured.at(-1)?.nodes).toEqual(expect.arrayContaining(nodeNames));

    // An unrelated node change (a label that does not affect eligibility) calls nothing.
    await client.request('PATCH', `/api/v1/nodes/${nodeNames[0] ?? ''}`, { body: { metadata: { labels: { unrelated: 'x' } } }, patchType: 'merge' });
    // Excluding node b: backends updated without a full ensure.
    await client.request('PATCH', `/api/v1/nodes/${nodeNames[1] ?? ''}`, { body: { metadata: { labels: { 'node.kubernetes.io/exclude-from-external-load-balancers': 'true' } } }, patchType: 'merge' });
    const update = await eventually(() => cloud.callsFor(key, 'updateBackends').at(-1), 'updateBackends');
    expect(update.nodes).toContain(nodeNames[0]);
    expect(update.nodes).not.toContain(nodeNames[1]);
    expect(cloud.callsFor(key, 'updateBackends')).toHaveLength(1);
    expect(cloud.callsFor(key, 'ensure')).toHaveLength(ensured.length);
  });

  it('re-ensures periodically without writing when nothing drifted, and rewrites a status someone changed', async () => {
    await controller.stop();
    const cloud = new FlakyProvider(TEST_CLOUD, 0, () => new ProviderError('unused', { retryable: true }));
    controller = await startTestController([`--providers=portico.dev/l2,${TEST_CLOUD}`, '--default-class=portico.dev/l2', '--resync-period=2s'], { providerModules: [fakeProviderModule(cloud)] });
    const key = `${ns.name}/backends`;
    const settled = await waitForIngress('backends');
    const before = cloud.callsFor(key, 'ensure').length;
    await eventually(() => (cloud.callsFor(key, 'ensure').length >= before + 2 ? true : undefined), 'two periodic re-ensures', 30_000);
    expect((await getService('backends')).metadata?.resourceVersion).toBe(settled.metadata?.resourceVersion);

    await client.request('PATCH', `/api/v1/namespaces/${ns.name}/services/backends/status`, { body: { status: { loadBalancer: { ingress: [{ hostname: 'hijacked.example.test' }] } } }, patchType: 'merge' });
    await eventually(async () => (ingressIPs(await getService('backends'))[0] === 'backends.lb.example.test' ? true : undefined), 'status restored');
    await deleteService('backends');
    await eventually(() => (cloud.callsFor(key, 'ensureDeleted').length > 0 ? true : undefined), 'balancer deleted');
  });
});

describe('address pool edits', () => {
  interface PoolStatus {
    status?: { assignedIPv4?: number; availableIPv4?: number; conditions?: Condition[] };
  }
  const poolPath = (name: string): string => `/apis/portico.dev/v1alpha1/addresspools/${name}`;

  it('re-homes a Service with Events when its pool shrinks, and counts addresses in pool status', async () => {
    await controller.stop();
    controller = await startTestController(['--default-class=portico.dev/l2']);
    const name = `${ns.name}-edit`;
    await applyManifest(client, pool(name, ['198.51.100.8/30'], [ns.name], { priority: 0 }));
    pools.push(name);
    await applyManifest(client, lbService('rehome', { annotations: { 'portico.dev/address-pool': name } }));
    const before = await waitForIngress('rehome');
    // .8 is the network address of the /30: never handed out.
    expect(ingressIPs(before)).toEqual(['198.51.100.9']);
    await eventually(async () => ((await client.request<PoolStatus>('GET', poolPath(name))).status?.assignedIPv4 === 1 ? true : undefined), 'pool status counts 1');

    // The pool loses the Service's address: it is released with a Warning and re-assigned.
    await applyManifest(client, pool(name, ['198.51.100.10/31'], [ns.name], { priority: 0 }));
    const moved = await eventually(async () => {
      const s = await getService('rehome');
      return ingressIPs(s)[0] === '198.51.100.10' ? s : undefined;
    }, 'rehome to move to 198.51.100.10');
    expect(readyCondition(moved)?.status).toBe('True');
    const reasons = await eventually(async () => {
      const r = (await eventsFor('rehome')).map((e) => e.reason);
      return r.includes('IPReleased') && r.filter((x) => x === 'EnsuredLoadBalancer').length >= 2 ? r : undefined;
    }, 'IPReleased and a second EnsuredLoadBalancer');
    expect(reasons).toContain('IPReleased');
    expect((await eventsFor('rehome')).find((e) => e.reason === 'EnsuredLoadBalancer' && e.message.includes('198.51.100.10'))?.message).toBe(`Ensured load balancer: 198.51.100.10 (assigned from pool ${name})`);
    await deleteService('rehome');
  });

  it('a Service whose new request cannot be met keeps its address, and nobody else gets it', async () => {
    const name = `${ns.name}-tx`;
    await applyManifest(client, pool(name, ['198.51.100.20-198.51.100.23'], [ns.name], { priority: 0 }));
    pools.push(name);
    const onPool = { 'portico.dev/address-pool': name };
    await applyManifest(client, lbService('tx-a', { annotations: onPool }));
    await applyManifest(client, lbService('tx-b', { annotations: onPool }));
    const a = ingressIPs(await waitForIngress('tx-a'));
    const b = ingressIPs(await waitForIngress('tx-b'));
    await applyManifest(client, lbService('tx-a', { annotations: { ...onPool, 'portico.dev/load-balancer-ips': b[0] ?? '' } }));
    await waitForCondition('tx-a', 'AllocationFailed');
    expect(ingressIPs(await getService('tx-a'))).toEqual(a);
    await applyManifest(client, lbService('tx-c', { annotations: onPool }));
    expect(ingressIPs(await waitForIngress('tx-c'))).not.toEqual(a);
    for (const n of ['tx-a', 'tx-b', 'tx-c']) await deleteService(n);
  });

  it('keeps assigned addresses when a pool edit has a typo, and says so on the pool', async () => {
    const name = `${ns.name}-typo`;
    await applyManifest(client, pool(name, ['198.51.100.32/30'], [ns.name], { priority: 0 }));
    pools.push(name);
    await applyManifest(client, lbService('typo', { annotations: { 'portico.dev/address-pool': name } }));
    const before = ingressIPs(await waitForIngress('typo'));
    // A mistake the CRD cannot catch (syntax typos such as host bits fail on apply): an entry
    // overlapping another of the same pool.
    await applyManifest(client, pool(name, ['198.51.100.32/30', '198.51.100.33-198.51.100.34'], [ns.name], { priority: 0 }));
    const ready = await eventually(async () => {
      const c = (await client.request<PoolStatus>('GET', poolPath(name))).status?.conditions?.find((x) => x.type === 'Ready');
      return c?.reason === 'InvalidSpec' ? c : undefined;
    }, 'the pool to report InvalidSpec');
    expect(ready.message).toContain('spec.addresses[1]');
    expect(ingressIPs(await getService('typo'))).toEqual(before);
    expect((await eventsFor('typo')).map((e) => e.reason)).not.toContain('IPReleased');
    await deleteService('typo');
  });

  it('gives an address as soon as the namespace is labelled into a selector-scoped pool', async () => {
    const name = `${ns.name}-labelled`;
    await applyManifest(client, { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name }, spec: { addresses: ['198.51.100.40/30'], allocation: { namespaceSelector: { matchLabels: { [`tenant-${ns.name}`]: 'yes' } } } } });
    pools.push(name);
    await applyManifest(client, lbService('needs-label', { annotations: { 'portico.dev/address-pool': name } }));
    await waitForCondition('needs-label', 'AllocationFailed');
    await client.request('PATCH', `/api/v1/namespaces/${ns.name}`, { body: { metadata: { labels: { [`tenant-${ns.name}`]: 'yes' } } }, patchType: 'merge' });
    expect(ingressIPs(await waitForIngress('needs-label'))[0]).toMatch(/^198\.51\.100\.4[0-3]$/);
    await deleteService('needs-label');
  });

  it('marks only the newer of two overlapping pools not Ready; the older keeps working', async () => {
    const a = `${ns.name}-ov-a`;
    const b = `${ns.name}-ov-b`;
    await applyManifest(client, pool(a, ['203.0.113.64/29'], [ns.name], { priority: 0 }));
    pools.push(a);
    await applyManifest(client, lbService('keeper', { annotations: { 'portico.dev/address-pool': a } }));
    const kept = ingressIPs(await waitForIngress('keeper'));
    await applyManifest(client, pool(b, ['203.0.113.66-203.0.113.70'], [ns.name]));
    pools.push(b);
    const ready = await eventually(async () => {
      const c = (await client.request<PoolStatus>('GET', poolPath(b))).status?.conditions?.find((x) => x.type === 'Ready');
      return c?.status === 'False' ? c : undefined;
    }, `${b} to report the overlap`);
    expect(ready.reason).toBe('Overlap');
    expect(ready.message).toContain(a);
    const older = (await client.request<PoolStatus>('GET', poolPath(a))).status?.conditions?.find((x) => x.type === 'Ready');
    expect(older?.status).toBe('True');
    // The older pool still hands out addresses; the running Service keeps its address.
    await applyManifest(client, lbService('newcomer', { annotations: { 'portico.dev/address-pool': a } }));
    await waitForIngress('newcomer');
    expect(ingressIPs(await getService('keeper'))).toEqual(kept);
    await applyManifest(client, lbService('on-mistake', { annotations: { 'portico.dev/address-pool': b } }));
    await waitForCondition('on-mistake', 'AllocationFailed');
    await client.request('DELETE', poolPath(b));
    await deleteService('on-mistake');
    await deleteService('newcomer');
    await deleteService('keeper');
  });
});
