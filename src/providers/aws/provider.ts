/**
 * The AWS NLB provider: finds what it owns by tags, plans with planner.ts, runs the plan.
 *
 * API economy. A cluster-wide inventory (DescribeLoadBalancers pages of 400 + DescribeTags in
 * batches of 20) is shared by every Service and refreshed at most every `inventoryTtlMs`. The
 * NLB carries `portico.dev/spec-hash`, a hash of everything desired (ports, health checks,
 * attributes, tags, targets) written after a converge succeeded: when it matches, a routine
 * ensure makes no further call. A deep verify (listeners, target groups, targets, attributes)
 * runs when the hash differs and, per Service, every `deepVerifyIntervalMs` (counted from when this
 * process first saw the balancer: the hash is written only after a complete converge, so a crash
 * half-way leaves a stale hash and the next ensure converges).
 */
import type { Logger } from 'pino';
import { ProviderError, type Backends, type LoadBalancerProvider, type LoadBalancerStatus, type ProviderContext, type ReadonlyService } from '../provider.js';
import type { SpecProblem } from '../../api/types.js';
import { abortable } from '../../kube/abort.js';
import type { Clock } from '../../kube/clock.js';
import type { AwsApi, Listener, LoadBalancer, Subnet, Tags, TargetGroup } from './api.js';
import {
  AWS_NLB_CLASS,
  TAG_CLUSTER,
  TAG_SERVICE,
  TAG_SPEC_HASH,
  desiredLoadBalancer,
  ownedBy,
  ownershipTags,
  serviceKey,
  validateService,
  type DesiredLoadBalancer,
  type SubnetSelection,
} from './desired.js';
import { isNotFound, toProviderError } from './errors.js';
import { runGarbageCollection, type GarbageCollectionOptions, type SweepResult } from './gc.js';
import { errorCode } from './guard.js';
import { chunks, planLoadBalancer, unattachableGroupProblem, type Action, type ActualState, type ActualTargetGroup, type TargetGroupRef } from './planner.js';
import { FrontendGroups } from './security-groups.js';

export const DESCRIBE_TAGS_BATCH = 20;
const LB_PAGE_SIZE = 400;

export interface AwsProviderOptions {
  api: AwsApi;
  clusterName: string;
  clock: Clock;
  logger: Logger;
  /** How old the shared NLB inventory may be for a routine ensure. */
  inventoryTtlMs?: number;
  /** How often each Service's NLB is inspected in full even when its spec hash matches. */
  deepVerifyIntervalMs?: number;
  /** Tag keys others manage on our resources: never removed. */
  externalTagKeys?: readonly string[];
  /** Runs a garbage-collection loop during each leadership term. */
  gc?: Omit<GarbageCollectionOptions, 'clock' | 'logger'>;
}

interface OwnedLoadBalancer {
  lb: LoadBalancer;
  tags: Tags;
}

/** Every NLB tagged with our cluster, by Service key. */
class Inventory {
  private byService = new Map<string, OwnedLoadBalancer[]>();
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private inflight: { done: Promise<void>; waiters: number; abort: AbortController } | undefined;

  constructor(
    private readonly api: AwsApi,
    private readonly clusterName: string,
    private readonly clock: Clock,
  ) {}

  async get(signal: AbortSignal, key: string, maxAgeMs: number): Promise<OwnedLoadBalancer[]> {
    if (this.clock.now() - this.fetchedAt > maxAgeMs) await this.refresh(signal);
    return this.byService.get(key) ?? [];
  }

  async all(signal: AbortSignal): Promise<Map<string, OwnedLoadBalancer[]>> {
    if (this.inflight !== undefined) await this.wait(this.inflight, signal).catch(() => undefined);
    await this.refresh(signal);
    return this.byService;
  }

  /**
   * Concurrent callers share one listing. Each stops waiting when its own signal fires; the
   * listing itself stops (no further call) once every caller waiting for it has gone.
   */
  private async refresh(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (this.inflight === undefined) {
      const abort = new AbortController();
      const entry = { done: Promise.resolve(), waiters: 0, abort };
      entry.done = this.list(abort.signal).finally(() => {
        if (this.inflight === entry) this.inflight = undefined;
      });
      this.inflight = entry;
    }
    await this.wait(this.inflight, signal);
  }

