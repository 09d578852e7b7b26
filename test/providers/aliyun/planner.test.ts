import { describe, expect, it } from 'vitest';
import type { Listener, LoadBalancerAttribute } from '../../../src/providers/aliyun/client.js';
import { planDelete, planEnsure, type Action, type Observed, type PlanInput } from '../../../src/providers/aliyun/planner.js';
import { parseService, type DesiredBalancer } from '../../../src/providers/aliyun/spec.js';
import { service, withAliyun, withNodePorts, withSourceRanges } from './harness.js';
import type { ServiceOption } from '../../builders/service.js';

const DESC = 'portico:c:default/web';

function desired(...options: ServiceOption[]): DesiredBalancer {
  const parsed = parseService(service('web', ...options));
  if ('problems' in parsed) throw new Error(JSON.stringify(parsed.problems));
  return parsed.desired;
}
function lb(patch: Partial<LoadBalancerAttribute> = {}): LoadBalancerAttribute {
  return { id: 'lb-1', name: 'portico-default-web', status: 'active', address: '203.0.113.1', addressType: 'internet', vswitchId: '', spec: '', chargeType: 'paybytraffic', bandwidth: 5120, tags: {}, deleteProtection: 'on', ...patch };
}
function listener(port: number, patch: Partial<Listener> = {}): Listener {
  return { port, protocol: 'tcp', status: 'running', description: DESC, vServerGroupId: `rsp-${port}`, scheduler: 'wrr', aclStatus: 'off', aclId: '', aclType: '', healthCheck: {}, ...patch };
}
function observed(patch: Partial<Observed> = {}): Observed {
  return { lb: lb(), listeners: [], groups: [], acl: undefined, ...patch };
}
function plan(input: Partial<PlanInput> & { desired: DesiredBalancer }): Action[] | string[] {
  const result = planEnsure({ observed: observed(), description: DESC, created: true, instances: ['i-a', 'i-b'], tags: {}, ...input });
  return 'problems' in result ? result.problems.map((p) => p.field) : result.actions;
}
const kinds = (actions: Action[] | string[]): string[] => actions.map((a) => (typeof a === 'string' ? `problem:${a}` : a.kind));
const converged = observed({
  listeners: [listener(80)],
  groups: [{ id: 'rsp-80', name: `${DESC}:80/tcp`, backends: [{ serverId: 'i-a', port: 30080, weight: 100 }, { serverId: 'i-b', port: 30080, weight: 100 }] }],
});

