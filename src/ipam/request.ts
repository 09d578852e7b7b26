import type { V1Service } from '@kubernetes/client-node';
import type { DeepReadonly } from '../api/types.js';
import { canonicalSelector, isDNS1123Subdomain } from '../kube/label-selector.js';
import type { SpecProblem } from '../api/types.js';
import { AddressParseError, compareIP, formatIP, IP_FAMILIES, isIPFamily, otherFamily, parseIP } from './ip.js';
import type { IPAddress, IPFamily } from './ip.js';

export type IPFamilyPolicy = 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';
export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface ServicePort {
  port: number;
  protocol: Protocol;
}

/** What one Service asks for; built by allocationRequestFromService. */
export interface AllocationRequest {
  /** "namespace/name" */
  key: string;
  namespace: string;
  namespaceLabels: Readonly<Record<string, string>>;
  serviceLabels: Readonly<Record<string, string>>;
  /** Primary first. */
  ipFamilies: readonly IPFamily[];
  ipFamilyPolicy: IPFamilyPolicy;
  /** Canonical. */
  requestedIPs: readonly string[];
  requestedPool: string | undefined;
  sharingKey: string | undefined;
  ports: readonly ServicePort[];
  /** '' for externalTrafficPolicy Cluster; `Local:<selector>` for Local. */
  backendKey: string;
}

export const LOAD_BALANCER_IPS_ANNOTATION = 'portico.dev/load-balancer-ips';
export const ADDRESS_POOL_ANNOTATION = 'portico.dev/address-pool';
export const ALLOW_SHARED_IP_ANNOTATION = 'portico.dev/allow-shared-ip';

/** How a SpecProblem names an annotation. */
export function annotationField(name: string): string {
  return `metadata.annotations[${name}]`;
}

export const LOAD_BALANCER_IPS_FIELD = annotationField(LOAD_BALANCER_IPS_ANNOTATION);
export const ADDRESS_POOL_FIELD = annotationField(ADDRESS_POOL_ANNOTATION);
export const ALLOW_SHARED_IP_FIELD = annotationField(ALLOW_SHARED_IP_ANNOTATION);

const IP_FAMILY_POLICIES = ['SingleStack', 'PreferDualStack', 'RequireDualStack'] as const;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
const MAX_SHARING_KEY_LENGTH = 253;

/**
 * Reads what a Service asks of the allocator. Pure: the namespace's labels are passed in.
 * Every problem is reported at once, each naming the field or annotation to fix.
 */
export function allocationRequestFromService(
  service: DeepReadonly<V1Service>,
  namespaceLabels: Readonly<Record<string, string>>,
): { request: AllocationRequest } | { problems: SpecProblem[] } {
  const problems: SpecProblem[] = [];
  const metadata = service.metadata;
  const spec = service.spec;
  const annotations = metadata?.annotations ?? {};
  const annotation = (name: string): string | undefined => (Object.hasOwn(annotations, name) ? annotations[name] : undefined);

  const namespace = metadata?.namespace ?? '';
  const name = metadata?.name ?? '';
  if (namespace === '') problems.push({ field: 'metadata.namespace', message: 'is required' });
  if (name === '') problems.push({ field: 'metadata.name', message: 'is required' });

  const { ipFamilies, ipFamilyPolicy } = readFamilies(spec?.ipFamilies, spec?.ipFamilyPolicy, problems);
  // The families that will get an address: SingleStack uses only the primary one.
  const allocatable: readonly IPFamily[] = ipFamilyPolicy === 'SingleStack' ? ipFamilies.slice(0, 1) : ipFamilies;

  const annotated = annotation(LOAD_BALANCER_IPS_ANNOTATION);
  const requested =
    annotated === undefined
      ? []
      : readRequestedIPs(annotated.split(',').map((entry) => entry.trim()), LOAD_BALANCER_IPS_FIELD, allocatable, problems);
  const legacy = spec?.loadBalancerIP === undefined || spec.loadBalancerIP === '' ? undefined : spec.loadBalancerIP;
  let requestedIPs = requested;
  if (legacy !== undefined) {
    // Family rules apply to the legacy field only when it is the one in use.
    const legacyFamilies = annotated === undefined ? allocatable : IP_FAMILIES;
    const legacyIPs = readRequestedIPs([legacy], 'spec.loadBalancerIP', legacyFamilies, problems);
    if (annotated === undefined) {
      requestedIPs = legacyIPs;
    } else if (legacyIPs.length > 0 && requested.length > 0) {
      const legacyText = formatIP(legacyIPs[0] as IPAddress);
      if (!requested.some((ip) => formatIP(ip) === legacyText)) {
        problems.push({
          field: 'spec.loadBalancerIP',
          message: `${legacyText} disagrees with ${LOAD_BALANCER_IPS_ANNOTATION} (${requested.map(formatIP).join(',')}); remove the deprecated field`,
        });
      }
    }
  }
  requestedIPs.sort((a, b) => allocatable.indexOf(a.family) - allocatable.indexOf(b.family) || compareIP(a, b));

  const requestedPool = annotation(ADDRESS_POOL_ANNOTATION);
  if (requestedPool !== undefined && !isDNS1123Subdomain(requestedPool)) {
    problems.push({
      field: ADDRESS_POOL_FIELD,
      message: `${quote(requestedPool)} is not a pool name: name one pool, as a DNS-1123 subdomain`,
    });
  }

  const sharingKey = annotation(ALLOW_SHARED_IP_ANNOTATION);
  if (sharingKey !== undefined) {
    const reason = sharingKeyProblem(sharingKey);
    if (reason !== undefined) problems.push({ field: ALLOW_SHARED_IP_FIELD, message: reason });
  }

  const ports: ServicePort[] = [];
  (spec?.ports ?? []).forEach((port, i) => {
    const protocol = port.protocol ?? 'TCP';
    if (!Number.isInteger(port.port) || port.port < 1 || port.port > 65535) {
      problems.push({ field: `spec.ports[${i}].port`, message: 'must be an integer from 1 to 65535' });
    }
    if (!isOneOf(PROTOCOLS, protocol)) {
      problems.push({ field: `spec.ports[${i}].protocol`, message: `must be one of ${PROTOCOLS.join(', ')}` });
      return;
    }
    ports.push({ port: port.port, protocol });
  });

  const backendKey = backendKeyOf(service);
  const trafficPolicy = spec?.externalTrafficPolicy ?? 'Cluster';
  if (trafficPolicy !== 'Local' && trafficPolicy !== 'Cluster') {
    problems.push({ field: 'spec.externalTrafficPolicy', message: 'must be Cluster or Local' });
  }

  if (problems.length > 0) return { problems };
  return {
    request: {
      key: `${namespace}/${name}`,
      namespace,
      namespaceLabels: { ...namespaceLabels },
      serviceLabels: { ...(metadata?.labels ?? {}) },
      ipFamilies,
      ipFamilyPolicy,
      requestedIPs: requestedIPs.map(formatIP),
      requestedPool,
      sharingKey,
      ports,
      backendKey,
    },
  };
}

