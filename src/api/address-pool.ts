import type { Condition, LabelSelector, ObjectMeta } from './types.js';

export const ADDRESS_POOL_KIND = 'AddressPool';
export const ADDRESS_POOL_PLURAL = 'addresspools';

/**
 * A cluster-scoped pool of addresses the bare-metal provider (`portico.dev/l2`) hands to
 * LoadBalancer Services and announces with ARP/NDP.
 */
export interface AddressPool {
  apiVersion: 'portico.dev/v1alpha1';
  kind: 'AddressPool';
  metadata: ObjectMeta;
  spec: AddressPoolSpec;
  status?: AddressPoolStatus;
}

export interface AddressPoolSpec {
  /** CIDRs (`192.0.2.0/28`, `2001:db8::/120`) and inclusive ranges (`192.0.2.10-192.0.2.20`). */
  addresses: string[];
  /** When false, only Services that name this pool or request one of its addresses get an address from it. Default true. */
  autoAssign?: boolean;
  /** Skip IPv4 addresses ending in .0 and .255, which some clients treat as broadcast. Default false. */
  avoidBuggyIPs?: boolean;
  /**
   * Also hand out special-purpose addresses (unspecified, loopback, link-local, multicast,
   * broadcast) and the network/broadcast address of CIDR entries. Default false. The cluster's
   * Service and Pod CIDRs and node addresses are never handed out.
   */
  allowSpecialAddresses?: boolean;
  allocation?: AddressPoolAllocation;
  l2?: AddressPoolL2;
}

export interface AddressPoolAllocation {
  /** Lower numbers are tried first; pools without a priority come after all pools with one. */
  priority?: number;
  /** Only Services in these namespaces may get addresses from this pool. */
  namespaces?: string[];
  /** Only Services in namespaces matching this selector may get addresses from this pool. */
  namespaceSelector?: LabelSelector;
  /** Only Services matching this selector may get addresses from this pool. */
  serviceSelector?: LabelSelector;
  /** Let Services of different namespaces share an address (same sharing key). Default false. */
  crossNamespaceSharing?: boolean;
}

export interface AddressPoolL2 {
  /** Announce only on these node interfaces; empty means every interface. */
  interfaces?: string[];
  /** Only nodes matching this selector may announce this pool's addresses. */
  nodeSelector?: LabelSelector;
}

export interface AddressPoolStatus {
  assignedIPv4?: number;
  assignedIPv6?: number;
  /** Capped at Number.MAX_SAFE_INTEGER for very large IPv6 pools. */
  availableIPv4?: number;
  availableIPv6?: number;
  observedGeneration?: number;
  conditions?: Condition[];
  /**
   * The last spec that was valid (JSON), kept while the current one is invalid, so that a restarted or
   * new leader keeps the addresses the pool gave out (an invalid edit takes nothing away).
   */
  lastValidSpec?: string;
}
