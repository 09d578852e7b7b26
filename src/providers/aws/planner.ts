/**
 * Desired vs actual -> the calls to make, in dependency order. Pure: the executor (provider.ts)
 * reads the actual state, runs the actions and reads nothing it does not need.
 */
import type { SpecProblem } from '../../api/types.js';
import { formatIP, parseCIDR } from '../../ipam/ip.js';
import type { HealthCheck, IngressRule, IpAddressType, Listener, ListenerProtocol, LoadBalancer, Tags, Target, TargetGroup, TargetHealth, Vpc } from './api.js';
import { ANNOTATIONS, TAG_SPEC_HASH, type DesiredLoadBalancer, type DesiredSecurityGroup, type DesiredTargetGroup } from './desired.js';

/** Per call, at most (the API allows more for some target types; 200 fits them all). */
export const MAX_TARGETS_PER_CALL = 200;

export interface ActualTargetGroup {
  tg: TargetGroup;
  tags: Tags;
  attributes: Readonly<Record<string, string>>;
  targets: readonly TargetHealth[];
}

export interface ActualState {
  lb: LoadBalancer;
  tags: Tags;
  attributes: Readonly<Record<string, string>>;
  listeners: readonly Listener[];
  /** Ours for this Service: attached to the NLB, or found by a desired name with our tags. */
  targetGroups: readonly ActualTargetGroup[];
}

/** A target group by ARN, or the one this plan creates for a listener port. */
export type TargetGroupRef = { arn: string } | { createdFor: number };

export type Action =
  | { kind: 'replaceLoadBalancer'; reason: string }
  | { kind: 'setIpAddressType'; type: IpAddressType }
  | { kind: 'setSubnets'; subnetIds: readonly string[] }
  | { kind: 'modifyLoadBalancerAttributes'; attributes: Readonly<Record<string, string>> }
  | { kind: 'addTags'; target: TargetGroupRef | 'load-balancer'; tags: Tags }
  | { kind: 'removeTags'; target: TargetGroupRef | 'load-balancer'; keys: readonly string[] }
  | { kind: 'createTargetGroup'; port: number; spec: DesiredTargetGroup }
  | { kind: 'modifyTargetGroup'; target: TargetGroupRef; healthCheck: HealthCheck }
  | { kind: 'modifyTargetGroupAttributes'; target: TargetGroupRef; attributes: Readonly<Record<string, string>> }
  | { kind: 'registerTargets'; target: TargetGroupRef; targets: readonly Target[] }
  | { kind: 'deregisterTargets'; target: TargetGroupRef; targets: readonly Target[] }
  | { kind: 'createListener'; port: number; protocol: ListenerProtocol; target: TargetGroupRef }
  | { kind: 'modifyListener'; arn: string; port: number; protocol: ListenerProtocol; target: TargetGroupRef }
  | { kind: 'deleteListener'; arn: string; port: number }
  | { kind: 'deleteTargetGroup'; arn: string; name: string };

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function changedEntries(desired: Readonly<Record<string, string>>, actual: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(desired).filter(([k, v]) => actual[k] !== v));
}

export interface PlanOptions {
  /** Tag keys someone else manages on our resources (`--aws-external-managed-tags`): never removed. */
  externalTagKeys?: ReadonlySet<string>;
}

/**
 * Tags on our resource that we did not ask for: removed (as aws-load-balancer-controller does),
 * except AWS's own (`aws:`), the spec hash, and the keys others manage.
 */
function extraTagKeys(desired: Tags, actual: Tags, options: PlanOptions): string[] {
  return Object.keys(actual)
    .filter((k) => !(k in desired) && !k.startsWith('aws:') && k !== TAG_SPEC_HASH && options.externalTagKeys?.has(k) !== true)
    .sort();
}

const targetKey = (t: Target): string => `${t.id}:${t.port}`;
const DRAINING = new Set(['draining', 'unhealthy.draining']);

export function sameHealthCheck(a: HealthCheck, b: HealthCheck): boolean {
  const http = a.protocol !== 'TCP';
  return (
    a.protocol === b.protocol &&
    a.port === b.port &&
    a.intervalSeconds === b.intervalSeconds &&
    a.timeoutSeconds === b.timeoutSeconds &&
    a.healthyThreshold === b.healthyThreshold &&
    a.unhealthyThreshold === b.unhealthyThreshold &&
    (!http || (a.path === b.path && a.matcher === b.matcher))
  );
}

