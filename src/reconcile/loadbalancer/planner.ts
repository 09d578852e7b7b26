/**
 * The LoadBalancer planner: pure functions from what is observed to what to do and which
 * status to write. No I/O; the executor carries the plan out.
 */
import { hash } from 'node:crypto';
import type { Condition } from '../../api/types.js';
import { boundedList, boundedMessage, removeCondition, setCondition } from '../../kube/conditions.js';
import { LAST_APPLIED_ANNOTATION } from '../../kube/informer.js';
import type { OwnershipMarks } from '../../kube/ownership.js';
import type { LoadBalancerStatus, ProviderClass, ProviderError, ReadonlyEndpointSlice, ReadonlyNode, ReadonlyService, SpecProblem } from '../../providers/provider.js';

export const FINALIZER = 'portico.dev/load-balancer';
/** Which provider provisioned the balancer, so it is cleaned up even after the class is gone. */
export const PROVISIONED_BY_ANNOTATION = 'portico.dev/provisioned-by';
export const READY_CONDITION = 'LoadBalancerReady';
export const OWNERSHIP: OwnershipMarks = { finalizer: FINALIZER, annotation: PROVISIONED_BY_ANNOTATION };
/** Every class under this prefix is Portico's, known to this build or not (a typo gets a condition, not silence). */
export const CLASS_PREFIX = 'portico.dev/';
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
  /**
   * Ours no longer (deleted, type or class changed): delete the balancer, then let go.
   * `recorded` is the provider our annotation names, when this controller runs it; `unknownOwner`
   * is set when the annotation is missing or names a provider not running here, so every
   * enabled provider is asked to clean up.
   */
  | { kind: 'cleanup'; recorded: ProviderClass | undefined; unknownOwner: string | undefined; deleting: boolean; why: string }
  /** Ours, but the provider for its class is not running here. */
  | { kind: 'unavailable'; wanted: ProviderClass; known: boolean }
  /** Ours, but the spec asks for something the provider cannot do. */
  | { kind: 'reject'; provider: ProviderClass; problems: SpecProblem[] }
  /** Ours: converge the balancer. `previous` is set when another (enabled) provider provisioned it before. */
  | { kind: 'ensure'; provider: ProviderClass; previous?: ProviderClass };

export interface PlanInput {
  service: ReadonlyService;
  defaultClass: ProviderClass | undefined;
  /** Classes this controller runs (`--providers`). */
  enabled: ReadonlySet<ProviderClass>;
  /** Classes this build knows (the registry). */
  known: ReadonlySet<ProviderClass>;
  validate: (provider: ProviderClass, service: ReadonlyService) => SpecProblem[];
}

/** The class the Service asks for, if Portico should serve it. */
export function wantedClass(service: ReadonlyService, defaultClass: ProviderClass | undefined): ProviderClass | undefined {
  if (service.spec?.type !== 'LoadBalancer') return undefined;
  const requested = service.spec.loadBalancerClass;
  if (requested === undefined || requested === '') return defaultClass;
  return requested.startsWith(CLASS_PREFIX) ? requested : undefined;
}

/** The provider our annotation says provisioned this Service's balancer (a tenant can write it: verify). */
export function recordedProvider(service: ReadonlyService): string | undefined {
  if (!hasFinalizer(service)) return undefined;
  return service.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION];
}

export function hasFinalizer(service: ReadonlyService): boolean {
  return (service.metadata?.finalizers ?? []).includes(FINALIZER);
}

export function plan(input: PlanInput): Plan {
  const { service, enabled } = input;
  const recorded = recordedProvider(service);
  const previous = recorded !== undefined && enabled.has(recorded) ? recorded : undefined;
  const wanted = wantedClass(service, input.defaultClass);
  const deleting = service.metadata?.deletionTimestamp !== undefined;
  const annotated = service.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION];

  if (deleting || wanted === undefined) {
    if (!hasFinalizer(service) && annotated === undefined) return { kind: 'ignore' };
    const why = deleting ? 'Service is being deleted' : service.spec?.type !== 'LoadBalancer' ? `type changed to ${service.spec?.type ?? 'none'}` : 'loadBalancerClass is no longer one Portico serves';
    const unknownOwner = previous !== undefined ? undefined : recorded === undefined ? 'no provider is recorded' : `the recorded provider ${recorded} is not enabled in this controller`;
    return { kind: 'cleanup', recorded: previous, unknownOwner, deleting, why };
  }
  if (!enabled.has(wanted)) {
    // Moving to a class not running here: the enabled provider that has it lets go first.
    if (previous !== undefined) return { kind: 'cleanup', recorded: previous, unknownOwner: undefined, deleting: false, why: `class changed to ${wanted}` };
    return { kind: 'unavailable', wanted, known: input.known.has(wanted) };
  }
  const problems = input.validate(wanted, service);
  if (problems.length > 0) return { kind: 'reject', provider: wanted, problems };
  return previous !== undefined && previous !== wanted ? { kind: 'ensure', provider: wanted, previous } : { kind: 'ensure', provider: wanted };
}