  private async wait(entry: { done: Promise<void>; waiters: number; abort: AbortController }, signal: AbortSignal): Promise<void> {
    entry.waiters++;
    try {
      await abortable(entry.done, signal);
    } finally {
      entry.waiters--;
      if (entry.waiters === 0 && signal.aborted) entry.abort.abort(signal.reason);
    }
  }

  private async list(signal: AbortSignal): Promise<void> {
    const started = this.clock.now();
    const lbs: LoadBalancer[] = [];
    let marker: string | undefined;
    do {
      const page = await this.api.describeLoadBalancers(signal, { marker, pageSize: LB_PAGE_SIZE });
      lbs.push(...page.items.filter((lb) => lb.type === 'network'));
      marker = page.next;
    } while (marker !== undefined);
    const tags = await describeTags(this.api, signal, lbs.map((lb) => lb.arn));
    const next = new Map<string, OwnedLoadBalancer[]>();
    for (const lb of lbs) {
      const t = tags.get(lb.arn);
      if (t?.[TAG_CLUSTER] !== this.clusterName) continue;
      const key = t[TAG_SERVICE] ?? '';
      next.set(key, [...(next.get(key) ?? []), { lb, tags: t }]);
    }
    this.byService = next;
    this.fetchedAt = started;
  }

  put(key: string, owned: OwnedLoadBalancer): void {
    this.byService.set(key, [...(this.byService.get(key) ?? []).filter((o) => o.lb.arn !== owned.lb.arn), owned]);
  }

  remove(key: string, arn: string): void {
    const left = (this.byService.get(key) ?? []).filter((o) => o.lb.arn !== arn);
    if (left.length > 0) this.byService.set(key, left);
    else this.byService.delete(key);
  }

  clear(): void {
    this.inflight?.abort.abort(new Error('leadership term ended'));
    this.inflight = undefined;
    this.byService = new Map();
    this.fetchedAt = Number.NEGATIVE_INFINITY;
  }
}

/** DescribeTags in batches of 20 ARNs (the API's limit). */
export async function describeTags(api: AwsApi, signal: AbortSignal, arns: readonly string[]): Promise<Map<string, Tags>> {
  const out = new Map<string, Tags>();
  for (const batch of chunks(arns, DESCRIBE_TAGS_BATCH)) for (const [arn, tags] of await api.describeTags(signal, batch)) out.set(arn, tags);
  return out;
}

async function allPages<T>(fetch: (marker: string | undefined) => Promise<{ items: T[]; next?: string | undefined }>): Promise<T[]> {
  const items: T[] = [];
  let marker: string | undefined;
  do {
    const page = await fetch(marker);
    items.push(...page.items);
    marker = page.next;
  } while (marker !== undefined);
  return items;
}

/** Converged as far as AWS allows, but the source ranges cannot be enforced: a terminal condition. */
function throwIfUnattachable(desired: DesiredLoadBalancer, lb: LoadBalancer): void {
  const problem = unattachableGroupProblem(desired, lb);
  if (problem !== undefined) throw new ProviderError(problem.message, { retryable: false, reason: 'InvalidSpec', field: problem.field });
}

export function statusOf(lb: LoadBalancer): LoadBalancerStatus {
  return { ingress: lb.dnsName === '' ? [] : [{ hostname: lb.dnsName }] };
}

export class AwsNlbProvider implements LoadBalancerProvider {
  readonly providerClass = AWS_NLB_CLASS;
  /** Always: `ip` targets come from EndpointSlices, and a Service may switch target type at any time. */
  readonly needs = { endpointSlices: true } as const;
  private readonly inventory: Inventory;
  private readonly verifiedAt = new Map<string, number>();
  private readonly inventoryTtlMs: number;
  private readonly deepVerifyIntervalMs: number;
  private gcTerm: AbortController | undefined;
  private readonly externalTagKeys: ReadonlySet<string>;
  private readonly discovered = new Map<string, { at: number; ids: string[] }>();
  /** A subnet's VPC never changes: learned from every subnet description. */
  private readonly subnetVpcs = new Map<string, string>();
  private readonly groups: FrontendGroups;

