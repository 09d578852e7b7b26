/**
 * The LoadBalancer controller: informer events (handlers.ts) feed a workqueue; each reconcile
 * reads the current Service by key (level-based), asks the planner what to do, and has the
 * executor carry it out: ownership marks first, provider call, then status — each written only
 * when it differs.
 */
import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from '../../kube/prom.js';
import type { Clock } from '../../kube/clock.js';
import type { EventSink } from '../../kube/events.js';
import { WriteExpectations } from '../../kube/expectations.js';
import { dropUnreadMetadata, objectKey, type Cache } from '../../kube/informer.js';
import { metric } from '../../kube/metrics.js';
import { lazyChild } from '../../kube/logger.js';
import { boundedMessage } from '../../kube/conditions.js';
import { equivalent } from '../../kube/patch.js';
import { isKubeError, type KubeClient } from '../../kube/rest.js';
import { done, requeueAfter, retry, terminal, WorkQueue, type Outcome as QueueOutcome } from '../../kube/workqueue.js';
import { asProviderError, type Backends, type LoadBalancerProvider, type ProviderClass, type ProviderContext, type ProviderError, type ReadonlyEndpointSlice, type ReadonlyNode } from '../../providers/provider.js';
import type { ControllerModule, ModuleDeps } from '../module.js';
import { LoadBalancerExecutor, type EnsureNotes } from './executor.js';
import { endpointSliceHandlers, nodeHandlers, serviceHandlers, type HandlerTarget } from './handlers.js';
import {
  decideConverge,
  describeIngress,
  describeProblems,
  eligibleNodes,
  endpointSlicesKey,
  hasFinalizer,
  nodeSetKey,
  plan,
  PROVISIONED_BY_ANNOTATION,
  serviceSpecKey,
  sliceServiceKey,
  wantedClass,
  type Converged,
} from './planner.js';

export const DEFAULT_WORKERS = 4;
export const DEFAULT_RESYNC_PERIOD_MS = 10 * 60_000;
/** Re-ensures are spread over ±10% of the period so they do not arrive in one burst. */
const RESYNC_JITTER = 0.1;
/** How long to trust that the watch will deliver our own write before reconciling anyway. */
export const STALE_CACHE_TIMEOUT_MS = 10_000;
/** EnsuringLoadBalancer announces only work users would otherwise wait on without a word. */
export const ENSURING_EVENT_DELAY_MS = 1_000;

export const SERVICES_PATH = '/api/v1/services';
export const NODES_PATH = '/api/v1/nodes';
export const ENDPOINT_SLICES_PATH = '/apis/discovery.k8s.io/v1/endpointslices';

export interface LoadBalancerSettings {
  providers: ReadonlyMap<ProviderClass, LoadBalancerProvider>;
  /** Every class this build knows, enabled or not. */
  knownClasses: ReadonlySet<ProviderClass>;
  defaultClass?: ProviderClass | undefined;
  workers?: number;
  resyncPeriodMs?: number;
  random?: () => number;
}

export interface LoadBalancerControllerOptions extends LoadBalancerSettings {
  client: KubeClient;
  services: Cache<V1Service>;
  nodes: Cache<V1Node>;
  /** Only when a provider needs EndpointSlices. */
  endpointSlices?: Cache<V1EndpointSlice> | undefined;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  registry: Registry;
}

interface Metrics {
  reconciles: Counter<'result'>;
  duration: Histogram;
  managed: Gauge<'provider'>;
}

function createMetrics(registry: Registry): Metrics {
  const registers = [registry];
  return {
    reconciles: metric(registry, 'portico_loadbalancer_reconciles_total', Counter<'result'>, () => new Counter({ name: 'portico_loadbalancer_reconciles_total', help: 'LoadBalancer reconciles by result (done, requeue, error, terminal)', labelNames: ['result'], registers })),
    duration: metric(registry, 'portico_loadbalancer_reconcile_duration_seconds', Histogram, () => new Histogram({ name: 'portico_loadbalancer_reconcile_duration_seconds', help: 'Time one LoadBalancer reconcile takes', buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120], registers })),
    managed: metric(registry, 'portico_loadbalancer_services', Gauge<'provider'>, () => new Gauge({ name: 'portico_loadbalancer_services', help: 'LoadBalancer Services converged by this controller, by provider', labelNames: ['provider'], registers })),
  };
}

