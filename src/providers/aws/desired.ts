/**
 * Service (+ annotations, + backends) -> the NLB Portico wants. Pure. Annotation names and
 * meanings follow aws-load-balancer-controller, so Services migrate without edits; annotations it
 * has and we do not are reported as problems, never silently ignored.
 */
import { createHash } from 'node:crypto';
import type { SpecProblem } from '../../api/types.js';
import { AddressParseError, formatIP, parseCIDR } from '../../ipam/ip.js';
import type { Backends, ReadonlyEndpointSlice, ReadonlyService } from '../provider.js';
import type { HealthCheck, HealthCheckProtocol, IpAddressType, ListenerProtocol, Scheme, Tags, Target, TargetType } from './api.js';

export const AWS_NLB_CLASS = 'portico.dev/aws-nlb';
export const ANNOTATION_PREFIX = 'service.beta.kubernetes.io/aws-load-balancer-';
export const TAG_CLUSTER = 'portico.dev/cluster';
export const TAG_SERVICE = 'portico.dev/service';
export const TAG_RESOURCE = 'portico.dev/resource';
/** On the NLB: a hash of the whole desired state last applied (see provider.ts, fast path). */
export const TAG_SPEC_HASH = 'portico.dev/spec-hash';
/** ELBv2 allows 50 tags per resource; ours take four. */
const MAX_ADDITIONAL_TAGS = 46;
/** Security groups per NLB (AWS's limit). */
const MAX_NLB_SECURITY_GROUPS = 5;

const A = (suffix: string): string => `${ANNOTATION_PREFIX}${suffix}`;
export const ANNOTATIONS = {
  scheme: A('scheme'),
  internal: A('internal'),
  targetType: A('nlb-target-type'),
  subnets: A('subnets'),
  name: A('name'),
  healthcheckProtocol: A('healthcheck-protocol'),
  healthcheckPort: A('healthcheck-port'),
  healthcheckPath: A('healthcheck-path'),
  healthcheckHealthyThreshold: A('healthcheck-healthy-threshold'),
  healthcheckUnhealthyThreshold: A('healthcheck-unhealthy-threshold'),
  healthcheckTimeout: A('healthcheck-timeout'),
  healthcheckInterval: A('healthcheck-interval'),
  healthcheckSuccessCodes: A('healthcheck-success-codes'),
  attributes: A('attributes'),
  targetGroupAttributes: A('target-group-attributes'),
  proxyProtocol: A('proxy-protocol'),
  additionalResourceTags: A('additional-resource-tags'),
  ipAddressType: A('ip-address-type'),
  securityGroups: A('security-groups'),
  /** aws-load-balancer-controller's selector between it and the in-tree provider; spec.loadBalancerClass selects here. */
  type: A('type'),
  /** Kubernetes' legacy spelling of spec.loadBalancerSourceRanges (used only when the field is empty, as upstream). */
  sourceRanges: 'service.beta.kubernetes.io/load-balancer-source-ranges',
} as const;
const KNOWN = new Set<string>(Object.values(ANNOTATIONS));

export interface DesiredTargetGroup {
  name: string;
  protocol: ListenerProtocol;
  port: number;
  targetType: TargetType;
  healthCheck: HealthCheck;
  attributes: Readonly<Record<string, string>>;
  tags: Tags;
  targets: readonly Target[];
}

export interface DesiredPort {
  port: number;
  protocol: ListenerProtocol;
  targetGroup: DesiredTargetGroup;
}

/** The NLB's frontend security group, managed by Portico (created with the NLB, deleted after it). */
export interface DesiredSecurityGroup {
  name: string;
  description: string;
  tags: Tags;
  /** What the listeners need open: one entry per port and EC2 protocol (TCP_UDP opens both). */
  ports: readonly { protocol: 'tcp' | 'udp'; port: number }[];
  /** Who may connect: these CIDRs, or the VPC's own CIDR blocks (an internal NLB given no ranges). */
  sources: { kind: 'cidrs'; cidrs: readonly string[] } | { kind: 'vpc'; ipv6: boolean };
  /**
   * The Service asked for source ranges: an NLB created without security groups (an earlier
   * Portico) cannot honour that, and says so.
   */
  restricted: boolean;
  /**
   * `aws-load-balancer-security-groups`: the user's groups (IDs or Name tags) instead of the
   * managed one. Portico adds no rule to them and never deletes them. Empty: the managed group.
   */
  userGroups: readonly string[];
}

