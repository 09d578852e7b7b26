/**
 * The LoadBalancer controller: informers feed a workqueue; each reconcile plans from the
 * current Service (level-based, never from the event that queued it) and the executor below
 * carries the plan out: finalizer first, provider call, then status — each written only when
 * it differs.
 */
import type { V1Node, V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Clock } from '../../kube/clock.js';
import type { EventSink, EventType, ObjectReference } from '../../kube/events.js';
import { objectKey, type Informer } from '../../kube/informer.js';
import { equivalent, patchStatus, patchWithRetry } from '../../kube/patch.js';
import type { KubeClient } from '../../kube/rest.js';
import { done, requeueAfter, retry, terminal, WorkQueue, type Outcome as QueueOutcome } from '../../kube/workqueue.js';
import { asProviderError, isProviderClass, type LoadBalancerProvider, type ProviderClass } from '../../providers/provider.js';
import { WriteExpectations } from './expectations.js';
import {
  describeIngress,
  describeProblems,
  desiredStatus,
  eligibleNodes,
  FINALIZER,
  hasFinalizer,
  nodeSetKey,
  plan,
  PROVISIONED_BY_ANNOTATION,
  provisionedBy,
  sameInputs,
  serviceSpecKey,
  statusPatch,
  wantedClass,
  type Outcome,
} from './planner.js';

export const DEFAULT_WORKERS = 4;
export const DEFAULT_RESYNC_PERIOD_MS = 10 * 60_000;
/** Re-ensures are spread over ±10% of the period so they do not arrive in one burst. */
const RESYNC_JITTER = 0.1;
/** How long to trust that the watch will deliver our own write before reconciling anyway. */
export const STALE_CACHE_TIMEOUT_MS = 10_000;
/** EnsuringLoadBalancer announces only work users would otherwise wait on without a word. */
export const ENSURING_EVENT_DELAY_MS = 1_000;

export interface LoadBalancerControllerOptions {
  client: KubeClient;
  services: Informer<V1Service>;
  nodes: Informer<V1Node>;
  providers: ReadonlyMap<ProviderClass, LoadBalancerProvider>;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  defaultClass?: ProviderClass | undefined;
  workers?: number;
  resyncPeriodMs?: number;
  random?: () => number;
}

/** What this process last converged for a Service. */
interface Synced {
  uid: string;
  provider: ProviderClass;
  specKey: string;
  nodeKey: string;
  ensuredAt: number;
  service: V1Service;
}

interface Metrics {
  reconciles: Counter<'result'>;
  duration: Histogram;
  providerCalls: Counter<'provider' | 'method' | 'result'>;
  managed: Gauge<'provider'>;
}

function metric<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

function createMetrics(registry: Registry): Metrics {
  const registers = [registry];
  return {
    reconciles: metric(registry, 'portico_loadbalancer_reconciles_total', () => new Counter({ name: 'portico_loadbalancer_reconciles_total', help: 'LoadBalancer reconciles by result (done, requeue, error, terminal)', labelNames: ['result'], registers })),
    duration: metric(registry, 'portico_loadbalancer_reconcile_duration_seconds', () => new Histogram({ name: 'portico_loadbalancer_reconcile_duration_seconds', help: 'Time one LoadBalancer reconcile takes', buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120], registers })),
    providerCalls: metric(registry, 'portico_provider_calls_total', () => new Counter({ name: 'portico_provider_calls_total', help: 'Provider calls by provider, method and result', labelNames: ['provider', 'method', 'result'], registers })),
    managed: metric(registry, 'portico_loadbalancer_services', () => new Gauge({ name: 'portico_loadbalancer_services', help: 'LoadBalancer Services converged by this controller, by provider', labelNames: ['provider'], registers })),
  };
}

export function serviceRef(service: V1Service): ObjectReference {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    namespace: service.metadata?.namespace,
    name: service.metadata?.name ?? '',
    uid: service.metadata?.uid,
    resourceVersion: service.metadata?.resourceVersion,
  };
}

export function servicePath(service: V1Service): string {
  return `/api/v1/namespaces/${service.metadata?.namespace ?? 'default'}/services/${service.metadata?.name ?? ''}`;
}

export class LoadBalancerController {
  readonly queue: WorkQueue;
  private readonly synced = new Map<string, Synced>();
  /** Last copy of Services deleted while still carrying our finalizer (forced removal). */
  private readonly tombstones = new Map<string, V1Service>();
  /** UIDs whose balancer this process deleted: their final DELETED event needs no cleanup. */
  private readonly cleanedUids = new Set<string>();
  /** Services a provider asked to re-ensure (e.g. a pool edit took their address away). */
  private readonly providerRequested = new Set<string>();
  private readonly expectations: WriteExpectations;
  /** The eligible node set and its fingerprint, recomputed only on node events. */
  private eligible: { nodes: V1Node[]; key: string } = { nodes: [], key: '' };
  private readonly metrics: Metrics;

