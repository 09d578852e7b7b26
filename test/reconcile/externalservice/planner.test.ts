import type { V1EndpointSlice } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { endpointsEquivalent, planEndpoints, planSlices, sliceName, SKIP_MIRROR_LABEL } from '../../../src/reconcile/externalservice/planner.js';
import { ep, OWNER, port } from './builders.js';

const base = { namespace: 'team', serviceName: 'db', owner: OWNER, ports: [port(3306)] };

function addresses(slice: V1EndpointSlice | undefined): string[] {
  return (slice?.endpoints ?? []).map((e) => e.addresses[0] ?? '');
}

describe('planSlices', () => {
  it('writes one slice per family with the service-name and managed-by labels, ready and serving from health', () => {
    const plan = planSlices({ ...base, endpoints: [ep('2001:db8::2'), ep('203.0.113.11', false), ep('203.0.113.10')], existing: [] });
    expect(plan.create.map((s) => [s.metadata?.name, s.addressType, addresses(s)])).toEqual([
      ['db-v4-0', 'IPv4', ['203.0.113.10', '203.0.113.11']],
      ['db-v6-0', 'IPv6', ['2001:db8::2']],
    ]);
    const v4 = plan.create[0];
    expect(v4?.metadata?.labels).toEqual({ 'kubernetes.io/service-name': 'db', 'endpointslice.kubernetes.io/managed-by': 'portico.dev' });
    expect(v4?.metadata?.ownerReferences).toEqual([OWNER]);
    expect(v4?.endpoints[1]?.conditions).toEqual({ ready: false, serving: false, terminating: false });
    expect(v4?.ports).toEqual([{ name: '', port: 3306, protocol: 'TCP' }]);
  });

  it('maps Service ports to target ports, keeping names and appProtocol', () => {
    const plan = planSlices({ ...base, ports: [{ ...port(443, 'https', 8443), appProtocol: 'https' }, port(80, 'http', 8080)], endpoints: [ep('198.51.100.1')], existing: [] });
    expect(plan.create[0]?.ports).toEqual([
      { name: 'https', port: 8443, protocol: 'TCP', appProtocol: 'https' },
      { name: 'http', port: 8080, protocol: 'TCP' },
    ]);
  });

  it('splits at the per-slice limit with stable names', () => {
    const endpoints = Array.from({ length: 5 }, (_, i) => ep(`198.51.100.${String(i + 1)}`));
    const plan = planSlices({ ...base, endpoints, existing: [], maxPerSlice: 2 });
    expect(plan.create.map((s) => [s.metadata?.name, addresses(s).length])).toEqual([
      ['db-v4-0', 2],
      ['db-v4-1', 2],
      ['db-v4-2', 1],
    ]);
  });

  it('puts per-endpoint ports (annotation ip:port) in slices of their own', () => {
    const plan = planSlices({ ...base, endpoints: [ep('198.51.100.1'), ep('198.51.100.2', true, { targetPort: 3307 })], existing: [] });
    expect(plan.create.map((s) => [s.metadata?.name, addresses(s), s.ports?.[0]?.port])).toEqual([
      ['db-v4-0', ['198.51.100.1'], 3306],
      ['db-v4-p3307-0', ['198.51.100.2'], 3307],
    ]);
  });

  it('writes only what changed: nothing in a steady state, an update for a flipped endpoint, an emptied slice (first) for a vanished family', () => {
    const first = planSlices({ ...base, endpoints: [ep('198.51.100.1'), ep('2001:db8::1')], existing: [] });
    const existing = first.create.map((s) => ({ ...s, metadata: { ...s.metadata, resourceVersion: '7' } }));
    const steady = planSlices({ ...base, endpoints: [ep('2001:db8::1'), ep('198.51.100.1')], existing });
    expect([steady.create, steady.update, steady.emptied]).toEqual([[], [], []]);
    const flipped = planSlices({ ...base, endpoints: [ep('198.51.100.1', false)], existing });
    expect(flipped.create).toEqual([]);
    expect(flipped.update.map((s) => [s.metadata?.name, s.metadata?.resourceVersion, s.endpoints.length])).toEqual([
      ['db-v6-0', '7', 0],
      ['db-v4-0', '7', 1],
    ]);
    expect(flipped.emptied).toEqual(['db-v6-0']);
    // An emptied slice stays empty without further writes, and is reused when its family returns.
    const emptiedExisting = existing.map((s) => (s.metadata.name === 'db-v6-0' ? { ...s, endpoints: [] } : s));
    expect(planSlices({ ...base, endpoints: [ep('198.51.100.1')], existing: emptiedExisting }).update).toEqual([]);
    const back = planSlices({ ...base, endpoints: [ep('198.51.100.1'), ep('2001:db8::9')], existing: emptiedExisting });
    expect([back.create.length, back.update.map((s) => s.metadata?.name)]).toEqual([0, ['db-v6-0']]);
  });

  it('treats server defaults as equal (no write loop)', () => {
    const [slice] = planSlices({ ...base, endpoints: [ep('198.51.100.1')], existing: [] }).create;
    if (!slice) throw new Error('no slice');
    const fromServer = { ...slice, metadata: { ...slice.metadata, resourceVersion: '3', generation: 1, creationTimestamp: new Date() }, endpoints: slice.endpoints.map((e) => ({ ...e, nodeName: undefined })) };
    expect(planSlices({ ...base, endpoints: [ep('198.51.100.1')], existing: [fromServer] }).update).toEqual([]);
  });

  it('keeps long names within the API limit and distinct', () => {
    const long = 'x'.repeat(253);
    const a = sliceName(long, 'IPv4', undefined, 0);
    expect(a.length).toBeLessThanOrEqual(253);
    expect(a).not.toBe(sliceName(`${'x'.repeat(252)}y`, 'IPv4', undefined, 0));
  });
});

