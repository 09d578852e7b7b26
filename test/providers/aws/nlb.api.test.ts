/**
 * The real controller (in-process) with the AWS provider, against the real API server and moto:
 * what a user sees in `kubectl get svc` and in the AWS console.
 */
import type { V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AwsApi } from '../../../src/providers/aws/api.js';
import { TAG_CLUSTER, TAG_SERVICE } from '../../../src/providers/aws/desired.js';
import { awsModule } from '../../../src/providers/aws/module.js';
import { describeTags } from '../../../src/providers/aws/provider.js';
import { startTestController, type TestController } from '../../support/controller.js';
import { eventually, useNamespace } from '../../support/kube.js';
import { createNetwork, motoApi, REGION, runInstances, TEST_CREDENTIALS, useMoto } from './moto.js';

const CLUSTER = 'api-test';
const moto = useMoto();
const ns = useNamespace('aws');
const { client } = ns;
const signal = new AbortController().signal;

interface Observed {
  dnsName: string;
  listeners: string[];
  targetGroups: number[];
  targets: string[];
}

/** What exists in AWS for a Service, found by our tags (as a user would filter the console). */
async function observe(name: string): Promise<Observed[]> {
  const raw = motoApi(moto.server);
  const key = `${ns.name}/${name}`;
  const lbs = (await raw.describeLoadBalancers(signal, {})).items;
  const tags = await describeTags(raw, signal, lbs.map((l) => l.arn));
  const out: Observed[] = [];
  for (const lb of lbs.filter((l) => tags.get(l.arn)?.[TAG_CLUSTER] === CLUSTER && tags.get(l.arn)?.[TAG_SERVICE] === key)) {
    const listeners = (await raw.describeListeners(signal, lb.arn)).items.map((l) => `${l.port}/${l.protocol}`).sort();
    // moto: TargetGroupNotFound for a balancer without target groups (AWS: an empty list).
    const tgs = (await raw.describeTargetGroups(signal, { loadBalancerArn: lb.arn }).catch(() => ({ items: [] }))).items;
    const targets = (await Promise.all(tgs.map((tg) => raw.describeTargetHealth(signal, tg.arn)))).flat().map((t) => t.id).sort();
    out.push({ dnsName: lb.dnsName, listeners, targetGroups: tgs.map((t) => t.port).sort(), targets });
  }
  return out;
}

async function ourTargetGroups(name: string): Promise<string[]> {
  const raw = motoApi(moto.server);
  const all = (await raw.describeTargetGroups(signal, {})).items;
  const tags = await describeTags(raw, signal, all.map((t) => t.arn));
  return all.filter((t) => tags.get(t.arn)?.[TAG_SERVICE] === `${ns.name}/${name}`).map((t) => t.name);
}

