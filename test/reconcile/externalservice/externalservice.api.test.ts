/**
 * The ExternalService controller end to end on the real API server, with kube-controller-manager
 * (and its EndpointSlice mirroring controller) running, and a real dnsmasq on loopback.
 */
import type { V1EndpointSlice, V1Endpoints, V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyManifest, applyYaml, parseManifests, type Manifest } from '../../../src/kube/apply.js';
import { isKubeError } from '../../../src/kube/rest.js';
import { MANAGED_BY_LABEL, SERVICE_NAME_LABEL, SKIP_MIRROR_LABEL } from '../../../src/reconcile/externalservice/planner.js';
import { installCrds, readExample, startTestController, type TestController } from '../../support/controller.js';
import { eventually, useNamespace } from '../../support/kube.js';
import { DNSMASQ, startDnsmasq, type Dnsmasq } from './dnsmasq.js';

const ns = useNamespace('xsvc');
const mig = useNamespace('xsvc-mig');
const examples = useNamespace('xsvc-ex');
const { client } = ns;

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface ES {
  metadata: { name: string; uid: string; generation?: number };
  status?: { endpoints?: string; conditions?: Condition[]; addresses?: { address: string; ready: boolean }[] };
}

const esPath = (namespace: string, name = ''): string => `/apis/portico.dev/v1alpha1/namespaces/${namespace}/externalservices${name ? `/${name}` : ''}`;

async function createES(namespace: string, name: string, spec: Record<string, unknown>): Promise<ES> {
  return client.request<ES>('POST', esPath(namespace), { body: { apiVersion: 'portico.dev/v1alpha1', kind: 'ExternalService', metadata: { name, namespace }, spec } });
}

async function getES(namespace: string, name: string): Promise<ES> {
  return client.request<ES>('GET', esPath(namespace, name));
}

function condition(es: ES, type: string): Condition | undefined {
  return es.status?.conditions?.find((c) => c.type === type);
}

async function slicesOf(namespace: string, service: string): Promise<V1EndpointSlice[]> {
  const list = await client.request<{ items: V1EndpointSlice[] }>('GET', `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`, { query: { labelSelector: `${SERVICE_NAME_LABEL}=${service}` } });
  return list.items;
}

async function getOrUndefined<T>(path: string): Promise<T | undefined> {
  try {
    return await client.request<T>('GET', path);
  } catch (error) {
    if (isKubeError(error, 404)) return undefined;
    throw error;
  }
}

/** address -> ready, from every slice; fails if an address is in two slices. */
function sliceAddresses(slices: V1EndpointSlice[]): Map<string, boolean> {
  const seen = new Map<string, boolean>();
  for (const slice of slices) {
    // The server returns an emptied slice's endpoints as null.
    for (const e of (slice.endpoints as V1EndpointSlice['endpoints'] | null) ?? []) {
      for (const a of e.addresses) {
        if (seen.has(a)) throw new Error(`address ${a} is published in two slices`);
        seen.set(a, e.conditions?.ready ?? true);
      }
    }
  }
  return seen;
}

/** What `kubectl get endpoints` shows: ready and not-ready addresses. */
function endpointsAddresses(endpoints: V1Endpoints | undefined): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const s of endpoints?.subsets ?? []) {
    for (const a of s.addresses ?? []) out.set(a.ip, true);
    for (const a of s.notReadyAddresses ?? []) out.set(a.ip, false);
  }
  return out;
}

/** The address the seed's hand-written Endpoints object lists (read from the file, as a user would copy it). */
async function seedDbAddress(): Promise<string> {
  const endpoints = parseManifests(await readExample('seed/db-external-endpoints.yaml')).find((m): m is Manifest & V1Endpoints => m.kind === 'Endpoints');
  const ip = endpoints?.subsets?.[0]?.addresses?.[0]?.ip;
  if (!ip) throw new Error('the seed db Endpoints lists no address');
  return ip;
}

let controller: TestController;
let dns: Dnsmasq | undefined;