describe('planEndpoints', () => {
  it('lists ready addresses in addresses and failing ones in notReadyAddresses, labelled skip-mirror', () => {
    const endpoints = planEndpoints({ ...base, endpoints: [ep('203.0.113.10'), ep('203.0.113.11', false), ep('2001:db8::1')] });
    expect(endpoints.metadata?.labels).toEqual({ [SKIP_MIRROR_LABEL]: 'true' });
    expect(endpoints.subsets).toEqual([{ addresses: [{ ip: '203.0.113.10' }, { ip: '2001:db8::1' }], notReadyAddresses: [{ ip: '203.0.113.11' }], ports: [{ port: 3306, protocol: 'TCP' }] }]);
  });

  it('truncates at 1000 addresses and says so, as the Endpoints controller does', () => {
    const many = Array.from({ length: 1001 }, (_, i) => ep(`198.51.${String(100 + Math.floor(i / 250))}.${String((i % 250) + 1)}`));
    const endpoints = planEndpoints({ ...base, endpoints: many });
    expect(endpoints.subsets?.[0]?.addresses).toHaveLength(1000);
    expect(endpoints.metadata?.annotations).toEqual({ 'endpoints.kubernetes.io/over-capacity': 'truncated' });
  });

  it('compares equal to what the server stores, and unequal when an endpoint flips or a label is missing', () => {
    const want = planEndpoints({ ...base, endpoints: [ep('203.0.113.10')] });
    expect(endpointsEquivalent({ ...want, metadata: { ...want.metadata, labels: { ...want.metadata?.labels, extra: 'kept' }, resourceVersion: '4' } }, want)).toBe(true);
    expect(endpointsEquivalent(want, planEndpoints({ ...base, endpoints: [ep('203.0.113.10', false)] }))).toBe(false);
    expect(endpointsEquivalent({ ...want, metadata: { ...want.metadata, labels: {} } }, want)).toBe(false);
  });
});