describe('planEnsure', () => {
  const cases: { name: string; input: Partial<PlanInput> & { desired: DesiredBalancer }; want: string[] }[] = [
    { name: 'empty CLB: group, listener, start', input: { desired: desired() }, want: ['create-group', 'create-listener', 'start-listener'] },
    { name: 'converged: nothing', input: { desired: desired(), observed: converged }, want: [] },
    { name: 'stopped listener is started', input: { desired: desired(), observed: { ...converged, listeners: [listener(80, { status: 'stopped' })] } }, want: ['start-listener'] },
    { name: 'scheduler edit sets the listener', input: { desired: desired(withAliyun('scheduler', 'rr')), observed: converged }, want: ['set-listener'] },
    { name: 'new node is added, gone node removed (add first)', input: { desired: desired(), observed: converged, instances: ['i-a', 'i-c'] }, want: ['add-backends', 'remove-backends'] },
    { name: 'our listener for a removed port goes, then its group', input: { desired: desired(), observed: { ...converged, listeners: [listener(80), listener(81)], groups: [...converged.groups, { id: 'rsp-81', name: `${DESC}:81/tcp`, backends: [] }] } }, want: ['delete-listener', 'delete-group'] },
    { name: 'foreign listener on another port is left alone', input: { desired: desired(), observed: { ...converged, listeners: [listener(80), listener(443, { description: 'hand' })] } }, want: [] },
    { name: 'foreign listener on our port: problem', input: { desired: desired(), observed: observed({ listeners: [listener(80, { description: 'hand' })] }) }, want: ['problem:metadata.annotations[service.beta.kubernetes.io/alibaba-cloud-loadbalancer-force-override-listeners]'] },
    { name: 'foreign listener on our port, forced: taken over', input: { desired: desired(withAliyun('force-override-listeners', 'true')), observed: { ...converged, listeners: [listener(80, { description: 'hand' })] } }, want: ['set-listener'] },
    { name: 'protocol change replaces the listener', input: { desired: desired(withNodePorts({ port: 80, nodePort: 30080, protocol: 'UDP' })), observed: converged }, want: ['create-group', 'delete-listener', 'create-listener', 'start-listener', 'delete-group'] },
    { name: 'address type cannot change', input: { desired: desired(withAliyun('address-type', 'intranet')), observed: converged }, want: ['problem:metadata.annotations[service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type]'] },
    { name: 'bandwidth and spec edits on a created CLB', input: { desired: desired(withAliyun('bandwidth', '10'), withAliyun('spec', 'slb.s2.small')), observed: converged }, want: ['modify-internet-spec', 'modify-instance-spec'] },
    { name: 'instance attributes of a reused CLB are not touched', input: { desired: desired(withAliyun('bandwidth', '10'), withAliyun('delete-protection', 'off')), observed: converged, created: false }, want: [] },
    { name: 'delete protection follows the annotation', input: { desired: desired(withAliyun('delete-protection', 'off')), observed: converged }, want: ['set-delete-protection'] },
    { name: 'source ranges: ACL, entries, listener', input: { desired: desired(withSourceRanges('198.51.100.0/24')), observed: converged }, want: ['create-acl', 'acl-add', 'set-listener'] },
    { name: 'source ranges gone: listener off, then ACL deleted', input: { desired: desired(), observed: { ...converged, listeners: [listener(80, { aclStatus: 'on', aclId: 'acl-1', aclType: 'white' })], acl: { id: 'acl-1', entries: ['198.51.100.0/24'] } } }, want: ['set-listener', 'delete-acl'] },
    { name: 'missing tags are written last', input: { desired: desired(), observed: converged, tags: { 'portico.dev/spec-hash': 'h' } }, want: ['tag'] },
  ];
  for (const c of cases) it(c.name, () => expect(kinds(plan(c.input))).toEqual(c.want));

  it('splits 45 backends into calls of at most 20', () => {
    const instances = Array.from({ length: 45 }, (_, i) => `i-${i}`);
    const actions = plan({ desired: desired(), instances }) as Action[];
    const sizes = actions.flatMap((a) => (a.kind === 'create-group' || a.kind === 'add-backends' ? [a.backends.length] : []));
    expect(sizes).toEqual([20, 20, 5]);
  });
});

describe('planDelete', () => {
  it('a CLB we created: protection off, then delete', () => {
    expect(kinds(planDelete({ observed: converged, description: DESC, created: true, ourTagKeys: [] }))).toEqual(['set-delete-protection', 'delete-load-balancer']);
  });
  it('a reused CLB: only our listeners, groups, ACL and tags', () => {
    const reused = { ...converged, lb: lb({ tags: { 'portico.dev/service': 'default/web', other: 'x' } }), listeners: [listener(80), listener(443, { description: 'hand' })], acl: { id: 'acl-1', entries: [] } };
    const actions = planDelete({ observed: reused, description: DESC, created: false, ourTagKeys: ['portico.dev/service', 'portico.dev/cluster'] });
    expect(actions).toEqual([
      { kind: 'delete-listener', port: 80, protocol: 'tcp' },
      { kind: 'delete-group', id: 'rsp-80' },
      { kind: 'untag', keys: ['portico.dev/service'] },
      { kind: 'delete-acl', id: 'acl-1' },
    ]);
  });
});
