import type { V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { AllocationRequest } from '../../src/ipam/allocator.js';
import {
  ADDRESS_POOL_ANNOTATION,
  ADDRESS_POOL_FIELD,
  ALLOW_SHARED_IP_ANNOTATION,
  ALLOW_SHARED_IP_FIELD,
  allocationRequestFromService,
  LOAD_BALANCER_IPS_ANNOTATION,
  LOAD_BALANCER_IPS_FIELD,
} from '../../src/ipam/request.js';
import { bareSvc as svc, withAnnotation, withLabels, withServicePorts, withSpec } from '../builders/service.js';

const nsLabels = { 'kubernetes.io/metadata.name': 'shop', tenant: 'blue' };

function requestOf(service: V1Service): AllocationRequest {
  const result = allocationRequestFromService(service, nsLabels);
  if ('problems' in result) throw new Error(`unexpected problems: ${JSON.stringify(result.problems)}`);
  return result.request;
}

function problemsOf(service: V1Service): { field: string; message: string }[] {
  const result = allocationRequestFromService(service, nsLabels);
  if (!('problems' in result)) throw new Error('expected problems');
  return result.problems;
}

const ips = (value: string) => withAnnotation(LOAD_BALANCER_IPS_ANNOTATION, value);
const families = (policy: string | undefined, ...list: string[]) =>
  withSpec({ ipFamilyPolicy: policy, ipFamilies: list.length > 0 ? list : undefined });

describe('allocationRequestFromService', () => {
  it('fills defaults for a plain Service', () => {
    expect(requestOf(svc('shop/web', withLabels({ app: 'web' })))).toEqual({
      key: 'shop/web',
      namespace: 'shop',
      namespaceLabels: nsLabels,
      serviceLabels: { app: 'web' },
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      requestedIPs: [],
      requestedPool: undefined,
      sharingKey: undefined,
      ports: [],
      backendKey: '',
    });
  });

  it.each<[string, V1Service, Partial<AllocationRequest>]>([
    ['one requested address', svc('shop/web', ips('192.0.2.10')), { requestedIPs: ['192.0.2.10'] }],
    [
      'whitespace tolerated and canonicalised, primary family first',
      svc('shop/web', families('PreferDualStack', 'IPv4', 'IPv6'), ips(' 2001:DB8:0::10 ,192.0.2.10 ')),
      { requestedIPs: ['192.0.2.10', '2001:db8::10'] },
    ],
    [
      'IPv6 primary first',
      svc('shop/web', families('RequireDualStack', 'IPv6', 'IPv4'), ips('192.0.2.10,2001:db8::10')),
      { requestedIPs: ['2001:db8::10', '192.0.2.10'], ipFamilies: ['IPv6', 'IPv4'] },
    ],
    ['legacy loadBalancerIP when no annotation', svc('shop/web', withSpec({ loadBalancerIP: '192.0.2.7' })), { requestedIPs: ['192.0.2.7'] }],
    ['empty legacy loadBalancerIP is absent', svc('shop/web', withSpec({ loadBalancerIP: '' })), { requestedIPs: [] }],
    [
      'legacy agreeing with the annotation',
      svc('shop/web', withSpec({ loadBalancerIP: '192.0.2.7' }), ips('192.0.2.7')),
      { requestedIPs: ['192.0.2.7'] },
    ],
    [
      'the annotation wins and legacy agrees with one of its addresses',
      svc(
        'shop/web',
        families('RequireDualStack', 'IPv4', 'IPv6'),
        withSpec({ loadBalancerIP: '2001:db8::7' }),
        ips('192.0.2.7,2001:db8::7'),
      ),
      { requestedIPs: ['192.0.2.7', '2001:db8::7'] },
    ],
    ['a named pool', svc('shop/web', withAnnotation(ADDRESS_POOL_ANNOTATION, 'public.example')), { requestedPool: 'public.example' }],
    ['a sharing key', svc('shop/web', withAnnotation(ALLOW_SHARED_IP_ANNOTATION, 'dns key #1')), { sharingKey: 'dns key #1' }],
    [
      'ports, protocol defaulting to TCP',
      svc('shop/web', withServicePorts({ port: 80 }, { port: 53, protocol: 'UDP' }, { port: 9, protocol: 'SCTP' })),
      {
        ports: [
          { port: 80, protocol: 'TCP' },
          { port: 53, protocol: 'UDP' },
          { port: 9, protocol: 'SCTP' },
        ],
      },
    ],
    ['externalTrafficPolicy Cluster', svc('shop/web', withSpec({ externalTrafficPolicy: 'Cluster' })), { backendKey: '' }],
    [
      'externalTrafficPolicy Local uses the canonical selector',
      svc('shop/web', withSpec({ externalTrafficPolicy: 'Local', selector: { tier: 'web', app: 'shop' } })),
      { backendKey: 'Local:app=shop,tier=web' },
    ],
    ['Local without a selector', svc('shop/web', withSpec({ externalTrafficPolicy: 'Local' })), { backendKey: 'Local:' }],
    [
      'RequireDualStack with one listed family gets the other (as the API server does)',
      svc('shop/web', families('RequireDualStack', 'IPv6')),
      { ipFamilies: ['IPv6', 'IPv4'], ipFamilyPolicy: 'RequireDualStack' },
    ],
    [
      'RequireDualStack without families',
      svc('shop/web', families('RequireDualStack')),
      { ipFamilies: ['IPv4', 'IPv6'] },
    ],
    [
      'PreferDualStack with one family stays single (single-stack cluster)',
      svc('shop/web', families('PreferDualStack', 'IPv6')),
      { ipFamilies: ['IPv6'], ipFamilyPolicy: 'PreferDualStack' },
    ],
    [
      'RequireDualStack with one requested address',
      svc('shop/web', families('RequireDualStack', 'IPv4', 'IPv6'), ips('2001:db8::1')),
      { requestedIPs: ['2001:db8::1'] },
    ],
  ])('%s', (_name, service, expected) => {
    expect(requestOf(service)).toMatchObject(expected);
  });

  it.each<[string, V1Service, { field: string; message: RegExp }[]]>([
    [
      'an unparsable address',
      svc('shop/web', ips('192.0.2.300')),
      [{ field: LOAD_BALANCER_IPS_FIELD, message: /exceeds 255/ }],
    ],
    ['an empty annotation', svc('shop/web', ips('')), [{ field: LOAD_BALANCER_IPS_FIELD, message: /is empty/ }]],
    [
      'an empty entry',
      svc('shop/web', families('PreferDualStack', 'IPv4', 'IPv6'), ips('192.0.2.1,')),
      [{ field: LOAD_BALANCER_IPS_FIELD, message: /entry 2 is empty/ }],
    ],
    [
      'a duplicate, spelled differently',
      svc('shop/web', families('PreferDualStack', 'IPv4', 'IPv6'), ips('2001:db8::1,2001:0db8::0001')),
      [{ field: LOAD_BALANCER_IPS_FIELD, message: /2001:db8::1 is listed twice/ }],
    ],
    [
      'two of one family',
      svc('shop/web', families('PreferDualStack', 'IPv4', 'IPv6'), ips('192.0.2.1,192.0.2.2')),
      [{ field: LOAD_BALANCER_IPS_FIELD, message: /two IPv4 addresses/ }],
    ],
    [
      'more than two addresses',
      svc('shop/web', ips('192.0.2.1,192.0.2.2,2001:db8::1')),
      [{ field: LOAD_BALANCER_IPS_FIELD, message: /lists 3 addresses/ }],
    ],
    [
      'a family the Service does not have',
      svc('shop/web', ips('2001:db8::1')),
      [{ field: LOAD_BALANCER_IPS_FIELD, message: /IPv6, but the Service gets addresses of IPv4 only/ }],
    ],
    [
      'a secondary-family address on a SingleStack Service',
      svc('shop/web', families('SingleStack', 'IPv6'), ips('192.0.2.1')),
      [{ field: LOAD_BALANCER_IPS_FIELD, message: /IPv4, but the Service gets addresses of IPv6 only/ }],
    ],
    [
      'legacy disagreeing with the annotation',
      svc('shop/web', withSpec({ loadBalancerIP: '192.0.2.8' }), ips('192.0.2.7')),
      [{ field: 'spec.loadBalancerIP', message: /192\.0\.2\.8 disagrees/ }],
    ],
    [
      'an invalid legacy address',
      svc('shop/web', withSpec({ loadBalancerIP: '010.0.0.1' })),
      [{ field: 'spec.loadBalancerIP', message: /leading zero/ }],
    ],
    [
      'a legacy address of the wrong family',
      svc('shop/web', withSpec({ loadBalancerIP: '2001:db8::1' })),
      [{ field: 'spec.loadBalancerIP', message: /IPv6, but the Service gets addresses of IPv4 only/ }],
    ],
    [
      'a zone id',
      svc('shop/web', families('SingleStack', 'IPv6'), ips('fe80::1%eth0')),
      [{ field: LOAD_BALANCER_IPS_FIELD, message: /zone/ }],
    ],
    [
      'a pool list instead of one pool',
      svc('shop/web', withAnnotation(ADDRESS_POOL_ANNOTATION, 'a,b')),
      [{ field: ADDRESS_POOL_FIELD, message: /name one pool/ }],
    ],
    [
      'an invalid pool name',
      svc('shop/web', withAnnotation(ADDRESS_POOL_ANNOTATION, 'Public')),
      [{ field: ADDRESS_POOL_FIELD, message: /DNS-1123 subdomain/ }],
    ],
    ['an empty pool name', svc('shop/web', withAnnotation(ADDRESS_POOL_ANNOTATION, '')), [{ field: ADDRESS_POOL_FIELD, message: /not a pool name/ }]],
    ['an empty sharing key', svc('shop/web', withAnnotation(ALLOW_SHARED_IP_ANNOTATION, '')), [{ field: ALLOW_SHARED_IP_FIELD, message: /must not be empty/ }]],
    [
      'a too long sharing key',
      svc('shop/web', withAnnotation(ALLOW_SHARED_IP_ANNOTATION, 'k'.repeat(254))),
      [{ field: ALLOW_SHARED_IP_FIELD, message: /at most 253/ }],
    ],
    [
      'a sharing key with a control character',
      svc('shop/web', withAnnotation(ALLOW_SHARED_IP_ANNOTATION, 'key\u0007')),
      [{ field: ALLOW_SHARED_IP_FIELD, message: /printable/ }],
    ],
    [
      'a sharing key with surrounding spaces',
      svc('shop/web', withAnnotation(ALLOW_SHARED_IP_ANNOTATION, ' key')),
      [{ field: ALLOW_SHARED_IP_FIELD, message: /printable/ }],
    ],
    [
      'an unknown protocol and a bad port',
      svc('shop/web', withServicePorts({ port: 80, protocol: 'ICMP' }, { port: 70000 })),
      [
        { field: 'spec.ports[0].protocol', message: /TCP, UDP, SCTP/ },
        { field: 'spec.ports[1].port', message: /1 to 65535/ },
      ],
    ],
    [
      'SingleStack with two families',
      svc('shop/web', families('SingleStack', 'IPv4', 'IPv6')),
      [{ field: 'spec.ipFamilies', message: /exactly one family/ }],
    ],
    [
      'an unknown family and policy',
      svc('shop/web', families('MaybeDualStack', 'IPv5')),
      [
        { field: 'spec.ipFamilyPolicy', message: /one of SingleStack/ },
        { field: 'spec.ipFamilies[0]', message: /IPv4 or IPv6/ },
      ],
    ],
    [
      'a family listed twice',
      svc('shop/web', families('PreferDualStack', 'IPv4', 'IPv4')),
      [{ field: 'spec.ipFamilies[1]', message: /listed twice/ }],
    ],
    [
      'an unknown traffic policy',
      svc('shop/web', withSpec({ externalTrafficPolicy: 'Nearest' })),
      [{ field: 'spec.externalTrafficPolicy', message: /Cluster or Local/ }],
    ],
    [
      'no namespace',
      { metadata: { name: 'web' }, spec: {} },
      [{ field: 'metadata.namespace', message: /required/ }],
    ],
    [
      'a huge hostile annotation',
      svc('shop/web', ips('1'.repeat(100_000))),
      [{ field: LOAD_BALANCER_IPS_FIELD, message: /too long/ }],
    ],
  ])('reports %s', (_name, service, expected) => {
    const problems = problemsOf(service);
    expect(problems).toHaveLength(expected.length);
    expected.forEach((want, i) => {
      expect(problems[i]?.field).toBe(want.field);
      expect(problems[i]?.message).toMatch(want.message);
    });
  });

  it('reports every problem at once', () => {
    const problems = problemsOf(
      svc(
        'shop/web',
        ips('nope'),
        withAnnotation(ADDRESS_POOL_ANNOTATION, 'Bad'),
        withAnnotation(ALLOW_SHARED_IP_ANNOTATION, ''),
      ),
    );
    expect(problems.map((p) => p.field)).toEqual([LOAD_BALANCER_IPS_FIELD, ADDRESS_POOL_FIELD, ALLOW_SHARED_IP_FIELD]);
  });

  it('copies labels so later changes to the Service do not leak into the request', () => {
    const labels = { app: 'web' };
    const service = svc('shop/web', withLabels(labels));
    const request = requestOf(service);
    labels.app = 'changed';
    expect(request.serviceLabels).toEqual({ app: 'web' });
  });
});
