/** Builds the Aliyun provider on the real openapi-core stack, pointed at the loopback SLB fake. */
import type { V1Node, V1Service } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { systemClock, type Clock } from '../../../src/kube/clock.js';
import type { ProviderContext } from '../../../src/providers/provider.js';
import { SlbClient } from '../../../src/providers/aliyun/client.js';
import { AliyunSlbProvider } from '../../../src/providers/aliyun/provider.js';
import { annotation } from '../../../src/providers/aliyun/spec.js';
import { OpenApiCaller, RetryingCaller, type RetryPolicy } from '../../../src/providers/aliyun/transport.js';
import { node, svc, type NodeOption, type ServiceOption } from '../../builders/service.js';
import { FAKE_ACCESS_KEY_ID, FAKE_ACCESS_KEY_SECRET, type FakeSlbServer } from '../../fakes/slb-server.js';

export const CLUSTER = 'test-cluster';

export interface Recorded {
  type: string;
  reason: string;
  message: string;
}

export function context(signal: AbortSignal = new AbortController().signal): ProviderContext & { recorded: Recorded[] } {
  const recorded: Recorded[] = [];
  return { signal, logger: pino({ level: 'silent' }), events: { record: (type, reason, message) => recorded.push({ type, reason, message }) }, recorded };
}

export interface Built {
  provider: AliyunSlbProvider;
  registry: Registry;
}

export function buildProvider(fake: FakeSlbServer, endpoint: string, options: { snapshotTtlMs?: number; retry?: RetryPolicy; clock?: Clock; cluster?: string } = {}): Built {
  const registry = new Registry();
  const inner = new OpenApiCaller({ regionId: fake.regionId, endpoint, protocol: 'http', accessKey: { id: FAKE_ACCESS_KEY_ID, secret: FAKE_ACCESS_KEY_SECRET } });
  const caller = new RetryingCaller({ inner, clock: options.clock ?? systemClock, registry, retry: options.retry ?? { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 } });
  const provider = new AliyunSlbProvider({
    slb: new SlbClient(caller, fake.regionId),
    clusterName: options.cluster ?? CLUSTER,
    clock: options.clock ?? systemClock,
    logger: pino({ level: 'silent' }),
    snapshotTtlMs: options.snapshotTtlMs ?? 0,
  });
  return { provider, registry };
}

export const withNodePorts = (...ports: { port: number; nodePort: number; protocol?: 'TCP' | 'UDP' }[]): ServiceOption => (s) => {
  s.spec = { ...s.spec, ports: ports.map((p) => ({ port: p.port, nodePort: p.nodePort, protocol: p.protocol ?? 'TCP' })) };
};
export const withAliyun = (suffix: string, value: string): ServiceOption => (s) => {
  s.metadata = { ...s.metadata, annotations: { ...s.metadata?.annotations, [annotation(suffix)]: value } };
};
export const withSourceRanges = (...ranges: string[]): ServiceOption => (s) => {
  s.spec = { ...s.spec, loadBalancerSourceRanges: ranges };
};
export function service(name: string, ...options: ServiceOption[]): V1Service {
  return svc(name, withNodePorts({ port: 80, nodePort: 30080 }), ...options);
}
export const withProviderID = (providerID: string | undefined): NodeOption => (n) => {
  n.spec = { ...n.spec, providerID };
};
/** Nodes `n0..n{count-1}` on instances `i-node0..`, alternating both providerID forms. */
export function nodes(count: number, from = 0): V1Node[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    return node(`n${i}`, withProviderID(i % 2 === 0 ? `cn-hangzhou.i-node${i}` : `alicloud://cn-hangzhou.i-node${i}`));
  });
}
export function backendsOf(list: V1Node[]): { nodes: V1Node[]; endpointSlices: [] } {
  return { nodes: list, endpointSlices: [] };
}
