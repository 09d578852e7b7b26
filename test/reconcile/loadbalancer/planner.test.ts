import type { V1EndpointSlice, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { LAST_APPLIED_ANNOTATION } from '../../../src/kube/informer.js';
import { statusDiffers } from '../../../src/kube/patch.js';
import { ProviderError, type ProviderClass, type SpecProblem } from '../../../src/providers/provider.js';
import {
  AUTOSCALER_DELETE_TAINT,
  decideConverge,
  desiredStatus,
  eligibleNodes,
  endpointSlicesKey,
  EXCLUDE_LABEL,
  nodeSetKey,
  plan,
  sameInputs,
  serviceSpecKey,
  statusPatch,
  type Plan,
} from '../../../src/reconcile/loadbalancer/planner.js';
import {
  deleting,
  node,
  nodeDeleting,
  provisionedWith,
  svc,
  withAddress,
  withAnnotation,
  withClass,
  withCondition,
  withFinalizer,
  withIngress,
  withNodeLabel,
  withTaint,
  withType,
} from '../../builders/service.js';

const L2: ProviderClass = 'portico.dev/l2';
const AWS: ProviderClass = 'portico.dev/aws-nlb';
const KNOWN: ReadonlySet<ProviderClass> = new Set([L2, AWS, 'portico.dev/aliyun-slb']);
const noProblems = (): SpecProblem[] => [];

describe('plan', () => {
  const cases: { name: string; service: V1Service; defaultClass?: ProviderClass; available?: ProviderClass[]; problems?: SpecProblem[]; want: Plan }[] = [
    { name: 'our class -> ensure', service: svc('a', withClass(L2)), want: { kind: 'ensure', provider: L2 } },
    { name: 'class-less without --default-class -> ignore', service: svc('a'), want: { kind: 'ignore' } },
    { name: 'class-less with --default-class -> ensure', service: svc('a'), defaultClass: L2, want: { kind: 'ensure', provider: L2 } },
    { name: 'foreign class -> ignore', service: svc('a', withClass('example.com/other')), defaultClass: L2, want: { kind: 'ignore' } },
    { name: 'ClusterIP -> ignore', service: svc('a', withType('ClusterIP')), defaultClass: L2, want: { kind: 'ignore' } },
    {
      name: 'type changed away from LoadBalancer -> cleanup with recorded provider',
      service: svc('a', withType('ClusterIP'), provisionedWith(L2)),
      want: { kind: 'cleanup', recorded: L2, unknownOwner: undefined, deleting: false, why: 'type changed to ClusterIP' },
    },
    {
      name: 'class wiped (class-less, no default) -> cleanup',
      service: svc('a', provisionedWith(L2)),
      want: { kind: 'cleanup', recorded: L2, unknownOwner: undefined, deleting: false, why: 'loadBalancerClass is no longer one Portico serves' },
    },
    { name: 'being deleted -> cleanup', service: svc('a', withClass(L2), provisionedWith(L2), deleting), want: { kind: 'cleanup', recorded: L2, unknownOwner: undefined, deleting: true, why: 'Service is being deleted' } },
    { name: 'being deleted without our finalizer -> ignore', service: svc('a', withClass(L2), deleting, withFinalizer('other.io/x')), want: { kind: 'ignore' } },
    {
      name: 'known class, provider not enabled -> unavailable',
      service: svc('a', withClass(AWS)),
      want: { kind: 'unavailable', wanted: AWS, known: true },
    },
    {
      name: 'a typo under portico.dev/ -> unavailable, unknown (a condition, not silence)',
      service: svc('a', withClass('portico.dev/l3')),
      want: { kind: 'unavailable', wanted: 'portico.dev/l3', known: false },
    },
    {
      name: 'moved to a class not enabled -> the enabled provider that has it cleans up first',
      service: svc('a', withClass(AWS), provisionedWith(L2)),
      want: { kind: 'cleanup', recorded: L2, unknownOwner: undefined, deleting: false, why: `class changed to ${AWS}` },
    },
    {
      name: 'provisioned-by names a provider not enabled (tenant-written) -> deleting: every provider is asked, finalizer released',
      service: svc('a', withClass(L2), provisionedWith('portico.dev/aliyun-slb'), deleting),
      want: { kind: 'cleanup', recorded: undefined, unknownOwner: 'the recorded provider portico.dev/aliyun-slb is not enabled in this controller', deleting: true, why: 'Service is being deleted' },
    },
    {
      name: 'provisioned-by names a provider not enabled, Service still ours -> ensure with the right one',
      service: svc('a', withClass(L2), provisionedWith('portico.dev/aliyun-slb')),
      want: { kind: 'ensure', provider: L2 },
    },
    {
      name: 'our finalizer without a record -> cleanup by every provider',
      service: svc('a', withType('ClusterIP'), withFinalizer('portico.dev/load-balancer')),
      want: { kind: 'cleanup', recorded: undefined, unknownOwner: 'no provider is recorded', deleting: false, why: 'type changed to ClusterIP' },
    },
    {
      name: 'default class moved to another provider -> ensure new, delete old',
      service: svc('a', provisionedWith(AWS)),
      defaultClass: L2,
      available: [L2, AWS],
      want: { kind: 'ensure', provider: L2, previous: AWS },
    },
    {
      name: 'invalid spec -> reject with the problems',
      service: svc('a', withClass(L2), withAnnotation('portico.dev/load-balancer-ips', 'nope')),
      problems: [{ field: 'metadata.annotations[portico.dev/load-balancer-ips]', message: 'not an IP address' }],
      want: { kind: 'reject', provider: L2, problems: [{ field: 'metadata.annotations[portico.dev/load-balancer-ips]', message: 'not an IP address' }] },
    },
  ];
  it.each(cases)('$name', ({ service, defaultClass, available, problems, want }) => {
    const got = plan({ service, defaultClass, enabled: new Set(available ?? [L2]), known: KNOWN, validate: problems ? () => problems : noProblems });
    expect(got).toEqual(want);
  });

  it('does not validate Services it will not ensure', () => {
    let validated = 0;
    plan({ service: svc('a', withType('NodePort')), defaultClass: L2, enabled: new Set([L2]), known: KNOWN, validate: () => (validated++, []) });
    expect(validated).toBe(0);
  });
});

describe('desiredStatus', () => {
  const now = new Date('2026-03-01T12:00:00.000Z');

  it('writes ingress and a Ready condition on success', () => {
    const status = desiredStatus(svc('a'), { kind: 'ensured', status: { ingress: [{ ip: '203.0.113.10', ipMode: 'VIP' }] } }, now);
    expect(status.loadBalancer).toEqual({ ingress: [{ ip: '203.0.113.10', ipMode: 'VIP' }] });
    expect(status.conditions).toEqual([
      { type: 'LoadBalancerReady', status: 'True', reason: 'Provisioned', message: 'load balancer ready: 203.0.113.10', observedGeneration: 1, lastTransitionTime: now.toISOString() },
    ]);
  });

  it('drops ipMode from hostname-only ingress, which the API server would reject', () => {
    const status = desiredStatus(svc('a'), { kind: 'ensured', status: { ingress: [{ hostname: 'lb.example.test', ipMode: 'Proxy' }, { ip: '192.0.2.1', ipMode: 'Proxy' }] } }, now);
    expect(status.loadBalancer).toEqual({ ingress: [{ hostname: 'lb.example.test' }, { ip: '192.0.2.1', ipMode: 'Proxy' }] });
  });

  it('keeps the existing ingress when the provider cannot say what it holds, and names the field', () => {
    const error = new ProviderError('pool exhausted', { retryable: false, reason: 'AllocationFailed', field: 'metadata.annotations[portico.dev/address-pool]' });
    const status = desiredStatus(svc('a', withIngress('203.0.113.10')), { kind: 'failed', error, held: 'unknown' }, now);
    expect(status.loadBalancer).toEqual({ ingress: [{ ip: '203.0.113.10' }] });
    expect(status.conditions[0]).toMatchObject({ status: 'False', reason: 'AllocationFailed', message: 'metadata.annotations[portico.dev/address-pool]: pool exhausted' });
  });

  it('clears an ingress the provider no longer has a balancer for', () => {
    const error = new ProviderError('pool deleted', { retryable: false, reason: 'AllocationFailed' });
    expect(desiredStatus(svc('a', withIngress('203.0.113.10')), { kind: 'failed', error, held: undefined }, now).loadBalancer).toEqual({});
  });

  it('shows exactly what the provider holds, never what status claimed', () => {
    const error = new ProviderError('bad', { retryable: false, reason: 'InvalidSpec' });
    const held = { ingress: [{ ip: '203.0.113.11', ipMode: 'VIP' as const }] };
    expect(desiredStatus(svc('a', withIngress('203.0.113.10')), { kind: 'failed', error, held }, now).loadBalancer).toEqual(held);
    const problems = [{ field: 'metadata.annotations[portico.dev/load-balancer-ips]', message: 'not an IP address' }];
    expect(desiredStatus(svc('a', withIngress('203.0.113.10')), { kind: 'rejected', problems, held }, now).loadBalancer).toEqual(held);
    // A rejected Service whose address was taken away (pool edit) shows none: it is free for others.
    expect(desiredStatus(svc('a', withIngress('203.0.113.10')), { kind: 'rejected', problems, held: undefined }, now).loadBalancer).toEqual({});
  });

  it.each([
    ['ProviderError', new ProviderError('throttled', { retryable: true })],
    ['InvalidSpec', new ProviderError('bad', { retryable: false, reason: 'InvalidSpec' })],
  ] as const)('maps provider error to reason %s', (reason, error) => {
    expect(desiredStatus(svc('a'), { kind: 'failed', error, held: undefined }, now).conditions[0]?.reason).toBe(reason);
  });

  it('says which provider is missing', () => {
    const status = desiredStatus(svc('a', withIngress('203.0.113.10')), { kind: 'unavailable', wanted: AWS, known: true, available: [L2] }, now);
    expect(status.conditions[0]).toMatchObject({ status: 'False', reason: 'ProviderNotConfigured' });
    expect(status.conditions[0]?.message).toBe(`provider ${AWS} is not enabled in this Portico controller (enable it with --providers)`);
    expect(status.loadBalancer).toEqual({});
    const typo = desiredStatus(svc('a'), { kind: 'unavailable', wanted: 'portico.dev/l3', known: false, available: [L2] }, now);
    expect(typo.conditions[0]?.message).toBe(`portico.dev/l3 is not a load-balancer class this Portico build serves (it serves ${L2})`);
  });

  it('lists every spec problem with its field', () => {
    const status = desiredStatus(svc('a'), { kind: 'rejected', problems: [{ field: 'spec.ports[0]', message: 'x' }, { field: 'metadata.annotations[a]', message: 'y' }], held: undefined }, now);
    expect(status.conditions[0]?.message).toBe('spec.ports[0]: x; metadata.annotations[a]: y');
  });

  it('caps the message of many problems (first five and a count)', () => {
    const problems = Array.from({ length: 300 }, (_, i) => ({ field: `spec.ports[${String(i)}]`, message: 'x'.repeat(200) }));
    const message = desiredStatus(svc('a'), { kind: 'rejected', problems, held: undefined }, now).conditions[0]?.message ?? '';
    expect(message.length).toBeLessThanOrEqual(1024);
    expect(message.startsWith('spec.ports[0]: x')).toBe(true);
  });

  it('clears ingress and our condition after cleanup, keeping foreign conditions', () => {
    const service = svc('a', withIngress('203.0.113.10'), withCondition('True', 'Provisioned'));
    service.status?.conditions?.push({ type: 'Other', status: 'True', reason: 'X', message: '', lastTransitionTime: new Date(0) });
    const status = desiredStatus(service, { kind: 'cleaned' }, now);
    expect(status.loadBalancer).toEqual({});
    expect(status.conditions.map((c) => c.type)).toEqual(['Other']);
  });

  it('keeps lastTransitionTime while the condition status stays the same', () => {
    const service = svc('a', withCondition('True', 'Provisioned', '2026-01-01T00:00:00.000Z'));
    const status = desiredStatus(service, { kind: 'ensured', status: { ingress: [{ ip: '203.0.113.11' }] } }, now);
    expect(status.conditions[0]?.lastTransitionTime).toBe('2026-01-01T00:00:00.000Z');
    const failed = desiredStatus(service, { kind: 'failed', error: new ProviderError('x', { retryable: true }), held: 'unknown' }, now);
    expect(failed.conditions[0]?.lastTransitionTime).toBe(now.toISOString());
  });

  it('reports no change for a status the server already has (steady state makes no write)', () => {
    const service = svc('a');
    const desired = desiredStatus(service, { kind: 'ensured', status: { ingress: [{ ip: '203.0.113.10', ipMode: 'VIP', ports: [{ port: 80, protocol: 'TCP' }] }] } }, now);
    // As the API server returns it: other key order, Date objects, no empty fields.
    service.status = {
      loadBalancer: { ingress: [{ ports: [{ protocol: 'TCP', port: 80 }], ipMode: 'VIP', ip: '203.0.113.10' }] },
      conditions: desired.conditions.map((c) => ({ ...c, lastTransitionTime: new Date(c.lastTransitionTime) })),
    };
    // Exactly what the controller compares before writing (statusPatch + patchStatus's check).
    const changed = (outcome: Parameters<typeof desiredStatus>[1], at: Date): boolean =>
      statusDiffers(service.status as Record<string, unknown>, statusPatch(desiredStatus(service, outcome, at)));
    expect(changed({ kind: 'ensured', status: { ingress: [{ ip: '203.0.113.10', ipMode: 'VIP', ports: [{ port: 80, protocol: 'TCP' }] }] } }, new Date(now.getTime() + 60_000))).toBe(false);
    expect(changed({ kind: 'ensured', status: { ingress: [{ ip: '203.0.113.12', ipMode: 'VIP' }] } }, now)).toBe(true);
  });
});

describe('eligibleNodes', () => {
  it.each([
    { name: 'plain node', node: node('n1'), eligible: true },
    { name: 'exclude label', node: node('n1', withNodeLabel(EXCLUDE_LABEL, '')), eligible: false },
    { name: 'exclude label "true"', node: node('n1', withNodeLabel(EXCLUDE_LABEL, 'true')), eligible: false },
    { name: 'exclude label "false" opts back in', node: node('n1', withNodeLabel(EXCLUDE_LABEL, 'false')), eligible: true },
    { name: 'autoscaler deletion taint', node: node('n1', withTaint(AUTOSCALER_DELETE_TAINT)), eligible: false },
    { name: 'other taint', node: node('n1', withTaint('dedicated')), eligible: true },
    { name: 'being deleted', node: node('n1', nodeDeleting), eligible: false },
  ])('$name -> eligible=$eligible', ({ node: n, eligible }) => {
    expect(eligibleNodes([n]).length).toBe(eligible ? 1 : 0);
  });

  it('fingerprints the set independent of input order, and changes with an address', () => {
    const a = node('a');
    const b = node('b');
    expect(nodeSetKey(eligibleNodes([a, b]))).toBe(nodeSetKey(eligibleNodes([b, a])));
    expect(nodeSetKey(eligibleNodes([a, b]))).not.toBe(nodeSetKey(eligibleNodes([a, node('b', withAddress('192.0.2.9'))])));
    // A providerID set after the node registered changes the cloud backends.
    const withProviderID = node('b');
    withProviderID.spec = { ...withProviderID.spec, providerID: 'aws:///us-east-1a/i-0123456789abcdef0' };
    expect(nodeSetKey(eligibleNodes([a, b]))).not.toBe(nodeSetKey(eligibleNodes([a, withProviderID])));
  });
});

describe('sameInputs', () => {
  it('ignores our own annotation and status, not user changes', () => {
    const base = svc('a', withClass(L2));
    expect(sameInputs(base, svc('a', withClass(L2), provisionedWith(L2), withIngress('192.0.2.1')))).toBe(true);
    expect(sameInputs(base, svc('a', withClass(L2), withAnnotation('portico.dev/address-pool', 'x')))).toBe(false);
    const bumped = svc('a', withClass(L2));
    bumped.metadata = { ...bumped.metadata, generation: 2 };
    expect(sameInputs(base, bumped)).toBe(false);
  });
});

describe('serviceSpecKey', () => {
  it('ignores our own provisioned-by annotation but not user annotations', () => {
    const base = svc('a', withClass(L2));
    expect(serviceSpecKey(svc('a', withClass(L2), provisionedWith(L2)))).toBe(serviceSpecKey(base));
    expect(serviceSpecKey(svc('a', withClass(L2), withAnnotation('portico.dev/address-pool', 'x')))).not.toBe(serviceSpecKey(base));
  });

  it("ignores kubectl's last-applied copy, which the cache drops and a write's answer may still carry", () => {
    const base = svc('a', withClass(L2));
    expect(serviceSpecKey(svc('a', withClass(L2), withAnnotation(LAST_APPLIED_ANNOTATION, '{"spec":{}}')))).toBe(serviceSpecKey(base));
  });
});

describe('decideConverge', () => {
  const base = { provider: L2, specKey: 's1', backendsKey: 'n1', ingress: [{ ip: '203.0.113.10' }], now: 100_000, resyncPeriodMs: 600_000, resyncJitter: 0.1, requested: false, equivalent: (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b) };
  const known = { uid: 'u', provider: L2, specKey: 's1', backendsKey: 'n1', ensuredAt: 50_000, ingress: [{ ip: '203.0.113.10' }] };
  it.each([
    { name: 'never converged -> ensure', input: { ...base, known: undefined }, want: { kind: 'ensure', why: 'new' } },
    { name: 'spec changed -> ensure', input: { ...base, known, specKey: 's2' }, want: { kind: 'ensure', why: 'spec' } },
    { name: 'provider changed -> ensure', input: { ...base, known, provider: AWS }, want: { kind: 'ensure', why: 'provider' } },
    { name: 'the provider asked -> ensure', input: { ...base, known, requested: true }, want: { kind: 'ensure', why: 'requested' } },
    { name: 'no address shown -> ensure', input: { ...base, known, ingress: [] }, want: { kind: 'ensure', why: 'no-address' } },
    { name: 'someone rewrote our status -> ensure', input: { ...base, known, ingress: [{ ip: '203.0.113.99' }] }, want: { kind: 'ensure', why: 'status-drift' } },
    { name: 'resync due (inside the jitter window) -> ensure', input: { ...base, known, now: 50_000 + 540_000 }, want: { kind: 'ensure', why: 'resync' } },
    { name: 'only the backends changed -> update backends', input: { ...base, known, backendsKey: 'n2' }, want: { kind: 'update-backends' } },
    { name: 'nothing changed -> skip until the resync', input: { ...base, known }, want: { kind: 'skip', inMs: 550_000 } },
    { name: 'provider not resynced -> skip with none due', input: { ...base, known, now: 50_000 + 10_000_000, resyncPeriodMs: Infinity }, want: { kind: 'skip', inMs: Infinity } },
  ] as const)('$name', ({ input, want }) => {
    expect(decideConverge(input)).toEqual(want);
  });
});

describe('endpointSlicesKey', () => {
  it('takes a slice without endpoints (the API server sends endpoints: null)', () => {
    const empty = { addressType: 'IPv4', metadata: { name: 's' }, endpoints: null } as unknown as V1EndpointSlice;
    expect(endpointSlicesKey([empty])).toMatch(/^[0-9a-f]{16}$/);
  });
});
