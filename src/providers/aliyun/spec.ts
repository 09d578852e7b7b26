/**
 * Service -> desired CLB, from the annotations of cloud-provider-alibaba-cloud (same names, same
 * meanings, so users can migrate). Pure: problems name the annotation or field at fault.
 */
import { createHash } from 'node:crypto';
import type { ReadonlyNode, ReadonlyService, SpecProblem } from '../provider.js';
import type { BackendServer, HealthCheck, ListenerProtocol, Tags } from './client.js';

export const ALIYUN_CLASS = 'portico.dev/aliyun-slb';

export const ANNOTATION_PREFIX = 'service.beta.kubernetes.io/alibaba-cloud-loadbalancer-';
export const annotation = (suffix: string): string => `${ANNOTATION_PREFIX}${suffix}`;

export const TAG_CLUSTER = 'portico.dev/cluster';
export const TAG_SERVICE = 'portico.dev/service';
/** Only on balancers Portico created (and so may delete). */
export const TAG_RESOURCE = 'portico.dev/resource';
export const RESOURCE_LOAD_BALANCER = 'load-balancer';
/** Hash of the last converged desired state (spec + backends); equal hash = nothing to do. */
export const TAG_SPEC_HASH = 'portico.dev/spec-hash';

export interface DesiredListener {
  port: number;
  protocol: ListenerProtocol;
  nodePort: number;
  scheduler: string;
  healthCheck: HealthCheck;
}

export interface DesiredBalancer {
  serviceKey: string;
  uid: string;
  name: string;
  reuseId: string | undefined;
  forceOverrideListeners: boolean;
  addressType: 'internet' | 'intranet';
  spec: string | undefined;
  chargeType: 'paybytraffic' | 'paybybandwidth' | undefined;
  bandwidth: number | undefined;
  vswitchId: string | undefined;
  deleteProtection: 'on' | 'off';
  additionalTags: Tags;
  listeners: DesiredListener[];
  /** loadBalancerSourceRanges; empty = no ACL. */
  sourceRanges: string[];
}

const SCHEDULERS = ['wrr', 'rr', 'wlc', 'sch', 'tch', 'qch'];
const RESERVED_TAG = /^(portico\.dev\/|aliyun|acs:)/;

function intAnnotation(value: string | undefined, field: string, min: number, max: number, problems: SpecProblem[]): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min || n > max) {
    problems.push({ field, message: `must be an integer from ${min} to ${max}, got ${JSON.stringify(value.slice(0, 40))}` });
    return undefined;
  }
  return n;
}

function annotationField(suffix: string): string {
  return `metadata.annotations[${annotation(suffix)}]`;
}

export function serviceKeyOf(service: ReadonlyService): string {
  return `${service.metadata?.namespace ?? ''}/${service.metadata?.name ?? ''}`;
}

/** `a=b,c=d` -> tags. */
function parseTags(value: string, field: string, problems: SpecProblem[]): Tags {
  const tags: Tags = {};
  for (const part of value.split(',').map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim();
    const tagValue = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (key === '' || key.length > 64 || tagValue.length > 128 || RESERVED_TAG.test(key)) {
      problems.push({ field, message: `tag ${JSON.stringify(key.slice(0, 70))} is empty, too long or reserved (portico.dev/, aliyun, acs:)` });
      continue;
    }
    tags[key] = tagValue;
  }
  if (Object.keys(tags).length > 15) problems.push({ field, message: 'at most 15 additional tags (a CLB holds 20, Portico uses up to 5)' });
  return tags;
}

function parseCidr(value: string): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  return m !== null && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
}

