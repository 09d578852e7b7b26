import { readFile } from 'node:fs/promises';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { Vpc } from '../../../src/providers/aws/api.js';
import { ANNOTATIONS, TAG_CLUSTER, TAG_RESOURCE, TAG_SERVICE, desiredLoadBalancer, instanceId, parseServiceConfig, validateService } from '../../../src/providers/aws/desired.js';
import { desiredIngress } from '../../../src/providers/aws/planner.js';
import { annotate, awsSvc, backends, node, ports, slice, spec } from './builders.js';

describe('annotations (aws-load-balancer-controller meanings)', () => {
  it('defaults: internal scheme, instance targets, ipv4, subnets discovered by the internal-elb role', () => {
    const { config, problems } = parseServiceConfig(awsSvc('web'));
    expect(problems).toEqual([]);
    expect(config).toMatchObject({ scheme: 'internal', targetType: 'instance', ipAddressType: 'ipv4', subnets: { kind: 'discover', role: 'kubernetes.io/role/internal-elb' } });
  });

  it.each([
    ['scheme internet-facing discovers public subnets', [annotate('scheme', 'internet-facing')], { scheme: 'internet-facing', subnets: { kind: 'discover', role: 'kubernetes.io/role/elb' } }],
    ['legacy internal annotation', [annotate('internal', 'true')], { scheme: 'internal' }],
    ['ip targets', [annotate('nlb-target-type', 'ip')], { targetType: 'ip' }],
    ['legacy type nlb-ip means ip targets', [annotate('type', 'nlb-ip')], { targetType: 'ip' }],
    ['listed subnets, IDs or names', [annotate('subnets', 'subnet-1, public-a')], { subnets: { kind: 'listed', values: ['subnet-1', 'public-a'] } }],
    ['explicit name', [annotate('name', 'my-nlb')], { name: 'my-nlb' }],
    ['dualstack', [annotate('ip-address-type', 'dualstack')], { ipAddressType: 'dualstack' }],
    ['your own security groups, IDs or Name tags', [annotate('security-groups', 'sg-0abc, frontend,sg-0abc')], { securityGroups: ['sg-0abc', 'frontend'] }],
    ['attributes', [annotate('attributes', 'deletion_protection.enabled=true, load_balancing.cross_zone.enabled=true')], { attributes: { 'deletion_protection.enabled': 'true', 'load_balancing.cross_zone.enabled': 'true' } }],
    ['proxy protocol * adds the target-group attribute', [annotate('proxy-protocol', '*'), annotate('target-group-attributes', 'deregistration_delay.timeout_seconds=30')], { targetGroupAttributes: { 'deregistration_delay.timeout_seconds': '30', 'proxy_protocol_v2.enabled': 'true' } }],
    ['additional tags', [annotate('additional-resource-tags', 'team=web,env=prod')], { additionalTags: { team: 'web', env: 'prod' } }],
    ['health check overrides', [annotate('healthcheck-protocol', 'http'), annotate('healthcheck-path', '/ready'), annotate('healthcheck-interval', '30'), annotate('healthcheck-success-codes', '200-299')], { healthCheck: { protocol: 'HTTP', path: '/ready', intervalSeconds: 30, matcher: '200-299' } }],
  ] as const)('%s', (_name, options, expected) => {
    const { config, problems } = parseServiceConfig(awsSvc('web', ...options));
    expect(problems).toEqual([]);
    expect(config).toMatchObject(expected);
  });

  it.each([
    ['an unsupported annotation', [annotate('ssl-cert', 'arn:aws:acm:...')], 'aws-load-balancer-ssl-cert', /not supported/],
    ['a bad scheme', [annotate('scheme', 'public')], 'aws-load-balancer-scheme', /internal, internet-facing/],
    ['a bad target type', [annotate('nlb-target-type', 'lambda')], 'aws-load-balancer-nlb-target-type', /instance, ip/],
    ['a name too long', [annotate('name', 'x'.repeat(33))], 'aws-load-balancer-name', /1-32/],
    ['a name starting with internal-', [annotate('name', 'internal-web')], 'aws-load-balancer-name', /internal-/],
    ['attributes without =', [annotate('attributes', 'deletion_protection.enabled')], 'aws-load-balancer-attributes', /key=value/],
    ['a reserved tag', [annotate('additional-resource-tags', 'portico.dev/cluster=evil')], 'aws-load-balancer-additional-resource-tags', /reserved/],
    ['a threshold out of range', [annotate('healthcheck-healthy-threshold', '11')], 'healthcheck-healthy-threshold', /2 to 10/],
    ['proxy protocol for named ports', [annotate('proxy-protocol', 'http')], 'aws-load-balancer-proxy-protocol', /only "\*"/],
    ['contradicting scheme annotations', [annotate('internal', 'true'), annotate('scheme', 'internet-facing')], 'aws-load-balancer-internal', /contradicts/],
    ['SCTP', [ports({ port: 80, protocol: 'SCTP', nodePort: 30080 })], 'spec.ports[0].protocol', /SCTP/],
    ['TCP and UDP on one port with different node ports', [ports({ name: 'a', port: 53, protocol: 'TCP', nodePort: 30053 }, { name: 'b', port: 53, protocol: 'UDP', nodePort: 30054 })], 'spec.ports[1].nodePort', /same nodePort/],
    ['a source range that is not a CIDR', [spec({ loadBalancerSourceRanges: ['203.0.113.0/24', 'office'] })], 'spec.loadBalancerSourceRanges[1]', /"office" is not a valid CIDR/],
    ['a source range with host bits', [spec({ loadBalancerSourceRanges: ['203.0.113.5/24'] })], 'spec.loadBalancerSourceRanges[0]', /did you mean 203\.0\.113\.0\/24/],
    ['an IPv6 source range on an IPv4 NLB', [spec({ loadBalancerSourceRanges: ['2001:db8::/32'] })], 'spec.loadBalancerSourceRanges[0]', /IPv6.*dualstack/],
    ['source ranges with your own security groups (Portico would not apply them)', [spec({ loadBalancerSourceRanges: ['203.0.113.0/24'] }), annotate('security-groups', 'sg-1')], 'spec.loadBalancerSourceRanges', /not applied with .*security-groups/],
    ['more than five security groups', [annotate('security-groups', 'sg-1,sg-2,sg-3,sg-4,sg-5,sg-6')], 'aws-load-balancer-security-groups', /at most 5/],
    ['a bad range in the legacy annotation', [annotate('service.beta.kubernetes.io/load-balancer-source-ranges', '198.51.100.0/24, 10.0.0.0/33')], 'metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]', /range 2, .*prefix length 33/],
    ['instance targets without node ports', [spec({ allocateLoadBalancerNodePorts: false })], 'spec.allocateLoadBalancerNodePorts', /node ports/],
  ] as const)('reports %s, naming the field', (_name, options, field, message) => {
    const problems = validateService(awsSvc('web', ...options));
    expect(problems).toHaveLength(1);
    expect(problems[0]?.field).toContain(field);
    expect(problems[0]?.message).toMatch(message);
  });

  it('keeps messages bounded however long the input', () => {
    const [problem] = validateService(awsSvc('web', annotate('scheme', 'x'.repeat(10_000))));
    expect(problem?.message.length).toBeLessThan(200);
  });
});

