/**
 * Which node announces which address: pure, no I/O, the same answer on every speaker given the
 * same inputs.
 *
 * - The unit is the announced IP, not the Service: every Service holding an IP is announced by
 *   the one node elected for that IP, so shared addresses never split across nodes.
 * - Candidates for an IP: nodes that exist, are not excluded
 *   (`node.kubernetes.io/exclude-from-external-load-balancers`, `NetworkUnavailable=True`),
 *   match the pool's `l2.nodeSelector`, and — when every Service on the IP has
 *   `externalTrafficPolicy: Local` — have a ready endpoint of one of those Services.
 * - Ranking: ascending sha256(node + "#" + ip), ties by name. Each IP gets its own order, so
 *   addresses spread over nodes and a node's failure moves each of its IPs to a different
 *   runner-up.
 * - The announcer is the first candidate in that order that is live; liveness is decided
 *   elsewhere (liveness.ts) and passed in as a predicate.
 */
import { createHash } from 'node:crypto';
import { canonicalIP, tryParseIP, type IPAddress } from '../../../ipam/ip.js';
import { poolHasAddress, type ParsedPool } from '../../../ipam/pool.js';
import { compareCodeUnits, matchesSelector } from '../../../kube/label-selector.js';
import type { DeepReadonly } from '../../../api/types.js';

export const L2_CLASS = 'portico.dev/l2';
export const EXCLUDE_LABEL = 'node.kubernetes.io/exclude-from-external-load-balancers';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface ServiceLike {
  metadata?: { name?: string; namespace?: string; uid?: string };
  spec?: { type?: string; loadBalancerClass?: string; externalTrafficPolicy?: string };
  status?: { loadBalancer?: { ingress?: readonly { ip?: string }[] } };
}

export interface NodeLike {
  metadata?: { name?: string; labels?: Readonly<Record<string, string>> };
  status?: { conditions?: readonly { type?: string; status?: string }[] };
}

export interface EndpointSliceLike {
  metadata?: { namespace?: string; labels?: Readonly<Record<string, string>> };
  endpoints?: readonly { nodeName?: string; conditions?: { ready?: boolean } }[];
}

export interface ElectionInput {
  services: readonly DeepReadonly<ServiceLike>[];
  endpointSlices: readonly DeepReadonly<EndpointSliceLike>[];
  nodes: readonly DeepReadonly<NodeLike>[];
  pools: readonly ParsedPool[];
}

/** One announced address and everything the speakers need to agree on its announcer. */
export interface AnnouncedIP {
  /** Canonical text form, the key. */
  ip: string;
  address: IPAddress;
  pool: string;
  /** `l2.interfaces` of the pool; empty = every suitable interface. */
  interfaces: readonly string[];
  /** `namespace/name` of every Service holding the IP, sorted. */
  services: readonly string[];
  /** True when every Service on the IP has externalTrafficPolicy Local. */
  local: boolean;
  /** Eligible nodes, best first. Empty: nobody may announce (e.g. Local without ready endpoints). */
  candidates: readonly string[];
}

export function serviceKey(service: DeepReadonly<ServiceLike>): string {
  return `${service.metadata?.namespace ?? ''}/${service.metadata?.name ?? ''}`;
}

/** The hash order: sha256(node + "#" + ip), lowest first. */
export function rankNodes(ip: string, nodes: readonly string[]): string[] {
  const score = new Map(nodes.map((node) => [node, createHash('sha256').update(`${node}#${ip}`).digest('hex')]));
  return [...new Set(nodes)].sort((a, b) => compareCodeUnits(score.get(a) ?? '', score.get(b) ?? '') || compareCodeUnits(a, b));
}

/** Not excluded by label, and no `NetworkUnavailable=True`. */
export function nodeUsable(node: DeepReadonly<NodeLike>): boolean {
  if (node.metadata?.labels?.[EXCLUDE_LABEL] !== undefined) return false;
  return !(node.status?.conditions ?? []).some((c) => c.type === 'NetworkUnavailable' && c.status === 'True');
}