export type SubnetSelection = { kind: 'discover'; role: 'kubernetes.io/role/elb' | 'kubernetes.io/role/internal-elb' } | { kind: 'listed'; values: readonly string[] };

export interface DesiredLoadBalancer {
  serviceKey: string;
  name: string;
  scheme: Scheme;
  ipAddressType: IpAddressType;
  subnets: SubnetSelection;
  attributes: Readonly<Record<string, string>>;
  /** Ownership + additional tags (the spec-hash tag is added by the executor). */
  tags: Tags;
  ports: readonly DesiredPort[];
  securityGroup: DesiredSecurityGroup;
  /** Hash of everything above: equal hashes mean nothing to do. */
  specHash: string;
}

export interface ServiceConfig {
  name: string | undefined;
  scheme: Scheme;
  targetType: TargetType;
  ipAddressType: IpAddressType;
  subnets: SubnetSelection;
  attributes: Record<string, string>;
  targetGroupAttributes: Record<string, string>;
  additionalTags: Record<string, string>;
  healthCheck: Partial<HealthCheck>;
  healthCheckPortSet: boolean;
  securityGroups: string[];
}

export function serviceKey(service: ReadonlyService): string {
  return `${service.metadata?.namespace ?? ''}/${service.metadata?.name ?? ''}`;
}

export function ownershipTags(clusterName: string, key: string, resource: string): Record<string, string> {
  return { [TAG_CLUSTER]: clusterName, [TAG_SERVICE]: key, [TAG_RESOURCE]: resource };
}

/** Whether `tags` say the resource is ours for this Service (cluster and Service both match). */
export function ownedBy(tags: Tags | undefined, clusterName: string, key: string): boolean {
  return tags?.[TAG_CLUSTER] === clusterName && tags[TAG_SERVICE] === key;
}

const bounded = (value: string, max = 80): string => (value.length > max ? `${value.slice(0, max)}…` : value);

/** `k=v,k2=v2` -> map; problems name the annotation. */
function parsePairs(field: string, value: string, problems: SpecProblem[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of value.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const eq = item.indexOf('=');
    const k = eq < 0 ? item : item.slice(0, eq).trim();
    const v = eq < 0 ? '' : item.slice(eq + 1).trim();
    if (eq < 0 || k === '') {
      problems.push({ field, message: `expected key=value pairs separated by commas, got "${bounded(item)}"` });
      continue;
    }
    out[k] = v;
  }
  return out;
}

function parseIntIn(field: string, value: string | undefined, min: number, max: number, problems: SpecProblem[]): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value.trim());
  if (!Number.isInteger(n) || n < min || n > max) {
    problems.push({ field, message: `must be an integer from ${min} to ${max}, got "${bounded(value)}"` });
    return undefined;
  }
  return n;
}

function oneOf<T extends string>(field: string, value: string | undefined, allowed: readonly T[], fallback: T, problems: SpecProblem[]): T {
  if (value === undefined) return fallback;
  const v = value.trim() as T;
  if (allowed.includes(v)) return v;
  problems.push({ field, message: `must be one of ${allowed.join(', ')}, got "${bounded(value)}"` });
  return fallback;
}

const LB_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$/;
const ATTRIBUTE_KEY = /^[a-z0-9_.]+$/;
const TAG_KEY_RESERVED = /^(aws:|portico\.dev\/)/;

