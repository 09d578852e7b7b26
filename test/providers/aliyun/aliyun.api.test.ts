/**
 * The real controller with the Alibaba Cloud provider (`--providers=portico.dev/aliyun-slb`)
 * against the real API server, and the SLB fake behind the real openapi-core stack.
 */
import type { V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyManifest, type Manifest } from '../../../src/kube/apply.js';
import { isKubeError } from '../../../src/kube/rest.js';
import { ALIYUN_CLASS } from '../../../src/providers/aliyun/spec.js';
import { annotation, TAG_SERVICE } from '../../../src/providers/aliyun/spec.js';
import { FAKE_ACCESS_KEY_ID, FAKE_ACCESS_KEY_SECRET, FakeSlbServer, type FakeLoadBalancer } from '../../fakes/slb-server.js';
import { startTestController, type TestController } from '../../support/controller.js';
import { eventually, useNamespace } from '../../support/kube.js';

const ns = useNamespace('aliyun');
const { client } = ns;
const fake = new FakeSlbServer();
let endpoint = '';
let controller: TestController | undefined;
const nodeNames: string[] = [];

function flags(): string[] {
  return [`--providers=${ALIYUN_CLASS}`, '--aliyun-region=cn-hangzhou', `--aliyun-cluster-name=${ns.name}`, `--aliyun-endpoint=http://${endpoint}`, '--aliyun-gc=off'];
}

async function startController(): Promise<void> {
  controller = await startTestController(flags());
}

function lbService(name: string, options: { annotations?: Record<string, string>; ports?: { port: number; protocol?: string }[] } = {}): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns.name, annotations: options.annotations ?? {} },
    spec: { type: 'LoadBalancer', loadBalancerClass: ALIYUN_CLASS, selector: { app: name }, ports: (options.ports ?? [{ port: 80 }]).map((p, i) => ({ name: `p${String(i)}`, protocol: 'TCP', ...p })) },
  };
}

async function getService(name: string): Promise<V1Service> {
  return client.request<V1Service>('GET', `/api/v1/namespaces/${ns.name}/services/${name}`);
}

