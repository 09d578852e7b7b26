/**
 * The provider seam (v2), modelled on k8s.io/cloud-provider's `LoadBalancer` interface
 * (cloud.go). The reconciler owns finalizers, status, conditions and retries; a provider owns
 * only the balancer. Contract, for every method:
 *
 * - It is idempotent and reports or touches only balancers this controller created.
 * - `ctx.signal` fires when leadership ends or the Service's work is superseded (deleted,
 *   recreated under the same name). A provider passes it to every SDK call and makes no cloud
 *   write after it fired; an aborted call rejects (any error: the reconciler discards it).
 * - Inputs are read-only: objects come from the shared informer cache and are seen by every
 *   other consumer. Copy before changing anything.
 * - Errors cross the seam as `ProviderError`, mapped from the SDK's errors at the provider's own
 *   boundary, with `retryable` and an optional `retryAfterMs`.
 */
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from '../kube/prom.js';
import type { DeepReadonly, SpecProblem } from '../api/types.js';
import type { Clock } from '../kube/clock.js';
import type { EventSink, EventType } from '../kube/events.js';
import type { KubeClient } from '../kube/rest.js';
import type { InformerSource } from '../kube/shared-informers.js';

/** A `spec.loadBalancerClass` value; the registry knows which ones this build serves. */
export type ProviderClass = string;

export type ReadonlyService = DeepReadonly<V1Service>;
export type ReadonlyNode = DeepReadonly<V1Node>;
export type ReadonlyEndpointSlice = DeepReadonly<V1EndpointSlice>;

export interface PortStatus {
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  error?: string;
}

export interface LoadBalancerIngress {
  ip?: string;
  hostname?: string;
  ipMode?: 'VIP' | 'Proxy';
  ports?: PortStatus[];
}

export interface LoadBalancerStatus {
  ingress: LoadBalancerIngress[];
}

export type { SpecProblem };

/**
 * Events about the Service being reconciled (the reference, with its uid, is filled in).
 * Warnings are written at once. Normal Events recorded during `ensure` are held and folded into
 * the reconciler's one `EnsuredLoadBalancer` ("Ensured load balancer: 192.0.2.7 (assigned from
 * pool default)"), so write their message as a short lower-case clause that also reads on its
 * own: if the ensure fails, they are written as they are, before the failure's Warning. In the
 * other calls every Event is written as it is.
 */
export interface ServiceEvents {
  record(type: EventType, reason: string, message: string): void;
}

/** Passed first to every provider call. */
export interface ProviderContext {
  /** Leadership ended or the work was superseded: stop, and write nothing more. */
  readonly signal: AbortSignal;
  /** A child logger carrying the Service key and the provider class. */
  readonly logger: Logger;
  readonly events: ServiceEvents;
}

/** What a balancer forwards to. */
export interface Backends {
  /** Nodes eligible for load-balancer traffic (not excluded, not being deleted), sorted by name. */
  readonly nodes: readonly ReadonlyNode[];
  /**
   * The Service's EndpointSlices (label `kubernetes.io/service-name`), only for providers whose
   * `needs.endpointSlices` is true; empty otherwise. For `ip` targets and
   * `externalTrafficPolicy: Local`.
   */
  readonly endpointSlices: readonly ReadonlyEndpointSlice[];
}

