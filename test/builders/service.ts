/** Builders for Services in table tests: svc('web', withClass('portico.dev/l2'), withPorts(80)). */
import type { V1Node, V1Service } from '@kubernetes/client-node';
import { FINALIZER, PROVISIONED_BY_ANNOTATION } from '../../src/reconcile/loadbalancer/planner.js';

export type ServiceOption = (service: V1Service) => void;

export function svc(name: string, ...options: ServiceOption[]): V1Service {
  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', uid: `uid-${name}`, generation: 1, resourceVersion: '1', creationTimestamp: new Date('2026-01-01T00:00:00Z') },
    spec: { type: 'LoadBalancer', ports: [{ port: 80, protocol: 'TCP' }], ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack' },
    status: {},
  };
  for (const option of options) option(service);
  return service;
}

/** A LoadBalancer Service with nothing else set (no ports, no families); key is "namespace/name". */
export function bareSvc(key: string, ...options: ServiceOption[]): V1Service {
  const [namespace, name] = key.split('/');
  const service: V1Service = { metadata: { namespace, name }, spec: { type: 'LoadBalancer' } };
  for (const option of options) option(service);
  return service;
}

/** Any spec fields, including malformed ones. */
export const withSpec = (patch: Record<string, unknown>): ServiceOption => (s) => {
  s.spec = { ...s.spec, ...patch };
};
/** Ports exactly as given (protocol may be missing or invalid). */
export const withServicePorts = (...ports: { port: number; protocol?: string }[]): ServiceOption => (s) => {
  s.spec = { ...s.spec, ports };
};
export const withNamespace = (namespace: string): ServiceOption => (s) => {
  s.metadata = { ...s.metadata, namespace };
};
export const withClass = (loadBalancerClass: string | undefined): ServiceOption => (s) => {
  s.spec = { ...s.spec, loadBalancerClass };
};
export const withType = (type: string): ServiceOption => (s) => {
  s.spec = { ...s.spec, type };
};
export const withPorts = (...ports: (number | { port: number; protocol: 'TCP' | 'UDP' | 'SCTP' })[]): ServiceOption => (s) => {
  s.spec = { ...s.spec, ports: ports.map((p) => (typeof p === 'number' ? { port: p, protocol: 'TCP' } : p)) };
};
export const withAnnotation = (key: string, value: string): ServiceOption => (s) => {
  s.metadata = { ...s.metadata, annotations: { ...s.metadata?.annotations, [key]: value } };
};
export const withLabels = (labels: Record<string, string>): ServiceOption => (s) => {
  s.metadata = { ...s.metadata, labels: { ...s.metadata?.labels, ...labels } };
};
export const withFamilies = (policy: 'SingleStack' | 'PreferDualStack' | 'RequireDualStack', ...families: ('IPv4' | 'IPv6')[]): ServiceOption => (s) => {
  s.spec = { ...s.spec, ipFamilyPolicy: policy, ipFamilies: families };
};
/** Marks the Service as provisioned by `provider`: our finalizer plus the provisioned-by annotation. */
export const provisionedWith = (provider: string): ServiceOption => (s) => {
  s.metadata = {
    ...s.metadata,
    finalizers: [...(s.metadata?.finalizers ?? []), FINALIZER],
    annotations: { ...s.metadata?.annotations, [PROVISIONED_BY_ANNOTATION]: provider },
  };
};
export const withFinalizer = (finalizer: string): ServiceOption => (s) => {
  s.metadata = { ...s.metadata, finalizers: [...(s.metadata?.finalizers ?? []), finalizer] };
};
export const deleting: ServiceOption = (s) => {
  s.metadata = { ...s.metadata, deletionTimestamp: new Date('2026-01-02T00:00:00Z') };
};
export const withIngress = (...ips: string[]): ServiceOption => (s) => {
  s.status = { ...s.status, loadBalancer: { ingress: ips.map((ip) => ({ ip })) } };
};
export const withCondition = (status: 'True' | 'False', reason: string, lastTransitionTime = '2026-01-01T00:00:00.000Z'): ServiceOption => (s) => {
  s.status = { ...s.status, conditions: [{ type: 'LoadBalancerReady', status, reason, message: '', lastTransitionTime: new Date(lastTransitionTime) }] };
};

export type NodeOption = (node: V1Node) => void;

export function node(name: string, ...options: NodeOption[]): V1Node {
  const n: V1Node = { metadata: { name, labels: {} }, spec: {}, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] } };
  for (const option of options) option(n);
  return n;
}
export const withNodeLabel = (key: string, value: string): NodeOption => (n) => {
  n.metadata = { ...n.metadata, labels: { ...n.metadata?.labels, [key]: value } };
};
export const withTaint = (key: string): NodeOption => (n) => {
  n.spec = { ...n.spec, taints: [...(n.spec?.taints ?? []), { key, effect: 'NoSchedule' }] };
};
export const nodeDeleting: NodeOption = (n) => {
  n.metadata = { ...n.metadata, deletionTimestamp: new Date('2026-01-02T00:00:00Z') };
};
export const withAddress = (address: string): NodeOption => (n) => {
  n.status = { addresses: [{ type: 'InternalIP', address }] };
};
