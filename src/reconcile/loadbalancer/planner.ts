/**
 * The LoadBalancer planner: pure functions from what is observed to what to do and which
 * status to write. No I/O; the executor carries the plan out.
 */
import { createHash } from 'node:crypto';
import type { V1Node, V1Service } from '@kubernetes/client-node';
import type { Condition } from '../../api/types.js';
import { isProviderClass, type LoadBalancerStatus, type ProviderClass, type ProviderError, type SpecProblem } from '../../providers/provider.js';

export const FINALIZER = 'portico.dev/load-balancer';
/** Which provider provisioned the balancer, so it is cleaned up even after the class is gone. */
export const PROVISIONED_BY_ANNOTATION = 'portico.dev/provisioned-by';
export const READY_CONDITION = 'LoadBalancerReady';
export const EXCLUDE_LABEL = 'node.kubernetes.io/exclude-from-external-load-balancers';
export const AUTOSCALER_DELETE_TAINT = 'ToBeDeletedByClusterAutoscaler';

export type ConditionReason =
  | 'Provisioned'
  | 'Provisioning'
  | 'AllocationFailed'
  | 'ProviderError'
  | 'InvalidSpec'
  | 'ProviderNotConfigured'
  | 'NotReady';

export type Plan =
  /** Not ours and nothing of ours on it. */
  | { kind: 'ignore' }
  /** Ours no longer (deleted, type or class changed): delete the balancer, then let go. */
  | { kind: 'cleanup'; provider: ProviderClass; deleting: boolean; why: string }
  /** Ours, but the provider for its class is not running here. */
  | { kind: 'unavailable'; wanted: ProviderClass }
  /** Ours, but the spec asks for something the provider cannot do. */
  | { kind: 'reject'; provider: ProviderClass; problems: SpecProblem[] }
  /** Ours: converge the balancer. `previous` is set when another provider provisioned it before. */
  | { kind: 'ensure'; provider: ProviderClass; previous?: ProviderClass };

export interface PlanInput {
  service: V1Service;
  defaultClass: ProviderClass | undefined;
  available: ReadonlySet<ProviderClass>;
  validate: (provider: ProviderClass, service: V1Service) => SpecProblem[];
}

/** The class the Service asks for, if Portico should serve it. */
export function wantedClass(service: V1Service, defaultClass: ProviderClass | undefined): ProviderClass | undefined {
  if (service.spec?.type !== 'LoadBalancer') return undefined;
  const requested = service.spec.loadBalancerClass;
  if (requested === undefined || requested === '') return defaultClass;
  return isProviderClass(requested) ? requested : undefined;
}

/** The provider that provisioned this Service's balancer, per our finalizer and annotation. */
export function provisionedBy(service: V1Service): ProviderClass | undefined {
  if (!(service.metadata?.finalizers ?? []).includes(FINALIZER)) return undefined;
  const recorded = service.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION];
  return isProviderClass(recorded) ? recorded : undefined;
}

export function hasFinalizer(service: V1Service): boolean {
  return (service.metadata?.finalizers ?? []).includes(FINALIZER);
}

export function plan(input: PlanInput): Plan {
  const { service } = input;
  const previous = provisionedBy(service);
  const wanted = wantedClass(service, input.defaultClass);
  const deleting = service.metadata?.deletionTimestamp !== undefined;

  if (deleting || wanted === undefined) {
    if (previous !== undefined) {
      const why = deleting ? 'Service is being deleted' : service.spec?.type !== 'LoadBalancer' ? `type changed to ${service.spec?.type ?? 'none'}` : 'loadBalancerClass is no longer one Portico serves';
      return { kind: 'cleanup', provider: previous, deleting, why };
    }
    // Our finalizer without a recorded provider (written by hand?) must not block deletion forever.
    if (hasFinalizer(service)) return { kind: 'cleanup', provider: wanted ?? input.defaultClass ?? 'portico.dev/l2', deleting, why: 'finalizer without a recorded provider' };
    return { kind: 'ignore' };
  }
  if (!input.available.has(wanted)) {
    if (previous !== undefined && previous !== wanted && input.available.has(previous)) {
      return { kind: 'cleanup', provider: previous, deleting: false, why: `class changed to ${wanted}` };
    }
    return { kind: 'unavailable', wanted };
  }
  const problems = input.validate(wanted, service);
  if (problems.length > 0) return { kind: 'reject', provider: wanted, problems };
  return previous !== undefined && previous !== wanted ? { kind: 'ensure', provider: wanted, previous } : { kind: 'ensure', provider: wanted };
}

/** What a reconcile ended with, for the status it leaves behind. */
export type Outcome =
  | { kind: 'ensured'; status: LoadBalancerStatus }
  /** `exists`: the provider still has a balancer for it, so the ingress in status stays true. */
  | { kind: 'failed'; error: ProviderError; exists: boolean }
  | { kind: 'rejected'; problems: SpecProblem[] }
  | { kind: 'unavailable'; wanted: ProviderClass }
  | { kind: 'cleaned' };

export interface DesiredStatus {
  loadBalancer: LoadBalancerStatus | Record<string, never>;
  conditions: Condition[];
}

/**
 * The status Portico wants on the Service after `outcome`. Conditions other than ours are kept;
 * lastTransitionTime changes only when the condition's status does.
 */
