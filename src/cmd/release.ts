/**
 * `portico release --all`: for uninstalling. Every Service Portico provisioned (its finalizer
 * `portico.dev/load-balancer` or its `portico.dev/provisioned-by` annotation) has its balancer
 * released through the provider that made it (the registry's `ensureDeleted`: a cloud provider
 * deletes its balancer; the bare-metal provider frees the address, which lives only in the
 * Service's status), then Portico's status (ingress, LoadBalancerReady) is cleared and the
 * finalizer and annotation removed. Without this, deleting deploy/ first leaves Services stuck
 * Terminating on the finalizer. `--dry-run` prints what would happen and writes nothing.
 *
 * Pure planning (`planRelease`) and a thin executor (`executeRelease`); `runRelease` wires them.
 */
import { parseArgs } from 'node:util';
import type { V1Lease, V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Registry } from '../kube/prom.js';
import { systemClock, type Clock } from '../kube/clock.js';
import { EventRecorder } from '../kube/events.js';
import { objectKey } from '../kube/informer.js';
import { loadKubeConfig } from '../kube/kubeconfig.js';
import { createLogger } from '../kube/logger.js';
import { releasePatch } from '../kube/ownership.js';
import { patchStatus, patchWithRetry } from '../kube/patch.js';
import { serviceRef } from '../kube/refs.js';
import { isKubeError, RestClient, type KubeClient } from '../kube/rest.js';
import { SharedInformers } from '../kube/shared-informers.js';
import { asProviderError, type LoadBalancerProvider, type ProviderClass, type ProviderContext, type ReadonlyService } from '../providers/provider.js';
import { PROVIDER_MODULES, type ProviderModule } from '../providers/registry.js';
import { desiredStatus, FINALIZER, OWNERSHIP, PROVISIONED_BY_ANNOTATION, READY_CONDITION, statusPatch } from '../reconcile/loadbalancer/planner.js';
import { parseControllerFlags } from './config.js';

export const RELEASE_COMPONENT = 'portico-release';

export const RELEASE_USAGE = `Usage: portico release --all [--dry-run] [--force] [controller flags]

Releases every load balancer Portico provisioned and removes Portico's finalizer
(${FINALIZER}), annotation (${PROVISIONED_BY_ANNOTATION}) and status from its Services.
Run it after stopping the controller and before deleting Portico (docs/uninstall.md).

  --all        release every Service Portico provisioned (required)
  --dry-run    print what would be done; change nothing
  --force      also drop the marks of Services whose provider is not enabled here (their
               balancer may be left behind), and run even while a controller holds the Lease
Controller flags used: --kubeconfig, --providers and each provider's flags (to reach the
balancers), --leader-elect-namespace and --leader-elect-name (the Lease to check), --log-level.
`;

export interface ReleaseFlags {
  all: boolean;
  dryRun: boolean;
  force: boolean;
  /** Everything else, parsed as controller flags. */
  controllerArgs: string[];
}

export function parseReleaseArgs(argv: readonly string[]): ReleaseFlags {
  const own = new Set(['--all', '--dry-run', '--force']);
  const { values } = parseArgs({ args: argv.filter((a) => own.has(a)), options: { all: { type: 'boolean' }, 'dry-run': { type: 'boolean' }, force: { type: 'boolean' } }, strict: true });
  return { all: values.all === true, dryRun: values['dry-run'] === true, force: values.force === true, controllerArgs: argv.filter((a) => !own.has(a)) };
}

// ---- plan (pure) -----------------------------------------------------------------------------

export interface ReleaseAction {
  key: string;
  service: ReadonlyService;
  /** The provider that provisioned it: the annotation, else the Service's class. */
  providerClass: ProviderClass | undefined;
  /** `ensureDeleted` through this provider; false when it is not enabled here. */
  callProvider: boolean;
  clearStatus: boolean;
  removeMarks: boolean;
  /** Why nothing is done (the provider is not enabled and --force was not given). */
  skip?: string;
}

function portico(service: ReadonlyService): boolean {
  return (service.metadata?.finalizers ?? []).includes(FINALIZER) || service.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION] !== undefined;
}

function hasPorticoStatus(service: ReadonlyService): boolean {
  return (service.status?.loadBalancer?.ingress ?? []).length > 0 || (service.status?.conditions ?? []).some((c) => c.type === READY_CONDITION);
}

/** What to do for each Service Portico provisioned, in key order. Services of others are not touched. */
export function planRelease(services: readonly ReadonlyService[], enabled: ReadonlySet<ProviderClass>, force: boolean): ReleaseAction[] {
  return services
    .filter(portico)
    .map((service): ReleaseAction => {
      const providerClass = service.metadata?.annotations?.[PROVISIONED_BY_ANNOTATION] ?? service.spec?.loadBalancerClass ?? undefined;
      const callProvider = providerClass !== undefined && enabled.has(providerClass);
      const base = { key: objectKey(service), service, providerClass, callProvider, clearStatus: hasPorticoStatus(service), removeMarks: true };
      if (callProvider || force) return base;
      const which = providerClass ?? 'an unrecorded provider';
      return { ...base, clearStatus: false, removeMarks: false, skip: `provisioned by ${which}, which is not enabled here: pass --providers=${providerClass ?? '...'} with its flags, or --force to drop the marks anyway` };
    })
    .sort((a, b) => a.key.localeCompare(b.key));
}

