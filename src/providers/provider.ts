import type { V1Node, V1Service } from '@kubernetes/client-node';

/** The `spec.loadBalancerClass` values Portico owns. */
export const PROVIDER_CLASSES = ['portico.dev/aws-nlb', 'portico.dev/aliyun-slb', 'portico.dev/l2'] as const;
export type ProviderClass = (typeof PROVIDER_CLASSES)[number];

export function isProviderClass(value: unknown): value is ProviderClass {
  return typeof value === 'string' && (PROVIDER_CLASSES as readonly string[]).includes(value);
}

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

/** A problem with the Service as written: the user must change it, retrying will not help. */
export interface SpecProblem {
  /** The field or annotation at fault, e.g. `metadata.annotations[portico.dev/load-balancer-ips]`. */
  field: string;
  message: string;
}

/**
 * Modelled on k8s.io/cloud-provider's LoadBalancer interface. Every method is idempotent and
 * reports or touches only balancers this controller created.
 */
export interface LoadBalancerProvider {
  readonly providerClass: ProviderClass;
  /** What the provider cannot do with this Service; empty when it can. Pure, no I/O. */
  validate(service: V1Service): SpecProblem[];
  get(service: V1Service): Promise<{ exists: boolean; status?: LoadBalancerStatus }>;
  ensure(service: V1Service, nodes: readonly V1Node[]): Promise<LoadBalancerStatus>;
  /** Backends only: called when the eligible node set changes. */
  updateNodes(service: V1Service, nodes: readonly V1Node[]): Promise<void>;
  /** Succeeds when nothing is there. */
  ensureDeleted(service: V1Service): Promise<void>;
  /**
   * Called once per leadership term, before the first reconcile, with every Service this
   * provider provisioned (per Portico's finalizer), so it can rebuild in-memory state.
   */
  start?(provisioned: readonly V1Service[], signal: AbortSignal): Promise<void>;
  /** The provider asks for Services to be reconciled again (e.g. an address was freed). */
  onChange?(listener: (serviceKeys: readonly string[]) => void): void;
  /** The leadership term ended: stop timers and background writes. */
  stop?(): void;
}

/** Condition reasons a provider error can surface as. */
export type ProviderErrorReason = 'ProviderError' | 'AllocationFailed' | 'InvalidSpec' | 'NotReady';

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