export interface LoadBalancerProvider {
  readonly providerClass: ProviderClass;
  /** What the reconciler must pass in `Backends`, and re-call `updateBackends` on. */
  readonly needs?: { readonly endpointSlices?: boolean };
  /**
   * Whether converged Services are re-ensured every `--resync-period` (default true): a cloud
   * balancer can drift where no watch sees it. A provider whose every input is a watched
   * object says false, so a resting controller has nothing to wake for.
   */
  readonly resync?: boolean;
  /** What the provider cannot do with this Service; empty when it can. Pure, no I/O. */
  validate(service: ReadonlyService): SpecProblem[];
  /** Whether a balancer of ours exists for this Service, and its status (GetLoadBalancer). */
  get(ctx: ProviderContext, service: ReadonlyService): Promise<{ exists: boolean; status?: LoadBalancerStatus }>;
  /** Creates or converges the balancer (EnsureLoadBalancer); returns the status to write. */
  ensure(ctx: ProviderContext, service: ReadonlyService, backends: Backends): Promise<LoadBalancerStatus>;
  /** Backends only, when the eligible set changed and the spec did not (UpdateLoadBalancer). */
  updateBackends(ctx: ProviderContext, service: ReadonlyService, backends: Backends): Promise<void>;
  /** Deletes everything of ours for this Service; succeeds when nothing is there (EnsureLoadBalancerDeleted). */
  ensureDeleted(ctx: ProviderContext, service: ReadonlyService): Promise<void>;
  /**
   * Called once per leadership term, before the first reconcile, with every Service this
   * provider may hold something for (per Portico's finalizer, `provisioned-by` annotation or
   * status), so it can rebuild in-memory state.
   */
  start?(signal: AbortSignal, services: readonly ReadonlyService[]): Promise<void>;
  /** Whether the provider holds anything for this Service (in memory; no I/O). Cleanup asks every provider. */
  holds?(service: ReadonlyService): boolean;
  /** The provider asks for Services to be reconciled again (e.g. an address was freed). */
  onChange?(listener: (serviceKeys: readonly string[]) => void): void;
  /** The leadership term ended: stop timers and background writes. */
  stop?(): void;
}

/** Condition reasons a provider error can surface as. */
export type ProviderErrorReason = 'ProviderError' | 'AllocationFailed' | 'InvalidSpec' | 'NotReady' | 'NotOwned';

export interface ProviderErrorOptions {
  retryable: boolean;
  retryAfterMs?: number;
  reason?: ProviderErrorReason;
  /** The Service field at fault, for terminal errors the user must fix. */
  field?: string;
  cause?: unknown;
}

/**
 * The one error type that crosses the provider seam. Providers map their SDK's errors to it at
 * their own boundary; the reconciler decides backoff, requeue-after or terminal from it.
 */
export class ProviderError extends Error {
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly reason: ProviderErrorReason;
  readonly field: string | undefined;

  constructor(message: string, options: ProviderErrorOptions) {
    super(message, { cause: options.cause });
    this.name = 'ProviderError';
    this.retryable = options.retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.reason = options.reason ?? 'ProviderError';
    this.field = options.field;
  }
}

/** Wraps anything a provider threw into a ProviderError; unknown errors are retryable. */
export function asProviderError(error: unknown): ProviderError {
  if (error instanceof ProviderError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ProviderError(message, { retryable: true, cause: error });
}

// ---- registry entries (src/providers/registry.ts lists them) ----------------------------------

/** Everything a provider may use; each gets its own child logger. */
export interface ProviderDeps {
  /** Guarded: refuses writes once this leadership term has ended. */
  client: KubeClient;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  /** The term's shared informers: ask for a collection path, get the one informer for it. */
  informers: InformerSource;
}

/** A command-line flag a provider adds to `portico controller`. Names start with the provider's prefix. */
export interface ProviderFlag {
  type: 'string' | 'boolean';
  default?: string | boolean;
  /** One line for `--help` and the provider's docs page. */
  description: string;
  /** Environment variable read when the flag is absent. */
  env?: string;
}

export type FlagValues = Readonly<Record<string, string | boolean | undefined>>;

export interface ProviderModule<Settings = unknown> {
  readonly providerClass: ProviderClass;
  /** One line for `--help`. */
  readonly description: string;
  /** In `--providers` when the flag is not given (the bare-metal provider needs no cloud account). */
  readonly enabledByDefault?: boolean;
  readonly flags: Readonly<Record<string, ProviderFlag>>;
  /** Flag values (env already applied) -> settings, or problems each naming its flag. Pure. */
  parseSettings(values: FlagValues): { settings: Settings } | { problems: string[] };
  /** May resolve later: a cloud provider imports its SDK here, so a process that does not use it never loads it. */
  create(deps: ProviderDeps, settings: Settings): LoadBalancerProvider | Promise<LoadBalancerProvider>;
}

/** Erases a module's settings type so modules of different providers fit one list. */
export function defineProvider<Settings>(module: ProviderModule<Settings>): ProviderModule {
  return module;
}

