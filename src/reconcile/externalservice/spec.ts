/**
 * An ExternalService (or a Service adopted through its annotation) -> one normalized desired
 * state, or the problems that stop it. Pure.
 */
import type { V1Service } from '@kubernetes/client-node';
import type { ExternalService } from '../../api/external-service.js';
import type { DeepReadonly, SpecProblem } from '../../api/types.js';
import { canonicalIP, tryParseIP } from '../../ipam/ip.js';
import { parseDuration } from '../../kube/duration.js';

export const EXTERNAL_ENDPOINTS_ANNOTATION = 'portico.dev/external-endpoints';

export interface DesiredPort {
  name: string;
  port: number;
  targetPort: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  appProtocol?: string;
}

export type DesiredEndpoint =
  | { kind: 'address'; address: string; zone?: string; targetPort?: number; field: string }
  | { kind: 'hostname'; hostname: string; zone?: string; targetPort?: number; field: string };

export interface HealthSettings {
  protocol: 'TCP' | 'HTTP' | 'HTTPS';
  port: number;
  path: string;
  expectedCodes: readonly (readonly [number, number])[];
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
}

export interface ResolveSettings {
  minRefreshMs: number;
  maxRefreshMs: number;
  keepStaleMs: number;
}

export interface DesiredState {
  endpoints: DesiredEndpoint[];
  ports: DesiredPort[];
  headless: boolean;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  health: HealthSettings | undefined;
  resolve: ResolveSettings;
  publishEndpoints: boolean;
}

export const DEFAULT_RESOLVE: ResolveSettings = { minRefreshMs: 5_000, maxRefreshMs: 300_000, keepStaleMs: 600_000 };
const DEFAULT_INTERVAL_MS = 10_000;
const DEFAULT_TIMEOUT_MS = 2_000;
const MIN_INTERVAL_MS = 100;


/** `200`, `200-299`, `200,204,301-302` -> inclusive ranges. */
export function parseExpectedCodes(text: string): [number, number][] | undefined {
  const ranges: [number, number][] = [];
  for (const part of text.split(',')) {
    const m = /^\s*(\d{3})(?:-(\d{3}))?\s*$/.exec(part);
    if (!m?.[1]) return undefined;
    const lo = Number(m[1]);
    const hi = Number(m[2] ?? m[1]);
    if (lo < 100 || hi > 599 || lo > hi) return undefined;
    ranges.push([lo, hi]);
  }
  return ranges;
}

const HOSTNAME = /^(?=.{1,253}\.?$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*\.?$/;

export function isHostname(text: string): boolean {
  return HOSTNAME.test(text) && !/^[0-9.]+$/.test(text);
}

function duration(problems: SpecProblem[], field: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) {
    problems.push({ field, message: `${value.slice(0, 40)} is not a duration such as 500ms, 10s or 5m` });
    return fallback;
  }
  return ms;
}

/** The desired state of an ExternalService, or its problems (each naming the field). */
export function desiredFromExternalService(es: DeepReadonly<ExternalService>): { state: DesiredState } | { problems: SpecProblem[] } {
  const problems: SpecProblem[] = [];
  const spec = es.spec;
  const ports: DesiredPort[] = [];
  const portNames = new Set<string>();
  spec.ports.forEach((p, i) => {
    const name = p.name ?? '';
    if (spec.ports.length > 1 && !name) problems.push({ field: `spec.ports[${String(i)}].name`, message: 'required when there is more than one port' });
    if (portNames.has(name)) problems.push({ field: `spec.ports[${String(i)}].name`, message: `duplicate port name ${name || '(empty)'}` });
    portNames.add(name);
    ports.push({ name, port: p.port, targetPort: p.targetPort ?? p.port, protocol: p.protocol ?? 'TCP', ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) });
  });
  if (ports.length === 0) problems.push({ field: 'spec.ports', message: 'at least one port is required' });
  const endpoints: DesiredEndpoint[] = [];
  const seen = new Set<string>();
  spec.endpoints.forEach((e, i) => {
    const field = `spec.endpoints[${String(i)}]`;
    const zone = e.zone ? { zone: e.zone } : {};
    if ((e.address === undefined) === (e.hostname === undefined)) {
      problems.push({ field, message: 'set exactly one of address and hostname' });
    } else if (e.address !== undefined) {
      if (!tryParseIP(e.address)) {
        problems.push({ field: `${field}.address`, message: `${e.address.slice(0, 60)} is not an IPv4 or IPv6 address` });
        return;
      }
      const address = canonicalIP(e.address);
      if (seen.has(address)) return;
      seen.add(address);
      endpoints.push({ kind: 'address', address, field: `${field}.address`, ...zone });
    } else if (e.hostname !== undefined) {
      if (!isHostname(e.hostname)) {
        problems.push({ field: `${field}.hostname`, message: `${e.hostname.slice(0, 60)} is not a DNS name` });
        return;
      }
      const hostname = e.hostname.toLowerCase().replace(/\.$/, '');
      if (seen.has(hostname)) return;
      seen.add(hostname);
      endpoints.push({ kind: 'hostname', hostname, field: `${field}.hostname`, ...zone });
    }
  });
  if (endpoints.length === 0 && problems.length === 0) problems.push({ field: 'spec.endpoints', message: 'at least one endpoint is required' });
  let health: HealthSettings | undefined;
  const hc = spec.healthCheck;
  if (hc) {
    const intervalMs = duration(problems, 'spec.healthCheck.interval', hc.interval, DEFAULT_INTERVAL_MS);
    const timeoutMs = duration(problems, 'spec.healthCheck.timeout', hc.timeout, Math.min(DEFAULT_TIMEOUT_MS, intervalMs));
    if (intervalMs < MIN_INTERVAL_MS) problems.push({ field: 'spec.healthCheck.interval', message: `must be at least ${String(MIN_INTERVAL_MS)}ms` });
    if (timeoutMs > intervalMs) problems.push({ field: 'spec.healthCheck.timeout', message: 'must not exceed the interval' });
    const codes = parseExpectedCodes(hc.expectedCodes ?? '200-399');
    if (!codes) problems.push({ field: 'spec.healthCheck.expectedCodes', message: 'expected codes such as 200, 200-299 or 200,204,301-302' });
    health = {
      protocol: hc.protocol,
      port: hc.port ?? ports[0]?.targetPort ?? 0,
      path: hc.path ?? '/',
      expectedCodes: codes ?? [[200, 399]],
      intervalMs,
      timeoutMs,
      healthyThreshold: hc.healthyThreshold ?? 2,
      unhealthyThreshold: hc.unhealthyThreshold ?? 3,
    };
  }
  const r = spec.resolve ?? {};
  const resolve: ResolveSettings = {
    minRefreshMs: duration(problems, 'spec.resolve.minRefresh', r.minRefresh, DEFAULT_RESOLVE.minRefreshMs),
    maxRefreshMs: duration(problems, 'spec.resolve.maxRefresh', r.maxRefresh, DEFAULT_RESOLVE.maxRefreshMs),
    keepStaleMs: duration(problems, 'spec.resolve.keepStaleFor', r.keepStaleFor, DEFAULT_RESOLVE.keepStaleMs),
  };
  if (resolve.minRefreshMs > resolve.maxRefreshMs) problems.push({ field: 'spec.resolve.minRefresh', message: 'must not exceed maxRefresh' });
  if (problems.length > 0) return { problems };
  return {
    state: {
      endpoints,
      ports,
      headless: spec.service?.type === 'Headless',
      labels: { ...spec.service?.labels },
      annotations: { ...spec.service?.annotations },
      health,
      resolve,
      publishEndpoints: spec.publishEndpoints !== false,
    },
  };
}

