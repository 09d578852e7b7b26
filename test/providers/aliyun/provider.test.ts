import type { V1Service } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Cache } from '../../../src/kube/informer.js';
import { SlbClient } from '../../../src/providers/aliyun/client.js';
import { AliyunSlbProvider } from '../../../src/providers/aliyun/provider.js';
import { OpenApiCaller, RetryingCaller } from '../../../src/providers/aliyun/transport.js';
import { FakeClock } from '../../fakes/clock.js';
import { ProviderError } from '../../../src/providers/provider.js';
import { annotation, TAG_CLUSTER, TAG_RESOURCE, TAG_SERVICE } from '../../../src/providers/aliyun/spec.js';
import { node } from '../../builders/service.js';
import { FAKE_ACCESS_KEY_ID, FAKE_ACCESS_KEY_SECRET, FakeSlbServer, MUTATING_ACTIONS, type FakeLoadBalancer } from '../../fakes/slb-server.js';
import { backendsOf, buildProvider, CLUSTER, context, nodes, service, withAliyun, withNodePorts, withProviderID, withSourceRanges } from './harness.js';

const fake = new FakeSlbServer();
let endpoint = '';
beforeAll(async () => {
  endpoint = await fake.start();
});
afterAll(() => fake.stop());
beforeEach(() => {
  fake.loadBalancers.clear();
  fake.groups.clear();
  fake.acls.clear();
  fake.resetCalls();
});