/** The module the manager starts: the controller on the term's shared informers. */
export function createLoadBalancerModule(deps: ModuleDeps, settings: LoadBalancerSettings): ControllerModule & { controller: LoadBalancerController } {
  const needsSlices = [...settings.providers.values()].some((p) => p.needs?.endpointSlices === true);
  const controller = new LoadBalancerController({
    ...settings,
    client: deps.client,
    services: deps.informers.informer<V1Service>(SERVICES_PATH),
    nodes: deps.informers.informer<V1Node>(NODES_PATH),
    endpointSlices: needsSlices ? deps.informers.informer<V1EndpointSlice>(ENDPOINT_SLICES_PATH) : undefined,
    events: deps.events,
    clock: deps.clock,
    logger: deps.logger,
    registry: deps.registry,
  });
  return { name: 'loadbalancer', controller, run: (signal) => controller.run(signal), busy: () => controller.queue.busy() };
}

interface ConvergedEntry extends Converged {
  /** The last copy we converged, for cleanup after a forced deletion or a same-name recreate. */
  service: V1Service;
}

export class LoadBalancerController implements HandlerTarget {
  readonly queue: WorkQueue;
  readonly expectations: WriteExpectations;
  private readonly converged = new Map<string, ConvergedEntry>();
  /** Last copy of Services deleted while still carrying our marks (forced removal). */
  private readonly tombstones = new Map<string, V1Service>();
  /** UIDs whose balancer this process deleted: their final DELETED event needs no cleanup. */
  private readonly cleanedUids = new Set<string>();
  /** Services a provider asked to re-ensure (e.g. a pool edit took their address away). */
  private readonly providerRequested = new Set<string>();
  /** In-flight work per key, aborted when superseded (cleanup is never superseded: it is what follows). */
  private readonly inflight = new Map<string, { work: AbortController; supersedable: boolean }>();
  /** The eligible node set and its fingerprint, recomputed only on node events. */
  private eligible: { nodes: ReadonlyNode[]; key: string } = { nodes: [], key: '' };
  /** Slice keys per Service key, kept from slice events (only when a provider needs slices). */
  private readonly slicesByService = new Map<string, Set<string>>();
  private readonly metrics: Metrics;
  private readonly executor: LoadBalancerExecutor;

  constructor(private readonly options: LoadBalancerControllerOptions) {
    this.queue = new WorkQueue({ name: 'loadbalancer', clock: options.clock, registry: options.registry });
    this.expectations = new WriteExpectations(options.clock, STALE_CACHE_TIMEOUT_MS, (key) => this.queue.add(key));
    this.metrics = createMetrics(options.registry);
    this.executor = new LoadBalancerExecutor({ ...options, expectations: this.expectations });
    options.services.on(serviceHandlers(this));
    options.nodes.on(nodeHandlers(this));
    options.endpointSlices?.on(endpointSliceHandlers(this));
    for (const provider of options.providers.values()) {
      provider.onChange?.((keys) => {
        for (const key of keys) {
          this.providerRequested.add(key);
          this.queue.add(key);
        }
      });
    }
  }

  private get log(): Logger {
    return this.options.logger;
  }

  // ---- HandlerTarget -------------------------------------------------------------------------

  /** Services of our classes (enabled or not) and any still carrying our marks; others are never queued. */
  relevant(service: V1Service): boolean {
    return wantedClass(service, this.options.defaultClass) !== undefined || hasFinalizer(service) || service.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION] !== undefined;
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  supersede(key: string): void {
    const entry = this.inflight.get(key);
    if (entry?.supersedable) entry.work.abort(new Error('superseded: the Service was deleted or recreated'));
  }

