import { describe, expect, it } from 'vitest';
import type { IngressRule, LoadBalancer, TargetGroup, TargetHealth } from '../../../src/providers/aws/api.js';
import { desiredLoadBalancer, type DesiredLoadBalancer } from '../../../src/providers/aws/desired.js';
import { desiredIngress, planIngress, planLoadBalancer, unattachableGroupProblem, type ActualState, type ActualTargetGroup } from '../../../src/providers/aws/planner.js';
import { annotate, awsSvc, backends, node, ports, spec } from './builders.js';

const nodes = (n: number) => Array.from({ length: n }, (_, i) => node(`n${i}`, `i-${String(i).padStart(4, '0')}`));

function desired(...options: Parameters<typeof awsSvc>[1][]): DesiredLoadBalancer {
  return desiredLoadBalancer('prod', awsSvc('web', ...options), backends(nodes(2))).desired;
}

function lb(d: DesiredLoadBalancer, patch: Partial<LoadBalancer> = {}): LoadBalancer {
  return { arn: 'arn:lb', name: d.name, dnsName: 'web.elb', scheme: d.scheme, type: 'network', vpcId: 'vpc-1', ipAddressType: d.ipAddressType, subnetIds: ['subnet-a'], securityGroupIds: ['sg-1'], state: 'active', ...patch };
}

/** The actual state that exactly matches `d` (what a converge leaves behind). */
function converged(d: DesiredLoadBalancer): ActualState {
  const targetGroups: ActualTargetGroup[] = d.ports.map((p, i) => {
    const tg: TargetGroup = { arn: `arn:tg${i}`, name: p.targetGroup.name, protocol: p.protocol, port: p.targetGroup.port, vpcId: 'vpc-1', targetType: p.targetGroup.targetType, healthCheck: p.targetGroup.healthCheck, loadBalancerArns: ['arn:lb'] };
    return { tg, tags: p.targetGroup.tags, attributes: { ...p.targetGroup.attributes }, targets: p.targetGroup.targets.map((t) => ({ ...t, state: 'healthy' })) };
  });
  return {
    lb: lb(d),
    tags: d.tags,
    attributes: { ...d.attributes },
    listeners: d.ports.map((p, i) => ({ arn: `arn:l${i}`, loadBalancerArn: 'arn:lb', port: p.port, protocol: p.protocol, targetGroupArn: `arn:tg${i}` })),
    targetGroups,
  };
}

const kinds = (actions: { kind: string }[]): string[] => actions.map((a) => a.kind);

