/**
 * The NLB's frontend security group, through the real SDK against moto. moto 5.2.5 does not
 * refuse to delete a group still attached to an NLB (AWS: `DependencyViolation`, for minutes
 * after the NLB went, while its network interfaces are released): that is injected here.
 */
import { CreateSecurityGroupCommand, EC2Client } from '@aws-sdk/client-ec2';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { systemClock, type Clock } from '../../../src/kube/clock.js';
import { createLogger } from '../../../src/kube/logger.js';
import { MUTATING_OPERATIONS, type SecurityGroup } from '../../../src/providers/aws/api.js';
import { TAG_CLUSTER, TAG_SERVICE, desiredLoadBalancer, ownershipTags } from '../../../src/providers/aws/desired.js';
import { guardApi } from '../../../src/providers/aws/guard.js';
import { AwsNlbProvider, describeTags } from '../../../src/providers/aws/provider.js';
import { ProviderError } from '../../../src/providers/provider.js';
import { annotate, awsSvc, backends, node, ports, spec, testContext, type Option } from './builders.js';
import { createNetwork, motoApi, RecordingApi, REGION, runInstances, TEST_CREDENTIALS, useMoto, type Network } from './moto.js';

const CLUSTER = 'sg-test';
const moto = useMoto();
const signal = new AbortController().signal;
/** Backoff without waiting (the DependencyViolation retries sleep seconds on a real clock). */
const instantClock: Clock = { ...systemClock, sleep: (_ms, s) => (s?.aborted === true ? Promise.reject(s.reason as Error) : Promise.resolve()) };
const sdkError = (name: string): Error => Object.assign(new Error(`${name} (injected)`), { name, $fault: 'client', $metadata: { httpStatusCode: 400 } });

function newProvider(recording: RecordingApi, options: { cluster?: string; deepVerifyIntervalMs?: number } = {}): AwsNlbProvider {
  return new AwsNlbProvider({
    api: guardApi(recording.api, { clock: systemClock }),
    clusterName: options.cluster ?? CLUSTER,
    clock: instantClock,
    logger: createLogger('silent'),
    ...(options.deepVerifyIntervalMs === undefined ? {} : { deepVerifyIntervalMs: options.deepVerifyIntervalMs }),
  });
}

/**
 * moto 5.2.5 keeps an NLB's listeners after DeleteLoadBalancer (AWS deletes them with it), so its
 * target groups stay "in use": where a test replaces an NLB, this does what AWS does.
 */
function awsLikeDeletes(): RecordingApi {
  const inner = motoApi(moto.server);
  return new RecordingApi({
    ...inner,
    deleteLoadBalancer: async (s, arn) => {
      for (const l of (await inner.describeListeners(s, arn)).items) await inner.deleteListener(s, l.arn);
      await inner.deleteLoadBalancer(s, arn);
    },
  });
}

const rules = (g: SecurityGroup | undefined): string[] => (g?.ingress ?? []).map((r) => `${r.protocol}/${r.fromPort}-${r.toPort} ${r.source.value}`).sort();

