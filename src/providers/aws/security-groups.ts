/**
 * The NLB's frontend security group (one per NLB, like aws-load-balancer-controller's "NLB
 * security groups"): created before the NLB and attached at creation (AWS cannot attach security
 * groups to an NLB created without any), its ingress rules converged in place, deleted after the
 * NLB is gone. Ownership by tags, never by name alone. Planning is pure (planner.ts); this file
 * only reads and writes.
 */
import { ProviderError, type ProviderContext } from '../provider.js';
import type { Clock } from '../../kube/clock.js';
import type { AwsApi, SecurityGroup, Vpc } from './api.js';
import { ANNOTATIONS, TAG_CLUSTER, TAG_RESOURCE, TAG_SERVICE, ownedBy, type DesiredLoadBalancer } from './desired.js';
import { isNotFound } from './errors.js';
import { errorCode } from './guard.js';
import { desiredIngress, planIngress } from './planner.js';

export const SECURITY_GROUP_RESOURCE = 'security-group';

/** Tries per deletion while the NLB's network interfaces let go of the group (`DependencyViolation`). */
const DELETE_ATTEMPTS = 4;
const DELETE_RETRY_AFTER_MS = 20_000;

export interface FrontendGroupsOptions {
  api: AwsApi;
  clusterName: string;
  clock: Clock;
  /** How long a VPC's CIDR blocks are reused (the inventory's TTL). */
  cacheTtlMs: number;
}

function isOurGroup(group: SecurityGroup, clusterName: string, key: string): boolean {
  return ownedBy(group.tags, clusterName, key) && group.tags[TAG_RESOURCE] === SECURITY_GROUP_RESOURCE;
}

export class FrontendGroups {
  private readonly vpcs = new Map<string, { at: number; vpc: Vpc }>();

  constructor(private readonly options: FrontendGroupsOptions) {}

  private get api(): AwsApi {
    return this.options.api;
  }

  clear(): void {
    this.vpcs.clear();
  }

  /**
   * Before CreateLoadBalancer: the group exists (created, or found after a crash: by its name in
   * the VPC, then kept only if its tags say it is ours for this Service) with exactly the rules
   * wanted. Returns its ID.
   */
  async ensureForNewBalancer(ctx: ProviderContext, desired: DesiredLoadBalancer, vpcId: string): Promise<string> {
    const group = await this.createOrFind(ctx, desired, vpcId);
    await this.convergeIngress(ctx, desired, group);
    return group.id;
  }

  /**
   * An existing NLB with security groups (deep verify): our group holds exactly the wanted rules
   * and is the only one attached; groups of ours it no longer uses are deleted (best effort: AWS
   * may still hold them for a moment). Returns the NLB's group IDs afterwards.
   */
  async converge(ctx: ProviderContext, desired: DesiredLoadBalancer, lb: { arn: string; vpcId: string; securityGroupIds: readonly string[] }): Promise<readonly string[]> {
    const ours = await this.owned(ctx.signal, desired.serviceKey);
    const group = ours.find((g) => g.name === desired.securityGroup.name && g.vpcId === lb.vpcId) ?? (await this.createOrFind(ctx, desired, lb.vpcId));
    await this.convergeIngress(ctx, desired, group);
    let attached = lb.securityGroupIds;
    if (attached.length !== 1 || attached[0] !== group.id) {
      ctx.signal.throwIfAborted();
      await this.api.setSecurityGroups(ctx.signal, lb.arn, [group.id]);
      attached = [group.id];
    }
    for (const g of ours) if (!attached.includes(g.id)) await this.delete(ctx, g.id, 'try');
    return attached;
  }

