/**
 * What moto cannot show (throttling, 5xx, paging, the 20-ARN DescribeTags limit, aborts
 * mid-way): faults injected at the AwsApi seam, over the real SDK talking to moto.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/kube/clock.js';
import { createLogger } from '../../../src/kube/logger.js';
import { MUTATING_OPERATIONS, type AwsApi, type Operation } from '../../../src/providers/aws/api.js';
import { guardApi } from '../../../src/providers/aws/guard.js';
import { AwsNlbProvider } from '../../../src/providers/aws/provider.js';
import { sdkApi } from '../../../src/providers/aws/sdk.js';
import { ProviderError } from '../../../src/providers/provider.js';
import { annotate, awsSvc, backends, node, testContext } from './builders.js';
import { createNetwork, motoApi, RecordingApi, REGION, runInstances, TEST_CREDENTIALS, useMoto } from './moto.js';
import { startFaultProxy } from './wire-faults.js';

const CLUSTER = 'faults';
/** The default buckets pace writes at 5/s; this suite's dozens of NLBs need no pacing against moto. */
const FAST = { 'elb-write': { ratePerSecond: 1000, burst: 1000 }, 'elb-targets': { ratePerSecond: 1000, burst: 1000 }, 'elb-describe': { ratePerSecond: 1000, burst: 1000 } };
const moto = useMoto();
const sdkError = (name: string, status: number, fault: 'client' | 'server' = status >= 500 ? 'server' : 'client'): Error =>
  Object.assign(new Error(`${name} (injected)`), { name, $fault: fault, $metadata: { httpStatusCode: status } });

function provider(api: AwsApi): AwsNlbProvider {
  return new AwsNlbProvider({ api: guardApi(api, { clock: systemClock, baseDelayMs: 1, maxDelayMs: 5, maxAttempts: 8, limits: FAST }), clusterName: CLUSTER, clock: systemClock, logger: createLogger('silent') });
}

/** AWS's real paging (moto ignores PageSize and Marker): one load balancer per page. */
function paged(inner: AwsApi, seen: { pages: number; maxTagBatch: number }): AwsApi {
  return {
    ...inner,
    describeLoadBalancers: async (signal, query) => {
      const all = await inner.describeLoadBalancers(signal, { ...query, marker: undefined });
      if (query.names !== undefined || query.arns !== undefined) return all;
      const start = query.marker === undefined ? 0 : Number(query.marker);
      seen.pages++;
      return { items: all.items.slice(start, start + 1), next: start + 1 < all.items.length ? String(start + 1) : undefined };
    },
    describeTags: (signal, arns) => {
      seen.maxTagBatch = Math.max(seen.maxTagBatch, arns.length);
      // Real AWS: "ResourceArns: Member must have length less than or equal to 20"; moto accepts more.
      if (arns.length > 20) return Promise.reject(sdkError('ValidationError', 400));
      return inner.describeTags(signal, arns);
    },
  };
}

