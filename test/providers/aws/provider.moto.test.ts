/**
 * The provider through the real AWS SDK against moto. Where moto differs from AWS (see
 * docs/providers/aws.md, "Testing"), the test says so; what moto cannot do (throttling, paging,
 * target states) is covered with injected faults in faults.test.ts.
 */
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../../src/kube/clock.js';
import { MUTATING_OPERATIONS } from '../../../src/providers/aws/api.js';
import { TAG_CLUSTER, TAG_SERVICE } from '../../../src/providers/aws/desired.js';
import { guardApi } from '../../../src/providers/aws/guard.js';
import { AwsNlbProvider, describeTags } from '../../../src/providers/aws/provider.js';
import { createLogger } from '../../../src/kube/logger.js';
import { ProviderError } from '../../../src/providers/provider.js';
import { annotate, awsSvc, backends, node, ports, slice, testContext } from './builders.js';
import { createNetwork, motoApi, RecordingApi, runInstances, useMoto, type Network } from './moto.js';

const CLUSTER = 'moto-test';
const moto = useMoto();

function newProvider(recording: RecordingApi, cluster = CLUSTER): AwsNlbProvider {
  return new AwsNlbProvider({ api: guardApi(recording.api, { clock: systemClock }), clusterName: cluster, clock: systemClock, logger: createLogger('silent') });
}

