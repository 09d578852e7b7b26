/**
 * The bare-metal provider, controller side: hands out addresses from AddressPools and writes
 * pool status. Announcing the addresses (ARP/NDP) is the speaker's job.
 *
 * All allocation state lives in the pure Allocator; it is rebuilt from Services' status at the
 * start of every leadership term, before any reconcile, so an address is never handed to two
 * unshared Services.
 */
import type { V1Namespace, V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { AddressPool } from '../../api/address-pool.js';
import type { Condition } from '../../api/types.js';
import { Allocator, type AllocationRequest } from '../../ipam/allocator.js';
import { tryParseIP } from '../../ipam/ip.js';
import { findOverlaps, isParsedPool, parsePool, type ParsedPool } from '../../ipam/pool.js';
import { allocationRequestFromService } from '../../ipam/request.js';
import type { Clock } from '../../kube/clock.js';
import type { EventSink } from '../../kube/events.js';
import { objectKey, type Cache } from '../../kube/informer.js';
import { patchStatus } from '../../kube/patch.js';
import type { KubeClient } from '../../kube/rest.js';
import { objectRef, serviceRef, splitKey } from '../../kube/refs.js';
import { ProviderError, type LoadBalancerProvider, type LoadBalancerStatus, type ProviderContext, type ReadonlyService, type SpecProblem } from '../provider.js';

export const L2_CLASS = 'portico.dev/l2';
const POOL_STATUS_DEBOUNCE_MS = 500;

export interface L2ProviderDeps {
  client: KubeClient;
  pools: Cache<AddressPool>;
  namespaces: Cache<V1Namespace>;
  /** To name Services (with their uid) in Events about addresses taken away by a pool edit. */
  services: Cache<V1Service>;
  events: EventSink;
  clock: Clock;
  logger: Logger;
}

function creationTime(service: ReadonlyService): number {
  const created = service.metadata?.creationTimestamp;
  return created ? new Date(created).getTime() : 0;
}

/** A request that only holds on to `ips` for a Service whose annotations do not parse right now. */
function frozenRequest(service: ReadonlyService, ips: readonly string[], namespaceLabels: Record<string, string>): AllocationRequest {
  const families = ips.map((ip) => tryParseIP(ip)?.family ?? 'IPv4');
  return {
    key: objectKey(service),
    namespace: service.metadata?.namespace ?? '',
    namespaceLabels,
    serviceLabels: service.metadata?.labels ?? {},
    ipFamilies: families,
    ipFamilyPolicy: families.length > 1 ? 'RequireDualStack' : 'SingleStack',
    requestedIPs: [],
    requestedPool: undefined,
    sharingKey: undefined,
    ports: (service.spec?.ports ?? []).map((p) => ({ port: p.port, protocol: (p.protocol ?? 'TCP') as 'TCP' | 'UDP' | 'SCTP' })),
    backendKey: '',
  };
}

export class L2Provider implements LoadBalancerProvider {
  readonly providerClass = L2_CLASS;
  private readonly allocator = new Allocator();
  private readonly listeners: ((keys: readonly string[]) => void)[] = [];
  /** Services that could not get an address; retried whenever capacity changes, not on a timer. */
  private readonly waiting = new Set<string>();
  private poolProblems = new Map<string, { reason: string; message: string }>();
  /** The last spec of each pool that parsed: an invalid edit freezes the pool at it. */
  private readonly lastValidPools = new Map<string, ParsedPool>();
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

  async start(signal: AbortSignal, provisioned: readonly ReadonlyService[]): Promise<void> {
    const synced = await Promise.all([this.deps.pools.waitForSync(signal), this.deps.namespaces.waitForSync(signal)]);
    if (!synced.every(Boolean)) return;
    this.applyPools();
    // Oldest first: when two Services claim one address, the one that had it first keeps it.
    const byAge = [...provisioned].sort((a, b) => creationTime(a) - creationTime(b) || objectKey(a).localeCompare(objectKey(b)));
    let restored = 0;
    for (const service of byAge) {
      const ips = (service.status?.loadBalancer?.ingress ?? []).map((i) => i.ip).filter((ip): ip is string => ip !== undefined);
      if (ips.length === 0) continue;
      const request = this.request(service);
      // A Service whose spec is invalid now still shows its address: it stays reserved for it.
      const restoreRequest = 'request' in request ? request.request : frozenRequest(service, ips, this.namespaceLabels(service));
      const result = this.allocator.restore(restoreRequest, ips);
      if (result.ok) restored++;
      else this.deps.logger.warn({ service: objectKey(service), ips, reason: result.reason, message: result.message }, 'could not keep the address in status; it will be re-assigned');
    }
    this.started = true;
    this.deps.logger.info({ restored, pools: this.deps.pools.list().length }, 'address allocations rebuilt from Service status');
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
    if (before !== result.ips.join(',')) {
      ctx.events.record('Normal', 'IPAllocated', `Assigned IP ${JSON.stringify(result.ips)} from pool ${result.pool}`);
      this.schedulePoolStatus();
      // Another Service's address may have been freed by this one moving.
      if (before !== undefined) this.capacityChanged();
    }
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

  private applyPools(): ReturnType<Allocator['setPools']> {
    const parsed: ParsedPool[] = [];
    const problems = new Map<string, { reason: string; message: string }>();
    const frozen = new Map<string, string>();
    const present = new Set<string>();
    for (const pool of this.deps.pools.list()) {
      const name = pool.metadata.name;
      present.add(name);
      const result = parsePool(pool);
      if (isParsedPool(result)) {
        parsed.push(result);
        this.lastValidPools.set(name, result);
        continue;
      }
      const message = result.problems.map((p) => `${p.field}: ${p.message}`).join('; ');
      // A typo in an edit must not take addresses away: keep the last valid spec, frozen.
      const lastValid = this.lastValidPools.get(name);
      if (lastValid) {
        parsed.push(lastValid);
        frozen.set(name, 'its spec is invalid; the last valid one is kept for the addresses already assigned');
      }
      problems.set(name, { reason: 'InvalidSpec', message: lastValid ? `${message} (keeping the last valid spec for assigned addresses; no new ones)` : message });
    }
    for (const name of [...this.lastValidPools.keys()]) if (!present.has(name)) this.lastValidPools.delete(name);
    for (const [name, others] of findOverlaps(parsed)) {
      problems.set(name, { reason: 'Overlap', message: `addresses overlap with pool(s) ${others.join(', ')}; neither is used for new allocations until fixed` });
    }
    for (const [name, problem] of problems) {
      const previous = this.poolProblems.get(name);
      if (previous?.message !== problem.message) {
        // Cluster-scoped: no namespace on the reference, and the uid so `kubectl describe` finds it.
        const pool = this.deps.pools.get(name);
        if (pool) this.deps.events.record(objectRef('portico.dev/v1alpha1', 'AddressPool', pool), 'Warning', problem.reason, problem.message);
      }
    }
    this.poolProblems = problems;
    return this.allocator.setPools(parsed, frozen);
  }

  private poolsChanged(): void {
    const released = this.applyPools();
    for (const r of released) {
      const service = this.deps.services.get(r.key);
      const ref = service ? serviceRef(service) : { apiVersion: 'v1', kind: 'Service', namespace: splitKey(r.key).namespace, name: splitKey(r.key).name };
      this.deps.events.record(ref, 'Warning', 'IPReleased', `Address(es) ${r.ips.join(', ')} from pool ${r.pool} released: ${r.reason}; re-assigning`);
    }
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

  /** Counts and conditions on every pool, written only where they changed. */
  private async writePoolStatuses(): Promise<void> {
    const now = new Date(this.deps.clock.now()).toISOString();
    for (const pool of this.deps.pools.list()) {
      const name = pool.metadata.name;
      const problem = this.poolProblems.get(name);
      const counted = this.allocator.stats(name) ?? { assignedIPv4: 0, assignedIPv6: 0, availableIPv4: 0, availableIPv6: 0 };
      // A pool with a problem hands out nothing new, but its assigned addresses are still in use.
      const stats = problem ? { ...counted, availableIPv4: 0, availableIPv6: 0 } : counted;
      await patchStatus(this.deps.client, `/apis/portico.dev/v1alpha1/addresspools/${name}`, pool as AddressPool & { status?: Record<string, unknown> }, (current) => {
        const old = current.status?.conditions?.find((c) => c.type === 'Ready');
        const status = problem ? 'False' : 'True';
        const generation = current.metadata.generation !== undefined ? { observedGeneration: current.metadata.generation } : {};
        const ready: Condition = {
          type: 'Ready',
          status,
          reason: problem?.reason ?? 'Valid',
          message: problem?.message ?? 'pool is valid and in use',
          lastTransitionTime: old?.status === status ? old.lastTransitionTime : now,
          ...generation,
        };
        return { ...stats, ...generation, conditions: [ready] };
      }).catch((error: unknown) => {
        this.deps.logger.warn({ err: error, pool: name }, 'could not write AddressPool status');
      });
    }
  }
}