  /**
   * `aws-load-balancer-security-groups`: the user's groups, resolved to IDs (Name tags looked up in
   * the NLB's VPC). Portico adds no rule to them and never deletes them.
   */
  async resolveUserGroups(signal: AbortSignal, desired: DesiredLoadBalancer, vpcId: string): Promise<string[]> {
    const values = desired.securityGroup.userGroups;
    const ids = values.filter((v) => v.startsWith('sg-'));
    const names = values.filter((v) => !v.startsWith('sg-'));
    if (names.length === 0) return ids;
    const found = await this.describeAll(signal, [
      { name: 'vpc-id', values: [vpcId] },
      { name: 'tag:Name', values: names },
    ]);
    const field = `metadata.annotations[${ANNOTATIONS.securityGroups}]`;
    for (const name of names) {
      const matches = found.filter((g) => g.tags.Name === name);
      if (matches.length !== 1) {
        const what = matches.length === 0 ? `no security group with the Name tag "${name}" in ${vpcId}` : `${matches.length} security groups have the Name tag "${name}" in ${vpcId}: use IDs`;
        throw new ProviderError(what, { retryable: false, reason: 'InvalidSpec', field });
      }
    }
    return [...ids, ...names.map((n) => found.find((g) => g.tags.Name === n)?.id ?? '')];
  }

  /** An existing NLB with groups, switched to (or kept on) the user's groups: SetSecurityGroups in place; our unused group goes. */
  async convergeUserGroups(ctx: ProviderContext, desired: DesiredLoadBalancer, lb: { arn: string; vpcId: string; securityGroupIds: readonly string[] }): Promise<readonly string[]> {
    const ids = await this.resolveUserGroups(ctx.signal, desired, lb.vpcId);
    let attached = lb.securityGroupIds;
    if ([...attached].sort().join() !== [...ids].sort().join()) {
      ctx.signal.throwIfAborted();
      await this.api.setSecurityGroups(ctx.signal, lb.arn, ids);
      attached = ids;
    }
    await this.deleteUnused(ctx, desired.serviceKey, attached);
    return attached;
  }

  /** Groups of ours for this Service not attached to `keep` (a replaced NLB's): best effort. */
  async deleteUnused(ctx: ProviderContext, key: string, keep: readonly string[]): Promise<void> {
    for (const g of await this.owned(ctx.signal, key)) if (!keep.includes(g.id)) await this.delete(ctx, g.id, 'try');
  }

  /**
   * After the Service's NLBs are gone: every group tagged ours for it. Throws a retryable error
   * while AWS still holds one (the finalizer stays until the group is gone).
   */
  async deleteAll(ctx: ProviderContext, key: string): Promise<void> {
    for (const g of await this.owned(ctx.signal, key)) await this.delete(ctx, g.id, 'must');
  }

  /** Every group tagged with our cluster, by Service key (the garbage-collection sweep). */
  async allOwned(signal: AbortSignal): Promise<SecurityGroup[]> {
    return this.describeAll(signal, [
      { name: `tag:${TAG_CLUSTER}`, values: [this.options.clusterName] },
      { name: `tag:${TAG_RESOURCE}`, values: [SECURITY_GROUP_RESOURCE] },
    ]);
  }

  /** Deletes one group; `try`: one attempt, false when AWS still holds it. */
  async delete(ctx: ProviderContext, id: string, mode: 'must' | 'try'): Promise<boolean> {
    const attempts = mode === 'must' ? DELETE_ATTEMPTS : 1;
    for (let attempt = 1; ; attempt++) {
      ctx.signal.throwIfAborted();
      try {
        await this.api.deleteSecurityGroup(ctx.signal, id);
        ctx.logger.info({ securityGroup: id }, 'deleted security group');
        return true;
      } catch (error) {
        if (isNotFound(error)) return true;
        if (errorCode(error) !== 'DependencyViolation') throw error;
        if (attempt >= attempts) {
          if (mode === 'try') {
            ctx.logger.info({ securityGroup: id }, 'security group still in use; deleting it later');
            return false;
          }
          throw new ProviderError(
            `security group ${id} is still in use (DependencyViolation): the deleted NLB's network interfaces take a few minutes to go; ` +
              'if it stays, a rule in another security group references it: remove that rule',
            { retryable: true, retryAfterMs: DELETE_RETRY_AFTER_MS, cause: error },
          );
        }
        await this.options.clock.sleep(2_000 * attempt, ctx.signal);
      }
    }
  }

