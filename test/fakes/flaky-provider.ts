import type { EventType } from '../../src/kube/events.js';
import { objectKey } from '../../src/kube/informer.js';
import {
  defineProvider,
  ProviderError,
  type Backends,
  type LoadBalancerProvider,
  type LoadBalancerStatus,
  type ProviderClass,
  type ProviderContext,
  type ProviderModule,
  type ReadonlyService,
  type SpecProblem,
} from '../../src/providers/provider.js';

/** A class under portico.dev/ that no real provider uses: the fakes register under it. */
export const TEST_CLOUD = 'portico.dev/test-cloud';

export interface ProviderCall {
  method: 'ensure' | 'updateBackends' | 'ensureDeleted';
  key: string;
  nodes?: string[];
  /** Whether the call's signal had fired when the call finished. */
  abortedAtEnd?: boolean;
}

/**
 * A cloud-like provider that fails the first `failures` ensure calls per Service with the given
 * error, then succeeds with a hostname ingress. Records every call. With `ensureDelayMs`, each
 * ensure waits like a cloud API call, and gives up (rejects) as soon as its signal fires.
 */
export class FlakyProvider implements LoadBalancerProvider {
  readonly calls: ProviderCall[] = [];
  /** "Cloud writes" made: the state change at the end of ensure, only if not aborted. */
  readonly writes: { key: string; at: number }[] = [];
  private readonly attempts = new Map<string, number>();
  private readonly balancers = new Map<string, LoadBalancerStatus>();
  /** Events every ensure records through its context before it succeeds or fails, as a cloud provider's would. */
  readonly eventsOnEnsure: { type: EventType; reason: string; message: string }[] = [];
  /** Resolves the next time an ensure starts, for tests that act mid-call. */
  private ensureStarted: (() => void)[] = [];

  constructor(
    readonly providerClass: ProviderClass,
    private readonly failures: number,
    private readonly error: () => ProviderError,
    /** How long each ensure takes, like a cloud API call. */
    private readonly ensureDelayMs = 0,
  ) {}

  validate(service: ReadonlyService): SpecProblem[] {
    return (service.spec?.ports ?? [])
      .map((p, i) => (p.protocol === 'SCTP' ? { field: `spec.ports[${String(i)}].protocol`, message: 'SCTP is not supported by this provider' } : undefined))
      .filter((p): p is SpecProblem => p !== undefined);
  }

  get(_ctx: ProviderContext, service: ReadonlyService): Promise<{ exists: boolean; status?: LoadBalancerStatus }> {
    const status = this.balancers.get(objectKey(service));
    return Promise.resolve(status ? { exists: true, status } : { exists: false });
  }

  holds(service: ReadonlyService): boolean {
    return this.balancers.has(objectKey(service));
  }

  nextEnsure(): Promise<void> {
    return new Promise((resolve) => this.ensureStarted.push(resolve));
  }

  async ensure(ctx: ProviderContext, service: ReadonlyService, backends: Backends): Promise<LoadBalancerStatus> {
    for (const resolve of this.ensureStarted.splice(0)) resolve();
    const key = objectKey(service);
    if (this.ensureDelayMs > 0) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, this.ensureDelayMs);
        ctx.signal.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(new Error('aborted'));
        }, { once: true });
      }).catch((error: unknown) => {
        this.calls.push({ method: 'ensure', key, nodes: backends.nodes.map((n) => n.metadata?.name ?? ''), abortedAtEnd: true });
        throw error;
      });
    }
    this.calls.push({ method: 'ensure', key, nodes: backends.nodes.map((n) => n.metadata?.name ?? ''), abortedAtEnd: ctx.signal.aborted });
    for (const event of this.eventsOnEnsure) ctx.events.record(event.type, event.reason, event.message);
    const attempt = (this.attempts.get(key) ?? 0) + 1;
    this.attempts.set(key, attempt);
    if (attempt <= this.failures) throw this.error();
    const status: LoadBalancerStatus = { ingress: [{ hostname: `${service.metadata?.name ?? ''}.lb.example.test` }] };
    this.balancers.set(key, status);
    this.writes.push({ key, at: Date.now() });
    return status;
  }

  updateBackends(_ctx: ProviderContext, service: ReadonlyService, backends: Backends): Promise<void> {
    this.calls.push({ method: 'updateBackends', key: objectKey(service), nodes: backends.nodes.map((n) => n.metadata?.name ?? '') });
    return Promise.resolve();
  }

  ensureDeleted(_ctx: ProviderContext, service: ReadonlyService): Promise<void> {
    const key = objectKey(service);
    this.calls.push({ method: 'ensureDeleted', key });
    this.balancers.delete(key);
    return Promise.resolve();
  }

  callsFor(key: string, method?: ProviderCall['method']): ProviderCall[] {
    return this.calls.filter((c) => c.key === key && (method === undefined || c.method === method));
  }
}

/** A registry entry serving `provider` under its class. */
export function fakeProviderModule(provider: LoadBalancerProvider): ProviderModule {
  return defineProvider({ providerClass: provider.providerClass, description: 'test fake', flags: {}, parseSettings: () => ({ settings: {} }), create: () => provider });
}
