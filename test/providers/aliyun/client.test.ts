import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlbClient } from '../../../src/providers/aliyun/client.js';
import { SlbApiError } from '../../../src/providers/aliyun/errors.js';
import { OpenApiCaller, RetryingCaller } from '../../../src/providers/aliyun/transport.js';
import { systemClock } from '../../../src/kube/clock.js';
import { FAKE_ACCESS_KEY_ID, FAKE_ACCESS_KEY_SECRET, FakeSlbServer } from '../../fakes/slb-server.js';

const signal = new AbortController().signal;

describe('SLB client through the real openapi-core stack, against the fake', () => {
  const fake = new FakeSlbServer();
  let endpoint = '';
  beforeAll(async () => {
    endpoint = await fake.start();
  });
  afterAll(() => fake.stop());

  function client(secret = FAKE_ACCESS_KEY_SECRET): SlbClient {
    const inner = new OpenApiCaller({ regionId: fake.regionId, endpoint, protocol: 'http', accessKey: { id: FAKE_ACCESS_KEY_ID, secret } });
    return new SlbClient(new RetryingCaller({ inner, clock: systemClock, registry: new Registry(), retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 } }), fake.regionId);
  }

  it('signs with ACS3-HMAC-SHA256 and keeps load balancers, listeners and backends', async () => {
    const slb = client();
    const created = await slb.createLoadBalancer({ clientToken: 't-1', name: 'web', addressType: 'internet', deleteProtection: 'on', tags: { 'portico.dev/cluster': 'c1' } }, signal);
    expect(created.address).toMatch(/^203\.0\.113\./);
    const found = await slb.describeLoadBalancers({ tags: { 'portico.dev/cluster': 'c1' } }, signal);
    expect(found.map((lb) => lb.id)).toEqual([created.id]);
    expect(found[0]?.tags).toEqual({ 'portico.dev/cluster': 'c1' });
    const group = await slb.createVServerGroup(created.id, 'g', [{ serverId: 'i-1', port: 30080, weight: 100 }], signal);
    await slb.createListener(created.id, { port: 80, protocol: 'tcp', description: 'portico', vServerGroupId: group, scheduler: 'wrr', bandwidth: -1, healthCheck: { type: 'tcp' } }, signal);
    const listeners = await slb.describeListeners([created.id], signal);
    expect(listeners.get(created.id)?.map((l) => [l.port, l.status])).toEqual([[80, 'stopped']]);
    expect(await slb.describeVServerGroupBackends(group, signal)).toEqual([{ serverId: 'i-1', port: 30080, weight: 100 }]);
  });

  it('rejects a wrong signature with the API error shape', async () => {
    const error = await client('wrong').describeLoadBalancers({}, signal).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SlbApiError);
    expect((error as SlbApiError).code).toBe('SignatureDoesNotMatch');
  });
});