/**
 * `subnetIds`: the resolved subnets when the Service lists them (compared and set); undefined
 * when they were discovered at creation (not compared: discovery results drift with tags).
 */
export function planLoadBalancer(desired: DesiredLoadBalancer, actual: ActualState, subnetIds?: readonly string[], options: PlanOptions = {}): Action[] {
  if (actual.lb.scheme !== desired.scheme) return [{ kind: 'replaceLoadBalancer', reason: `scheme changed from ${actual.lb.scheme} to ${desired.scheme}` }];
  if (actual.lb.name !== desired.name) return [{ kind: 'replaceLoadBalancer', reason: `name changed from ${actual.lb.name} to ${desired.name}` }];

  const actions: Action[] = [];
  if (actual.lb.ipAddressType !== desired.ipAddressType) actions.push({ kind: 'setIpAddressType', type: desired.ipAddressType });
  if (subnetIds !== undefined && [...subnetIds].sort().join(',') !== [...actual.lb.subnetIds].sort().join(',')) actions.push({ kind: 'setSubnets', subnetIds });
  const lbAttributes = changedEntries(desired.attributes, actual.attributes);
  if (Object.keys(lbAttributes).length > 0) actions.push({ kind: 'modifyLoadBalancerAttributes', attributes: lbAttributes });
  const lbTags = changedEntries(desired.tags, actual.tags);
  if (Object.keys(lbTags).length > 0) actions.push({ kind: 'addTags', target: 'load-balancer', tags: lbTags });
  const lbExtra = extraTagKeys(desired.tags, actual.tags, options);
  if (lbExtra.length > 0) actions.push({ kind: 'removeTags', target: 'load-balancer', keys: lbExtra });

  // Target groups first (listeners point at them), with their targets registered before traffic arrives.
  const tgByName = new Map(actual.targetGroups.map((t) => [t.tg.name, t]));
  const refs = new Map<number, TargetGroupRef>();
  for (const port of desired.ports) {
    const want = port.targetGroup;
    const have = tgByName.get(want.name);
    if (have === undefined) {
      const ref: TargetGroupRef = { createdFor: port.port };
      refs.set(port.port, ref);
      actions.push({ kind: 'createTargetGroup', port: port.port, spec: want });
      if (Object.keys(want.attributes).length > 0) actions.push({ kind: 'modifyTargetGroupAttributes', target: ref, attributes: want.attributes });
      for (const part of chunks(want.targets, MAX_TARGETS_PER_CALL)) actions.push({ kind: 'registerTargets', target: ref, targets: part });
      continue;
    }
    const ref: TargetGroupRef = { arn: have.tg.arn };
    refs.set(port.port, ref);
    if (!sameHealthCheck(want.healthCheck, have.tg.healthCheck)) actions.push({ kind: 'modifyTargetGroup', target: ref, healthCheck: want.healthCheck });
    const tgAttributes = changedEntries(want.attributes, have.attributes);
    if (Object.keys(tgAttributes).length > 0) actions.push({ kind: 'modifyTargetGroupAttributes', target: ref, attributes: tgAttributes });
    const tgTags = changedEntries(want.tags, have.tags);
    if (Object.keys(tgTags).length > 0) actions.push({ kind: 'addTags', target: ref, tags: tgTags });
    const tgExtra = extraTagKeys(want.tags, have.tags, options);
    if (tgExtra.length > 0) actions.push({ kind: 'removeTags', target: ref, keys: tgExtra });
    const registered = have.targets.filter((t) => !DRAINING.has(t.state));
    const registeredKeys = new Set(registered.map(targetKey));
    const wantedKeys = new Set(want.targets.map(targetKey));
    const add = want.targets.filter((t) => !registeredKeys.has(targetKey(t)));
    const gone = registered.filter((t) => !wantedKeys.has(targetKey(t))).map((t) => ({ id: t.id, port: t.port }));
    for (const part of chunks(add, MAX_TARGETS_PER_CALL)) actions.push({ kind: 'registerTargets', target: ref, targets: part });
    for (const part of chunks(gone, MAX_TARGETS_PER_CALL)) actions.push({ kind: 'deregisterTargets', target: ref, targets: part });
  }

  const listenerByPort = new Map(actual.listeners.map((l) => [l.port, l]));
  for (const port of desired.ports) {
    const target = refs.get(port.port) ?? { createdFor: port.port };
    const have = listenerByPort.get(port.port);
    if (have === undefined) {
      actions.push({ kind: 'createListener', port: port.port, protocol: port.protocol, target });
      continue;
    }
    if (have.protocol !== port.protocol || !('arn' in target) || have.targetGroupArn !== target.arn) {
      actions.push({ kind: 'modifyListener', arn: have.arn, port: port.port, protocol: port.protocol, target });
    }
  }
  const wantedPorts = new Set(desired.ports.map((p) => p.port));
  for (const l of actual.listeners) if (!wantedPorts.has(l.port)) actions.push({ kind: 'deleteListener', arn: l.arn, port: l.port });

  // Only after no listener points at them any more.
  const wantedNames = new Set(desired.ports.map((p) => p.targetGroup.name));
  for (const t of actual.targetGroups) if (!wantedNames.has(t.tg.name)) actions.push({ kind: 'deleteTargetGroup', arn: t.tg.arn, name: t.tg.name });
  return actions;
}

