/**
 * Pure CLB planner: desired state + what the API reported -> the calls to make, in order.
 * No I/O; table-tested. The executor resolves references to things created earlier in the plan
 * (`{ key }` for a VServer group, `'new'` for the ACL).
 */
import type { SpecProblem } from '../provider.js';
import type { BackendServer, HealthCheck, Listener, ListenerProtocol, LoadBalancerAttribute, Tags } from './client.js';
import { annotation, backendsFor, groupName, type DesiredBalancer, type DesiredListener } from './spec.js';

/** The API's limit per AddVServerGroupBackendServers / RemoveVServerGroupBackendServers call. */
export const BACKEND_BATCH = 20;
/** The API's limit per AddAccessControlListEntry / RemoveAccessControlListEntry call. */
export const ACL_BATCH = 50;

export interface ObservedGroup {
  id: string;
  name: string;
  backends: BackendServer[];
}

export interface Observed {
  lb: LoadBalancerAttribute;
  listeners: Listener[];
  /** Our groups only (name starts with our description). */
  groups: ObservedGroup[];
  acl: { id: string; entries: string[] } | undefined;
}

export type GroupRef = { id: string } | { key: string };
export type AclRef = { id: string } | 'new';

export interface PlannedListener {
  port: number;
  protocol: ListenerProtocol;
  description: string;
  group: GroupRef;
  scheduler: string;
  acl: AclRef | undefined;
  healthCheck: HealthCheck;
}

export type Action =
  | { kind: 'set-name'; name: string }
  | { kind: 'modify-internet-spec'; chargeType?: string; bandwidth?: number }
  | { kind: 'modify-instance-spec'; spec: string }
  | { kind: 'set-delete-protection'; value: 'on' | 'off' }
  | { kind: 'create-acl' }
  | { kind: 'acl-add'; acl: AclRef; entries: string[] }
  | { kind: 'acl-remove'; acl: AclRef; entries: string[] }
  | { kind: 'create-group'; key: string; name: string; backends: BackendServer[] }
  | { kind: 'add-backends'; group: GroupRef; backends: BackendServer[] }
  | { kind: 'remove-backends'; group: GroupRef; backends: BackendServer[] }
  | { kind: 'create-listener'; listener: PlannedListener }
  | { kind: 'set-listener'; listener: PlannedListener }
  | { kind: 'start-listener'; port: number; protocol: ListenerProtocol }
  | { kind: 'delete-listener'; port: number; protocol: ListenerProtocol }
  | { kind: 'delete-group'; id: string }
  | { kind: 'delete-acl'; id: string }
  | { kind: 'tag'; tags: Tags }
  | { kind: 'untag'; keys: string[] }
  | { kind: 'delete-load-balancer' };

export interface PlanInput {
  desired: DesiredBalancer;
  observed: Observed;
  /** The description that marks our listeners and groups. */
  description: string;
  /** Portico created this CLB (it carries our resource tag); false for a reused one. */
  created: boolean;
  /** ECS instances of the eligible nodes, sorted. */
  instances: readonly string[];
  /** Tags the CLB must carry, the spec hash included. */
  tags: Tags;
}

export type Plan = { actions: Action[] } | { problems: SpecProblem[] };

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const backendKey = (b: BackendServer): string => `${b.serverId}:${b.port}`;

function healthCheckMatches(want: HealthCheck, have: HealthCheck): boolean {
  // Only what the Service asks for is compared; unset fields keep the API's defaults.
  return (Object.keys(want) as (keyof HealthCheck)[]).every((key) => want[key] === undefined || String(want[key]) === String(have[key]));
}

function listenerMatches(want: PlannedListener, have: Listener, aclId: string | undefined): boolean {
  const groupId = 'id' in want.group ? want.group.id : undefined;
  return (
    have.description === want.description &&
    have.scheduler === want.scheduler &&
    groupId !== undefined &&
    have.vServerGroupId === groupId &&
    (want.acl === undefined ? have.aclStatus !== 'on' : have.aclStatus === 'on' && aclId !== undefined && have.aclId === aclId && have.aclType === 'white') &&
    healthCheckMatches(want.healthCheck, have.healthCheck)
  );
}