/** The annotations alone (no backends): what validate() reports. */
export function parseServiceConfig(service: ReadonlyService): { config: ServiceConfig; problems: SpecProblem[] } {
  const problems: SpecProblem[] = [];
  const ann: Readonly<Record<string, string>> = service.metadata?.annotations ?? {};
  const field = (name: string): string => `metadata.annotations[${name}]`;
  const get = (name: string): string | undefined => ann[name];

  for (const key of Object.keys(ann).sort()) {
    if (key.startsWith(ANNOTATION_PREFIX) && !KNOWN.has(key)) {
      problems.push({ field: field(key), message: 'not supported by the portico.dev/aws-nlb provider (see docs/providers/aws.md for the supported annotations)' });
    }
  }

  const internal = get(ANNOTATIONS.internal);
  const legacyInternal = internal !== undefined && internal.trim() !== '' && internal.trim() !== 'false';
  // aws-load-balancer-controller's default is internal; the legacy annotation agrees.
  const scheme = oneOf<Scheme>(field(ANNOTATIONS.scheme), get(ANNOTATIONS.scheme), ['internal', 'internet-facing'], 'internal', problems);
  if (legacyInternal && get(ANNOTATIONS.scheme) === 'internet-facing') {
    problems.push({ field: field(ANNOTATIONS.internal), message: `contradicts ${ANNOTATIONS.scheme}=internet-facing` });
  }

  const typeAnnotation = get(ANNOTATIONS.type)?.trim();
  if (typeAnnotation !== undefined && !['external', 'nlb', 'nlb-ip'].includes(typeAnnotation)) {
    problems.push({ field: field(ANNOTATIONS.type), message: `must be external, nlb or nlb-ip (this provider creates Network Load Balancers only), got "${bounded(typeAnnotation)}"` });
  }
  const targetType = oneOf<TargetType>(field(ANNOTATIONS.targetType), get(ANNOTATIONS.targetType), ['instance', 'ip'], typeAnnotation === 'nlb-ip' ? 'ip' : 'instance', problems);
  const ipAddressType = oneOf<IpAddressType>(field(ANNOTATIONS.ipAddressType), get(ANNOTATIONS.ipAddressType), ['ipv4', 'dualstack'], 'ipv4', problems);

  let name = get(ANNOTATIONS.name)?.trim();
  if (name !== undefined && (!LB_NAME.test(name) || name.toLowerCase().startsWith('internal-'))) {
    problems.push({ field: field(ANNOTATIONS.name), message: `must be 1-32 letters, digits or hyphens, not starting or ending with a hyphen nor with "internal-", got "${bounded(name)}"` });
    name = undefined;
  }

  const subnetList = (get(ANNOTATIONS.subnets) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const subnets: SubnetSelection =
    subnetList.length > 0 ? { kind: 'listed', values: subnetList } : { kind: 'discover', role: scheme === 'internal' ? 'kubernetes.io/role/internal-elb' : 'kubernetes.io/role/elb' };

  const attributes = parsePairs(field(ANNOTATIONS.attributes), get(ANNOTATIONS.attributes) ?? '', problems);
  const targetGroupAttributes = parsePairs(field(ANNOTATIONS.targetGroupAttributes), get(ANNOTATIONS.targetGroupAttributes) ?? '', problems);
  for (const [f, attrs] of [
    [field(ANNOTATIONS.attributes), attributes],
    [field(ANNOTATIONS.targetGroupAttributes), targetGroupAttributes],
  ] as const) {
    for (const [k, v] of Object.entries(attrs)) {
      if (!ATTRIBUTE_KEY.test(k) || v === '') problems.push({ field: f, message: `attribute "${bounded(k)}" needs a lower-case key and a value` });
    }
  }
  const proxy = get(ANNOTATIONS.proxyProtocol)?.trim();
  if (proxy !== undefined) {
    if (proxy === '*') targetGroupAttributes['proxy_protocol_v2.enabled'] = 'true';
    else problems.push({ field: field(ANNOTATIONS.proxyProtocol), message: `only "*" (all target groups) is supported, got "${bounded(proxy)}"` });
  }

  const additionalTags: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsePairs(field(ANNOTATIONS.additionalResourceTags), get(ANNOTATIONS.additionalResourceTags) ?? '', problems))) {
    if (TAG_KEY_RESERVED.test(k) || k.length > 128 || v.length > 256) {
      problems.push({ field: field(ANNOTATIONS.additionalResourceTags), message: `tag "${bounded(k)}" is reserved or too long (keys: 128, values: 256 characters; aws: and portico.dev/ are reserved)` });
    } else {
      additionalTags[k] = v;
    }
  }
  if (Object.keys(additionalTags).length > MAX_ADDITIONAL_TAGS) {
    problems.push({ field: field(ANNOTATIONS.additionalResourceTags), message: `at most ${MAX_ADDITIONAL_TAGS} tags (AWS allows 50 per resource; Portico uses 4)` });
  }

  const healthCheck: Partial<HealthCheck> = {};
  const hcProtocol = get(ANNOTATIONS.healthcheckProtocol);
  if (hcProtocol !== undefined) healthCheck.protocol = oneOf<HealthCheckProtocol>(field(ANNOTATIONS.healthcheckProtocol), hcProtocol.toUpperCase(), ['TCP', 'HTTP', 'HTTPS'], 'TCP', problems);
  const hcPort = get(ANNOTATIONS.healthcheckPort)?.trim();
  if (hcPort !== undefined) {
    if (hcPort === 'traffic-port') healthCheck.port = hcPort;
    else if (parseIntIn(field(ANNOTATIONS.healthcheckPort), hcPort, 1, 65535, problems) !== undefined) healthCheck.port = hcPort;
  }
  const hcPath = get(ANNOTATIONS.healthcheckPath)?.trim();
  if (hcPath !== undefined) {
    if (hcPath.startsWith('/') && hcPath.length <= 1024) healthCheck.path = hcPath;
    else problems.push({ field: field(ANNOTATIONS.healthcheckPath), message: 'must start with / (at most 1024 characters)' });
  }
  const healthy = parseIntIn(field(ANNOTATIONS.healthcheckHealthyThreshold), get(ANNOTATIONS.healthcheckHealthyThreshold), 2, 10, problems);
  if (healthy !== undefined) healthCheck.healthyThreshold = healthy;
  const unhealthy = parseIntIn(field(ANNOTATIONS.healthcheckUnhealthyThreshold), get(ANNOTATIONS.healthcheckUnhealthyThreshold), 2, 10, problems);
  if (unhealthy !== undefined) healthCheck.unhealthyThreshold = unhealthy;
  const timeout = parseIntIn(field(ANNOTATIONS.healthcheckTimeout), get(ANNOTATIONS.healthcheckTimeout), 2, 120, problems);
  if (timeout !== undefined) healthCheck.timeoutSeconds = timeout;
  const interval = parseIntIn(field(ANNOTATIONS.healthcheckInterval), get(ANNOTATIONS.healthcheckInterval), 5, 300, problems);
  if (interval !== undefined) healthCheck.intervalSeconds = interval;
  const codes = get(ANNOTATIONS.healthcheckSuccessCodes)?.trim();
  if (codes !== undefined) {
    if (/^\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*$/.test(codes)) healthCheck.matcher = codes;
    else problems.push({ field: field(ANNOTATIONS.healthcheckSuccessCodes), message: `must be HTTP codes like 200 or 200-399, got "${bounded(codes)}"` });
  }

  const securityGroups = [...new Set((get(ANNOTATIONS.securityGroups) ?? '').split(',').map((g) => g.trim()).filter(Boolean))];
  if (securityGroups.length > MAX_NLB_SECURITY_GROUPS) {
    problems.push({ field: field(ANNOTATIONS.securityGroups), message: `at most ${MAX_NLB_SECURITY_GROUPS} security groups (the NLB's limit), got ${securityGroups.length}` });
  }
  for (const g of securityGroups) {
    if (g.length > 255) problems.push({ field: field(ANNOTATIONS.securityGroups), message: `"${bounded(g)}" is too long for a security group ID or Name tag (255 characters)` });
  }

  return {
    config: { name, scheme, targetType, ipAddressType, subnets, attributes, targetGroupAttributes, additionalTags, healthCheck, healthCheckPortSet: hcPort !== undefined, securityGroups },
    problems,
  };
}

