/**
 * The Alibaba Cloud SLB (CLB) provider: one CLB per Service, a started TCP/UDP listener per
 * port forwarding to a VServer group of the eligible nodes' ECS instances at the NodePort.
 *
 * Steady state costs no write and, across Services, about one DescribeLoadBalancers page per
 * 100 balancers: every balancer of this cluster is listed by tag (cached for `snapshotTtlMs`,
 * one listing shared by concurrent callers) and a balancer whose spec-hash tag equals the hash
 * of the desired state is left alone. Anything else is converged from fresh describes.
 */
import { createHash } from 'node:crypto';
import type { V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { abortable } from '../../kube/abort.js';
import type { Clock } from '../../kube/clock.js';
import type { Cache } from '../../kube/informer.js';
import { ProviderError, type Backends, type LoadBalancerProvider, type LoadBalancerStatus, type ProviderContext, type ReadonlyService, type SpecProblem } from '../provider.js';
import type { LoadBalancer, SlbClient, Tags } from './client.js';
import { classify, SlbApiError, TOKEN_CONFLICT } from './errors.js';
import { planDelete, planEnsure, type Action, type AclRef, type GroupRef, type Observed, type PlannedListener } from './planner.js';
import {
  ALIYUN_CLASS,
  annotation,
  clientToken,
  instancesOf,
  ownDescription,
  parseService,
  RESOURCE_LOAD_BALANCER,
  serviceKeyOf,
  specHash,
  TAG_CLUSTER,
  TAG_RESOURCE,
  TAG_SERVICE,
  TAG_SPEC_HASH,
  type DesiredBalancer,
} from './spec.js';

export interface AliyunProviderDeps {
  slb: SlbClient;
  clusterName: string;
  clock: Clock;
  logger: Logger;
  /** How long a listing of the cluster's balancers answers steady-state checks. */
  snapshotTtlMs?: number;
  /** The orphan sweep: balancers tagged for Services that no longer exist. */
  gc?: { mode: GcMode; intervalMs: number; services: Cache<V1Service> };
}

export type GcMode = 'off' | 'dry-run' | 'on';

const CONFLICT_CODES = new Set(['ListenerAlreadyExists', 'RspoolVipExist', 'AclInUsed', 'AclEntryExist', 'AclNameExist']);

/** Maps an API error to the seam's error; terminal ones name the annotation most likely at fault. */
export function toProviderError(error: unknown, field?: string): ProviderError {
  if (error instanceof ProviderError) return error;
  if (!(error instanceof SlbApiError)) return new ProviderError(error instanceof Error ? error.message : String(error), { retryable: true, cause: error });
  const kind = classify(error);
  const message = `${error.code}: ${error.message}`.slice(0, 400);
  if (kind === 'throttled' || kind === 'retryable' || kind === 'token-conflict') {
    return new ProviderError(message, { retryable: true, ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}), cause: error });
  }
  if (/^InvalidVSwitchId/.test(error.code)) {
    return new ProviderError(message, { retryable: false, reason: 'InvalidSpec', field: `metadata.annotations[${annotation('vswitch-id')}]`, cause: error });
  }
  if (CONFLICT_CODES.has(error.code) || kind === 'not-found') {
    // The CLB changed under us (another writer, a half-finished earlier run): observe again.
    return new ProviderError(message, { retryable: true, cause: error });
  }
  if (/^(Forbidden|NoPermission|InvalidAccessKeyId|SignatureDoesNotMatch|InvalidSecurityToken|InvalidCredentials)/.test(error.code) || /credential/i.test(error.message)) {
    // Credentials and RAM policy can be fixed without touching the Service: keep retrying.
    return new ProviderError(message, { retryable: true, cause: error });
  }
  return new ProviderError(message, { retryable: false, reason: 'InvalidSpec', ...(field ? { field } : {}), cause: error });
}

/** The annotation a failing action most likely depends on, for the condition. */
function fieldFor(action: Action['kind'] | 'create'): string | undefined {
  switch (action) {
    case 'create':
      return `metadata.annotations[${annotation('spec')}]`;
    case 'modify-instance-spec':
      return `metadata.annotations[${annotation('spec')}]`;
    case 'modify-internet-spec':
      return `metadata.annotations[${annotation('bandwidth')}]`;
    case 'set-listener':
    case 'create-listener':
      return `metadata.annotations[${annotation('health-check-type')}]`;
    case 'acl-add':
    case 'create-acl':
      return 'spec.loadBalancerSourceRanges';
    case 'tag':
      return `metadata.annotations[${annotation('additional-resource-tags')}]`;
    default:
      return undefined;
  }
}