describe('portico.dev/aws-nlb with the real controller', () => {
  let instances: { id: string; zone: string }[] = [];
  const nodeNames: string[] = [];
  const saved = { key: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  const flags = (): string[] => ['--providers=portico.dev/aws-nlb', `--aws-cluster-name=${CLUSTER}`, `--aws-endpoint=${moto.server.endpoint}`, `--aws-region=${REGION}`];

  async function addNode(index: number): Promise<void> {
    const instance = instances[index];
    if (!instance) throw new Error('no instance');
    const name = `${ns.name}-n${index}`;
    nodeNames.push(name);
    await client.request('POST', '/api/v1/nodes', { body: { metadata: { name }, spec: { providerID: `aws:///${instance.zone}/${instance.id}` } } });
  }

  beforeAll(async () => {
    // The SDK's default credential chain: the environment comes first.
    process.env.AWS_ACCESS_KEY_ID = TEST_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = TEST_CREDENTIALS.secretAccessKey;
    const network = await createNetwork(moto.server, CLUSTER);
    instances = await runInstances(moto.server, network.internalSubnets[0] ?? '', 3);
  });
  afterAll(async () => {
    for (const name of nodeNames) await client.request('DELETE', `/api/v1/nodes/${name}`).catch(() => undefined);
    if (saved.key === undefined) delete process.env.AWS_ACCESS_KEY_ID;
    else process.env.AWS_ACCESS_KEY_ID = saved.key;
    if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY;
    else process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
  });

  it('Service -> NLB with listeners, target groups and instance targets; nodes, ports and deletion follow', async () => {
    await addNode(0);
    await addNode(1);
    const controller: TestController = await startTestController(flags());
    try {
      await client.request('POST', `/api/v1/namespaces/${ns.name}/services`, {
        body: { metadata: { name: 'web' }, spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/aws-nlb', ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      });
      const path = `/api/v1/namespaces/${ns.name}/services/web`;
      const hostname = await eventually(async () => (await client.request<V1Service>('GET', path)).status?.loadBalancer?.ingress?.[0]?.hostname, 'the NLB DNS name in status');
      const service = await client.request<V1Service>('GET', path);
      const nodePort = service.spec?.ports?.[0]?.nodePort ?? 0;
      const twoNodes = [instances[0]?.id, instances[1]?.id].sort();
      expect(await observe('web')).toEqual([{ dnsName: hostname, listeners: ['80/TCP'], targetGroups: [nodePort], targets: twoNodes }]);
      const calls = await controller.running.registry.getSingleMetric('portico_aws_api_calls_total')?.get();
      expect(calls?.values.find((v) => v.labels.operation === 'createLoadBalancer' && v.labels.outcome === 'ok')?.value).toBe(1);

      await addNode(2);
      await eventually(async () => ((await observe('web'))[0]?.targets.length === 3 ? true : undefined), 'the new node registered');
      await client.request('DELETE', `/api/v1/nodes/${nodeNames[0] ?? ''}`);
      await eventually(async () => ((await observe('web'))[0]?.targets.join() === [instances[1]?.id, instances[2]?.id].sort().join() ? true : undefined), 'the removed node deregistered');

      await client.request('PATCH', path, { body: { spec: { ports: [{ name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' }] } }, patchType: 'merge' });
      const changed = await eventually(async () => {
        const [o] = await observe('web');
        return o?.listeners.join() === '443/TCP' && o.targetGroups.length === 1 ? o : undefined;
      }, 'listener 443 replacing 80');
      expect(changed.dnsName).toBe(hostname);
      await eventually(async () => ((await ourTargetGroups('web')).length === 1 ? true : undefined), 'the old target group deleted');

      await client.request('DELETE', path);
      await eventually(async () => (await client.request('GET', path).then(() => false).catch(() => true)) || undefined, 'the Service gone (finalizer released)');
      expect(await observe('web')).toEqual([]);
      expect(await ourTargetGroups('web')).toEqual([]);
    } finally {
      await controller.stop();
    }
  });

  it('ip targets follow the Service\'s EndpointSlices', async () => {
    const controller = await startTestController(flags());
    try {
      const slicePath = `/apis/discovery.k8s.io/v1/namespaces/${ns.name}/endpointslices`;
      const endpoints = (ips: string[]) => ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } }));
      await client.request('POST', slicePath, {
        body: {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: { name: 'pods-1', labels: { 'kubernetes.io/service-name': 'pods', 'endpointslice.kubernetes.io/managed-by': 'portico-test' } },
          addressType: 'IPv4',
          ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
          endpoints: endpoints(['10.0.1.5', '10.0.1.6']),
        },
      });
      await client.request('POST', `/api/v1/namespaces/${ns.name}/services`, {
        body: {
          metadata: { name: 'pods', annotations: { 'service.beta.kubernetes.io/aws-load-balancer-nlb-target-type': 'ip' } },
          spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/aws-nlb', ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
        },
      });
      await eventually(async () => ((await observe('pods'))[0]?.targets.join() === '10.0.1.5,10.0.1.6' ? true : undefined), 'the pod IPs registered');
      await client.request('PATCH', `${slicePath}/pods-1`, { body: { endpoints: endpoints(['10.0.1.6', '10.0.1.7']) }, patchType: 'merge' });
      await eventually(async () => ((await observe('pods'))[0]?.targets.join() === '10.0.1.6,10.0.1.7' ? true : undefined), 'the new pod registered, the gone one deregistered');
      await client.request('DELETE', `/api/v1/namespaces/${ns.name}/services/pods`);
      await eventually(async () => ((await observe('pods')).length === 0 ? true : undefined), 'the NLB deleted');
    } finally {
      await controller.stop();
    }
  });

  it('killed after creating the NLB and before its listeners: after a restart, exactly one NLB, complete', async () => {
    if (nodeNames.length === 0) await addNode(1);
    let reached: (() => void) | undefined;
    const stuck = new Promise<void>((resolve) => (reached = resolve));
    // The first controller "dies" inside CreateTargetGroup: the call never returns.
    const hang = (api: AwsApi): AwsApi => ({
      ...api,
      createTargetGroup: (callSignal) =>
        new Promise((_resolve, reject) => {
          reached?.();
          callSignal.addEventListener('abort', () => reject(new Error('killed')), { once: true });
        }),
    });
    const first = await startTestController(flags(), { providerModules: [awsModule({ wrapApi: hang })] });
    try {
      await client.request('POST', `/api/v1/namespaces/${ns.name}/services`, {
        body: { metadata: { name: 'crash' }, spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/aws-nlb', ports: [{ port: 80 }] } },
      });
      await stuck;
      expect((await observe('crash')).map((o) => o.listeners)).toEqual([[]]);
    } finally {
      await first.stop();
    }
    const second = await startTestController(flags());
    try {
      const path = `/api/v1/namespaces/${ns.name}/services/crash`;
      const hostname = await eventually(async () => (await client.request<V1Service>('GET', path)).status?.loadBalancer?.ingress?.[0]?.hostname, 'the NLB DNS name in status');
      const all = await observe('crash');
      expect(all).toHaveLength(1);
      expect(all[0]).toMatchObject({ dnsName: hostname, listeners: ['80/TCP'] });
      await client.request('DELETE', path);
      await eventually(async () => ((await observe('crash')).length === 0 ? true : undefined), 'the NLB deleted');
    } finally {
      await second.stop();
    }
  });

  it('loadBalancerSourceRanges: the NLB\'s security group allows exactly them; a change is applied in place; a range the NLB cannot take is a condition naming it', async () => {
    if (nodeNames.length === 0) await addNode(1);
    const controller = await startTestController(flags());
    try {
      const path = `/api/v1/namespaces/${ns.name}/services/fenced`;
      await client.request('POST', `/api/v1/namespaces/${ns.name}/services`, {
        body: { metadata: { name: 'fenced' }, spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/aws-nlb', loadBalancerSourceRanges: ['203.0.113.0/24'], ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
      });
      const ready = async (status: 'True' | 'False') => {
        const s = await client.request<V1Service>('GET', path);
        const c = s.status?.conditions?.find((x) => x.type === 'LoadBalancerReady');
        return c?.status === status && c.observedGeneration === s.metadata?.generation ? { service: s, condition: c } : undefined;
      };
      const first = await eventually(() => ready('True'), 'LoadBalancerReady=True');
      const hostname = first.service.status?.loadBalancer?.ingress?.[0]?.hostname;
      expect(hostname).toMatch(/elb/);
      const groupRules = async (): Promise<{ lb: string; group: string | undefined; rules: string[] }> => {
        const raw = motoApi(moto.server);
        const key = `${ns.name}/fenced`;
        const lbs = (await raw.describeLoadBalancers(signal, {})).items;
        const tags = await describeTags(raw, signal, lbs.map((l) => l.arn));
        const lb = lbs.find((l) => tags.get(l.arn)?.[TAG_SERVICE] === key && tags.get(l.arn)?.[TAG_CLUSTER] === CLUSTER);
        const [group, ...more] = (await raw.describeSecurityGroups(signal, { ids: lb?.securityGroupIds ?? [] })).items;
        if (more.length > 0) throw new Error('more than one group');
        return { lb: lb?.arn ?? '', group: group?.id, rules: (group?.ingress ?? []).map((r) => `${r.protocol}/${r.fromPort} ${r.source.value}`).sort() };
      };
      const before = await groupRules();
      expect(before.rules).toEqual(['tcp/80 203.0.113.0/24']);
      // EC2 calls are counted with the ELBv2 ones.
      const calls = await controller.running.registry.getSingleMetric('portico_aws_api_calls_total')?.get();
      const ok = (operation: string) => calls?.values.find((v) => v.labels.operation === operation && v.labels.outcome === 'ok')?.value;
      expect([ok('createSecurityGroup'), ok('authorizeSecurityGroupIngress')]).toEqual([1, 1]);

      await client.request('PATCH', path, { body: { spec: { loadBalancerSourceRanges: ['198.51.100.0/24'] } }, patchType: 'merge' });
      const after = await eventually(async () => {
        const now = await groupRules();
        return now.rules.join() === 'tcp/80 198.51.100.0/24' ? now : undefined;
      }, 'the rule changed');
      expect(after).toMatchObject({ lb: before.lb, group: before.group });
      expect((await ready('True'))?.service.status?.loadBalancer?.ingress?.[0]?.hostname).toBe(hostname);

      // Valid for the API server, not for an IPv4-only NLB: Portico says why, and the NLB keeps its address and rules.
      await client.request('PATCH', path, { body: { spec: { loadBalancerSourceRanges: ['2001:db8::/32'] } }, patchType: 'merge' });
      const refused = await eventually(() => ready('False'), 'LoadBalancerReady=False');
      expect(refused.condition.reason).toBe('InvalidSpec');
      expect(refused.condition.message).toMatch(/spec\.loadBalancerSourceRanges\[0\].*IPv6.*dualstack/);
      expect(refused.service.status?.loadBalancer?.ingress?.[0]?.hostname).toBe(hostname);
      expect((await groupRules()).rules).toEqual(['tcp/80 198.51.100.0/24']);

      await client.request('DELETE', path);
      await eventually(async () => (await client.request('GET', path).then(() => false).catch(() => true)) || undefined, 'the Service gone (finalizer released)');
      expect(await observe('fenced')).toEqual([]);
      expect((await motoApi(moto.server).describeSecurityGroups(signal, { filters: [{ name: `tag:${TAG_SERVICE}`, values: [`${ns.name}/fenced`] }] })).items).toEqual([]);
    } finally {
      await controller.stop();
    }
  });
});
