/**
 * One address, one owner (issue "One address, one owner"): regressions on the real API server,
 * with the controller restarted where the bug needed a restart. Each test names the guarantee
 * it proves (docs/address-pools.md, "What Portico guarantees").
 */
import type { V1Service } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { applyManifest, type Manifest } from '../../../src/kube/apply.js';
import { isKubeError } from '../../../src/kube/rest.js';
import { FINALIZER, PROVISIONED_BY_ANNOTATION } from '../../../src/reconcile/loadbalancer/planner.js';
import { installCrds, startTestController, type TestController } from '../../support/controller.js';
import { eventually, useNamespace } from '../../support/kube.js';

const ns = useNamespace('own');
const other = useNamespace('own-other');
const { client } = ns;
const pools: string[] = [];
let controller: TestController | undefined;

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

function pool(name: string, addresses: string[], extra: Record<string, unknown> = {}): Manifest {
  return { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name }, spec: { addresses, ...extra } };
}

function lbService(name: string, options: { annotations?: Record<string, string>; ports?: number[]; namespace?: string } = {}): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: options.namespace ?? ns.name, annotations: options.annotations ?? {} },
    spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/l2', selector: { app: name }, ports: (options.ports ?? [80]).map((port) => ({ name: `p${String(port)}`, port, protocol: 'TCP' })) },
  };
}

const path = (name: string, namespace = ns.name): string => `/api/v1/namespaces/${namespace}/services/${name}`;
const poolPath = (name: string): string => `/apis/portico.dev/v1alpha1/addresspools/${name}`;
const get = (name: string, namespace = ns.name): Promise<V1Service> => client.request<V1Service>('GET', path(name, namespace));
const ips = (s: V1Service): string[] => (s.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? '');
const ready = (s: V1Service): Condition | undefined => (s.status?.conditions as Condition[] | undefined)?.find((c) => c.type === 'LoadBalancerReady');

async function addressOf(name: string, namespace = ns.name): Promise<string> {
  return eventually(async () => {
    const s = await get(name, namespace);
    return ready(s)?.status === 'True' ? ips(s)[0] : undefined;
  }, `${name} to get an address`);
}

async function conditionOf(name: string, reason: string, namespace = ns.name): Promise<Condition> {
  return eventually(async () => {
    const c = ready(await get(name, namespace));
    return c?.reason === reason ? c : undefined;
  }, `${name} to report ${reason}`);
}

async function events(name: string, namespace = ns.name): Promise<{ reason: string; message: string; involvedObject: { uid?: string } }[]> {
  const list = await client.request<{ items: { reason: string; message: string; involvedObject: { name: string; uid?: string } }[] }>('GET', `/api/v1/namespaces/${namespace}/events`);
  return list.items.filter((e) => e.involvedObject.name === name);
}

async function restart(flags: string[] = []): Promise<void> {
  await controller?.stop();
  controller = await startTestController(['--default-class=portico.dev/l2', ...flags]);
}

async function stopController(): Promise<void> {
  await controller?.stop();
  controller = undefined;
}

async function usePool(name: string, addresses: string[], extra: Record<string, unknown> = {}): Promise<string> {
  const full = `${ns.name}-${name}`;
  await applyManifest(client, pool(full, addresses, { allocation: { namespaces: [ns.name, other.name] }, ...extra }));
  pools.push(full);
  return full;
}

async function remove(name: string, namespace = ns.name): Promise<void> {
  await client.request('DELETE', path(name, namespace)).catch(() => undefined);
  await eventually(async () => {
    try {
      await get(name, namespace);
      return undefined;
    } catch (error) {
      return isKubeError(error, 404) ? true : undefined;
    }
  }, `${name} to be gone`);
}

beforeAll(async () => {
  await installCrds(client);
  await restart();
});

afterEach(async () => {
  if (!controller) await restart();
});