interface PortGroup {
  port: number;
  protocols: ('TCP' | 'UDP')[];
  indexes: number[];
  names: string[];
}

/** Service ports grouped by port number (TCP and UDP on one port share a TCP_UDP listener). */
function portGroups(service: ReadonlyService, problems: SpecProblem[]): PortGroup[] {
  const groups = new Map<number, PortGroup>();
  (service.spec?.ports ?? []).forEach((p, i) => {
    const protocol = p.protocol ?? 'TCP';
    if (protocol !== 'TCP' && protocol !== 'UDP') {
      problems.push({ field: `spec.ports[${i}].protocol`, message: `${protocol} is not supported by Network Load Balancers here (TCP and UDP are)` });
      return;
    }
    const g = groups.get(p.port) ?? { port: p.port, protocols: [], indexes: [], names: [] };
    g.protocols.push(protocol);
    g.indexes.push(i);
    g.names.push(p.name ?? '');
    groups.set(p.port, g);
  });
  return [...groups.values()].sort((a, b) => a.port - b.port);
}

/** Everything validate() reports: annotations plus what the ports need. */
export function validateService(service: ReadonlyService): SpecProblem[] {
  const { config, problems } = parseServiceConfig(service);
  for (const g of portGroups(service, problems)) {
    if (g.protocols.length < 2 || config.targetType !== 'instance') continue;
    const nodePorts = new Set(g.indexes.map((i) => service.spec?.ports?.[i]?.nodePort));
    if (nodePorts.size > 1) {
      problems.push({ field: `spec.ports[${g.indexes[1] ?? 0}].nodePort`, message: `TCP and UDP on port ${g.port} share one TCP_UDP target group: give both the same nodePort` });
    }
  }
  const ranges = parseSourceRanges(service, config.ipAddressType, problems);
  if (ranges.length > 0 && config.securityGroups.length > 0) {
    // aws-load-balancer-controller ignores the ranges then; a balancer open to more than asked is worse than a refusal.
    const from = (service.spec?.loadBalancerSourceRanges ?? []).length > 0 ? 'spec.loadBalancerSourceRanges' : `metadata.annotations[${ANNOTATIONS.sourceRanges}]`;
    problems.push({ field: from, message: `not applied with ${ANNOTATIONS.securityGroups} (Portico adds no rule to your groups): put the ranges in your groups' rules and remove them here, or drop the annotation` });
  }
  if (config.targetType === 'instance' && service.spec?.allocateLoadBalancerNodePorts === false) {
    problems.push({ field: 'spec.allocateLoadBalancerNodePorts', message: 'instance targets need node ports: allow them, or use nlb-target-type: ip' });
  }
  return problems;
}