  vanished(service: V1Service): void {
    if (!this.cleanedUids.delete(service.metadata?.uid ?? '')) this.tombstones.set(objectKey(service), service);
  }

  nodesChanged(): void {
    if (!this.refreshEligibleNodes()) return;
    // Only Services converged against another backend set need their backends updated.
    for (const [key, entry] of this.converged) if (entry.backendsKey !== this.backendsKey(key, entry.provider)) this.queue.add(key);
  }

  endpointSlicesChanged(serviceKey: string): void {
    this.indexSlices(serviceKey);
    const entry = this.converged.get(serviceKey);
    if (entry && entry.backendsKey !== this.backendsKey(serviceKey, entry.provider)) this.queue.add(serviceKey);
  }

  // ---- run -----------------------------------------------------------------------------------

  /** Runs until `signal` aborts (leadership lost or shutdown); the informers must be running. */
  async run(signal: AbortSignal): Promise<void> {
    if (!(await this.prepare(signal))) return;
    const { services, providers } = this.options;
    for (const service of services.list()) if (this.relevant(service)) this.queue.add(objectKey(service));
    this.log.info({ services: services.list().length, workers: this.options.workers ?? DEFAULT_WORKERS }, 'LoadBalancer controller started');
    const stop = (): void => this.queue.shutDown();
    signal.addEventListener('abort', stop, { once: true });
    await this.queue.run(this.options.workers ?? DEFAULT_WORKERS, (key, s) => this.reconcileKey(key, s), signal);
    for (const { work } of this.inflight.values()) work.abort();
    for (const provider of providers.values()) provider.stop?.();
  }