describe('AWS NLB provider under injected faults', () => {
  let nodes: ReturnType<typeof node>[];

  beforeAll(async () => {
    const network = await createNetwork(moto.server, CLUSTER);
    nodes = (await runInstances(moto.server, network.internalSubnets[0] ?? '', 3)).map((i, k) => node(`n${k}`, i.id, i.zone));
  });

  it('a throttling storm and 5xx answers: retried with backoff, converges to exactly one of everything', async () => {
    const recording = new RecordingApi(motoApi(moto.server));
    const failures = new Map<Operation, number>();
    recording.faults = (op) => {
      const n = failures.get(op) ?? 0;
      failures.set(op, n + 1);
      if (n < 2) throw n === 0 ? sdkError('Throttling', 400) : sdkError('ServiceUnavailable', 503);
    };
    const service = awsSvc('storm', annotate('attributes', 'load_balancing.cross_zone.enabled=true'));
    const status = await provider(recording.api).ensure(testContext(), service, backends(nodes));
    expect(status.ingress[0]?.hostname).toMatch(/elb/);
    const signal = new AbortController().signal;
    const raw = motoApi(moto.server);
    const lbs = (await raw.describeLoadBalancers(signal, {})).items.filter((l) => l.dnsName === status.ingress[0]?.hostname);
    expect(lbs).toHaveLength(1);
    expect((await raw.describeListeners(signal, lbs[0]?.arn ?? '')).items).toHaveLength(1);
    // Every operation used was refused twice before it went through.
    expect([...failures.values()].every((n) => n >= 3)).toBe(true);
  });

  it('real AWS error documents on the wire (Throttling, 503): the SDK\'s errors are classified and retried', async () => {
    const proxy = await startFaultProxy(moto.server.endpoint);
    try {
      const seen = new Map<string, number>();
      proxy.decide = (action) => {
        const n = seen.get(action) ?? 0;
        seen.set(action, n + 1);
        if (n === 0) return { status: 400, code: 'Throttling', message: 'Rate exceeded' };
        if (n === 1 && action.startsWith('Create')) return { status: 503, code: 'ServiceUnavailable', message: 'Service Unavailable' };
        return undefined;
      };
      const outcomes: string[] = [];
      const api = guardApi(sdkApi({ region: REGION, endpoint: proxy.endpoint, credentials: TEST_CREDENTIALS }), { clock: systemClock, baseDelayMs: 1, maxDelayMs: 5, limits: FAST, onCall: (op, outcome) => outcomes.push(`${op}:${outcome}`) });
      const p = new AwsNlbProvider({ api, clusterName: CLUSTER, clock: systemClock, logger: createLogger('silent') });
      const status = await p.ensure(testContext(), awsSvc('wire'), backends(nodes));
      expect(status.ingress[0]?.hostname).toMatch(/elb/);
      expect(outcomes).toContain('createLoadBalancer:throttled');
      expect(outcomes).toContain('createLoadBalancer:server-error');
      expect(outcomes).toContain('createLoadBalancer:ok');
      expect(proxy.actions.filter((a) => a === 'CreateLoadBalancer')).toHaveLength(3);
    } finally {
      await proxy.close();
    }
  });

  it('retries exhausted under a throttling storm: a retryable ProviderError that says so, with a delay', async () => {
    const proxy = await startFaultProxy(moto.server.endpoint);
    try {
      proxy.decide = () => ({ status: 400, code: 'Throttling', message: 'Rate exceeded' });
      const api = guardApi(sdkApi({ region: REGION, endpoint: proxy.endpoint, credentials: TEST_CREDENTIALS }), { clock: systemClock, baseDelayMs: 1, maxDelayMs: 5, maxAttempts: 3, limits: FAST });
      const p = new AwsNlbProvider({ api, clusterName: CLUSTER, clock: systemClock, logger: createLogger('silent') });
      const error = (await p.ensure(testContext(), awsSvc('storm-forever'), backends(nodes)).catch((e: unknown) => e)) as ProviderError;
      expect(error).toBeInstanceOf(ProviderError);
      expect(error.retryable).toBe(true);
      expect(error.retryAfterMs).toBe(30_000);
      expect(error.message).toMatch(/throttled after 3 attempts/);
      expect(proxy.actions).toHaveLength(3);
    } finally {
      await proxy.close();
    }
  });

  it('a partial failure (targets refused half-way) leaves no spec hash, so the next ensure finishes the job', async () => {
    const recording = new RecordingApi(motoApi(moto.server));
    recording.faults = (op) => {
      if (op === 'createListener') throw sdkError('InvalidConfigurationRequest', 400);
    };
    const service = awsSvc('partial');
    const p = provider(recording.api);
    const error = await p.ensure(testContext(), service, backends(nodes)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).retryable).toBe(true);
    expect(recording.calls).not.toContain('addTags');
    recording.faults = undefined;
    recording.reset();
    await p.ensure(testContext(), service, backends(nodes));
    expect(recording.calls.filter((op) => MUTATING_OPERATIONS.has(op))).toEqual(['createListener', 'addTags']);
    recording.reset();
    await p.ensure(testContext(), service, backends(nodes));
    expect(recording.calls.filter((op) => MUTATING_OPERATIONS.has(op))).toEqual([]);
  });

  it('deletion protection on: deleting fails with a message that says what to do, and is retried later', async () => {
    const recording = new RecordingApi(motoApi(moto.server));
    const service = awsSvc('protected', annotate('attributes', 'deletion_protection.enabled=true'));
    const p = provider(recording.api);
    await p.ensure(testContext(), service, backends(nodes));
    // moto 5.2.5 does not enforce the attribute; AWS answers DeleteLoadBalancer like this.
    recording.faults = (op) => {
      if (op === 'deleteLoadBalancer') throw sdkError('OperationNotPermitted', 400);
    };
    const error = (await p.ensureDeleted(testContext(), service).catch((e: unknown) => e)) as ProviderError;
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.message).toMatch(/deletion_protection\.enabled=false/);
    expect(error.retryable).toBe(true);
    expect(error.retryAfterMs).toBeGreaterThan(0);
  });

  it('follows Marker paging and asks DescribeTags for at most 20 ARNs at a time', async () => {
    const seen = { pages: 0, maxTagBatch: 0 };
    const recording = new RecordingApi(paged(motoApi(moto.server), seen));
    const p = provider(recording.api);
    const services = Array.from({ length: 22 }, (_, i) => awsSvc(`many-${i}`));
    for (const s of services) await p.ensure(testContext(), s, backends(nodes.slice(0, 1)));
    // A restarted provider finds every one of them (by tags, across pages) and changes nothing.
    const restarted = provider(recording.api);
    recording.reset();
    seen.pages = 0;
    for (const s of services) await restarted.ensure(testContext(), s, backends(nodes.slice(0, 1)));
    expect(recording.calls.filter((op) => MUTATING_OPERATIONS.has(op))).toEqual([]);
    expect(seen.pages).toBeGreaterThanOrEqual(22);
    expect(seen.maxTagBatch).toBe(20);
    expect(recording.calls.filter((op) => op === 'describeTags').length).toBeGreaterThanOrEqual(2);
  });

  it('no call after the signal fired: an ensure superseded after creating the NLB stops there', async () => {
    const recording = new RecordingApi(motoApi(moto.server));
    const abort = new AbortController();
    recording.faults = (op) => {
      // After CreateLoadBalancer, the next call is the lookup of target groups by name.
      if (op === 'describeTargetGroups' && recording.calls.includes('createLoadBalancer')) abort.abort(new Error('superseded'));
    };
    const p = provider(recording.api);
    // The SDK rejects the call in flight with its own "Request aborted".
    await expect(p.ensure(testContext(abort.signal), awsSvc('aborted'), backends(nodes))).rejects.toThrow();
    expect(recording.calls).toContain('createLoadBalancer');
    expect(recording.calls.slice(recording.calls.lastIndexOf('describeTargetGroups') + 1)).toEqual([]);
  });
});