describe('planLoadBalancer', () => {
  it('nothing to do when actual matches desired', () => {
    const d = desired();
    expect(planLoadBalancer(d, converged(d))).toEqual([]);
  });

  it('a new NLB: target group, its attributes, targets, then the listener', () => {
    const d = desired(annotate('target-group-attributes', 'deregistration_delay.timeout_seconds=30'));
    const actual: ActualState = { lb: lb(d), tags: d.tags, attributes: {}, listeners: [], targetGroups: [] };
    expect(kinds(planLoadBalancer(d, actual))).toEqual(['createTargetGroup', 'modifyTargetGroupAttributes', 'registerTargets', 'createListener']);
  });

  it.each([
    ['scheme', (d: DesiredLoadBalancer) => ({ ...converged(d), lb: lb(d, { scheme: 'internet-facing' }) }), /scheme/],
    ['name', (d: DesiredLoadBalancer) => ({ ...converged(d), lb: lb(d, { name: 'old-name' }) }), /name/],
  ])('a changed %s replaces the NLB (it cannot be modified in place)', (_what, actual, reason) => {
    const d = desired();
    const [action, ...rest] = planLoadBalancer(d, actual(d));
    expect(rest).toEqual([]);
    expect(action).toMatchObject({ kind: 'replaceLoadBalancer', reason: expect.stringMatching(reason) as unknown });
  });

  it('modifies in place what can be: ip address type, listed subnets, attributes, tags, health check', () => {
    const d = desired(annotate('ip-address-type', 'dualstack'), annotate('attributes', 'load_balancing.cross_zone.enabled=true'), annotate('additional-resource-tags', 'team=web'), annotate('healthcheck-interval', '30'));
    const old = desired();
    const actual = converged(old);
    expect(kinds(planLoadBalancer(d, actual, ['subnet-b']))).toEqual([
      'setIpAddressType',
      'setSubnets',
      'modifyLoadBalancerAttributes',
      'addTags',
      'modifyTargetGroup',
      'addTags',
    ]);
  });

  it('tags we did not ask for are removed, except AWS\'s own, the spec hash and externally managed keys', () => {
    const d = desired(annotate('additional-resource-tags', 'team=web'));
    const actual = converged(d);
    const lbTags = { ...actual.tags, old: 'x', 'aws:cloudformation:stack-name': 's', 'portico.dev/spec-hash': 'h', 'cost-center': '42' };
    const tg = actual.targetGroups[0];
    if (!tg) throw new Error('no tg');
    const actions = planLoadBalancer(d, { ...actual, tags: lbTags, targetGroups: [{ ...tg, tags: { ...tg.tags, old: 'y' } }] }, undefined, { externalTagKeys: new Set(['cost-center']) });
    expect(actions).toEqual([
      { kind: 'removeTags', target: 'load-balancer', keys: ['old'] },
      { kind: 'removeTags', target: { arn: 'arn:tg0' }, keys: ['old'] },
    ]);
  });

  it('only changed attributes are written', () => {
    const d = desired(annotate('attributes', 'a.b=1,c.d=2'));
    const actual = { ...converged(d), attributes: { 'a.b': '1', 'c.d': '3', 'e.f': 'x' } };
    expect(planLoadBalancer(d, actual)).toEqual([{ kind: 'modifyLoadBalancerAttributes', attributes: { 'c.d': '2' } }]);
  });

  it('targets: registers only the new, deregisters only the gone, in chunks of at most 200', () => {
    const many = desiredLoadBalancer('prod', awsSvc('web'), backends(nodes(450))).desired;
    const actual = converged(desiredLoadBalancer('prod', awsSvc('web'), backends([...nodes(450).slice(0, 10), node('old', 'i-old')])).desired);
    const actions = planLoadBalancer(many, actual);
    const registered = actions.flatMap((a) => (a.kind === 'registerTargets' ? [a.targets.length] : []));
    expect(registered).toEqual([200, 200, 40]);
    expect(actions.filter((a) => a.kind === 'deregisterTargets')).toEqual([{ kind: 'deregisterTargets', target: { arn: 'arn:tg0' }, targets: [{ id: 'i-old', port: 30080 }] }]);
  });

  it.each([
    ['initial', []],
    ['unhealthy', []],
    ['unused', []],
    ['draining', ['registerTargets']],
    ['unhealthy.draining', ['registerTargets']],
  ])('a desired target in state %s: %j', (state, expected) => {
    const d = desired();
    const actual = converged(d);
    const tg = actual.targetGroups[0];
    if (!tg) throw new Error('no tg');
    const targets: TargetHealth[] = tg.targets.map((t, i) => (i === 0 ? { ...t, state } : t));
    expect(kinds(planLoadBalancer(d, { ...actual, targetGroups: [{ ...tg, targets }] }))).toEqual(expected);
  });

  it('a port change: new target group and listener, the old listener then the old target group deleted, in that order', () => {
    const before = desired();
    const after = desired(ports({ name: 'https', port: 443, protocol: 'TCP', nodePort: 30443 }));
    expect(kinds(planLoadBalancer(after, converged(before)))).toEqual(['createTargetGroup', 'registerTargets', 'createListener', 'deleteListener', 'deleteTargetGroup']);
  });

  it('a protocol change on the same port (TCP -> TCP_UDP) re-points the listener to a new target group', () => {
    const before = desired(ports({ name: 'dns', port: 53, protocol: 'TCP', nodePort: 30053 }));
    const after = desired(ports({ name: 'dns', port: 53, protocol: 'TCP', nodePort: 30053 }, { name: 'dnsu', port: 53, protocol: 'UDP', nodePort: 30053 }));
    const actions = planLoadBalancer(after, converged(before));
    expect(kinds(actions)).toEqual(['createTargetGroup', 'registerTargets', 'modifyListener', 'deleteTargetGroup']);
    expect(actions[2]).toMatchObject({ kind: 'modifyListener', protocol: 'TCP_UDP', target: { createdFor: 53 } });
  });

  it('a target group created before a crash (found by name, not attached) is reused, not duplicated', () => {
    const d = desired();
    const actual = { ...converged(d), listeners: [] };
    expect(kinds(planLoadBalancer(d, actual))).toEqual(['createListener']);
  });
});

