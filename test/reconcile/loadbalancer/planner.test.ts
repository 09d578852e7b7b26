import type { V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { statusDiffers } from '../../../src/kube/patch.js';
import { ProviderError, type ProviderClass, type SpecProblem } from '../../../src/providers/provider.js';
import {
  AUTOSCALER_DELETE_TAINT,
  desiredStatus,
  eligibleNodes,
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
      want: { kind: 'cleanup', provider: L2, deleting: false, why: 'type changed to ClusterIP' },
    },
    {
      name: 'class wiped (class-less, no default) -> cleanup',
      service: svc('a', provisionedWith(L2)),
      want: { kind: 'cleanup', provider: L2, deleting: false, why: 'loadBalancerClass is no longer one Portico serves' },
    },
    { name: 'being deleted -> cleanup', service: svc('a', withClass(L2), provisionedWith(L2), deleting), want: { kind: 'cleanup', provider: L2, deleting: true, why: 'Service is being deleted' } },
    { name: 'being deleted without our finalizer -> ignore', service: svc('a', withClass(L2), deleting, withFinalizer('other.io/x')), want: { kind: 'ignore' } },
    {
      name: 'our class, provider not enabled -> unavailable',
      service: svc('a', withClass(AWS)),
      want: { kind: 'unavailable', wanted: AWS },
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
    const got = plan({ service, defaultClass, available: new Set(available ?? [L2]), validate: problems ? () => problems : noProblems });
    expect(got).toEqual(want);
  });

  it('does not validate Services it will not ensure', () => {
    let validated = 0;
    plan({ service: svc('a', withType('NodePort')), defaultClass: L2, available: new Set([L2]), validate: () => (validated++, []) });
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

  it('keeps the existing ingress and names the field when a provider fails', () => {
    const error = new ProviderError('pool exhausted', { retryable: false, reason: 'AllocationFailed', field: 'metadata.annotations[portico.dev/address-pool]' });
    const status = desiredStatus(svc('a', withIngress('203.0.113.10')), { kind: 'failed', error, exists: true }, now);
    expect(status.loadBalancer).toEqual({ ingress: [{ ip: '203.0.113.10' }] });
    expect(status.conditions[0]).toMatchObject({ status: 'False', reason: 'AllocationFailed', message: 'metadata.annotations[portico.dev/address-pool]: pool exhausted' });
  });

  it('clears an ingress the provider no longer has a balancer for', () => {
    const error = new ProviderError('pool deleted', { retryable: false, reason: 'AllocationFailed' });
    expect(desiredStatus(svc('a', withIngress('203.0.113.10')), { kind: 'failed', error, exists: false }, now).loadBalancer).toEqual({});
  });

  it.each([
    ['ProviderError', new ProviderError('throttled', { retryable: true })],
    ['InvalidSpec', new ProviderError('bad', { retryable: false, reason: 'InvalidSpec' })],
  ] as const)('maps provider error to reason %s', (reason, error) => {
    expect(desiredStatus(svc('a'), { kind: 'failed', error, exists: false }, now).conditions[0]?.reason).toBe(reason);
  });

  it('says which provider is missing', () => {
    const status = desiredStatus(svc('a'), { kind: 'unavailable', wanted: AWS }, now);
    expect(status.conditions[0]).toMatchObject({ status: 'False', reason: 'ProviderNotConfigured' });
    expect(status.conditions[0]?.message).toContain(AWS);
  });

  it('lists every spec problem with its field', () => {
    const status = desiredStatus(svc('a'), { kind: 'rejected', problems: [{ field: 'spec.ports[0]', message: 'x' }, { field: 'metadata.annotations[a]', message: 'y' }] }, now);
    expect(status.conditions[0]?.message).toBe('spec.ports[0]: x; metadata.annotations[a]: y');
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
    const failed = desiredStatus(service, { kind: 'failed', error: new ProviderError('x', { retryable: true }), exists: true }, now);
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
});