function only(): FakeLoadBalancer {
  const all = [...fake.loadBalancers.values()];
  expect(all).toHaveLength(1);
  return all[0] as FakeLoadBalancer;
}
function backendsOfListener(lb: FakeLoadBalancer, key: string): string[] {
  const groupId = lb.listeners.get(key)?.params['VServerGroupId'] ?? '';
  return (fake.groups.get(groupId)?.backends ?? []).map((b) => `${b.ServerId}:${b.Port}`).sort();
}
async function until(probe: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
const mutating = (): string[] => fake.calls.filter((c) => MUTATING_ACTIONS.has(c.action)).map((c) => c.action);

describe('Aliyun SLB provider against the SLB fake', () => {
  it('creates one tagged, delete-protected CLB with a started listener per port and node backends at the NodePort', async () => {
    const { provider } = buildProvider(fake, endpoint);
    const web = service('web', withNodePorts({ port: 80, nodePort: 30080 }, { port: 53, nodePort: 30053, protocol: 'UDP' }));
    const status = await provider.ensure(context(), web, backendsOf(nodes(3)));
    const lb = only();
    expect(status.ingress[0]?.ip).toBe(lb.address);
    expect(Object.fromEntries(lb.tags)).toMatchObject({ [TAG_CLUSTER]: CLUSTER, [TAG_SERVICE]: 'default/web', [TAG_RESOURCE]: 'load-balancer' });
    expect(lb.deleteProtection).toBe('on');
    expect([...lb.listeners.values()].map((l) => [l.port, l.protocol, l.status]).sort()).toEqual([[53, 'udp', 'running'], [80, 'tcp', 'running']]);
    expect(backendsOfListener(lb, '80/tcp')).toEqual(['i-node0:30080', 'i-node1:30080', 'i-node2:30080']);
    expect(backendsOfListener(lb, '53/udp')).toEqual(['i-node0:30053', 'i-node1:30053', 'i-node2:30053']);
    expect(fake.calls.find((c) => c.action === 'CreateLoadBalancer')?.params['ClientToken']).toMatch(/^portico-/);
  });

  it('makes no write on a re-ensure with nothing changed', async () => {
    const { provider } = buildProvider(fake, endpoint, { snapshotTtlMs: 60_000 });
    const web = service('web');
    await provider.ensure(context(), web, backendsOf(nodes(2)));
    fake.resetCalls();
    await provider.ensure(context(), web, backendsOf(nodes(2)));
    expect(mutating()).toEqual([]);
    // A fresh provider (restart) needs one listing and still writes nothing.
    fake.resetCalls();
    await buildProvider(fake, endpoint).provider.ensure(context(), web, backendsOf(nodes(2)));
    expect(fake.calls.map((c) => c.action)).toEqual(['DescribeLoadBalancers']);
  });

  it('follows node changes in batches of at most 20 and skips nodes without an ECS providerID', async () => {
    const { provider } = buildProvider(fake, endpoint);
    const web = service('web');
    await provider.ensure(context(), web, backendsOf(nodes(45)));
    expect(backendsOfListener(only(), '80/tcp')).toHaveLength(45);
    const ctx = context();
    await provider.updateBackends(ctx, web, backendsOf([...nodes(3, 44), node('bare', withProviderID(undefined)), node('kind', withProviderID('kind://docker/kind/kind-worker'))]));
    expect(backendsOfListener(only(), '80/tcp')).toEqual(['i-node44:30080', 'i-node45:30080', 'i-node46:30080']);
    for (const call of fake.calls.filter((c) => c.action.endsWith('BackendServers'))) expect((JSON.parse(call.params['BackendServers'] ?? '[]') as unknown[]).length).toBeLessThanOrEqual(20);
    expect(ctx.recorded).toContainEqual(expect.objectContaining({ type: 'Warning', reason: 'UnusableProviderID', message: expect.stringContaining('bare, kind') as string }));
  });

  it('deletes only its own CLB, turning delete protection off first', async () => {
    const { provider } = buildProvider(fake, endpoint);
    const web = service('web', withSourceRanges('198.51.100.0/24'));
    await provider.ensure(context(), web, backendsOf(nodes(1)));
    const other = fake.seedLoadBalancer({ name: 'someone-else', deleteProtection: 'on' });
    fake.resetCalls();
    await provider.ensureDeleted(context(), web);
    expect([...fake.loadBalancers.keys()]).toEqual([other.id]);
    expect(fake.acls.size).toBe(0);
    const actions = mutating();
    expect(actions.indexOf('SetLoadBalancerDeleteProtection')).toBeLessThan(actions.indexOf('DeleteLoadBalancer'));
    // Idempotent.
    await provider.ensureDeleted(context(), web);
    expect(await provider.get(context(), web)).toEqual({ exists: false });
  });

  it('reuses a CLB by id, leaves its own listeners alone and never deletes it', async () => {
    const { provider } = buildProvider(fake, endpoint);
    const reused = fake.seedLoadBalancer({ name: 'hand-made', deleteProtection: 'on' });
    fake.seedListener(reused.id, 443, 'tcp');
    const web = service('web', withAliyun('id', reused.id));
    await provider.ensure(context(), web, backendsOf(nodes(2)));
    expect([...reused.listeners.keys()].sort()).toEqual(['443/tcp', '80/tcp']);
    expect(reused.listeners.get('443/tcp')?.params['Description']).toBe('made by hand');
    expect(reused.name).toBe('hand-made');

    await provider.ensureDeleted(context(), web);
    expect(fake.loadBalancers.has(reused.id)).toBe(true);
    expect([...reused.listeners.keys()]).toEqual(['443/tcp']);
    expect([...fake.groups.values()].filter((g) => g.loadBalancerId === reused.id)).toEqual([]);
    expect(reused.tags.has(TAG_SERVICE)).toBe(false);
  });

  it('refuses a port held by a foreign listener unless force-override-listeners is set', async () => {
    const { provider } = buildProvider(fake, endpoint);
    const reused = fake.seedLoadBalancer({ name: 'hand-made' });
    fake.seedListener(reused.id, 80, 'tcp');
    const error = await provider.ensure(context(), service('web', withAliyun('id', reused.id)), backendsOf(nodes(1))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ retryable: false, reason: 'NotOwned', field: `metadata.annotations[${annotation('force-override-listeners')}]` });
    expect(reused.listeners.get('80/tcp')?.params['Description']).toBe('made by hand');

    await provider.ensure(context(), service('web', withAliyun('id', reused.id), withAliyun('force-override-listeners', 'true')), backendsOf(nodes(1)));
    expect(reused.listeners.get('80/tcp')?.params['Description']).toMatch(/^portico:/);
  });

  it('never takes over a CLB tagged by another owner', async () => {
    const { provider } = buildProvider(fake, endpoint);
    const taken = fake.seedLoadBalancer({ tags: { [TAG_CLUSTER]: 'other-cluster', [TAG_SERVICE]: 'default/web' } });
    const error = await provider.ensure(context(), service('web', withAliyun('id', taken.id)), backendsOf(nodes(1))).catch((e: unknown) => e);
    expect(error).toMatchObject({ retryable: false, reason: 'NotOwned' });
    expect(taken.listeners.size).toBe(0);
  });

  it('maps loadBalancerSourceRanges to a whitelist ACL and removes it when the ranges go', async () => {
    const { provider } = buildProvider(fake, endpoint);
    await provider.ensure(context(), service('web', withSourceRanges('198.51.100.0/24', '203.0.113.7/32')), backendsOf(nodes(1)));
    const lb = only();
    const listener = lb.listeners.get('80/tcp');
    expect(listener?.params).toMatchObject({ AclStatus: 'on', AclType: 'white' });
    expect(fake.acls.get(listener?.params['AclId'] ?? '')?.entries.map((e) => e.entry).sort()).toEqual(['198.51.100.0/24', '203.0.113.7/32']);
    await provider.ensure(context(), service('web'), backendsOf(nodes(1)));
    expect(lb.listeners.get('80/tcp')?.params['AclStatus']).toBe('off');
    expect(fake.acls.size).toBe(0);
  });

  it('restart after a crash right after CreateLoadBalancer converges the same CLB', async () => {
    const first = buildProvider(fake, endpoint, { retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 } });
    fake.failNext('DescribeLoadBalancerAttribute', { status: 503, code: 'ServiceUnavailable', times: 1 });
    await expect(first.provider.ensure(context(), service('web'), backendsOf(nodes(2)))).rejects.toMatchObject({ retryable: true });
    expect(fake.loadBalancers.size).toBe(1);
    await buildProvider(fake, endpoint).provider.ensure(context(), service('web'), backendsOf(nodes(2)));
    expect(only().listeners.get('80/tcp')?.status).toBe('running');
  });

  it('two creates racing on one ClientToken end with one CLB (LX_REQUEST_TOKEN_CONFLICT -> tag lookup)', async () => {
    let release = (): void => undefined;
    fake.holdCreate(new Promise<void>((resolve) => (release = resolve)));
    const a = buildProvider(fake, endpoint).provider.ensure(context(), service('web'), backendsOf(nodes(1)));
    await until(() => fake.callCount('CreateLoadBalancer') === 1);
    const b = buildProvider(fake, endpoint).provider.ensure(context(), service('web'), backendsOf(nodes(1)));
    // The second create meets the first still in flight, then the first finishes.
    await until(() => fake.callCount('CreateLoadBalancer') === 2);
    release();
    // Both then converge the same CLB at once (two controllers, as in a split brain): the loser
    // may fail retryably on a listener the winner just created; its retry converges.
    const results = await Promise.allSettled([a, b]);
    fake.holdCreate(Promise.resolve());
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ retryable: true });
    const status = await buildProvider(fake, endpoint).provider.ensure(context(), service('web'), backendsOf(nodes(1)));
    const lb = only();
    expect(status.ingress[0]?.ip).toBe(lb.address);
    expect(lb.listeners.get('80/tcp')?.status).toBe('running');
    expect(backendsOfListener(lb, '80/tcp')).toEqual(['i-node0:30080']);
  });

  it('makes no call once the signal has fired', async () => {
    const { provider } = buildProvider(fake, endpoint);
    const abort = new AbortController();
    abort.abort(new Error('leadership lost'));
    await expect(provider.ensure(context(abort.signal), service('web'), backendsOf(nodes(1)))).rejects.toThrow();
    expect(fake.calls).toEqual([]);
  });

  it('makes no call after the signal fires mid-ensure', async () => {
    const { provider } = buildProvider(fake, endpoint);
    let release = (): void => undefined;
    fake.holdCreate(new Promise<void>((resolve) => (release = resolve)));
    const abort = new AbortController();
    const pending = provider.ensure(context(abort.signal), service('web'), backendsOf(nodes(1)));
    await until(() => fake.callCount('CreateLoadBalancer') === 1);
    abort.abort(new Error('superseded'));
    await expect(pending).rejects.toThrow('superseded');
    const before = fake.calls.length;
    release();
    await until(() => fake.loadBalancers.size === 1);
    fake.holdCreate(Promise.resolve());
    expect(fake.calls.length).toBe(before);
  });

  it('a vSwitch the API does not know is a terminal error naming vswitch-id', async () => {
    const { provider } = buildProvider(fake, endpoint);
    fake.failNext('CreateLoadBalancer', { status: 400, code: 'InvalidVSwitchId.NotFound', message: 'The specified VSwitchId does not exist.' });
    await expect(provider.ensure(context(), service('web', withAliyun('address-type', 'intranet'), withAliyun('vswitch-id', 'vsw-missing')), backendsOf(nodes(1)))).rejects.toMatchObject({
      retryable: false,
      field: `metadata.annotations[${annotation('vswitch-id')}]`,
    });
  });

  it('reports a bad annotation as a terminal error naming it, with no call', async () => {
    const { provider } = buildProvider(fake, endpoint);
    await expect(provider.ensure(context(), service('web', withAliyun('address-type', 'public')), backendsOf(nodes(1)))).rejects.toMatchObject({
      retryable: false,
      reason: 'InvalidSpec',
      field: `metadata.annotations[${annotation('address-type')}]`,
    });
    expect(fake.calls).toEqual([]);
  });

  it('converges annotation edits on a CLB it created', async () => {
    const { provider } = buildProvider(fake, endpoint);
    await provider.ensure(context(), service('web'), backendsOf(nodes(1)));
    await provider.ensure(context(), service('web', withAliyun('bandwidth', '20'), withAliyun('charge-type', 'paybybandwidth'), withAliyun('scheduler', 'rr'), withAliyun('health-check-type', 'http'), withAliyun('health-check-uri', '/healthz'), withAliyun('delete-protection', 'off'), withAliyun('additional-resource-tags', 'team=a')), backendsOf(nodes(1)));
    const lb = only();
    expect([lb.bandwidth, lb.chargeType, lb.deleteProtection, lb.tags.get('team')]).toEqual([20, 'paybybandwidth', 'off', 'a']);
    expect(lb.listeners.get('80/tcp')?.params).toMatchObject({ Scheduler: 'rr', HealthCheckType: 'http', HealthCheckURI: '/healthz' });
  });

  it('sweeps orphans: dry run reports and keeps, a real sweep removes only ours', async () => {
    const { provider } = buildProvider(fake, endpoint);
    await provider.ensure(context(), service('gone'), backendsOf(nodes(1)));
    await provider.ensure(context(), service('alive'), backendsOf(nodes(1)));
    const reused = fake.seedLoadBalancer({ name: 'hand-made' });
    fake.seedListener(reused.id, 443, 'tcp');
    await provider.ensure(context(), service('gone-reuse', withAliyun('id', reused.id)), backendsOf(nodes(1)));
    const foreign = fake.seedLoadBalancer({ tags: { [TAG_CLUSTER]: 'other-cluster', [TAG_SERVICE]: 'default/gone' } });
    const live = (key: string): boolean => key === 'default/alive';

    const report = await provider.sweep(new AbortController().signal, live, { dryRun: true });
    expect(report.map((r) => [r.service, r.created]).sort()).toEqual([['default/gone', true], ['default/gone-reuse', false]]);
    expect(fake.loadBalancers.size).toBe(4);
    expect(mutating()).not.toContain('DeleteLoadBalancer');

    await provider.sweep(new AbortController().signal, live, { dryRun: false });
    const left = [...fake.loadBalancers.values()];
    expect(left.map((lb) => lb.tags.get(TAG_SERVICE) ?? lb.name).sort()).toEqual(['default/alive', 'default/gone', 'hand-made']);
    expect(fake.loadBalancers.has(foreign.id)).toBe(true);
    expect([...reused.listeners.keys()]).toEqual(['443/tcp']);
  });
});

