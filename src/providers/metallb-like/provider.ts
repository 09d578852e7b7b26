/**
 * The bare-metal provider, controller side: hands out addresses from AddressPools and writes
 * pool status. Announcing the addresses (ARP/NDP) is the speaker's job.
 *
 * All allocation state lives in the pure Allocator. It is rebuilt at the start of every
 * leadership term, before any reconcile, from every Service that shows an address and is (or
 * was) of this class, whatever its finalizer or annotations say — so an address never moves
 * because of a restart, and is never handed to two unshared Services. Pools that were valid
 * once keep their last valid spec in their status, so a new leader takes nothing away either.
 */
import type { V1Namespace, V1Node, V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { AddressPool, AddressPoolSpec } from '../../api/address-pool.js';
import type { Condition } from '../../api/types.js';
import { Allocator, type AllocationRequest, type Released } from '../../ipam/allocator.js';
import { formatRange, parseAddressRange, tryParseIP } from '../../ipam/ip.js';
import { isParsedPool, parsePool, type ParsedPool } from '../../ipam/pool.js';
import { ALLOW_SHARED_IP_ANNOTATION, allocationRequestFromService, backendKeyOf } from '../../ipam/request.js';
import type { Reservation } from '../../ipam/reserved.js';
import type { Clock } from '../../kube/clock.js';
import { boundedList, boundedMessage, setCondition } from '../../kube/conditions.js';
import type { EventSink } from '../../kube/events.js';
import { objectKey, type Cache } from '../../kube/informer.js';
import { patchStatus } from '../../kube/patch.js';
import type { KubeClient } from '../../kube/rest.js';
import { objectRef, serviceRef, splitKey } from '../../kube/refs.js';
import { ProviderError, type LoadBalancerProvider, type LoadBalancerStatus, type ProviderContext, type ReadonlyService, type SpecProblem } from '../provider.js';

export const L2_CLASS = 'portico.dev/l2';
const POOL_STATUS_DEBOUNCE_MS = 500;
export const SERVICE_CIDRS_PATH = '/apis/networking.k8s.io/v1/servicecidrs';
/** Condition on an AddressPool that lists the addresses it contains but never hands out. */
export const RESERVED_CONDITION = 'AddressesReserved';

export interface ServiceCIDR {
  metadata?: { name?: string; resourceVersion?: string; uid?: string };
  spec?: { cidrs?: string[] };
}

export interface L2Settings {
  /** Ranges never handed out besides the ones discovered (e.g. the Pod CIDR where nodes carry none). */
  excluded: readonly Reservation[];
}

export interface L2ProviderDeps {
  client: KubeClient;
  pools: Cache<AddressPool>;
  namespaces: Cache<V1Namespace>;
  /** To name Services (with their uid) in Events about addresses taken away by a pool edit. */
  services: Cache<V1Service>;
  /** Node addresses and Pod CIDRs are never handed out. */
  nodes: Cache<V1Node>;
  /** The cluster's Service CIDRs (networking.k8s.io/v1 ServiceCIDR) are never handed out. */
  serviceCIDRs: Cache<ServiceCIDR>;
  settings: L2Settings;
  events: EventSink;
  clock: Clock;
  logger: Logger;
}

function creationTime(object: { metadata?: { creationTimestamp?: Date | string } }): number {
  const created = object.metadata?.creationTimestamp;
  return created ? new Date(created).getTime() : 0;
}

/**
 * A request that only holds on to `ips` for a Service whose annotations do not parse right now.
 * It keeps the sharing key as written and the backends, so a sharing partner is not evicted.
 */
function frozenRequest(service: ReadonlyService, ips: readonly string[], namespaceLabels: Record<string, string>): AllocationRequest {
  const families = ips.map((ip) => tryParseIP(ip)?.family ?? 'IPv4');
  const sharingKey = service.metadata?.annotations?.[ALLOW_SHARED_IP_ANNOTATION]?.trim();
  return {
    key: objectKey(service),
    namespace: service.metadata?.namespace ?? '',
    namespaceLabels,
    serviceLabels: service.metadata?.labels ?? {},
    ipFamilies: families,
    ipFamilyPolicy: families.length > 1 ? 'RequireDualStack' : 'SingleStack',
    requestedIPs: [],
    requestedPool: undefined,
    sharingKey: sharingKey === '' ? undefined : sharingKey,
    ports: (service.spec?.ports ?? []).map((p) => ({ port: p.port, protocol: (p.protocol ?? 'TCP') as 'TCP' | 'UDP' | 'SCTP' })),
    backendKey: backendKeyOf(service),
  };
}

/** `--l2-excluded-cidrs` -> reservations, or problems naming the flag. */
export function parseExcluded(text: string): { excluded: Reservation[] } | { problems: string[] } {
  const excluded: Reservation[] = [];
  const problems: string[] = [];
  for (const entry of text.split(',').map((e) => e.trim()).filter(Boolean)) {
    try {
      excluded.push({ ...parseAddressRange(entry), why: `excluded by --l2-excluded-cidrs (${entry})` });
    } catch (error) {
      problems.push(`--l2-excluded-cidrs: ${JSON.stringify(entry.slice(0, 64))}: ${(error as Error).message}`);
    }
  }
  return problems.length > 0 ? { problems } : { excluded };
}

/** The cluster's own ranges, from ServiceCIDR objects and Nodes. Pure. */
export function clusterReservations(serviceCIDRs: readonly ServiceCIDR[], nodes: readonly V1Node[], excluded: readonly Reservation[]): Reservation[] {
  const out: Reservation[] = [...excluded];
  const add = (text: string, why: string): void => {
    try {
      out.push({ ...parseAddressRange(text.includes('/') || text.includes('-') ? text : `${text}/${text.includes(':') ? 128 : 32}`), why });
    } catch {
      // Not an address: nothing to reserve.
    }
  };
  for (const cidr of serviceCIDRs) for (const text of cidr.spec?.cidrs ?? []) add(text, `Service CIDR ${text} (ServiceCIDR ${cidr.metadata?.name ?? ''})`);
  for (const node of nodes) {
    const name = node.metadata?.name ?? '';
    for (const address of node.status?.addresses ?? []) {
      if (address.type === 'InternalIP' || address.type === 'ExternalIP') add(address.address, `address of node ${name}`);
    }
    for (const cidr of node.spec?.podCIDRs ?? []) add(cidr, `Pod CIDR ${cidr} of node ${name}`);
  }
  return out;
}

export class L2Provider implements LoadBalancerProvider {
  readonly providerClass = L2_CLASS;
  // Pools, Services, Nodes and the status it writes are all watched: drift arrives as an event.
  readonly resync = false;
  private readonly allocator = new Allocator();
  private readonly listeners: ((keys: readonly string[]) => void)[] = [];
  /** Services that could not get an address; retried whenever capacity changes, not on a timer. */
  private readonly waiting = new Set<string>();
  private poolProblems = new Map<string, { reason: string; message: string }>();
  /** The last spec of each pool that parsed: an invalid edit freezes the pool at it. */
  private readonly lastValidPools = new Map<string, { parsed: ParsedPool; spec: AddressPoolSpec }>();
  private reservationsKey = '';
  private started = false;
  private cancelPoolStatus: (() => void) | undefined;

  constructor(private readonly deps: L2ProviderDeps) {
    const onPools = (): void => {
      if (this.started) this.poolsChanged();
    };
    deps.pools.on({ onAdd: onPools, onUpdate: (old, pool) => {
      // Only spec edits bump a CRD's generation; our own status writes do not.
      if (old.metadata.generation !== pool.metadata.generation) onPools();
    }, onDelete: onPools });
    // Pools may select namespaces by label: a relabelled namespace can gain or lose access.
    deps.namespaces.on({
      onUpdate: (old, ns) => {
        if (!this.started || JSON.stringify(old.metadata?.labels ?? {}) === JSON.stringify(ns.metadata?.labels ?? {})) return;
        const prefix = `${ns.metadata?.name ?? ''}/`;
        const keys = [...this.waiting, ...this.allocator.assignments().map((a) => a.key)].filter((key) => key.startsWith(prefix));
        this.notify([...new Set(keys)]);
      },
    });
    const onCluster = (): void => {
      if (this.started) this.clusterChanged();
    };
    deps.nodes.on({ onAdd: onCluster, onUpdate: onCluster, onDelete: onCluster });
    deps.serviceCIDRs.on({ onAdd: onCluster, onUpdate: onCluster, onDelete: onCluster });
  }

  stop(): void {
    this.started = false;
    this.cancelPoolStatus?.();
    this.cancelPoolStatus = undefined;
    this.listeners.length = 0;
  }

  onChange(listener: (serviceKeys: readonly string[]) => void): void {
    this.listeners.push(listener);
  }

  private notify(keys: readonly string[]): void {
    if (keys.length === 0) return;
    for (const listener of this.listeners) listener(keys);
  }

  async start(signal: AbortSignal, services: readonly ReadonlyService[]): Promise<void> {
    const { pools, namespaces, nodes, serviceCIDRs } = this.deps;
    const synced = await Promise.all([pools.waitForSync(signal), namespaces.waitForSync(signal), nodes.waitForSync(signal), serviceCIDRs.waitForSync(signal)]);
    if (!synced.every(Boolean)) return;
    this.applyClusterReservations();
    this.applyPools();
    // Oldest first: when two Services claim one address, the one that had it first keeps it.
    // Services whose spec is valid go before those kept only for what their status shows, so a
    // valid sharing partner is never evicted by an invalid one.
    const byAge = [...services].sort((a, b) => creationTime(a) - creationTime(b) || objectKey(a).localeCompare(objectKey(b)));
    const restores = byAge
      .map((service) => ({ service, ips: (service.status?.loadBalancer?.ingress ?? []).map((i) => i.ip).filter((ip): ip is string => ip !== undefined) }))
      .filter((r) => r.ips.length > 0)
      .map((r) => {
        const request = this.request(r.service);
        return { ...r, request: 'request' in request ? request.request : frozenRequest(r.service, r.ips, this.namespaceLabels(r.service)), valid: 'request' in request };
      });
    let restored = 0;
    for (const r of [...restores.filter((x) => x.valid), ...restores.filter((x) => !x.valid)]) {
      const result = this.allocator.restore(r.request, r.ips);
      if (result.ok) restored++;
      else this.deps.logger.warn({ service: objectKey(r.service), ips: r.ips, reason: result.reason, message: result.message }, 'could not keep the address in status; it will be re-assigned');
    }
    this.started = true;
    this.deps.logger.info({ restored, pools: pools.list().length }, 'address allocations rebuilt from Service status');
    this.schedulePoolStatus();
  }

  private namespaceLabels(service: ReadonlyService): Record<string, string> {
    return this.deps.namespaces.get(service.metadata?.namespace ?? '')?.metadata?.labels ?? {};
  }

  private request(service: ReadonlyService): { request: AllocationRequest } | { problems: SpecProblem[] } {
    return allocationRequestFromService(service, this.namespaceLabels(service));
  }

  validate(service: ReadonlyService): SpecProblem[] {
    const request = this.request(service);
    return 'problems' in request ? request.problems : [];
  }

  holds(service: ReadonlyService): boolean {
    return this.allocator.assignmentOf(objectKey(service)) !== undefined;
  }

  get(_ctx: ProviderContext, service: ReadonlyService): Promise<{ exists: boolean; status?: LoadBalancerStatus }> {
    const assignment = this.allocator.assignmentOf(objectKey(service));
    if (!assignment) return Promise.resolve({ exists: false });
    return Promise.resolve({ exists: true, status: this.status(service, assignment.ips) });
  }

  private status(service: ReadonlyService, ips: readonly string[]): LoadBalancerStatus {
    const ports = (service.spec?.ports ?? []).map((p) => ({ port: p.port, protocol: (p.protocol ?? 'TCP') as 'TCP' | 'UDP' | 'SCTP' }));
    return { ingress: ips.map((ip) => ({ ip, ipMode: 'VIP' as const, ...(ports.length > 0 ? { ports } : {}) })) };
  }

  ensure(ctx: ProviderContext, service: ReadonlyService): Promise<LoadBalancerStatus> {
    const key = objectKey(service);
    const request = this.request(service);
    if ('problems' in request) {
      const first = request.problems[0];
      return Promise.reject(new ProviderError(first?.message ?? 'invalid Service', { retryable: false, reason: 'InvalidSpec', field: first?.field }));
    }
    const before = this.allocator.assignmentOf(key)?.ips.join(',');
    const result = this.allocator.assign(request.request);
    if (!result.ok) {
      this.waiting.add(key);
      this.schedulePoolStatus();
      // Not retried on a timer: a freed address or a pool change re-queues it (see notify).
      return Promise.reject(new ProviderError(`${result.reason}: ${result.message}`, { retryable: false, reason: 'AllocationFailed', field: result.field }));
    }
    this.waiting.delete(key);
    for (const evicted of result.evicted ?? []) {
      this.releasedEvent(evicted);
      ctx.events.record('Warning', 'SharingConflict', boundedMessage(`${evicted.key} lost the shared address ${evicted.ips.join(', ')}: it now uses a port this Service, the first holder, took; it gets another address`));
    }
    if (before !== result.ips.join(',')) {
      ctx.events.record('Normal', 'IPAllocated', `assigned from pool ${result.pool}`);
      this.schedulePoolStatus();
      // Another Service's address may have been freed by this one moving.
      if (before !== undefined) this.capacityChanged();
    }
    if (result.evicted) this.notify(result.evicted.map((e) => e.key));
    return Promise.resolve(this.status(service, result.ips));
  }

  updateBackends(): Promise<void> {
    // Backends are the speaker's concern: it announces from an eligible node on its own.
    return Promise.resolve();
  }

  ensureDeleted(_ctx: ProviderContext, service: ReadonlyService): Promise<void> {
    const key = objectKey(service);
    this.waiting.delete(key);
    if (this.allocator.assignmentOf(key)) {
      this.allocator.release(key);
      this.schedulePoolStatus();
      this.capacityChanged();
    }
    return Promise.resolve();
  }

  private capacityChanged(): void {
    this.notify([...this.waiting]);
  }

  private releasedEvent(r: Released): void {
    const service = this.deps.services.get(r.key);
    const { namespace, name } = splitKey(r.key);
    const ref = service ? serviceRef(service) : { apiVersion: 'v1', kind: 'Service', ...(namespace ? { namespace } : {}), name };
    this.deps.events.record(ref, 'Warning', 'IPReleased', boundedMessage(`Address(es) ${r.ips.join(', ')} from pool ${r.pool} released: ${r.reason}; re-assigning`));
  }

  private applyClusterReservations(): Released[] {
    const reservations = clusterReservations(this.deps.serviceCIDRs.list(), this.deps.nodes.list(), this.deps.settings.excluded);
    const key = reservations.map((r) => `${formatRange(r)}=${r.why}`).sort().join('\n');
    if (key === this.reservationsKey) return [];
    this.reservationsKey = key;
    return this.allocator.setClusterReservations(reservations);
  }

  private clusterChanged(): void {
    const released = this.applyClusterReservations();
    if (released.length === 0) return;
    for (const r of released) this.releasedEvent(r);
    this.deps.logger.info({ released: released.length }, 'cluster ranges changed (Service CIDRs, node addresses)');
    this.schedulePoolStatus();
    this.notify(released.map((r) => r.key));
  }

  private applyPools(): Released[] {
    const parsed: ParsedPool[] = [];
    const problems = new Map<string, { reason: string; message: string }>();
    const frozen = new Map<string, string>();
    const present = new Set<string>();
    // Oldest first: of two overlapping pools, the newer is the mistake (the allocator freezes it).
    // Pools this process already used come before ones it has not seen yet (creation times
    // have one-second resolution), then by creation time and name.
    const seen = (pool: AddressPool): number => (this.lastValidPools.has(pool.metadata.name) ? 0 : 1);
    const pools = [...this.deps.pools.list()].sort((a, b) => seen(a) - seen(b) || creationTime(a) - creationTime(b) || a.metadata.name.localeCompare(b.metadata.name));
    for (const pool of pools) {
      const name = pool.metadata.name;
      present.add(name);
      const result = parsePool(pool);
      if (isParsedPool(result)) {
        parsed.push(result);
        this.lastValidPools.set(name, { parsed: result, spec: pool.spec });
        continue;
      }
      const message = boundedList(result.problems.map((p) => `${p.field}: ${p.message}`));
      // A typo in an edit must not take addresses away: keep the last valid spec, frozen —
      // from memory, or from the pool's status after a restart or failover.
      const lastValid = this.lastValidPools.get(name)?.parsed ?? this.persistedSpec(pool);
      if (lastValid) {
        parsed.push(lastValid);
        frozen.set(name, 'its spec is invalid; the last valid one is kept for the addresses already assigned');
      }
      problems.set(name, { reason: 'InvalidSpec', message: boundedMessage(lastValid ? `${message} (keeping the last valid spec for assigned addresses; no new ones)` : message) });
    }
    for (const name of [...this.lastValidPools.keys()]) if (!present.has(name)) this.lastValidPools.delete(name);
    const released = this.allocator.setPools(parsed, frozen);
    for (const entry of parsed) {
      const overlapping = this.allocator.overlapsOf(entry.name);
      if (overlapping.length > 0 && !problems.has(entry.name)) {
        problems.set(entry.name, { reason: 'Overlap', message: boundedMessage(`addresses overlap with older pool(s) ${boundedList(overlapping, 5, ', ')}; this pool hands out no new addresses until fixed (the older ones are unaffected)`) });
      }
    }
    for (const [name, problem] of problems) {
      const previous = this.poolProblems.get(name);
      if (previous?.message !== problem.message) {
        const pool = this.deps.pools.get(name);
        if (pool) this.deps.events.record(objectRef('portico.dev/v1alpha1', 'AddressPool', pool), 'Warning', problem.reason, problem.message);
      }
    }
    this.poolProblems = problems;
    return released;
  }

  /** The last valid spec a previous leader recorded in the pool's status, parsed. */
  private persistedSpec(pool: AddressPool): ParsedPool | undefined {
    const text = pool.status?.lastValidSpec;
    if (text === undefined) return undefined;
    try {
      const result = parsePool({ ...pool, spec: JSON.parse(text) as AddressPoolSpec });
      return isParsedPool(result) ? result : undefined;
    } catch {
      return undefined;
    }
  }

  private poolsChanged(): void {
    const released = this.applyPools();
    for (const r of released) this.releasedEvent(r);
    this.deps.logger.info({ released: released.length }, 'address pools changed');
    this.schedulePoolStatus();
    this.notify([...released.map((r) => r.key), ...this.waiting]);
  }

  private schedulePoolStatus(): void {
    if (this.cancelPoolStatus || !this.started) return;
    this.cancelPoolStatus = this.deps.clock.setTimer(() => {
      this.cancelPoolStatus = undefined;
      void this.writePoolStatuses().catch((error: unknown) => this.deps.logger.warn({ err: error }, 'could not update AddressPool status'));
    }, POOL_STATUS_DEBOUNCE_MS);
  }

  /** Counts, conditions and the last valid spec on every pool, written only where they changed. */
  private async writePoolStatuses(): Promise<void> {
    const now = new Date(this.deps.clock.now());
    for (const pool of this.deps.pools.list()) {
      const name = pool.metadata.name;
      const problem = this.poolProblems.get(name);
      const counted = this.allocator.stats(name) ?? { assignedIPv4: 0, assignedIPv6: 0, availableIPv4: 0, availableIPv6: 0 };
      // A pool with a problem hands out nothing new, but its assigned addresses are still in use.
      const stats = problem ? { ...counted, availableIPv4: 0, availableIPv6: 0 } : counted;
      const lastValid = this.lastValidPools.get(name);
      const reserved = this.allocator.reservationsOf(name);
      await patchStatus(this.deps.client, `/apis/portico.dev/v1alpha1/addresspools/${name}`, pool as AddressPool & { status?: Record<string, unknown> }, (current) => {
        const generation = current.metadata.generation;
        let conditions: Condition[] = setCondition(current.status?.conditions, { type: 'Ready', status: problem ? 'False' : 'True', reason: problem?.reason ?? 'Valid', message: problem?.message ?? 'pool is valid and in use' }, now, generation);
        conditions = setCondition(
          conditions,
          reserved.length > 0
            ? { type: RESERVED_CONDITION, status: 'True', reason: 'ContainsReservedAddresses', message: boundedMessage(`never handed out: ${boundedList(reserved.map((r) => `${formatRange(r)} (${r.why})`))}`) }
            : { type: RESERVED_CONDITION, status: 'False', reason: 'NoReservedAddresses', message: 'every address of the pool can be handed out' },
          now,
          generation,
        );
        return {
          ...stats,
          ...(generation !== undefined ? { observedGeneration: generation } : {}),
          conditions,
          // Only what parsed: a restarted leader freezes an invalid pool at this spec.
          ...(lastValid ? { lastValidSpec: JSON.stringify(lastValid.spec) } : {}),
        };
      }).catch((error: unknown) => {
        this.deps.logger.warn({ err: error, pool: name }, 'could not write AddressPool status');
      });
    }
  }
}
