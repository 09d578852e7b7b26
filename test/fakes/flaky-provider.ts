import type { V1Node, V1Service } from '@kubernetes/client-node';
import { objectKey } from '../../src/kube/informer.js';
import { ProviderError, type LoadBalancerProvider, type LoadBalancerStatus, type ProviderClass, type SpecProblem } from '../../src/providers/provider.js';

export interface ProviderCall {
  method: 'ensure' | 'updateNodes' | 'ensureDeleted';
  key: string;
  nodes?: string[];
}

/**
 * A cloud-like provider that fails the first `failures` ensure calls per Service with the given
 * error, then succeeds with a hostname ingress. Records every call.
 */
export class FlakyProvider implements LoadBalancerProvider {
  readonly calls: ProviderCall[] = [];
  private readonly attempts = new Map<string, number>();
  private readonly balancers = new Map<string, LoadBalancerStatus>();

  constructor(
    readonly providerClass: ProviderClass,
    private readonly failures: number,
    private readonly error: () => ProviderError,
    /** How long each ensure takes, like a cloud API call. */
    private readonly ensureDelayMs = 0,
  ) {}

  validate(service: V1Service): SpecProblem[] {
    return (service.spec?.ports ?? [])
      .map((p, i) => (p.protocol === 'SCTP' ? { field: `spec.ports[${String(i)}].protocol`, message: 'SCTP is not supported by this provider' } : undefined))
      .filter((p): p is SpecProblem => p !== undefined);
  }

  get(service: V1Service): Promise<{ exists: boolean; status?: LoadBalancerStatus }> {
    const status = this.balancers.get(objectKey(service));
    return Promise.resolve(status ? { exists: true, status } : { exists: false });
  }

  async ensure(service: V1Service, nodes: readonly V1Node[]): Promise<LoadBalancerStatus> {
    if (this.ensureDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.ensureDelayMs));
    const key = objectKey(service);
    this.calls.push({ method: 'ensure', key, nodes: nodes.map((n) => n.metadata?.name ?? '') });
    const attempt = (this.attempts.get(key) ?? 0) + 1;
    this.attempts.set(key, attempt);
    if (attempt <= this.failures) throw this.error();
    const status: LoadBalancerStatus = { ingress: [{ hostname: `${service.metadata?.name ?? ''}.lb.example.test` }] };
    this.balancers.set(key, status);
    return status;
  }

  updateNodes(service: V1Service, nodes: readonly V1Node[]): Promise<void> {
    this.calls.push({ method: 'updateNodes', key: objectKey(service), nodes: nodes.map((n) => n.metadata?.name ?? '') });
    return Promise.resolve();
  }

  ensureDeleted(service: V1Service): Promise<void> {
    const key = objectKey(service);
    this.calls.push({ method: 'ensureDeleted', key });
    this.balancers.delete(key);
    return Promise.resolve();
  }

  callsFor(key: string, method?: ProviderCall['method']): ProviderCall[] {
    return this.calls.filter((c) => c.key === key && (method === undefined || c.method === method));
  }
}