describe('orphan sweep in the background', () => {
  function services(keys: string[]): Cache<V1Service> {
    const list: V1Service[] = keys.map((key) => {
      const [namespace, name] = key.split('/');
      return { metadata: { namespace, name } };
    });
    return { get: (key) => (keys.includes(key) ? list[keys.indexOf(key)] : undefined), list: () => list, on: () => undefined, waitForSync: () => Promise.resolve(true) };
  }

  for (const mode of ['dry-run', 'on'] as const) {
    it(`runs after start and every interval (${mode})`, async () => {
      const clock = new FakeClock();
      const { provider: creator } = buildProvider(fake, endpoint);
      await creator.ensure(context(), service('gone'), backendsOf(nodes(1)));
      const inner = new OpenApiCaller({ regionId: fake.regionId, endpoint, protocol: 'http', accessKey: { id: FAKE_ACCESS_KEY_ID, secret: FAKE_ACCESS_KEY_SECRET } });
      const provider = new AliyunSlbProvider({
        slb: new SlbClient(new RetryingCaller({ inner, clock, registry: new Registry() }), fake.regionId),
        clusterName: CLUSTER,
        clock,
        logger: pino({ level: 'silent' }),
        gc: { mode, intervalMs: 60_000, services: services(['default/alive']) },
      });
      fake.resetCalls();
      const term = new AbortController();
      await provider.start(term.signal);
      await clock.advance(0);
      await until(() => fake.callCount('DescribeLoadBalancers') === 1);
      if (mode === 'on') await until(() => fake.loadBalancers.size === 0);
      // The next sweep is scheduled only once this one is done.
      await until(() => clock.pendingTimers === 1);
      await clock.advance(60_000);
      await until(() => fake.callCount('DescribeLoadBalancers') === 2);
      expect(fake.loadBalancers.size).toBe(mode === 'on' ? 0 : 1);
      expect(fake.calls.filter((c) => MUTATING_ACTIONS.has(c.action)).length > 0).toBe(mode === 'on');
      term.abort();
      provider.stop();
    });
  }
});
