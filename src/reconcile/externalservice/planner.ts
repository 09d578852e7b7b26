/**
 * Published addresses -> the EndpointSlices and v1 Endpoints object that describe them, and
 * the writes that take what exists there. Pure: no I/O, tested as tables.
 */
import { createHash } from 'node:crypto';
import type { V1EndpointSlice, V1Endpoints, V1OwnerReference } from '@kubernetes/client-node';
import type { DeepReadonly } from '../../api/types.js';
import { compareIP, parseIP, type IPFamily } from '../../ipam/ip.js';
import { equivalent } from '../../kube/patch.js';
import type { DesiredPort } from './spec.js';

export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY = 'portico.dev';
export const MIRROR_MANAGED_BY = 'endpointslicemirroring-controller.k8s.io';
export const SKIP_MIRROR_LABEL = 'endpointslice.kubernetes.io/skip-mirror';
/** The API's limit per EndpointSlice. */
export const MAX_ENDPOINTS_PER_SLICE = 1000;
/** What the Endpoints controller keeps in one v1 Endpoints object (it truncates beyond). */
export const MAX_ENDPOINTS_ADDRESSES = 1000;
export const OVER_CAPACITY_ANNOTATION = 'endpoints.kubernetes.io/over-capacity';

export interface PublishedEndpoint {
  /** Canonical address text. */
  address: string;
  hostname?: string;
  zone?: string;
  /** A per-endpoint port (annotation `ip:port`), replacing the single port's targetPort. */
  targetPort?: number;
  ready: boolean;
}

export interface SlicePlanInput {
  namespace: string;
  serviceName: string;
  owner: V1OwnerReference;
  ports: readonly DesiredPort[];
  endpoints: readonly PublishedEndpoint[];
  /** Slices that exist now and are ours (managed-by portico.dev, this service). */
  existing: readonly DeepReadonly<V1EndpointSlice>[];
  maxPerSlice?: number;
}

export interface SlicePlan {
  create: V1EndpointSlice[];
  /**
   * Slices whose content changes (sent as merge patches with the existing resourceVersion),
   * emptied ones first: an address moving between slices is never in two at once.
   */
  update: V1EndpointSlice[];
  /**
   * Surplus slices (a family or port group gone, fewer chunks) are emptied, not deleted: the
   * controller's RBAC grants no delete; the garbage collector removes them with their owner,
   * and a later address of that group reuses the name.
   */
  emptied: string[];
  /** Every slice wanted with addresses, by name (for status and tests). */
  desired: V1EndpointSlice[];
}

const FAMILY_SHORT: Record<IPFamily, string> = { IPv4: 'v4', IPv6: 'v6' };

function slicePorts(ports: readonly DesiredPort[], targetPort: number | undefined): NonNullable<V1EndpointSlice['ports']> {
  return ports.map((p) => ({ name: p.name, port: targetPort ?? p.targetPort, protocol: p.protocol, ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) }));
}

/** A short stable suffix for a per-endpoint port group, so names do not move when others change. */
function portSuffix(targetPort: number | undefined): string {
  return targetPort === undefined ? '' : `-p${String(targetPort)}`;
}

/** Stable slice names: `<service>-<v4|v6>[-p<port>]-<n>`, with a hash when the Service name is long. */
export function sliceName(serviceName: string, family: IPFamily, targetPort: number | undefined, index: number): string {
  const suffix = `-${FAMILY_SHORT[family]}${portSuffix(targetPort)}-${String(index)}`;
  const max = 253 - suffix.length;
  if (serviceName.length <= max) return serviceName + suffix;
  const hash = createHash('sha256').update(serviceName).digest('hex').slice(0, 8);
  return `${serviceName.slice(0, max - 9)}-${hash}${suffix}`;
}

interface Group {
  family: IPFamily;
  targetPort: number | undefined;
  endpoints: PublishedEndpoint[];
}

/** Endpoints grouped by family and port override, each group sorted by address. */
function groups(endpoints: readonly PublishedEndpoint[]): Group[] {
  const byKey = new Map<string, Group>();
  for (const e of endpoints) {
    const ip = parseIP(e.address);
    const key = `${ip.family}/${String(e.targetPort ?? '')}`;
    let group = byKey.get(key);
    if (!group) {
      group = { family: ip.family, targetPort: e.targetPort, endpoints: [] };
      byKey.set(key, group);
    }
    group.endpoints.push(e);
  }
  const list = [...byKey.values()];
  for (const g of list) g.endpoints.sort((a, b) => compareIP(parseIP(a.address), parseIP(b.address)));
  return list.sort((a, b) => (a.family === b.family ? (a.targetPort ?? 0) - (b.targetPort ?? 0) : a.family === 'IPv4' ? -1 : 1));
}