  constructor(private readonly options: AwsProviderOptions) {
    this.inventory = new Inventory(options.api, options.clusterName, options.clock);
    this.inventoryTtlMs = options.inventoryTtlMs ?? 60_000;
    this.groups = new FrontendGroups({ api: options.api, clusterName: options.clusterName, clock: options.clock, cacheTtlMs: this.inventoryTtlMs });
    this.deepVerifyIntervalMs = options.deepVerifyIntervalMs ?? 60 * 60_000;
    this.externalTagKeys = new Set(options.externalTagKeys ?? []);
  }

  private get api(): AwsApi {
    return this.options.api;
  }

  validate(service: ReadonlyService): SpecProblem[] {
    return validateService(service);
  }

  start(signal: AbortSignal): Promise<void> {
    this.inventory.clear();
    this.discovered.clear();
    this.groups.clear();
    this.verifiedAt.clear();
    const gc = this.options.gc;
    if (gc !== undefined && gc.intervalMs > 0) {
      this.gcTerm?.abort();
      const term = new AbortController();
      this.gcTerm = term;
      const stop = (): void => term.abort();
      signal.addEventListener('abort', stop, { once: true });
      void runGarbageCollection(this, { ...gc, clock: this.options.clock, logger: this.options.logger.child({ component: 'aws-gc' }) }, term.signal);
    }
    return Promise.resolve();
  }

  stop(): void {
    this.gcTerm?.abort();
    this.gcTerm = undefined;
    this.inventory.clear();
    this.verifiedAt.clear();
  }

  async get(ctx: ProviderContext, service: ReadonlyService): Promise<{ exists: boolean; status?: LoadBalancerStatus }> {
    try {
      const owned = await this.inventory.get(ctx.signal, serviceKey(service), this.inventoryTtlMs);
      const first = owned[0];
      return first === undefined ? { exists: false } : { exists: true, status: statusOf(first.lb) };
    } catch (error) {
      throw toProviderError(error, 'listing load balancers');
    }
  }

  async ensure(ctx: ProviderContext, service: ReadonlyService, backends: Backends): Promise<LoadBalancerStatus> {
    const { desired, problems } = desiredLoadBalancer(this.options.clusterName, service, backends);
    if (problems.length > 0) {
      const first = problems[0];
      throw new ProviderError(`${first?.field ?? 'spec'}: ${first?.message ?? 'invalid'}`, { retryable: false, reason: 'InvalidSpec', field: first?.field });
    }
    const signal = ctx.signal;
    try {
      const owned = await this.inventory.get(signal, desired.serviceKey, this.inventoryTtlMs);
      const current = owned.find((o) => o.lb.name === desired.name);
      const now = this.options.clock.now();
      if (current !== undefined && owned.length === 1 && current.tags[TAG_SPEC_HASH] === desired.specHash) {
        const verified = this.verifiedAt.get(desired.serviceKey);
        if (verified === undefined) this.verifiedAt.set(desired.serviceKey, now);
        if (verified === undefined || now - verified < this.deepVerifyIntervalMs) {
          throwIfUnattachable(desired, current.lb);
          return statusOf(current.lb);
        }
      }
      return await this.converge(ctx, desired, owned);
    } catch (error) {
      if (signal.aborted) throw error;
      throw toProviderError(error, `ensuring the NLB for ${desired.serviceKey}`);
    }
  }

  async updateBackends(ctx: ProviderContext, service: ReadonlyService, backends: Backends): Promise<void> {
    // The spec hash covers the targets: a changed backend set takes the converge path, which
    // registers and deregisters only the difference.
    await this.ensure(ctx, service, backends);
  }