export function parseService(service: ReadonlyService): { desired: DesiredBalancer } | { problems: SpecProblem[] } {
  const problems: SpecProblem[] = [];
  const a = service.metadata?.annotations ?? {};
  const get = (suffix: string): string | undefined => a[annotation(suffix)];

  const addressType = (get('address-type') ?? 'internet').toLowerCase();
  if (addressType !== 'internet' && addressType !== 'intranet') problems.push({ field: annotationField('address-type'), message: 'must be internet or intranet' });
  const chargeType = get('charge-type')?.toLowerCase();
  if (chargeType !== undefined && chargeType !== 'paybytraffic' && chargeType !== 'paybybandwidth') problems.push({ field: annotationField('charge-type'), message: 'must be paybytraffic or paybybandwidth' });
  const bandwidth = intAnnotation(get('bandwidth'), annotationField('bandwidth'), 1, 5120, problems);
  const spec = get('spec');
  if (spec !== undefined && !/^slb\.s\d\.[a-z0-9]+$/.test(spec)) problems.push({ field: annotationField('spec'), message: 'must be a CLB instance spec such as slb.s1.small' });
  const vswitchId = get('vswitch-id');
  if (vswitchId !== undefined && !/^vsw-[a-z0-9]+$/.test(vswitchId)) problems.push({ field: annotationField('vswitch-id'), message: 'must be a vSwitch id (vsw-...)' });
  const reuseId = get('id');
  if (reuseId !== undefined && !/^lb-[a-z0-9]+$/.test(reuseId)) problems.push({ field: annotationField('id'), message: 'must be a CLB id (lb-...)' });
  const deleteProtection = (get('delete-protection') ?? 'on').toLowerCase();
  if (deleteProtection !== 'on' && deleteProtection !== 'off') problems.push({ field: annotationField('delete-protection'), message: 'must be on or off' });
  const force = (get('force-override-listeners') ?? 'false').toLowerCase();
  if (force !== 'true' && force !== 'false') problems.push({ field: annotationField('force-override-listeners'), message: 'must be true or false' });
  const scheduler = (get('scheduler') ?? 'wrr').toLowerCase();
  if (!SCHEDULERS.includes(scheduler)) problems.push({ field: annotationField('scheduler'), message: `must be one of ${SCHEDULERS.join(', ')}` });
  const name = get('name') ?? `portico-${(service.metadata?.namespace ?? '').slice(0, 30)}-${(service.metadata?.name ?? '').slice(0, 40)}`;
  if (!/^[A-Za-z\u4e00-\u9fa5][\w.\-\u4e00-\u9fa5]{1,79}$/.test(name)) problems.push({ field: annotationField('name'), message: 'must be 2-80 characters: letters, digits, ".", "_" and "-", starting with a letter' });
  const additionalTags = parseTags(get('additional-resource-tags') ?? '', annotationField('additional-resource-tags'), problems);

  const healthCheck: HealthCheck = {};
  const hcType = get('health-check-type')?.toLowerCase();
  if (hcType !== undefined && hcType !== 'tcp' && hcType !== 'http') problems.push({ field: annotationField('health-check-type'), message: 'must be tcp or http' });
  else if (hcType !== undefined) healthCheck.type = hcType;
  const hcInts = [
    ['connectTimeout', 'health-check-connect-timeout', 1, 300],
    ['healthyThreshold', 'healthy-threshold', 2, 10],
    ['unhealthyThreshold', 'unhealthy-threshold', 2, 10],
    ['interval', 'health-check-interval', 1, 50],
    ['connectPort', 'health-check-connect-port', 1, 65535],
  ] as const;
  for (const [key, suffix, min, max] of hcInts) {
    const value = intAnnotation(get(suffix), annotationField(suffix), min, max, problems);
    if (value !== undefined) healthCheck[key] = value;
  }
  const uri = get('health-check-uri');
  if (uri !== undefined) {
    if (!/^\/[\w\-./%?#&=]{0,79}$/.test(uri)) problems.push({ field: annotationField('health-check-uri'), message: 'must be a path starting with / (at most 80 characters)' });
    else healthCheck.uri = uri;
  }
  const domain = get('health-check-domain');
  if (domain !== undefined) healthCheck.domain = domain;
  const httpCode = get('health-check-httpcode');
  if (httpCode !== undefined) {
    if (!/^http_[2345]xx(,http_[2345]xx)*$/.test(httpCode)) problems.push({ field: annotationField('health-check-httpcode'), message: 'must be a comma-separated list of http_2xx, http_3xx, http_4xx, http_5xx' });
    else healthCheck.httpCode = httpCode;
  }
  if (healthCheck.type !== 'http' && (healthCheck.uri !== undefined || healthCheck.httpCode !== undefined)) {
    problems.push({ field: annotationField('health-check-type'), message: 'health-check-uri and health-check-httpcode need health-check-type: http' });
  }

  const listeners: DesiredListener[] = [];
  const seen = new Set<number>();
  (service.spec?.ports ?? []).forEach((port, i) => {
    const protocol = (port.protocol ?? 'TCP').toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp') {
      problems.push({ field: `spec.ports[${i}].protocol`, message: 'CLB listeners support TCP and UDP only' });
      return;
    }
    // A CLB front-end port carries one listener, whatever its protocol.
    if (seen.has(port.port)) {
      problems.push({ field: `spec.ports[${i}].port`, message: `port ${port.port} is used twice; a CLB port holds one listener` });
      return;
    }
    seen.add(port.port);
    // "Ports 250 and 4789 are reserved by the system and cannot be used for UDP listeners" (CLB, add a UDP listener).
    if (protocol === 'udp' && (port.port === 250 || port.port === 4789)) {
      problems.push({ field: `spec.ports[${i}].port`, message: `UDP port ${port.port} is reserved on CLB` });
      return;
    }
    if (!port.nodePort) {
      problems.push({ field: `spec.ports[${i}].nodePort`, message: 'a node port is required (allocateLoadBalancerNodePorts must not be false)' });
      return;
    }
    // UDP listeners have no HTTP health check.
    const { type: _type, uri: _uri, domain: _domain, httpCode: _code, ...udpHealthCheck } = healthCheck;
    const hc: HealthCheck = protocol === 'tcp' ? { ...healthCheck } : udpHealthCheck;
    listeners.push({ port: port.port, protocol, nodePort: port.nodePort, scheduler, healthCheck: hc });
  });
  if (listeners.length === 0 && problems.length === 0) problems.push({ field: 'spec.ports', message: 'at least one TCP or UDP port is required' });

  const sourceRanges = [...(service.spec?.loadBalancerSourceRanges ?? [])].map((r) => r.trim());
  sourceRanges.forEach((range, i) => {
    if (!parseCidr(range)) problems.push({ field: `spec.loadBalancerSourceRanges[${i}]`, message: `${JSON.stringify(range.slice(0, 50))} is not an IPv4 CIDR` });
  });
  // 0.0.0.0/0 alone means "everyone": no ACL at all.
  const ranges = sourceRanges.length === 1 && sourceRanges[0] === '0.0.0.0/0' ? [] : [...new Set(sourceRanges)].sort();

  if (problems.length > 0) return { problems };
  return {
    desired: {
      serviceKey: serviceKeyOf(service),
      uid: service.metadata?.uid ?? '',
      name,
      reuseId,
      forceOverrideListeners: force === 'true',
      addressType: addressType as 'internet' | 'intranet',
      spec,
      chargeType: chargeType as DesiredBalancer['chargeType'],
      bandwidth,
      vswitchId,
      deleteProtection: deleteProtection as 'on' | 'off',
      additionalTags,
      listeners,
      sourceRanges: ranges,
    },
  };
}

/**
 * `spec.providerID` -> ECS instance id. Accepts `<region>.<instance-id>` with or without
 * `alicloud://` (both forms exist in ACK and self-built clusters).
 */
export function instanceIdOf(providerID: string | undefined): string | undefined {
  if (!providerID) return undefined;
  const rest = providerID.startsWith('alicloud://') ? providerID.slice('alicloud://'.length) : providerID;
  const dot = rest.lastIndexOf('.');
  const id = dot >= 0 ? rest.slice(dot + 1) : rest;
  return /^i-[a-z0-9]+$/.test(id) ? id : undefined;
}

/** The eligible nodes' ECS instances, and the nodes skipped for an unusable providerID. */
export function instancesOf(nodes: readonly ReadonlyNode[]): { instances: string[]; skipped: string[] } {
  const instances = new Set<string>();
  const skipped: string[] = [];
  for (const node of nodes) {
    const id = instanceIdOf(node.spec?.providerID);
    if (id) instances.add(id);
    else skipped.push(node.metadata?.name ?? '');
  }
  return { instances: [...instances].sort(), skipped };
}

export function backendsFor(listener: DesiredListener, instances: readonly string[]): BackendServer[] {
  return instances.map((serverId) => ({ serverId, port: listener.nodePort, weight: 100 }));
}

export function specHash(desired: DesiredBalancer, instances: readonly string[]): string {
  const { serviceKey: _key, uid: _uid, ...rest } = desired;
  return createHash('sha256').update(JSON.stringify({ v: 1, rest, instances })).digest('hex').slice(0, 32);
}

/** Identifies our listeners and groups on any CLB, including a reused one. At most 80 characters. */
export function ownDescription(cluster: string, serviceKey: string): string {
  const full = `portico:${cluster}:${serviceKey}`;
  if (full.length <= 80) return full;
  return `portico:${createHash('sha256').update(full).digest('hex').slice(0, 40)}`;
}

export function groupName(description: string, listener: { port: number; protocol: string }): string {
  return `${description}:${listener.port}/${listener.protocol}`;
}

/**
 * Deterministic per cluster, Service uid and create parameters: a create retried after a crash is
 * the same request (the API answers with the same CLB), and a create with other parameters never
 * meets IdempotentParameterMismatch for a token used before.
 */
export function clientToken(cluster: string, uid: string, createParams: unknown = {}): string {
  return `portico-${createHash('sha256').update(JSON.stringify([cluster, uid, createParams])).digest('hex').slice(0, 48)}`;
}
