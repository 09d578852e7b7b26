import { describe, expect, it } from 'vitest';
import type { AddressPool } from '../../../../src/api/address-pool.js';
import { isParsedPool, parsePool, type ParsedPool } from '../../../../src/ipam/pool.js';
import {
  electAnnouncer,
  nodesToProbe,
  planAnnouncements,
  rankNodes,
  type EndpointSliceLike,
  type NodeLike,
  type ServiceLike,
} from '../../../../src/providers/metallb-like/speaker/election.js';

type Change<T> = (object: T) => T;
const apply = <T>(object: T, changes: Change<T>[]): T => changes.reduce((o, change) => change(o), object);

function node(name: string, ...changes: Change<NodeLike>[]): NodeLike {
  return apply<NodeLike>({ metadata: { name, labels: {} }, status: { conditions: [{ type: 'Ready', status: 'True' }] } }, changes);
}
const labelled = (key: string, value: string): Change<NodeLike> => (n) => ({ ...n, metadata: { ...n.metadata, labels: { ...n.metadata?.labels, [key]: value } } });
const networkUnavailable: Change<NodeLike> = (n) => ({ ...n, status: { conditions: [...(n.status?.conditions ?? []), { type: 'NetworkUnavailable', status: 'True' }] } });

function svc(name: string, ips: string[], ...changes: Change<ServiceLike>[]): ServiceLike {
  return apply<ServiceLike>(
    { metadata: { name, namespace: 'ns' }, spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/l2', externalTrafficPolicy: 'Cluster' }, status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } } },
    changes,
  );
}
const local: Change<ServiceLike> = (s) => ({ ...s, spec: { ...s.spec, externalTrafficPolicy: 'Local' } });
const withClass = (cls: string | undefined): Change<ServiceLike> => (s) => ({ ...s, spec: { ...s.spec, loadBalancerClass: cls } });
const ofType = (type: string): Change<ServiceLike> => (s) => ({ ...s, spec: { ...s.spec, type } });

function slice(service: string, endpoints: { node: string; ready?: boolean }[]): EndpointSliceLike {
  return {
    metadata: { namespace: 'ns', labels: { 'kubernetes.io/service-name': service } },
    endpoints: endpoints.map((e) => ({ nodeName: e.node, conditions: e.ready === undefined ? {} : { ready: e.ready } })),
  };
}

function pool(name: string, addresses: string[], l2?: AddressPool['spec']['l2']): ParsedPool {
  const parsed = parsePool({ apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name }, spec: { addresses, ...(l2 ? { l2 } : {}) } });
  if (!isParsedPool(parsed)) throw new Error(JSON.stringify(parsed.problems));
  return parsed;
}

const POOLS = [pool('lan', ['192.0.2.0/24', '2001:db8::/120']), pool('edge', ['198.51.100.0/28'], { nodeSelector: { matchLabels: { edge: 'true' } }, interfaces: ['eth1'] })];
const NODES = ['a', 'b', 'c', 'd'].map((n) => node(n));

describe('rankNodes', () => {
  it('orders by sha256(node#ip), independent of input order', () => {
    const ranked = rankNodes('192.0.2.10', ['a', 'b', 'c', 'd']);
    expect(ranked).toEqual(rankNodes('192.0.2.10', ['d', 'c', 'b', 'a']));
    // Fixed vector: sha256("a#192.0.2.10") etc., sorted.
    expect(ranked).toEqual(['c', 'a', 'b', 'd']);
  });

  it('spreads addresses over nodes (each IP has its own order)', () => {
    const firsts = new Set(Array.from({ length: 40 }, (_, i) => rankNodes(`192.0.2.${i + 1}`, ['a', 'b', 'c', 'd'])[0]));
    expect(firsts.size).toBe(4);
  });
});