describe('AWS NLB provider against moto', () => {
  let network: Network;
  let instances: { id: string; zone: string }[];
  let recording: RecordingApi;

  beforeAll(async () => {
    network = await createNetwork(moto.server, CLUSTER);
    instances = await runInstances(moto.server, network.publicSubnets[0] ?? '', 3);
  });
  beforeEach(() => {
    recording = new RecordingApi(motoApi(moto.server));
  });

  const nodes = (n: number) => instances.slice(0, n).map((i, k) => node(`node-${k}`, i.id, i.zone));

  async function state(serviceKey: string, cluster = CLUSTER) {
    const raw = motoApi(moto.server);
    const signal = new AbortController().signal;
    const lbs = (await raw.describeLoadBalancers(signal, {})).items;
    const tags = await describeTags(raw, signal, lbs.map((l) => l.arn));
    const ours = lbs.filter((l) => tags.get(l.arn)?.[TAG_SERVICE] === serviceKey && tags.get(l.arn)?.[TAG_CLUSTER] === cluster);
    const out = [];
    for (const lb of ours) {
      const listeners = (await raw.describeListeners(signal, lb.arn)).items;
      // moto: TargetGroupNotFound for a balancer without target groups (AWS: an empty list).
      const tgs = (await raw.describeTargetGroups(signal, { loadBalancerArn: lb.arn }).catch(() => ({ items: [] }))).items;
      const targets = Object.fromEntries(await Promise.all(tgs.map(async (tg) => [tg.port, (await raw.describeTargetHealth(signal, tg.arn)).map((t) => t.id).sort()] as const)));
      out.push({ lb, listeners: listeners.map((l) => `${l.port}/${l.protocol}`).sort(), targetGroups: tgs.map((t) => `${t.port}/${t.protocol}/${t.targetType}`).sort(), targets });
    }
    return out;
  }

  it('creates an NLB with one listener and target group per port, instance targets on the node port, and reports its DNS name', async () => {
    const provider = newProvider(recording);
    const service = awsSvc('web', annotate('scheme', 'internet-facing'), ports({ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }, { name: 'dns', port: 53, protocol: 'UDP', nodePort: 30053 }));
    const status = await provider.ensure(testContext(), service, backends(nodes(2)));
    const [only, ...rest] = await state('default/web');
    expect(rest).toEqual([]);
    expect(status).toEqual({ ingress: [{ hostname: only?.lb.dnsName }] });
    expect(only?.lb.scheme).toBe('internet-facing');
    expect([...(only?.lb.subnetIds ?? [])].sort()).toEqual([...network.publicSubnets].sort());
    expect(only?.listeners).toEqual(['53/UDP', '80/TCP']);
    expect(only?.targetGroups).toEqual(['30053/UDP/instance', '30080/TCP/instance']);
    expect(only?.targets).toEqual({ 30053: instances.slice(0, 2).map((i) => i.id).sort(), 30080: instances.slice(0, 2).map((i) => i.id).sort() });
  });

  it('a steady-state re-ensure makes no mutating call, and only the shared describes', async () => {
    const provider = newProvider(recording);
    const service = awsSvc('steady');
    await provider.ensure(testContext(), service, backends(nodes(2)));
    recording.reset();
    await provider.ensure(testContext(), service, backends(nodes(2)));
    expect(recording.count((op) => MUTATING_OPERATIONS.has(op))).toBe(0);
    // A fresh provider (a restart) trusts the spec hash on the NLB: one list, one tag batch.
    const restarted = newProvider(recording);
    recording.reset();
    await restarted.ensure(testContext(), service, backends(nodes(2)));
    expect(recording.calls).toEqual(['describeLoadBalancers', 'describeTags']);
  });

  it('adding and removing nodes registers and deregisters only the difference', async () => {
    const provider = newProvider(recording);
    const service = awsSvc('nodes');
    await provider.ensure(testContext(), service, backends(nodes(1)));
    await provider.updateBackends(testContext(), service, backends(nodes(3)));
    expect((await state('default/nodes'))[0]?.targets[30080]).toEqual(instances.map((i) => i.id).sort());
    recording.reset();
    await provider.updateBackends(testContext(), service, backends(nodes(2)));
    expect((await state('default/nodes'))[0]?.targets[30080]).toEqual(instances.slice(0, 2).map((i) => i.id).sort());
    expect(recording.calls.filter((op) => MUTATING_OPERATIONS.has(op))).toEqual(['deregisterTargets', 'addTags']);
  });

  it('changing ports adds and removes listeners and target groups; TCP and UDP on one port become TCP_UDP', async () => {
    const provider = newProvider(recording);
    await provider.ensure(testContext(), awsSvc('ports'), backends(nodes(1)));
    const changed = awsSvc('ports', ports({ name: 'a', port: 443, protocol: 'TCP', nodePort: 30443 }, { name: 'b', port: 443, protocol: 'UDP', nodePort: 30443 }));
    await provider.ensure(testContext(), changed, backends(nodes(1)));
    const [only] = await state('default/ports');
    expect(only?.listeners).toEqual(['443/TCP_UDP']);
    expect(only?.targetGroups).toEqual(['30443/TCP_UDP/instance']);
    // The old target group is gone, not only detached.
    const all = (await motoApi(moto.server).describeTargetGroups(new AbortController().signal, {})).items;
    const tags = await describeTags(motoApi(moto.server), new AbortController().signal, all.map((t) => t.arn));
    expect(all.filter((t) => tags.get(t.arn)?.[TAG_SERVICE] === 'default/ports').map((t) => t.port)).toEqual([30443]);
  });

  it('deleting leaves nothing behind, and deleting again succeeds', async () => {
    const provider = newProvider(recording);
    const service = awsSvc('gone', ports({ name: 'a', port: 80, protocol: 'TCP', nodePort: 30081 }, { name: 'b', port: 81, protocol: 'TCP', nodePort: 30082 }));
    await provider.ensure(testContext(), service, backends(nodes(2)));
    await provider.ensureDeleted(testContext(), service);
    expect(await state('default/gone')).toEqual([]);
    const all = (await motoApi(moto.server).describeTargetGroups(new AbortController().signal, {})).items;
    const tags = await describeTags(motoApi(moto.server), new AbortController().signal, all.map((t) => t.arn));
    expect(all.filter((t) => tags.get(t.arn)?.[TAG_SERVICE] === 'default/gone')).toEqual([]);
    await provider.ensureDeleted(testContext(), service);
    expect((await provider.get(testContext(), service)).exists).toBe(false);
  });

  it('a balancer with our name that we do not own is an error, never a takeover', async () => {
    const raw = motoApi(moto.server);
    const foreign = await raw.createLoadBalancer(new AbortController().signal, { name: 'someone-elses', scheme: 'internal', ipAddressType: 'ipv4', subnetIds: network.internalSubnets, securityGroupIds: [], tags: { team: 'other' } });
    const provider = newProvider(recording);
    const service = awsSvc('collide', annotate('name', 'someone-elses'));
    const error = await provider.ensure(testContext(), service, backends(nodes(1))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).reason).toBe('NotOwned');
    expect((error as ProviderError).retryable).toBe(false);
    expect((await raw.describeListeners(new AbortController().signal, foreign.arn)).items).toEqual([]);
    expect((await raw.describeTags(new AbortController().signal, [foreign.arn])).get(foreign.arn)).toEqual({ team: 'other' });
  });

  it('a crash after creating the NLB and before its listeners: the next ensure finishes with exactly one NLB', async () => {
    const crashing = newProvider(recording);
    recording.faults = (op) => {
      if (op === 'createTargetGroup') throw Object.assign(new Error('process killed'), { name: 'Killed' });
    };
    const service = awsSvc('crash');
    await expect(crashing.ensure(testContext(), service, backends(nodes(2)))).rejects.toThrow(/process killed/);
    expect((await state('default/crash')).map((s) => s.listeners)).toEqual([[]]);
    recording.faults = undefined;
    const restarted = newProvider(recording);
    await restarted.ensure(testContext(), service, backends(nodes(2)));
    const after = await state('default/crash');
    expect(after).toHaveLength(1);
    expect(after[0]?.listeners).toEqual(['80/TCP']);
  });

  it('annotations reach AWS: subnets by name, attributes, target-group attributes, health check, tags, ip targets', async () => {
    const provider = newProvider(recording);
    const service = awsSvc(
      'annotated',
      annotate('scheme', 'internet-facing'),
      annotate('subnets', 'public-us-east-1a, public-us-east-1b'),
      annotate('nlb-target-type', 'ip'),
      annotate('attributes', 'load_balancing.cross_zone.enabled=true'),
      annotate('proxy-protocol', '*'),
      annotate('target-group-attributes', 'deregistration_delay.timeout_seconds=30'),
      annotate('healthcheck-protocol', 'HTTP'),
      annotate('healthcheck-path', '/ready'),
      annotate('additional-resource-tags', 'team=web'),
    );
    const slices = [slice('annotated', 'http', 8080, ['10.0.0.10'], ['10.0.0.11'], ['10.0.0.12', false])];
    await provider.ensure(testContext(), service, backends(nodes(1), slices));
    const raw = motoApi(moto.server);
    const signal = new AbortController().signal;
    const [only] = await state('default/annotated');
    if (!only) throw new Error('no NLB');
    expect([...only.lb.subnetIds].sort()).toEqual([...network.publicSubnets].sort());
    expect(only.targets).toEqual({ 8080: ['10.0.0.10', '10.0.0.11'] });
    expect((await raw.describeLoadBalancerAttributes(signal, only.lb.arn))['load_balancing.cross_zone.enabled']).toBe('true');
    const [tg] = (await raw.describeTargetGroups(signal, { loadBalancerArn: only.lb.arn })).items;
    if (!tg) throw new Error('no target group');
    expect(tg.healthCheck).toMatchObject({ protocol: 'HTTP', path: '/ready' });
    expect(await raw.describeTargetGroupAttributes(signal, tg.arn)).toMatchObject({ 'proxy_protocol_v2.enabled': 'true', 'deregistration_delay.timeout_seconds': '30' });
    const tags = await describeTags(raw, signal, [only.lb.arn, tg.arn]);
    expect(tags.get(only.lb.arn)?.team).toBe('web');
    expect(tags.get(tg.arn)?.team).toBe('web');
    // Changing one annotation modifies in place: same NLB, one write plus the new hash.
    recording.reset();
    await provider.ensure(testContext(), awsSvc('annotated', ...[annotate('scheme', 'internet-facing'), annotate('subnets', 'public-us-east-1a, public-us-east-1b'), annotate('nlb-target-type', 'ip'), annotate('attributes', 'load_balancing.cross_zone.enabled=true'), annotate('proxy-protocol', '*'), annotate('target-group-attributes', 'deregistration_delay.timeout_seconds=30'), annotate('healthcheck-protocol', 'HTTP'), annotate('healthcheck-path', '/healthy'), annotate('additional-resource-tags', 'team=web')]), backends(nodes(1), slices));
    expect(recording.calls.filter((op) => MUTATING_OPERATIONS.has(op))).toEqual(['modifyTargetGroup', 'addTags']);
    expect((await state('default/annotated'))[0]?.lb.arn).toBe(only.lb.arn);
    // Dropping the additional tag removes it from the NLB and the target group (ownership tags stay).
    await provider.ensure(testContext(), awsSvc('annotated', ...[annotate('scheme', 'internet-facing'), annotate('subnets', 'public-us-east-1a, public-us-east-1b'), annotate('nlb-target-type', 'ip'), annotate('attributes', 'load_balancing.cross_zone.enabled=true'), annotate('proxy-protocol', '*'), annotate('target-group-attributes', 'deregistration_delay.timeout_seconds=30'), annotate('healthcheck-protocol', 'HTTP'), annotate('healthcheck-path', '/healthy')]), backends(nodes(1), slices));
    const after = await describeTags(raw, signal, [only.lb.arn, tg.arn]);
    expect(after.get(only.lb.arn)?.team).toBeUndefined();
    expect(after.get(tg.arn)?.team).toBeUndefined();
    expect(after.get(only.lb.arn)?.[TAG_SERVICE]).toBe('default/annotated');
  });

  it('two clusters in one account never see each other\'s balancers', async () => {
    const ours = newProvider(recording);
    const theirs = newProvider(recording, 'other-cluster');
    const service = awsSvc('shared-name');
    await ours.ensure(testContext(), service, backends(nodes(1)));
    expect((await theirs.get(testContext(), service)).exists).toBe(false);
    await theirs.ensureDeleted(testContext(), service);
    expect(await state('default/shared-name')).toHaveLength(1);
  });

  it('garbage collection deletes what belongs to Services that are gone; dry run only reports', async () => {
    // A cluster of its own: the other tests' Services are not this sweep's business.
    const provider = newProvider(recording, 'gc-cluster');
    // Discovery skips subnets tagged for another cluster (the network is tagged for CLUSTER): list them.
    const subnets = annotate('subnets', network.internalSubnets.join(','));
    await provider.ensure(testContext(), awsSvc('keep', subnets), backends(nodes(1)));
    await provider.ensure(testContext(), awsSvc('orphan', subnets), backends(nodes(1)));
    const live = new Set(['default/keep']);
    const dry = await provider.sweep(new AbortController().signal, live, { dryRun: true, logger: createLogger('silent') });
    expect(dry.loadBalancers).toHaveLength(1);
    expect(await state('default/orphan', 'gc-cluster')).toHaveLength(1);
    await provider.sweep(new AbortController().signal, live, { dryRun: false, logger: createLogger('silent') });
    expect(await state('default/orphan', 'gc-cluster')).toEqual([]);
    expect(await state('default/keep', 'gc-cluster')).toHaveLength(1);
  });
});
