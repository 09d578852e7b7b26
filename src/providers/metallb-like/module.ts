/** The bare-metal provider's registry entry: class, flags, factory. */
import type { V1Namespace, V1Service } from '@kubernetes/client-node';
import type { AddressPool } from '../../api/address-pool.js';
import { defineProvider } from '../provider.js';
import { L2_CLASS, L2Provider } from './provider.js';

export const l2ProviderModule = defineProvider<Record<string, never>>({
  providerClass: L2_CLASS,
  description: 'bare-metal addresses from AddressPools, announced by ARP/NDP from one elected node (portico speaker)',
  flags: {},
  parseSettings: () => ({ settings: {} }),
  create: (deps) =>
    new L2Provider({
      client: deps.client,
      pools: deps.informers.informer<AddressPool>('/apis/portico.dev/v1alpha1/addresspools'),
      namespaces: deps.informers.informer<V1Namespace>('/api/v1/namespaces'),
      services: deps.informers.informer<V1Service>('/api/v1/services'),
      events: deps.events,
      clock: deps.clock,
      logger: deps.logger,
    }),
});