describe('the NLB frontend security group, against moto', () => {
  let network: Network;
  let nodes: ReturnType<typeof node>[];
  let recording: RecordingApi;

  beforeAll(async () => {
    network = await createNetwork(moto.server, CLUSTER);
    nodes = (await runInstances(moto.server, network.publicSubnets[0] ?? '', 2)).map((i, k) => node(`n${k}`, i.id, i.zone));
  });
  beforeEach(() => {
    recording = new RecordingApi(motoApi(moto.server));
  });

  /** What a user finds in AWS for a Service: its NLBs (by tags) and every group tagged for it. */
  async function observe(name: string, cluster = CLUSTER) {
    const raw = motoApi(moto.server);
    const key = `default/${name}`;
    const lbs = (await raw.describeLoadBalancers(signal, {})).items;
    const tags = await describeTags(raw, signal, lbs.map((l) => l.arn));
    const ours = lbs.filter((l) => tags.get(l.arn)?.[TAG_SERVICE] === key && tags.get(l.arn)?.[TAG_CLUSTER] === cluster);
    const groups = (await raw.describeSecurityGroups(signal, { filters: [{ name: `tag:${TAG_SERVICE}`, values: [key] }, { name: `tag:${TAG_CLUSTER}`, values: [cluster] }] })).items;
    return { lbs: ours, groups };
  }

  const svc = (name: string, ...options: Option[]) => awsSvc(name, annotate('scheme', 'internet-facing'), ...options);

  it('a Service with source ranges: its NLB holds exactly one group of ours, with exactly the rules asked for', async () => {
    const provider = newProvider(recording);
    const service = svc('ranges', ports({ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }, { name: 'dns', port: 53, protocol: 'TCP', nodePort: 30053 }, { name: 'dnsu', port: 53, protocol: 'UDP', nodePort: 30053 }), spec({ loadBalancerSourceRanges: ['203.0.113.0/24', '198.51.100.7/32'] }));
    await provider.ensure(testContext(), service, backends(nodes));
    const { lbs, groups } = await observe('ranges');
    expect(lbs).toHaveLength(1);
    expect(groups).toHaveLength(1);
    expect(lbs[0]?.securityGroupIds).toEqual([groups[0]?.id]);
    expect(groups[0]?.vpcId).toBe(network.vpcId);
    expect(groups[0]?.name).toBe(`${lbs[0]?.name ?? ''}-sg`);
    expect(groups[0]?.tags).toMatchObject(ownershipTags(CLUSTER, 'default/ranges', 'security-group'));
    expect(rules(groups[0])).toEqual([
      'tcp/53-53 198.51.100.7/32',
      'tcp/53-53 203.0.113.0/24',
      'tcp/80-80 198.51.100.7/32',
      'tcp/80-80 203.0.113.0/24',
      'udp/53-53 198.51.100.7/32',
      'udp/53-53 203.0.113.0/24',
    ]);
  });

  it('without ranges: internet-facing is open to all, internal to the VPC\'s CIDR blocks (as aws-load-balancer-controller)', async () => {
    const provider = newProvider(recording);
    await provider.ensure(testContext(), svc('open'), backends(nodes));
    await provider.ensure(testContext(), awsSvc('inside'), backends(nodes));
    expect(rules((await observe('open')).groups[0])).toEqual(['tcp/80-80 0.0.0.0/0']);
    expect(rules((await observe('inside')).groups[0])).toEqual(['tcp/80-80 10.0.0.0/16']);
  });

  it('changing the ranges or the ports edits the rules in place: same NLB, same group, nothing re-created', async () => {
    const provider = newProvider(recording);
    await provider.ensure(testContext(), svc('edit', spec({ loadBalancerSourceRanges: ['203.0.113.0/24'] })), backends(nodes));
    const before = await observe('edit');
    recording.reset();
    await provider.ensure(testContext(), svc('edit', spec({ loadBalancerSourceRanges: ['198.51.100.0/24'] })), backends(nodes));
    const after = await observe('edit');
    expect(after.lbs.map((l) => l.arn)).toEqual(before.lbs.map((l) => l.arn));
    expect(after.groups.map((g) => g.id)).toEqual(before.groups.map((g) => g.id));
    expect(rules(after.groups[0])).toEqual(['tcp/80-80 198.51.100.0/24']);
    // Revoked before authorized: never open to more than asked, even for a moment.
    expect(recording.calls.filter((op) => MUTATING_OPERATIONS.has(op))).toEqual(['revokeSecurityGroupIngress', 'authorizeSecurityGroupIngress', 'addTags']);

    await provider.ensure(testContext(), svc('edit', spec({ loadBalancerSourceRanges: ['198.51.100.0/24'] }), ports({ name: 'https', port: 443, protocol: 'TCP', nodePort: 30443 })), backends(nodes));
    const ported = await observe('edit');
    expect(ported.lbs.map((l) => l.arn)).toEqual(before.lbs.map((l) => l.arn));
    expect(ported.groups.map((g) => g.id)).toEqual(before.groups.map((g) => g.id));
    expect(rules(ported.groups[0])).toEqual(['tcp/443-443 198.51.100.0/24']);
  });

  it('a replaced NLB (the scheme changed) reuses its group: exactly one group of ours, attached to the new NLB, rules for the new scheme', async () => {
    const provider = newProvider(awsLikeDeletes());
    await provider.ensure(testContext(), awsSvc('moved'), backends(nodes));
    const first = await observe('moved');
    expect(rules(first.groups[0])).toEqual(['tcp/80-80 10.0.0.0/16']);
    await provider.ensure(testContext(), svc('moved'), backends(nodes));
    const second = await observe('moved');
    expect(second.lbs).toHaveLength(1);
    expect(second.lbs[0]?.arn).not.toBe(first.lbs[0]?.arn);
    expect(second.lbs[0]?.scheme).toBe('internet-facing');
    expect(second.groups.map((g) => g.id)).toEqual(first.groups.map((g) => g.id));
    expect(second.lbs[0]?.securityGroupIds).toEqual([first.groups[0]?.id]);
    expect(rules(second.groups[0])).toEqual(['tcp/80-80 0.0.0.0/0']);
  });

  it('a re-ensure with nothing changed makes zero mutating calls and never describes groups; a deep verify describes them and changes nothing', async () => {
    const service = svc('steady', spec({ loadBalancerSourceRanges: ['203.0.113.0/24'] }));
    await newProvider(recording).ensure(testContext(), service, backends(nodes));
    const restarted = newProvider(recording, { deepVerifyIntervalMs: 0 });
    recording.reset();
    await restarted.ensure(testContext(), service, backends(nodes));
    expect(recording.calls).toEqual(['describeLoadBalancers', 'describeTags']);
    recording.reset();
    await restarted.ensure(testContext(), service, backends(nodes));
    expect(recording.calls).toContain('describeSecurityGroups');
    expect(recording.calls.filter((op) => MUTATING_OPERATIONS.has(op))).toEqual([]);
  });

  it('the deep verify repairs drift: a rule added by hand is revoked, a revoked one put back', async () => {
    const service = svc('drift', spec({ loadBalancerSourceRanges: ['203.0.113.0/24'] }));
    const provider = newProvider(recording, { deepVerifyIntervalMs: 0 });
    await provider.ensure(testContext(), service, backends(nodes));
    const raw = motoApi(moto.server);
    const group = (await observe('drift')).groups[0];
    if (!group) throw new Error('no group');
    const byHand = { protocol: 'tcp', fromPort: 22, toPort: 22, source: { kind: 'cidr' as const, value: '0.0.0.0/0' } };
    await raw.authorizeSecurityGroupIngress(signal, group.id, [byHand]);
    await raw.revokeSecurityGroupIngress(signal, group.id, group.ingress);
    await provider.ensure(testContext(), service, backends(nodes)); // first sight: trusts the hash
    await provider.ensure(testContext(), service, backends(nodes));
    expect(rules((await observe('drift')).groups[0])).toEqual(['tcp/80-80 203.0.113.0/24']);
  });

  it('deleting the Service deletes the NLB, its listeners and target groups, then the group: nothing tagged with the cluster is left', async () => {
    const cluster = 'sg-delete';
    const provider = newProvider(recording, { cluster });
    const service = svc('gone', annotate('subnets', network.publicSubnets.join(',')), spec({ loadBalancerSourceRanges: ['203.0.113.0/24'] }));
    await provider.ensure(testContext(), service, backends(nodes));
    expect((await observe('gone', cluster)).groups).toHaveLength(1);
    await provider.ensureDeleted(testContext(), service);
    const raw = motoApi(moto.server);
    const lbs = (await raw.describeLoadBalancers(signal, {})).items;
    const tgs = (await raw.describeTargetGroups(signal, {})).items;
    const tags = await describeTags(raw, signal, [...lbs.map((l) => l.arn), ...tgs.map((t) => t.arn)]);
    expect([...tags.values()].filter((t) => t[TAG_CLUSTER] === cluster)).toEqual([]);
    expect((await raw.describeSecurityGroups(signal, { filters: [{ name: `tag:${TAG_CLUSTER}`, values: [cluster] }] })).items).toEqual([]);
    // Deleting again finds nothing and succeeds.
    await provider.ensureDeleted(testContext(), service);
  });

  it('AWS still holds the group after the NLB went (DependencyViolation): deletion fails retryably, naming it, and the next attempt finishes', async () => {
    const provider = newProvider(recording);
    const service = svc('held');
    await provider.ensure(testContext(), service, backends(nodes));
    const groupId = (await observe('held')).groups[0]?.id;
    recording.faults = (op) => {
      if (op === 'deleteSecurityGroup') throw sdkError('DependencyViolation');
    };
    const error = (await provider.ensureDeleted(testContext(), service).catch((e: unknown) => e)) as ProviderError;
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.retryable).toBe(true);
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.message).toContain(`security group ${groupId ?? '?'} is still in use (DependencyViolation)`);
    expect(recording.count((op) => op === 'deleteSecurityGroup')).toBe(4);
    // The NLB is gone, the group is not: the controller keeps the finalizer and retries.
    expect(await observe('held')).toMatchObject({ lbs: [], groups: [{ id: groupId }] });
    recording.faults = undefined;
    await provider.ensureDeleted(testContext(), service);
    expect((await observe('held')).groups).toEqual([]);
  });

  it('a crash between creating the group and creating the NLB: the next ensure finishes with exactly one group', async () => {
    recording.faults = (op) => {
      if (op === 'createLoadBalancer') throw Object.assign(new Error('process killed'), { name: 'Killed' });
    };
    const service = svc('crash', spec({ loadBalancerSourceRanges: ['203.0.113.0/24'] }));
    await expect(newProvider(recording).ensure(testContext(), service, backends(nodes))).rejects.toThrow(/process killed/);
    expect(await observe('crash')).toMatchObject({ lbs: [], groups: [{}] });
    recording.faults = undefined;
    await newProvider(recording).ensure(testContext(), service, backends(nodes));
    const { lbs, groups } = await observe('crash');
    expect(groups).toHaveLength(1);
    expect(lbs).toHaveLength(1);
    expect(lbs[0]?.securityGroupIds).toEqual([groups[0]?.id]);
    expect(rules(groups[0])).toEqual(['tcp/80-80 203.0.113.0/24']);
  });

  it('a group with our name that we do not own is an error, never a takeover', async () => {
    const service = svc('squat', annotate('name', 'squatted-nlb'));
    const ec2 = new EC2Client({ region: REGION, endpoint: moto.server.endpoint, credentials: TEST_CREDENTIALS });
    const foreign = (await ec2.send(new CreateSecurityGroupCommand({ GroupName: 'squatted-nlb-sg', Description: 'someone else', VpcId: network.vpcId }))).GroupId ?? '';
    ec2.destroy();
    const error = (await newProvider(recording).ensure(testContext(), service, backends(nodes)).catch((e: unknown) => e)) as ProviderError;
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ reason: 'NotOwned', retryable: false });
    expect(error.message).toMatch(/security group named squatted-nlb-sg .* is not ours/);
    expect(recording.calls).not.toContain('createLoadBalancer');
    const [untouched] = (await motoApi(moto.server).describeSecurityGroups(signal, { ids: [foreign] })).items;
    expect(untouched?.ingress).toEqual([]);
  });

  it('an NLB created without security groups (an earlier Portico) and a Service that now asks for ranges: a condition, the NLB kept and still served', async () => {
    const raw = motoApi(moto.server);
    const plain = svc('legacy');
    const { desired } = desiredLoadBalancer(CLUSTER, plain, backends(nodes));
    // What the previous version created: the NLB, no security group.
    const old = await raw.createLoadBalancer(signal, { name: desired.name, scheme: desired.scheme, ipAddressType: 'ipv4', subnetIds: network.publicSubnets, securityGroupIds: [], tags: desired.tags });
    const provider = newProvider(recording);
    await provider.ensure(testContext(), plain, backends(nodes.slice(0, 1)));
    expect((await observe('legacy')).groups).toEqual([]);

    const restricted = svc('legacy', spec({ loadBalancerSourceRanges: ['203.0.113.0/24'] }));
    const error = (await provider.ensure(testContext(), restricted, backends(nodes)).catch((e: unknown) => e)) as ProviderError;
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ reason: 'InvalidSpec', field: 'spec.loadBalancerSourceRanges', retryable: false });
    expect(error.message).toMatch(/AWS cannot add security groups/);
    const after = await observe('legacy');
    expect(after.lbs.map((l) => l.arn)).toEqual([old.arn]);
    expect(after.groups).toEqual([]);
    // Still served: the listener is there and the new node was registered.
    expect((await raw.describeListeners(signal, old.arn)).items.map((l) => l.port)).toEqual([80]);
    const [tg] = (await raw.describeTargetGroups(signal, { loadBalancerArn: old.arn })).items;
    expect((await raw.describeTargetHealth(signal, tg?.arn ?? '')).map((t) => t.id).sort()).toEqual(nodes.map((n) => n.spec?.providerID?.split('/').pop()).sort());
    // The routine path (hash matches) says the same, without a call.
    recording.reset();
    await expect(provider.ensure(testContext(), restricted, backends(nodes))).rejects.toMatchObject({ field: 'spec.loadBalancerSourceRanges' });
    expect(recording.calls).toEqual([]);

    // What the condition advises: a new name gives a new NLB, with a group holding the ranges; the old NLB goes.
    const renamed = svc('legacy', annotate('name', 'legacy-renamed'), spec({ loadBalancerSourceRanges: ['203.0.113.0/24'] }));
    await newProvider(awsLikeDeletes()).ensure(testContext(), renamed, backends(nodes));
    const moved = await observe('legacy');
    expect(moved.lbs.map((l) => l.name)).toEqual(['legacy-renamed']);
    expect(moved.lbs[0]?.securityGroupIds).toEqual(moved.groups.map((g) => g.id));
    expect(rules(moved.groups[0])).toEqual(['tcp/80-80 203.0.113.0/24']);
    expect((await raw.describeListeners(signal, moved.lbs[0]?.arn ?? '')).items.map((l) => l.port)).toEqual([80]);
  });

  it('garbage collection also deletes the groups of Services that are gone', async () => {
    const cluster = 'sg-gc';
    recording.faults = (op) => {
      if (op === 'createLoadBalancer') throw Object.assign(new Error('process killed'), { name: 'Killed' });
    };
    const subnets = annotate('subnets', network.publicSubnets.join(','));
    await expect(newProvider(recording, { cluster }).ensure(testContext(), svc('orphan', subnets), backends(nodes))).rejects.toThrow(/killed/);
    recording.faults = undefined;
    const provider = newProvider(recording, { cluster });
    await provider.ensure(testContext(), svc('kept', subnets), backends(nodes));
    const dry = await provider.sweep(signal, new Set(['default/kept']), { dryRun: true, logger: createLogger('silent') });
    expect(dry.securityGroups).toHaveLength(1);
    expect((await observe('orphan', cluster)).groups).toHaveLength(1);
    const swept = await provider.sweep(signal, new Set(['default/kept']), { dryRun: false, logger: createLogger('silent') });
    expect(swept.securityGroups).toEqual(dry.securityGroups);
    expect((await observe('orphan', cluster)).groups).toEqual([]);
    expect((await observe('kept', cluster)).groups).toHaveLength(1);
  });

  it('aws-load-balancer-security-groups: the user\'s groups (IDs or Name tags) instead of ours, switched in place, never given rules, never deleted', async () => {
    const ec2 = new EC2Client({ region: REGION, endpoint: moto.server.endpoint, credentials: TEST_CREDENTIALS });
    const make = async (name: string, tag?: string): Promise<string> =>
      (await ec2.send(new CreateSecurityGroupCommand({ GroupName: name, Description: 'the user\'s', VpcId: network.vpcId, ...(tag === undefined ? {} : { TagSpecifications: [{ ResourceType: 'security-group', Tags: [{ Key: 'Name', Value: tag }] }] }) }))).GroupId ?? '';
    const [a, b, c] = [await make('user-a'), await make('user-b', 'team-b'), await make('user-c')];
    ec2.destroy();
    const raw = motoApi(moto.server);
    const userGroups = async () => (await raw.describeSecurityGroups(signal, { ids: [a, b, c] })).items;
    const provider = newProvider(recording);
    // Managed first: then switched to the user's groups on the same NLB.
    await provider.ensure(testContext(), svc('byo'), backends(nodes));
    const managed = await observe('byo');
    expect(managed.groups).toHaveLength(1);

    await provider.ensure(testContext(), svc('byo', annotate('security-groups', `${a}, team-b`)), backends(nodes));
    let now = await observe('byo');
    expect(now.lbs.map((l) => l.arn)).toEqual(managed.lbs.map((l) => l.arn));
    expect([...(now.lbs[0]?.securityGroupIds ?? [])].sort()).toEqual([a, b].sort());
    // Our group, no longer used, is gone (moto lets it go at once; AWS may hold it a moment: then the next deep verify).
    expect(now.groups).toEqual([]);

    recording.reset();
    await provider.ensure(testContext(), svc('byo', annotate('security-groups', c)), backends(nodes));
    now = await observe('byo');
    expect(now.lbs.map((l) => l.arn)).toEqual(managed.lbs.map((l) => l.arn));
    expect(now.lbs[0]?.securityGroupIds).toEqual([c]);
    expect(recording.calls.filter((op) => MUTATING_OPERATIONS.has(op))).toEqual(['setSecurityGroups', 'addTags']);

    await provider.ensureDeleted(testContext(), svc('byo', annotate('security-groups', c)));
    const left = await userGroups();
    expect(left.map((g) => g.id).sort()).toEqual([a, b, c].sort());
    expect(left.flatMap((g) => g.ingress)).toEqual([]);
  });

  it('aws-load-balancer-security-groups naming a group that does not exist: a condition naming the annotation, no NLB', async () => {
    const error = (await newProvider(recording).ensure(testContext(), svc('nosuch', annotate('security-groups', 'no-such-group')), backends(nodes)).catch((e: unknown) => e)) as ProviderError;
    expect(error).toMatchObject({ reason: 'InvalidSpec', retryable: false, field: 'metadata.annotations[service.beta.kubernetes.io/aws-load-balancer-security-groups]' });
    expect(error.message).toMatch(/no security group with the Name tag "no-such-group"/);
    expect(await observe('nosuch')).toEqual({ lbs: [], groups: [] });
  });
});