/**
 * `spec.loadBalancerSourceRanges`, else the legacy annotation (comma-separated), as canonical
 * CIDRs; empty: none given. An IPv6 range needs a dualstack NLB (as aws-load-balancer-controller).
 */
export function parseSourceRanges(service: ReadonlyService, ipAddressType: IpAddressType, problems: SpecProblem[]): string[] {
  const fromSpec = service.spec?.loadBalancerSourceRanges ?? [];
  const annotation = service.metadata?.annotations?.[ANNOTATIONS.sourceRanges] ?? '';
  const useSpec = fromSpec.length > 0;
  const values = useSpec ? fromSpec : annotation.split(',').map((r) => r.trim()).filter(Boolean);
  const out: string[] = [];
  values.forEach((raw, i) => {
    const field = useSpec ? `spec.loadBalancerSourceRanges[${i}]` : `metadata.annotations[${ANNOTATIONS.sourceRanges}]`;
    const at = useSpec ? '' : `range ${i + 1}, `;
    let cidr;
    try {
      cidr = parseCIDR(raw.trim());
    } catch (error) {
      // The parser's message names the value (shortened) and the fix, e.g. "host bits set, did you mean …".
      const why = error instanceof AddressParseError ? error.message : `"${bounded(raw, 60)}" is not a CIDR`;
      problems.push({ field, message: bounded(`${at}${why} (expected a CIDR like 203.0.113.0/24)`, 200) });
      return;
    }
    if (cidr.family === 'IPv6' && ipAddressType !== 'dualstack') {
      problems.push({ field, message: `${at}"${bounded(raw, 60)}" is IPv6, and this NLB is IPv4 only: set ${ANNOTATIONS.ipAddressType}: dualstack, or remove the range` });
      return;
    }
    const text = `${formatIP({ family: cidr.family, value: cidr.start })}/${cidr.prefixLength}`;
    if (!out.includes(text)) out.push(text);
  });
  return out;
}