/** `ip`, `ip:port`, `[v6]:port`, `host`, `host:port` -> one endpoint; a port needs a one-port Service. */
function parseAnnotationEntry(entry: string, field: string, onePort: boolean): DesiredEndpoint | SpecProblem {
  let host = entry;
  let port: number | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracket?.[1]) {
    host = bracket[1];
    if (bracket[2]) port = Number(bracket[2]);
  } else if (!tryParseIP(entry)) {
    const m = /^([^:]+):(\d+)$/.exec(entry);
    if (m?.[1] && m[2]) {
      host = m[1];
      port = Number(m[2]);
    }
  }
  if (port !== undefined && (port < 1 || port > 65535)) return { field, message: `${entry.slice(0, 60)}: port out of range` };
  if (port !== undefined && !onePort) return { field, message: `${entry.slice(0, 60)}: a per-endpoint port needs a Service with exactly one port` };
  const targetPort = port !== undefined ? { targetPort: port } : {};
  if (tryParseIP(host)) return { kind: 'address', address: canonicalIP(host), field, ...targetPort };
  if (isHostname(host)) return { kind: 'hostname', hostname: host.toLowerCase().replace(/\.$/, ''), field, ...targetPort };
  return { field, message: `${entry.slice(0, 60)} is neither an address nor a DNS name` };
}

/** The desired state of a selectorless Service adopted through `portico.dev/external-endpoints`. */
export function desiredFromAnnotatedService(service: DeepReadonly<V1Service>): { state: DesiredState } | { problems: SpecProblem[] } {
  const field = `metadata.annotations[${EXTERNAL_ENDPOINTS_ANNOTATION}]`;
  const text = service.metadata?.annotations?.[EXTERNAL_ENDPOINTS_ANNOTATION] ?? '';
  const problems: SpecProblem[] = [];
  if (service.spec?.selector && Object.keys(service.spec.selector).length > 0) problems.push({ field: 'spec.selector', message: 'a Service with a selector has its endpoints managed by Kubernetes; remove the selector or the annotation' });
  const ports: DesiredPort[] = (service.spec?.ports ?? []).map((p) => ({
    name: p.name ?? '',
    port: p.port,
    targetPort: typeof p.targetPort === 'number' ? p.targetPort : p.port,
    protocol: (p.protocol ?? 'TCP') as DesiredPort['protocol'],
    ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
  }));
  if (ports.length === 0) problems.push({ field: 'spec.ports', message: 'the Service needs at least one port' });
  const endpoints: DesiredEndpoint[] = [];
  const entries = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (entries.length === 0) problems.push({ field, message: 'expected a comma list of ip[:port] or hostnames' });
  for (const entry of entries.slice(0, 1000)) {
    const parsed = parseAnnotationEntry(entry, field, ports.length === 1);
    if ('message' in parsed) problems.push(parsed);
    else endpoints.push(parsed);
  }
  if (problems.length > 0) return { problems };
  return {
    state: { endpoints, ports, headless: service.spec?.clusterIP === 'None', labels: {}, annotations: {}, health: undefined, resolve: DEFAULT_RESOLVE, publishEndpoints: true },
  };
}
