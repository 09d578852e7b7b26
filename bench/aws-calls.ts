/**
 * `npm run bench -- aws-calls [--services=50] [--real-limits]`: provisions N Services on moto
 * through the AWS provider, then re-ensures all of them with nothing changed, and counts AWS API
 * calls by operation (every call goes through the same guard as in production).
 *
 * Phases: create (a fresh provider); resync (a new provider, as after the inventory expired or a
 * restart: the shared NLB listing plus the spec-hash tags); deep verify (every NLB inspected in
 * full: listeners, target groups, targets, attributes).
 *
 * Writes bench/results/aws-calls.json: services, createCallsPerService, resyncMutatingCalls,
 * resyncDescribeCalls, deepVerifyDescribeCallsPerService, plus per-operation counts.
 * By default the client-side token buckets are raised (moto needs no pacing; the calls counted are
 * the same); --real-limits keeps the production ones.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { V1Node, V1Service } from '@kubernetes/client-node';
import { CreateSubnetCommand, CreateTagsCommand, CreateVpcCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { startMoto } from '../hack/moto.js';
import { systemClock } from '../src/kube/clock.js';
import { createLogger } from '../src/kube/logger.js';
import { MUTATING_OPERATIONS, type Operation } from '../src/providers/aws/api.js';
import { guardApi } from '../src/providers/aws/guard.js';
import { AwsNlbProvider } from '../src/providers/aws/provider.js';
import { sdkApi } from '../src/providers/aws/sdk.js';
import type { ProviderContext } from '../src/providers/provider.js';
import { forEachLimit, machine, round, table, UsageError } from './support/util.js';

export const description = 'N Services on moto through the AWS provider: API calls to create, to re-ensure unchanged (must be 0 writes), and to deep-verify';

const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'bench', secretAccessKey: 'bench' };
const CLUSTER = 'bench';
const FAST = { 'elb-describe': { ratePerSecond: 1e4, burst: 1e4 }, 'elb-write': { ratePerSecond: 1e4, burst: 1e4 }, 'elb-targets': { ratePerSecond: 1e4, burst: 1e4 }, 'ec2-describe': { ratePerSecond: 1e4, burst: 1e4 }, 'ec2-write': { ratePerSecond: 1e4, burst: 1e4 } };

type Counts = Map<Operation, number>;
const sum = (c: Counts, filter: (op: Operation) => boolean = () => true): number => [...c].filter(([op]) => filter(op)).reduce((n, [, v]) => n + v, 0);
const isDescribe = (op: Operation): boolean => !MUTATING_OPERATIONS.has(op);

export async function run(args: string[]): Promise<void> {
  let values;
  try {
    values = parseArgs({ args, options: { services: { type: 'string', default: '50' }, 'real-limits': { type: 'boolean', default: false } }, strict: true }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const services = Number(values.services);
  if (!Number.isInteger(services) || services < 1) throw new UsageError('--services must be a positive integer');

  const moto = await startMoto();
  try {
    const ec2 = new EC2Client({ region: REGION, endpoint: moto.endpoint, credentials: CREDENTIALS });
    const vpc = (await ec2.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }))).Vpc?.VpcId ?? '';
    for (const [i, zone] of ['us-east-1a', 'us-east-1b'].entries()) {
      const id = (await ec2.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: `10.0.${i}.0/24`, AvailabilityZone: zone }))).Subnet?.SubnetId ?? '';
      await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'kubernetes.io/role/internal-elb', Value: '1' }] }));
    }
    const firstSubnet = (await ec2.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: '10.0.9.0/24', AvailabilityZone: 'us-east-1a' }))).Subnet?.SubnetId ?? '';
    const instances = (await ec2.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: 3, MaxCount: 3, SubnetId: firstSubnet }))).Instances ?? [];
    ec2.destroy();
    const nodes: V1Node[] = instances.map((i, n) => ({ metadata: { name: `node-${n}` }, spec: { providerID: `aws:///${i.Placement?.AvailabilityZone ?? ''}/${i.InstanceId ?? ''}` } }));
    const svcs: V1Service[] = Array.from({ length: services }, (_, i) => ({
      metadata: { name: `svc-${i}`, namespace: 'bench', uid: `uid-${i}` },
      spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/aws-nlb', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30000 + i }] },
    }));

    const raw = sdkApi({ region: REGION, endpoint: moto.endpoint, credentials: CREDENTIALS });
    let counts: Counts = new Map();
    const api = guardApi(raw, { clock: systemClock, ...(values['real-limits'] ? {} : { limits: FAST }), onCall: (op) => counts.set(op, (counts.get(op) ?? 0) + 1) });
    const logger = createLogger('silent');
    // One context per ensure, as the controller gives each reconcile its own signal.
    const ctx = (): ProviderContext => ({ signal: new AbortController().signal, logger, events: { record: () => undefined } });
    const backends = { nodes, endpointSlices: [] };
    const phase = async (provider: AwsNlbProvider): Promise<{ counts: Counts; seconds: number }> => {
      counts = new Map();
      const started = performance.now();
      await forEachLimit(svcs, 8, async (s) => {
        await provider.ensure(ctx(), s, backends);
      });
      return { counts, seconds: (performance.now() - started) / 1000 };
    };
    const provider = (deepVerifyIntervalMs?: number): AwsNlbProvider => new AwsNlbProvider({ api, clusterName: CLUSTER, clock: systemClock, logger, ...(deepVerifyIntervalMs === undefined ? {} : { deepVerifyIntervalMs }) });

    process.stderr.write(`[aws-calls] creating ${services} NLBs on moto ...\n`);
    const create = await phase(provider());
    process.stderr.write('[aws-calls] re-ensuring all of them, nothing changed ...\n');
    const resync = await phase(provider());
    process.stderr.write('[aws-calls] deep verify of all of them ...\n');
    const deepProvider = provider(0);
    // The first sight of each NLB trusts its hash; with the interval at 0 the next ensure verifies in full.
    await phase(deepProvider);
    const deep = await phase(deepProvider);
    // The inventory is still warm from the first-sight pass; if it was refreshed, take its cost (as in resync) out.
    const deepInventory = (deep.counts.get('describeLoadBalancers') ?? 0) > 0 ? sum(resync.counts, isDescribe) : 0;

    const result = {
      services,
      createCallsPerService: round(sum(create.counts) / services, 2),
      resyncMutatingCalls: sum(resync.counts, (op) => MUTATING_OPERATIONS.has(op)),
      resyncDescribeCalls: sum(resync.counts, isDescribe),
      resyncDescribeTarget: 3 * Math.ceil(services / 20) + 5,
      deepVerifyDescribeCallsPerService: round((sum(deep.counts, isDescribe) - deepInventory) / services, 2),
      deepVerifyMutatingCalls: sum(deep.counts, (op) => MUTATING_OPERATIONS.has(op)),
      byOperation: {
        create: Object.fromEntries([...create.counts].sort()),
        resync: Object.fromEntries([...resync.counts].sort()),
        deepVerify: Object.fromEntries([...deep.counts].sort()),
      },
      seconds: { create: round(create.seconds, 2), resync: round(resync.seconds, 2), deepVerify: round(deep.seconds, 2) },
      limits: values['real-limits'] ? 'production' : 'raised (moto)',
      notes: 'moto ignores PageSize: the NLB listing is one page here; AWS pages at 400 (one more DescribeLoadBalancers per 400 NLBs).',
      machine: machine(),
      at: new Date().toISOString(),
    };
    await mkdir(new URL('./results/', import.meta.url), { recursive: true });
    await writeFile(new URL('./results/aws-calls.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`);
    const rows = [
      ['phase', 'calls', 'mutating', 'describe', 'seconds'],
      ['create', String(sum(create.counts)), String(sum(create.counts, (op) => MUTATING_OPERATIONS.has(op))), String(sum(create.counts, isDescribe)), String(round(create.seconds, 2))],
      ['resync', String(sum(resync.counts)), String(result.resyncMutatingCalls), String(result.resyncDescribeCalls), String(round(resync.seconds, 2))],
      ['deep verify', String(sum(deep.counts)), String(result.deepVerifyMutatingCalls), String(sum(deep.counts, isDescribe)), String(round(deep.seconds, 2))],
    ];
    process.stdout.write(`\naws-calls (${services} Services)\n${table(rows)}\n`);
    process.stdout.write(`createCallsPerService ${result.createCallsPerService}; resyncDescribeCalls ${result.resyncDescribeCalls} (target <= ${result.resyncDescribeTarget}); deepVerifyDescribeCallsPerService ${result.deepVerifyDescribeCallsPerService}\n`);
  } finally {
    await moto.stop();
  }
}