  /** Waits for the caches and lets providers rebuild their state; false if `signal` aborted first. */
  async prepare(signal: AbortSignal): Promise<boolean> {
    const { services, nodes, endpointSlices, providers } = this.options;
    const synced = await Promise.all([services.waitForSync(signal), nodes.waitForSync(signal), endpointSlices?.waitForSync(signal) ?? true]);
    if (!synced.every(Boolean)) return false;
    this.refreshEligibleNodes();
    if (endpointSlices) for (const slice of endpointSlices.list()) this.indexSlice(slice);
    // Providers rebuild their state before any reconcile, from every Service that may hold
    // something of theirs: its class, our record, or our finalizer without a record. Marks can
    // be edited (or lost while we were down): the class and the status are evidence too.
    for (const provider of providers.values()) {
      const mine = services.list().filter((s) => {
        const recorded = s.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION];
        return wantedClass(s, this.options.defaultClass) === provider.providerClass || recorded === provider.providerClass || (recorded === undefined && hasFinalizer(s));
      });
      await provider.start?.(signal, mine);
    }
    return !signal.aborted;
  }

  /** Returns whether the eligible set changed. */
  private refreshEligibleNodes(): boolean {
    const nodes = eligibleNodes(this.options.nodes.list());
    const key = nodeSetKey(nodes);
    if (key === this.eligible.key) return false;
    this.eligible = { nodes, key };
    return true;
  }

  private indexSlice(slice: V1EndpointSlice): void {
    const key = sliceServiceKey(slice);
    if (key !== undefined) this.indexSlices(key);
  }

  private indexSlices(serviceKey: string): void {
    const slices = this.options.endpointSlices;
    if (!slices) return;
    const [namespace] = serviceKey.split('/');
    const keys = new Set(slices.list().filter((s) => s.metadata?.namespace === namespace && sliceServiceKey(s) === serviceKey).map(objectKey));
    if (keys.size > 0) this.slicesByService.set(serviceKey, keys);
    else this.slicesByService.delete(serviceKey);
  }

  private backends(serviceKey: string, provider: LoadBalancerProvider): Backends {
    const slices: ReadonlyEndpointSlice[] = [];
    if (provider.needs?.endpointSlices === true) {
      for (const sliceKey of this.slicesByService.get(serviceKey) ?? []) {
        const slice = this.options.endpointSlices?.get(sliceKey);
        if (slice) slices.push(slice);
      }
    }
    return { nodes: this.eligible.nodes, endpointSlices: slices };
  }

  private backendsKey(serviceKey: string, providerClass: ProviderClass): string {
    const provider = this.options.providers.get(providerClass);
    if (!provider?.needs?.endpointSlices) return this.eligible.key;
    return `${this.eligible.key}/${endpointSlicesKey(this.backends(serviceKey, provider).endpointSlices)}`;
  }

  // ---- reconcile -----------------------------------------------------------------------------

  async reconcileKey(key: string, termSignal: AbortSignal): Promise<QueueOutcome> {
    const started = this.options.clock.now();
    const log = lazyChild(this.log, { service: key });
    const work = new AbortController();
    const entry = { work, supersedable: true };
    this.inflight.set(key, entry);
    // Linked by hand and unlinked in `finally`: one listener per in-flight key, none left behind.
    const endOfTerm = (): void => work.abort(termSignal.reason);
    if (termSignal.aborted) endOfTerm();
    else termSignal.addEventListener('abort', endOfTerm, { once: true });
    const signal = work.signal;
    try {
      const outcome = await this.reconcile(key, log, signal);
      this.metrics.reconciles.inc({ result: outcome.kind });
      return outcome;
    } catch (error) {
      this.metrics.reconciles.inc({ result: 'error' });
      if (termSignal.aborted) return done();
      // Superseded: the event that aborted it has queued the key again.
      if (work.signal.aborted) return retry(error);
      // Expected while objects go away (namespace being deleted, object gone, a race lost):
      // not an error, no stack; the retry sorts it out.
      if (isKubeError(error, 404) || isKubeError(error, 409) || (isKubeError(error, 403) && /being terminated/.test(error.message))) {
        log.debug({ error: error.message }, 'reconcile will be retried');
      } else {
        log.error({ err: error }, 'reconcile failed');
      }
      return retry(error);
    } finally {
      termSignal.removeEventListener('abort', endOfTerm);
      if (this.inflight.get(key) === entry) this.inflight.delete(key);
      this.metrics.duration.observe((this.options.clock.now() - started) / 1000);
    }
  }

  private provider(providerClass: ProviderClass): LoadBalancerProvider | undefined {
    return this.options.providers.get(providerClass);
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
    const old = this.converged.get(key);
    if (old) this.metrics.managed.dec({ provider: old.provider });
    this.converged.delete(key);
  }

  private remember(key: string, entry: ConvergedEntry): void {
    const old = this.converged.get(key);
    if (old) this.metrics.managed.dec({ provider: old.provider });
    this.metrics.managed.inc({ provider: entry.provider });
    this.converged.set(key, entry);
  }

  private async reconcile(key: string, log: Logger, signal: AbortSignal): Promise<QueueOutcome> {
    const service = this.options.services.get(key);
    if (!service) return this.reconcileGone(key, log, signal);
    const tombstone = this.tombstones.get(key);
    if (tombstone && tombstone.metadata?.uid !== service.metadata?.uid) {
      // Deleted behind our back and recreated under the same name: the old balancer goes first.
      const cleaned = await this.reconcileGone(key, log, signal);
      if (cleaned.kind !== 'done') return cleaned;
    }
    this.tombstones.delete(key);
    const staleMs = this.expectations.staleFor(key);
    // The cache has not caught up with our own write: its arrival resumes us (or the timeout does).
    if (staleMs > 0) return requeueAfter(staleMs);

    // Same name, new object: the old one's balancer goes before the new one gets its own.
    const known = this.converged.get(key);
    if (known && known.uid !== service.metadata?.uid) {
      const failure = await this.deleteFrom([known.provider], known.service, service, log, signal);
      if (failure) return failure;
      this.forget(key);
      log.info({ oldUid: known.uid }, 'Service was recreated; deleted the old balancer');
    }

    const planned = plan({
      service,
      defaultClass: this.options.defaultClass,
      enabled: new Set(this.options.providers.keys()),
      known: this.options.knownClasses,
      validate: (providerClass, s) => this.provider(providerClass)?.validate(s) ?? [],
    });
    switch (planned.kind) {
      case 'ignore':
        this.forget(key);
        return done();
      case 'unavailable': {
        const available = [...this.options.providers.keys()];
        const { wrote } = await this.executor.writeStatus(service, { kind: 'unavailable', wanted: planned.wanted, known: planned.known, available }, signal);
        if (wrote) this.executor.event(service, 'Warning', 'SyncLoadBalancerFailed', planned.known ? `provider ${planned.wanted} is not enabled in this controller` : `${planned.wanted} is not a class this Portico build serves`);
        return terminal(new Error(`provider ${planned.wanted} not enabled`));
      }
      case 'reject': {
        const message = describeProblems(planned.problems);
        const provider = this.provider(planned.provider);
        const held = provider ? await this.executor.held(this.executor.context(service, provider, signal, log), provider, service) : undefined;
        // Our own status write re-queues the Service: warn once per change, not per reconcile.
        const { wrote } = await this.executor.writeStatus(service, { kind: 'rejected', problems: planned.problems, held }, signal);
        if (wrote) {
          this.executor.event(service, 'Warning', 'SyncLoadBalancerFailed', `invalid spec: ${message}`);
          log.warn({ problems: planned.problems }, 'Service spec rejected');
        }
        return terminal(new Error(message));
      }
      case 'cleanup':
        return this.cleanup(service, planned, log, signal);
      case 'ensure':
        return this.ensure(key, service, planned.provider, planned.previous, log, signal);
    }
  }

  /** The Service is gone from the cache. Only a forced finalizer removal leaves work here. */
  private async reconcileGone(key: string, log: Logger, signal: AbortSignal): Promise<QueueOutcome> {
    const last = this.tombstones.get(key) ?? this.converged.get(key)?.service;
    if (last) {
      const recorded = this.converged.get(key)?.provider ?? last.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION];
      const targets = this.cleanupTargets(last, recorded !== undefined && this.provider(recorded) ? recorded : undefined, recorded === undefined || !this.provider(recorded));
      for (const provider of targets) {
        try {
          await this.executor.call(provider, 'ensureDeleted', () => provider.ensureDeleted(this.executor.context(last, provider, signal, log), last));
        } catch (error) {
          const providerError = asProviderError(error);
          log.warn({ err: providerError }, 'could not delete the balancer of a vanished Service; retrying');
          return this.providerErrorOutcome(providerError);
        }
      }
      if (targets.length > 0) log.info('Service vanished without our cleanup; deleted its balancer');
    }
    this.tombstones.delete(key);
    this.forget(key);
    return done();
  }

  /**
   * Who to ask to delete: the recorded provider (if running here), every provider that says it
   * holds something for the Service, and — when the record is missing or names a provider not
   * running here (a tenant can write the annotation) — every enabled provider.
   */
  private cleanupTargets(service: V1Service, recorded: ProviderClass | undefined, ownerUnknown: boolean): LoadBalancerProvider[] {
    return [...this.options.providers.values()].filter((p) => ownerUnknown || p.providerClass === recorded || p.holds?.(service) === true);
  }

  /** Deletes what `providers` have for `old` (an older incarnation or provider); failures are reported on `service`. */
  private async deleteFrom(providers: readonly ProviderClass[], old: V1Service, service: V1Service, log: Logger, signal: AbortSignal): Promise<QueueOutcome | undefined> {
    for (const providerClass of providers) {
      const provider = this.provider(providerClass);
      if (!provider) continue;
      try {
        await this.executor.call(provider, 'ensureDeleted', () => provider.ensureDeleted(this.executor.context(service, provider, signal, log), old));
      } catch (error) {
        const providerError = asProviderError(error);
        this.executor.event(service, 'Warning', 'SyncLoadBalancerFailed', `Error deleting the previous load balancer: ${providerError.message}`);
        return this.providerErrorOutcome(providerError);
      }
    }
    return undefined;
  }

  private async cleanup(service: V1Service, planned: Extract<ReturnType<typeof plan>, { kind: 'cleanup' }>, log: Logger, signal: AbortSignal): Promise<QueueOutcome> {
    const key = objectKey(service);
    const inflight = this.inflight.get(key);
    if (inflight) inflight.supersedable = false;
    const targets = this.cleanupTargets(service, planned.recorded, planned.unknownOwner !== undefined);
    if (targets.length > 0) this.executor.event(service, 'Normal', 'DeletingLoadBalancer', `Deleting load balancer (${planned.why})`);
    for (const provider of targets) {
      try {
        await this.executor.call(provider, 'ensureDeleted', () => provider.ensureDeleted(this.executor.context(service, provider, signal, log), service));
      } catch (error) {
        const providerError = asProviderError(error);
        this.executor.event(service, 'Warning', 'SyncLoadBalancerFailed', `Error deleting load balancer: ${providerError.message}`);
        return this.providerErrorOutcome(providerError);
      }
    }
    let current = service;
    if (!planned.deleting) current = (await this.executor.writeStatus(service, { kind: 'cleaned' }, signal)).object;
    // Before the finalizer goes: the DELETED event can arrive before this call returns.
    if (planned.deleting) this.rememberCleaned(service.metadata?.uid ?? '');
    await this.executor.release(current, planned.deleting, signal);
    if (planned.unknownOwner !== undefined) {
      const asked = targets.map((p) => p.providerClass).join(', ') || 'none';
      this.executor.event(service, 'Warning', 'ReleasedUnknownOwner', `Released Portico's finalizer: ${planned.unknownOwner}; asked every enabled provider (${asked}) to delete what it holds for this Service`);
      log.warn({ why: planned.why, unknownOwner: planned.unknownOwner }, 'released a Service whose recorded provider is not running here');
    } else {
      this.executor.event(service, 'Normal', 'DeletedLoadBalancer', 'Deleted load balancer');
    }
    this.forget(key);
    log.info({ why: planned.why }, 'load balancer deleted');
    return done();
  }

  private async ensure(key: string, service: V1Service, providerClass: ProviderClass, previous: ProviderClass | undefined, log: Logger, signal: AbortSignal): Promise<QueueOutcome> {
    const provider = this.provider(providerClass);
    if (!provider) return terminal(new Error(`provider ${providerClass} not enabled`));
    if (previous) {
      const failure = await this.deleteFrom([previous], service, service, log, signal);
      if (failure) return failure;
      log.info({ previous, next: providerClass }, 'moved to another provider; deleted the old balancer');
    }

    const current = await this.executor.claim(service, providerClass, signal);
    const { ctx, notes } = this.executor.ensureContext(current, provider, signal, log);
    try {
      return await this.converge(key, current, provider, ctx, notes, log, signal);
    } finally {
      // Whatever EnsuredLoadBalancer did not carry (failure, failed status write) goes out on its own.
      notes.flush();
    }
  }

  private async converge(key: string, current: V1Service, provider: LoadBalancerProvider, ctx: ProviderContext, notes: EnsureNotes, log: Logger, signal: AbortSignal): Promise<QueueOutcome> {
    const providerClass = provider.providerClass;
    const backends = this.backends(key, provider);
    const backendsKey = this.backendsKey(key, providerClass);
    const specKey = serviceSpecKey(current);
    const now = this.options.clock.now();
    const resyncPeriodMs = provider.resync === false ? Infinity : (this.options.resyncPeriodMs ?? DEFAULT_RESYNC_PERIOD_MS);
    const known = this.converged.get(key);
    const ingress = current.status?.loadBalancer?.ingress ?? [];
    const decision = decideConverge({
      known,
      provider: providerClass,
      specKey,
      backendsKey,
      ingress,
      now,
      resyncPeriodMs,
      resyncJitter: RESYNC_JITTER,
      requested: this.providerRequested.delete(key),
      equivalent,
    });

    if (decision.kind === 'skip') return this.untilResync(decision.inMs);
    if (decision.kind === 'update-backends' && known) {
      try {
        await this.executor.call(provider, 'updateBackends', () => provider.updateBackends(ctx, current, backends));
      } catch (error) {
        return this.failed(current, provider, asProviderError(error), log, signal);
      }
      this.remember(key, { ...known, backendsKey, service: current });
      log.info({ nodes: backends.nodes.length, endpointSlices: backends.endpointSlices.length }, 'updated load balancer backends');
      return this.untilResync(known.ensuredAt + resyncPeriodMs - now);
    }

    const cancelAnnouncement =
      ingress.length > 0 ? () => undefined : this.options.clock.setTimer(() => this.executor.event(current, 'Normal', 'EnsuringLoadBalancer', 'Ensuring load balancer'), ENSURING_EVENT_DELAY_MS);
    let status;
    try {
      status = await this.executor.call(provider, 'ensure', () => provider.ensure(ctx, current, backends));
    } catch (error) {
      if (signal.aborted) throw error;
      // What the provider did before failing comes before the failure.
      notes.flush();
      return await this.failed(current, provider, asProviderError(error), log, signal);
    } finally {
      cancelAnnouncement();
    }
    signal.throwIfAborted();
    const before = describeIngress(ingress);
    const { object: written } = await this.executor.writeStatus(current, { kind: 'ensured', status }, signal);
    const after = describeIngress(status.ingress);
    // One Event per ensure that changed something: the address(es) and what the provider did.
    const did = notes.take();
    if (ingress.length === 0 || before !== after || did !== undefined) {
      this.executor.event(current, 'Normal', 'EnsuredLoadBalancer', boundedMessage(`Ensured load balancer: ${after}${did === undefined ? '' : ` (${did})`}`));
    }
    this.remember(key, { uid: current.metadata?.uid ?? '', provider: providerClass, specKey, backendsKey, ensuredAt: now, ingress: written.status?.loadBalancer?.ingress ?? [], service: dropUnreadMetadata(written) });
    return this.untilResync(resyncPeriodMs);
  }

  /** Look again at the next resync, jittered; with no resync (Infinity), only when an event says so. */
  private untilResync(baseMs: number): QueueOutcome {
    if (!Number.isFinite(baseMs)) return done();
    const random = this.options.random ?? Math.random;
    const period = this.options.resyncPeriodMs ?? DEFAULT_RESYNC_PERIOD_MS;
    return requeueAfter(Math.max(1_000, baseMs + (random() * 2 - 1) * RESYNC_JITTER * period));
  }

  private async failed(service: V1Service, provider: LoadBalancerProvider, error: ProviderError, log: Logger, signal: AbortSignal): Promise<QueueOutcome> {
    const reason = error.reason === 'AllocationFailed' ? 'AllocationFailed' : 'SyncLoadBalancerFailed';
    // If the provider cannot say, keep the ingress: clearing a working address on a hiccup is worse.
    const held = await this.executor.held(this.executor.context(service, provider, signal, log), provider, service);
    const { wrote } = await this.executor.writeStatus(service, { kind: 'failed', error, held }, signal);
    // Retries repeat the Event (aggregated into a count); a terminal failure warns once per change.
    if (wrote || error.retryable) this.executor.event(service, 'Warning', reason, error.field ? `${error.field}: ${error.message}` : error.message);
    // Keep who provisioned it (for cleanup) but force a full ensure next time.
    const key = objectKey(service);
    const known = this.converged.get(key);
    this.remember(key, {
      uid: service.metadata?.uid ?? '',
      provider: provider.providerClass,
      specKey: '',
      backendsKey: known?.backendsKey ?? '',
      ensuredAt: known?.ensuredAt ?? 0,
      ingress: service.status?.loadBalancer?.ingress ?? [],
      service,
    });
    return this.providerErrorOutcome(error);
  }

  private providerErrorOutcome(error: ProviderError): QueueOutcome {
    if (!error.retryable) return terminal(error);
    if (error.retryAfterMs !== undefined) return requeueAfter(error.retryAfterMs);
    return retry(error);
  }
}
