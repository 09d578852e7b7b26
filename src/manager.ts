/**
 * `portico controller`: builds the client, informers, providers and controllers from one
 * Config, serves /healthz, /readyz and /metrics, and reconciles only while it leads.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { KubeConfig, type V1Node, type V1Service } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { ConfigError, parseListenAddress, type ControllerConfig } from './config.js';
import { systemClock, type Clock } from './kube/clock.js';
import { EventRecorder } from './kube/events.js';
import { serve } from './kube/http-server.js';
import { Informer, type KubeObject } from './kube/informer.js';
import { leaderElectionHealthy, LeaderElector, restLeaseStore } from './kube/leader-election.js';
import { createLogger } from './kube/logger.js';
import { RestClient } from './kube/rest.js';
import { createProviders, PROVIDER_FACTORIES, type ProviderFactory } from './providers/index.js';
import type { ProviderClass } from './providers/provider.js';
import { LoadBalancerController } from './reconcile/loadbalancer/controller.js';

export const COMPONENT = 'portico-controller';

/** Explicit path, then in-cluster, then $KUBECONFIG, then ~/.kube/config. */
export function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  if (path) {
    kc.loadFromFile(path);
  } else if (env.KUBERNETES_SERVICE_HOST && existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token')) {
    kc.loadFromCluster();
  } else if (env.KUBECONFIG) {
    kc.loadFromFile(env.KUBECONFIG.split(':')[0] ?? env.KUBECONFIG);
  } else if (existsSync(join(homedir(), '.kube', 'config'))) {
    kc.loadFromFile(join(homedir(), '.kube', 'config'));
  } else {
    throw new Error('no kubeconfig: pass --kubeconfig, run in a cluster, or set $KUBECONFIG');
  }
  return kc;
}

export interface RunningController {
  /** Resolves when the controller has stopped (after `signal` aborted, or leadership was lost). */
  done: Promise<'stopped' | 'lost'>;
  registry: Registry;
  servers: Server[];
}

/** One leadership term: fresh informers, providers and controller; all stop when `signal` aborts. */
async function runTerm(config: ControllerConfig, factories: Partial<Record<ProviderClass, ProviderFactory>>, client: RestClient, registry: Registry, logger: Logger, clock: Clock, signal: AbortSignal, onSynced: () => void): Promise<void> {
  const events = new EventRecorder(client, COMPONENT, { clock, logger, registry });
  const informers: Informer<KubeObject>[] = [];
  const informer = <T extends KubeObject>(path: string): Informer<T> => {
    const created = new Informer<T>(client, { path, clock, logger: logger.child({ informer: path }) });
    informers.push(created);
    return created;
  };
  const services = informer<V1Service>('/api/v1/services');
  const nodes = informer<V1Node>('/api/v1/nodes');
  const providers = createProviders(config.providers, { client, events, clock, logger, registry, informer }, factories);
  const running = informers.map((i) => i.run(signal));
  void Promise.all(informers.map((i) => i.waitForSync(signal))).then((synced) => {
    if (synced.every(Boolean)) onSynced();
  });
  const controller = new LoadBalancerController({
    client,
    services,
    nodes,
    providers,
    events,
    clock,
    logger: logger.child({ controller: 'loadbalancer' }),
    registry,
    defaultClass: config.defaultClass,
    workers: config.workers,
    resyncPeriodMs: config.resyncPeriodMs,
  });
  await controller.run(signal);
  await Promise.all(running);
  await events.close();
}

export interface StartOptions {
  clock?: Clock;
  logger?: Logger;
  /** Replaces or adds provider factories (tests inject failing providers here). */
  factories?: Partial<Record<ProviderClass, ProviderFactory>>;
}

export async function startController(config: ControllerConfig, signal: AbortSignal, options: StartOptions = {}): Promise<RunningController> {
  const factories = { ...PROVIDER_FACTORIES, ...options.factories };
  const missing = config.providers.filter((p) => factories[p] === undefined);
  if (missing.length > 0) throw new ConfigError(`--providers: ${missing.join(', ')} not available in this build (available: ${Object.keys(factories).join(', ')})`);
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger(config.logLevel);
  const kc = loadKubeConfig(config.kubeconfig);
  const client = new RestClient(kc, COMPONENT);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  let synced = false;
  const electorRef: { current: LeaderElector | undefined } = { current: undefined };
  const servers: Server[] = [];
  const health = { leaderElection: leaderElectionHealthy({ healthy: (slack?: number) => electorRef.current?.healthy(slack) ?? true }) };
  // A standby replica is ready: it serves health and waits for the lease.
  const ready = { informersSynced: () => synced || (electorRef.current !== undefined && !electorRef.current.isLeader()) };
  const metricsAddress = parseListenAddress(config.metricsAddr);
  const healthAddress = parseListenAddress(config.healthAddr);
  if (metricsAddress && healthAddress && metricsAddress.port === healthAddress.port) {
    servers.push(await serve({ ...healthAddress, health, ready, registry }));
  } else {
    if (metricsAddress) servers.push(await serve({ ...metricsAddress, registry }));
    if (healthAddress) servers.push(await serve({ ...healthAddress, health, ready }));
  }
  const closeServers = (): void => {
    for (const server of servers) server.close();
  };

  const onSynced = (): void => {
    synced = true;
  };

  if (!config.leaderElect) {
    logger.info({ providers: config.providers, defaultClass: config.defaultClass }, 'starting without leader election');
    const done = runTerm(config, factories, client, registry, logger, clock, signal, onSynced).then(
      () => 'stopped' as const,
      (error: unknown) => {
        logger.error({ err: error }, 'controller failed');
        throw error;
      },
    );
    return { done: done.finally(closeServers), registry, servers };
  }

  let term: AbortController | undefined;
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
        termDone = runTerm(config, factories, client, registry, logger, clock, term.signal, onSynced).catch((error: unknown) => {
          logger.error({ err: error }, 'controller failed');
        });
      },
      onStoppedLeading: () => {
        // Stop reconciling at once; in-flight calls see the aborted signal.
        term?.abort();
        synced = false;
        logger.warn({ identity: config.identity }, 'stopped leading');
      },
      onNewLeader: (identity) => logger.info({ leader: identity }, 'leader observed'),
    },
    logger.child({ component: 'leader-election' }),
  );
  electorRef.current = elector;
  const done = elector.run(signal).then(async (outcome) => {
    term?.abort();
    await termDone;
    return outcome;
  });
  return { done: done.finally(closeServers), registry, servers };
}
