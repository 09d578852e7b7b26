/**
 * `portico controller`: builds the client, informers, providers and controllers from one
 * Config, serves /healthz, /readyz and /metrics, and reconciles only while it leads.
 */
import { setMaxListeners } from 'node:events';
import type { Server } from 'node:http';
import { getHeapStatistics } from 'node:v8';
import type { Logger } from 'pino';
import { Histogram, Registry } from '../kube/prom.js';
import { systemClock, type Clock } from '../kube/clock.js';
import { EventRecorder } from '../kube/events.js';
import { GuardedClient } from '../kube/guarded-client.js';
import { serve } from '../kube/http-server.js';
import { ActivityClient, DEFAULT_COMPACTION, heapCompactor, IdleCompactor } from '../kube/idle-compaction.js';
import { loadKubeConfig } from '../kube/kubeconfig.js';
import { leaderElectionHealthy, LeaderElector } from '../kube/leader-election/elector.js';
import { restLeaseStore } from '../kube/leader-election/lease-store.js';
import { createLogger } from '../kube/logger.js';
import { withProcessMetrics } from '../kube/metrics.js';
import { RestClient, type KubeClient } from '../kube/rest.js';
import { SharedInformers } from '../kube/shared-informers.js';
import type { LoadBalancerProvider, ProviderClass, ProviderModule } from '../providers/provider.js';
import { PROVIDER_MODULES } from '../providers/registry.js';
import { createLoadBalancerModule } from '../reconcile/loadbalancer/controller.js';
import type { ControllerModule, ModuleDeps } from '../reconcile/module.js';
import { packageVersion } from '../paths.js';
import { ConfigError, parseListenAddress, type ControllerConfig } from './config.js';

export const COMPONENT = 'portico-controller';

export interface RunningController {
  /** Resolves when the controller has stopped (after `signal` aborted, or leadership was lost). */
  done: Promise<'stopped' | 'lost'>;
  registry: Registry;
  servers: Server[];
}

/** Builds the modules of one term; the list the manager starts. */
export type ModuleFactory = (deps: ModuleDeps, providers: ReadonlyMap<ProviderClass, LoadBalancerProvider>) => ControllerModule;

export const CONTROLLER_MODULES: readonly ModuleFactory[] = [];

interface TermOptions {
  config: ControllerConfig;
  modules: readonly ProviderModule[];
  extraModules: readonly ModuleFactory[];
  client: KubeClient;
  registry: Registry;
  logger: Logger;
  clock: Clock;
  onSynced: () => void;
  /** Filled in when the term starts, so the manager can drop pending Events on loss. */
  onEvents?: (events: EventRecorder) => void;
}

/**
 * One leadership term: fresh shared informers, providers and modules; all stop when `signal`
 * aborts. Nothing of a term outlives it (no growth across terms).
 */
async function runTerm(options: TermOptions, signal: AbortSignal): Promise<void> {
  const { config, client, registry, logger, clock } = options;
  // Every informer, worker and in-flight call of the term listens on this one signal.
  setMaxListeners(1_000, signal);
  const events = new EventRecorder(client, COMPONENT, { clock, logger: logger.child({ subsystem: 'events' }), registry });
  options.onEvents?.(events);
  const informers = new SharedInformers(client, { clock, logger, registry });
  const providers = new Map<ProviderClass, LoadBalancerProvider>();
  for (const providerClass of config.providers) {
    const module = options.modules.find((m) => m.providerClass === providerClass);
    if (!module) throw new ConfigError(`--providers: ${providerClass} is not available in this build`);
    providers.set(providerClass, await module.create({ client, events, clock, registry, informers, logger: logger.child({ provider: providerClass }) }, config.providerSettings.get(providerClass)));
  }
  const deps = (name: string): ModuleDeps => ({ client, informers, events, clock, registry, logger: logger.child({ controller: name }) });
  const modules: ControllerModule[] = [
    createLoadBalancerModule(deps('loadbalancer'), {
      providers,
      knownClasses: new Set(options.modules.map((m) => m.providerClass)),
      defaultClass: config.defaultClass,
      workers: config.workers,
      resyncPeriodMs: config.resyncPeriodMs,
    }),
    // Its controller, prober and resolver load only when it is enabled.
    ...(config.externalServices ? [(await import('../reconcile/externalservice/controller.js')).createExternalServiceModule(deps('externalservice'), config.externalServices)] : []),
    ...[...CONTROLLER_MODULES, ...options.extraModules].map((factory) => factory(deps('module'), providers)),
  ];
  events.yieldTo(() => modules.some((m) => m.busy?.() === true));
  // Every informer the modules and providers asked for exists now: start them together.
  informers.start(signal);
  void informers.waitForSync(signal).then((synced) => {
    if (synced) options.onSynced();
  });
  await Promise.all(modules.map((m) => m.run(signal)));
  await informers.stopped();
  await events.close();
}

