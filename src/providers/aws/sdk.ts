/**
 * AwsApi on the real AWS SDK v3. Credentials come from the SDK's default chain (environment,
 * web identity / IRSA, shared profile, container and instance metadata); the SDK's own retries
 * are off (guard.ts retries, so every attempt is rate-limited and counted).
 */
import {
  AddTagsCommand,
  CreateListenerCommand,
  CreateLoadBalancerCommand,
  CreateTargetGroupCommand,
  DeleteListenerCommand,
  DeleteLoadBalancerCommand,
  DeleteTargetGroupCommand,
  DeregisterTargetsCommand,
  DescribeListenersCommand,
  DescribeLoadBalancerAttributesCommand,
  DescribeLoadBalancersCommand,
  DescribeTagsCommand,
  DescribeTargetGroupAttributesCommand,
  DescribeTargetGroupsCommand,
  DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client,
  ModifyListenerCommand,
  ModifyLoadBalancerAttributesCommand,
  ModifyTargetGroupAttributesCommand,
  ModifyTargetGroupCommand,
  RegisterTargetsCommand,
  RemoveTagsCommand,
  SetIpAddressTypeCommand,
  SetSecurityGroupsCommand,
  SetSubnetsCommand,
  type Listener as SdkListener,
  type LoadBalancer as SdkLoadBalancer,
  type TargetGroup as SdkTargetGroup,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DeleteSecurityGroupCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
  RevokeSecurityGroupIngressCommand,
  type IpPermission,
  type SecurityGroup as SdkSecurityGroup,
} from '@aws-sdk/client-ec2';
import type { AwsApi, HealthCheck, HealthCheckProtocol, IngressRule, Listener, LoadBalancer, SecurityGroup, SubnetQuery, TargetGroup, Tags } from './api.js';

