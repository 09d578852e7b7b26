/** The one registry: provider class -> factory. A provider never imports another provider. */
import type { V1Namespace } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AddressPool } from '../api/address-pool.js';
import type { Clock } from '../kube/clock.js';
import type { EventSink } from '../kube/events.js';
import type { Informer, KubeObject } from '../kube/informer.js';
import type { KubeClient } from '../kube/rest.js';
import { L2Provider } from './metallb-like/provider.js';
import type { LoadBalancerProvider, ProviderClass } from './provider.js';

export interface ProviderDeps {
  client: KubeClient;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  /** Creates an informer that the controller runs for as long as the provider lives. */
  informer<T extends KubeObject>(path: string): Informer<T>;
}

export type ProviderFactory = (deps: ProviderDeps) => LoadBalancerProvider;

export const PROVIDER_FACTORIES: Partial<Record<ProviderClass, ProviderFactory>> = {
  'portico.dev/l2': (deps) =>
    new L2Provider({
      client: deps.client,
      pools: deps.informer<AddressPool>('/apis/portico.dev/v1alpha1/addresspools'),
      namespaces: deps.informer<V1Namespace>('/api/v1/namespaces'),
      events: deps.events,
      clock: deps.clock,
      logger: deps.logger.child({ provider: 'portico.dev/l2' }),
    }),
};

/** Classes this build can serve. */
export function availableProviders(): ProviderClass[] {
  return Object.keys(PROVIDER_FACTORIES) as ProviderClass[];
}

export function createProviders(
  classes: readonly ProviderClass[],
  deps: ProviderDeps,
  factories: Partial<Record<ProviderClass, ProviderFactory>> = PROVIDER_FACTORIES,
): Map<ProviderClass, LoadBalancerProvider> {
  const providers = new Map<ProviderClass, LoadBalancerProvider>();
  for (const providerClass of classes) {
    const factory = factories[providerClass];
    if (!factory) throw new Error(`provider ${providerClass} is not available in this build (available: ${availableProviders().join(', ')})`);
    providers.set(providerClass, factory({ ...deps, logger: deps.logger.child({ provider: providerClass }) }));
  }
  return providers;
}
