/** The bare-metal provider's registry entry: class, flags, factory. */
import type { V1Namespace, V1Node, V1Service } from '@kubernetes/client-node';
import type { AddressPool } from '../../api/address-pool.js';
import { defineProvider } from '../provider.js';
import { L2_CLASS, L2Provider, parseExcluded, SERVICE_CIDRS_PATH, type L2Settings, type ServiceCIDR } from './provider.js';

export const l2ProviderModule = defineProvider<L2Settings>({
  providerClass: L2_CLASS,
  description: 'bare-metal addresses from AddressPools, announced by ARP/NDP from one elected node (portico speaker)',
  flags: {
    'l2-excluded-cidrs': {
      type: 'string',
      default: '',
      env: 'PORTICO_L2_EXCLUDED_CIDRS',
      description: 'comma-separated CIDRs or ranges never handed out, besides Service CIDRs, node addresses and node Pod CIDRs (found automatically); e.g. the Pod CIDR when nodes carry none',
    },
  },
  parseSettings: (values) => {
    const parsed = parseExcluded(typeof values['l2-excluded-cidrs'] === 'string' ? values['l2-excluded-cidrs'] : '');
    return 'problems' in parsed ? parsed : { settings: { excluded: parsed.excluded } };
  },
  create: (deps, settings) =>
    new L2Provider({
      client: deps.client,
      pools: deps.informers.informer<AddressPool>('/apis/portico.dev/v1alpha1/addresspools'),
      namespaces: deps.informers.informer<V1Namespace>('/api/v1/namespaces'),
      services: deps.informers.informer<V1Service>('/api/v1/services'),
      nodes: deps.informers.informer<V1Node>('/api/v1/nodes'),
      serviceCIDRs: deps.informers.informer<ServiceCIDR>(SERVICE_CIDRS_PATH),
      settings,
      events: deps.events,
      clock: deps.clock,
      logger: deps.logger,
    }),
});
