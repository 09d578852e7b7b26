/**
 * The narrow interface over the AWS calls the provider makes: one method per API operation,
 * one page per call, plain shapes of our own. sdk.ts implements it with the real SDK; guard.ts
 * wraps it with rate limits, retries and the call counter; tests wrap it to inject faults.
 */

export type Tags = Readonly<Record<string, string>>;

export type Scheme = 'internet-facing' | 'internal';
export type IpAddressType = 'ipv4' | 'dualstack';
export type TargetType = 'instance' | 'ip';
export type ListenerProtocol = 'TCP' | 'UDP' | 'TCP_UDP';
export type HealthCheckProtocol = 'TCP' | 'HTTP' | 'HTTPS';

export interface LoadBalancer {
  arn: string;
  name: string;
  dnsName: string;
  scheme: Scheme;
  type: string;
  vpcId: string;
  ipAddressType: string;
  subnetIds: readonly string[];
  /** Empty for an NLB created without security groups (AWS cannot add any later). */
  securityGroupIds: readonly string[];
  state: string;
}

export interface HealthCheck {
  protocol: HealthCheckProtocol;
  /** A number, or `traffic-port`. */
  port: string;
  path?: string | undefined;
  intervalSeconds: number;
  timeoutSeconds: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  /** HTTP(S) only, e.g. `200-399`. */
  matcher?: string | undefined;
}

export interface TargetGroup {
  arn: string;
  name: string;
  protocol: string;
  port: number;
  vpcId: string;
  targetType: string;
  healthCheck: HealthCheck;
  loadBalancerArns: readonly string[];
}

export interface Listener {
  arn: string;
  loadBalancerArn: string;
  port: number;
  protocol: string;
  /** The target group of the default forward action. */
  targetGroupArn: string | undefined;
}

export interface Target {
  id: string;
  port: number;
}

export interface TargetHealth extends Target {
  /** initial, healthy, unhealthy, unused, draining, unavailable or unhealthy.draining. */
  state: string;
}

export interface Subnet {
  id: string;
  vpcId: string;
  zone: string;
  tags: Tags;
}

/**
 * One ingress permission with one source, as EC2 reports and takes them. `protocol` is EC2's
 * (`tcp`, `udp`, `-1`, `icmp`…); ports are -1 when the protocol has none.
 */
export interface IngressRule {
  protocol: string;
  fromPort: number;
  toPort: number;
  /** A CIDR (IPv4 or IPv6), a security group ID or a prefix list ID. */
  source: { kind: 'cidr' | 'group' | 'prefix-list'; value: string };
}

export interface SecurityGroup {
  id: string;
  name: string;
  vpcId: string;
  tags: Tags;
  ingress: readonly IngressRule[];
}

export interface Vpc {
  id: string;
  /** Associated IPv4 CIDR blocks, the primary one first. */
  cidrs: readonly string[];
  ipv6Cidrs: readonly string[];
}

export interface Page<T> {
  items: T[];
  /** Present when there is another page. */
  next?: string | undefined;
}

export interface CreateLoadBalancerInput {
  name: string;
  scheme: Scheme;
  ipAddressType: IpAddressType;
  subnetIds: readonly string[];
  /** Attached at creation: an NLB created without any can never get one. */
  securityGroupIds: readonly string[];
  tags: Tags;
}

export interface CreateSecurityGroupInput {
  name: string;
  description: string;
  vpcId: string;
  tags: Tags;
}

export interface CreateTargetGroupInput {
  name: string;
  protocol: ListenerProtocol;
  port: number;
  vpcId: string;
  targetType: TargetType;
  ipAddressType?: 'ipv4' | 'ipv6' | undefined;
  healthCheck: HealthCheck;
  tags: Tags;
}

export interface CreateListenerInput {
  loadBalancerArn: string;
  port: number;
  protocol: ListenerProtocol;
  targetGroupArn: string;
  tags: Tags;
}

export interface SubnetQuery {
  ids?: readonly string[];
  /** EC2 filters, e.g. `tag-key` or `tag:Name`. */
  filters?: readonly { name: string; values: readonly string[] }[];
  next?: string | undefined;
}