function aclName(description: string): string {
  return `portico-${createHash('sha256').update(description).digest('hex').slice(0, 32)}`;
}

export class AliyunSlbProvider implements LoadBalancerProvider {
  readonly providerClass = ALIYUN_CLASS;
  private snapshot: { at: number; byService: Map<string, LoadBalancer[]>; byId: Map<string, LoadBalancer> } | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly ttl: number;
  private gcStop: (() => void) | undefined;
  /** Aborts the shared listing when the leadership term ends. */
  private term = new AbortController();

  constructor(private readonly deps: AliyunProviderDeps) {
    this.ttl = deps.snapshotTtlMs ?? 10_000;
  }

  start(signal: AbortSignal): Promise<void> {
    const gc = this.deps.gc;
    if (!gc || gc.mode === 'off') return Promise.resolve();
    let cancelTimer: (() => void) | undefined;
    // A function, not the property: the checks below run after awaits.
    const stopped = (): boolean => signal.aborted;
    const run = async (): Promise<void> => {
      if (stopped() || !(await gc.services.waitForSync(signal))) return;
      try {
        // The shared informer sees a Service before any reconcile of it can create a CLB.
        const orphans = await this.sweep(signal, (key) => gc.services.get(key) !== undefined, { dryRun: gc.mode === 'dry-run' });
        this.deps.logger.info({ orphans: orphans.length, dryRun: gc.mode === 'dry-run' }, 'CLB orphan sweep done');
      } catch (error) {
        if (!stopped()) this.deps.logger.warn({ err: error }, 'CLB orphan sweep failed; next sweep retries');
      }
      if (!stopped()) cancelTimer = this.deps.clock.setTimer(() => void run(), gc.intervalMs);
    };
    // In the background: the first reconciles need not wait for a sweep.
    cancelTimer = this.deps.clock.setTimer(() => void run(), 0);
    this.gcStop = () => cancelTimer?.();
    return Promise.resolve();
  }

  stop(): void {
    this.gcStop?.();
    this.gcStop = undefined;
    this.snapshot = undefined;
    this.term.abort(new Error('leadership term ended'));
    this.term = new AbortController();
  }

  validate(service: ReadonlyService): SpecProblem[] {
    const parsed = parseService(service);
    return 'problems' in parsed ? parsed.problems : [];
  }

  private description(serviceKey: string): string {
    return ownDescription(this.deps.clusterName, serviceKey);
  }

  // ---- the cluster listing -------------------------------------------------------------------

  private async listing(ctx: ProviderContext): Promise<NonNullable<AliyunSlbProvider['snapshot']>> {
    const current = this.snapshot;
    if (current && this.deps.clock.now() - current.at < this.ttl) return current;
    ctx.signal.throwIfAborted();
    // One listing for everyone waiting; a caller that gives up does not cancel it for the others.
    this.refreshing ??= (async () => {
      try {
        const all = await this.deps.slb.describeLoadBalancers({ tags: { [TAG_CLUSTER]: this.deps.clusterName } }, this.term.signal);
        const byService = new Map<string, LoadBalancer[]>();
        for (const lb of all) {
          const key = lb.tags[TAG_SERVICE];
          if (key !== undefined) byService.set(key, [...(byService.get(key) ?? []), lb]);
        }
        this.snapshot = { at: this.deps.clock.now(), byService, byId: new Map(all.map((lb) => [lb.id, lb])) };
      } finally {
        this.refreshing = undefined;
      }
    })();
    await abortable(this.refreshing, ctx.signal);
    if (!this.snapshot) throw new ProviderError('no listing of load balancers', { retryable: true });
    return this.snapshot;
  }

  private remember(lb: LoadBalancer): void {
    const snap = this.snapshot;
    if (!snap) return;
    snap.byId.set(lb.id, lb);
    const key = lb.tags[TAG_SERVICE];
    for (const [k, list] of snap.byService) snap.byService.set(k, list.filter((x) => x.id !== lb.id));
    if (key !== undefined && lb.tags[TAG_CLUSTER] === this.deps.clusterName) snap.byService.set(key, [...(snap.byService.get(key) ?? []), lb]);
  }