/** One line per action: what was (or would be) done. */
export function describeAction(action: ReleaseAction): string {
  if (action.skip) return `${action.key}: ${action.skip}`;
  const steps = [
    action.callProvider ? `release the balancer through ${action.providerClass ?? ''}` : `leave the balancer of ${action.providerClass ?? 'an unrecorded provider'} alone (--force)`,
    ...(action.clearStatus ? [`clear status.loadBalancer and the ${READY_CONDITION} condition`] : []),
    `remove finalizer ${FINALIZER} and annotation ${PROVISIONED_BY_ANNOTATION}`,
  ];
  return `${action.key}: ${steps.join('; ')}`;
}

// ---- execute -----------------------------------------------------------------------------------

export interface ReleaseDeps {
  client: KubeClient;
  providers: ReadonlyMap<ProviderClass, LoadBalancerProvider>;
  events: { record: EventRecorder['record'] };
  logger: Logger;
  clock: Clock;
  out: (line: string) => void;
}

export interface ReleaseResult {
  released: string[];
  skipped: string[];
  failed: string[];
}

function servicePath(service: ReadonlyService): string {
  return `/api/v1/namespaces/${service.metadata?.namespace ?? ''}/services/${service.metadata?.name ?? ''}`;
}

/** Provider first, then status, then marks: the finalizer goes only once the balancer is gone. */
export async function executeRelease(deps: ReleaseDeps, actions: readonly ReleaseAction[], signal: AbortSignal): Promise<ReleaseResult> {
  const result: ReleaseResult = { released: [], skipped: [], failed: [] };
  for (const action of actions) {
    if (action.skip) {
      deps.out(`skipped ${describeAction(action)}`);
      result.skipped.push(action.key);
      continue;
    }
    const service = action.service as V1Service;
    try {
      const provider = action.callProvider && action.providerClass ? deps.providers.get(action.providerClass) : undefined;
      if (provider) {
        const ctx: ProviderContext = {
          signal,
          logger: deps.logger.child({ service: action.key, provider: provider.providerClass }),
          events: { record: (type, reason, message) => deps.events.record(serviceRef(service), type, reason, message) },
        };
        await provider.ensureDeleted(ctx, service).catch((error: unknown) => {
          throw asProviderError(error);
        });
      }
      let current = service;
      if (action.clearStatus) {
        const now = new Date(deps.clock.now());
        current = (await patchStatus(deps.client, servicePath(service), service as V1Service & { status?: Record<string, unknown> }, (s) => statusPatch(desiredStatus(s, { kind: 'cleaned' }, now)), signal)).object;
      }
      await patchWithRetry(deps.client, servicePath(current), current, (s) => releasePatch(s, OWNERSHIP), { signal });
      deps.events.record(serviceRef(service), 'Normal', 'DeletedLoadBalancer', `released by portico release${provider ? ` through ${provider.providerClass}` : ' (--force: provider not called)'}`);
      deps.out(`released ${describeAction(action)}`);
      result.released.push(action.key);
    } catch (error) {
      if (isKubeError(error, 404)) {
        deps.out(`released ${action.key}: already gone`);
        result.released.push(action.key);
        continue;
      }
      const message = error instanceof Error ? error.message : String(error);
      deps.out(`FAILED ${action.key}: ${message.slice(0, 500)} (its finalizer stays; run again)`);
      result.failed.push(action.key);
    }
  }
  return result;
}

// ---- command -----------------------------------------------------------------------------------

/** The controller's Lease, when someone renewed it within its duration: that controller would undo our work. */
export function activeLeaseHolder(lease: V1Lease | undefined, nowMs: number): string | undefined {
  const spec = lease?.spec;
  if (!spec?.holderIdentity || !spec.renewTime) return undefined;
  const renewed = new Date(spec.renewTime).getTime();
  return nowMs - renewed < (spec.leaseDurationSeconds ?? 15) * 1000 ? spec.holderIdentity : undefined;
}

async function listServices(client: KubeClient): Promise<V1Service[]> {
  const services: V1Service[] = [];
  let continueToken: string | undefined;
  do {
    const page = await client.request<{ items: V1Service[]; metadata?: { continue?: string } }>('GET', '/api/v1/services', { query: { limit: 500, continue: continueToken } });
    services.push(...page.items);
    continueToken = page.metadata?.continue || undefined;
  } while (continueToken);
  return services;
}

export interface ReleaseIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
  logger?: Logger;
  /** Replaces or adds provider modules (tests). */
  providerModules?: readonly ProviderModule[];
  /** How long providers' informers may take to list (default 30 s). */
  syncTimeoutMs?: number;
}