/** undefined when off (0) or when this Node.js cannot take memory reduction over from V8. */
function idleCompactor(idleMs: number, clock: Clock, registry: Registry, logger: Logger): IdleCompactor | undefined {
  const compact = idleMs > 0 ? heapCompactor() : undefined;
  if (!compact) return undefined;
  const durations = new Histogram({
    name: 'portico_heap_compaction_duration_seconds',
    help: 'Heap compactions after work went quiet (--idle-compaction), by time taken',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  return new IdleCompactor(
    {
      compact,
      heapBytes: () => getHeapStatistics().total_heap_size,
      clock,
      onCompacted: ({ beforeBytes, afterBytes, seconds }) => {
        durations.observe(seconds);
        logger.info({ heapBeforeMb: Math.round(beforeBytes / 1e5) / 10, heapAfterMb: Math.round(afterBytes / 1e5) / 10, ms: Math.round(seconds * 1000) }, 'heap compacted');
      },
    },
    { ...DEFAULT_COMPACTION, idleMs },
  );
}

export interface StartOptions {
  clock?: Clock;
  logger?: Logger;
  /** Replaces or adds provider modules (tests inject failing or slow providers here). */
  providerModules?: readonly ProviderModule[];
  /** More controller modules to run each term. */
  modules?: readonly ModuleFactory[];
  /**
   * The controller is the process (the CLI): it may change process-wide V8 settings, as
   * --idle-compaction does. Tests and benchmarks that start it in-process leave this off.
   */
  ownsProcess?: boolean;
}

export async function startController(config: ControllerConfig, signal: AbortSignal, options: StartOptions = {}): Promise<RunningController> {
  const overrides = options.providerModules ?? [];
  const modules = [...overrides, ...PROVIDER_MODULES.filter((m) => !overrides.some((o) => o.providerClass === m.providerClass))];
  const missing = config.providers.filter((p) => !modules.some((m) => m.providerClass === p));
  if (missing.length > 0) throw new ConfigError(`--providers: ${missing.join(', ')} not available in this build (available: ${modules.map((m) => m.providerClass).join(', ')})`);
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config.logLevel);
  const kc = loadKubeConfig(config.kubeconfig);
  // The identity in the user agent attributes every request in the API server's audit log.
  const client = new RestClient(kc, `${COMPONENT}/${packageVersion()} (${config.identity})`);
  const registry = new Registry();
  const served = withProcessMetrics(registry);
  const compactor = options.ownsProcess === true ? idleCompactor(config.idleCompactionMs, clock, registry, logger) : undefined;
  // The leader's work counts as activity for the compactor; the Lease store's renewals do not.
  const workClient: KubeClient = compactor ? new ActivityClient(client, compactor.noteActivity) : client;

  let synced = false;
  const electorRef: { current: LeaderElector | undefined } = { current: undefined };
  const servers: Server[] = [];
  const health = { leaderElection: leaderElectionHealthy({ healthy: (slack?: number) => electorRef.current?.healthy(slack) ?? true }) };
  // A standby replica is ready: it serves health and waits for the lease.
  const ready = { informersSynced: () => synced || (electorRef.current !== undefined && !electorRef.current.isLeader()) };
  const metricsAddress = parseListenAddress(config.metricsAddr);
  const healthAddress = parseListenAddress(config.healthAddr);
  // A busy port is a configuration problem: name the flag, not a stack trace.
  const listen = async (flag: string, value: string, options: Parameters<typeof serve>[0]): Promise<void> => {
    try {
      servers.push(await serve(options));
    } catch (error) {
      for (const server of servers) server.close();
      const code = (error as NodeJS.ErrnoException).code;
      throw new ConfigError(`${flag}=${value}: cannot listen (${code === 'EADDRINUSE' ? 'address already in use' : code === 'EACCES' ? 'permission denied' : (error as Error).message}); choose another address, or 0 to disable`);
    }
  };
  if (metricsAddress && healthAddress && metricsAddress.port === healthAddress.port) {
    await listen('--metrics-addr', config.metricsAddr, { ...healthAddress, health, ready, registry: served });
  } else {
    if (metricsAddress) await listen('--metrics-addr', config.metricsAddr, { ...metricsAddress, registry: served });
    if (healthAddress) await listen('--health-addr', config.healthAddr, { ...healthAddress, health, ready });
  }
  // Once stopped, nothing of this start stays open (a process may start the controller again).
  const closeAll = (): void => {
    for (const server of servers) server.close();
    client.close();
    compactor?.stop();
  };

  const onSynced = (): void => {
    synced = true;
  };

  if (!config.leaderElect) {
    logger.info({ providers: config.providers, defaultClass: config.defaultClass }, 'starting without leader election');
    const guarded = new GuardedClient(workClient, () => !signal.aborted);
    const done = runTerm({ config, modules, extraModules: options.modules ?? [], client: guarded, registry, logger, clock, onSynced }, signal).then(
      () => 'stopped' as const,
      (error: unknown) => {
        logger.error({ err: error }, 'controller failed');
        throw error;
      },
    );
    return { done: done.finally(closeAll), registry, servers };
  }

  let term: AbortController | undefined;
  let termEvents: EventRecorder | undefined;
  let termDone: Promise<void> = Promise.resolve();
  const elector = new LeaderElector(
    // Each Lease call is bounded well inside the renew deadline.
    restLeaseStore(client, Math.max(1_000, Math.floor(config.renewDeadlineMs / 2))),
    {
      identity: config.identity,
      namespace: config.leaseNamespace,
      name: config.leaseName,
      leaseDurationMs: config.leaseDurationMs,
      renewDeadlineMs: config.renewDeadlineMs,
      retryPeriodMs: config.retryPeriodMs,
    },
    clock,
    {
      onStartedLeading: (leadSignal) => {
        logger.info({ identity: config.identity }, 'became leader; starting controllers');
        term = new AbortController();
        const stopTerm = (): void => term?.abort();
        leadSignal.addEventListener('abort', stopTerm, { once: true });
        const termSignal = term.signal;
        // Every write of the term first checks, locally, that the Lease is still ours with margin.
        const guarded = new GuardedClient(workClient, () => !termSignal.aborted && elector.holdsLease());
        termDone = runTerm({ config, modules, extraModules: options.modules ?? [], client: guarded, registry, logger, clock, onSynced, onEvents: (e) => (termEvents = e) }, termSignal).catch((error: unknown) => {
          logger.error({ err: error }, 'controller failed');
        });
      },
      onStoppedLeading: () => {
        // Stop reconciling at once; in-flight calls see the aborted signal; waiting Events are dropped.
        term?.abort();
        termEvents?.discard();
        synced = false;
        // What the term held is garbage now: compact once the process is quiet.
        compactor?.noteActivity();
        if (signal.aborted) logger.info({ identity: config.identity }, 'stopped leading (shutdown)');
        else logger.warn({ identity: config.identity }, 'stopped leading');
      },
      onNewLeader: (identity) => logger.info({ leader: identity }, 'leader observed'),
    },
    logger.child({ subsystem: 'leader-election' }),
  );
  electorRef.current = elector;
  const done = elector.run(signal).then(async (outcome) => {
    term?.abort();
    await termDone;
    return outcome;
  });
  return { done: done.finally(closeAll), registry, servers };
}