export function shortHash(...parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex');
}

function sanitize(s: string, max: number): string {
  return s.replace(/[^A-Za-z0-9]/g, '').slice(0, max).toLowerCase();
}

/** `k8s-<ns>-<name>-<hash>`, at most 32 characters, stable for a Service and cluster. */
export function defaultName(clusterName: string, namespace: string, name: string, ...salt: string[]): string {
  return `k8s-${sanitize(namespace, 8)}-${sanitize(name, 8)}-${shortHash(clusterName, namespace, name, ...salt).slice(0, 10)}`;
}

function endpointTargets(slices: readonly ReadonlyEndpointSlice[], portName: string, protocol: 'TCP' | 'UDP'): Target[] {
  const out: Target[] = [];
  for (const slice of slices) {
    if (slice.addressType !== 'IPv4') continue; // ipv4 target groups
    const port = (slice.ports ?? []).find((p) => (p.name ?? '') === portName && (p.protocol ?? 'TCP') === protocol)?.port;
    if (port === undefined) continue;
    // The API server sends `endpoints: null` for an empty slice, whatever the type says.
    const endpoints = slice.endpoints as ReadonlyEndpointSlice['endpoints'] | null;
    for (const ep of endpoints ?? []) {
      if (ep.conditions?.ready === false) continue;
      for (const address of ep.addresses) out.push({ id: address, port });
    }
  }
  return out;
}

/** `aws:///us-east-1a/i-0123` -> `i-0123`; undefined for nodes not on EC2. */
export function instanceId(providerID: string | undefined): string | undefined {
  const m = /^aws:\/\/\/[^/]*\/(i-[0-9a-zA-Z]+)$/.exec(providerID ?? '');
  return m?.[1];
}

function dedupeTargets(targets: Target[]): Target[] {
  const seen = new Map<string, Target>();
  for (const t of targets) seen.set(`${t.id}:${t.port}`, t);
  return [...seen.values()].sort((a, b) => (a.id === b.id ? a.port - b.port : a.id < b.id ? -1 : 1));
}

/**
 * The full desired state. `problems` non-empty means: do not touch AWS (validate() reports the
 * same ones before the reconciler gets here).
 */