async function addNode(name: string, providerID: string): Promise<void> {
  nodeNames.push(name);
  await client.request('POST', '/api/v1/nodes', { body: { metadata: { name }, spec: { providerID }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.10' }] } } });
}

function lbFor(name: string): FakeLoadBalancer | undefined {
  const all = [...fake.loadBalancers.values()].filter((lb) => lb.tags.get(TAG_SERVICE) === `${ns.name}/${name}`);
  return all.length === 1 ? all[0] : undefined;
}

function backends(lb: FakeLoadBalancer, key: string): string[] {
  const group = fake.groups.get(lb.listeners.get(key)?.params['VServerGroupId'] ?? '');
  return (group?.backends ?? []).map((b) => `${b.ServerId}:${String(b.Port)}`).sort();
}

async function deleteService(name: string): Promise<void> {
  await client.request('DELETE', `/api/v1/namespaces/${ns.name}/services/${name}`).catch((error: unknown) => {
    if (!isKubeError(error, 404)) throw error;
  });
  await eventually(async () => {
    try {
      await getService(name);
      return undefined;
    } catch (error) {
      return isKubeError(error, 404) ? true : undefined;
    }
  }, `${name} deleted`);
}

beforeAll(async () => {
  endpoint = await fake.start();
  // @alicloud/credentials' default chain reads the AccessKey from the environment first.
  process.env['ALIBABA_CLOUD_ACCESS_KEY_ID'] = FAKE_ACCESS_KEY_ID;
  process.env['ALIBABA_CLOUD_ACCESS_KEY_SECRET'] = FAKE_ACCESS_KEY_SECRET;
  await addNode(`${ns.name}-a`, 'cn-hangzhou.i-aaa');
  await addNode(`${ns.name}-b`, 'alicloud://cn-hangzhou.i-bbb');
  await startController();
});

afterAll(async () => {
  const services = await client.request<{ items: V1Service[] }>('GET', `/api/v1/namespaces/${ns.name}/services`);
  for (const s of services.items) await deleteService(s.metadata?.name ?? '');
  await controller?.stop();
  for (const name of nodeNames) await client.request('DELETE', `/api/v1/nodes/${name}`).catch(() => undefined);
  await fake.stop();
});

describe('Alibaba Cloud SLB provider in the controller', () => {
  it('Service -> one CLB with a started listener per port, backends = eligible nodes at the NodePort, status = CLB address', async () => {
    await applyManifest(client, lbService('web', { ports: [{ port: 80 }, { port: 53, protocol: 'UDP' }] }));
    const service = await eventually(async () => {
      const s = await getService('web');
      return s.status?.loadBalancer?.ingress?.[0]?.ip ? s : undefined;
    }, 'web to get an address');
    const lb = lbFor('web');
    if (!lb) throw new Error('no CLB');
    expect(service.status?.loadBalancer?.ingress?.[0]?.ip).toBe(lb.address);
    expect([...lb.listeners.values()].map((l) => `${String(l.port)}/${l.protocol}/${l.status}`).sort()).toEqual(['53/udp/running', '80/tcp/running']);
    const nodePort = (p: number): number => service.spec?.ports?.find((x) => x.port === p)?.nodePort ?? 0;
    expect(backends(lb, '80/tcp')).toEqual([`i-aaa:${String(nodePort(80))}`, `i-bbb:${String(nodePort(80))}`]);
    expect(backends(lb, '53/udp')).toEqual([`i-aaa:${String(nodePort(53))}`, `i-bbb:${String(nodePort(53))}`]);
    expect(lb.deleteProtection).toBe('on');
  });

  it('node changes update the backends', async () => {
    const lb = lbFor('web');
    if (!lb) throw new Error('no CLB');
    await addNode(`${ns.name}-c`, 'cn-hangzhou.i-ccc');
    await client.request('PATCH', `/api/v1/nodes/${ns.name}-a`, { body: { metadata: { labels: { 'node.kubernetes.io/exclude-from-external-load-balancers': 'true' } } }, patchType: 'merge' });
    await eventually(() => {
      const ids = backends(lb, '80/tcp').map((b) => b.split(':')[0]);
      return ids.join(',') === 'i-bbb,i-ccc' ? true : undefined;
    }, 'backends to be i-bbb and i-ccc');
  });

  it('reuse by id leaves the CLB and its foreign listeners alone, also on deletion', async () => {
    const reused = fake.seedLoadBalancer({ name: 'hand-made', deleteProtection: 'on' });
    fake.seedListener(reused.id, 443, 'tcp');
    await applyManifest(client, lbService('reuse', { annotations: { [annotation('id')]: reused.id } }));
    await eventually(() => (reused.listeners.get('80/tcp')?.status === 'running' ? true : undefined), 'our listener on the reused CLB');
    expect(reused.listeners.get('443/tcp')?.params['Description']).toBe('made by hand');
    await deleteService('reuse');
    expect(fake.loadBalancers.has(reused.id)).toBe(true);
    expect([...reused.listeners.keys()]).toEqual(['443/tcp']);
  });

  it('deletion removes our CLB after turning delete protection off, and nothing else', async () => {
    const other = fake.seedLoadBalancer({ name: 'not-ours' });
    const lb = lbFor('web');
    if (!lb) throw new Error('no CLB');
    fake.resetCalls();
    await deleteService('web');
    expect(fake.loadBalancers.has(lb.id)).toBe(false);
    expect(fake.loadBalancers.has(other.id)).toBe(true);
    const order = fake.calls.map((c) => c.action);
    expect(order.indexOf('SetLoadBalancerDeleteProtection')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('SetLoadBalancerDeleteProtection')).toBeLessThan(order.indexOf('DeleteLoadBalancer'));
  });

  it('a crash right after CreateLoadBalancer, then a restart, ends with exactly one CLB', async () => {
    let release = (): void => undefined;
    fake.holdCreate(new Promise<void>((resolve) => (release = resolve)));
    await applyManifest(client, lbService('crash'));
    await eventually(() => (fake.callCount('CreateLoadBalancer') > 0 && fake.calls.at(-1)?.action === 'CreateLoadBalancer' ? true : undefined), 'the create to be in flight');
    await controller?.stop();
    release();
    await eventually(() => (lbFor('crash') ? true : undefined), 'the held create to finish');
    fake.holdCreate(Promise.resolve());
    await startController();
    const service = await eventually(async () => {
      const s = await getService('crash');
      return s.status?.loadBalancer?.ingress?.[0]?.ip ? s : undefined;
    }, 'crash to get an address');
    const lbs = [...fake.loadBalancers.values()].filter((lb) => lb.tags.get(TAG_SERVICE) === `${ns.name}/crash`);
    expect(lbs).toHaveLength(1);
    expect(service.status?.loadBalancer?.ingress?.[0]?.ip).toBe(lbs[0]?.address);
    expect(lbs[0]?.listeners.get('80/tcp')?.status).toBe('running');
  });
});