  async ensureDeleted(ctx: ProviderContext, service: ReadonlyService): Promise<void> {
    const key = serviceKey(service);
    try {
      const owned = await this.inventory.get(ctx.signal, key, this.inventoryTtlMs);
      for (const o of owned) await this.teardown(ctx, o);
      // Target groups created before a crash, never attached to a listener.
      const { desired } = desiredLoadBalancer(this.options.clusterName, service, { nodes: [], endpointSlices: [] });
      for (const tg of await this.targetGroupsByName(ctx.signal, desired, [])) await this.deleteTargetGroup(ctx, tg.tg);
      // Last: AWS refuses to delete a group an NLB (or its network interfaces) still uses.
      await this.groups.deleteAll(ctx, key);
      this.verifiedAt.delete(key);
    } catch (error) {
      if (ctx.signal.aborted) throw error;
      throw toProviderError(error, `deleting the NLB for ${key}`);
    }
  }

  /** Deletes everything tagged with our cluster whose Service is not in `liveServiceKeys`. */
  async sweep(signal: AbortSignal, liveServiceKeys: ReadonlySet<string>, options: { dryRun: boolean; logger: Logger }): Promise<SweepResult> {
    const found: SweepResult = { loadBalancers: [], targetGroups: [], securityGroups: [] };
    const ctx: ProviderContext = { signal, logger: options.logger, events: { record: () => undefined } };
    for (const [key, owned] of await this.inventory.all(signal)) {
      if (liveServiceKeys.has(key)) continue;
      for (const o of owned) {
        found.loadBalancers.push(o.lb.name);
        options.logger.info({ service: key, loadBalancer: o.lb.arn, dryRun: options.dryRun }, 'garbage collection: NLB of a Service that no longer exists');
        if (!options.dryRun) await this.teardown(ctx, o);
      }
    }
    // Unattached target groups of gone Services (a crash between creating one and its listener).
    const tgs = await allPages((marker) => this.api.describeTargetGroups(signal, { marker, pageSize: LB_PAGE_SIZE }));
    const unattached = tgs.filter((tg) => tg.loadBalancerArns.length === 0);
    const tags = await describeTags(this.api, signal, unattached.map((tg) => tg.arn));
    for (const tg of unattached) {
      const t = tags.get(tg.arn);
      if (t?.[TAG_CLUSTER] !== this.options.clusterName || liveServiceKeys.has(t[TAG_SERVICE] ?? '')) continue;
      found.targetGroups.push(tg.name);
      options.logger.info({ service: t[TAG_SERVICE], targetGroup: tg.arn, dryRun: options.dryRun }, 'garbage collection: target group of a Service that no longer exists');
      if (!options.dryRun) await this.deleteTargetGroup(ctx, tg);
    }
    // Frontend groups of gone Services, after their NLBs; one still held by AWS goes at a later sweep.
    for (const g of await this.groups.allOwned(signal)) {
      const key = g.tags[TAG_SERVICE] ?? '';
      if (liveServiceKeys.has(key)) continue;
      options.logger.info({ service: key, securityGroup: g.id, dryRun: options.dryRun }, 'garbage collection: security group of a Service that no longer exists');
      if (options.dryRun || (await this.groups.delete(ctx, g.id, 'try'))) found.securityGroups.push(g.name);
    }
    return found;
  }

  // ---- converge -----------------------------------------------------------------------------