function readFamilies(
  rawFamilies: readonly string[] | undefined,
  rawPolicy: string | undefined,
  problems: SpecProblem[],
): { ipFamilies: IPFamily[]; ipFamilyPolicy: IPFamilyPolicy } {
  let ipFamilyPolicy: IPFamilyPolicy = 'SingleStack';
  if (rawPolicy !== undefined) {
    if (isOneOf(IP_FAMILY_POLICIES, rawPolicy)) ipFamilyPolicy = rawPolicy;
    else problems.push({ field: 'spec.ipFamilyPolicy', message: `must be one of ${IP_FAMILY_POLICIES.join(', ')}` });
  }
  const ipFamilies: IPFamily[] = [];
  if (rawFamilies === undefined || rawFamilies.length === 0) {
    ipFamilies.push('IPv4');
  } else {
    if (rawFamilies.length > 2) problems.push({ field: 'spec.ipFamilies', message: 'may list at most two families' });
    rawFamilies.forEach((family, i) => {
      if (!isIPFamily(family)) {
        problems.push({ field: `spec.ipFamilies[${i}]`, message: 'must be IPv4 or IPv6' });
      } else if (ipFamilies.includes(family)) {
        problems.push({ field: `spec.ipFamilies[${i}]`, message: `${family} is listed twice` });
      } else {
        ipFamilies.push(family);
      }
    });
    if (ipFamilies.length === 0) ipFamilies.push('IPv4');
  }
  if (ipFamilyPolicy === 'SingleStack' && ipFamilies.length > 1) {
    problems.push({ field: 'spec.ipFamilies', message: 'a SingleStack Service has exactly one family' });
  }
  // The API server always fills both families for RequireDualStack; do the same when it is absent here.
  const primary = ipFamilies[0] ?? 'IPv4';
  if (ipFamilyPolicy === 'RequireDualStack' && ipFamilies.length === 1) ipFamilies.push(otherFamily(primary));
  return { ipFamilies, ipFamilyPolicy };
}

/** Requested addresses: at most one per family, each of a family the Service gets an address of. */
function readRequestedIPs(
  entries: readonly string[],
  field: string,
  allocatable: readonly IPFamily[],
  problems: SpecProblem[],
): IPAddress[] {
  const result: IPAddress[] = [];
  if (entries.length > 2) {
    problems.push({ field, message: `lists ${entries.length} addresses; at most one IPv4 and one IPv6 address` });
    return result;
  }
  for (const [i, entry] of entries.entries()) {
    if (entry === '') {
      problems.push({ field, message: entries.length === 1 ? 'is empty' : `entry ${i + 1} is empty` });
      continue;
    }
    let address: IPAddress;
    try {
      address = parseIP(entry);
    } catch (error) {
      if (!(error instanceof AddressParseError)) throw error;
      problems.push({ field, message: error.message });
      continue;
    }
    const text = formatIP(address);
    const twin = result.find((other) => other.family === address.family);
    if (twin !== undefined) {
      problems.push({
        field,
        message:
          twin.value === address.value
            ? `${text} is listed twice`
            : `lists two ${address.family} addresses (${formatIP(twin)}, ${text}); at most one per family`,
      });
      continue;
    }
    if (!allocatable.includes(address.family)) {
      problems.push({
        field,
        message: `${text} is ${address.family}, but the Service gets addresses of ${allocatable.join(' and ')} only (spec.ipFamilies, spec.ipFamilyPolicy)`,
      });
      continue;
    }
    result.push(address);
  }
  return result;
}

function sharingKeyProblem(key: string): string | undefined {
  if (key.length === 0) return 'must not be empty';
  if (key.length > MAX_SHARING_KEY_LENGTH) return `must be at most ${MAX_SHARING_KEY_LENGTH} characters`;
  // Printable ASCII without surrounding spaces, so two keys that look alike are alike.
  if (!/^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(key)) {
    return 'must be printable ASCII without leading or trailing spaces';
  }
  return undefined;
}

function isOneOf<T extends string>(values: readonly T[], value: string): value is T {
  return (values as readonly string[]).includes(value);
}

function quote(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

/** Services that share an address with policy Local must land on the same nodes: same selector. */
export function backendKeyOf(service: DeepReadonly<V1Service>): string {
  return service.spec?.externalTrafficPolicy === 'Local' ? `Local:${canonicalSelector(service.spec.selector)}` : '';
}
