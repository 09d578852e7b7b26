/**
 * The ExternalService controller: for each ExternalService (or selectorless Service annotated
 * `portico.dev/external-endpoints`) it owns a selectorless Service of the same name, its
 * EndpointSlices and, by default, the v1 Endpoints object — resolving hostnames, checking
 * every address against the policy and publishing health as `ready`. Level-based: a reconcile
 * reads everything by key; writes happen only where content differs.
 */
import type { V1EndpointSlice, V1Endpoints, V1OwnerReference, V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from '../../kube/prom.js';
import { EXTERNAL_SERVICE_KIND, type ExternalAddressStatus, type ExternalService } from '../../api/external-service.js';
import { API_GROUP_VERSION, type Condition, type DeepReadonly, type SpecProblem } from '../../api/types.js';
import { formatIP, parseCIDR, type CIDR } from '../../ipam/ip.js';
import type { Clock } from '../../kube/clock.js';
import { boundedList, boundedMessage, findCondition, removeCondition, setCondition, type ConditionInput } from '../../kube/conditions.js';
import type { EventSink, EventType } from '../../kube/events.js';
import { objectKey, type Cache, type KubeObject } from '../../kube/informer.js';
import { metric } from '../../kube/metrics.js';
import { equivalent, patchStatus } from '../../kube/patch.js';
import { objectRef, splitKey } from '../../kube/refs.js';
import { isKubeError, type KubeClient } from '../../kube/rest.js';
import { done, requeueAfter, retry, terminal, WorkQueue, type Outcome } from '../../kube/workqueue.js';
import type { ControllerModule, ModuleDeps } from '../module.js';
import { HealthMonitor, type Prober } from './health.js';
import { checkAddress, type AddressPolicy, type RefusalReason } from './policy.js';
import { endpointsEquivalent, MANAGED_BY, OVER_CAPACITY_ANNOTATION, MANAGED_BY_LABEL, MIRROR_MANAGED_BY, planEndpoints, planSlices, SERVICE_NAME_LABEL, SKIP_MIRROR_LABEL, type PublishedEndpoint } from './planner.js';
import { netProber } from './prober.js';
import { dnsClient, HostResolver, type DnsClient } from './resolver.js';
import { desiredFromAnnotatedService, desiredFromExternalService, EXTERNAL_ENDPOINTS_ANNOTATION, type DesiredState } from './spec.js';

export const EXTERNAL_SERVICES_PATH = '/apis/portico.dev/v1alpha1/externalservices';
export const SERVICES_PATH = '/api/v1/services';
export const ENDPOINT_SLICES_PATH = '/apis/discovery.k8s.io/v1/endpointslices';
export const ENDPOINTS_PATH = '/api/v1/endpoints';
export const SERVICE_CIDRS_PATH = '/apis/networking.k8s.io/v1/servicecidrs';
/** Reconciles are a few small writes each, so more run at once than LoadBalancer ones (bench/README.md). */
export const DEFAULT_WORKERS = 16;
/**
 * Probes in flight at once. A probe of a dead host holds its slot for the whole timeout, so
 * this must cover targets x timeout / interval, or healthy probes queue behind dead ones.
 */
export const DEFAULT_HEALTH_CONCURRENCY = 512;
const STATUS_WORKERS = 2;
/** How long to wait for the mirroring controller's slice to go before publishing ours. */
const MIRROR_WAIT_MS = 250;
/** A conflict or AlreadyExists means our cache is behind: look again shortly. */
const CACHE_BEHIND_MS = 500;
/** The condition an annotated Service carries: whether its `portico.dev/external-endpoints` are published. */
export const EXTERNAL_ENDPOINTS_CONDITION = 'ExternalEndpointsPublished';
/** Status-queue keys of annotated Services (a key has no ':'): their condition, not an ExternalService's status. */
const SERVICE_STATUS_PREFIX = 'service:';

/** A status write waiting in the status queue (the latest computed per queue key wins). */
type PendingStatus =
  | { kind: 'externalService'; key: string; uid: string | undefined; generation: number | undefined; conditions: ConditionInput[]; fields: Record<string, unknown> }
  /** An annotated Service's condition; null removes ours. */
  | { kind: 'service'; key: string; uid: string | undefined; generation: number | undefined; condition: ConditionInput | null };

export interface ExternalServiceSettings {
  /** Flags: the cluster's Service/Pod CIDRs, deny and allow lists (ServiceCIDR objects are added live). */
  policy: AddressPolicy;
  /** DNS servers (`host:port`); empty uses the system's. */
  dnsServers: readonly string[];
  workers?: number;
  healthConcurrency?: number;
  /** Injected for tests; default node:dns on `dnsServers`. */
  dns?: DnsClient;
  /** Injected for tests; default TCP/HTTP(S) probes. */
  prober?: Prober;
  maxEndpointsPerSlice?: number;
}

interface ServiceCIDRObject extends KubeObject {
  spec?: { cidrs?: string[] };
}

interface Metrics {
  reconciles: Counter<'result'>;
  endpoints: Gauge<'state'>;
  probes: Counter<'result'>;
  transitions: Counter<'to'>;
  publish: Histogram;
  dns: Counter<'result'>;
  refused: Counter<'reason'>;
  writes: Counter<'resource'>;
}

function createMetrics(registry: Registry): Metrics {
  const registers = [registry];
  return {
    reconciles: metric(registry, 'portico_externalservice_reconciles_total', Counter<'result'>, () => new Counter({ name: 'portico_externalservice_reconciles_total', help: 'ExternalService reconciles by result (done, requeueAfter, error, terminal)', labelNames: ['result'], registers })),
    endpoints: metric(registry, 'portico_externalservice_endpoints', Gauge<'state'>, () => new Gauge({ name: 'portico_externalservice_endpoints', help: 'Published external endpoints by state (ready, not_ready)', labelNames: ['state'], registers })),
    probes: metric(registry, 'portico_externalservice_health_checks_total', Counter<'result'>, () => new Counter({ name: 'portico_externalservice_health_checks_total', help: 'Health probes by result (success, failure)', labelNames: ['result'], registers })),
    transitions: metric(registry, 'portico_externalservice_health_transitions_total', Counter<'to'>, () => new Counter({ name: 'portico_externalservice_health_transitions_total', help: 'Endpoint readiness changes from health checks, by new state (ready, not_ready)', labelNames: ['to'], registers })),
    publish: metric(registry, 'portico_externalservice_health_publish_seconds', Histogram, () => new Histogram({ name: 'portico_externalservice_health_publish_seconds', help: 'From a health-check readiness change to the EndpointSlice write that publishes it', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers })),
    dns: metric(registry, 'portico_externalservice_dns_lookups_total', Counter<'result'>, () => new Counter({ name: 'portico_externalservice_dns_lookups_total', help: 'Hostname lookups by result (ok, error)', labelNames: ['result'], registers })),
    refused: metric(registry, 'portico_externalservice_refused_addresses_total', Counter<'reason'>, () => new Counter({ name: 'portico_externalservice_refused_addresses_total', help: 'Addresses refused by the address policy, by reason', labelNames: ['reason'], registers })),
    writes: metric(registry, 'portico_externalservice_writes_total', Counter<'resource'>, () => new Counter({ name: 'portico_externalservice_writes_total', help: 'Writes to Services, EndpointSlices and Endpoints (a steady state makes none)', labelNames: ['resource'], registers })),
  };
}

export interface ExternalServiceControllerOptions extends ExternalServiceSettings {
  client: KubeClient;
  externalServices: Cache<ExternalService>;
  services: Cache<V1Service>;
  slices: Cache<V1EndpointSlice>;
  endpoints: Cache<V1Endpoints>;
  serviceCIDRs: Cache<ServiceCIDRObject>;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  registry: Registry;
}

/** The module the manager starts. */
export function createExternalServiceModule(deps: ModuleDeps, settings: ExternalServiceSettings): ControllerModule & { controller: ExternalServiceController } {
  const controller = new ExternalServiceController({
    ...settings,
    client: deps.client,
    externalServices: deps.informers.informer<ExternalService>(EXTERNAL_SERVICES_PATH),
    services: deps.informers.informer<V1Service>(SERVICES_PATH),
    slices: deps.informers.informer<V1EndpointSlice>(ENDPOINT_SLICES_PATH),
    endpoints: deps.informers.informer<V1Endpoints>(ENDPOINTS_PATH),
    serviceCIDRs: deps.informers.informer<ServiceCIDRObject>(SERVICE_CIDRS_PATH),
    events: deps.events,
    clock: deps.clock,
    logger: deps.logger,
    registry: deps.registry,
  });
  return { name: 'externalservice', controller, run: (signal) => controller.run(signal) };
}

interface Refusal {
  field: string;
  address: string;
  reason: RefusalReason;
  detail: string;
}

type Source = { kind: 'externalService'; es: DeepReadonly<ExternalService> } | { kind: 'annotation'; service: DeepReadonly<V1Service> };

function ownerOf(source: Source): V1OwnerReference {
  const meta = source.kind === 'externalService' ? source.es.metadata : source.service.metadata;
  return source.kind === 'externalService'
    ? { apiVersion: API_GROUP_VERSION, kind: EXTERNAL_SERVICE_KIND, name: meta?.name ?? '', uid: meta?.uid ?? '', controller: true }
    : { apiVersion: 'v1', kind: 'Service', name: meta?.name ?? '', uid: meta?.uid ?? '', controller: true };
}

function controllerRef(object: { metadata?: { ownerReferences?: readonly V1OwnerReference[] } } | undefined): V1OwnerReference | undefined {
  return object?.metadata?.ownerReferences?.find((r) => r.controller === true);
}

function isAnnotated(service: DeepReadonly<V1Service> | undefined): boolean {
  return service?.metadata?.annotations?.[EXTERNAL_ENDPOINTS_ANNOTATION] !== undefined;
}

/** Carries our condition: a Service whose annotation went (even while we were down) still needs it removed. */
function carriesCondition(service: DeepReadonly<V1Service> | undefined): boolean {
  return findCondition(service?.status?.conditions as readonly Condition[] | undefined, EXTERNAL_ENDPOINTS_CONDITION) !== undefined;
}

function describeRefusals(refusals: readonly Refusal[]): string {
  return boundedMessage(boundedList(refusals.map((r) => `${r.field}: ${r.address} refused (${r.reason}: ${r.detail})`)));
}

export class ExternalServiceController {
  readonly queue: WorkQueue;
  readonly statusQueue: WorkQueue;
  /** By status-queue key. */
  private readonly pendingStatus = new Map<string, PendingStatus>();
  readonly health: HealthMonitor;
  private readonly resolver: HostResolver;
  private readonly metrics: Metrics;
  /** Per key: when a readiness change was first seen and not yet published. */
  private readonly changedAt = new Map<string, number>();
  /** Per key: published counts, for the gauge. */
  private readonly counts = new Map<string, { ready: number; notReady: number }>();

  constructor(private readonly options: ExternalServiceControllerOptions) {
    this.queue = new WorkQueue({ name: 'externalservice', clock: options.clock, registry: options.registry, backoffBaseMs: 1_000, backoffMaxMs: 60_000 });
    this.statusQueue = new WorkQueue({ name: 'externalservice-status', clock: options.clock, registry: options.registry, backoffBaseMs: 1_000, backoffMaxMs: 60_000 });
    this.metrics = createMetrics(options.registry);
    this.resolver = new HostResolver(options.dns ?? dnsClient(options.dnsServers), options.clock, (result) => this.metrics.dns.inc({ result }));
    this.health = new HealthMonitor({
      prober: options.prober ?? netProber,
      clock: options.clock,
      concurrency: options.healthConcurrency ?? DEFAULT_HEALTH_CONCURRENCY,
      onChange: (key, ready) => {
        this.metrics.transitions.inc({ to: ready ? 'ready' : 'not_ready' });
        if (!this.changedAt.has(key)) this.changedAt.set(key, options.clock.now());
        this.queue.add(key);
      },
      onProbe: (ok) => this.metrics.probes.inc({ result: ok ? 'success' : 'failure' }),
      logger: options.logger,
    });
    const byKey = <T extends KubeObject>(keyOf: (o: T) => string | undefined) => ({
      onAdd: (o: T) => this.maybeEnqueue(keyOf(o)),
      onUpdate: (_: T, o: T) => this.maybeEnqueue(keyOf(o)),
      onDelete: (o: T) => this.maybeEnqueue(keyOf(o)),
    });
    options.externalServices.on(byKey<ExternalService>(objectKey));
    options.services.on(byKey<V1Service>(objectKey));
    options.endpoints.on(byKey<V1Endpoints>(objectKey));
    options.slices.on(
      byKey<V1EndpointSlice>((s) => {
        const name = s.metadata?.labels?.[SERVICE_NAME_LABEL];
        return name && s.metadata?.namespace ? `${s.metadata.namespace}/${name}` : undefined;
      }),
    );
    const all = (): void => {
      for (const key of this.counts.keys()) this.queue.add(key);
    };
    options.serviceCIDRs.on({ onAdd: all, onUpdate: all, onDelete: all });
  }

  private maybeEnqueue(key: string | undefined): void {
    if (key === undefined) return;
    const service = this.options.services.get(key);
    if (this.counts.has(key) || this.options.externalServices.get(key) || isAnnotated(service) || carriesCondition(service)) this.queue.add(key);
  }

  async run(signal: AbortSignal): Promise<void> {
    const o = this.options;
    const synced = await Promise.all([o.externalServices, o.services, o.slices, o.endpoints, o.serviceCIDRs].map((c) => c.waitForSync(signal)));
    if (!synced.every(Boolean)) return;
    for (const es of o.externalServices.list()) this.queue.add(objectKey(es));
    for (const s of o.services.list()) if (isAnnotated(s) || carriesCondition(s)) this.queue.add(objectKey(s));
    // Leftovers of annotations removed while we were not running.
    for (const slice of o.slices.list()) {
      const name = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
      if (slice.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY && name) this.queue.add(`${slice.metadata.namespace ?? ''}/${name}`);
    }
    o.logger.info({ externalServices: o.externalServices.list().length }, 'ExternalService controller started');
    signal.addEventListener(
      'abort',
      () => {
        this.queue.shutDown();
        this.statusQueue.shutDown();
      },
      { once: true },
    );
    await Promise.all([
      this.queue.run(o.workers ?? DEFAULT_WORKERS, (key, s) => this.reconcileKey(key, s), signal),
      this.statusQueue.run(STATUS_WORKERS, (key, s) => this.writeStatus(key, s), signal),
    ]);
    this.health.stop();
  }

  async reconcileKey(key: string, signal: AbortSignal): Promise<Outcome> {
    try {
      const outcome = await this.reconcile(key, signal);
      this.metrics.reconciles.inc({ result: outcome.kind });
      return outcome;
    } catch (error) {
      this.metrics.reconciles.inc({ result: 'error' });
      if (signal.aborted) return done();
      if (isKubeError(error, 409)) return requeueAfter(CACHE_BEHIND_MS);
      // Expected, not an error: the namespace is going, and everything in it with it.
      if (isKubeError(error, 403) && /being terminated/.test(error.message)) {
        this.options.logger.debug({ key }, 'namespace is being deleted; nothing to publish');
        return done();
      }
      this.options.logger.warn({ key, err: error }, 'ExternalService reconcile failed');
      return retry(error);
    }
  }

  /** The ServiceCIDRs the apiserver serves, plus the flag's. */
  policy(): AddressPolicy {
    const live: CIDR[] = [];
    for (const object of this.options.serviceCIDRs.list()) {
      for (const text of object.spec?.cidrs ?? []) {
        try {
          live.push(parseCIDR(text));
        } catch {
          // The apiserver validated it; a spelling we do not accept is not a reason to fail.
        }
      }
    }
    return { ...this.options.policy, serviceCIDRs: [...this.options.policy.serviceCIDRs, ...live] };
  }

  private setCount(key: string, ready: number, notReady: number): void {
    const old = this.counts.get(key);
    if (old) {
      this.metrics.endpoints.dec({ state: 'ready' }, old.ready);
      this.metrics.endpoints.dec({ state: 'not_ready' }, old.notReady);
    }
    this.metrics.endpoints.inc({ state: 'ready' }, ready);
    this.metrics.endpoints.inc({ state: 'not_ready' }, notReady);
    this.counts.set(key, { ready, notReady });
  }

  private forget(key: string): void {
    this.changedAt.delete(key);
    this.setCount(key, 0, 0);
    this.counts.delete(key);
    this.health.forget(key);
  }

  private ourSlices(namespace: string, name: string, managedBy = MANAGED_BY): DeepReadonly<V1EndpointSlice>[] {
    return this.options.slices.list().filter((s) => s.metadata?.namespace === namespace && s.metadata.labels?.[SERVICE_NAME_LABEL] === name && s.metadata.labels[MANAGED_BY_LABEL] === managedBy);
  }

  private event(source: Source, type: EventType, reason: string, message: string): void {
    const ref = source.kind === 'externalService' ? objectRef(API_GROUP_VERSION, EXTERNAL_SERVICE_KIND, source.es) : objectRef('v1', 'Service', source.service);
    this.options.events.record(ref, type, reason, boundedMessage(message));
  }

  private async reconcile(key: string, signal: AbortSignal): Promise<Outcome> {
    const { namespace = 'default', name } = splitKey(key);
    const es = this.options.externalServices.get(key);
    const service = this.options.services.get(key);
    let source: Source;
    if (es && !es.metadata.deletionTimestamp) source = { kind: 'externalService', es };
    else if (!es && service && isAnnotated(service) && !service.metadata?.deletionTimestamp) source = { kind: 'annotation', service };
    else return this.release(key, namespace, name, service, signal);

    // An ExternalService took over an annotated Service: the annotation's condition no longer applies.
    if (source.kind === 'externalService' && service) this.queueServiceCondition(service, null);
    const desired = source.kind === 'externalService' ? desiredFromExternalService(source.es) : desiredFromAnnotatedService(source.service);
    if ('problems' in desired) return this.reject(key, source, desired.problems, []);
    const { state } = desired;
    const owner = ownerOf(source);

    // A Service we may not take: one with a selector, or one another controller owns.
    if (source.kind === 'externalService' && service) {
      const ref = controllerRef(service);
      if (ref && ref.uid !== owner.uid) return this.reject(key, source, [{ field: 'metadata.name', message: `Service ${name} is controlled by ${ref.kind} ${ref.name}` }], []);
      if (service.spec?.selector && Object.keys(service.spec.selector).length > 0) return this.reject(key, source, [{ field: 'metadata.name', message: `Service ${name} has a selector; Portico manages only selectorless Services` }], []);
      if ((service.spec?.clusterIP === 'None') !== state.headless) return this.reject(key, source, [{ field: 'spec.service.type', message: 'cannot switch between ClusterIP and Headless on an existing Service; delete the Service to have it recreated' }], []);
    }

    // Addresses: literal ones and DNS answers, each checked against the policy (every time).
    const policy = this.policy();
    const refusals: Refusal[] = [];
    const dnsNotes: string[] = [];
    let refreshInMs: number | undefined;
    const published = new Map<string, PublishedEndpoint>();
    for (const endpoint of state.endpoints) {
      if (endpoint.kind === 'address') {
        const verdict = checkAddress(policy, namespace, endpoint.address);
        if (!verdict.allowed) refusals.push({ field: endpoint.field, address: endpoint.address, reason: verdict.reason, detail: verdict.detail });
        else if (!published.has(endpoint.address)) published.set(endpoint.address, { address: endpoint.address, ready: true, ...(endpoint.zone ? { zone: endpoint.zone } : {}), ...(endpoint.targetPort ? { targetPort: endpoint.targetPort } : {}) });
        continue;
      }
      const answer = await this.resolver.resolve(endpoint.hostname, state.resolve);
      refreshInMs = Math.min(refreshInMs ?? Infinity, answer.refreshInMs || state.resolve.minRefreshMs);
      if (answer.error !== undefined) dnsNotes.push(`${endpoint.hostname}: ${answer.error}${answer.stale ? ' (keeping the last good answer)' : ''}`);
      for (const address of answer.addresses) {
        const verdict = checkAddress(policy, namespace, address);
        if (!verdict.allowed) refusals.push({ field: endpoint.field, address: `${address} (from ${endpoint.hostname})`, reason: verdict.reason, detail: verdict.detail });
        else if (!published.has(formatIP(verdict.ip))) published.set(formatIP(verdict.ip), { address: formatIP(verdict.ip), hostname: endpoint.hostname, ready: true, ...(endpoint.zone ? { zone: endpoint.zone } : {}), ...(endpoint.targetPort ? { targetPort: endpoint.targetPort } : {}) });
      }
    }
    for (const r of refusals) this.metrics.refused.inc({ reason: r.reason });
    // A literal address the policy refuses rejects the whole object: nothing is written for it.
    const literal = refusals.filter((r) => !r.address.includes(' (from '));
    if (literal.length > 0) return this.reject(key, source, [], literal);

    this.health.set(
      key,
      state.health,
      [...published.values()].map((p) => ({ address: p.address, ...(p.hostname ? { hostname: p.hostname } : {}) })),
    );
    const endpoints = [...published.values()].map((p) => ({ ...p, ready: this.health.ready(key, p.address) }));

    // 1. The Service.
    const serviceOutcome = await this.ensureService(source, state, owner, namespace, name, service, signal);
    if (serviceOutcome) return serviceOutcome;

    // 2. The v1 Endpoints (skip-mirror first, so the mirroring controller lets go of the address).
    const endpointsObject = this.options.endpoints.get(key);
    const endpointsPath = `/api/v1/namespaces/${namespace}/endpoints/${name}`;
    const ours = endpointsObject !== undefined && controllerRef(endpointsObject)?.uid === owner.uid;
    if (state.publishEndpoints || ours) {
      // Turned off: the one we wrote is emptied (no delete in our RBAC; it goes with its owner).
      const want = planEndpoints({ namespace, serviceName: name, owner, ports: state.ports, endpoints: state.publishEndpoints ? endpoints : [] });
      if (!endpointsObject) {
        await this.write('endpoints', () => this.options.client.request('POST', `/api/v1/namespaces/${namespace}/endpoints`, { body: want, signal }));
      } else if (!endpointsEquivalent(endpointsObject, want)) {
        const body = {
          metadata: { labels: want.metadata?.labels, annotations: { [OVER_CAPACITY_ANNOTATION]: want.metadata?.annotations?.[OVER_CAPACITY_ANNOTATION] ?? null }, ownerReferences: want.metadata?.ownerReferences, resourceVersion: endpointsObject.metadata?.resourceVersion },
          subsets: want.subsets ?? null,
        };
        await this.write('endpoints', () => this.options.client.request('PATCH', endpointsPath, { body, patchType: 'merge', signal }));
        if (!ours) this.event(source, 'Normal', 'AdoptedEndpoints', `Took over the Endpoints object ${name} (labelled ${SKIP_MIRROR_LABEL}, so its mirrored EndpointSlice goes)`);
      }
    } else if (endpointsObject && endpointsObject.metadata?.labels?.[SKIP_MIRROR_LABEL] !== 'true') {
      // Someone else's Endpoints while we publish slices: stop it being mirrored into a duplicate.
      await this.write('endpoints', () => this.options.client.request('PATCH', endpointsPath, { body: { metadata: { labels: { [SKIP_MIRROR_LABEL]: 'true' }, resourceVersion: endpointsObject.metadata?.resourceVersion } }, patchType: 'merge', signal }));
    }

    // 3. No address in two slices: the mirroring controller removes its slices once the
    // Endpoints says skip-mirror; ours appear only after that.
    if (this.ourSlices(namespace, name, MIRROR_MANAGED_BY).length > 0) return requeueAfter(MIRROR_WAIT_MS);

    // 4. Our slices.
    const plan = planSlices({ namespace, serviceName: name, owner, ports: state.ports, endpoints, existing: this.ourSlices(namespace, name), maxPerSlice: this.options.maxEndpointsPerSlice });
    const base = `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`;
    // Updates (emptied slices first) before creates: an address moving between slices is never in two.
    for (const slice of plan.update) await this.write('endpointslices', () => this.options.client.request('PATCH', `${base}/${slice.metadata?.name ?? ''}`, { body: slicePatch(slice), patchType: 'merge', signal }));
    for (const slice of plan.create) await this.write('endpointslices', () => this.options.client.request('POST', base, { body: slice, signal }));
    const changedAt = this.changedAt.get(key);
    if (changedAt !== undefined) {
      this.changedAt.delete(key);
      if (plan.update.length + plan.create.length > 0) this.metrics.publish.observe((this.options.clock.now() - changedAt) / 1000);
    }

    // 5. Status.
    const ready = endpoints.filter((e) => e.ready).length;
    this.setCount(key, ready, endpoints.length - ready);
    if (source.kind === 'externalService') {
      const addresses: ExternalAddressStatus[] = endpoints.map((e) => ({ address: e.address, ...(e.hostname ? { hostname: e.hostname } : {}), ready: e.ready })).sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
      const down = endpoints.filter((e) => !e.ready).map((e) => e.address);
      const degradedReasons = [...(down.length > 0 ? [`not ready: ${boundedList(down, 5, ', ')}`] : []), ...dnsNotes, ...refusals.map((r) => `${r.address} refused (${r.reason})`)];
      const conditions: ConditionInput[] = [
        ready > 0 ? { type: 'Ready', status: 'True', reason: 'EndpointsReady', message: `${String(ready)} of ${String(endpoints.length)} endpoints ready` } : { type: 'Ready', status: 'False', reason: endpoints.length === 0 ? 'NoEndpoints' : 'NoReadyEndpoints', message: endpoints.length === 0 ? 'no address to publish' : 'every endpoint fails its health check' },
        degradedReasons.length > 0
          ? { type: 'Degraded', status: 'True', reason: refusals.length > 0 ? 'AddressRefused' : dnsNotes.length > 0 ? 'ResolutionFailed' : 'EndpointsDown', message: boundedMessage(boundedList(degradedReasons)) }
          : { type: 'Degraded', status: 'False', reason: 'AllEndpointsReady', message: 'every endpoint is ready' },
        refusals.length > 0 ? { type: 'Rejected', status: 'True', reason: refusals[0]?.reason ?? 'AddressRefused', message: describeRefusals(refusals) } : { type: 'Rejected', status: 'False', reason: 'Accepted', message: 'spec accepted' },
      ];
      this.queueStatus(source.es, conditions, { endpoints: `${String(ready)}/${String(endpoints.length)}`, readyEndpoints: ready, totalEndpoints: endpoints.length, addresses });
    } else {
      const notes = [...dnsNotes, ...refusals.map((r) => `${r.field}: ${r.address} refused (${r.reason})`)];
      const count = `${String(endpoints.length)} endpoint${endpoints.length === 1 ? '' : 's'} published`;
      const message = boundedMessage(notes.length > 0 ? `${count}; ${boundedList(notes)}` : count);
      this.queueServiceCondition(
        source.service,
        endpoints.length > 0
          ? { type: EXTERNAL_ENDPOINTS_CONDITION, status: 'True', reason: 'Published', message }
          : { type: EXTERNAL_ENDPOINTS_CONDITION, status: 'False', reason: refusals.length > 0 ? 'AddressRefused' : dnsNotes.length > 0 ? 'ResolutionFailed' : 'NoEndpoints', message },
      );
    }
    return refreshInMs !== undefined ? requeueAfter(Math.max(100, refreshInMs)) : done();
  }

  private async write(resource: string, call: () => Promise<unknown>): Promise<void> {
    this.metrics.writes.inc({ resource });
    await call();
  }

  private async ensureService(source: Source, state: DesiredState, owner: V1OwnerReference, namespace: string, name: string, service: DeepReadonly<V1Service> | undefined, signal: AbortSignal): Promise<Outcome | undefined> {
    if (source.kind === 'annotation') return undefined; // the user's Service: we only write its endpoints
    const ports = state.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, targetPort: p.targetPort, protocol: p.protocol, ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) }));
    if (!service) {
      const body: V1Service = {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name, namespace, labels: state.labels, annotations: state.annotations, ownerReferences: [owner] },
        spec: { type: 'ClusterIP', ports, ...(state.headless ? { clusterIP: 'None' } : {}) },
      };
      try {
        await this.write('services', () => this.options.client.request('POST', `/api/v1/namespaces/${namespace}/services`, { body, signal }));
      } catch (error) {
        if (isKubeError(error, 409)) return requeueAfter(CACHE_BEHIND_MS);
        throw error;
      }
      return undefined;
    }
    const have = service.metadata ?? {};
    const labelsOk = Object.entries(state.labels).every(([k, v]) => have.labels?.[k] === v);
    const annotationsOk = Object.entries(state.annotations).every(([k, v]) => have.annotations?.[k] === v);
    const havePorts = (service.spec?.ports ?? []).map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, targetPort: p.targetPort, protocol: p.protocol ?? 'TCP', ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) }));
    if (labelsOk && annotationsOk && equivalent(havePorts, ports)) return undefined;
    const adopting = controllerRef(service) === undefined;
    await this.write('services', () =>
      this.options.client.request('PATCH', `/api/v1/namespaces/${namespace}/services/${name}`, {
        body: { metadata: { labels: state.labels, annotations: state.annotations, resourceVersion: have.resourceVersion }, spec: { ports } },
        patchType: 'merge',
        signal,
      }),
    );
    if (adopting) this.event(source, 'Normal', 'AdoptedService', `Managing the ports of the existing selectorless Service ${name}`);
    return undefined;
  }

  /**
   * Status goes through its own queue: slice writes (what clients route by) are not held up
   * behind status writes when many ExternalServices change at once. The latest status computed
   * for a key wins; it is written against the freshest cached object.
   */
  private queueStatus(es: DeepReadonly<ExternalService>, conditions: ConditionInput[], fields: Record<string, unknown>): void {
    const key = objectKey(es);
    this.pendingStatus.set(key, { kind: 'externalService', key, uid: es.metadata.uid, generation: es.metadata.generation, conditions, fields });
    this.statusQueue.add(key);
  }

  /**
   * Queues the condition of an annotated Service (null: remove ours) when it differs from what
   * the Service carries; a steady state queues nothing.
   */
  private queueServiceCondition(service: DeepReadonly<V1Service>, condition: ConditionInput | null): void {
    const have = findCondition(service.status?.conditions as readonly Condition[] | undefined, EXTERNAL_ENDPOINTS_CONDITION);
    const generation = service.metadata?.generation;
    const same = condition === null ? have === undefined : have?.status === condition.status && have.reason === condition.reason && have.message === condition.message && have.observedGeneration === generation;
    const key = objectKey(service);
    const queueKey = SERVICE_STATUS_PREFIX + key;
    if (same) {
      this.pendingStatus.delete(queueKey);
      return;
    }
    this.pendingStatus.set(queueKey, { kind: 'service', key, uid: service.metadata?.uid, generation, condition });
    this.statusQueue.add(queueKey);
  }

  private async writeStatus(queueKey: string, signal: AbortSignal): Promise<Outcome> {
    const pending = this.pendingStatus.get(queueKey);
    this.pendingStatus.delete(queueKey);
    if (!pending) return done();
    const now = new Date(this.options.clock.now());
    try {
      if (pending.kind === 'service') await this.writeServiceCondition(pending, now, signal);
      else await this.writeExternalServiceStatus(pending, now, signal);
    } catch (error) {
      if (isKubeError(error, 404) || signal.aborted) return done();
      // Unless a newer status is waiting, try this one again.
      if (!this.pendingStatus.has(queueKey)) this.pendingStatus.set(queueKey, pending);
      return retry(error);
    }
    return done();
  }

  private async writeServiceCondition(pending: Extract<PendingStatus, { kind: 'service' }>, now: Date, signal: AbortSignal): Promise<void> {
    const { key, condition } = pending;
    const service = this.options.services.get(key);
    const meta = service?.metadata;
    if (!service || !meta || meta.uid !== pending.uid || meta.deletionTimestamp) return;
    // A merge patch of the whole list, with the resourceVersion it was computed from: the
    // LoadBalancer controller and the speaker write their own conditions on the same list.
    await patchStatus(
      this.options.client,
      `/api/v1/namespaces/${meta.namespace ?? 'default'}/services/${meta.name ?? ''}`,
      service as V1Service & { status?: Record<string, unknown> },
      (o) => {
        // After a conflict `o` is a fresh read: a recreated Service, a removed annotation or an
        // ExternalService taking over makes the pending condition wrong; its own event re-queues it.
        if (o.metadata?.uid !== pending.uid || o.metadata?.deletionTimestamp) return undefined;
        if (condition !== null && (!isAnnotated(o) || this.options.externalServices.get(key))) return undefined;
        const list = o.status?.conditions as Condition[] | undefined;
        return { conditions: condition === null ? removeCondition(list, EXTERNAL_ENDPOINTS_CONDITION) : setCondition(list, condition, now, pending.generation) };
      },
      signal,
    );
  }

  private async writeExternalServiceStatus(pending: Extract<PendingStatus, { kind: 'externalService' }>, now: Date, signal: AbortSignal): Promise<void> {
    const es = this.options.externalServices.get(pending.key);
    if (!es || es.metadata.uid !== pending.uid || es.metadata.deletionTimestamp) return;
    await patchStatus(
      this.options.client,
      `/apis/portico.dev/v1alpha1/namespaces/${es.metadata.namespace ?? 'default'}/externalservices/${es.metadata.name}`,
      es as ExternalService & { status?: Record<string, unknown> },
      (o) => {
        // A fresh read after a conflict may be a recreated ExternalService: not this status's.
        if (o.metadata.uid !== pending.uid) return undefined;
        let list: Condition[] | undefined = o.status?.conditions;
        for (const c of pending.conditions) list = setCondition(list, c, now, pending.generation);
        return { ...pending.fields, observedGeneration: pending.generation, conditions: list };
      },
      signal,
    );
  }

  private reject(key: string, source: Source, problems: readonly SpecProblem[], refusals: readonly Refusal[]): Outcome {
    const message = boundedMessage(refusals.length > 0 ? describeRefusals(refusals) : boundedList(problems.map((p) => `${p.field}: ${p.message}`)));
    const reason = refusals[0]?.reason ?? 'InvalidSpec';
    this.health.forget(key);
    if (source.kind === 'externalService') {
      const before = source.es.status?.conditions?.find((c) => c.type === 'Rejected');
      this.queueStatus(source.es, [
        { type: 'Rejected', status: 'True', reason, message },
        { type: 'Ready', status: 'False', reason: 'Rejected', message: 'nothing published: the spec was rejected' },
      ], {});
      if (before?.status !== 'True' || before.message !== message) this.event(source, 'Warning', 'Rejected', message);
    } else {
      const before = findCondition(source.service.status?.conditions as readonly Condition[] | undefined, EXTERNAL_ENDPOINTS_CONDITION);
      this.queueServiceCondition(source.service, { type: EXTERNAL_ENDPOINTS_CONDITION, status: 'False', reason, message });
      // Warn once per change, as for an ExternalService: our own status write re-queues the Service.
      if (before?.status !== 'False' || before.message !== message) this.event(source, 'Warning', 'Rejected', message);
    }
    this.options.logger.warn({ key, reason, message }, 'ExternalService rejected');
    return terminal(new Error(message));
  }

  /**
   * No ExternalService and no annotation. What an ExternalService owned goes with it (garbage
   * collector); what an annotation made is emptied, since the Service has no external endpoints
   * any more (the objects go with the Service).
   */
  private async release(key: string, namespace: string, name: string, service: DeepReadonly<V1Service> | undefined, signal: AbortSignal): Promise<Outcome> {
    this.forget(key);
    if (service && !service.metadata?.deletionTimestamp) this.queueServiceCondition(service, null);
    const uid = service?.metadata?.uid;
    if (!uid) return done();
    const owner: V1OwnerReference = { apiVersion: 'v1', kind: 'Service', name, uid, controller: true };
    const base = `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`;
    const slices = this.ourSlices(namespace, name).filter((s) => controllerRef(s)?.uid === uid);
    const plan = planSlices({ namespace, serviceName: name, owner, ports: [], endpoints: [], existing: slices });
    for (const slice of plan.update) await this.write('endpointslices', () => this.options.client.request('PATCH', `${base}/${slice.metadata?.name ?? ''}`, { body: slicePatch(slice), patchType: 'merge', signal }));
    const endpoints = this.options.endpoints.get(key);
    if (endpoints && controllerRef(endpoints)?.uid === uid && (endpoints.subsets ?? []).length > 0) {
      await this.write('endpoints', () => this.options.client.request('PATCH', `/api/v1/namespaces/${namespace}/endpoints/${name}`, { body: { metadata: { resourceVersion: endpoints.metadata?.resourceVersion }, subsets: null }, patchType: 'merge', signal }));
    }
    return done();
  }
}

/** A merge patch carrying everything we own of a slice (lists are replaced whole). */
function slicePatch(slice: V1EndpointSlice): Record<string, unknown> {
  return {
    metadata: { labels: slice.metadata?.labels, ownerReferences: slice.metadata?.ownerReferences, resourceVersion: slice.metadata?.resourceVersion },
    endpoints: slice.endpoints,
    ports: slice.ports ?? null,
  };
}