  private forget(id: string): void {
    const snap = this.snapshot;
    if (!snap) return;
    snap.byId.delete(id);
    for (const [k, list] of snap.byService) snap.byService.set(k, list.filter((x) => x.id !== id));
  }

  private status(service: ReadonlyService, lb: LoadBalancer): LoadBalancerStatus {
    const ports = (service.spec?.ports ?? []).map((p) => ({ port: p.port, protocol: (p.protocol ?? 'TCP') as 'TCP' | 'UDP' | 'SCTP' }));
    return { ingress: lb.address ? [{ ip: lb.address, ipMode: 'VIP', ...(ports.length > 0 ? { ports } : {}) }] : [] };
  }

  // ---- seam ----------------------------------------------------------------------------------

  async get(ctx: ProviderContext, service: ReadonlyService): Promise<{ exists: boolean; status?: LoadBalancerStatus }> {
    try {
      const snap = await this.listing(ctx);
      const lb = snap.byService.get(serviceKeyOf(service))?.[0];
      return lb ? { exists: true, status: this.status(service, lb) } : { exists: false };
    } catch (error) {
      throw toProviderError(error);
    }
  }

  async ensure(ctx: ProviderContext, service: ReadonlyService, backends: Backends): Promise<LoadBalancerStatus> {
    const parsed = parseService(service);
    if ('problems' in parsed) {
      const first = parsed.problems[0];
      throw new ProviderError(first?.message ?? 'invalid Service', { retryable: false, reason: 'InvalidSpec', field: first?.field });
    }
    const desired = parsed.desired;
    const { instances, skipped } = instancesOf(backends.nodes);
    const hash = specHash(desired, instances);
    try {
      const snap = await this.listing(ctx);
      const candidates = desired.reuseId !== undefined ? [snap.byId.get(desired.reuseId)] : (snap.byService.get(desired.serviceKey) ?? []);
      const lb = candidates.length === 1 ? candidates[0] : undefined;
      if (lb && lb.tags[TAG_SERVICE] === desired.serviceKey && lb.tags[TAG_SPEC_HASH] === hash) return this.status(service, lb);
      if (skipped.length > 0) {
        const names = skipped.slice(0, 5).join(', ') + (skipped.length > 5 ? ` and ${skipped.length - 5} more` : '');
        ctx.events.record('Warning', 'UnusableProviderID', `Nodes without an ECS instance in spec.providerID (<region>.<instance-id>) are not backends: ${names}`);
      }
      const converged = await this.converge(ctx, desired, instances, hash);
      return this.status(service, converged);
    } catch (error) {
      throw toProviderError(error);
    }
  }

  async updateBackends(ctx: ProviderContext, service: ReadonlyService, backends: Backends): Promise<void> {
    // The hash covers the backends: ensure converges exactly what changed.
    await this.ensure(ctx, service, backends);
  }

  async ensureDeleted(ctx: ProviderContext, service: ReadonlyService): Promise<void> {
    const serviceKey = serviceKeyOf(service);
    const reuseId = service.metadata?.annotations?.[annotation('id')];
    try {
      const slb = this.deps.slb;
      const found = new Map<string, LoadBalancer>();
      for (const lb of await slb.describeLoadBalancers({ tags: { [TAG_CLUSTER]: this.deps.clusterName, [TAG_SERVICE]: serviceKey } }, ctx.signal)) found.set(lb.id, lb);
      if (reuseId !== undefined && /^lb-[a-z0-9]+$/.test(reuseId) && !found.has(reuseId)) {
        // A reused CLB we may have changed before tagging it (a crash mid-ensure).
        for (const lb of await slb.describeLoadBalancers({ ids: [reuseId] }, ctx.signal)) if (!this.foreignOwner(lb, serviceKey)) found.set(lb.id, lb);
      }
      for (const lb of found.values()) {
        await this.deleteOne(ctx, lb, serviceKey);
        this.forget(lb.id);
      }
    } catch (error) {
      throw toProviderError(error);
    }
  }