describe('desiredLoadBalancer', () => {
  const nodes = [node('a', 'i-0aaa'), node('b', 'i-0bbb', 'us-east-1b'), { metadata: { name: 'on-prem' }, spec: { providerID: 'kind://docker/x' } }];

  it('one target group per port, instance targets from spec.providerID on the node port, tagged for ownership', () => {
    const { desired, problems } = desiredLoadBalancer('prod', awsSvc('web'), backends(nodes));
    expect(problems).toEqual([]);
    expect(desired.name).toMatch(/^k8s-default-web-[0-9a-f]{10}$/);
    expect(desired.tags).toEqual({ [TAG_CLUSTER]: 'prod', [TAG_SERVICE]: 'default/web', [TAG_RESOURCE]: 'load-balancer' });
    const [port] = desired.ports;
    expect(port?.protocol).toBe('TCP');
    expect(port?.targetGroup).toMatchObject({ port: 30080, targetType: 'instance', targets: [{ id: 'i-0aaa', port: 30080 }, { id: 'i-0bbb', port: 30080 }] });
    expect(port?.targetGroup.tags[TAG_RESOURCE]).toBe('target-group/80');
    expect(port?.targetGroup.healthCheck).toEqual({ protocol: 'TCP', port: 'traffic-port', path: undefined, intervalSeconds: 10, timeoutSeconds: 10, healthyThreshold: 3, unhealthyThreshold: 3, matcher: undefined });
  });

  it('TCP and UDP on the same port become one TCP_UDP listener', () => {
    const service = awsSvc('dns', ports({ name: 'tcp', port: 53, protocol: 'TCP', nodePort: 30053 }, { name: 'udp', port: 53, protocol: 'UDP', nodePort: 30053 }));
    const { desired } = desiredLoadBalancer('prod', service, backends(nodes));
    expect(desired.ports.map((p) => `${p.port}/${p.protocol}`)).toEqual(['53/TCP_UDP']);
  });

  it('externalTrafficPolicy Local: HTTP /healthz on the healthCheckNodePort', () => {
    const service = awsSvc('local', spec({ externalTrafficPolicy: 'Local', healthCheckNodePort: 32000 }));
    const { desired } = desiredLoadBalancer('prod', service, backends(nodes));
    expect(desired.ports[0]?.targetGroup.healthCheck).toMatchObject({ protocol: 'HTTP', port: '32000', path: '/healthz', timeoutSeconds: 6, healthyThreshold: 2, unhealthyThreshold: 2, matcher: '200-399' });
  });

  it('ip targets: ready pod addresses and ports from the EndpointSlices', () => {
    const service = awsSvc('pods', annotate('nlb-target-type', 'ip'));
    const slices = [slice('pods', 'http', 8080, ['10.1.0.1'], ['10.1.0.2', false], ['10.1.0.3']), slice('pods', 'other', 9090, ['10.1.0.9'])];
    const { desired } = desiredLoadBalancer('prod', service, backends(nodes, slices));
    expect(desired.ports[0]?.targetGroup).toMatchObject({ targetType: 'ip', port: 8080, targets: [{ id: '10.1.0.1', port: 8080 }, { id: '10.1.0.3', port: 8080 }] });
  });

  it('ip targets: a slice without endpoints (endpoints: null from the API server) gives none', () => {
    const empty = { ...slice('pods', 'http', 8080), endpoints: null } as unknown as V1EndpointSlice;
    const { desired } = desiredLoadBalancer('prod', awsSvc('pods', annotate('nlb-target-type', 'ip')), backends(nodes, [empty]));
    expect(desired.ports[0]?.targetGroup.targets).toEqual([]);
  });

  it('the frontend security group: named after the NLB, tagged for ownership (and the additional tags)', () => {
    const { desired } = desiredLoadBalancer('prod', awsSvc('web', annotate('name', 'my-nlb'), annotate('additional-resource-tags', 'team=web')), backends(nodes));
    expect(desired.securityGroup).toMatchObject({
      name: 'my-nlb-sg',
      tags: { team: 'web', [TAG_CLUSTER]: 'prod', [TAG_SERVICE]: 'default/web', [TAG_RESOURCE]: 'security-group' },
      restricted: false,
    });
  });

  const vpc: Vpc = { id: 'vpc-1', cidrs: ['10.0.0.0/16', '10.1.0.0/16'], ipv6Cidrs: ['2600:1f18::/56'] };
  const web = ports({ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 });
  const dns = ports({ name: 'dns', port: 53, protocol: 'TCP', nodePort: 30053 }, { name: 'dnsu', port: 53, protocol: 'UDP', nodePort: 30053 }, { name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 });
  const ranges = (...r: string[]) => spec({ loadBalancerSourceRanges: r });
  const legacy = (r: string) => annotate('service.beta.kubernetes.io/load-balancer-source-ranges', r);
  const facing = annotate('scheme', 'internet-facing');
  const dual = annotate('ip-address-type', 'dualstack');
  it.each([
    ['internet-facing, no ranges: open to all IPv4', [facing, web], ['tcp/80 0.0.0.0/0']],
    ['internet-facing dualstack, no ranges: IPv4 and IPv6', [facing, dual, web], ['tcp/80 0.0.0.0/0', 'tcp/80 ::/0']],
    ['internal, no ranges: the VPC\'s IPv4 blocks', [web], ['tcp/80 10.0.0.0/16', 'tcp/80 10.1.0.0/16']],
    ['internal dualstack, no ranges: the VPC\'s IPv4 and IPv6 blocks', [dual, web], ['tcp/80 10.0.0.0/16', 'tcp/80 10.1.0.0/16', 'tcp/80 2600:1f18::/56']],
    ['ranges: only them, internet-facing', [facing, web, ranges('203.0.113.0/24')], ['tcp/80 203.0.113.0/24']],
    ['ranges: only them, internal', [web, ranges('203.0.113.0/24')], ['tcp/80 203.0.113.0/24']],
    [
      'TCP_UDP opens both protocols, every port from every range',
      [dns, ranges('203.0.113.0/24', '198.51.100.7/32')],
      ['tcp/53 198.51.100.7/32', 'tcp/53 203.0.113.0/24', 'tcp/80 198.51.100.7/32', 'tcp/80 203.0.113.0/24', 'udp/53 198.51.100.7/32', 'udp/53 203.0.113.0/24'],
    ],
    ['IPv6 ranges on a dualstack NLB, canonical spelling', [facing, dual, web, ranges('2001:DB8:0::/32', '203.0.113.0/24')], ['tcp/80 2001:db8::/32', 'tcp/80 203.0.113.0/24']],
    ['the legacy annotation when the field is empty', [facing, web, legacy('198.51.100.0/24, 203.0.113.0/24')], ['tcp/80 198.51.100.0/24', 'tcp/80 203.0.113.0/24']],
    ['the field wins over the legacy annotation', [facing, web, legacy('198.51.100.0/24'), ranges('203.0.113.0/24')], ['tcp/80 203.0.113.0/24']],
  ] as const)('ingress rules: %s', (_name, options, expected) => {
    const { desired, problems } = desiredLoadBalancer('prod', awsSvc('web', ...options), backends(nodes));
    expect(problems).toEqual([]);
    const rules = desiredIngress(desired.securityGroup, vpc).map((r) => `${r.protocol}/${r.fromPort} ${r.source.value}`);
    expect(rules.sort()).toEqual([...expected].sort());
  });

  it.each([
    ['no ranges', [], false],
    ['spec.loadBalancerSourceRanges', [ranges('203.0.113.0/24')], true],
    ['the legacy annotation', [legacy('203.0.113.0/24')], true],
  ] as const)('restricted (an NLB without security groups cannot honour it) with %s: %s', (_name, options, restricted) => {
    expect(desiredLoadBalancer('prod', awsSvc('web', ...options), backends(nodes)).desired.securityGroup.restricted).toBe(restricted);
  });

  it('the spec hash changes with anything that matters and only then', () => {
    const base = desiredLoadBalancer('prod', awsSvc('web'), backends(nodes)).desired.specHash;
    expect(desiredLoadBalancer('prod', awsSvc('web'), backends([...nodes].reverse())).desired.specHash).toBe(base);
    expect(desiredLoadBalancer('prod', awsSvc('web'), backends(nodes.slice(0, 1))).desired.specHash).not.toBe(base);
    expect(desiredLoadBalancer('prod', awsSvc('web', annotate('healthcheck-interval', '30')), backends(nodes)).desired.specHash).not.toBe(base);
    expect(desiredLoadBalancer('other', awsSvc('web'), backends(nodes)).desired.specHash).not.toBe(base);
    // The security group's intent is in the hash: a routine re-ensure never describes groups.
    const restricted = desiredLoadBalancer('prod', awsSvc('web', spec({ loadBalancerSourceRanges: ['203.0.113.0/24'] })), backends(nodes)).desired.specHash;
    expect(restricted).not.toBe(base);
    expect(desiredLoadBalancer('prod', awsSvc('web', spec({ loadBalancerSourceRanges: ['198.51.100.0/24'] })), backends(nodes)).desired.specHash).not.toBe(restricted);
  });

  it('names are at most 32 characters and differ between clusters', () => {
    const long = awsSvc('a-very-long-service-name-indeed', spec({}));
    long.metadata = { ...long.metadata, namespace: 'a-very-long-namespace' };
    const a = desiredLoadBalancer('prod', long, backends()).desired;
    const b = desiredLoadBalancer('staging', long, backends()).desired;
    expect(a.name.length).toBeLessThanOrEqual(32);
    expect(a.ports[0]?.targetGroup.name.length).toBeLessThanOrEqual(32);
    expect(a.name).not.toBe(b.name);
  });

  it.each([
    ['aws:///us-east-1a/i-0123456789abcdef0', 'i-0123456789abcdef0'],
    ['aws:////i-0abc', 'i-0abc'],
    ['gce://p/z/n', undefined],
    [undefined, undefined],
  ])('instanceId(%s) = %s', (providerID, id) => {
    expect(instanceId(providerID)).toBe(id);
  });

  it('every supported annotation is documented', async () => {
    const docs = await readFile(new URL('../../../docs/providers/aws.md', import.meta.url), 'utf8');
    expect(Object.values(ANNOTATIONS).filter((a) => !docs.includes(a))).toEqual([]);
  });
});
