/**
 * Flags -> one typed Config. Bad flags are reported all at once, naming the flag. Each provider
 * brings its own flags and parses them in its module (src/providers/registry.ts).
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import type { LevelWithSilent } from 'pino';
import { parseDuration } from '../kube/duration.js';
import { PROVIDER_MODULES, providerModule, type FlagValues, type ProviderFlag, type ProviderModule } from '../providers/registry.js';
import type { ProviderClass } from '../providers/provider.js';
import { EXTERNAL_SERVICE_FLAGS, parseExternalServiceFlags, type ExternalServiceSettings } from '../reconcile/externalservice/flags.js';

export interface ControllerConfig {
  kubeconfig: string | undefined;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  metricsAddr: string;
  healthAddr: string;
  logLevel: LevelWithSilent;
  providers: ProviderClass[];
  /** Each enabled provider's settings, as its module parsed them. */
  providerSettings: ReadonlyMap<ProviderClass, unknown>;
  defaultClass: ProviderClass | undefined;
  workers: number;
  resyncPeriodMs: number;
  /** Quiet time after the leader's work before the heap is compacted; 0 leaves it to V8. */
  idleCompactionMs: number;
  /** Set when --external-services is on. */
  externalServices: ExternalServiceSettings | undefined;
}

export class ConfigError extends Error {}

export interface FlagSpec {
  type: 'string' | 'boolean';
  default?: string | boolean;
  description: string;
  env?: string;
}

export const CONTROLLER_FLAGS = {
  kubeconfig: { type: 'string', description: 'path to a kubeconfig (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)' },
  providers: { type: 'string', default: PROVIDER_MODULES.filter((m) => m.enabledByDefault === true).map((m) => m.providerClass).join(','), description: 'comma-separated load-balancer classes to run' },
  'default-class': { type: 'string', description: 'class for LoadBalancer Services without spec.loadBalancerClass (one of --providers); unset: leave them to others' },
  workers: { type: 'string', default: '4', description: 'concurrent reconciles (1-256)' },
  'resync-period': { type: 'string', default: '10m', description: 're-ensure every Service this often (±10% jitter) to correct drift' },
  'leader-elect': { type: 'boolean', default: false, description: 'take a coordination.k8s.io/v1 Lease before reconciling (run 2+ replicas with this)' },
  'leader-elect-namespace': { type: 'string', default: 'portico-system', description: 'namespace of the Lease' },
  'leader-elect-name': { type: 'string', default: 'portico-controller', description: 'name of the Lease' },
  'leader-elect-identity': { type: 'string', description: "this candidate's identity (default: $POD_NAME, else hostname-pid)" },
  'leader-elect-lease-duration': { type: 'string', default: '15s', description: 'how long standbys wait after the Lease last changed before taking it (whole seconds)' },
  'leader-elect-renew-deadline': { type: 'string', default: '10s', description: 'the leader stops at once if it has not renewed for this long' },
  'leader-elect-retry-period': { type: 'string', default: '2s', description: 'between attempts to take the Lease (plus jitter) and between renewals after a failed one; a successful renewal waits half the renew deadline' },
  'metrics-addr': { type: 'string', default: ':8080', description: 'address for /metrics; 0 disables' },
  'health-addr': { type: 'string', default: ':8081', description: 'address for /healthz and /readyz; 0 disables' },
  'idle-compaction': { type: 'string', default: '2s', description: 'once the work has been quiet this long after a burst, compact the heap and return the memory at once (Node.js 22+; V8 would do it 30-50 s later); 0 leaves it to V8' },
  'log-level': { type: 'string', default: 'info', description: 'fatal, error, warn, info, debug, trace or silent' },
  ...EXTERNAL_SERVICE_FLAGS,
  help: { type: 'boolean', default: false, description: 'print this help' },
} as const satisfies Record<string, FlagSpec>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export { parseDuration } from '../kube/duration.js';

/** Every flag `portico controller` takes: its own and every provider's. */
export function allControllerFlags(modules: readonly ProviderModule[] = PROVIDER_MODULES): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = { ...CONTROLLER_FLAGS };
  for (const module of modules) {
    for (const [name, spec] of Object.entries(module.flags)) {
      if (name in flags) throw new Error(`provider ${module.providerClass} redefines flag --${name}`);
      flags[name] = spec;
    }
  }
  return flags;
}

/** `--help` text: every flag with its default and description, grouped by provider. */
export function controllerFlagsHelp(modules: readonly ProviderModule[] = PROVIDER_MODULES): string {
  const line = (name: string, spec: FlagSpec | ProviderFlag): string => {
    const head = `  --${name}${spec.type === 'string' ? '=VALUE' : ''}`;
    const extras = [spec.default !== undefined && spec.default !== false && spec.default !== '' ? `default ${String(spec.default)}` : '', spec.env ? `env ${spec.env}` : ''].filter(Boolean).join(', ');
    return `${head.padEnd(40)} ${spec.description}${extras ? ` (${extras})` : ''}`;
  };
  const sections = [`Controller flags:\n${Object.entries(CONTROLLER_FLAGS).map(([n, s]) => line(n, s)).join('\n')}`];
  for (const module of modules) {
    const entries = Object.entries(module.flags);
    sections.push(`Provider ${module.providerClass}: ${module.description}${entries.length > 0 ? `\n${entries.map(([n, s]) => line(n, s)).join('\n')}` : '\n  (no flags)'}`);
  }
  return sections.join('\n\n');
}