  private async owned(signal: AbortSignal, key: string): Promise<SecurityGroup[]> {
    const found = await this.describeAll(signal, [
      { name: `tag:${TAG_CLUSTER}`, values: [this.options.clusterName] },
      { name: `tag:${TAG_SERVICE}`, values: [key] },
      { name: `tag:${TAG_RESOURCE}`, values: [SECURITY_GROUP_RESOURCE] },
    ]);
    return found.filter((g) => isOurGroup(g, this.options.clusterName, key));
  }

  private async describeAll(signal: AbortSignal, filters: { name: string; values: string[] }[]): Promise<SecurityGroup[]> {
    const out: SecurityGroup[] = [];
    let next: string | undefined;
    do {
      const page = await this.api.describeSecurityGroups(signal, { filters, next });
      out.push(...page.items);
      next = page.next;
    } while (next !== undefined);
    return out;
  }

  private async createOrFind(ctx: ProviderContext, desired: DesiredLoadBalancer, vpcId: string): Promise<SecurityGroup> {
    const sg = desired.securityGroup;
    ctx.signal.throwIfAborted();
    try {
      const id = await this.api.createSecurityGroup(ctx.signal, { name: sg.name, description: sg.description, vpcId, tags: sg.tags });
      ctx.logger.info({ securityGroup: id }, 'created security group');
      ctx.events.record('Normal', 'CreatedSecurityGroup', `created security group ${sg.name} (${id})`);
      // A new group has no ingress rule (only EC2's default egress rule, which we leave).
      return { id, name: sg.name, vpcId, tags: sg.tags, ingress: [] };
    } catch (error) {
      if (errorCode(error) !== 'InvalidGroup.Duplicate') throw error;
    }
    // Created before a crash, or someone else's: the name says where, the tags say whose.
    const [found] = await this.describeAll(ctx.signal, [
      { name: 'vpc-id', values: [vpcId] },
      { name: 'group-name', values: [sg.name] },
    ]);
    if (found === undefined) throw new ProviderError(`security group ${sg.name} exists but could not be described; retrying`, { retryable: true });
    if (!isOurGroup(found, this.options.clusterName, desired.serviceKey)) {
      const owner = found.tags[TAG_CLUSTER] === undefined ? 'not created by Portico' : `tagged for ${found.tags[TAG_CLUSTER]}/${found.tags[TAG_SERVICE] ?? '?'}`;
      throw new ProviderError(`a security group named ${sg.name} (${found.id}) already exists in ${vpcId} and is not ours (${owner}); Portico never takes over a resource by name: choose another aws-load-balancer-name`, {
        retryable: false,
        reason: 'NotOwned',
        field: `metadata.annotations[${ANNOTATIONS.name}]`,
      });
    }
    return found;
  }

  /** Revokes what is not wanted first (never open to more than asked), then authorizes what is missing. */
  private async convergeIngress(ctx: ProviderContext, desired: DesiredLoadBalancer, group: SecurityGroup): Promise<void> {
    const sources = desired.securityGroup.sources;
    const vpc = sources.kind === 'vpc' ? await this.vpc(ctx.signal, group.vpcId) : undefined;
    const { authorize, revoke } = planIngress(desiredIngress(desired.securityGroup, vpc), group.ingress);
    if (revoke.length > 0) {
      ctx.signal.throwIfAborted();
      await this.api.revokeSecurityGroupIngress(ctx.signal, group.id, revoke);
    }
    if (authorize.length > 0) {
      ctx.signal.throwIfAborted();
      await this.api.authorizeSecurityGroupIngress(ctx.signal, group.id, authorize);
    }
    if (revoke.length + authorize.length > 0) ctx.logger.info({ securityGroup: group.id, authorized: authorize.length, revoked: revoke.length }, 'converged security group rules');
  }

  private async vpc(signal: AbortSignal, id: string): Promise<Vpc> {
    const cached = this.vpcs.get(id);
    if (cached !== undefined && this.options.clock.now() - cached.at <= this.options.cacheTtlMs) return cached.vpc;
    const started = this.options.clock.now();
    const [vpc] = await this.api.describeVpcs(signal, [id]);
    if (vpc === undefined || vpc.cidrs.length === 0) throw new ProviderError(`VPC ${id} not found or without a CIDR block`, { retryable: true, retryAfterMs: 60_000 });
    this.vpcs.set(id, { at: started, vpc });
    return vpc;
  }
}