/**
 * The providers could not start (their informers never listed: typically the AddressPool CRD
 * was deleted before the release). Their Services are skipped, or with --force released
 * without calling them.
 */
export function withoutProviders(actions: readonly ReleaseAction[], why: string, force: boolean): ReleaseAction[] {
  return actions.map((a) => {
    if (!a.callProvider) return a;
    if (force) return { ...a, callProvider: false };
    return { ...a, callProvider: false, clearStatus: false, removeMarks: false, skip: `${a.providerClass ?? ''} could not start (${why}); --force drops the marks without it` };
  });
}

export async function runRelease(argv: readonly string[], io: ReleaseIo): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout(RELEASE_USAGE);
    return 0;
  }
  let flags: ReleaseFlags;
  let config;
  const overrides = io.providerModules ?? [];
  const modules = [...overrides, ...PROVIDER_MODULES.filter((m) => !overrides.some((o) => o.providerClass === m.providerClass))];
  try {
    flags = parseReleaseArgs(argv);
    config = parseControllerFlags(flags.controllerArgs, io.env ?? process.env, modules);
  } catch (error) {
    io.stderr(`portico release: ${(error as Error).message}\n\n${RELEASE_USAGE}`);
    return 2;
  }
  if (!flags.all) {
    io.stderr(`portico release: pass --all (releasing single Services is not supported)\n\n${RELEASE_USAGE}`);
    return 2;
  }
  const clock = io.clock ?? systemClock;
  const logger = io.logger ?? createLogger(config.logLevel);
  const client = new RestClient(loadKubeConfig(config.kubeconfig, io.env ?? process.env), RELEASE_COMPONENT);

  if (!flags.force && !flags.dryRun) {
    const lease = await client.request<V1Lease>('GET', `/apis/coordination.k8s.io/v1/namespaces/${config.leaseNamespace}/leases/${config.leaseName}`).catch((error: unknown) => {
      if (isKubeError(error, 404)) return undefined;
      throw error;
    });
    const holder = activeLeaseHolder(lease, clock.now());
    if (holder) {
      io.stderr(
        `portico release: controller ${holder} holds the Lease ${config.leaseNamespace}/${config.leaseName} and would provision the Services again.\n` +
          `Stop it first (kubectl -n ${config.leaseNamespace} scale deployment/portico-controller --replicas=0), or pass --force.\n`,
      );
      return 1;
    }
  }

  const services = await listServices(client);
  const actions = planRelease(services, new Set(config.providers), flags.force);
  if (actions.length === 0) {
    io.stdout('nothing to release: no Service carries Portico\'s finalizer or annotation\n');
    return 0;
  }
  if (flags.dryRun) {
    for (const action of actions) io.stdout(`${action.skip ? 'would skip' : 'would release'} ${describeAction(action)}\n`);
    io.stdout(`dry run: ${actions.filter((a) => !a.skip).length} to release, ${actions.filter((a) => a.skip).length} to skip; nothing changed\n`);
    return 0;
  }

  // Providers are built as in a controller term (they may need informers to know what they hold).
  const stop = new AbortController();
  const registry = new Registry();
  const events = new EventRecorder(client, RELEASE_COMPONENT, { clock, logger: logger.child({ component: 'events' }), registry });
  const informers = new SharedInformers(client, { clock, logger, registry });
  const providers = new Map<ProviderClass, LoadBalancerProvider>();
  for (const providerClass of new Set(actions.filter((a) => a.callProvider).map((a) => a.providerClass))) {
    const module = modules.find((m) => m.providerClass === providerClass);
    if (!module || providerClass === undefined) continue;
    providers.set(providerClass, await module.create({ client, events, clock, registry, informers, logger: logger.child({ provider: providerClass }) }, config.providerSettings.get(providerClass)));
  }
  try {
    informers.start(stop.signal);
    const syncTimeoutMs = io.syncTimeoutMs ?? 30_000;
    let planned = actions;
    if (await informers.waitForSync(AbortSignal.any([stop.signal, AbortSignal.timeout(syncTimeoutMs)]))) {
      const held = services.filter((s) => portico(s) || hasPorticoStatus(s));
      for (const provider of providers.values()) await provider.start?.(stop.signal, held);
    } else {
      const why = `${informers.paths().join(', ')} did not list within ${String(Math.round(syncTimeoutMs / 1000))} s; is a CRD missing?`;
      io.stdout(`providers ${[...providers.keys()].join(', ')} could not start: ${why}\n`);
      for (const provider of providers.values()) provider.stop?.();
      providers.clear();
      planned = withoutProviders(actions, why, flags.force);
    }
    const result = await executeRelease({ client, providers, events, logger, clock, out: (line) => io.stdout(`${line}\n`) }, planned, stop.signal);
    io.stdout(`${result.released.length} released, ${result.skipped.length} skipped, ${result.failed.length} failed\n`);
    return result.skipped.length + result.failed.length > 0 ? 1 : 0;
  } finally {
    for (const provider of providers.values()) provider.stop?.();
    stop.abort();
    await informers.stopped();
    await events.close();
  }
}