/** What this controller last converged for a Service. */
export interface Converged {
  uid: string;
  provider: ProviderClass;
  specKey: string;
  backendsKey: string;
  ensuredAt: number;
  ingress: unknown;
}

export interface ConvergeInput {
  known: Converged | undefined;
  provider: ProviderClass;
  specKey: string;
  backendsKey: string;
  /** The ingress the Service shows now. */
  ingress: unknown;
  now: number;
  /** Infinity when the provider is not resynced. */
  resyncPeriodMs: number;
  /** Re-ensures are spread over ±this fraction of the period. */
  resyncJitter: number;
  /** A provider asked for this Service to be ensured again. */
  requested: boolean;
  equivalent: (a: unknown, b: unknown) => boolean;
}

export type ConvergeDecision =
  | { kind: 'ensure'; why: 'new' | 'spec' | 'provider' | 'resync' | 'no-address' | 'status-drift' | 'requested' }
  | { kind: 'update-backends' }
  /** Nothing to do until the next resync, due in `inMs` (Infinity: none is due). */
  | { kind: 'skip'; inMs: number };

/** Whether a Service needs a full ensure, a backends update, or nothing (pure). */
export function decideConverge(input: ConvergeInput): ConvergeDecision {
  const { known } = input;
  const hasIngress = Array.isArray(input.ingress) && input.ingress.length > 0;
  if (!known) return { kind: 'ensure', why: 'new' };
  if (known.specKey !== input.specKey) return { kind: 'ensure', why: 'spec' };
  if (known.provider !== input.provider) return { kind: 'ensure', why: 'provider' };
  if (input.requested) return { kind: 'ensure', why: 'requested' };
  if (!hasIngress) return { kind: 'ensure', why: 'no-address' };
  // Someone else rewrote the status we wrote: converge it back.
  if (!input.equivalent(input.ingress, known.ingress)) return { kind: 'ensure', why: 'status-drift' };
  if (input.now - known.ensuredAt >= input.resyncPeriodMs * (1 - input.resyncJitter)) return { kind: 'ensure', why: 'resync' };
  if (known.backendsKey !== input.backendsKey) return { kind: 'update-backends' };
  return { kind: 'skip', inMs: known.ensuredAt + input.resyncPeriodMs - input.now };
}

/** What a reconcile ended with, for the status it leaves behind. */
export type Outcome =
  | { kind: 'ensured'; status: LoadBalancerStatus }
  /** `held`: what the provider still has for it ('unknown' when it could not say: keep what status shows). */
  | { kind: 'failed'; error: ProviderError; held: Held }
  | { kind: 'rejected'; problems: SpecProblem[]; held: Held }
  | { kind: 'unavailable'; wanted: ProviderClass; known: boolean; available: readonly ProviderClass[] }
  | { kind: 'cleaned' };

/** What a provider reports it still has for a Service: status shows exactly that, never more. */
export type Held = LoadBalancerStatus | undefined | 'unknown';

function heldIngress(held: Held, current: LoadBalancerStatus['ingress']): LoadBalancerStatus['ingress'] {
  if (held === 'unknown') return current;
  return held === undefined ? [] : held.ingress.map(sanitizeIngress);
}

export interface DesiredStatus {
  loadBalancer: LoadBalancerStatus | Record<string, never>;
  conditions: Condition[];
}

/**
 * The status Portico wants on the Service after `outcome`. Conditions other than ours are kept;
 * lastTransitionTime changes only when the condition's status does.
 */