  /** `replaced`: an NLB of this Service was just deleted, its frontend group may be left. */
  private async converge(ctx: ProviderContext, desired: DesiredLoadBalancer, owned: OwnedLoadBalancer[], replaced = false): Promise<LoadBalancerStatus> {
    const { signal } = ctx;
    let current = owned.find((o) => o.lb.name === desired.name);
    let subnetIds: readonly string[] | undefined;
    const resolveSubnets = async (): Promise<readonly string[]> => (subnetIds ??= await this.resolveSubnets(signal, desired.subnets));

    let created = false;
    let others = owned.filter((o) => o.lb.name !== desired.name);
    if (current === undefined) {
      // The inventory may predate a balancer we made before a restart: ask by name, and adopt it
      // only if its tags say it is ours for this Service.
      current = await this.findByName(signal, desired);
      if (current === undefined) {
        // A rename (aws-load-balancer-name): the target groups keep their names and an NLB's
        // target group serves one NLB only, so the old NLB goes first (its DNS name goes anyway).
        for (const o of others) await this.teardown(ctx, o);
        replaced ||= others.length > 0;
        others = [];
        created = true;
        const subnets = await resolveSubnets();
        // The group first: an NLB created without one can never get one.
        const vpcId = await this.vpcOf(signal, subnets);
        const groupIds = desired.securityGroup.userGroups.length > 0 ? await this.groups.resolveUserGroups(signal, desired, vpcId) : [await this.groups.ensureForNewBalancer(ctx, desired, vpcId)];
        signal.throwIfAborted();
        const made = await this.api.createLoadBalancer(signal, { name: desired.name, scheme: desired.scheme, ipAddressType: desired.ipAddressType, subnetIds: subnets, securityGroupIds: groupIds, tags: desired.tags });
        const lb = made.securityGroupIds.length > 0 ? made : { ...made, securityGroupIds: groupIds };
        current = { lb, tags: desired.tags };
        ctx.logger.info({ loadBalancer: lb.arn }, 'created NLB');
        ctx.events.record('Normal', 'CreatedLoadBalancer', `created NLB ${lb.name}`);
      }
      this.inventory.put(desired.serviceKey, current);
    }

    // A balancer made just now has no listeners, target groups attached or attributes set: only
    // target groups a crashed earlier attempt created can exist (found by name).
    const actual = created ? await this.describeNew(signal, desired, current) : await this.describe(signal, desired, current);
    const actions = planLoadBalancer(desired, actual, desired.subnets.kind === 'listed' ? await resolveSubnets() : undefined, { externalTagKeys: this.externalTagKeys });
    const replace = actions.find((a): a is Extract<Action, { kind: 'replaceLoadBalancer' }> => a.kind === 'replaceLoadBalancer');
    if (replace !== undefined) {
      ctx.events.record('Normal', 'ReplacingLoadBalancer', `replacing NLB ${current.lb.name}: ${replace.reason}`);
      const gone = current.lb.arn;
      await this.teardown(ctx, current);
      return this.converge(ctx, desired, owned.filter((o) => o.lb.arn !== gone), true);
    }
    // Rules before listeners: a new port is allowed in before it is served. An NLB without
    // groups (created by an earlier Portico) cannot get any: it is left as it is.
    if (!created && current.lb.securityGroupIds.length > 0) {
      const securityGroupIds = desired.securityGroup.userGroups.length > 0 ? await this.groups.convergeUserGroups(ctx, desired, current.lb) : await this.groups.converge(ctx, desired, current.lb);
      if (securityGroupIds !== current.lb.securityGroupIds) current = { ...current, lb: { ...current.lb, securityGroupIds } };
    }
    await this.execute(ctx, actual, actions);

    // Other balancers of ours for this Service (a rename adopted by name after a crash): remove them last.
    for (const o of others) {
      if (o.lb.arn === current.lb.arn) continue;
      await this.teardown(ctx, o);
      replaced = true;
    }
    // Best effort: AWS may hold a just-deleted NLB's group for minutes; the next deep verify (or the Service's deletion) retries.
    if (replaced) await this.groups.deleteUnused(ctx, desired.serviceKey, current.lb.securityGroupIds);

    if (current.tags[TAG_SPEC_HASH] !== desired.specHash) {
      signal.throwIfAborted();
      await this.api.addTags(signal, [current.lb.arn], { [TAG_SPEC_HASH]: desired.specHash });
    }
    const removed = new Set(actions.flatMap((a) => (a.kind === 'removeTags' && a.target === 'load-balancer' ? a.keys : [])));
    const kept = Object.fromEntries(Object.entries(actual.tags).filter(([k]) => !removed.has(k)));
    this.inventory.put(desired.serviceKey, { lb: current.lb, tags: { ...kept, ...desired.tags, [TAG_SPEC_HASH]: desired.specHash } });
    this.verifiedAt.set(desired.serviceKey, this.options.clock.now());
    if (actions.length > 0) ctx.logger.info({ loadBalancer: current.lb.arn, actions: actions.map((a) => a.kind) }, 'converged NLB');
    throwIfUnattachable(desired, current.lb);
    return statusOf(current.lb);
  }