export function parseControllerFlags(args: string[], env: NodeJS.ProcessEnv = process.env, modules: readonly ProviderModule[] = PROVIDER_MODULES): ControllerConfig {
  const flags = allControllerFlags(modules);
  const options = Object.fromEntries(Object.entries(flags).map(([name, spec]) => [name, spec.type === 'boolean' ? { type: 'boolean' as const } : { type: 'string' as const }]));
  let parsed: Record<string, string | boolean | undefined>;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  // Explicit flag, then the flag's environment variable, then its default.
  const values: Record<string, string | boolean | undefined> = {};
  for (const [name, spec] of Object.entries(flags)) {
    const fromEnv = spec.env !== undefined ? env[spec.env] : undefined;
    values[name] = parsed[name] ?? (fromEnv !== undefined && fromEnv !== '' ? (spec.type === 'boolean' ? fromEnv === 'true' : fromEnv) : spec.default);
  }
  const str = (name: keyof typeof CONTROLLER_FLAGS): string => String(values[name] ?? '');
  const problems: string[] = [];
  const duration = (flag: keyof typeof CONTROLLER_FLAGS): number => {
    const ms = parseDuration(str(flag));
    if (ms === undefined || ms <= 0) problems.push(`--${flag}=${str(flag)}: expected a duration such as 15s, 500ms or 10m`);
    return ms ?? 0;
  };
  const durationOrOff = (flag: keyof typeof CONTROLLER_FLAGS): number => {
    const ms = parseDuration(str(flag), { allowZero: true });
    if (ms === undefined) problems.push(`--${flag}=${str(flag)}: expected a duration such as 2s, or 0 for off`);
    return ms ?? 0;
  };
  const providers = str('providers').split(',').map((p) => p.trim()).filter(Boolean);
  const known = modules.map((m) => m.providerClass);
  const providerSettings = new Map<ProviderClass, unknown>();
  for (const p of providers) {
    const module = providerModule(p, modules);
    if (!module) {
      problems.push(`--providers: unknown provider ${p} (this build has: ${known.join(', ')})`);
      continue;
    }
    const moduleValues: FlagValues = Object.fromEntries(Object.keys(module.flags).map((name) => [name, values[name]]));
    const result = module.parseSettings(moduleValues);
    if ('problems' in result) problems.push(...result.problems);
    else providerSettings.set(p, result.settings);
  }
  const defaultClass = values['default-class'] as string | undefined;
  if (defaultClass !== undefined && !providers.includes(defaultClass)) problems.push(`--default-class=${defaultClass}: must be one of the enabled --providers (${providers.join(', ')})`);
  const workers = Number(str('workers'));
  if (!Number.isInteger(workers) || workers < 1 || workers > 256) problems.push(`--workers=${str('workers')}: expected an integer from 1 to 256`);
  const logLevel = str('log-level');
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) problems.push(`--log-level=${logLevel}: expected one of ${LOG_LEVELS.join(', ')}`);
  const config: ControllerConfig = {
    kubeconfig: values.kubeconfig as string | undefined,
    leaderElect: values['leader-elect'] === true,
    leaseNamespace: str('leader-elect-namespace'),
    leaseName: str('leader-elect-name'),
    identity: (values['leader-elect-identity'] as string | undefined) ?? env.POD_NAME ?? `${hostname()}-${String(process.pid)}`,
    leaseDurationMs: duration('leader-elect-lease-duration'),
    renewDeadlineMs: duration('leader-elect-renew-deadline'),
    retryPeriodMs: duration('leader-elect-retry-period'),
    metricsAddr: str('metrics-addr'),
    healthAddr: str('health-addr'),
    logLevel: logLevel as LevelWithSilent,
    providers: providers.filter((p) => known.includes(p)),
    providerSettings,
    defaultClass: defaultClass !== undefined && known.includes(defaultClass) ? defaultClass : undefined,
    workers,
    resyncPeriodMs: duration('resync-period'),
    idleCompactionMs: durationOrOff('idle-compaction'),
    externalServices: parseExternalServiceFlags(values, problems),
  };
  if (config.leaderElect) {
    if (!(config.leaseDurationMs > config.renewDeadlineMs && config.renewDeadlineMs > config.retryPeriodMs * 1.2)) {
      problems.push('--leader-elect-lease-duration > --leader-elect-renew-deadline > 1.2 x --leader-elect-retry-period must hold');
    }
    // The Lease stores whole seconds: rounding would let other candidates expire us early.
    if (config.leaseDurationMs % 1000 !== 0) problems.push(`--leader-elect-lease-duration=${str('leader-elect-lease-duration')}: must be whole seconds`);
  }
  for (const flag of ['metrics-addr', 'health-addr'] as const) {
    try {
      parseListenAddress(str(flag));
    } catch (error) {
      problems.push(`--${flag}: ${(error as Error).message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return config;
}

/** `:8080`, `127.0.0.1:8080`, `[::1]:8080` -> host and port; `0` disables. */
export function parseListenAddress(addr: string): { host: string | undefined; port: number } | undefined {
  if (addr === '0' || addr === '') return undefined;
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!match?.[3]) throw new ConfigError(`listen address ${addr}: expected [host]:port`);
  const port = Number(match[3]);
  if (port > 65535) throw new ConfigError(`listen address ${addr}: port out of range`);
  return { host: match[1] ?? (match[2] || undefined), port };
}
