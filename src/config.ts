/** Flags -> one typed Config. Bad flags are reported all at once, naming the flag. */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import type { LevelWithSilent } from 'pino';
import { isProviderClass, PROVIDER_CLASSES, type ProviderClass } from './providers/provider.js';

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
  defaultClass: ProviderClass | undefined;
  workers: number;
  resyncPeriodMs: number;
}

export class ConfigError extends Error {}

export const CONTROLLER_FLAGS = {
  kubeconfig: { type: 'string' },
  'leader-elect': { type: 'boolean', default: false },
  'leader-elect-namespace': { type: 'string', default: 'portico-system' },
  'leader-elect-name': { type: 'string', default: 'portico-controller' },
  'leader-elect-identity': { type: 'string' },
  'leader-elect-lease-duration': { type: 'string', default: '15s' },
  'leader-elect-renew-deadline': { type: 'string', default: '10s' },
  'leader-elect-retry-period': { type: 'string', default: '2s' },
  'metrics-addr': { type: 'string', default: ':8080' },
  'health-addr': { type: 'string', default: ':8081' },
  'log-level': { type: 'string', default: 'info' },
  providers: { type: 'string', default: 'portico.dev/l2' },
  'default-class': { type: 'string' },
  workers: { type: 'string', default: '4' },
  'resync-period': { type: 'string', default: '10m' },
  help: { type: 'boolean', default: false },
} as const;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** `1500ms`, `15s`, `10m`, `1h` -> milliseconds. */
export function parseDuration(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value.trim());
  if (!match?.[1] || !match[2]) return undefined;
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(match[1]) * unit);
}

export function parseControllerFlags(args: string[], env: NodeJS.ProcessEnv = process.env): ControllerConfig {
  const { values } = parseArgs({ args, options: CONTROLLER_FLAGS, strict: true, allowPositionals: false });
  const problems: string[] = [];
  const duration = (flag: string, value: string): number => {
    const ms = parseDuration(value);
    if (ms === undefined || ms <= 0) problems.push(`--${flag}=${value}: expected a duration such as 15s, 500ms or 10m`);
    return ms ?? 0;
  };
  const providers = values.providers.split(',').map((p) => p.trim()).filter(Boolean);
  for (const p of providers) if (!isProviderClass(p)) problems.push(`--providers: unknown provider ${p} (known: ${PROVIDER_CLASSES.join(', ')})`);
  const defaultClass = values['default-class'];
  if (defaultClass !== undefined && !providers.includes(defaultClass)) problems.push(`--default-class=${defaultClass}: must be one of the enabled --providers (${providers.join(', ')})`);
  const workers = Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 256) problems.push(`--workers=${values.workers}: expected an integer from 1 to 256`);
  const logLevel = values['log-level'];
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) problems.push(`--log-level=${logLevel}: expected one of ${LOG_LEVELS.join(', ')}`);
  const config: ControllerConfig = {
    kubeconfig: values.kubeconfig,
    leaderElect: values['leader-elect'],
    leaseNamespace: values['leader-elect-namespace'],
    leaseName: values['leader-elect-name'],
    identity: values['leader-elect-identity'] ?? env.POD_NAME ?? `${hostname()}-${String(process.pid)}`,
    leaseDurationMs: duration('leader-elect-lease-duration', values['leader-elect-lease-duration']),
    renewDeadlineMs: duration('leader-elect-renew-deadline', values['leader-elect-renew-deadline']),
    retryPeriodMs: duration('leader-elect-retry-period', values['leader-elect-retry-period']),
    metricsAddr: values['metrics-addr'],
    healthAddr: values['health-addr'],
    logLevel: logLevel as LevelWithSilent,
    providers: providers.filter(isProviderClass),
    defaultClass: isProviderClass(defaultClass) ? defaultClass : undefined,
    workers,
    resyncPeriodMs: duration('resync-period', values['resync-period']),
  };
  if (config.leaderElect) {
    if (!(config.leaseDurationMs > config.renewDeadlineMs && config.renewDeadlineMs > config.retryPeriodMs * 1.2)) {
      problems.push('--leader-elect-lease-duration > --leader-elect-renew-deadline > 1.2 x --leader-elect-retry-period must hold');
    }
    // The Lease stores whole seconds: rounding would let other candidates expire us early.
    if (config.leaseDurationMs % 1000 !== 0) problems.push(`--leader-elect-lease-duration=${values['leader-elect-lease-duration']}: must be whole seconds`);
  }
  for (const [flag, addr] of [['metrics-addr', config.metricsAddr], ['health-addr', config.healthAddr]] as const) {
    try {
      parseListenAddress(addr);
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