  constructor(private readonly options: LoadBalancerControllerOptions) {
    this.queue = new WorkQueue({ name: 'loadbalancer', clock: options.clock, registry: options.registry });
    this.expectations = new WriteExpectations(options.clock, STALE_CACHE_TIMEOUT_MS);
    this.metrics = createMetrics(options.registry);
  }

  private get log(): Logger {
    return this.options.logger;
  }

  /** Services of our classes (enabled or not) and any still carrying our finalizer; others are never queued. */
  private relevant(service: V1Service): boolean {
    return wantedClass(service, this.options.defaultClass) !== undefined || hasFinalizer(service);
  }

  /** Runs until `signal` aborts (leadership lost or shutdown); informers must be running. */
  async run(signal: AbortSignal): Promise<void> {
    const { services, nodes, providers } = this.options;
    services.on({
      onAdd: (s) => {
        const key = objectKey(s);
        this.expectations.delivered(key, s.metadata?.resourceVersion ?? '');
        if (this.relevant(s)) this.queue.add(key);
      },
      onUpdate: (old, s) => {
        const key = objectKey(s);
        const delivery = this.expectations.delivered(key, s.metadata?.resourceVersion ?? '');
        // Our own write coming back carries nothing to react to, unless a relist folded someone
        // else's change into it.
        const foreignChange = delivery === 'foreign' || !sameInputs(old, s) || old.metadata?.deletionTimestamp !== s.metadata?.deletionTimestamp;
        if (delivery === 'resume' || (foreignChange && (this.relevant(s) || this.relevant(old)))) this.queue.add(key);
      },
      onDelete: (s) => {
        this.expectations.forget(objectKey(s));
        // Provisioned by us but not cleaned up by us (finalizer forced off): remember it for cleanup.
        const provisioned = hasFinalizer(s) || s.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION] !== undefined;
        if (provisioned && !this.cleanedUids.delete(s.metadata?.uid ?? '')) this.tombstones.set(objectKey(s), s);
        if (this.relevant(s)) this.queue.add(objectKey(s));
      },
    });
    const onNodes = (): void => this.nodesChanged();
    nodes.on({ onAdd: onNodes, onUpdate: onNodes, onDelete: onNodes });
    for (const provider of providers.values()) {
      provider.onChange?.((keys) => {
        for (const key of keys) {
          this.providerRequested.add(key);
          this.queue.add(key);
        }
      });
    }