export function desiredLoadBalancer(clusterName: string, service: ReadonlyService, backends: Backends): { desired: DesiredLoadBalancer; problems: SpecProblem[] } {
  const problems = validateService(service);
  const { config } = parseServiceConfig(service);
  const namespace = service.metadata?.namespace ?? '';
  const svcName = service.metadata?.name ?? '';
  const key = serviceKey(service);
  const local = service.spec?.externalTrafficPolicy === 'Local';
  const instanceIds = dedupeTargets(backends.nodes.map((n) => ({ id: instanceId(n.spec?.providerID) ?? '', port: 0 })).filter((t) => t.id !== ''));

  const ports: DesiredPort[] = portGroups(service, problems).map((g) => {
    const first = service.spec?.ports?.[g.indexes[0] ?? 0];
    const protocol: ListenerProtocol = g.protocols.length > 1 ? 'TCP_UDP' : (g.protocols[0] ?? 'TCP');
    let tgPort: number;
    let targets: Target[];
    if (config.targetType === 'instance') {
      tgPort = first?.nodePort ?? 0;
      targets = instanceIds.map((t) => ({ id: t.id, port: tgPort }));
    } else {
      tgPort = typeof first?.targetPort === 'number' ? first.targetPort : g.port;
      targets = g.names.flatMap((portName, n) => endpointTargets(backends.endpointSlices, portName, g.protocols[n] ?? 'TCP'));
    }
    const localDefaults = local && config.targetType === 'instance';
    const hcProtocol = config.healthCheck.protocol ?? (localDefaults ? 'HTTP' : 'TCP');
    const healthCheck: HealthCheck = {
      protocol: hcProtocol,
      port: config.healthCheck.port ?? (localDefaults ? String(service.spec.healthCheckNodePort ?? 'traffic-port') : 'traffic-port'),
      path: hcProtocol === 'TCP' ? undefined : (config.healthCheck.path ?? (localDefaults ? '/healthz' : '/')),
      intervalSeconds: config.healthCheck.intervalSeconds ?? 10,
      timeoutSeconds: config.healthCheck.timeoutSeconds ?? (localDefaults ? 6 : 10),
      healthyThreshold: config.healthCheck.healthyThreshold ?? (localDefaults ? 2 : 3),
      unhealthyThreshold: config.healthCheck.unhealthyThreshold ?? (localDefaults ? 2 : 3),
      matcher: hcProtocol === 'TCP' ? undefined : (config.healthCheck.matcher ?? '200-399'),
    };
    const resource = `target-group/${g.port}`;
    return {
      port: g.port,
      protocol,
      targetGroup: {
        name: defaultName(clusterName, namespace, svcName, String(g.port), protocol, config.targetType, String(tgPort)),
        protocol,
        port: tgPort,
        targetType: config.targetType,
        healthCheck,
        attributes: config.targetGroupAttributes,
        tags: { ...config.additionalTags, ...ownershipTags(clusterName, key, resource) },
        targets: dedupeTargets(targets),
      },
    };
  });

  const lbName = config.name ?? defaultName(clusterName, namespace, svcName);
  const ranges = parseSourceRanges(service, config.ipAddressType, []);
  const open = ['0.0.0.0/0', ...(config.ipAddressType === 'dualstack' ? ['::/0'] : [])];
  const securityGroup: DesiredSecurityGroup = {
    name: `${lbName}-sg`,
    description: `Portico frontend of NLB ${lbName} for Service ${key}`,
    tags: { ...config.additionalTags, ...ownershipTags(clusterName, key, 'security-group') },
    ports: ports.flatMap((p) => (p.protocol === 'TCP_UDP' ? (['tcp', 'udp'] as const) : [p.protocol === 'TCP' ? ('tcp' as const) : ('udp' as const)]).map((protocol) => ({ protocol, port: p.port }))),
    // aws-load-balancer-controller's defaults when no range is given.
    sources: ranges.length > 0 ? { kind: 'cidrs', cidrs: ranges } : config.scheme === 'internal' ? { kind: 'vpc', ipv6: config.ipAddressType === 'dualstack' } : { kind: 'cidrs', cidrs: open },
    restricted: ranges.length > 0,
    userGroups: config.securityGroups,
  };
  const base = {
    serviceKey: key,
    name: lbName,
    scheme: config.scheme,
    ipAddressType: config.ipAddressType,
    subnets: config.subnets,
    attributes: config.attributes,
    tags: { ...config.additionalTags, ...ownershipTags(clusterName, key, 'load-balancer') },
    ports,
    securityGroup,
  };
  return { desired: { ...base, specHash: shortHash(JSON.stringify(base)).slice(0, 32) }, problems };
}
