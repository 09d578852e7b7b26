/** Per-suite moto server plus the AWS setup every test needs (a VPC, subnets, instances). */
import { CreateSubnetCommand, CreateTagsCommand, CreateVpcCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll } from 'vitest';
import { startMoto, type MotoServer } from '../../../hack/moto.js';
import type { AwsApi, Operation } from '../../../src/providers/aws/api.js';
import { sdkApi } from '../../../src/providers/aws/sdk.js';

export const REGION = 'us-east-1';
export const TEST_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' };

export function useMoto(): { readonly server: MotoServer } {
  const state = {} as { server: MotoServer };
  beforeAll(async () => {
    state.server = await startMoto();
  });
  afterAll(async () => {
    await state.server.stop();
  });
  return state;
}

export function motoApi(server: MotoServer): AwsApi {
  return sdkApi({ region: REGION, endpoint: server.endpoint, credentials: TEST_CREDENTIALS });
}

export interface Network {
  vpcId: string;
  /** One public (kubernetes.io/role/elb) and one internal subnet per zone, us-east-1a and -1b. */
  publicSubnets: string[];
  internalSubnets: string[];
}

export async function createNetwork(server: MotoServer, clusterName: string): Promise<Network> {
  const ec2 = new EC2Client({ region: REGION, endpoint: server.endpoint, credentials: TEST_CREDENTIALS });
  const vpc = await ec2.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }));
  const vpcId = vpc.Vpc?.VpcId ?? '';
  const publicSubnets: string[] = [];
  const internalSubnets: string[] = [];
  let n = 0;
  for (const zone of ['us-east-1a', 'us-east-1b']) {
    for (const role of ['kubernetes.io/role/elb', 'kubernetes.io/role/internal-elb']) {
      const subnet = await ec2.send(new CreateSubnetCommand({ VpcId: vpcId, CidrBlock: `10.0.${n++}.0/24`, AvailabilityZone: zone }));
      const id = subnet.Subnet?.SubnetId ?? '';
      await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: role, Value: '1' }, { Key: `kubernetes.io/cluster/${clusterName}`, Value: 'shared' }, { Key: 'Name', Value: `${role.endsWith('elb') && !role.includes('internal') ? 'public' : 'private'}-${zone}` }] }));
      (role === 'kubernetes.io/role/elb' ? publicSubnets : internalSubnets).push(id);
    }
  }
  ec2.destroy();
  return { vpcId, publicSubnets, internalSubnets };
}

export async function runInstances(server: MotoServer, subnetId: string, count: number): Promise<{ id: string; zone: string }[]> {
  const ec2 = new EC2Client({ region: REGION, endpoint: server.endpoint, credentials: TEST_CREDENTIALS });
  const out = await ec2.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: count, MaxCount: count, SubnetId: subnetId, InstanceType: 't3.micro' }));
  ec2.destroy();
  return (out.Instances ?? []).map((i) => ({ id: i.InstanceId ?? '', zone: i.Placement?.AvailabilityZone ?? '' }));
}

/** Counts calls by operation; `faults` may throw instead of calling through (SDK-level fault injection). */
export class RecordingApi {
  readonly calls: Operation[] = [];
  faults: ((operation: Operation, args: unknown[]) => void) | undefined;
  readonly api: AwsApi;

  constructor(inner: AwsApi) {
    const wrapped: Record<string, unknown> = {};
    for (const operation of Object.keys(inner) as Operation[]) {
      const fn = Reflect.get(inner, operation) as (...args: unknown[]) => Promise<unknown>;
      wrapped[operation] = async (...args: unknown[]) => {
        this.calls.push(operation);
        this.faults?.(operation, args.slice(1));
        return fn.apply(inner, args);
      };
    }
    this.api = wrapped as unknown as AwsApi;
  }

  count(filter: (op: Operation) => boolean = () => true): number {
    return this.calls.filter(filter).length;
  }

  reset(): void {
    this.calls.length = 0;
  }
}