  /** The VPC of the NLB's subnets (where its security group must live). */
  private async vpcOf(signal: AbortSignal, subnetIds: readonly string[]): Promise<string> {
    const first = subnetIds[0] ?? '';
    const known = this.subnetVpcs.get(first);
    if (known !== undefined) return known;
    const [subnet] = (await this.api.describeSubnets(signal, { ids: [first] })).items;
    if (subnet === undefined) throw new ProviderError(`subnet ${first} not found`, { retryable: true, retryAfterMs: 60_000 });
    this.subnetVpcs.set(subnet.id, subnet.vpcId);
    return subnet.vpcId;
  }

  private async findByName(signal: AbortSignal, desired: DesiredLoadBalancer): Promise<OwnedLoadBalancer | undefined> {
    let found: LoadBalancer[];
    try {
      found = (await this.api.describeLoadBalancers(signal, { names: [desired.name] })).items;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
    const lb = found[0];
    if (lb === undefined) return undefined;
    const tags = (await describeTags(this.api, signal, [lb.arn])).get(lb.arn) ?? {};
    if (!ownedBy(tags, this.options.clusterName, desired.serviceKey)) {
      const owner = tags[TAG_CLUSTER] === undefined ? 'not created by Portico' : `tagged for ${tags[TAG_CLUSTER]}/${tags[TAG_SERVICE] ?? '?'}`;
      throw new ProviderError(`a load balancer named ${desired.name} already exists and is not ours (${owner}); Portico never takes over a balancer by name: choose another aws-load-balancer-name`, {
        retryable: false,
        reason: 'NotOwned',
        field: 'metadata.annotations[service.beta.kubernetes.io/aws-load-balancer-name]',
      });
    }
    return { lb, tags };
  }

  private async describe(signal: AbortSignal, desired: DesiredLoadBalancer, current: OwnedLoadBalancer): Promise<ActualState> {
    const arn = current.lb.arn;
    const [attributes, listeners, attached] = await Promise.all([
      this.api.describeLoadBalancerAttributes(signal, arn),
      allPages<Listener>((marker) => this.api.describeListeners(signal, arn, marker)),
      // moto answers TargetGroupNotFound for a balancer without target groups; AWS, an empty list.
      this.ignoreNotFound(() => allPages<TargetGroup>((marker) => this.api.describeTargetGroups(signal, { loadBalancerArn: arn, marker }))).then((tgs) => tgs ?? []),
    ]);
    const tags = await describeTags(this.api, signal, attached.map((tg) => tg.arn));
    const ours = attached.filter((tg) => ownedBy(tags.get(tg.arn), this.options.clusterName, desired.serviceKey));
    const byName = await this.targetGroupsByName(signal, desired, ours.map((tg) => tg.name));
    const targetGroups: ActualTargetGroup[] = [
      ...(await Promise.all(ours.map(async (tg) => this.describeTargetGroup(signal, tg, tags.get(tg.arn) ?? {})))),
      ...(await Promise.all(byName.map(async (t) => this.describeTargetGroup(signal, t.tg, t.tags)))),
    ];
    return { lb: current.lb, tags: current.tags, attributes, listeners, targetGroups };
  }

  private async describeNew(signal: AbortSignal, desired: DesiredLoadBalancer, current: OwnedLoadBalancer): Promise<ActualState> {
    const byName = await this.targetGroupsByName(signal, desired, []);
    const targetGroups = await Promise.all(byName.map(async (t) => this.describeTargetGroup(signal, t.tg, t.tags)));
    return { lb: current.lb, tags: current.tags, attributes: {}, listeners: [], targetGroups };
  }

  private async describeTargetGroup(signal: AbortSignal, tg: TargetGroup, tags: Tags): Promise<ActualTargetGroup> {
    const [attributes, targets] = await Promise.all([this.api.describeTargetGroupAttributes(signal, tg.arn), this.api.describeTargetHealth(signal, tg.arn)]);
    return { tg, tags, attributes, targets };
  }

  /** Desired target groups not yet attached, looked up by name and kept only if tagged ours. */
  private async targetGroupsByName(signal: AbortSignal, desired: DesiredLoadBalancer, known: readonly string[]): Promise<{ tg: TargetGroup; tags: Tags }[]> {
    const missing = desired.ports.map((p) => p.targetGroup.name).filter((n) => !known.includes(n));
    const found: TargetGroup[] = [];
    // One name per call: a name that does not exist fails the whole call.
    for (const name of missing) {
      try {
        found.push(...(await this.api.describeTargetGroups(signal, { names: [name] })).items);
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
    }
    const tags = await describeTags(this.api, signal, found.map((tg) => tg.arn));
    const out: { tg: TargetGroup; tags: Tags }[] = [];
    for (const tg of found) {
      const t = tags.get(tg.arn) ?? {};
      if (!ownedBy(t, this.options.clusterName, desired.serviceKey)) {
        throw new ProviderError(`a target group named ${tg.name} already exists and is not ours; Portico never takes over a resource by name`, { retryable: false, reason: 'NotOwned' });
      }
      out.push({ tg, tags: t });
    }
    return out;
  }

  private async execute(ctx: ProviderContext, actual: ActualState, actions: readonly Action[]): Promise<void> {
    const { signal } = ctx;
    const lbArn = actual.lb.arn;
    const created = new Map<number, string>();
    const arnOf = (ref: TargetGroupRef): string => {
      if ('arn' in ref) return ref.arn;
      const arn = created.get(ref.createdFor);
      if (arn === undefined) throw new Error(`internal: no target group created for port ${ref.createdFor}`);
      return arn;
    };
    for (const action of actions) {
      // Nothing more once the work was superseded or leadership ended.
      signal.throwIfAborted();
      switch (action.kind) {
        case 'replaceLoadBalancer':
          break;
        case 'setIpAddressType':
          await this.api.setIpAddressType(signal, lbArn, action.type);
          break;
        case 'setSubnets':
          await this.api.setSubnets(signal, lbArn, action.subnetIds);
          break;
        case 'modifyLoadBalancerAttributes':
          await this.api.modifyLoadBalancerAttributes(signal, lbArn, action.attributes);
          break;
        case 'addTags':
          await this.api.addTags(signal, [action.target === 'load-balancer' ? lbArn : arnOf(action.target)], action.tags);
          break;
        case 'removeTags':
          await this.api.removeTags(signal, [action.target === 'load-balancer' ? lbArn : arnOf(action.target)], action.keys);
          break;
        case 'createTargetGroup': {
          const tg = await this.api.createTargetGroup(signal, {
            name: action.spec.name,
            protocol: action.spec.protocol,
            port: action.spec.port,
            vpcId: actual.lb.vpcId,
            targetType: action.spec.targetType,
            healthCheck: action.spec.healthCheck,
            tags: action.spec.tags,
          });
          created.set(action.port, tg.arn);
          break;
        }
        case 'modifyTargetGroup':
          await this.api.modifyTargetGroup(signal, arnOf(action.target), action.healthCheck);
          break;
        case 'modifyTargetGroupAttributes':
          await this.api.modifyTargetGroupAttributes(signal, arnOf(action.target), action.attributes);
          break;
        case 'registerTargets':
          await this.api.registerTargets(signal, arnOf(action.target), action.targets);
          break;
        case 'deregisterTargets':
          await this.api.deregisterTargets(signal, arnOf(action.target), action.targets);
          break;
        case 'createListener':
          await this.api.createListener(signal, {
            loadBalancerArn: lbArn,
            port: action.port,
            protocol: action.protocol,
            targetGroupArn: arnOf(action.target),
            tags: ownershipTags(this.options.clusterName, actual.tags[TAG_SERVICE] ?? '', `listener/${action.port}`),
          });
          break;
        case 'modifyListener':
          await this.api.modifyListener(signal, action.arn, { protocol: action.protocol, targetGroupArn: arnOf(action.target) });
          break;
        case 'deleteListener':
          await this.ignoreNotFound(() => this.api.deleteListener(signal, action.arn));
          break;
        case 'deleteTargetGroup':
          await this.deleteTargetGroup(ctx, { arn: action.arn, name: action.name });
          break;
      }
    }
  }

  /** The NLB (its listeners go with it), then its target groups: dependency order. */
  private async teardown(ctx: ProviderContext, owned: OwnedLoadBalancer): Promise<void> {
    const { signal } = ctx;
    const key = owned.tags[TAG_SERVICE] ?? '';
    const attached = await this.ignoreNotFound(() => allPages<TargetGroup>((marker) => this.api.describeTargetGroups(signal, { loadBalancerArn: owned.lb.arn, marker })));
    const tags = await describeTags(this.api, signal, (attached ?? []).map((tg) => tg.arn));
    signal.throwIfAborted();
    await this.ignoreNotFound(() => this.api.deleteLoadBalancer(signal, owned.lb.arn));
    this.inventory.remove(key, owned.lb.arn);
    ctx.logger.info({ loadBalancer: owned.lb.arn }, 'deleted NLB');
    for (const tg of attached ?? []) if (ownedBy(tags.get(tg.arn), this.options.clusterName, key)) await this.deleteTargetGroup(ctx, tg);
  }

  /** Right after its listener or NLB went, a target group can still be "in use" for a moment. */
  private async deleteTargetGroup(ctx: ProviderContext, tg: { arn: string; name: string }): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      ctx.signal.throwIfAborted();
      try {
        await this.ignoreNotFound(() => this.api.deleteTargetGroup(ctx.signal, tg.arn));
        return;
      } catch (error) {
        if (errorCode(error) !== 'ResourceInUse' || attempt >= 5) throw error;
        await this.options.clock.sleep(1_000 * attempt, ctx.signal);
      }
    }
  }

