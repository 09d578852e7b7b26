/** The Alibaba Cloud SLB provider's registry entry: class, flags, settings, factory. */
import type { V1Service } from '@kubernetes/client-node';
import { parseDuration } from '../../kube/duration.js';
import { defineProvider, type FlagValues } from '../provider.js';
import type { GcMode } from './provider.js';
import { ALIYUN_CLASS } from './spec.js';

export interface AliyunSettings {
  regionId: string;
  /** host[:port] of the SLB endpoint; undefined = slb.<region>.aliyuncs.com. */
  endpoint: string | undefined;
  protocol: 'https' | 'http';
  clusterName: string;
  gc: GcMode;
  gcIntervalMs: number;
  requestTimeoutMs: number;
}

const REGION = /^[a-z]{2,}(-[a-z0-9]+)+$/;
const CLUSTER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;


export function parseAliyunSettings(values: FlagValues): { settings: AliyunSettings } | { problems: string[] } {
  const problems: string[] = [];
  const str = (name: string): string => {
    const value = values[name];
    return typeof value === 'string' ? value.trim() : '';
  };
  const regionId = str('aliyun-region');
  if (!REGION.test(regionId)) problems.push(`--aliyun-region=${regionId}: expected a region id such as cn-hangzhou (or set ALIBABA_CLOUD_REGION_ID)`);
  const clusterName = str('aliyun-cluster-name');
  if (!CLUSTER.test(clusterName)) problems.push(`--aliyun-cluster-name=${clusterName}: expected 1-63 characters of letters, digits, ".", "_" and "-"; it tags every CLB this controller owns`);
  let endpoint: string | undefined;
  let protocol: 'https' | 'http' = 'https';
  const rawEndpoint = str('aliyun-endpoint');
  if (rawEndpoint !== '') {
    const m = /^(?:(https?):\/\/)?([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?\/?$/.exec(rawEndpoint);
    if (!m) problems.push(`--aliyun-endpoint=${rawEndpoint}: expected [http(s)://]host[:port]`);
    else {
      protocol = m[1] === 'http' ? 'http' : 'https';
      endpoint = m[3] ? `${m[2] ?? ''}:${m[3]}` : m[2];
    }
  }
  const gc = str('aliyun-gc') || 'dry-run';
  if (gc !== 'off' && gc !== 'dry-run' && gc !== 'on') problems.push(`--aliyun-gc=${gc}: expected off, dry-run or on`);
  const gcIntervalMs = parseDuration(str('aliyun-gc-interval') || '30m');
  if (gcIntervalMs === undefined || gcIntervalMs < 60_000) problems.push(`--aliyun-gc-interval=${str('aliyun-gc-interval')}: expected a duration of at least 1m, such as 30m`);
  const requestTimeoutMs = parseDuration(str('aliyun-request-timeout') || '10s');
  if (requestTimeoutMs === undefined || requestTimeoutMs < 100) problems.push(`--aliyun-request-timeout=${str('aliyun-request-timeout')}: expected a duration such as 10s`);
  if (problems.length > 0) return { problems };
  return { settings: { regionId, endpoint, protocol, clusterName, gc: gc as GcMode, gcIntervalMs: gcIntervalMs ?? 0, requestTimeoutMs: requestTimeoutMs ?? 0 } };
}

export const aliyunProviderModule = defineProvider<AliyunSettings>({
  providerClass: ALIYUN_CLASS,
  description: 'Alibaba Cloud Classic Load Balancer (SLB API 2014-05-15), one CLB per Service',
  flags: {
    'aliyun-region': { type: 'string', env: 'ALIBABA_CLOUD_REGION_ID', description: 'region of the CLBs and the cluster nodes, e.g. cn-hangzhou' },
    'aliyun-cluster-name': { type: 'string', env: 'PORTICO_CLUSTER_NAME', description: 'cluster name written to the portico.dev/cluster tag of every CLB this controller owns' },
    'aliyun-endpoint': { type: 'string', description: 'SLB API endpoint [http(s)://]host[:port]; default slb.<region>.aliyuncs.com' },
    'aliyun-gc': { type: 'string', default: 'dry-run', description: 'orphan sweep of CLBs tagged for Services that no longer exist: off, dry-run (log only) or on' },
    'aliyun-gc-interval': { type: 'string', default: '30m', description: 'time between orphan sweeps' },
    'aliyun-request-timeout': { type: 'string', default: '10s', description: 'read timeout of one SLB API call' },
  },
  parseSettings: parseAliyunSettings,
  create: async (deps, settings) => {
    // The SDK costs a process about 70 MB, the provider's own code a fraction of one more: all
    // loaded only when this provider runs.
    const [{ OpenApiCaller, RetryingCaller }, { SlbClient }, { AliyunSlbProvider }] = await Promise.all([import('./transport.js'), import('./client.js'), import('./provider.js')]);
    const inner = new OpenApiCaller({
      regionId: settings.regionId,
      protocol: settings.protocol,
      readTimeoutMs: settings.requestTimeoutMs,
      ...(settings.endpoint !== undefined ? { endpoint: settings.endpoint } : {}),
    });
    const slb = new SlbClient(new RetryingCaller({ inner, clock: deps.clock, registry: deps.registry }), settings.regionId);
    return new AliyunSlbProvider({
      slb,
      clusterName: settings.clusterName,
      clock: deps.clock,
      logger: deps.logger,
      gc: { mode: settings.gc, intervalMs: settings.gcIntervalMs, services: deps.informers.informer<V1Service>('/api/v1/services') },
    });
  },
});
