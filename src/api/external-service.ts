import type { Condition, ObjectMeta } from './types.js';

export const EXTERNAL_SERVICE_KIND = 'ExternalService';
export const EXTERNAL_SERVICE_PLURAL = 'externalservices';

/**
 * A namespaced stand-in for "selectorless Service + hand-written Endpoints": Portico creates a
 * selectorless Service of the same name and writes its EndpointSlices (and, by default, the v1
 * Endpoints object) from `spec.endpoints`, resolving hostnames and health-checking addresses.
 */
export interface ExternalService {
  apiVersion: 'portico.dev/v1alpha1';
  kind: 'ExternalService';
  metadata: ObjectMeta;
  spec: ExternalServiceSpec;
  status?: ExternalServiceStatus;
}

export interface ExternalServiceSpec {
  /** IPv4/IPv6 addresses and/or hostnames (resolved to A/AAAA records). */
  endpoints: ExternalEndpoint[];
  ports: ExternalServicePort[];
  service?: ExternalServiceTemplate;
  healthCheck?: ExternalHealthCheck;
  resolve?: ExternalResolve;
  /** Also maintain the v1 Endpoints object of the same name (for consumers that still read it). Default true. */
  publishEndpoints?: boolean;
}

export interface ExternalEndpoint {
  /** One IPv4 or IPv6 address. Exactly one of address and hostname. */
  address?: string;
  /** A DNS name resolved to A/AAAA records, re-resolved as their TTLs expire. */
  hostname?: string;
  /** Copied into the EndpointSlice endpoint's `zone` (topology-aware routing). */
  zone?: string;
  /** A relative weight hint (1-100); EndpointSlices cannot carry it, so it is informational for now. */
  weight?: number;
}

export interface ExternalServicePort {
  /** Required when there is more than one port; the Service and EndpointSlice ports match by name. */
  name?: string;
  /** The port in-cluster clients connect to (the Service port). */
  port: number;
  /** The port on the external endpoints. Default: `port`. */
  targetPort?: number;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  appProtocol?: string;
}

export interface ExternalServiceTemplate {
  /** ClusterIP (default) or Headless (clusterIP: None, DNS returns the external addresses). */
  type?: 'ClusterIP' | 'Headless';
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface ExternalHealthCheck {
  protocol: 'TCP' | 'HTTP' | 'HTTPS';
  /** Port on the endpoint to probe. Default: the first port's targetPort. */
  port?: number;
  /** HTTP(S) request path. Default `/`. */
  path?: string;
  /** HTTP(S) status codes counted healthy: `200`, `200-299`, `200,204,301-302`. Default `200-399`. */
  expectedCodes?: string;
  /** Between probes of one address. Default `10s`. */
  interval?: string;
  /** One probe's deadline. Default `2s`; at most the interval. */
  timeout?: string;
  /** Consecutive successes before an unhealthy address is ready again. Default 2. */
  healthyThreshold?: number;
  /** Consecutive failures before a healthy address is marked not ready. Default 3. */
  unhealthyThreshold?: number;
}

export interface ExternalResolve {
  /** Re-resolve no sooner than this, whatever the TTL. Default `5s`. */
  minRefresh?: string;
  /** Re-resolve at least this often, whatever the TTL. Default `5m`. */
  maxRefresh?: string;
  /** After NXDOMAIN/SERVFAIL/timeouts, keep publishing the last good answer for this long. Default `10m`. */
  keepStaleFor?: string;
}

export interface ExternalServiceStatus {
  observedGeneration?: number;
  /** Endpoints published ready, and all published, e.g. `2/3` (also as numbers below). */
  endpoints?: string;
  readyEndpoints?: number;
  totalEndpoints?: number;
  /** Every address published, with where it came from and whether it is ready. */
  addresses?: ExternalAddressStatus[];
  conditions?: Condition[];
}

export interface ExternalAddressStatus {
  address: string;
  /** The hostname it was resolved from; absent for literal addresses. */
  hostname?: string;
  ready: boolean;
}