export function desiredStatus(service: ReadonlyService, outcome: Outcome, now: Date): DesiredStatus {
  const existing = (service.status?.conditions ?? []) as unknown as Condition[];
  const currentIngress = (service.status?.loadBalancer?.ingress ?? []) as LoadBalancerStatus['ingress'];
  let ready: { status: Condition['status']; reason: ConditionReason; message: string } | undefined;
  let ingress: LoadBalancerStatus['ingress'] = currentIngress;
  switch (outcome.kind) {
    case 'ensured':
      ingress = outcome.status.ingress.map(sanitizeIngress);
      ready = { status: 'True', reason: 'Provisioned', message: `load balancer ready: ${describeIngress(ingress)}` };
      break;
    case 'failed': {
      // An address the provider no longer holds for this Service must not stay in its status.
      ingress = heldIngress(outcome.held, currentIngress);
      const reason: ConditionReason = outcome.error.reason === 'AllocationFailed' ? 'AllocationFailed' : outcome.error.reason === 'InvalidSpec' ? 'InvalidSpec' : 'ProviderError';
      const field = outcome.error.field ? `${outcome.error.field}: ` : '';
      ready = { status: 'False', reason, message: `${field}${outcome.error.message}` };
      break;
    }
    case 'rejected':
      // The address kept while the spec is fixed, and only while the provider still holds it.
      ingress = heldIngress(outcome.held, currentIngress);
      ready = { status: 'False', reason: 'InvalidSpec', message: describeProblems(outcome.problems) };
      break;
    case 'unavailable':
      ingress = [];
      ready = {
        status: 'False',
        reason: 'ProviderNotConfigured',
        message: outcome.known
          ? `provider ${outcome.wanted} is not enabled in this Portico controller (enable it with --providers)`
          : `${outcome.wanted} is not a load-balancer class this Portico build serves (it serves ${outcome.available.join(', ')})`,
      };
      break;
    case 'cleaned':
      ingress = [];
      break;
  }
  const generation = service.metadata?.generation;
  const conditions = ready
    ? setCondition(existing, { type: READY_CONDITION, status: ready.status, reason: ready.reason, message: boundedMessage(ready.message) }, now, generation)
    : removeCondition(existing, READY_CONDITION);
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
  return boundedMessage(boundedList(problems.map((p) => `${p.field}: ${p.message}`)));
}

export function describeIngress(ingress: readonly { ip?: string; hostname?: string }[]): string {
  return ingress.map((i) => i.ip ?? i.hostname ?? '?').join(', ') || 'no address';
}

/**
 * Nodes that may receive load-balancer traffic: not being deleted, not opted out by label
 * (value "false" opts back in), not about to be removed by the cluster autoscaler.
 */
export function eligibleNodes(nodes: readonly ReadonlyNode[]): ReadonlyNode[] {
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
export function nodeSetKey(nodes: readonly ReadonlyNode[]): string {
  // providerID too: cloud providers map nodes to instances by it, and it is often set after the node registers.
  const parts = nodes.map((n) => `${n.metadata?.name ?? ''}=${n.spec?.providerID ?? ''}=${(n.status?.addresses ?? []).map((a) => `${a.type}:${a.address}`).join(',')}`);
  return hash('sha256', parts.join('\n')).slice(0, 16);
}

/**
 * Whether two versions of a Service differ in what a provider reads (spec via generation,
 * labels, annotations other than ours). Cheaper than comparing fingerprints, for every event.
 */
export function sameInputs(a: ReadonlyService, b: ReadonlyService): boolean {
  return (
    a.metadata?.generation === b.metadata?.generation &&
    a.spec?.type === b.spec?.type &&
    JSON.stringify(a.metadata?.labels ?? {}) === JSON.stringify(b.metadata?.labels ?? {}) &&
    JSON.stringify(inputAnnotations(a)) === JSON.stringify(inputAnnotations(b))
  );
}

/**
 * The annotations a provider may read: not our own record, nor kubectl's last-applied copy
 * (the cache drops it, a write's answer may still carry it).
 */
function inputAnnotations(service: ReadonlyService): [string, string][] {
  return Object.entries(service.metadata?.annotations ?? {}).filter(([key]) => key !== PROVISIONED_BY_ANNOTATION && key !== LAST_APPLIED_ANNOTATION);
}

/** A fingerprint of everything in a Service a provider reads: spec, labels and annotations. */
export function serviceSpecKey(service: ReadonlyService): string {
  const { spec, metadata } = service;
  const annotations = Object.fromEntries(inputAnnotations(service));
  return hash('sha256', JSON.stringify({ spec, labels: metadata?.labels ?? {}, annotations })).slice(0, 16);
}

/** The API server sends `endpoints: null` for a slice without endpoints, whatever the type says. */
function endpointsOf(slice: ReadonlyEndpointSlice): ReadonlyEndpointSlice['endpoints'] {
  const endpoints = slice.endpoints as ReadonlyEndpointSlice['endpoints'] | null;
  return endpoints ?? [];
}

/** A short fingerprint of a Service's EndpointSlices (what `ip` targets and Local policy read). */
export function endpointSlicesKey(slices: readonly ReadonlyEndpointSlice[]): string {
  if (slices.length === 0) return '';
  const parts = slices
    .map((s) => JSON.stringify([s.metadata?.name, s.addressType, s.ports, endpointsOf(s).map((e) => [e.addresses, e.conditions, e.nodeName, e.zone])]))
    .sort();
  return hash('sha256', parts.join('\n')).slice(0, 16);
}

/** The Service key an EndpointSlice belongs to, from its `kubernetes.io/service-name` label. */
export function sliceServiceKey(slice: ReadonlyEndpointSlice): string | undefined {
  const namespace = slice.metadata?.namespace;
  const name = slice.metadata?.labels?.['kubernetes.io/service-name'];
  return name && namespace ? `${namespace}/${name}` : undefined;
}