/** Every call takes the caller's AbortSignal first. */
export interface AwsApi {
  describeLoadBalancers(signal: AbortSignal, query: { names?: readonly string[]; arns?: readonly string[]; marker?: string | undefined; pageSize?: number }): Promise<Page<LoadBalancer>>;
  /** At most 20 ARNs per call (the API's limit). */
  describeTags(signal: AbortSignal, arns: readonly string[]): Promise<Map<string, Tags>>;
  describeLoadBalancerAttributes(signal: AbortSignal, arn: string): Promise<Record<string, string>>;
  describeListeners(signal: AbortSignal, loadBalancerArn: string, marker?: string): Promise<Page<Listener>>;
  describeTargetGroups(signal: AbortSignal, query: { loadBalancerArn?: string; names?: readonly string[]; marker?: string | undefined; pageSize?: number }): Promise<Page<TargetGroup>>;
  describeTargetGroupAttributes(signal: AbortSignal, arn: string): Promise<Record<string, string>>;
  describeTargetHealth(signal: AbortSignal, targetGroupArn: string): Promise<TargetHealth[]>;
  createLoadBalancer(signal: AbortSignal, input: CreateLoadBalancerInput): Promise<LoadBalancer>;
  deleteLoadBalancer(signal: AbortSignal, arn: string): Promise<void>;
  modifyLoadBalancerAttributes(signal: AbortSignal, arn: string, attributes: Readonly<Record<string, string>>): Promise<void>;
  setSubnets(signal: AbortSignal, arn: string, subnetIds: readonly string[]): Promise<void>;
  setIpAddressType(signal: AbortSignal, arn: string, type: IpAddressType): Promise<void>;
  /** Only for an NLB created with security groups (AWS refuses the others). */
  setSecurityGroups(signal: AbortSignal, arn: string, groupIds: readonly string[]): Promise<void>;
  createTargetGroup(signal: AbortSignal, input: CreateTargetGroupInput): Promise<TargetGroup>;
  modifyTargetGroup(signal: AbortSignal, arn: string, healthCheck: HealthCheck): Promise<void>;
  modifyTargetGroupAttributes(signal: AbortSignal, arn: string, attributes: Readonly<Record<string, string>>): Promise<void>;
  deleteTargetGroup(signal: AbortSignal, arn: string): Promise<void>;
  createListener(signal: AbortSignal, input: CreateListenerInput): Promise<Listener>;
  modifyListener(signal: AbortSignal, arn: string, input: { protocol: ListenerProtocol; targetGroupArn: string }): Promise<void>;
  deleteListener(signal: AbortSignal, arn: string): Promise<void>;
  /** At most 200 targets per call (kept below the API's limits). */
  registerTargets(signal: AbortSignal, targetGroupArn: string, targets: readonly Target[]): Promise<void>;
  deregisterTargets(signal: AbortSignal, targetGroupArn: string, targets: readonly Target[]): Promise<void>;
  addTags(signal: AbortSignal, arns: readonly string[], tags: Tags): Promise<void>;
  removeTags(signal: AbortSignal, arns: readonly string[], keys: readonly string[]): Promise<void>;
  describeSubnets(signal: AbortSignal, query: SubnetQuery): Promise<Page<Subnet>>;
  describeVpcs(signal: AbortSignal, ids: readonly string[]): Promise<Vpc[]>;
  /** By IDs, or by filters (`vpc-id`, `group-name`, `tag:<key>`), paged. */
  describeSecurityGroups(signal: AbortSignal, query: SubnetQuery): Promise<Page<SecurityGroup>>;
  /** Tagged in the same call (TagSpecifications); returns the group ID. */
  createSecurityGroup(signal: AbortSignal, input: CreateSecurityGroupInput): Promise<string>;
  deleteSecurityGroup(signal: AbortSignal, id: string): Promise<void>;
  authorizeSecurityGroupIngress(signal: AbortSignal, groupId: string, rules: readonly IngressRule[]): Promise<void>;
  revokeSecurityGroupIngress(signal: AbortSignal, groupId: string, rules: readonly IngressRule[]): Promise<void>;
}

export type Operation = keyof AwsApi;

/** Which calls change something (the benchmark and the steady-state tests count these). */
export const MUTATING_OPERATIONS: ReadonlySet<Operation> = new Set<Operation>([
  'createLoadBalancer',
  'deleteLoadBalancer',
  'modifyLoadBalancerAttributes',
  'setSubnets',
  'setIpAddressType',
  'setSecurityGroups',
  'createTargetGroup',
  'modifyTargetGroup',
  'modifyTargetGroupAttributes',
  'deleteTargetGroup',
  'createListener',
  'modifyListener',
  'deleteListener',
  'registerTargets',
  'deregisterTargets',
  'addTags',
  'removeTags',
  'createSecurityGroup',
  'deleteSecurityGroup',
  'authorizeSecurityGroupIngress',
  'revokeSecurityGroupIngress',
]);

const EC2_OPERATIONS: ReadonlySet<Operation> = new Set<Operation>([
  'describeSubnets',
  'describeVpcs',
  'describeSecurityGroups',
  'createSecurityGroup',
  'deleteSecurityGroup',
  'authorizeSecurityGroupIngress',
  'revokeSecurityGroupIngress',
]);

/** Token-bucket families: AWS throttles describes, writes and target registration separately. */
export type CallFamily = 'elb-describe' | 'elb-write' | 'elb-targets' | 'ec2-describe' | 'ec2-write';

export function callFamily(operation: Operation): CallFamily {
  if (EC2_OPERATIONS.has(operation)) return MUTATING_OPERATIONS.has(operation) ? 'ec2-write' : 'ec2-describe';
  if (operation === 'registerTargets' || operation === 'deregisterTargets') return 'elb-targets';
  return MUTATING_OPERATIONS.has(operation) ? 'elb-write' : 'elb-describe';
}
