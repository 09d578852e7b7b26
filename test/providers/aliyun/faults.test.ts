/** Fault injection at the HTTP level with nock, under the real openapi-core stack. */
import nock from 'nock';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../../src/kube/clock.js';
import { SlbClient } from '../../../src/providers/aliyun/client.js';
import { AliyunSlbProvider, toProviderError } from '../../../src/providers/aliyun/provider.js';
import { TAG_CLUSTER, TAG_RESOURCE, TAG_SERVICE } from '../../../src/providers/aliyun/spec.js';
import { CALLS_METRIC, OpenApiCaller, RetryingCaller } from '../../../src/providers/aliyun/transport.js';
import { FAKE_ACCESS_KEY_ID, FAKE_ACCESS_KEY_SECRET, FakeSlbServer } from '../../fakes/slb-server.js';
import { backendsOf, CLUSTER, context, nodes, service } from './harness.js';

const HOST = 'slb.cn-hangzhou.aliyuncs.com';
const signal = new AbortController().signal;

/** Sleeps nothing, records what it was asked to sleep. */
function recordingClock(): Clock & { slept: number[] } {
  const slept: number[] = [];
  return { slept, now: () => Date.now(), sleep: (ms) => (slept.push(ms), Promise.resolve()), setTimer: () => () => undefined };
}

function client(options: { endpoint?: string; readTimeoutMs?: number; maxAttempts?: number } = {}): { slb: SlbClient; clock: ReturnType<typeof recordingClock>; registry: Registry } {
  const clock = recordingClock();
  const registry = new Registry();
  const inner = new OpenApiCaller({ regionId: 'cn-hangzhou', endpoint: options.endpoint ?? HOST, protocol: 'http', readTimeoutMs: options.readTimeoutMs ?? 2000, accessKey: { id: FAKE_ACCESS_KEY_ID, secret: FAKE_ACCESS_KEY_SECRET } });
  const caller = new RetryingCaller({ inner, clock, registry, retry: { maxAttempts: options.maxAttempts ?? 5, baseDelayMs: 100, maxDelayMs: 1000 }, random: () => 0.5 });
  return { slb: new SlbClient(caller, 'cn-hangzhou'), clock, registry };
}

const error = (code: string): Record<string, string> => ({ RequestId: 'R-1', HostId: HOST, Code: code, Message: `${code} (injected)` });
const JSON_TYPE = { 'content-type': 'application/json;charset=utf-8' };
const action = (name: string) => nock(`http://${HOST}`).post('/').query(true).matchHeader('x-acs-action', name);
const empty = { TotalCount: 0, PageNumber: 1, PageSize: 100, LoadBalancers: { LoadBalancer: [] } };

async function counts(registry: Registry): Promise<Record<string, number>> {
  const values = (await registry.getSingleMetric(CALLS_METRIC)?.get())?.values ?? [];
  return Object.fromEntries(values.map((v) => [`${String(v.labels['action'])}/${String(v.labels['outcome'])}`, v.value]));
}

beforeAll(() => {
  nock.disableNetConnect();
  nock.enableNetConnect('127.0.0.1');
});
afterEach(() => {
  nock.cleanAll();
});
afterAll(() => {
  nock.enableNetConnect();
});