  private async ignoreNotFound<T>(fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  private async resolveSubnets(signal: AbortSignal, selection: SubnetSelection): Promise<string[]> {
    if (selection.kind === 'listed') {
      const ids = selection.values.filter((v) => v.startsWith('subnet-'));
      const names = selection.values.filter((v) => !v.startsWith('subnet-'));
      if (names.length === 0) return ids;
      const byName = await allPages<Subnet>((next) => this.api.describeSubnets(signal, { filters: [{ name: 'tag:Name', values: names }], next }));
      for (const s of byName) this.subnetVpcs.set(s.id, s.vpcId);
      const missing = names.filter((n) => !byName.some((s) => s.tags.Name === n));
      if (missing.length > 0) throw new ProviderError(`no subnet named ${missing.join(', ')}`, { retryable: false, reason: 'InvalidSpec', field: 'metadata.annotations[service.beta.kubernetes.io/aws-load-balancer-subnets]' });
      return [...ids, ...byName.map((s) => s.id)];
    }
    // aws-load-balancer-controller's discovery: the role tag, and our cluster's tag or no cluster tag; one subnet per zone.
    // Cached as long as the inventory: a burst of new Services asks EC2 once.
    const cached = this.discovered.get(selection.role);
    if (cached !== undefined && this.options.clock.now() - cached.at <= this.inventoryTtlMs) return cached.ids;
    const started = this.options.clock.now();
    const candidates = await allPages<Subnet>((next) => this.api.describeSubnets(signal, { filters: [{ name: 'tag-key', values: [selection.role] }], next }));
    for (const s of candidates) this.subnetVpcs.set(s.id, s.vpcId);
    const clusterTag = `kubernetes.io/cluster/${this.options.clusterName}`;
    const eligible = candidates.filter((s) => s.tags[clusterTag] !== undefined || !Object.keys(s.tags).some((k) => k.startsWith('kubernetes.io/cluster/')));
    const byZone = new Map<string, Subnet>();
    for (const s of eligible.sort((a, b) => Number(b.tags[clusterTag] !== undefined) - Number(a.tags[clusterTag] !== undefined) || (a.id < b.id ? -1 : 1))) {
      if (!byZone.has(s.zone)) byZone.set(s.zone, s);
    }
    if (byZone.size === 0) {
      throw new ProviderError(`no subnet tagged ${selection.role} (and ${clusterTag} or no cluster tag) found: tag your subnets or set the aws-load-balancer-subnets annotation`, {
        retryable: true,
        retryAfterMs: 60_000,
        reason: 'NotReady',
      });
    }
    const ids = [...byZone.values()].map((s) => s.id).sort();
    this.discovered.set(selection.role, { at: started, ids });
    return ids;
  }
}