beforeAll(async () => {
  await installCrds(client);
  await eventually(() => client.request('GET', '/apis/portico.dev/v1alpha1/externalservices').then(() => true), 'ExternalService CRD served');
  if (DNSMASQ) {
    dns = await startDnsmasq({ ttlSeconds: 1, localDomains: ['partner.com', 'portico.test'] });
  } else {
    console.warn('SKIPPING the DNS cases LOUDLY: dnsmasq is not installed (run node hack/bootstrap.mjs as root)');
  }
  controller = await startTestController([
    '--external-services',
    `--external-dns-servers=${dns?.server ?? '127.0.0.1:1'}`,
    '--external-service-cidrs=198.18.0.0/16',
    '--external-pod-cidrs=10.244.0.0/16',
    '--external-deny=192.0.2.64/26',
  ]);
});

afterAll(async () => {
  await controller.stop();
  await dns?.stop();
});

describe('ExternalService', () => {
  it("expresses the seed's db case: a selectorless Service, a valid EndpointSlice and a matching Endpoints object", async () => {
    const seedIp = await seedDbAddress();
    await createES(ns.name, 'db', { endpoints: [{ address: seedIp }], ports: [{ port: 3306 }] });
    const es = await eventually(async () => {
      const e = await getES(ns.name, 'db');
      return condition(e, 'Ready')?.status === 'True' ? e : undefined;
    }, 'db Ready');
    expect(es.status?.endpoints).toBe('1/1');
    const service = await client.request<V1Service>('GET', `/api/v1/namespaces/${ns.name}/services/db`);
    expect(service.spec?.selector).toBeUndefined();
    expect(service.spec?.clusterIP).toMatch(/^198\.18\./);
    expect(service.spec?.ports?.[0]).toMatchObject({ port: 3306, targetPort: 3306, protocol: 'TCP' });
    expect(service.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'ExternalService', name: 'db', uid: es.metadata.uid, controller: true });
    const slices = await eventually(async () => {
      const s = await slicesOf(ns.name, 'db');
      return s.length === 1 ? s : undefined;
    }, 'one slice for db');
    const slice = slices[0];
    expect(slice?.addressType).toBe('IPv4');
    expect(slice?.metadata?.labels?.[MANAGED_BY_LABEL]).toBe('portico.dev');
    expect(slice?.ports).toEqual([{ name: '', port: 3306, protocol: 'TCP' }]);
    expect(slice?.endpoints).toEqual([{ addresses: [seedIp], conditions: { ready: true, serving: true, terminating: false } }]);
    const endpoints = await client.request<V1Endpoints>('GET', `/api/v1/namespaces/${ns.name}/endpoints/db`);
    expect(endpoints.metadata?.labels?.[SKIP_MIRROR_LABEL]).toBe('true');
    expect(endpointsAddresses(endpoints)).toEqual(sliceAddresses(slices));
    expect(endpoints.subsets?.[0]?.ports).toEqual([{ port: 3306, protocol: 'TCP' }]);

    // A reconcile with nothing changed writes nothing.
    const before = [service.metadata?.resourceVersion, slice?.metadata?.resourceVersion, endpoints.metadata?.resourceVersion];
    await client.request('PATCH', esPath(ns.name, 'db'), { body: { metadata: { labels: { touched: 'yes' } } }, patchType: 'merge' });
    await new Promise((r) => setTimeout(r, 1500)); // give a wrong write the chance to happen
    const after = [
      (await client.request<V1Service>('GET', `/api/v1/namespaces/${ns.name}/services/db`)).metadata?.resourceVersion,
      (await slicesOf(ns.name, 'db'))[0]?.metadata?.resourceVersion,
      (await client.request<V1Endpoints>('GET', `/api/v1/namespaces/${ns.name}/endpoints/db`)).metadata?.resourceVersion,
    ];
    expect(after).toEqual(before);
  });

  it('refuses each forbidden address class with a Rejected condition and writes nothing for it', async () => {
    const cases: [string, string][] = [
      ['0.0.0.0', 'Unspecified'],
      ['127.0.0.1', 'Loopback'],
      ['::1', 'Loopback'],
      ['169.254.10.1', 'LinkLocal'],
      ['fe80::1', 'LinkLocal'],
      ['224.0.0.5', 'LinkLocalMulticast'],
      ['169.254.169.254', 'CloudMetadata'],
      ['fd00:ec2::254', 'CloudMetadata'],
      ['100.100.100.200', 'CloudMetadata'],
      ['198.18.0.10', 'ServiceCIDR'],
      ['10.244.1.5', 'PodCIDR'],
      ['192.0.2.70', 'Denied'],
    ];
    await Promise.all(cases.map(([address], i) => createES(ns.name, `bad-${String(i)}`, { endpoints: [{ address: '198.51.100.5' }, { address }], ports: [{ port: 80 }] })));
    for (const [i, [address, reason]] of cases.entries()) {
      const name = `bad-${String(i)}`;
      const es = await eventually(async () => {
        const e = await getES(ns.name, name);
        return condition(e, 'Rejected')?.status === 'True' ? e : undefined;
      }, `${name} Rejected`);
      expect(condition(es, 'Rejected')?.reason).toBe(reason);
      expect(condition(es, 'Rejected')?.message).toContain(address);
      expect(condition(es, 'Rejected')?.message).toContain('spec.endpoints[1].address');
      expect(condition(es, 'Ready')?.status).toBe('False');
    }
    for (const i of cases.keys()) {
      expect(await getOrUndefined(`/api/v1/namespaces/${ns.name}/services/bad-${String(i)}`)).toBeUndefined();
      expect(await getOrUndefined(`/api/v1/namespaces/${ns.name}/endpoints/bad-${String(i)}`)).toBeUndefined();
      expect(await slicesOf(ns.name, `bad-${String(i)}`)).toEqual([]);
    }
  });

  it.skipIf(!DNSMASQ)("resolves the seed's api-partner hostname to IP endpoints with port mapping, follows record changes within the TTL bounds, keeps the last answer on NXDOMAIN and refuses a rebinding", async () => {
    if (!dns) throw new Error('unreachable');
    await dns.setRecords({ 'api.partner.com': ['198.51.100.20'] });
    await createES(ns.name, 'api-partner', { endpoints: [{ hostname: 'api.partner.com' }], ports: [{ name: 'https', port: 443, targetPort: 8443 }], resolve: { minRefresh: '500ms', maxRefresh: '2s', keepStaleFor: '10m' } });
    const addressesNow = async (): Promise<string[]> => [...sliceAddresses(await slicesOf(ns.name, 'api-partner')).keys()].sort();
    await eventually(async () => ((await addressesNow()).join() === '198.51.100.20' ? true : undefined), 'api-partner resolved');
    const slice = (await slicesOf(ns.name, 'api-partner'))[0];
    expect(slice?.ports).toEqual([{ name: 'https', port: 8443, protocol: 'TCP' }]);
    const service = await client.request<V1Service>('GET', `/api/v1/namespaces/${ns.name}/services/api-partner`);
    expect(service.spec?.ports?.[0]).toMatchObject({ name: 'https', port: 443, targetPort: 8443 });
    expect(service.spec?.type).toBe('ClusterIP');

    // A changed record: the new file is picked up by inotify, SIGHUP drops the old one.
    await dns.setRecords({ 'api.partner.com': ['198.51.100.21', '198.51.100.22'] });
    dns.reload();
    await eventually(async () => ((await addressesNow()).join() === '198.51.100.21,198.51.100.22' ? true : undefined), 'api-partner follows the record change');
    const endpoints = await client.request<V1Endpoints>('GET', `/api/v1/namespaces/${ns.name}/endpoints/api-partner`);
    expect(endpointsAddresses(endpoints)).toEqual(sliceAddresses(await slicesOf(ns.name, 'api-partner')));

    // NXDOMAIN: the last good answer stays, and a condition says so.
    await dns.setRecords({});
    dns.reload();
    const degraded = await eventually(async () => {
      const e = await getES(ns.name, 'api-partner');
      return condition(e, 'Degraded')?.reason === 'ResolutionFailed' ? e : undefined;
    }, 'Degraded: ResolutionFailed');
    expect(condition(degraded, 'Degraded')?.message).toContain('NXDOMAIN');
    expect(condition(degraded, 'Degraded')?.message).toContain('keeping the last good answer');
    expect(await addressesNow()).toEqual(['198.51.100.21', '198.51.100.22']);

    // Rebinding to cloud metadata: refused, never published.
    await dns.setRecords({ 'api.partner.com': ['169.254.169.254', '198.51.100.23'] });
    dns.reload();
    const rebound = await eventually(async () => {
      const e = await getES(ns.name, 'api-partner');
      return condition(e, 'Rejected')?.status === 'True' ? e : undefined;
    }, 'rebinding refused');
    expect(condition(rebound, 'Rejected')?.reason).toBe('CloudMetadata');
    expect(condition(rebound, 'Rejected')?.message).toContain('169.254.169.254');
    await eventually(async () => ((await addressesNow()).join() === '198.51.100.23' ? true : undefined), 'only the allowed answer published');
  });

  it("migrates the seed's hand-written db Endpoints in one step without losing an address or publishing one in two slices", async () => {
    const seed = (await readExample('seed/db-external-endpoints.yaml')).replace(/^metadata:\n/gm, `metadata:\n  namespace: ${mig.name}\n`);
    await applyYaml(client, seed);
    // kube-controller-manager mirrors the hand-written Endpoints into a slice.
    await eventually(async () => ((await slicesOf(mig.name, 'db')).some((s) => s.metadata?.labels?.[MANAGED_BY_LABEL] === 'endpointslicemirroring-controller.k8s.io') ? true : undefined), 'the mirrored slice');

    // The one step: an ExternalService of the same name listing the same address.
    const seedIp = await seedDbAddress();
    await createES(mig.name, 'db', { endpoints: [{ address: seedIp }], ports: [{ port: 3306 }] });
    // Look at every moment of the transition; what must never happen is recorded, not retried.
    const violations: string[] = [];
    const done = await eventually(
      async () => {
        const slices = await slicesOf(mig.name, 'db');
        let addresses = new Map<string, boolean>();
        try {
          addresses = sliceAddresses(slices);
        } catch (error) {
          violations.push((error as Error).message);
        }
        const endpoints = await client.request<V1Endpoints>('GET', `/api/v1/namespaces/${mig.name}/endpoints/db`);
        const listed = [...endpointsAddresses(endpoints).keys()];
        if (listed.join() !== seedIp) violations.push(`Endpoints listed ${listed.join(', ') || 'nothing'}`);
        const converged = slices.length === 1 && slices[0]?.metadata?.labels?.[MANAGED_BY_LABEL] === 'portico.dev' && endpoints.metadata?.labels?.[SKIP_MIRROR_LABEL] === 'true';
        return converged ? { addresses, endpoints } : undefined;
      },
      'migration converged',
      30_000,
      25,
    );
    expect(violations).toEqual([]);
    expect([...done.addresses.entries()]).toEqual([[seedIp, true]]);
    expect(done.endpoints.metadata?.ownerReferences?.[0]?.kind).toBe('ExternalService');
    // And it stays that way: the mirroring controller does not come back.
    await new Promise((r) => setTimeout(r, 1500));
    const slices = await slicesOf(mig.name, 'db');
    expect(slices.map((s) => s.metadata?.labels?.[MANAGED_BY_LABEL])).toEqual(['portico.dev']);
  });

  it('adopts a selectorless Service annotated portico.dev/external-endpoints, keeping every address, and empties what it wrote when the annotation goes', async () => {
    await applyYaml(
      client,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'legacy', namespace: ns.name, annotations: { 'portico.dev/external-endpoints': '198.51.100.30:5433,198.51.100.31,2001:db8::31' } },
        spec: { ports: [{ port: 5432 }] },
      }),
    );
    const slices = await eventually(async () => {
      const s = await slicesOf(ns.name, 'legacy');
      return s.length === 3 ? s : undefined;
    }, 'three slices (v4, v4 with port override, v6)');
    expect([...sliceAddresses(slices).keys()].sort()).toEqual(['198.51.100.30', '198.51.100.31', '2001:db8::31']);
    const byAddress = new Map(slices.flatMap((s) => s.endpoints.map((e) => [e.addresses[0], s.ports?.[0]?.port] as const)));
    expect(byAddress.get('198.51.100.30')).toBe(5433);
    expect(byAddress.get('198.51.100.31')).toBe(5432);
    const endpoints = await client.request<V1Endpoints>('GET', `/api/v1/namespaces/${ns.name}/endpoints/legacy`);
    expect(endpointsAddresses(endpoints)).toEqual(sliceAddresses(slices));
    const servicePath = `/api/v1/namespaces/${ns.name}/services/legacy`;
    const published = (service: V1Service): Condition | undefined => (service.status?.conditions as Condition[] | undefined)?.find((c) => c.type === 'ExternalEndpointsPublished');
    const accepted = await eventually(async () => {
      const c = published(await client.request<V1Service>('GET', servicePath));
      return c?.status === 'True' ? c : undefined;
    }, 'ExternalEndpointsPublished=True on the Service');
    expect(accepted).toMatchObject({ reason: 'Published', message: '3 endpoints published' });

    // A malformed annotation: a condition naming the field, one Warning, the last good endpoints kept.
    await client.request('PATCH', servicePath, { body: { metadata: { annotations: { 'portico.dev/external-endpoints': '198.51.100.30:5433,not a host!' } } }, patchType: 'merge' });
    const rejected = await eventually(async () => {
      const c = published(await client.request<V1Service>('GET', servicePath));
      return c?.status === 'False' ? c : undefined;
    }, 'ExternalEndpointsPublished=False on the Service');
    expect(rejected.reason).toBe('InvalidSpec');
    expect(rejected.message).toContain('metadata.annotations[portico.dev/external-endpoints]');
    expect(rejected.message).toContain('not a host!');
    type EventList = { items: { reason: string; count?: number; involvedObject: { name: string } }[] };
    const rejectedWarnings = async (): Promise<number[]> =>
      (await client.request<EventList>('GET', `/api/v1/namespaces/${ns.name}/events`)).items.filter((e) => e.involvedObject.name === 'legacy' && e.reason === 'Rejected').map((e) => e.count ?? 1);
    await eventually(async () => ((await rejectedWarnings()).length === 1 ? true : undefined), 'a Rejected Warning on the Service');
    // Another change to the Service reconciles it again: no second Warning (a repeat would bump
    // count at once) and no status write (the condition is unchanged). Absence needs a wait.
    const touched = await client.request<V1Service>('PATCH', servicePath, { body: { metadata: { labels: { touched: 'yes' } } }, patchType: 'merge' });
    await new Promise((r) => setTimeout(r, 1500));
    expect(await rejectedWarnings()).toEqual([1]);
    expect((await client.request<V1Service>('GET', servicePath)).metadata?.resourceVersion).toBe(touched.metadata?.resourceVersion);
    expect([...sliceAddresses(await slicesOf(ns.name, 'legacy')).keys()].sort()).toEqual(['198.51.100.30', '198.51.100.31', '2001:db8::31']);

    await client.request('PATCH', servicePath, { body: { metadata: { annotations: { 'portico.dev/external-endpoints': null } } }, patchType: 'merge' });
    await eventually(async () => {
      const left = sliceAddresses(await slicesOf(ns.name, 'legacy'));
      const endpointsLeft = endpointsAddresses(await client.request<V1Endpoints>('GET', `/api/v1/namespaces/${ns.name}/endpoints/legacy`));
      return left.size === 0 && endpointsLeft.size === 0 ? true : undefined;
    }, 'no address published any more');
    await eventually(async () => (published(await client.request<V1Service>('GET', servicePath)) === undefined ? true : undefined), 'the condition removed with the annotation');

    // Rejected from the start, then the annotation removed: the condition goes too (no slices or
    // counts were ever kept for this Service; only the condition says it was ours).
    await client.request('PATCH', servicePath, { body: { metadata: { annotations: { 'portico.dev/external-endpoints': 'not a host!' } } }, patchType: 'merge' });
    await eventually(async () => (published(await client.request<V1Service>('GET', servicePath))?.status === 'False' ? true : undefined), 'rejected again');
    await client.request('PATCH', servicePath, { body: { metadata: { annotations: { 'portico.dev/external-endpoints': null } } }, patchType: 'merge' });
    await eventually(async () => (published(await client.request<V1Service>('GET', servicePath)) === undefined ? true : undefined), 'the condition of a never-published annotation removed');
    expect(await getOrUndefined(`/api/v1/namespaces/${ns.name}/services/legacy`)).toBeDefined();
    // Deleting the Service takes the rest with it (they are owned by it).
    await client.request('DELETE', `/api/v1/namespaces/${ns.name}/services/legacy`);
    await eventually(async () => ((await slicesOf(ns.name, 'legacy')).length === 0 && (await getOrUndefined(`/api/v1/namespaces/${ns.name}/endpoints/legacy`)) === undefined ? true : undefined), 'slices and Endpoints collected with the Service');
  });

  it.skipIf(!DNSMASQ)('converges the manifests in examples/external/', async () => {
    if (!dns) throw new Error('unreachable');
    await dns.setRecords({ 'api.partner.com': ['198.51.100.50', '2001:db8::50'] });
    for (const file of ['db.yaml', 'api-partner.yaml', 'adopt-annotation.yaml']) {
      for (const manifest of parseManifests(await readExample(`external/${file}`))) {
        // The examples' backends are not test hosts: no probe may leave this machine for them.
        delete (manifest as Manifest & { spec?: { healthCheck?: unknown } }).spec?.healthCheck;
        await applyManifest(client, manifest, examples.name);
      }
    }
    const want: Record<string, string[]> = { db: ['198.51.100.10'], 'api-partner': ['198.51.100.50', '2001:db8::50'], 'legacy-db': ['198.51.100.20', '198.51.100.21', '2001:db8::21'] };
    for (const [name, addresses] of Object.entries(want)) {
      await eventually(async () => ([...sliceAddresses(await slicesOf(examples.name, name)).keys()].sort().join() === addresses.join() ? true : undefined), `${name} published ${addresses.join(', ')}`);
    }
  });

  it('publishEndpoints: false empties the Endpoints it wrote; deleting the ExternalService removes the Service, slices and Endpoints it made', async () => {
    await createES(ns.name, 'gone', { endpoints: [{ address: '198.51.100.40' }, { address: '2001:db8::40' }], ports: [{ port: 80 }], publishEndpoints: true });
    await eventually(async () => ((await slicesOf(ns.name, 'gone')).length === 2 ? true : undefined), 'two slices (one per family)');
    expect(endpointsAddresses(await client.request<V1Endpoints>('GET', `/api/v1/namespaces/${ns.name}/endpoints/gone`)).size).toBe(2);
    await client.request('PATCH', esPath(ns.name, 'gone'), { body: { spec: { publishEndpoints: false } }, patchType: 'merge' });
    await eventually(async () => (endpointsAddresses(await client.request<V1Endpoints>('GET', `/api/v1/namespaces/${ns.name}/endpoints/gone`)).size === 0 ? true : undefined), 'Endpoints emptied');
    expect(sliceAddresses(await slicesOf(ns.name, 'gone')).size).toBe(2);
    await client.request('DELETE', esPath(ns.name, 'gone'));
    await eventually(
      async () => {
        const left = [await getOrUndefined(`/api/v1/namespaces/${ns.name}/services/gone`), await getOrUndefined(`/api/v1/namespaces/${ns.name}/endpoints/gone`), ...(await slicesOf(ns.name, 'gone'))];
        return left.every((o) => o === undefined) ? true : undefined;
      },
      'everything it made removed',
    );
  });
});