// ---- the frontend security group --------------------------------------------------------------

/**
 * The ingress rules the frontend group should hold: every listener port and protocol from every
 * source. `vpc` is needed only when the sources are the VPC's own blocks (`sources.kind: 'vpc'`).
 * Health checks come from the NLB itself and need no rule here.
 */
export function desiredIngress(sg: DesiredSecurityGroup, vpc: Vpc | undefined): IngressRule[] {
  const cidrs = sg.sources.kind === 'cidrs' ? sg.sources.cidrs : [...(vpc?.cidrs ?? []), ...(sg.sources.ipv6 ? (vpc?.ipv6Cidrs ?? []) : [])];
  return sg.ports.flatMap((p) => cidrs.map((cidr) => ({ protocol: p.protocol, fromPort: p.port, toPort: p.port, source: { kind: 'cidr' as const, value: cidr } })));
}

function canonicalSource(rule: IngressRule): string {
  if (rule.source.kind !== 'cidr') return rule.source.value;
  try {
    const c = parseCIDR(rule.source.value);
    return `${formatIP({ family: c.family, value: c.start })}/${c.prefixLength}`;
  } catch {
    return rule.source.value;
  }
}

export function ruleKey(rule: IngressRule): string {
  return `${rule.protocol.toLowerCase()}|${rule.fromPort}|${rule.toPort}|${rule.source.kind}|${canonicalSource(rule)}`;
}

/** What to add and what to take away (anything in our group we did not ask for). */
export function planIngress(want: readonly IngressRule[], have: readonly IngressRule[]): { authorize: IngressRule[]; revoke: IngressRule[] } {
  const haveKeys = new Set(have.map(ruleKey));
  const wantKeys = new Set(want.map(ruleKey));
  const seen = new Set<string>();
  const authorize = want.filter((r) => {
    const k = ruleKey(r);
    if (haveKeys.has(k) || seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return { authorize, revoke: have.filter((r) => !wantKeys.has(ruleKey(r))) };
}

/**
 * An NLB created without security groups (by an earlier Portico) can never get one: when the
 * Service asks for source ranges, say so rather than replace the NLB (its DNS name would change).
 */
export function unattachableGroupProblem(desired: DesiredLoadBalancer, lb: LoadBalancer): SpecProblem | undefined {
  const sg = desired.securityGroup;
  if (lb.securityGroupIds.length > 0 || (!sg.restricted && sg.userGroups.length === 0)) return undefined;
  const user = sg.userGroups.length > 0;
  return {
    field: user ? `metadata.annotations[${ANNOTATIONS.securityGroups}]` : 'spec.loadBalancerSourceRanges',
    message:
      `NLB ${lb.name} was created without security groups, and AWS cannot add security groups to such an NLB, so ${user ? 'these groups cannot be attached to it' : 'the source ranges cannot be enforced on it'}; ` +
      'its listeners keep working as before. To get an NLB with a managed security group (and a new DNS name), delete and recreate the Service, or change aws-load-balancer-name',
  };
}
