/**
 * Health checks end to end: HTTP servers on a test host in a network namespace go down and up;
 * the EndpointSlice endpoint, the v1 Endpoints and the status follow. Skips loudly without root.
 */
import type { V1EndpointSlice, V1Endpoints } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_NAME_LABEL } from '../../../src/reconcile/externalservice/planner.js';
import { installCrds, startTestController, type TestController } from '../../support/controller.js';
import { eventually, useNamespace } from '../../support/kube.js';
import { CAN_NETNS, createTestHosts, type TestHosts } from './test-hosts.js';

const ns = useNamespace('xsvc-health');
const { client } = ns;
let controller: TestController | undefined;
let hosts: TestHosts | undefined;

if (!CAN_NETNS) console.warn('SKIPPING ExternalService health checks LOUDLY: they need root and `ip netns`');

beforeAll(async () => {
  if (!CAN_NETNS) return;
  hosts = await createTestHosts(2);
  await installCrds(client);
  await eventually(() => client.request('GET', '/apis/portico.dev/v1alpha1/externalservices').then(() => true), 'ExternalService CRD served');
  controller = await startTestController(['--external-services']);
});

afterAll(async () => {
  await controller?.stop();
  await hosts?.destroy();
});

async function readiness(name: string): Promise<{ slices: Map<string, boolean>; endpoints: Map<string, boolean> }> {
  const list = await client.request<{ items: V1EndpointSlice[] }>('GET', `/apis/discovery.k8s.io/v1/namespaces/${ns.name}/endpointslices`, { query: { labelSelector: `${SERVICE_NAME_LABEL}=${name}` } });
  const slices = new Map(list.items.flatMap((s) => ((s.endpoints as V1EndpointSlice['endpoints'] | null) ?? []).map((e) => [e.addresses[0] ?? '', e.conditions?.ready === true] as const)));
  const object = await client.request<V1Endpoints>('GET', `/api/v1/namespaces/${ns.name}/endpoints/${name}`);
  const endpoints = new Map<string, boolean>();
  for (const s of object.subsets ?? []) {
    for (const a of s.addresses ?? []) endpoints.set(a.ip, true);
    for (const a of s.notReadyAddresses ?? []) endpoints.set(a.ip, false);
  }
  return { slices, endpoints };
}

describe.skipIf(!CAN_NETNS)('ExternalService health checks', () => {
  it.each(['HTTP', 'TCP'] as const)('%s: a host going down turns ready false (kept, not removed) and back when it returns', async (protocol) => {
    if (!hosts) throw new Error('no test hosts');
    const [up, flapping] = hosts.addresses as [string, string];
    const name = `web-${protocol.toLowerCase()}`;
    await client.request('POST', `/apis/portico.dev/v1alpha1/namespaces/${ns.name}/externalservices`, {
      body: {
        apiVersion: 'portico.dev/v1alpha1',
        kind: 'ExternalService',
        metadata: { name },
        spec: {
          endpoints: [{ address: up }, { address: flapping }],
          ports: [{ name: 'http', port: 80, targetPort: hosts.port }],
          healthCheck: { protocol, path: '/', expectedCodes: '200-399', interval: '300ms', timeout: '200ms', healthyThreshold: 2, unhealthyThreshold: 2 },
        },
      },
    });
    const expectReady = async (want: Record<string, boolean>, what: string): Promise<void> => {
      const key = JSON.stringify(Object.entries(want).sort());
      await eventually(async () => {
        const r = await readiness(name);
        return JSON.stringify([...r.slices.entries()].sort()) === key && JSON.stringify([...r.endpoints.entries()].sort()) === key ? true : undefined;
      }, what);
    };
    await expectReady({ [up]: true, [flapping]: true }, 'both ready');
    await hosts.stop(flapping);
    await expectReady({ [up]: true, [flapping]: false }, `${flapping} not ready`);
    // Status is written by its own queue, after the slices: poll for it, do not race it.
    const degraded = await eventually(async () => {
      const current = await client.request<{ status?: { endpoints?: string; conditions?: { type: string; status: string; message: string }[] } }>('GET', `/apis/portico.dev/v1alpha1/namespaces/${ns.name}/externalservices/${name}`);
      return current.status?.endpoints === '1/2' && current.status.conditions?.some((c) => c.type === 'Degraded' && c.status === 'True') ? current : undefined;
    }, 'the status to count 1/2 ready and say Degraded');
    expect(degraded.status?.endpoints).toBe('1/2');
    expect(degraded.status?.conditions?.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', message: expect.stringContaining(flapping) as unknown });
    await hosts.start(flapping);
    await expectReady({ [up]: true, [flapping]: true }, `${flapping} ready again`);
  });
});
