/**
 * external-health: how fast a dead external host shows up as `ready: false`.
 *
 *   npm run bench -- external-health [--services=200] [--endpoints=3] [--interval=1000] [--timeout=300] [--threshold=2] [--down=unplug|kill]
 *
 * N ExternalServices, each with the same E endpoints: HTTP servers on test hosts in a network
 * namespace (198.51.100.240/28, needs root). Once every EndpointSlice says all E ready, one host
 * goes down (`unplug`: its address vanishes, probes time out; `kill`: its server stops, probes
 * are refused) and a watch on the EndpointSlices times, per ExternalService, how long until its
 * slice says `ready: false` for that host. Writes bench/results/external-health.json:
 * externalServices, endpoints, detectP50Ms, detectP99Ms, intervalMs, threshold (+ context).
 * Target: p99 <= interval x threshold + 500 ms. Measures and reports; asserts nothing.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { startControlPlane } from '../hack/control-plane.js';
import { renderCrdFiles } from '../src/api/render.js';
import { parseControllerFlags } from '../src/cmd/config.js';
import { startController } from '../src/cmd/controller.js';
import { loadKubeConfig } from '../src/kube/kubeconfig.js';
import { applyYaml } from '../src/kube/apply.js';
import { createLogger } from '../src/kube/logger.js';
import { RestClient, type WatchEvent } from '../src/kube/rest.js';
import { CAN_NETNS, createTestHosts } from '../test/reconcile/externalservice/test-hosts.js';
import { forEachLimit, intFlag, machine, round, sleep, table, UsageError } from './support/util.js';

export const description = 'ExternalServices x endpoints on netns hosts: time from a host going down to ready: false in every slice';

interface Options {
  services: number;
  endpoints: number;
  intervalMs: number;
  timeoutMs: number;
  threshold: number;
  down: 'unplug' | 'kill';
}

export function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      services: { type: 'string', default: '200' },
      endpoints: { type: 'string', default: '3' },
      interval: { type: 'string', default: '1000' },
      timeout: { type: 'string', default: '300' },
      threshold: { type: 'string', default: '2' },
      down: { type: 'string', default: 'unplug' },
    },
  });
  if (values.down !== 'unplug' && values.down !== 'kill') throw new UsageError(`--down=${values.down}: expected unplug or kill`);
  const intervalMs = intFlag('interval', values.interval, 100, 60_000);
  return {
    services: intFlag('services', values.services, 1, 2000),
    endpoints: intFlag('endpoints', values.endpoints, 2, 13),
    intervalMs,
    timeoutMs: intFlag('timeout', values.timeout, 50, intervalMs),
    threshold: intFlag('threshold', values.threshold, 1, 10),
    down: values.down,
  };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

/** Per slice name, whether `address` is published ready, kept current by a watch. */
async function watchSlices(client: RestClient, namespace: string, onChange: (slice: V1EndpointSlice) => void, signal: AbortSignal): Promise<void> {
  const path = `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`;
  const list = await client.request<{ items: V1EndpointSlice[]; metadata: { resourceVersion: string } }>('GET', path);
  for (const slice of list.items) onChange(slice);
  let resourceVersion = list.metadata.resourceVersion;
  void (async () => {
    while (!signal.aborted) {
      await client
        .watch<V1EndpointSlice>(
          path,
          { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 600 },
          (event: WatchEvent<V1EndpointSlice>) => {
            resourceVersion = event.object.metadata?.resourceVersion ?? resourceVersion;
            if (event.type === 'ADDED' || event.type === 'MODIFIED') onChange(event.object);
          },
          signal,
        )
        .catch(() => sleep(100));
    }
  })();
}

function readiness(slice: V1EndpointSlice): Map<string, boolean> {
  return new Map(((slice.endpoints as V1EndpointSlice['endpoints'] | null) ?? []).map((e) => [e.addresses[0] ?? '', e.conditions?.ready === true]));
}

