/** Builders for ExternalService tests: `es('db', withAddress('198.51.100.10'), withPort(3306))`. */
import type { V1OwnerReference } from '@kubernetes/client-node';
import type { ExternalService, ExternalServiceSpec } from '../../../src/api/external-service.js';
import type { PublishedEndpoint } from '../../../src/reconcile/externalservice/planner.js';
import type { DesiredPort, HealthSettings } from '../../../src/reconcile/externalservice/spec.js';

type Change = (es: ExternalService) => void;

export function es(name: string, ...changes: Change[]): ExternalService {
  const object: ExternalService = { apiVersion: 'portico.dev/v1alpha1', kind: 'ExternalService', metadata: { name, namespace: 'team', uid: `uid-${name}`, generation: 1 }, spec: { endpoints: [], ports: [] } };
  for (const change of changes) change(object);
  return object;
}

export const withAddress = (address: string, zone?: string): Change => (o) => o.spec.endpoints.push({ address, ...(zone ? { zone } : {}) });
export const withHostname = (hostname: string): Change => (o) => o.spec.endpoints.push({ hostname });
export const withPort = (port: number, extra: Partial<ExternalServiceSpec['ports'][number]> = {}): Change => (o) => o.spec.ports.push({ port, ...extra });
export const withSpec = (spec: Partial<ExternalServiceSpec>): Change => (o) => Object.assign(o.spec, spec);

export const OWNER: V1OwnerReference = { apiVersion: 'portico.dev/v1alpha1', kind: 'ExternalService', name: 'db', uid: 'uid-db', controller: true };

export function port(p: number, name = '', targetPort = p): DesiredPort {
  return { name, port: p, targetPort, protocol: 'TCP' };
}

export function ep(address: string, ready = true, extra: Partial<PublishedEndpoint> = {}): PublishedEndpoint {
  return { address, ready, ...extra };
}

export const HEALTH: HealthSettings = { protocol: 'TCP', port: 80, path: '/', expectedCodes: [[200, 399]], intervalMs: 1000, timeoutMs: 200, healthyThreshold: 2, unhealthyThreshold: 3 };
