/** The AWS NLB provider's registry entry: flags (prefix `aws-`), settings, factory. */
import type { V1Service } from '@kubernetes/client-node';
import { Counter } from '../../kube/prom.js';
import { parseDuration } from '../../kube/duration.js';
import { metric } from '../../kube/metrics.js';
import { defineProvider, type FlagValues, type ProviderModule } from '../provider.js';
import type { AwsApi } from './api.js';
import { AWS_NLB_CLASS } from './desired.js';

export interface AwsSettings {
  region: string | undefined;
  endpoint: string | undefined;
  clusterName: string;
  inventoryTtlMs: number;
  deepVerifyIntervalMs: number;
  /** 0: no garbage collection. */
  gcIntervalMs: number;
  gcDryRun: boolean;
  externalManagedTags: string[];
}


const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function parseAwsSettings(values: FlagValues): { settings: AwsSettings } | { problems: string[] } {
  const problems: string[] = [];
  const str = (name: string): string | undefined => {
    const v = values[name];
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
  };
  const duration = (name: string, fallback: number): number => {
    const raw = str(name);
    if (raw === undefined) return fallback;
    const ms = parseDuration(raw, { allowZero: true });
    if (ms === undefined) {
      problems.push(`--${name}=${raw}: expected a duration like 30s, 10m or 1h`);
      return fallback;
    }
    return ms;
  };
  const clusterName = str('aws-cluster-name');
  if (clusterName === undefined) problems.push('--aws-cluster-name: required (it scopes every tag Portico writes, so two clusters in one account never touch each other\'s balancers)');
  else if (!CLUSTER_NAME.test(clusterName)) problems.push(`--aws-cluster-name=${clusterName}: letters, digits, '.', '_' and '-' only, at most 100`);
  const endpoint = str('aws-endpoint');
  if (endpoint !== undefined && !/^https?:\/\/[^\s]+$/.test(endpoint)) problems.push(`--aws-endpoint=${endpoint}: expected an http(s) URL`);
  const settings: AwsSettings = {
    region: str('aws-region'),
    endpoint,
    clusterName: clusterName ?? '',
    inventoryTtlMs: duration('aws-inventory-ttl', 60_000),
    deepVerifyIntervalMs: duration('aws-deep-verify-interval', 3_600_000),
    gcIntervalMs: duration('aws-gc-interval', 0),
    gcDryRun: values['aws-gc-dry-run'] === true,
    externalManagedTags: (str('aws-external-managed-tags') ?? '').split(',').map((t) => t.trim()).filter(Boolean),
  };
  return problems.length > 0 ? { problems } : { settings };
}

export interface AwsModuleOptions {
  /** Wraps the raw SDK seam (tests inject faults here, below the guard's retries). */
  wrapApi?: (api: AwsApi) => AwsApi;
}

export const awsProviderModule = awsModule();

export function awsModule(options: AwsModuleOptions = {}): ProviderModule {
  return defineProvider<AwsSettings>({
    providerClass: AWS_NLB_CLASS,
    description: 'AWS Network Load Balancers through the ELBv2 API (credentials: the AWS SDK default chain)',
    flags: {
      'aws-cluster-name': { type: 'string', env: 'PORTICO_AWS_CLUSTER_NAME', description: 'this cluster\'s name, written into the portico.dev/cluster tag of everything created (required)' },
      'aws-region': { type: 'string', env: 'AWS_REGION', description: 'AWS region; unset: AWS_DEFAULT_REGION, then the instance metadata service' },
      'aws-endpoint': { type: 'string', env: 'PORTICO_AWS_ENDPOINT', description: 'endpoint URL for the ELBv2 and EC2 APIs (tests and the demo point it at moto)' },
      'aws-inventory-ttl': { type: 'string', default: '60s', description: 'how old the shared list of our NLBs may be for a routine re-ensure' },
      'aws-deep-verify-interval': { type: 'string', default: '1h', description: 'how often each NLB is inspected in full (listeners, target groups, targets, attributes) even when its spec hash matches' },
      'aws-gc-interval': { type: 'string', default: '0', description: 'how often to delete NLBs, target groups and security groups tagged with this cluster whose Service no longer exists; 0: never' },
      'aws-external-managed-tags': { type: 'string', description: 'comma-separated tag keys other tools manage on Portico\'s resources: never removed (all other tags Portico did not ask for are)' },
      'aws-gc-dry-run': { type: 'boolean', default: false, description: 'garbage collection only logs what it would delete' },
    },
    parseSettings: parseAwsSettings,
    create: async (deps, settings) => {
      // The SDK clients cost a process about 100 MB, the provider's own code a fraction of one
      // more: all loaded only when this provider runs.
      const [{ sdkApi }, { guardApi }, { AwsNlbProvider }] = await Promise.all([import('./sdk.js'), import('./guard.js'), import('./provider.js')]);
      const name = 'portico_aws_api_calls_total';
      const calls = metric(
        deps.registry,
        name,
        Counter,
        () => new Counter({ name, help: 'AWS API calls by operation and outcome (each retry counts)', labelNames: ['operation', 'outcome'] as const, registers: [deps.registry] }),
      );
      const raw = sdkApi({ region: settings.region, endpoint: settings.endpoint });
      const api = guardApi(options.wrapApi?.(raw) ?? raw, {
        clock: deps.clock,
        onCall: (operation, outcome) => calls.inc({ operation, outcome }),
      });
      return new AwsNlbProvider({
        api,
        clusterName: settings.clusterName,
        clock: deps.clock,
        logger: deps.logger,
        inventoryTtlMs: settings.inventoryTtlMs,
        deepVerifyIntervalMs: settings.deepVerifyIntervalMs,
        externalTagKeys: settings.externalManagedTags,
        gc: { services: deps.informers.informer<V1Service>('/api/v1/services'), intervalMs: settings.gcIntervalMs, dryRun: settings.gcDryRun },
      });
    },
  });
}