afterAll(async () => {
  await controller?.stop();
  for (const name of pools) await client.request('DELETE', poolPath(name)).catch(() => undefined);
});

describe('one address, one owner', () => {
  it('a Service never shows an address Portico does not hold for it, whatever state its spec is in', async () => {
    const p = await usePool('phantom', ['198.51.100.40-198.51.100.43']);
    await applyManifest(client, lbService('s', { annotations: { 'portico.dev/address-pool': p } }));
    const x = await addressOf('s');
    // An invalid spec keeps the address (transactional) ...
    await applyManifest(client, lbService('s', { annotations: { 'portico.dev/address-pool': p, 'portico.dev/load-balancer-ips': 'nope' } }));
    await conditionOf('s', 'InvalidSpec');
    expect(ips(await get('s'))).toEqual([x]);
    // ... until the pool no longer holds it: then the status shows nothing ...
    await applyManifest(client, pool(p, ['198.51.100.42-198.51.100.43'], { allocation: { namespaces: [ns.name, other.name] } }));
    await eventually(async () => (ips(await get('s')).length === 0 ? true : undefined), 's to stop showing the released address');
    // ... and when the address comes back and goes to someone else, only that one shows it.
    await applyManifest(client, pool(p, ['198.51.100.40-198.51.100.43'], { allocation: { namespaces: [ns.name, other.name] } }));
    await applyManifest(client, lbService('t', { annotations: { 'portico.dev/address-pool': p, 'portico.dev/load-balancer-ips': x } }));
    expect(await addressOf('t')).toBe(x);
    await restart();
    await addressOf('t');
    expect(ips(await get('s'))).toEqual([]);
    await remove('s');
    await remove('t');
  });

  it('a restart does not move a valid sharing partner of a Service whose spec is invalid', async () => {
    const p = await usePool('partners', ['198.51.100.50-198.51.100.53']);
    const shared = { 'portico.dev/address-pool': p, 'portico.dev/allow-shared-ip': 'web' };
    await applyManifest(client, lbService('a', { annotations: shared, ports: [80] }));
    const x = await addressOf('a');
    await applyManifest(client, lbService('b', { annotations: { ...shared, 'portico.dev/load-balancer-ips': x }, ports: [443] }));
    expect(await addressOf('b')).toBe(x);
    await stopController();
    await applyManifest(client, lbService('b', { annotations: { ...shared, 'portico.dev/load-balancer-ips': `${x},nope` }, ports: [443] }));
    await restart();
    await conditionOf('b', 'InvalidSpec');
    await applyManifest(client, lbService('probe', { annotations: { 'portico.dev/address-pool': p } }));
    await addressOf('probe');
    expect(ips(await get('a'))).toEqual([x]);
    expect(ips(await get('b'))).toEqual([x]);
    for (const n of ['a', 'b', 'probe']) await remove(n);
  });

  it('a restart does not move a Service whose finalizer and provisioned-by were removed while the controller was down', async () => {
    const p = await usePool('unmarked', ['198.51.100.60-198.51.100.63']);
    await applyManifest(client, lbService('old', { annotations: { 'portico.dev/address-pool': p } }));
    const x = await addressOf('old');
    await stopController();
    const current = await get('old');
    await client.request('PATCH', path('old'), { body: { metadata: { resourceVersion: current.metadata?.resourceVersion, finalizers: null, annotations: { [PROVISIONED_BY_ANNOTATION]: null } } }, patchType: 'merge' });
    await applyManifest(client, lbService('newer', { annotations: { 'portico.dev/address-pool': p } }));
    await restart();
    const y = await addressOf('newer');
    expect(y).not.toBe(x);
    const old = await eventually(async () => {
      const s = await get('old');
      return s.metadata?.finalizers?.includes(FINALIZER) === true ? s : undefined;
    }, 'old to be claimed again');
    expect(ips(old)).toEqual([x]);
    await remove('old');
    await remove('newer');
  });

  it('an invalid pool edit takes no address away, even across a restart', async () => {
    const p = await usePool('frozen', ['198.51.100.70-198.51.100.73']);
    for (const n of ['f1', 'f2']) await applyManifest(client, lbService(n, { annotations: { 'portico.dev/address-pool': p } }));
    const before = [await addressOf('f1'), await addressOf('f2')];
    // The pool status records the last valid spec.
    await eventually(async () => ((await client.request<{ status?: { lastValidSpec?: string } }>('GET', poolPath(p))).status?.lastValidSpec !== undefined ? true : undefined), 'lastValidSpec in pool status');
    await stopController();
    // Two entries that overlap each other: invalid, and not something the schema can catch.
    await applyManifest(client, pool(p, ['198.51.100.70-198.51.100.73', '198.51.100.72-198.51.100.75'], { allocation: { namespaces: [ns.name, other.name] } }));
    await restart();
    const condition = await eventually(async () => {
      const c = (await client.request<{ status?: { conditions?: Condition[] } }>('GET', poolPath(p))).status?.conditions?.find((x) => x.type === 'Ready');
      return c?.reason === 'InvalidSpec' ? c : undefined;
    }, 'the pool to report InvalidSpec');
    expect(condition.message).toContain('keeping the last valid spec');
    await applyManifest(client, lbService('probe2', { annotations: { 'portico.dev/address-pool': p } }));
    await conditionOf('probe2', 'AllocationFailed');
    expect([ips(await get('f1'))[0], ips(await get('f2'))[0]]).toEqual(before);
    for (const n of ['f1', 'f2', 'probe2']) await remove(n);
  });

  it('a guessed sharing key does not take another tenant’s address; the first holder keeps its address', async () => {
    const p = await usePool('tenants', ['198.51.100.80-198.51.100.83']);
    const key = { 'portico.dev/address-pool': p, 'portico.dev/allow-shared-ip': 'guess' };
    await applyManifest(client, lbService('owner', { annotations: key, ports: [80] }));
    const x = await addressOf('owner');
    // Another namespace, same key: refused (keys are scoped to a namespace).
    await applyManifest(client, lbService('intruder', { namespace: other.name, annotations: { ...key, 'portico.dev/load-balancer-ips': x }, ports: [443] }));
    const refused = await conditionOf('intruder', 'AllocationFailed', other.name);
    expect(refused.message).toContain('another namespace');
    // Same namespace, same key, another port: shares; when the owner takes that port, the
    // newcomer moves and the owner keeps its address, with Events on both.
    await applyManifest(client, lbService('guest', { annotations: key, ports: [443] }));
    expect(await addressOf('guest')).toBe(x);
    await applyManifest(client, lbService('owner', { annotations: key, ports: [80, 443] }));
    await eventually(async () => {
      const s = await get('guest');
      return ips(s).length === 1 && ips(s)[0] !== x ? true : undefined;
    }, 'the guest to move');
    expect(ips(await get('owner'))).toEqual([x]);
    await eventually(async () => ((await events('guest')).some((e) => e.reason === 'IPReleased') ? true : undefined), 'IPReleased on the guest');
    await eventually(async () => ((await events('owner')).some((e) => e.reason === 'SharingConflict') ? true : undefined), 'SharingConflict on the owner');
    await remove('intruder', other.name);
    for (const n of ['owner', 'guest']) await remove(n);
  });

  it('a tenant-written provisioned-by naming a provider that is not running never blocks deletion', async () => {
    const p = await usePool('tenantwrite', ['198.51.100.90-198.51.100.91']);
    await applyManifest(client, lbService('liar', { annotations: { 'portico.dev/address-pool': p } }));
    const x = await addressOf('liar');
    // Written while the controller is down, so it finds it at deletion (a running controller
    // rewrites the record at once: a foreign change re-queues the Service).
    await stopController();
    const current = await get('liar');
    await client.request('PATCH', path('liar'), { body: { metadata: { resourceVersion: current.metadata?.resourceVersion, annotations: { [PROVISIONED_BY_ANNOTATION]: 'portico.dev/aliyun-slb' } } }, patchType: 'merge' });
    await client.request('DELETE', path('liar'));
    await restart();
    await remove('liar');
    const warned = await eventually(async () => (await events('liar')).find((e) => e.reason === 'ReleasedUnknownOwner'), 'the release to be explained');
    expect(warned.message).toContain('portico.dev/aliyun-slb is not enabled');
    // Its address is free again.
    await applyManifest(client, lbService('next', { annotations: { 'portico.dev/address-pool': p, 'portico.dev/load-balancer-ips': x } }));
    expect(await addressOf('next')).toBe(x);
    await remove('next');
  });

  it('every Event is found the way kubectl describe looks for it (by the object\'s uid)', async () => {
    const p = await usePool('describe', ['198.51.100.110-198.51.100.111']);
    await applyManifest(client, lbService('described', { annotations: { 'portico.dev/address-pool': p } }));
    await addressOf('described');
    // The pool moves away from its address: IPReleased, then EnsuredLoadBalancer with the new one.
    await applyManifest(client, pool(p, ['198.51.100.112/32'], { allocation: { namespaces: [ns.name, other.name] } }));
    const service = await get('described');
    const byUid = async (uid: string, namespace: string): Promise<string[]> =>
      (await client.request<{ items: { reason: string }[] }>('GET', `/api/v1/namespaces/${namespace}/events`, { query: { fieldSelector: `involvedObject.uid=${uid}` } })).items.map((e) => e.reason);
    const reasons = await eventually(async () => {
      const r = await byUid(service.metadata?.uid ?? '', ns.name);
      return r.filter((x) => x === 'EnsuredLoadBalancer').length >= 2 && r.includes('IPReleased') ? r : undefined;
    }, 'the Service Events by uid');
    expect(reasons).toEqual(expect.arrayContaining(['EnsuredLoadBalancer', 'IPReleased']));
    await remove('described');
  });

  it('never hands out loopback, the Service CIDR or a node address; the pool says so', async () => {
    const p = await usePool('special', ['127.0.0.0/30', '198.18.0.0/30', '198.51.100.99/32', '198.51.100.100/32']);
    const nodeName = `${ns.name}-node`;
    await client.request('POST', '/api/v1/nodes', { body: { metadata: { name: nodeName }, status: { addresses: [{ type: 'InternalIP', address: '198.51.100.99' }] } } });
    try {
      await applyManifest(client, lbService('only', { annotations: { 'portico.dev/address-pool': p } }));
      expect(await addressOf('only')).toBe('198.51.100.100');
      for (const [name, ip, why] of [['lo', '127.0.0.1', 'loopback'], ['svc', '198.18.0.1', 'Service CIDR'], ['nodeip', '198.51.100.99', 'address of node']] as const) {
        await applyManifest(client, lbService(name, { annotations: { 'portico.dev/address-pool': p, 'portico.dev/load-balancer-ips': ip } }));
        expect((await conditionOf(name, 'AllocationFailed')).message).toContain(why);
      }
      const reserved = await eventually(async () => {
        const c = (await client.request<{ status?: { conditions?: Condition[] } }>('GET', poolPath(p))).status?.conditions?.find((x) => x.type === 'AddressesReserved');
        return c?.status === 'True' && c.message.includes('address of node') ? c : undefined;
      }, 'the pool to list its reserved addresses');
      expect(reserved.message).toContain('loopback');
      expect(reserved.message).toContain('Service CIDR');
      for (const n of ['only', 'lo', 'svc', 'nodeip']) await remove(n);
    } finally {
      await client.request('DELETE', `/api/v1/nodes/${nodeName}`).catch(() => undefined);
    }
  });
});