  /**
   * Orphans: balancers of this cluster whose Service does not exist. `isLive` is asked after the
   * listing, so a Service created while the listing ran (and its new CLB) is never an orphan.
   */
  async sweep(signal: AbortSignal, isLive: (serviceKey: string) => boolean, options: { dryRun: boolean }, logger: Logger = this.deps.logger): Promise<{ loadBalancerId: string; service: string; created: boolean }[]> {
    const all = await this.deps.slb.describeLoadBalancers({ tags: { [TAG_CLUSTER]: this.deps.clusterName } }, signal);
    const orphans = all
      .filter((lb) => lb.tags[TAG_SERVICE] !== undefined && !isLive(lb.tags[TAG_SERVICE]))
      .map((lb) => ({ lb, service: lb.tags[TAG_SERVICE] ?? '', created: lb.tags[TAG_RESOURCE] === RESOURCE_LOAD_BALANCER }));
    for (const orphan of orphans) {
      logger.info({ loadBalancerId: orphan.lb.id, service: orphan.service, created: orphan.created, dryRun: options.dryRun }, options.dryRun ? 'orphaned CLB (dry run: kept)' : 'deleting orphaned CLB resources');
      if (options.dryRun) continue;
      const ctx: ProviderContext = { signal, logger, events: { record: () => undefined } };
      await this.deleteOne(ctx, orphan.lb, orphan.service);
      this.forget(orphan.lb.id);
    }
    return orphans.map((o) => ({ loadBalancerId: o.lb.id, service: o.service, created: o.created }));
  }

  // ---- converge ------------------------------------------------------------------------------

  private foreignOwner(lb: LoadBalancer, serviceKey: string): string | undefined {
    const cluster = lb.tags[TAG_CLUSTER];
    const owner = lb.tags[TAG_SERVICE];
    if (cluster !== undefined && cluster !== this.deps.clusterName) return `cluster ${cluster}`;
    if (owner !== undefined && owner !== serviceKey) return `Service ${owner}`;
    return undefined;
  }

  private async findOrCreate(ctx: ProviderContext, desired: DesiredBalancer, tags: Tags): Promise<LoadBalancer> {
    const slb = this.deps.slb;
    if (desired.reuseId !== undefined) {
      const [lb] = await slb.describeLoadBalancers({ ids: [desired.reuseId] }, ctx.signal);
      if (!lb) throw new ProviderError(`CLB ${desired.reuseId} does not exist in this region`, { retryable: false, reason: 'InvalidSpec', field: `metadata.annotations[${annotation('id')}]` });
      const owner = this.foreignOwner(lb, desired.serviceKey);
      if (owner) throw new ProviderError(`CLB ${lb.id} belongs to ${owner}; it is not taken over`, { retryable: false, reason: 'NotOwned', field: `metadata.annotations[${annotation('id')}]` });
      return lb;
    }
    const byTag = { [TAG_CLUSTER]: this.deps.clusterName, [TAG_SERVICE]: desired.serviceKey };
    const existing = (await slb.describeLoadBalancers({ tags: byTag }, ctx.signal)).sort((a, b) => a.id.localeCompare(b.id));
    if (existing.length > 1) ctx.logger.warn({ ids: existing.map((lb) => lb.id) }, 'more than one CLB is tagged for this Service; converging the first');
    if (existing[0]) return existing[0];
    ctx.signal.throwIfAborted();
    try {
      const params = {
        name: desired.name,
        addressType: desired.addressType,
        spec: desired.spec,
        chargeType: desired.chargeType,
        bandwidth: desired.bandwidth,
        vswitchId: desired.vswitchId,
        deleteProtection: desired.deleteProtection,
        // Tagged at birth: a crash right after this call still leaves a balancer we find by tag.
        tags: { ...desired.additionalTags, ...tags },
      };
      const created = await slb.createLoadBalancer({ clientToken: clientToken(this.deps.clusterName, desired.uid || desired.serviceKey, params), ...params }, ctx.signal);
      ctx.events.record('Normal', 'CreatedCLB', `created CLB ${created.id}`);
      // Everything else about it is read by the DescribeLoadBalancerAttribute that follows.
      return { id: created.id, name: desired.name, status: 'active', address: created.address, addressType: desired.addressType, vswitchId: desired.vswitchId ?? '', spec: desired.spec ?? '', chargeType: desired.chargeType ?? '', bandwidth: desired.bandwidth ?? 0, tags: { ...desired.additionalTags, ...tags } };
    } catch (error) {
      if (error instanceof SlbApiError && classify(error) === 'token-conflict') {
        // The same create is (or was) in flight: the balancer it makes carries our tags.
        ctx.logger.info({ code: error.code }, 'ClientToken conflict; looking the CLB up by tag');
        for (let attempt = 0; attempt < 5; attempt++) {
          const [lb] = await slb.describeLoadBalancers({ tags: byTag }, ctx.signal);
          if (lb) return lb;
          if (error.code !== TOKEN_CONFLICT) break;
          await this.deps.clock.sleep(500 * (attempt + 1), ctx.signal);
        }
        throw new ProviderError(`${error.code}: the CLB being created is not visible yet`, { retryable: true, retryAfterMs: 2000, cause: error });
      }
      throw toProviderError(error, fieldFor('create'));
    }
  }