export function planEnsure(input: PlanInput): Plan {
  const { desired, observed, description, created } = input;
  const lb = observed.lb;
  const problems: SpecProblem[] = [];
  const actions: Action[] = [];

  // What a CLB cannot change in place.
  if (lb.addressType && lb.addressType !== desired.addressType && desired.reuseId === undefined) {
    problems.push({ field: `metadata.annotations[${annotation('address-type')}]`, message: `the CLB ${lb.id} is ${lb.addressType}; the address type cannot change (delete and recreate the Service)` });
  }
  if (desired.vswitchId !== undefined && lb.vswitchId !== desired.vswitchId && desired.reuseId === undefined) {
    problems.push({ field: `metadata.annotations[${annotation('vswitch-id')}]`, message: `the CLB ${lb.id} is in vSwitch ${lb.vswitchId || '(none)'}; the vSwitch cannot change` });
  }

  // Listener ports held by listeners that are not ours.
  const foreign = observed.listeners.filter((l) => l.description !== description);
  for (const want of desired.listeners) {
    const other = foreign.find((l) => l.port === want.port);
    if (other && !desired.forceOverrideListeners) {
      problems.push({
        field: `metadata.annotations[${annotation('force-override-listeners')}]`,
        message: `port ${want.port} of CLB ${lb.id} has a ${other.protocol.toUpperCase()} listener Portico did not create; set force-override-listeners: "true" to take it over`,
      });
    }
  }
  if (problems.length > 0) return { problems };

  // Instance attributes: only on balancers we created; a reused one stays as its owner set it.
  if (created) {
    if (lb.name !== desired.name) actions.push({ kind: 'set-name', name: desired.name });
    const chargeChange = desired.chargeType !== undefined && desired.chargeType !== lb.chargeType;
    const bandwidthChange = desired.bandwidth !== undefined && desired.bandwidth !== lb.bandwidth;
    if (desired.addressType === 'internet' && (chargeChange || bandwidthChange)) {
      actions.push({ kind: 'modify-internet-spec', ...(chargeChange ? { chargeType: desired.chargeType } : {}), ...(bandwidthChange ? { bandwidth: desired.bandwidth } : {}) });
    }
    if (desired.spec !== undefined && desired.spec !== lb.spec) actions.push({ kind: 'modify-instance-spec', spec: desired.spec });
    if (lb.deleteProtection !== desired.deleteProtection) actions.push({ kind: 'set-delete-protection', value: desired.deleteProtection });
  }

  // Access control list for loadBalancerSourceRanges.
  let acl: AclRef | undefined;
  if (desired.sourceRanges.length > 0) {
    acl = observed.acl ? { id: observed.acl.id } : 'new';
    if (!observed.acl) actions.push({ kind: 'create-acl' });
    const have = new Set(observed.acl?.entries ?? []);
    const want = new Set(desired.sourceRanges);
    for (const batch of chunks(desired.sourceRanges.filter((e) => !have.has(e)), ACL_BATCH)) actions.push({ kind: 'acl-add', acl, entries: batch });
    for (const batch of chunks([...have].filter((e) => !want.has(e)).sort(), ACL_BATCH)) actions.push({ kind: 'acl-remove', acl, entries: batch });
  }

  // One VServer group per listener, backends = eligible instances at the node port.
  const groupRefs = new Map<string, GroupRef>();
  const keptGroups = new Set<string>();
  for (const want of desired.listeners) {
    const name = groupName(description, want);
    const backends = backendsFor(want, input.instances);
    const existing = observed.groups.find((g) => g.name === name);
    if (!existing) {
      const key = `${want.port}/${want.protocol}`;
      const [first = [], ...rest] = chunks(backends, BACKEND_BATCH);
      actions.push({ kind: 'create-group', key, name, backends: first });
      for (const batch of rest) actions.push({ kind: 'add-backends', group: { key }, backends: batch });
      groupRefs.set(key, { key });
      continue;
    }
    keptGroups.add(existing.id);
    groupRefs.set(`${want.port}/${want.protocol}`, { id: existing.id });
    const have = new Map(existing.backends.map((b) => [backendKey(b), b]));
    const wantKeys = new Set(backends.map(backendKey));
    // Add before removing: the group is never emptier than it has to be.
    for (const batch of chunks(backends.filter((b) => !have.has(backendKey(b))), BACKEND_BATCH)) actions.push({ kind: 'add-backends', group: { id: existing.id }, backends: batch });
    const stale = existing.backends.filter((b) => !wantKeys.has(backendKey(b)));
    for (const batch of chunks(stale, BACKEND_BATCH)) actions.push({ kind: 'remove-backends', group: { id: existing.id }, backends: batch });
  }

  // Listeners: create (they start stopped, so start them), converge, start.
  const aclId = observed.acl?.id;
  const replaced = new Set<string>();
  for (const want of desired.listeners) {
    const planned: PlannedListener = {
      port: want.port,
      protocol: want.protocol,
      description,
      group: groupRefs.get(`${want.port}/${want.protocol}`) ?? { key: `${want.port}/${want.protocol}` },
      scheduler: want.scheduler,
      acl,
      healthCheck: want.healthCheck,
    };
    const existing = observed.listeners.find((l) => l.port === want.port);
    if (existing && existing.protocol !== want.protocol) {
      actions.push({ kind: 'delete-listener', port: existing.port, protocol: existing.protocol });
      replaced.add(`${existing.port}/${existing.protocol}`);
    }
    if (!existing || existing.protocol !== want.protocol) {
      actions.push({ kind: 'create-listener', listener: planned }, { kind: 'start-listener', port: want.port, protocol: want.protocol });
      continue;
    }
    if (!listenerMatches(planned, existing, aclId)) actions.push({ kind: 'set-listener', listener: planned });
    if (existing.status !== 'running') actions.push({ kind: 'start-listener', port: want.port, protocol: want.protocol });
  }

  // Ours and no longer wanted: listeners first (a group or ACL in use cannot be deleted).
  const wanted = new Set(desired.listeners.map((l) => `${l.port}/${l.protocol}`));
  for (const l of observed.listeners) {
    const key = `${l.port}/${l.protocol}`;
    if (l.description === description && !wanted.has(key) && !replaced.has(key)) actions.push({ kind: 'delete-listener', port: l.port, protocol: l.protocol });
  }
  for (const g of observed.groups) if (!keptGroups.has(g.id)) actions.push({ kind: 'delete-group', id: g.id });
  if (desired.sourceRanges.length === 0 && observed.acl) actions.push({ kind: 'delete-acl', id: observed.acl.id });

  // Tags last: the spec hash says "converged", so it is written only when everything else was.
  const missing: Tags = {};
  for (const [key, value] of Object.entries(input.tags)) if (lb.tags[key] !== value) missing[key] = value;
  if (Object.keys(missing).length > 0) actions.push({ kind: 'tag', tags: missing });
  return { actions };
}

