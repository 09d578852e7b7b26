/** The local control plane behaves like a real cluster for what Portico touches. */
import { describe, expect, inject, it } from 'vitest';
import { applyYaml } from '../../src/kube/apply.js';
import { isKubeError } from '../../src/kube/rest.js';
import { readExample } from '../support/controller.js';
import { eventually, testClient, useNamespace } from '../support/kube.js';

const ns = useNamespace('cp');
const { client } = ns;

interface Slice {
  metadata: { name: string; labels?: Record<string, string> };
  endpoints?: { addresses: string[] }[];
  ports?: { port?: number }[];
}

async function slicesFor(service: string): Promise<Slice[]> {
  const list = await client.request<{ items: Slice[] }>('GET', `/apis/discovery.k8s.io/v1/namespaces/${ns.name}/endpointslices`, { query: { labelSelector: `kubernetes.io/service-name=${service}` } });
  return list.items;
}

describe('local control plane', () => {
  it('reports the real Kubernetes version it was built from', async () => {
    const version = await client.request<{ gitVersion: string; major: string; minor: string }>('GET', '/version');
    expect(version.gitVersion).toBe(inject('kubernetesVersion'));
    expect(version.gitVersion).toMatch(/^v1\.\d+\.\d+$/);
    expect(version.major).toBe('1');
  });

  it('allocates dual-stack ClusterIPs', async () => {
    const svc = await client.request<{ spec: { clusterIPs: string[]; ipFamilies: string[] } }>('POST', `/api/v1/namespaces/${ns.name}/services`, {
      body: { metadata: { name: 'dual' }, spec: { ipFamilyPolicy: 'RequireDualStack', ports: [{ port: 80 }] } },
    });
    expect(svc.spec.ipFamilies).toEqual(['IPv4', 'IPv6']);
    expect(svc.spec.clusterIPs).toHaveLength(2);
  });

  it('runs the EndpointSlice controller for Services with a selector', async () => {
    await applyYaml(client, await readExample('seed/nginx-service1.yaml'), ns.name);
    const slices = await eventually(async () => {
      const found = await slicesFor('nginx-service1');
      return found.length > 0 ? found : undefined;
    }, 'an EndpointSlice for nginx-service1');
    expect(slices[0]?.metadata.labels?.['endpointslice.kubernetes.io/managed-by']).toBe('endpointslice-controller.k8s.io');
  });

  it('mirrors the seed manual Endpoints of a selectorless Service into an EndpointSlice', async () => {
    await applyYaml(client, await readExample('seed/db-external-endpoints.yaml'), ns.name);
    const slice = await eventually(async () => (await slicesFor('db')).find((s) => s.endpoints?.some((e) => e.addresses.includes('192.0.2.10'))), 'a mirrored EndpointSlice for db');
    expect(slice.metadata.labels?.['endpointslice.kubernetes.io/managed-by']).toBe('endpointslicemirroring-controller.k8s.io');
    expect(slice.ports?.[0]?.port).toBe(3306);
  });

  it('garbage-collects dependents through ownerReferences', async () => {
    const owner = await client.request<{ metadata: { uid: string } }>('POST', `/api/v1/namespaces/${ns.name}/configmaps`, { body: { metadata: { name: 'owner' } } });
    await client.request('POST', `/api/v1/namespaces/${ns.name}/configmaps`, {
      body: { metadata: { name: 'dependent', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid }] } },
    });
    await client.request('DELETE', `/api/v1/namespaces/${ns.name}/configmaps/owner`);
    await eventually(async () => {
      try {
        await client.request('GET', `/api/v1/namespaces/${ns.name}/configmaps/dependent`);
        return undefined;
      } catch (error) {
        return isKubeError(error, 404) ? true : undefined;
      }
    }, 'the dependent to be collected');
  });

  it('creates the default ServiceAccount and deletes namespaces with their contents', async () => {
    const admin = testClient();
    const name = `${ns.name}-tmp`;
    await admin.request('POST', '/api/v1/namespaces', { body: { metadata: { name } } });
    await eventually(() => admin.request('GET', `/api/v1/namespaces/${name}/serviceaccounts/default`).then(() => true), 'the default ServiceAccount');
    await admin.request('POST', `/api/v1/namespaces/${name}/configmaps`, { body: { metadata: { name: 'inside' } } });
    await admin.request('DELETE', `/api/v1/namespaces/${name}`);
    await eventually(async () => {
      try {
        await admin.request('GET', `/api/v1/namespaces/${name}`);
        return undefined;
      } catch (error) {
        return isKubeError(error, 404) ? true : undefined;
      }
    }, 'the namespace to be deleted', 60_000);
  });
});