export function desiredStatus(service: V1Service, outcome: Outcome, now: Date): DesiredStatus {
  const existing = (service.status?.conditions ?? []) as unknown as Condition[];
  const others = existing.filter((c) => c.type !== READY_CONDITION);
  const currentIngress = (service.status?.loadBalancer?.ingress ?? []) as LoadBalancerStatus['ingress'];
  let ready: Omit<Condition, 'lastTransitionTime'> | undefined;
  let ingress: LoadBalancerStatus['ingress'] = currentIngress;
  switch (outcome.kind) {
    case 'ensured':
      ingress = outcome.status.ingress.map(sanitizeIngress);
      ready = { type: READY_CONDITION, status: 'True', reason: 'Provisioned', message: `load balancer ready: ${describeIngress(ingress)}` };
      break;
    case 'failed': {
      // An address the provider no longer holds for this Service must not stay in its status.
      if (!outcome.exists) ingress = [];
      const reason: ConditionReason = outcome.error.reason === 'AllocationFailed' ? 'AllocationFailed' : outcome.error.reason === 'InvalidSpec' ? 'InvalidSpec' : 'ProviderError';
      const field = outcome.error.field ? `${outcome.error.field}: ` : '';
      ready = { type: READY_CONDITION, status: 'False', reason, message: `${field}${outcome.error.message}` };
      break;
    }
    case 'rejected':
      ready = { type: READY_CONDITION, status: 'False', reason: 'InvalidSpec', message: describeProblems(outcome.problems) };
      break;
    case 'unavailable':
      ready = { type: READY_CONDITION, status: 'False', reason: 'ProviderNotConfigured', message: `provider ${outcome.wanted} is not enabled in this Portico controller (see --providers)` };
      break;
    case 'cleaned':
      ingress = [];
      break;
  }
  const conditions = [...others];
  if (ready) {
    const old = existing.find((c) => c.type === READY_CONDITION);
    const generation = service.metadata?.generation;
    conditions.push({
      ...ready,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime: old && old.status === ready.status ? toIso(old.lastTransitionTime) : now.toISOString(),
    });
  }
  return { loadBalancer: ingress.length > 0 ? { ingress } : {}, conditions };
}

/** The API server rejects ipMode without an ip; a provider's slip must not block the status write. */
export function sanitizeIngress(ingress: LoadBalancerStatus['ingress'][number]): LoadBalancerStatus['ingress'][number] {
  if (ingress.ip !== undefined || ingress.ipMode === undefined) return ingress;
  const { ipMode: _dropped, ...rest } = ingress;
  return rest;
}

/** The status fields to merge-patch for `desired` (a merge patch clears a field only with null). */
export function statusPatch(desired: DesiredStatus): Record<string, unknown> {
  return {
    loadBalancer: 'ingress' in desired.loadBalancer ? desired.loadBalancer : { ingress: null },
    conditions: desired.conditions.length > 0 ? desired.conditions : null,
  };
}

export function describeProblems(problems: readonly SpecProblem[]): string {
  return problems.map((p) => `${p.field}: ${p.message}`).join('; ');
}

export function describeIngress(ingress: readonly { ip?: string; hostname?: string }[]): string {
  return ingress.map((i) => i.ip ?? i.hostname ?? '?').join(', ') || 'no address';
}

function toIso(value: string | Date): string {
  return value instanceof Date ? value.toISOString() : value;
}

/**
 * Nodes that may receive load-balancer traffic: not being deleted, not opted out by label
 * (value "false" opts back in), not about to be removed by the cluster autoscaler.
 */
export function eligibleNodes(nodes: readonly V1Node[]): V1Node[] {
  return nodes
    .filter((node) => {
      if (node.metadata?.deletionTimestamp !== undefined) return false;
      const exclude = node.metadata?.labels?.[EXCLUDE_LABEL];
      if (exclude !== undefined && exclude !== 'false') return false;
      return !(node.spec?.taints ?? []).some((t) => t.key === AUTOSCALER_DELETE_TAINT);
    })
    .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
}

/** A short fingerprint of a node set, to tell when a Service's backends must be updated. */
export function nodeSetKey(nodes: readonly V1Node[]): string {
  const parts = nodes.map((n) => `${n.metadata?.name ?? ''}=${(n.status?.addresses ?? []).map((a) => `${a.type}:${a.address}`).join(',')}`);
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 16);
}

/**
 * Whether two versions of a Service differ in what a provider reads (spec via generation,
 * labels, annotations other than ours). Cheaper than comparing fingerprints, for every event.
 */
export function sameInputs(a: V1Service, b: V1Service): boolean {
  const userAnnotations = (s: V1Service): string =>
    JSON.stringify(Object.entries(s.metadata?.annotations ?? {}).filter(([key]) => key !== PROVISIONED_BY_ANNOTATION));
  return (
    a.metadata?.generation === b.metadata?.generation &&
    a.spec?.type === b.spec?.type &&
    JSON.stringify(a.metadata?.labels ?? {}) === JSON.stringify(b.metadata?.labels ?? {}) &&
    userAnnotations(a) === userAnnotations(b)
  );
}

/** A fingerprint of everything in a Service a provider reads: spec, labels and annotations. */
export function serviceSpecKey(service: V1Service): string {
  const { spec, metadata } = service;
  const annotations = Object.fromEntries(Object.entries(metadata?.annotations ?? {}).filter(([key]) => key !== PROVISIONED_BY_ANNOTATION));
  return createHash('sha256')
    .update(JSON.stringify({ spec, labels: metadata?.labels ?? {}, annotations }))
    .digest('hex')
    .slice(0, 16);
}