export interface SdkOptions {
  /** Unset: AWS_REGION / AWS_DEFAULT_REGION, else the instance metadata service. */
  region?: string | undefined;
  /** Endpoint override for both services (tests: moto). */
  endpoint?: string | undefined;
  /** Tests and the benchmark only; production uses the default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
}

export function sdkApi(options: SdkOptions): AwsApi {
  const config = {
    region: options.region ?? regionFromEnvironmentOrImds,
    maxAttempts: 1,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
  };
  const elb = new ElasticLoadBalancingV2Client(config);
  const ec2 = new EC2Client(config);
  const tagList = (tags: Tags): { Key: string; Value: string }[] => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
  const attributeList = (attributes: Readonly<Record<string, string>>): { Key: string; Value: string }[] => Object.entries(attributes).map(([Key, Value]) => ({ Key, Value }));
  const attributeMap = (list: readonly { Key?: string | undefined; Value?: string | undefined }[] | undefined): Record<string, string> =>
    Object.fromEntries((list ?? []).filter((a) => a.Key !== undefined).map((a) => [a.Key ?? '', a.Value ?? '']));
  const hc = (h: HealthCheck) => ({
    HealthCheckProtocol: h.protocol,
    HealthCheckPort: h.port,
    HealthCheckPath: h.protocol === 'TCP' ? undefined : h.path,
    HealthCheckIntervalSeconds: h.intervalSeconds,
    HealthCheckTimeoutSeconds: h.timeoutSeconds,
    HealthyThresholdCount: h.healthyThreshold,
    UnhealthyThresholdCount: h.unhealthyThreshold,
    ...(h.protocol === 'TCP' || h.matcher === undefined ? {} : { Matcher: { HttpCode: h.matcher } }),
  });

  return {
    async describeLoadBalancers(signal, query) {
      const out = await elb.send(
        new DescribeLoadBalancersCommand({ Names: query.names?.slice(), LoadBalancerArns: query.arns?.slice(), Marker: query.marker, PageSize: query.pageSize }),
        { abortSignal: signal },
      );
      return { items: (out.LoadBalancers ?? []).map(toLoadBalancer), next: out.NextMarker };
    },
    async describeTags(signal, arns) {
      const out = await elb.send(new DescribeTagsCommand({ ResourceArns: arns.slice() }), { abortSignal: signal });
      const result = new Map<string, Tags>();
      for (const d of out.TagDescriptions ?? []) {
        if (d.ResourceArn !== undefined) result.set(d.ResourceArn, Object.fromEntries((d.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])));
      }
      return result;
    },
    async describeLoadBalancerAttributes(signal, arn) {
      const out = await elb.send(new DescribeLoadBalancerAttributesCommand({ LoadBalancerArn: arn }), { abortSignal: signal });
      return attributeMap(out.Attributes);
    },
    async describeListeners(signal, loadBalancerArn, marker) {
      const out = await elb.send(new DescribeListenersCommand({ LoadBalancerArn: loadBalancerArn, Marker: marker }), { abortSignal: signal });
      return { items: (out.Listeners ?? []).map(toListener), next: out.NextMarker };
    },
    async describeTargetGroups(signal, query) {
      const out = await elb.send(
        new DescribeTargetGroupsCommand({ LoadBalancerArn: query.loadBalancerArn, Names: query.names?.slice(), Marker: query.marker, PageSize: query.pageSize }),
        { abortSignal: signal },
      );
      return { items: (out.TargetGroups ?? []).map(toTargetGroup), next: out.NextMarker };
    },
    async describeTargetGroupAttributes(signal, arn) {
      const out = await elb.send(new DescribeTargetGroupAttributesCommand({ TargetGroupArn: arn }), { abortSignal: signal });
      return attributeMap(out.Attributes);
    },
    async describeTargetHealth(signal, targetGroupArn) {
      const out = await elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: targetGroupArn }), { abortSignal: signal });
      return (out.TargetHealthDescriptions ?? []).map((d) => ({ id: d.Target?.Id ?? '', port: d.Target?.Port ?? 0, state: d.TargetHealth?.State ?? 'unknown' }));
    },
    async createLoadBalancer(signal, input) {
      const out = await elb.send(
        new CreateLoadBalancerCommand({
          Name: input.name,
          Type: 'network',
          Scheme: input.scheme,
          IpAddressType: input.ipAddressType,
          Subnets: input.subnetIds.slice(),
          ...(input.securityGroupIds.length > 0 ? { SecurityGroups: input.securityGroupIds.slice() } : {}),
          Tags: tagList(input.tags),
        }),
        { abortSignal: signal },
      );
      const lb = out.LoadBalancers?.[0];
      if (lb === undefined) throw new Error('CreateLoadBalancer returned no load balancer');
      return toLoadBalancer(lb);
    },
    async deleteLoadBalancer(signal, arn) {
      await elb.send(new DeleteLoadBalancerCommand({ LoadBalancerArn: arn }), { abortSignal: signal });
    },
    async modifyLoadBalancerAttributes(signal, arn, attributes) {
      await elb.send(new ModifyLoadBalancerAttributesCommand({ LoadBalancerArn: arn, Attributes: attributeList(attributes) }), { abortSignal: signal });
    },
    async setSubnets(signal, arn, subnetIds) {
      await elb.send(new SetSubnetsCommand({ LoadBalancerArn: arn, Subnets: subnetIds.slice() }), { abortSignal: signal });
    },
    async setIpAddressType(signal, arn, type) {
      await elb.send(new SetIpAddressTypeCommand({ LoadBalancerArn: arn, IpAddressType: type }), { abortSignal: signal });
    },
    async setSecurityGroups(signal, arn, groupIds) {
      await elb.send(new SetSecurityGroupsCommand({ LoadBalancerArn: arn, SecurityGroups: groupIds.slice() }), { abortSignal: signal });
    },
    async createTargetGroup(signal, input) {
      const out = await elb.send(
        new CreateTargetGroupCommand({
          Name: input.name,
          Protocol: input.protocol,
          Port: input.port,
          VpcId: input.vpcId,
          TargetType: input.targetType,
          IpAddressType: input.ipAddressType,
          ...hc(input.healthCheck),
          Tags: tagList(input.tags),
        }),
        { abortSignal: signal },
      );
      const tg = out.TargetGroups?.[0];
      if (tg === undefined) throw new Error('CreateTargetGroup returned no target group');
      return toTargetGroup(tg);
    },
    async modifyTargetGroup(signal, arn, healthCheck) {
      await elb.send(new ModifyTargetGroupCommand({ TargetGroupArn: arn, ...hc(healthCheck) }), { abortSignal: signal });
    },
    async modifyTargetGroupAttributes(signal, arn, attributes) {
      await elb.send(new ModifyTargetGroupAttributesCommand({ TargetGroupArn: arn, Attributes: attributeList(attributes) }), { abortSignal: signal });
    },
    async deleteTargetGroup(signal, arn) {
      await elb.send(new DeleteTargetGroupCommand({ TargetGroupArn: arn }), { abortSignal: signal });
    },
    async createListener(signal, input) {
      const out = await elb.send(
        new CreateListenerCommand({
          LoadBalancerArn: input.loadBalancerArn,
          Port: input.port,
          Protocol: input.protocol,
          DefaultActions: [{ Type: 'forward', TargetGroupArn: input.targetGroupArn }],
          Tags: tagList(input.tags),
        }),
        { abortSignal: signal },
      );
      const listener = out.Listeners?.[0];
      if (listener === undefined) throw new Error('CreateListener returned no listener');
      return toListener(listener);
    },
    async modifyListener(signal, arn, input) {
      await elb.send(
        new ModifyListenerCommand({ ListenerArn: arn, Protocol: input.protocol, DefaultActions: [{ Type: 'forward', TargetGroupArn: input.targetGroupArn }] }),
        { abortSignal: signal },
      );
    },
    async deleteListener(signal, arn) {
      await elb.send(new DeleteListenerCommand({ ListenerArn: arn }), { abortSignal: signal });
    },
    async registerTargets(signal, targetGroupArn, targets) {
      await elb.send(new RegisterTargetsCommand({ TargetGroupArn: targetGroupArn, Targets: targets.map((t) => ({ Id: t.id, Port: t.port })) }), { abortSignal: signal });
    },
    async deregisterTargets(signal, targetGroupArn, targets) {
      await elb.send(new DeregisterTargetsCommand({ TargetGroupArn: targetGroupArn, Targets: targets.map((t) => ({ Id: t.id, Port: t.port })) }), { abortSignal: signal });
    },
    async addTags(signal, arns, tags) {
      await elb.send(new AddTagsCommand({ ResourceArns: arns.slice(), Tags: tagList(tags) }), { abortSignal: signal });
    },
    async removeTags(signal, arns, keys) {
      await elb.send(new RemoveTagsCommand({ ResourceArns: arns.slice(), TagKeys: keys.slice() }), { abortSignal: signal });
    },
    async describeSubnets(signal, query) {
      const out = await ec2.send(new DescribeSubnetsCommand({ SubnetIds: query.ids?.slice(), ...ec2Query(query) }), { abortSignal: signal });
      return {
        items: (out.Subnets ?? []).map((s) => ({
          id: s.SubnetId ?? '',
          vpcId: s.VpcId ?? '',
          zone: s.AvailabilityZone ?? '',
          tags: Object.fromEntries((s.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
        })),
        next: out.NextToken,
      };
    },
    async describeVpcs(signal, ids) {
      const out = await ec2.send(new DescribeVpcsCommand({ VpcIds: ids.slice() }), { abortSignal: signal });
      return (out.Vpcs ?? []).map((v) => ({
        id: v.VpcId ?? '',
        cidrs: (v.CidrBlockAssociationSet ?? []).filter((a) => a.CidrBlockState?.State === 'associated' && a.CidrBlock !== undefined).map((a) => a.CidrBlock ?? ''),
        ipv6Cidrs: (v.Ipv6CidrBlockAssociationSet ?? []).filter((a) => a.Ipv6CidrBlockState?.State === 'associated' && a.Ipv6CidrBlock !== undefined).map((a) => a.Ipv6CidrBlock ?? ''),
      }));
    },
    async describeSecurityGroups(signal, query) {
      const out = await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: query.ids?.slice(), ...ec2Query(query) }), { abortSignal: signal });
      return { items: (out.SecurityGroups ?? []).map(toSecurityGroup), next: out.NextToken };
    },
    async createSecurityGroup(signal, input) {
      const out = await ec2.send(
        new CreateSecurityGroupCommand({
          GroupName: input.name,
          Description: input.description,
          VpcId: input.vpcId,
          TagSpecifications: [{ ResourceType: 'security-group', Tags: tagList(input.tags) }],
        }),
        { abortSignal: signal },
      );
      if (out.GroupId === undefined) throw new Error('CreateSecurityGroup returned no group ID');
      return out.GroupId;
    },
    async deleteSecurityGroup(signal, id) {
      await ec2.send(new DeleteSecurityGroupCommand({ GroupId: id }), { abortSignal: signal });
    },
    async authorizeSecurityGroupIngress(signal, groupId, rules) {
      await ec2.send(new AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: rules.map(toPermission) }), { abortSignal: signal });
    },
    async revokeSecurityGroupIngress(signal, groupId, rules) {
      await ec2.send(new RevokeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: rules.map(toPermission) }), { abortSignal: signal });
    },
  };
}

/** Filters and paging shared by EC2's describes (MaxResults is refused together with IDs). */
function ec2Query(query: SubnetQuery): { Filters?: { Name: string; Values: string[] }[]; NextToken?: string; MaxResults?: number } {
  return {
    ...(query.filters === undefined ? {} : { Filters: query.filters.map((f) => ({ Name: f.name, Values: f.values.slice() })) }),
    ...(query.next === undefined ? {} : { NextToken: query.next }),
    ...(query.ids === undefined ? { MaxResults: 1000 } : {}),
  };
}

function toPermission(rule: IngressRule): IpPermission {
  const { kind, value } = rule.source;
  return {
    IpProtocol: rule.protocol,
    FromPort: rule.fromPort,
    ToPort: rule.toPort,
    ...(kind === 'cidr' && !value.includes(':') ? { IpRanges: [{ CidrIp: value }] } : {}),
    ...(kind === 'cidr' && value.includes(':') ? { Ipv6Ranges: [{ CidrIpv6: value }] } : {}),
    ...(kind === 'group' ? { UserIdGroupPairs: [{ GroupId: value }] } : {}),
    ...(kind === 'prefix-list' ? { PrefixListIds: [{ PrefixListId: value }] } : {}),
  };
}

/** One IngressRule per (permission, source): EC2 groups several sources under one permission. */
function toSecurityGroup(g: SdkSecurityGroup): SecurityGroup {
  const ingress: IngressRule[] = [];
  for (const p of g.IpPermissions ?? []) {
    const base = { protocol: p.IpProtocol ?? '-1', fromPort: p.FromPort ?? -1, toPort: p.ToPort ?? -1 };
    for (const r of p.IpRanges ?? []) if (r.CidrIp !== undefined) ingress.push({ ...base, source: { kind: 'cidr', value: r.CidrIp } });
    for (const r of p.Ipv6Ranges ?? []) if (r.CidrIpv6 !== undefined) ingress.push({ ...base, source: { kind: 'cidr', value: r.CidrIpv6 } });
    for (const r of p.UserIdGroupPairs ?? []) if (r.GroupId !== undefined) ingress.push({ ...base, source: { kind: 'group', value: r.GroupId } });
    for (const r of p.PrefixListIds ?? []) if (r.PrefixListId !== undefined) ingress.push({ ...base, source: { kind: 'prefix-list', value: r.PrefixListId } });
  }
  return {
    id: g.GroupId ?? '',
    name: g.GroupName ?? '',
    vpcId: g.VpcId ?? '',
    tags: Object.fromEntries((g.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
    ingress,
  };
}

function toLoadBalancer(lb: SdkLoadBalancer): LoadBalancer {
  return {
    arn: lb.LoadBalancerArn ?? '',
    name: lb.LoadBalancerName ?? '',
    dnsName: lb.DNSName ?? '',
    scheme: lb.Scheme ?? 'internal',
    type: lb.Type ?? '',
    vpcId: lb.VpcId ?? '',
    ipAddressType: lb.IpAddressType ?? 'ipv4',
    subnetIds: (lb.AvailabilityZones ?? []).map((z) => z.SubnetId ?? '').filter((s) => s !== ''),
    securityGroupIds: lb.SecurityGroups ?? [],
    state: lb.State?.Code ?? 'unknown',
  };
}

function toTargetGroup(tg: SdkTargetGroup): TargetGroup {
  return {
    arn: tg.TargetGroupArn ?? '',
    name: tg.TargetGroupName ?? '',
    protocol: tg.Protocol ?? '',
    port: tg.Port ?? 0,
    vpcId: tg.VpcId ?? '',
    targetType: tg.TargetType ?? '',
    healthCheck: {
      protocol: (tg.HealthCheckProtocol ?? 'TCP') as HealthCheckProtocol,
      port: tg.HealthCheckPort ?? 'traffic-port',
      path: tg.HealthCheckPath,
      intervalSeconds: tg.HealthCheckIntervalSeconds ?? 30,
      timeoutSeconds: tg.HealthCheckTimeoutSeconds ?? 10,
      healthyThreshold: tg.HealthyThresholdCount ?? 3,
      unhealthyThreshold: tg.UnhealthyThresholdCount ?? 3,
      matcher: tg.Matcher?.HttpCode,
    },
    loadBalancerArns: tg.LoadBalancerArns ?? [],
  };
}

function toListener(l: SdkListener): Listener {
  const forward = (l.DefaultActions ?? []).find((a) => a.Type === 'forward');
  return {
    arn: l.ListenerArn ?? '',
    loadBalancerArn: l.LoadBalancerArn ?? '',
    port: l.Port ?? 0,
    protocol: l.Protocol ?? '',
    targetGroupArn: forward?.TargetGroupArn ?? forward?.ForwardConfig?.TargetGroups?.[0]?.TargetGroupArn,
  };
}

/** The region when no flag set it: the environment, else IMDSv2 (EC2 instances only). */
async function regionFromEnvironmentOrImds(): Promise<string> {
  const fromEnv = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const base = 'http://169.254.169.254/latest';
  const token = await fetch(`${base}/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' }, signal: AbortSignal.timeout(2_000) }).then((r) => r.text());
  const region = await fetch(`${base}/meta-data/placement/region`, { headers: { 'x-aws-ec2-metadata-token': token }, signal: AbortSignal.timeout(2_000) }).then((r) => r.text());
  if (region === '') throw new Error('no AWS region: set --aws-region (or AWS_REGION); the instance metadata service gave none');
  return region;
}