describe('planAnnouncements', () => {
  const candidates = (input: Partial<Parameters<typeof planAnnouncements>[0]>, ip: string): readonly string[] | undefined =>
    planAnnouncements({ services: [], endpointSlices: [], nodes: NODES, pools: POOLS, ...input }).get(ip)?.candidates;

  it.each<[string, Partial<Parameters<typeof planAnnouncements>[0]>, string, string[] | undefined]>([
    ['every usable node, ranked', { services: [svc('web', ['192.0.2.10'])] }, '192.0.2.10', rankNodes('192.0.2.10', ['a', 'b', 'c', 'd'])],
    ['nothing for an address outside every pool', { services: [svc('web', ['203.0.113.5'])] }, '203.0.113.5', undefined],
    ['nothing for another class', { services: [svc('web', ['192.0.2.10'], withClass('portico.dev/aws-nlb'))] }, '192.0.2.10', undefined],
    ['class-less Services count (the pools decide)', { services: [svc('web', ['192.0.2.10'], withClass(undefined))] }, '192.0.2.10', rankNodes('192.0.2.10', ['a', 'b', 'c', 'd'])],
    ['nothing for a non-LoadBalancer Service', { services: [svc('web', ['192.0.2.10'], ofType('ClusterIP'))] }, '192.0.2.10', undefined],
    ['excluded and NetworkUnavailable nodes are left out',
      { services: [svc('web', ['192.0.2.10'])], nodes: [node('a', labelled('node.kubernetes.io/exclude-from-external-load-balancers', '')), node('b', networkUnavailable), node('c')] },
      '192.0.2.10', ['c']],
    ['the pool nodeSelector limits candidates',
      { services: [svc('web', ['198.51.100.3'])], nodes: [node('a', labelled('edge', 'true')), node('b'), node('c', labelled('edge', 'true'))] },
      '198.51.100.3', rankNodes('198.51.100.3', ['a', 'c'])],
    ['Local: only nodes with a ready endpoint (ready unset counts as ready)',
      { services: [svc('web', ['192.0.2.10'], local)], endpointSlices: [slice('web', [{ node: 'b' }, { node: 'c', ready: false }, { node: 'd', ready: true }])] },
      '192.0.2.10', rankNodes('192.0.2.10', ['b', 'd'])],
    ['Local without ready endpoints: nobody', { services: [svc('web', ['192.0.2.10'], local)], endpointSlices: [slice('web', [{ node: 'b', ready: false }])] }, '192.0.2.10', []],
    ['Local: endpoints of another Service do not count', { services: [svc('web', ['192.0.2.10'], local)], endpointSlices: [slice('other', [{ node: 'b' }])] }, '192.0.2.10', []],
    ['IPv6 addresses are planned the same way', { services: [svc('web6', ['2001:db8::10'])] }, '2001:db8::10', rankNodes('2001:db8::10', ['a', 'b', 'c', 'd'])],
    ['addresses are keyed in canonical form', { services: [svc('web6', ['2001:0db8:0::0010'])] }, '2001:db8::10', rankNodes('2001:db8::10', ['a', 'b', 'c', 'd'])],
  ])('%s', (_, input, ip, expected) => {
    expect(candidates(input, ip)).toEqual(expected);
  });

  it('groups Services sharing an address into one announcement', () => {
    const plan = planAnnouncements({ services: [svc('b', ['192.0.2.10']), svc('a', ['192.0.2.10']), svc('c', ['192.0.2.11'])], endpointSlices: [], nodes: NODES, pools: POOLS });
    expect(plan.get('192.0.2.10')).toMatchObject({ services: ['ns/a', 'ns/b'], pool: 'lan', local: false });
    expect(plan.get('192.0.2.11')?.services).toEqual(['ns/c']);
  });

  it('carries the pool interfaces', () => {
    const plan = planAnnouncements({ services: [svc('e', ['198.51.100.3'])], endpointSlices: [], nodes: [node('a', labelled('edge', 'true'))], pools: POOLS });
    expect(plan.get('198.51.100.3')?.interfaces).toEqual(['eth1']);
  });

  it('a shared Local address is announced where any of its Services has a ready endpoint', () => {
    const plan = planAnnouncements({
      services: [svc('x', ['192.0.2.10'], local), svc('y', ['192.0.2.10'], local)],
      endpointSlices: [slice('x', [{ node: 'a' }]), slice('y', [{ node: 'c' }])],
      nodes: NODES,
      pools: POOLS,
    });
    expect(plan.get('192.0.2.10')?.candidates).toEqual(rankNodes('192.0.2.10', ['a', 'c']));
  });
});

describe('electAnnouncer and nodesToProbe', () => {
  const plan = planAnnouncements({ services: [svc('web', ['192.0.2.10'])], endpointSlices: [], nodes: NODES, pools: POOLS });
  const ranked = rankNodes('192.0.2.10', ['a', 'b', 'c', 'd']);
  const [first = '', second = '', third = ''] = ranked;

  it.each<[string, string[], string | undefined]>([
    ['the first candidate when all are live', ranked, first],
    ['the next one when the first is dead', [second, third], second],
    ['nobody when nobody is live', [], undefined],
  ])('%s', (_, live, expected) => {
    expect(electAnnouncer(ranked, (n) => live.includes(n))).toBe(expected);
  });

  it('only the runner-up probes, and it probes the announcer', () => {
    const all = (): boolean => true;
    expect(nodesToProbe(plan, second, all)).toEqual(new Set([first]));
    expect(nodesToProbe(plan, first, all)).toEqual(new Set());
    expect(nodesToProbe(plan, third, all)).toEqual(new Set());
  });

  it('when the announcer has no lease, the next pair takes over probing', () => {
    const live = (n: string): boolean => n !== first;
    expect(nodesToProbe(plan, third, live)).toEqual(new Set([second]));
  });
});