describe('retries under the real SDK', () => {
  it('rides out a throttling storm, waiting at least x-acs-retry-after each time', async () => {
    const { slb, clock, registry } = client();
    action('DescribeLoadBalancers').times(4).reply(400, error('Throttling.User'), { ...JSON_TYPE, 'x-acs-retry-after': '700' });
    action('DescribeLoadBalancers').reply(200, empty, JSON_TYPE);
    expect(await slb.describeLoadBalancers({}, signal)).toEqual([]);
    expect(clock.slept).toHaveLength(4);
    for (const ms of clock.slept) expect(ms).toBeGreaterThanOrEqual(700);
    expect(await counts(registry)).toEqual({ 'DescribeLoadBalancers/throttled': 4, 'DescribeLoadBalancers/ok': 1 });
  });

  it('a storm longer than the attempts surfaces as retryable with retryAfterMs', async () => {
    const { slb } = client({ maxAttempts: 3 });
    action('DescribeLoadBalancers').times(3).reply(400, error('Throttling.Api'), { ...JSON_TYPE, 'x-acs-retry-after': '1500' });
    const failure = await slb.describeLoadBalancers({}, signal).catch((e: unknown) => e);
    expect(toProviderError(failure)).toMatchObject({ retryable: true, retryAfterMs: 1500 });
  });

  it('retries 5xx and the busy codes, not a terminal error', async () => {
    const { slb, registry } = client();
    action('StartLoadBalancerListener').reply(503, error('ServiceUnavailable'), JSON_TYPE);
    action('StartLoadBalancerListener').reply(500, error('InternalError'), JSON_TYPE);
    action('StartLoadBalancerListener').reply(400, error('ServiceIsConfiguring'), JSON_TYPE);
    action('StartLoadBalancerListener').reply(400, error('VServerGroupProcessing'), JSON_TYPE);
    action('StartLoadBalancerListener').reply(200, { RequestId: 'R-2' }, JSON_TYPE);
    await slb.startListener('lb-1', 80, 'tcp', signal);
    action('SetLoadBalancerName').reply(400, error('InvalidParameter'), JSON_TYPE);
    const failure = await slb.setLoadBalancerName('lb-1', 'x', signal).catch((e: unknown) => e);
    expect(toProviderError(failure)).toMatchObject({ retryable: false });
    expect(await counts(registry)).toMatchObject({ 'StartLoadBalancerListener/retryable': 4, 'StartLoadBalancerListener/ok': 1, 'SetLoadBalancerName/terminal': 1 });
  });

  it('an aborted call stops retrying and makes no further request', async () => {
    const { slb } = client();
    const abort = new AbortController();
    const scope = action('DescribeLoadBalancers').times(2).reply(400, error('SystemBusy'), JSON_TYPE);
    const pending = slb.describeLoadBalancers({}, abort.signal);
    abort.abort(new Error('superseded'));
    await expect(pending).rejects.toThrow('superseded');
    expect(scope.pendingMocks().length).toBeGreaterThan(0);
  });
});

describe('IdempotentParameterMismatch', () => {
  const fake = new FakeSlbServer();
  let endpoint = '';
  beforeAll(async () => {
    endpoint = await fake.start();
  });
  afterAll(() => fake.stop());

  it('after a stale listing, a ClientToken mismatch resolves to the CLB found by tag, not a second one', async () => {
    const existing = fake.seedLoadBalancer({ name: 'portico-default-web', tags: { [TAG_CLUSTER]: CLUSTER, [TAG_SERVICE]: 'default/web', [TAG_RESOURCE]: 'load-balancer' } });
    // The first two listings (cluster, then by Service tag) miss the new CLB; the create meets the used token.
    const stale = nock(`http://${endpoint}`, { allowUnmocked: true }).post('/').query(true).matchHeader('x-acs-action', 'DescribeLoadBalancers').times(2).reply(200, empty, JSON_TYPE);
    nock(`http://${endpoint}`, { allowUnmocked: true }).post('/').query(true).matchHeader('x-acs-action', 'CreateLoadBalancer').reply(400, error('IdempotentParameterMismatch'), JSON_TYPE);
    const { slb } = client({ endpoint });
    const provider = new AliyunSlbProvider({ slb, clusterName: CLUSTER, clock: recordingClock(), logger: pino({ level: 'silent' }), snapshotTtlMs: 0 });
    const status = await provider.ensure(context(), service('web'), backendsOf(nodes(1)));
    expect(stale.isDone()).toBe(true);
    expect(status.ingress[0]?.ip).toBe(existing.address);
    expect([...fake.loadBalancers.keys()]).toEqual([existing.id]);
    expect(existing.listeners.get('80/tcp')?.status).toBe('running');
  });

  // nock's socket emulation never starts the SDK's read timer (httpx arms it on the socket's
  // 'connect'), so a stuck endpoint is played by the loopback fake instead.
  it('retries a call that timed out on a stuck endpoint', async () => {
    const { slb, registry } = client({ endpoint, readTimeoutMs: 200 });
    fake.failNext('DescribeVServerGroups', { hangMs: 1500 });
    const lb = fake.seedLoadBalancer();
    expect(await slb.describeVServerGroups(lb.id, signal)).toEqual([]);
    expect(await counts(registry)).toEqual({ 'DescribeVServerGroups/retryable': 1, 'DescribeVServerGroups/ok': 1 });
  });
});