/** The slices that describe `endpoints`, and the writes from `existing` to them. */
export function planSlices(input: SlicePlanInput): SlicePlan {
  const max = input.maxPerSlice ?? MAX_ENDPOINTS_PER_SLICE;
  const desired: V1EndpointSlice[] = [];
  for (const group of groups(input.endpoints)) {
    for (let i = 0; i * max < group.endpoints.length; i++) {
      const chunk = group.endpoints.slice(i * max, (i + 1) * max);
      desired.push({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: sliceName(input.serviceName, group.family, group.targetPort, i),
          namespace: input.namespace,
          labels: { [SERVICE_NAME_LABEL]: input.serviceName, [MANAGED_BY_LABEL]: MANAGED_BY },
          ownerReferences: [input.owner],
        },
        addressType: group.family,
        endpoints: chunk.map((e) => ({
          addresses: [e.address],
          conditions: { ready: e.ready, serving: e.ready, terminating: false },
          ...(e.zone ? { zone: e.zone } : {}),
        })),
        ports: slicePorts(input.ports, group.targetPort),
      });
    }
  }
  const existing = new Map(input.existing.map((s) => [s.metadata?.name ?? '', s]));
  const plan: SlicePlan = { create: [], update: [], emptied: [], desired };
  const changed: V1EndpointSlice[] = [];
  for (const want of desired) {
    const have = existing.get(want.metadata?.name ?? '');
    if (!have) plan.create.push(want);
    else if (!sliceEquivalent(have, want)) changed.push({ ...want, metadata: { ...want.metadata, resourceVersion: have.metadata?.resourceVersion } });
    existing.delete(want.metadata?.name ?? '');
  }
  const emptied: V1EndpointSlice[] = [];
  for (const [name, have] of [...existing.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const want: V1EndpointSlice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name, namespace: input.namespace, labels: { [SERVICE_NAME_LABEL]: input.serviceName, [MANAGED_BY_LABEL]: MANAGED_BY }, ownerReferences: [input.owner], resourceVersion: have.metadata?.resourceVersion },
      addressType: have.addressType,
      endpoints: [],
      ports: (have.ports ?? []).map((p) => ({ ...p })),
    };
    if (!sliceEquivalent(have, want)) {
      emptied.push(want);
      plan.emptied.push(name);
    }
  }
  plan.update = [...emptied, ...changed];
  return plan;
}

/** Compared on what we own; server-side defaults (e.g. nil zone) compare equal to absent. */
export function sliceEquivalent(have: DeepReadonly<V1EndpointSlice>, want: V1EndpointSlice): boolean {
  return (
    have.addressType === want.addressType &&
    equivalent(have.endpoints, want.endpoints) &&
    equivalent(have.ports, want.ports) &&
    equivalent(have.metadata?.labels, want.metadata?.labels) &&
    equivalent(have.metadata?.ownerReferences, want.metadata?.ownerReferences)
  );
}

export interface EndpointsPlanInput {
  namespace: string;
  serviceName: string;
  owner: V1OwnerReference;
  ports: readonly DesiredPort[];
  endpoints: readonly PublishedEndpoint[];
}

/** The v1 Endpoints object: ready addresses in `addresses`, failing ones in `notReadyAddresses`. */
export function planEndpoints(input: EndpointsPlanInput): V1Endpoints {
  const all = groups(input.endpoints);
  let budget = MAX_ENDPOINTS_ADDRESSES;
  const total = input.endpoints.length;
  // One subset per port set (the API's shape); IPv4 and IPv6 share subsets when ports match.
  const subsets = new Map<string, { addresses: { ip: string }[]; notReadyAddresses: { ip: string }[]; ports: NonNullable<V1EndpointSlice['ports']> }>();
  for (const group of all) {
    const key = String(group.targetPort ?? '');
    let subset = subsets.get(key);
    if (!subset) {
      subset = { addresses: [], notReadyAddresses: [], ports: slicePorts(input.ports, group.targetPort) };
      subsets.set(key, subset);
    }
    for (const e of group.endpoints) {
      if (budget-- <= 0) break;
      (e.ready ? subset.addresses : subset.notReadyAddresses).push({ ip: e.address });
    }
  }
  return {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: {
      name: input.serviceName,
      namespace: input.namespace,
      labels: { [SKIP_MIRROR_LABEL]: 'true' },
      ...(total > MAX_ENDPOINTS_ADDRESSES ? { annotations: { [OVER_CAPACITY_ANNOTATION]: 'truncated' } } : {}),
      ownerReferences: [input.owner],
    },
    subsets: [...subsets.values()].map((s) => ({
      ...(s.addresses.length > 0 ? { addresses: s.addresses } : {}),
      ...(s.notReadyAddresses.length > 0 ? { notReadyAddresses: s.notReadyAddresses } : {}),
      ports: s.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port ?? 0, protocol: p.protocol, ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) })),
    })),
  };
}

/** Whether `have` already says what `want` says (labels compared on the ones we set). */
export function endpointsEquivalent(have: DeepReadonly<V1Endpoints>, want: V1Endpoints): boolean {
  const labels = have.metadata?.labels ?? {};
  const labelsOk = Object.entries(want.metadata?.labels ?? {}).every(([k, v]) => labels[k] === v);
  return (
    labelsOk &&
    (have.metadata?.annotations?.[OVER_CAPACITY_ANNOTATION] ?? '') === (want.metadata?.annotations?.[OVER_CAPACITY_ANNOTATION] ?? '') &&
    equivalent(have.metadata?.ownerReferences, want.metadata?.ownerReferences) &&
    equivalent(have.subsets, want.subsets)
  );
}
