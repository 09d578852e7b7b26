/**
 * The AWS half of `npm run demo -- --provider=aws`: moto on loopback with a VPC, tagged subnets
 * and two instances, and two Nodes whose providerID points at them, so the seed's LoadBalancer
 * Service gets a real (emulated) NLB with instance targets.
 */
import { CreateSubnetCommand, CreateTagsCommand, CreateVpcCommand, EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import type { KubeClient } from '../src/kube/rest.js';
import { startMoto } from './moto.js';

const REGION = 'us-east-1';
const CLUSTER = 'portico-demo';

export interface AwsDemo {
  /** Controller flags for the AWS provider against this moto. */
  flags: string[];
  /** How to look at what was created. */
  hints: string[];
  stop(): Promise<void>;
}

export async function startAwsDemo(client: KubeClient, say: (line: string) => void): Promise<AwsDemo> {
  const moto = await startMoto();
  say(`[demo] moto (AWS emulator) on ${moto.endpoint}`);
  // moto checks no credentials; these keep the SDK's default chain away from real ones.
  process.env.AWS_ACCESS_KEY_ID = 'demo';
  process.env.AWS_SECRET_ACCESS_KEY = 'demo';
  delete process.env.AWS_SESSION_TOKEN;
  delete process.env.AWS_PROFILE;
  const ec2 = new EC2Client({ region: REGION, endpoint: moto.endpoint });
  try {
    const vpc = (await ec2.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }))).Vpc?.VpcId ?? '';
    const subnets: string[] = [];
    for (const [i, zone] of ['us-east-1a', 'us-east-1b'].entries()) {
      const id = (await ec2.send(new CreateSubnetCommand({ VpcId: vpc, CidrBlock: `10.0.${i}.0/24`, AvailabilityZone: zone }))).Subnet?.SubnetId ?? '';
      await ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'kubernetes.io/role/internal-elb', Value: '1' }, { Key: `kubernetes.io/cluster/${CLUSTER}`, Value: 'shared' }] }));
      subnets.push(id);
    }
    const instances = (await ec2.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: 2, MaxCount: 2, SubnetId: subnets[0] }))).Instances ?? [];
    for (const [i, instance] of instances.entries()) {
      const providerID = `aws:///${instance.Placement?.AvailabilityZone ?? ''}/${instance.InstanceId ?? ''}`;
      await client.request('POST', '/api/v1/nodes', { body: { metadata: { name: `demo-node-${String(i)}` }, spec: { providerID } } });
      say(`[demo] Node demo-node-${String(i)}: ${providerID}`);
    }
    say(`[demo] VPC ${vpc}, subnets ${subnets.join(', ')} tagged kubernetes.io/role/internal-elb`);
  } catch (error) {
    await moto.stop();
    throw error;
  } finally {
    ec2.destroy();
  }
  return {
    flags: ['--providers=portico.dev/aws-nlb', '--default-class=portico.dev/aws-nlb', `--aws-cluster-name=${CLUSTER}`, `--aws-region=${REGION}`, `--aws-endpoint=${moto.endpoint}`],
    hints: [
      `  AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo aws --endpoint-url ${moto.endpoint} --region ${REGION} elbv2 describe-load-balancers`,
      `  ... elbv2 describe-listeners --load-balancer-arn <arn>; elbv2 describe-target-health --target-group-arn <arn>`,
      `  moto's dashboard: ${moto.endpoint}/moto-api/`,
    ],
    stop: () => moto.stop(),
  };
}