  private async observe(ctx: ProviderContext, lbId: string, description: string, wantAcl: boolean): Promise<Observed> {
    const slb = this.deps.slb;
    const lb = await slb.describeLoadBalancerAttribute(lbId, ctx.signal);
    const listeners = (await slb.describeListeners([lbId], ctx.signal)).get(lbId) ?? [];
    const groups = [];
    for (const g of await slb.describeVServerGroups(lbId, ctx.signal)) {
      if (!g.name.startsWith(`${description}:`)) continue;
      groups.push({ ...g, backends: await slb.describeVServerGroupBackends(g.id, ctx.signal) });
    }
    let acl: Observed['acl'];
    const usesAcl = listeners.some((l) => l.description === description && l.aclStatus === 'on');
    if (wantAcl || usesAcl) {
      const [found] = await slb.describeAcls(aclName(description), ctx.signal);
      if (found) acl = { id: found.id, entries: await slb.describeAclEntries(found.id, ctx.signal) };
    }
    return { lb, listeners, groups, acl };
  }

  private async converge(ctx: ProviderContext, desired: DesiredBalancer, instances: readonly string[], hash: string): Promise<LoadBalancer> {
    const base: Tags = { [TAG_CLUSTER]: this.deps.clusterName, [TAG_SERVICE]: desired.serviceKey };
    const reused = desired.reuseId !== undefined;
    const lb = await this.findOrCreate(ctx, desired, reused ? base : { ...base, [TAG_RESOURCE]: RESOURCE_LOAD_BALANCER });
    const created = lb.tags[TAG_RESOURCE] === RESOURCE_LOAD_BALANCER && !reused;
    const description = this.description(desired.serviceKey);
    const observed = await this.observe(ctx, lb.id, description, desired.sourceRanges.length > 0);
    const tags: Tags = { ...desired.additionalTags, ...base, ...(created ? { [TAG_RESOURCE]: RESOURCE_LOAD_BALANCER } : {}), [TAG_SPEC_HASH]: hash };
    const plan = planEnsure({ desired, observed, description, created, instances, tags });
    if ('problems' in plan) {
      const first = plan.problems[0];
      const notOwned = first?.field.includes('force-override-listeners') ?? false;
      throw new ProviderError(first?.message ?? 'cannot converge', { retryable: false, reason: notOwned ? 'NotOwned' : 'InvalidSpec', field: first?.field });
    }
    try {
      await this.execute(ctx, lb.id, description, plan.actions);
    } catch (error) {
      // Half-applied: make sure no spec-hash claims "converged", so the retry observes everything.
      this.forget(lb.id);
      if (!ctx.signal.aborted && plan.actions.length > 0) {
        await this.deps.slb.untagResources('instance', lb.id, [TAG_SPEC_HASH], ctx.signal).catch(() => undefined);
      }
      throw error;
    }
    const result: LoadBalancer = { ...observed.lb, tags: { ...observed.lb.tags, ...tags } };
    this.remember(result);
    return result;
  }