describe('frontend security group rules', () => {
  const rule = (protocol: string, port: number, value: string, kind: IngressRule['source']['kind'] = 'cidr'): IngressRule => ({ protocol, fromPort: port, toPort: port, source: { kind, value } });

  it('nothing to do when the group holds exactly the wanted rules (compared in canonical spelling)', () => {
    expect(planIngress([rule('tcp', 80, '2001:db8::/32'), rule('udp', 53, '203.0.113.0/24')], [rule('udp', 53, '203.0.113.0/24'), rule('tcp', 80, '2001:DB8:0::/32')])).toEqual({ authorize: [], revoke: [] });
  });

  it('adds what is missing and revokes everything else in our group, whatever its shape', () => {
    const foreign = [rule('-1', -1, '0.0.0.0/0'), { protocol: 'tcp', fromPort: 0, toPort: 65535, source: { kind: 'cidr' as const, value: '10.0.0.0/8' } }, rule('tcp', 80, 'sg-0abc', 'group'), rule('tcp', 80, 'pl-1', 'prefix-list')];
    const plan = planIngress([rule('tcp', 80, '203.0.113.0/24'), rule('tcp', 443, '203.0.113.0/24')], [rule('tcp', 80, '203.0.113.0/24'), rule('tcp', 80, '198.51.100.0/24'), ...foreign]);
    expect(plan.authorize).toEqual([rule('tcp', 443, '203.0.113.0/24')]);
    expect(plan.revoke).toEqual([rule('tcp', 80, '198.51.100.0/24'), ...foreign]);
  });

  it('a changed range: the old revoked, the new authorized (the same group, in place)', () => {
    const d = desired(spec({ loadBalancerSourceRanges: ['198.51.100.0/24'] }));
    const before = desiredIngress(desired(spec({ loadBalancerSourceRanges: ['203.0.113.0/24'] })).securityGroup, undefined);
    expect(planIngress(desiredIngress(d.securityGroup, undefined), before)).toEqual({ authorize: [rule('tcp', 80, '198.51.100.0/24')], revoke: [rule('tcp', 80, '203.0.113.0/24')] });
  });

  it.each([
    ['an NLB without security groups and source ranges asked for: a condition naming the field', [], true, true],
    ['an NLB without security groups, no ranges asked for: left as it is', [], false, false],
    ['an NLB with its security group: converged, no condition', ['sg-1'], true, false],
  ] as const)('%s', (_name, groups, restricted, problem) => {
    const d = desired(...(restricted ? [spec({ loadBalancerSourceRanges: ['203.0.113.0/24'] })] : []));
    const found = unattachableGroupProblem(d, lb(d, { securityGroupIds: groups }));
    if (!problem) {
      expect(found).toBeUndefined();
      return;
    }
    expect(found?.field).toBe('spec.loadBalancerSourceRanges');
    expect(found?.message).toMatch(/created without security groups.*AWS cannot add security groups.*delete and recreate the Service, or change aws-load-balancer-name/);
  });

  it('an NLB without security groups and your own groups asked for: a condition naming the annotation', () => {
    const d = desired(annotate('security-groups', 'sg-0abc'));
    expect(unattachableGroupProblem(d, lb(d, { securityGroupIds: [] }))).toMatchObject({ field: 'metadata.annotations[service.beta.kubernetes.io/aws-load-balancer-security-groups]', message: expect.stringMatching(/cannot be attached/) as unknown });
  });
});