export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  if (!CAN_NETNS) throw new Error('external-health needs root and `ip netns` for its test hosts');
  const hosts = await createTestHosts(options.endpoints);
  // Ctrl-C must not leave the network namespace behind.
  const onSignal = (): void => void hosts.destroy().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const controlPlane = await startControlPlane().catch(async (error: unknown) => {
    await hosts.destroy();
    throw error;
  });
  const abort = new AbortController();
  try {
    const kc = loadKubeConfig(controlPlane.kubeconfigPath);
    const client = new RestClient(kc, 'portico-bench');
    for (const text of Object.values(renderCrdFiles())) await applyYaml(client, text);
    const namespace = 'bench-external-health';
    await client.request('POST', '/api/v1/namespaces', { body: { metadata: { name: namespace } } });
    for (;;) {
      const ok = await client.request('GET', `/apis/portico.dev/v1alpha1/namespaces/${namespace}/externalservices`).then(() => true, () => false);
      if (ok) break;
      await sleep(200);
    }
    const config = parseControllerFlags([`--kubeconfig=${controlPlane.kubeconfigPath}`, '--external-services', '--metrics-addr=0', '--health-addr=0', '--log-level=silent']);
    const running = await startController(config, abort.signal, { logger: createLogger('silent') });

    const victim = hosts.addresses[Math.floor(hosts.addresses.length / 2)] ?? '';
    const state = new Map<string, Map<string, boolean>>();
    const outage: { at?: number } = {};
    const detected = new Map<string, number>();
    await watchSlices(
      client,
      namespace,
      (slice) => {
        const name = slice.metadata?.name ?? '';
        const ready = readiness(slice);
        state.set(name, ready);
        if (outage.at !== undefined && ready.get(victim) === false && !detected.has(name)) detected.set(name, performance.now() - outage.at);
      },
      abort.signal,
    );

    const spec = {
      endpoints: hosts.addresses.map((address) => ({ address })),
      ports: [{ name: 'http', port: 80, targetPort: hosts.port }],
      healthCheck: { protocol: 'HTTP', path: '/', interval: `${String(options.intervalMs)}ms`, timeout: `${String(options.timeoutMs)}ms`, healthyThreshold: options.threshold, unhealthyThreshold: options.threshold },
      publishEndpoints: false,
    };
    const names = Array.from({ length: options.services }, (_, i) => `xs-${String(i)}`);
    const started = performance.now();
    await forEachLimit(names, 16, async (name) => {
      await client.request('POST', `/apis/portico.dev/v1alpha1/namespaces/${namespace}/externalservices`, { body: { apiVersion: 'portico.dev/v1alpha1', kind: 'ExternalService', metadata: { name }, spec } });
    });
    const sliceNames = names.map((n) => `${n}-v4-0`);
    const allReady = (): boolean => sliceNames.every((n) => { const r = state.get(n); return r !== undefined && r.size === options.endpoints && [...r.values()].every(Boolean); });
    let lastReport = started;
    while (!allReady()) {
      if (performance.now() - started > 900_000) throw new Error('ExternalServices did not all become ready within 15 minutes');
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        process.stderr.write(`[external-health] ${String(sliceNames.filter((n) => [...(state.get(n)?.values() ?? [])].filter(Boolean).length === options.endpoints).length)}/${String(sliceNames.length)} ExternalServices ready\n`);
      }
      await sleep(100);
    }
    const convergeSeconds = (performance.now() - started) / 1000;
    // Let the probe loops settle into their intervals before the outage.
    await sleep(options.intervalMs * 2);

    const downAt = performance.now();
    outage.at = downAt;
    if (options.down === 'unplug') hosts.unplug(victim);
    else await hosts.stop(victim);
    const budgetMs = options.intervalMs * options.threshold + 500;
    while (detected.size < sliceNames.length && performance.now() - downAt < budgetMs * 20) await sleep(50);
    const times = sliceNames.map((n) => detected.get(n)).filter((t): t is number => t !== undefined).sort((a, b) => a - b);
    const metrics = await running.registry.getMetricsAsJSON();
    const sum = (name: string, label?: [string, string]): number => metrics.find((m) => m.name === name)?.values.filter((v) => !label || v.labels[label[0]] === label[1]).reduce((s, v) => s + v.value, 0) ?? 0;
    const probes = sum('portico_externalservice_health_checks_total');
    const failedProbes = sum('portico_externalservice_health_checks_total', ['result', 'failure']);
    const transitions = sum('portico_externalservice_health_transitions_total');
    const reconciles = sum('portico_externalservice_reconciles_total');
    const writes = sum('portico_externalservice_writes_total');
    const publish = metrics.find((m) => m.name === 'portico_externalservice_health_publish_seconds')?.values ?? [];
    const publishSum = publish.find((v) => (v as { metricName?: string }).metricName?.endsWith('_sum'))?.value ?? 0;
    const publishCount = publish.find((v) => (v as { metricName?: string }).metricName?.endsWith('_count'))?.value ?? 0;

    const result = {
      externalServices: options.services,
      endpoints: options.services * options.endpoints,
      detectP50Ms: round(percentile(times, 50), 1),
      detectP99Ms: round(percentile(times, 99), 1),
      intervalMs: options.intervalMs,
      threshold: options.threshold,
      timeoutMs: options.timeoutMs,
      targetP99Ms: budgetMs,
      detectMaxMs: round(times.at(-1) ?? Number.NaN, 1),
      detected: times.length,
      down: options.down,
      convergeSeconds: round(convergeSeconds, 2),
      probes,
      failedProbes,
      /** Readiness changes in the whole run; the outage alone accounts for one per ExternalService. */
      transitions,
      reconciles,
      writes,
      /** Mean time from a readiness change (health check) to the slice write that publishes it. */
      publishMeanMs: publishCount > 0 ? round((publishSum / publishCount) * 1000, 1) : null,
      loadAverage: loadavg().map((l) => round(l, 2)),
      kubernetesVersion: controlPlane.version,
      date: new Date().toISOString(),
      machine: machine(),
    };
    process.stdout.write(
      `${table([
        ['externalServices', 'endpoints', 'down', 'detected', 'p50 ms', 'p99 ms', 'max ms', 'target p99 ms'],
        [String(result.externalServices), String(result.endpoints), result.down, `${String(times.length)}/${String(sliceNames.length)}`, String(result.detectP50Ms), String(result.detectP99Ms), String(result.detectMaxMs), String(budgetMs)],
      ])}\n`,
    );
    const dir = new URL('results/', import.meta.url);
    await mkdir(dir, { recursive: true });
    await writeFile(new URL('external-health.json', dir), `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write('wrote bench/results/external-health.json\n');
  } finally {
    abort.abort();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await hosts.destroy();
    await controlPlane.stop();
  }
}