/** A LoadBalancer Service of the l2 class (or of no class: the pools decide whether its IPs are ours). */
function isL2Service(service: DeepReadonly<ServiceLike>): boolean {
  if (service.spec?.type !== 'LoadBalancer') return false;
  const cls = service.spec.loadBalancerClass;
  return cls === undefined || cls === L2_CLASS;
}

/** Nodes with at least one ready endpoint of the Service (EndpointSlice `ready` unset counts as ready). */
export function readyEndpointNodes(service: DeepReadonly<ServiceLike>, slices: readonly DeepReadonly<EndpointSliceLike>[]): Set<string> {
  const nodes = new Set<string>();
  for (const slice of slices) {
    if (slice.metadata?.namespace !== service.metadata?.namespace) continue;
    if (slice.metadata?.labels?.[SERVICE_NAME_LABEL] !== service.metadata?.name) continue;
    for (const endpoint of slice.endpoints ?? []) {
      if (endpoint.nodeName && endpoint.conditions?.ready !== false) nodes.add(endpoint.nodeName);
    }
  }
  return nodes;
}

/**
 * Every address to announce, with its ranked candidates. Addresses outside every pool are not
 * ours and are left out, whatever a Service's status says.
 */
export function planAnnouncements(input: ElectionInput): Map<string, AnnouncedIP> {
  const byIP = new Map<string, { address: IPAddress; services: DeepReadonly<ServiceLike>[] }>();
  for (const service of input.services) {
    if (!isL2Service(service)) continue;
    for (const ingress of service.status?.loadBalancer?.ingress ?? []) {
      const address = ingress.ip === undefined ? undefined : tryParseIP(ingress.ip);
      if (!address || ingress.ip === undefined) continue;
      const ip = canonicalIP(ingress.ip);
      const entry = byIP.get(ip) ?? { address, services: [] };
      entry.services.push(service);
      byIP.set(ip, entry);
    }
  }
  const usable = input.nodes.filter(nodeUsable);
  const plan = new Map<string, AnnouncedIP>();
  for (const [ip, { address, services }] of [...byIP].sort(([a], [b]) => compareCodeUnits(a, b))) {
    const pool = input.pools.find((p) => poolHasAddress(p, address));
    if (!pool) continue;
    const local = services.every((s) => s.spec?.externalTrafficPolicy === 'Local');
    let ready: Set<string> | undefined;
    if (local) {
      ready = new Set();
      for (const service of services) for (const node of readyEndpointNodes(service, input.endpointSlices)) ready.add(node);
    }
    const eligible = usable
      .filter((node) => matchesSelector(pool.l2?.nodeSelector, node.metadata?.labels ?? {}))
      .map((node) => node.metadata?.name ?? '')
      .filter((name) => name !== '' && (ready === undefined || ready.has(name)));
    plan.set(ip, {
      ip,
      address,
      pool: pool.name,
      interfaces: [...(pool.l2?.interfaces ?? [])],
      services: services.map(serviceKey).sort(compareCodeUnits),
      local,
      candidates: rankNodes(ip, eligible),
    });
  }
  return plan;
}

/** The first live candidate, or undefined when none is live. */
export function electAnnouncer(candidates: readonly string[], isLive: (node: string) => boolean): string | undefined {
  return candidates.find(isLive);
}

/**
 * The nodes `self` must watch closely (probe directly) because it is next in line behind them:
 * for each IP where `self` is the second live-by-lease candidate, the first one. Only the
 * runner-up probes, so probe traffic grows with the number of IPs, not with nodes squared.
 */
export function nodesToProbe(plan: ReadonlyMap<string, AnnouncedIP>, self: string, leaseLive: (node: string) => boolean): Set<string> {
  const targets = new Set<string>();
  for (const entry of plan.values()) {
    const live = entry.candidates.filter((node) => node === self || leaseLive(node));
    if (live[1] === self && live[0] !== undefined) targets.add(live[0]);
  }
  return targets;
}
