import type { AddressPool } from '../../src/api/address-pool.js';
import type { LabelSelector } from '../../src/api/types.js';
import type { AllocationRequest, IPFamilyPolicy, Protocol } from '../../src/ipam/allocator.js';
import type { IPFamily } from '../../src/ipam/ip.js';
import { isParsedPool, parsePool } from '../../src/ipam/pool.js';
import type { ParsedPool } from '../../src/ipam/pool.js';

// --- AddressPool ---

type PoolOption = (pool: AddressPool) => void;

/**
 * A pool for allocator tables. These tables are about order, scoping and sharing, and write
 * pools as whole CIDRs, so they opt in to special and network/broadcast addresses; the
 * reservation tables use `withDefaultReservations` to test the default.
 */
export function pool(name: string, ...options: PoolOption[]): AddressPool {
  const result: AddressPool = {
    apiVersion: 'portico.dev/v1alpha1',
    kind: 'AddressPool',
    metadata: { name },
    spec: { addresses: [], allowSpecialAddresses: true },
  };
  for (const option of options) option(result);
  return result;
}

export const withAddresses =
  (...addresses: string[]): PoolOption =>
  (p) => {
    p.spec.addresses.push(...addresses);
  };

export const withNamespaces =
  (...namespaces: string[]): PoolOption =>
  (p) => {
    p.spec.allocation = { ...p.spec.allocation, namespaces };
  };

export const withNamespaceSelector =
  (namespaceSelector: LabelSelector): PoolOption =>
  (p) => {
    p.spec.allocation = { ...p.spec.allocation, namespaceSelector };
  };

export const withServiceSelector =
  (serviceSelector: LabelSelector): PoolOption =>
  (p) => {
    p.spec.allocation = { ...p.spec.allocation, serviceSelector };
  };

export const withPriority =
  (priority: number): PoolOption =>
  (p) => {
    p.spec.allocation = { ...p.spec.allocation, priority };
  };

export const withAutoAssign =
  (autoAssign: boolean): PoolOption =>
  (p) => {
    p.spec.autoAssign = autoAssign;
  };

/** The production default: special-purpose addresses and CIDR edges are never handed out. */
export const withDefaultReservations: PoolOption = (p) => {
  delete p.spec.allowSpecialAddresses;
};

export const withCrossNamespaceSharing: PoolOption = (p) => {
  p.spec.allocation = { ...p.spec.allocation, crossNamespaceSharing: true };
};

export const withAvoidBuggyIPs: PoolOption = (p) => {
  p.spec.avoidBuggyIPs = true;
};

/** Sets any spec field, including malformed values, to test validation. */
export const withRawSpec =
  (patch: Record<string, unknown>): PoolOption =>
  (p) => {
    Object.assign(p.spec, patch);
  };

/** A pool that must parse; the test fails loudly if it does not. */
export function parsed(name: string, ...options: PoolOption[]): ParsedPool {
  const result = parsePool(pool(name, ...options));
  if (!isParsedPool(result)) throw new Error(`pool ${name} did not parse: ${JSON.stringify(result.problems)}`);
  return result;
}

// --- AllocationRequest ---

type RequestOption = (req: AllocationRequest) => AllocationRequest;

/** key is "namespace/name". */
export function req(key: string, ...options: RequestOption[]): AllocationRequest {
  const [namespace = ''] = key.split('/');
  let result: AllocationRequest = {
    key,
    namespace,
    namespaceLabels: { 'kubernetes.io/metadata.name': namespace },
    serviceLabels: {},
    ipFamilies: ['IPv4'],
    ipFamilyPolicy: 'SingleStack',
    requestedIPs: [],
    requestedPool: undefined,
    sharingKey: undefined,
    ports: [],
    backendKey: '',
  };
  for (const option of options) result = option(result);
  return result;
}

/** Ports as 80 (TCP) or '53/UDP'. */
export const withPorts =
  (...ports: (number | `${number}/${Protocol}`)[]): RequestOption =>
  (r) => ({
    ...r,
    ports: ports.map((p) => {
      if (typeof p === 'number') return { port: p, protocol: 'TCP' as const };
      const [port = '0', protocol = 'TCP'] = p.split('/');
      return { port: Number(port), protocol: protocol as Protocol };
    }),
  });

export const withSharingKey =
  (sharingKey: string): RequestOption =>
  (r) => ({ ...r, sharingKey });

export const withIPs =
  (...requestedIPs: string[]): RequestOption =>
  (r) => ({ ...r, requestedIPs });

export const withPool =
  (requestedPool: string): RequestOption =>
  (r) => ({ ...r, requestedPool });

export const withFamilies =
  (ipFamilyPolicy: IPFamilyPolicy, ...ipFamilies: IPFamily[]): RequestOption =>
  (r) => ({ ...r, ipFamilyPolicy, ipFamilies });

export const withNamespaceLabels =
  (labels: Record<string, string>): RequestOption =>
  (r) => ({ ...r, namespaceLabels: { ...r.namespaceLabels, ...labels } });

export const withServiceLabels =
  (serviceLabels: Record<string, string>): RequestOption =>
  (r) => ({ ...r, serviceLabels });

export const withBackendKey =
  (backendKey: string): RequestOption =>
  (r) => ({ ...r, backendKey });
