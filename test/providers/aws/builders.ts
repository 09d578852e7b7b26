/** Builders for the AWS provider's tables: awsSvc('web', ports({ port: 80, nodePort: 30080 }), annotate(...)). */
import type { V1EndpointSlice, V1Node, V1Service, V1ServicePort } from '@kubernetes/client-node';
import { createLogger } from '../../../src/kube/logger.js';
import type { Backends, ProviderContext } from '../../../src/providers/provider.js';
import { ANNOTATION_PREFIX } from '../../../src/providers/aws/desired.js';

export type Option = (s: V1Service) => void;

export function awsSvc(name: string, ...options: Option[]): V1Service {
  const s: V1Service = {
    metadata: { name, namespace: 'default', uid: `uid-${name}` },
    spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/aws-nlb', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080, targetPort: 8080 }] },
  };
  for (const o of options) o(s);
  return s;
}

export const ports = (...list: V1ServicePort[]): Option => (s) => {
  s.spec = { ...s.spec, ports: list };
};
/** `annotate('scheme', 'internet-facing')` sets service.beta.kubernetes.io/aws-load-balancer-scheme. */
export const annotate = (suffix: string, value: string): Option => (s) => {
  const key = suffix.includes('/') ? suffix : `${ANNOTATION_PREFIX}${suffix}`;
  s.metadata = { ...s.metadata, annotations: { ...s.metadata?.annotations, [key]: value } };
};
export const spec = (patch: Partial<NonNullable<V1Service['spec']>>): Option => (s) => {
  s.spec = { ...s.spec, ...patch };
};
export const inNamespace = (namespace: string): Option => (s) => {
  s.metadata = { ...s.metadata, namespace };
};

export function node(name: string, instanceId: string, zone = 'us-east-1a'): V1Node {
  return { metadata: { name }, spec: { providerID: `aws:///${zone}/${instanceId}` } };
}

export function slice(service: string, portName: string, port: number, ...addresses: [string, boolean?][]): V1EndpointSlice {
  return {
    addressType: 'IPv4',
    metadata: { name: `${service}-abc`, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
    ports: [{ name: portName, port, protocol: 'TCP' }],
    endpoints: addresses.map(([ip, ready]) => ({ addresses: [ip], conditions: { ready: ready ?? true } })),
  };
}

export function backends(nodes: V1Node[] = [], endpointSlices: V1EndpointSlice[] = []): Backends {
  return { nodes, endpointSlices };
}

export interface RecordedEvent {
  type: string;
  reason: string;
  message: string;
}

export function testContext(signal: AbortSignal = new AbortController().signal): ProviderContext & { recorded: RecordedEvent[] } {
  const recorded: RecordedEvent[] = [];
  return { signal, logger: createLogger('silent'), events: { record: (type, reason, message) => recorded.push({ type, reason, message }) }, recorded };
}
