/**
 * The LoadBalancer executor: the writes and provider calls a reconcile decided on. Thin: every
 * decision is the planner's; this only talks to the API server and the providers, writing
 * only what differs.
 */
import type { V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Counter, type Registry } from '../../kube/prom.js';
import type { Clock } from '../../kube/clock.js';
import { boundedList } from '../../kube/conditions.js';
import type { EventSink, EventType } from '../../kube/events.js';
import type { WriteExpectations } from '../../kube/expectations.js';
import { objectKey } from '../../kube/informer.js';
import { metric } from '../../kube/metrics.js';
import { lazyChild } from '../../kube/logger.js';
import { claimPatch, releasePatch } from '../../kube/ownership.js';
import { patchStatus, patchWithRetry } from '../../kube/patch.js';
import type { KubeClient } from '../../kube/rest.js';
import { servicePath, serviceRef } from '../../kube/refs.js';
import { asProviderError, type LoadBalancerProvider, type ProviderContext, type ReadonlyService } from '../../providers/provider.js';
import { desiredStatus, OWNERSHIP, statusPatch, type Held, type Outcome } from './planner.js';

export interface ExecutorOptions {
  client: KubeClient;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  expectations: WriteExpectations;
}

type ProviderMethod = 'get' | 'ensure' | 'updateBackends' | 'ensureDeleted';

/** A provider records a handful per ensure (created this, assigned that); more is a bug, not news. */
const MAX_NOTES = 64;

/** Normal Events a provider recorded during one ensure, not yet written. */
export class EnsureNotes {
  private held: { reason: string; message: string }[] = [];

  constructor(private readonly record: (reason: string, message: string) => void) {}

  add(reason: string, message: string): void {
    if (this.held.length >= MAX_NOTES || this.held.some((n) => n.reason === reason && n.message === message)) return;
    this.held.push({ reason, message });
  }

  /** The held messages as one clause ("a; b; and 3 more"), for the caller's own Event; undefined when none. */
  take(): string | undefined {
    const messages = this.held.map((n) => n.message);
    this.held = [];
    return messages.length > 0 ? boundedList(messages) : undefined;
  }

  /**
   * Records what is held as the provider's own Events: the ensure ended without an
   * `EnsuredLoadBalancer` to carry them (it failed, or the status write did), and what the
   * provider did (created a balancer, assigned an address) must still be visible.
   */
  flush(): void {
    for (const note of this.held.splice(0)) this.record(note.reason, note.message);
  }
}

export class LoadBalancerExecutor {
  private readonly providerCalls: Counter<'provider' | 'method' | 'result'>;

  constructor(private readonly options: ExecutorOptions) {
    const registers = [options.registry];
    this.providerCalls = metric(options.registry, 'portico_provider_calls_total', Counter<'provider' | 'method' | 'result'>, () =>
      new Counter({ name: 'portico_provider_calls_total', help: 'Provider calls by provider, method and result', labelNames: ['provider', 'method', 'result'], registers }),
    );
  }

  event(service: ReadonlyService, type: EventType, reason: string, message: string): void {
    this.options.events.record(serviceRef(service), type, reason, message);
  }

  /** The context a provider call gets: the work's signal, a child logger, Events on this Service. */
  context(service: ReadonlyService, provider: LoadBalancerProvider, signal: AbortSignal, logger: Logger): ProviderContext {
    return {
      signal,
      logger: lazyChild(logger, { provider: provider.providerClass }),
      events: { record: (type, reason, message) => this.event(service, type, reason, message) },
    };
  }

  /**
   * The context for one ensure: Warnings go out at once, Normal Events are held in `notes` for
   * the reconciler's `EnsuredLoadBalancer`, so a new Service costs one Event, not one per step.
   */
  ensureContext(service: ReadonlyService, provider: LoadBalancerProvider, signal: AbortSignal, logger: Logger): { ctx: ProviderContext; notes: EnsureNotes } {
    const notes = new EnsureNotes((reason, message) => this.event(service, 'Normal', reason, message));
    const ctx = this.context(service, provider, signal, logger);
    return {
      notes,
      ctx: {
        ...ctx,
        events: { record: (type, reason, message) => (type === 'Normal' ? notes.add(reason, message) : ctx.events.record(type, reason, message)) },
      },
    };
  }

  /** Calls the provider, counting the call; errors come back as ProviderError. */
  async call<T>(provider: LoadBalancerProvider, method: ProviderMethod, fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      this.providerCalls.inc({ provider: provider.providerClass, method, result: 'ok' });
      return result;
    } catch (error) {
      this.providerCalls.inc({ provider: provider.providerClass, method, result: 'error' });
      throw asProviderError(error);
    }
  }

  /** What the provider still has for the Service ('unknown' if it cannot say right now). */
  async held(ctx: ProviderContext, provider: LoadBalancerProvider, service: ReadonlyService): Promise<Held> {
    try {
      const found = await this.call(provider, 'get', () => provider.get(ctx, service));
      return found.exists ? (found.status ?? 'unknown') : undefined;
    } catch {
      return 'unknown';
    }
  }

  /** Finalizer and `provisioned-by` in one write, before any provider call, so nothing is ever leaked. */
  async claim(service: V1Service, providerClass: string, signal: AbortSignal): Promise<V1Service> {
    const { object } = await this.expect(service, true, () => patchWithRetry(this.options.client, servicePath(service), service, (s) => claimPatch(s, OWNERSHIP, providerClass), { signal, shareWithWatch: true }));
    return object;
  }

  /** Removes the finalizer and `provisioned-by`; `deleting` Services are gone right after. */
  async release(service: V1Service, deleting: boolean, signal: AbortSignal): Promise<void> {
    // A deleting Service's answer is not shared: its watch event is the deletion, never matched.
    await this.expect(service, !deleting, () => patchWithRetry(this.options.client, servicePath(service), service, (s) => releasePatch(s, OWNERSHIP), { signal, shareWithWatch: !deleting }));
  }

  /** Writes the status `outcome` implies, only when it differs; returns the object as it is now. */
  async writeStatus(service: V1Service, outcome: Outcome, signal: AbortSignal): Promise<{ object: V1Service; wrote: boolean }> {
    const now = new Date(this.options.clock.now());
    return this.expect(service, true, () =>
      patchStatus(this.options.client, servicePath(service), service as V1Service & { status?: Record<string, unknown> }, (s) => statusPatch(desiredStatus(s, outcome, now)), signal, true),
    );
  }

  /**
   * Tells the expectations about a write to `service` while it is in flight, then what it wrote,
   * so reconciles skip cached copies older than it and its watch event is known as ours even
   * when it comes before the answer. `echoed`: the object stays, so its event will come.
   */
  private async expect<T extends { object: V1Service; wrote: boolean }>(service: V1Service, echoed: boolean, write: () => Promise<T>): Promise<T> {
    const key = objectKey(service);
    let written: string | undefined;
    this.options.expectations.writing(key);
    try {
      const result = await write();
      if (result.wrote && echoed) written = result.object.metadata?.resourceVersion || undefined;
      return result;
    } finally {
      this.options.expectations.wrote(key, written);
    }
  }
}