  private async deleteOne(ctx: ProviderContext, lb: LoadBalancer, serviceKey: string): Promise<void> {
    const description = this.description(serviceKey);
    let observed: Observed;
    try {
      observed = await this.observe(ctx, lb.id, description, true);
    } catch (error) {
      if (error instanceof SlbApiError && classify(error) === 'not-found') return;
      throw error;
    }
    const created = lb.tags[TAG_RESOURCE] === RESOURCE_LOAD_BALANCER && lb.tags[TAG_SERVICE] === serviceKey && lb.tags[TAG_CLUSTER] === this.deps.clusterName;
    const actions = planDelete({ observed, description, created, ourTagKeys: [TAG_CLUSTER, TAG_SERVICE, TAG_SPEC_HASH] });
    await this.execute(ctx, lb.id, description, actions);
  }

  /** Runs a plan in order; nothing starts once the signal fired. */
  private async execute(ctx: ProviderContext, lbId: string, description: string, actions: readonly Action[]): Promise<void> {
    const slb = this.deps.slb;
    const signal = ctx.signal;
    const groups = new Map<string, string>();
    let newAcl: string | undefined;
    const groupId = (ref: GroupRef): string => ('id' in ref ? ref.id : (groups.get(ref.key) ?? ''));
    const aclId = (ref: AclRef): string => (ref === 'new' ? (newAcl ?? '') : ref.id);
    const listenerConfig = (l: PlannedListener) => ({
      port: l.port,
      protocol: l.protocol,
      description: l.description,
      vServerGroupId: groupId(l.group),
      scheduler: l.scheduler,
      bandwidth: -1,
      ...(l.acl !== undefined ? { acl: { id: aclId(l.acl), type: 'white' as const } } : {}),
      healthCheck: l.healthCheck,
    });
    for (const action of actions) {
      signal.throwIfAborted();
      ctx.logger.debug({ action: action.kind, loadBalancerId: lbId }, 'SLB change');
      try {
        switch (action.kind) {
          case 'set-name':
            await slb.setLoadBalancerName(lbId, action.name, signal);
            break;
          case 'modify-internet-spec':
            await slb.modifyInternetSpec(lbId, action, signal);
            break;
          case 'modify-instance-spec':
            await slb.modifyInstanceSpec(lbId, action.spec, signal);
            break;
          case 'set-delete-protection':
            await slb.setDeleteProtection(lbId, action.value, signal);
            break;
          case 'create-acl':
            newAcl = await slb.createAcl(aclName(description), { [TAG_CLUSTER]: this.deps.clusterName }, signal);
            break;
          case 'acl-add':
            await slb.addAclEntries(aclId(action.acl), action.entries, signal);
            break;
          case 'acl-remove':
            await slb.removeAclEntries(aclId(action.acl), action.entries, signal);
            break;
          case 'create-group':
            groups.set(action.key, await slb.createVServerGroup(lbId, action.name, action.backends, signal));
            break;
          case 'add-backends':
            await slb.addBackends(groupId(action.group), action.backends, signal);
            break;
          case 'remove-backends':
            await slb.removeBackends(groupId(action.group), action.backends, signal);
            break;
          case 'create-listener':
            await slb.createListener(lbId, listenerConfig(action.listener), signal);
            break;
          case 'set-listener':
            await slb.setListenerAttribute(lbId, listenerConfig(action.listener), signal);
            break;
          case 'start-listener':
            await slb.startListener(lbId, action.port, action.protocol, signal);
            break;
          case 'delete-listener':
            await ignoreNotFound(slb.deleteListener(lbId, action.port, action.protocol, signal));
            break;
          case 'delete-group':
            await ignoreNotFound(slb.deleteVServerGroup(action.id, signal));
            break;
          case 'delete-acl':
            await ignoreNotFound(slb.deleteAcl(action.id, signal));
            break;
          case 'tag':
            await slb.tagResources('instance', lbId, action.tags, signal);
            break;
          case 'untag':
            await slb.untagResources('instance', lbId, action.keys, signal);
            break;
          case 'delete-load-balancer':
            await ignoreNotFound(slb.deleteLoadBalancer(lbId, signal));
            ctx.events.record('Normal', 'DeletedCLB', `deleted CLB ${lbId}`);
            break;
        }
      } catch (error) {
        throw toProviderError(error, fieldFor(action.kind));
      }
    }
  }
}

async function ignoreNotFound(call: Promise<void>): Promise<void> {
  try {
    await call;
  } catch (error) {
    if (error instanceof SlbApiError && (classify(error) === 'not-found' || /does not exist/.test(error.message))) return;
    throw error;
  }
}