export interface DeletePlanInput {
  observed: Observed;
  description: string;
  created: boolean;
  /** Our tag keys, removed from a reused CLB. */
  ourTagKeys: readonly string[];
}

/** Removes only what is ours: the whole CLB if we created it, else our listeners, groups, ACL and tags. */
export function planDelete(input: DeletePlanInput): Action[] {
  const { observed, description } = input;
  const actions: Action[] = [];
  if (input.created) {
    if (observed.lb.deleteProtection === 'on') actions.push({ kind: 'set-delete-protection', value: 'off' });
    actions.push({ kind: 'delete-load-balancer' });
  } else {
    for (const l of observed.listeners) if (l.description === description) actions.push({ kind: 'delete-listener', port: l.port, protocol: l.protocol });
    for (const g of observed.groups) actions.push({ kind: 'delete-group', id: g.id });
    const keys = input.ourTagKeys.filter((key) => key in observed.lb.tags);
    if (keys.length > 0) actions.push({ kind: 'untag', keys });
  }
  if (observed.acl) actions.push({ kind: 'delete-acl', id: observed.acl.id });
  return actions;
}

/** Listeners of the desired set, for tests and status. */
export function listenerKeys(listeners: readonly DesiredListener[]): string[] {
  return listeners.map((l) => `${l.port}/${l.protocol}`);
}
