/** `portico speaker`: flags, informers, the Speaker, /healthz and /metrics, signal handling. */
import { parseArgs } from 'node:util';
import type { LevelWithSilent } from 'pino';
import { Registry } from '../kube/prom.js';
import { ConfigError, parseDuration, parseListenAddress } from './config.js';
import { systemClock } from '../kube/clock.js';
import { EventRecorder } from '../kube/events.js';
import { serve } from '../kube/http-server.js';
import { loadKubeConfig } from '../kube/kubeconfig.js';
import { createLogger } from '../kube/logger.js';
import { withProcessMetrics } from '../kube/metrics.js';
import { RestClient } from '../kube/rest.js';
import { SharedInformers } from '../kube/shared-informers.js';
import { discoverInterfaces, PacketSockets } from '../providers/metallb-like/speaker/frame-socket.js';
import { LEASE_COMPONENT, LEASE_COMPONENT_LABEL } from '../providers/metallb-like/speaker/liveness.js';
import { Speaker, SPEAKER_PATHS, type SpeakerSettings } from '../providers/metallb-like/speaker/speaker.js';

export const SPEAKER_FLAGS = {
  kubeconfig: { type: 'string', description: 'kubeconfig file; default: in-cluster service account, then $KUBECONFIG, then ~/.kube/config' },
  'node-name': { type: 'string', description: 'this node (default: $NODE_NAME, from the downward API)' },
  namespace: { type: 'string', default: 'portico-system', description: 'namespace of the speaker Leases (default: $POD_NAMESPACE)' },
  'lease-renew-interval': { type: 'string', default: '10s', description: 'how often the node Lease is renewed: the only periodic API write (one per node per interval)' },
  'lease-duration': { type: 'string', default: '30s', description: 'a node whose Lease is older than this is not a candidate' },
  'probe-port': { type: 'string', default: '7947', description: 'UDP port speakers probe each other on (node network)' },
  'probe-interval': { type: 'string', default: '100ms', description: 'how often the runner-up for an address probes its announcer' },
  'probe-timeout': { type: 'string', default: '600ms', description: 'silence after which the announcer is taken over from' },
  'gratuitous-repeats': { type: 'string', default: '3', description: 'gratuitous ARP / unsolicited NA repeats after the first, on taking an address' },
  'gratuitous-interval': { type: 'string', default: '1200ms', description: 'spacing of those repeats (keep above the 1 s Linux neighbour locktime)' },
  'poll-interval': { type: 'string', default: '5ms', description: 'how often the raw sockets are drained' },
  'metrics-addr': { type: 'string', default: ':7472', description: '/metrics and /healthz listen address; 0 disables' },
  'log-level': { type: 'string', default: 'info', description: 'fatal, error, warn, info, debug, trace or silent' },
  help: { type: 'boolean', default: false, description: 'print this help' },
} as const;

export const SPEAKER_USAGE = `Usage: portico speaker [flags]

Answers ARP and NDP for LoadBalancer addresses from AddressPools on the node elected for each
address (see docs/speaker.md). Runs on every node, on the host network, with CAP_NET_RAW.

Flags:
${Object.entries(SPEAKER_FLAGS)
  .map(([name, spec]) => `  --${name.padEnd(22)}${spec.description}${'default' in spec && spec.type === 'string' ? ` (default ${spec.default})` : ''}`)
  .join('\n')}
`;