    const synced = await Promise.all([services.waitForSync(signal), nodes.waitForSync(signal)]);
    if (!synced.every(Boolean)) return;
    this.refreshEligibleNodes();
    // Providers rebuild their state from what they provisioned before any reconcile runs.
    for (const provider of providers.values()) {
      const mine = services.list().filter((s) => provisionedBy(s) === provider.providerClass);
      await provider.start?.(mine, signal);
    }
    for (const service of services.list()) if (this.relevant(service)) this.queue.add(objectKey(service));
    this.log.info({ services: services.list().length, workers: this.options.workers ?? DEFAULT_WORKERS }, 'LoadBalancer controller started');
    const stop = (): void => this.queue.shutDown();
    signal.addEventListener('abort', stop, { once: true });
    await this.queue.run(this.options.workers ?? DEFAULT_WORKERS, (key, s) => this.reconcileKey(key, s), signal);
    for (const provider of providers.values()) provider.stop?.();
  }

  /** Returns whether the eligible set changed. */
  private refreshEligibleNodes(): boolean {
    const nodes = eligibleNodes(this.options.nodes.list());
    const key = nodeSetKey(nodes);
    if (key === this.eligible.key) return false;
    this.eligible = { nodes, key };
    return true;
  }

  private nodesChanged(): void {
    if (!this.refreshEligibleNodes()) return;
    // Only Services converged against another node set need their backends updated.
    for (const [serviceKey, synced] of this.synced) if (synced.nodeKey !== this.eligible.key) this.queue.add(serviceKey);
  }

  async reconcileKey(key: string, signal: AbortSignal): Promise<QueueOutcome> {
    const started = this.options.clock.now();
    const log = this.log.child({ service: key });
    try {
      const outcome = await this.reconcile(key, log, signal);
      this.metrics.reconciles.inc({ result: outcome.kind });
      return outcome;
    } catch (error) {
      log.error({ err: error }, 'reconcile failed');
      this.metrics.reconciles.inc({ result: 'error' });
      return retry(error);
    } finally {
      this.metrics.duration.observe((this.options.clock.now() - started) / 1000);
    }
  }

  private provider(providerClass: ProviderClass): LoadBalancerProvider | undefined {
    return this.options.providers.get(providerClass);
  }

  private event(service: V1Service, type: EventType, reason: string, message: string): void {
    this.options.events.record(serviceRef(service), type, reason, message);
  }

  private async call<T>(provider: LoadBalancerProvider, method: string, fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      this.metrics.providerCalls.inc({ provider: provider.providerClass, method, result: 'ok' });
      return result;
    } catch (error) {
      this.metrics.providerCalls.inc({ provider: provider.providerClass, method, result: 'error' });
      throw asProviderError(error);
    }
  }

  private rememberCleaned(uid: string): void {
    this.cleanedUids.add(uid);
    // Bounded: a DELETED event normally follows within moments.
    if (this.cleanedUids.size > 10_000) {
      const oldest = this.cleanedUids.values().next().value;
      if (oldest !== undefined) this.cleanedUids.delete(oldest);
    }
  }

  private forget(key: string): void {
    const old = this.synced.get(key);
    if (old) this.metrics.managed.dec({ provider: old.provider });
    this.synced.delete(key);
  }

  private remember(key: string, entry: Synced): void {
    const old = this.synced.get(key);
    if (old) this.metrics.managed.dec({ provider: old.provider });
    this.metrics.managed.inc({ provider: entry.provider });
    this.synced.set(key, entry);
  }

  private async reconcile(key: string, log: Logger, signal: AbortSignal): Promise<QueueOutcome> {
    const service = this.options.services.get(key);
    if (!service) return this.reconcileGone(key, log);
    const tombstone = this.tombstones.get(key);
    if (tombstone && tombstone.metadata?.uid !== service.metadata?.uid) {
      // Deleted behind our back and recreated under the same name: the old balancer goes first.
      const cleaned = await this.reconcileGone(key, log);
      if (cleaned.kind !== 'done') return cleaned;
    }
    this.tombstones.delete(key);
    const staleMs = this.expectations.staleFor(key);
    // The cache has not caught up with our own write: its arrival resumes us (or the timeout does).
    if (staleMs > 0) return requeueAfter(staleMs);

    // Same name, new object: the old one's balancer goes before the new one gets its own.
    const known = this.synced.get(key);
    if (known && known.uid !== service.metadata?.uid) {
      const oldProvider = this.provider(known.provider);
      if (oldProvider) {
        const failure = await this.deleteOld(service, oldProvider, known.service);
        if (failure) return failure;
      }
      this.forget(key);
      log.info({ oldUid: known.uid }, 'Service was recreated; deleted the old balancer');
    }

    const planned = plan({
      service,
      defaultClass: this.options.defaultClass,
      available: new Set(this.options.providers.keys()),
      validate: (providerClass, s) => this.provider(providerClass)?.validate(s) ?? [],
    });
    switch (planned.kind) {
      case 'ignore':
        this.forget(key);
        return done();
      case 'unavailable': {
        const { wrote } = await this.writeStatus(service, { kind: 'unavailable', wanted: planned.wanted }, signal);
        if (wrote) this.event(service, 'Warning', 'SyncLoadBalancerFailed', `provider ${planned.wanted} is not enabled in this controller`);
        return terminal(new Error(`provider ${planned.wanted} not enabled`));
      }
      case 'reject': {
        const message = describeProblems(planned.problems);
        // Our own status write re-queues the Service: warn once per change, not per reconcile.
        const { wrote } = await this.writeStatus(service, { kind: 'rejected', problems: planned.problems }, signal);
        if (wrote) {
          this.event(service, 'Warning', 'SyncLoadBalancerFailed', `invalid spec: ${message}`);
          log.warn({ problems: planned.problems }, 'Service spec rejected');
        }
        return terminal(new Error(message));
      }
      case 'cleanup':
        return this.cleanup(service, planned.provider, planned.deleting, planned.why, log, signal);
      case 'ensure':
        return this.ensure(key, service, planned.provider, planned.previous, log, signal);
    }
  }

  /** The Service is gone from the cache. Only a forced finalizer removal leaves work here. */
  private async reconcileGone(key: string, log: Logger): Promise<QueueOutcome> {
    const last = this.tombstones.get(key) ?? this.synced.get(key)?.service;
    const recorded = last?.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION];
    const providerClass = this.synced.get(key)?.provider ?? (isProviderClass(recorded) ? recorded : undefined);
    const provider = providerClass ? this.provider(providerClass) : undefined;
    if (last && provider) {
      try {
        await this.call(provider, 'ensureDeleted', () => provider.ensureDeleted(last));
      } catch (error) {
        const providerError = asProviderError(error);
        log.warn({ err: providerError }, 'could not delete the balancer of a vanished Service; retrying');
        return this.providerErrorOutcome(providerError);
      }
      log.info('Service vanished without our cleanup; deleted its balancer');
    }
    this.tombstones.delete(key);
    this.forget(key);
    return done();
  }

  /** Deletes a balancer that belongs to an older incarnation or provider; failures are reported on the Service. */
  private async deleteOld(service: V1Service, provider: LoadBalancerProvider, old: V1Service): Promise<QueueOutcome | undefined> {
    try {
      await this.call(provider, 'ensureDeleted', () => provider.ensureDeleted(old));
      return undefined;
    } catch (error) {
      const providerError = asProviderError(error);
      this.event(service, 'Warning', 'SyncLoadBalancerFailed', `Error deleting the previous load balancer: ${providerError.message}`);
      return this.providerErrorOutcome(providerError);
    }
  }

  private async cleanup(service: V1Service, providerClass: ProviderClass, deleting: boolean, why: string, log: Logger, signal: AbortSignal): Promise<QueueOutcome> {
    const key = objectKey(service);
    const provider = this.provider(providerClass);
    if (!provider) {
      // Keep the finalizer: removing it would leak whatever that provider created.
      this.event(service, 'Warning', 'SyncLoadBalancerFailed', `cannot delete the load balancer: provider ${providerClass} is not enabled in this controller`);
      return terminal(new Error(`provider ${providerClass} not enabled`));
    }
    this.event(service, 'Normal', 'DeletingLoadBalancer', `Deleting load balancer (${why})`);
    try {
      await this.call(provider, 'ensureDeleted', () => provider.ensureDeleted(service));
    } catch (error) {
      const providerError = asProviderError(error);
      this.event(service, 'Warning', 'SyncLoadBalancerFailed', `Error deleting load balancer: ${providerError.message}`);
      return this.providerErrorOutcome(providerError);
    }
    let current = service;
    if (!deleting) current = (await this.writeStatus(service, { kind: 'cleaned' }, signal)).object;
    // Before the finalizer goes: the DELETED event can arrive before this call returns.
    if (deleting) this.rememberCleaned(service.metadata?.uid ?? '');
    const released = await patchWithRetry(this.options.client, servicePath(current), current, (s) =>
      hasFinalizer(s) || s.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION] !== undefined
        ? { metadata: { finalizers: (s.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER), annotations: { [PROVISIONED_BY_ANNOTATION]: null } } }
        : undefined,
      { signal },
    );
    if (released.wrote && !deleting) this.expect(released.object);
    this.event(service, 'Normal', 'DeletedLoadBalancer', 'Deleted load balancer');
    this.forget(key);
    log.info({ why }, 'load balancer deleted');
    return done();
  }

  private async ensure(key: string, service: V1Service, providerClass: ProviderClass, previous: ProviderClass | undefined, log: Logger, signal: AbortSignal): Promise<QueueOutcome> {
    const provider = this.provider(providerClass);
    if (!provider) return terminal(new Error(`provider ${providerClass} not enabled`));
    if (previous) {
      const old = this.provider(previous);
      if (!old) return terminal(new Error(`provider ${previous} that provisioned this Service is not enabled`));
      const failure = await this.deleteOld(service, old, service);
      if (failure) return failure;
      log.info({ previous, next: providerClass }, 'moved to another provider; deleted the old balancer');
    }

    // Finalizer (and who provisioned) before any provider call, so nothing is ever leaked.
    const { object: current, wrote: wroteFinalizer } = await patchWithRetry(this.options.client, servicePath(service), service, (s) =>
      hasFinalizer(s) && s.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION] === providerClass
        ? undefined
        : { metadata: { finalizers: [...(s.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER), FINALIZER], annotations: { [PROVISIONED_BY_ANNOTATION]: providerClass } } },
      { signal },
    );
    if (wroteFinalizer) this.expect(current);

    const { nodes, key: nodeKey } = this.eligible;
    const specKey = serviceSpecKey(current);
    const now = this.options.clock.now();
    const resyncMs = this.options.resyncPeriodMs ?? DEFAULT_RESYNC_PERIOD_MS;
    const known = this.synced.get(key);
    const hasIngress = (current.status?.loadBalancer?.ingress ?? []).length > 0;
    const resyncDue = known !== undefined && now - known.ensuredAt >= resyncMs * (1 - RESYNC_JITTER);
    // Someone else rewrote the status we wrote: converge it back.
    const statusDrifted = known !== undefined && !equivalent(current.status?.loadBalancer, known.service.status?.loadBalancer);
    const requested = this.providerRequested.delete(key);
    const needsEnsure = !known || known.specKey !== specKey || known.provider !== providerClass || resyncDue || !hasIngress || statusDrifted || requested;

    if (!needsEnsure) {
      if (known.nodeKey !== nodeKey) {
        try {
          await this.call(provider, 'updateNodes', () => provider.updateNodes(current, nodes));
        } catch (error) {
          return this.failed(current, provider, asProviderError(error), signal);
        }
        this.remember(key, { ...known, nodeKey, service: current });
        log.info({ nodes: nodes.length }, 'updated load balancer backends');
      }
      return requeueAfter(this.nextResyncMs(known.ensuredAt + resyncMs - now));
    }

    const cancelAnnouncement = hasIngress
      ? () => undefined
      : this.options.clock.setTimer(() => this.event(current, 'Normal', 'EnsuringLoadBalancer', 'Ensuring load balancer'), ENSURING_EVENT_DELAY_MS);
    let status;
    try {
      status = await this.call(provider, 'ensure', () => provider.ensure(current, nodes));
    } catch (error) {
      return await this.failed(current, provider, asProviderError(error), signal);
    } finally {
      cancelAnnouncement();
    }
    const before = describeIngress(current.status?.loadBalancer?.ingress ?? []);
    const { object: written } = await this.writeStatus(current, { kind: 'ensured', status }, signal);
    const after = describeIngress(status.ingress);
    if (!hasIngress || before !== after) this.event(current, 'Normal', 'EnsuredLoadBalancer', `Ensured load balancer: ${after}`);
    this.remember(key, { uid: current.metadata?.uid ?? '', provider: providerClass, specKey, nodeKey, ensuredAt: now, service: written });
    return requeueAfter(this.nextResyncMs(resyncMs));
  }

  private nextResyncMs(baseMs: number): number {
    const random = this.options.random ?? Math.random;
    const period = this.options.resyncPeriodMs ?? DEFAULT_RESYNC_PERIOD_MS;
    return Math.max(1_000, baseMs + (random() * 2 - 1) * RESYNC_JITTER * period);
  }

  private async failed(service: V1Service, provider: LoadBalancerProvider, error: ReturnType<typeof asProviderError>, signal: AbortSignal): Promise<QueueOutcome> {
    const reason = error.reason === 'AllocationFailed' ? 'AllocationFailed' : 'SyncLoadBalancerFailed';
    // If the provider cannot say, keep the ingress: clearing a working address on a hiccup is worse.
    const exists = await provider.get(service).then((r) => r.exists, () => true);
    const { wrote } = await this.writeStatus(service, { kind: 'failed', error, exists }, signal);
    // Retries repeat the Event (aggregated into a count); a terminal failure warns once per change.
    if (wrote || error.retryable) this.event(service, 'Warning', reason, error.field ? `${error.field}: ${error.message}` : error.message);
    // Keep who provisioned it (for cleanup) but force a full ensure next time.
    const key = objectKey(service);
    const known = this.synced.get(key);
    this.remember(key, {
      uid: service.metadata?.uid ?? '',
      provider: provider.providerClass,
      specKey: '',
      nodeKey: known?.nodeKey ?? '',
      ensuredAt: known?.ensuredAt ?? 0,
      service,
    });
    return this.providerErrorOutcome(error);
  }

  private providerErrorOutcome(error: ReturnType<typeof asProviderError>): QueueOutcome {
    if (!error.retryable) return terminal(error);
    if (error.retryAfterMs !== undefined) return requeueAfter(error.retryAfterMs);
    return retry(error);
  }

  /** Remembers our write so reconciles skip cached copies older than it. */
  private expect(written: V1Service): void {
    const resourceVersion = written.metadata?.resourceVersion;
    if (resourceVersion) this.expectations.wrote(objectKey(written), resourceVersion);
  }

  /** Writes the status `outcome` implies, only when it differs; returns the object as it is now. */
  private async writeStatus(service: V1Service, outcome: Outcome, signal: AbortSignal): Promise<{ object: V1Service; wrote: boolean }> {
    const now = new Date(this.options.clock.now());
    const result = await patchStatus(
      this.options.client,
      servicePath(service),
      service as V1Service & { status?: Record<string, unknown> },
      (s) => statusPatch(desiredStatus(s, outcome, now)),
      signal,
    );
    if (result.wrote) this.expect(result.object);
    return result;
  }
}