export interface SpeakerConfig extends SpeakerSettings {
  kubeconfig: string | undefined;
  pollIntervalMs: number;
  metricsAddr: string;
  logLevel: LevelWithSilent;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function parseSpeakerFlags(args: string[], env: NodeJS.ProcessEnv = process.env): SpeakerConfig {
  const options = Object.fromEntries(Object.entries(SPEAKER_FLAGS).map(([k, v]) => [k, { type: v.type, ...('default' in v ? { default: v.default } : {}) }]));
  const { values } = parseArgs({ args, options, strict: true, allowPositionals: false });
  const problems: string[] = [];
  const text = (flag: string): string => String(values[flag] ?? '');
  const duration = (flag: string): number => {
    const ms = parseDuration(text(flag));
    if (ms === undefined || ms <= 0) problems.push(`--${flag}=${text(flag)}: expected a duration such as 10s or 100ms`);
    return ms ?? 1;
  };
  const integer = (flag: string, min: number, max: number): number => {
    const n = Number(text(flag));
    if (!Number.isInteger(n) || n < min || n > max) problems.push(`--${flag}=${text(flag)}: expected an integer from ${min} to ${max}`);
    return n;
  };
  const node = (values['node-name'] as string | undefined) ?? env.NODE_NAME ?? '';
  if (!node && !values.help) problems.push('--node-name (or $NODE_NAME) is required');
  const config: SpeakerConfig = {
    kubeconfig: values.kubeconfig as string | undefined,
    node,
    namespace: args.some((a) => a.startsWith('--namespace')) ? text('namespace') : (env.POD_NAMESPACE ?? text('namespace')),
    renewIntervalMs: duration('lease-renew-interval'),
    leaseDurationMs: duration('lease-duration'),
    probePort: integer('probe-port', 1, 65535),
    probeIntervalMs: duration('probe-interval'),
    probeTimeoutMs: duration('probe-timeout'),
    gratuitousRepeats: integer('gratuitous-repeats', 0, 20),
    gratuitousIntervalMs: duration('gratuitous-interval'),
    pollIntervalMs: duration('poll-interval'),
    metricsAddr: text('metrics-addr'),
    logLevel: text('log-level') as LevelWithSilent,
  };
  if (!LOG_LEVELS.includes(config.logLevel)) problems.push(`--log-level=${config.logLevel}: expected one of ${LOG_LEVELS.join(', ')}`);
  if (config.leaseDurationMs < 2 * config.renewIntervalMs) problems.push('--lease-duration must be at least twice --lease-renew-interval');
  if (config.probeTimeoutMs < 2 * config.probeIntervalMs) problems.push('--probe-timeout must be at least twice --probe-interval');
  try {
    parseListenAddress(config.metricsAddr);
  } catch (error) {
    problems.push(`--metrics-addr: ${(error as Error).message}`);
  }
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  return config;
}

/** Runs the speaker until SIGINT/SIGTERM; returns the exit code. */
export async function runSpeaker(args: string[]): Promise<number> {
  if (args.includes('--help')) {
    process.stdout.write(SPEAKER_USAGE);
    return 0;
  }
  let config: SpeakerConfig;
  try {
    config = parseSpeakerFlags(args);
  } catch (error) {
    process.stderr.write(`portico speaker: ${(error as Error).message}\n\n${SPEAKER_USAGE}`);
    return 2;
  }
  const logger = createLogger(config.logLevel).child({ component: 'speaker', node: config.node });
  const client = new RestClient(loadKubeConfig(config.kubeconfig), `portico-speaker/${config.node}`);
  const registry = new Registry();
  const informers = new SharedInformers(client, {
    clock: systemClock,
    logger,
    registry,
    settings: { [SPEAKER_PATHS.leases(config.namespace)]: { labelSelector: `${LEASE_COMPONENT_LABEL}=${LEASE_COMPONENT}` } },
  });
  const events = new EventRecorder(client, 'portico-speaker', { logger, registry });
  const sockets = new PacketSockets({ pollIntervalMs: config.pollIntervalMs, onError: (error) => logger.warn({ err: error }, 'raw socket error') });
  const speaker = new Speaker(config, { client, informers, sockets, discover: (only) => discoverInterfaces(only), events, clock: systemClock, logger, registry });

  const shutdown = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'releasing addresses and lease');
      shutdown.abort();
      // The addresses go silent synchronously; the API calls after that get a bounded time.
      setTimeout(() => process.exit(0), 8_000).unref();
    });
  }
  const listen = parseListenAddress(config.metricsAddr);
  const server = listen
    ? await serve({ ...listen, registry: withProcessMetrics(registry), health: { running: () => true }, ready: { lease: () => speaker.healthy } })
    : undefined;
  informers.start(shutdown.signal);
  logger.info({ namespace: config.namespace, probePort: config.probePort }, 'speaker starting');
  await speaker.run(shutdown.signal, informers.waitForSync(shutdown.signal));
  await informers.stopped();
  await events.close(2_000);
  server?.close();
  logger.info({ leaseWrites: speaker.leaseWrites }, 'speaker stopped');
  return 0;
}
