/**
 * lb-burst: N LoadBalancer Services exist before the controller starts; how long until every
 * one has an ingress address and our finalizer — compared with the floor, a bare client loop
 * that makes the same two writes per Service (a finalizer; the status the controller writes,
 * condition included) at the same concurrency.
 *
 *   npm run bench -- lb-burst [--services=1000] [--workers=4] [--repeat=1] [--timeout=600]
 *                             [--create-concurrency=16]
 *   diagnostics (written to bench/results/lb-burst.<diagnostic>.json.tmp, never lb-burst.json):
 *                             [--cpu-profile] [--no-events]
 *
 * Writes bench/results/lb-burst.json: services, workers, seconds (controller), floorSeconds,
 * ratio (median of per-round controller/floor), peakRssMb, kubernetesVersion, date, machine,
 * and per round the request counts of both phases (by user agent in this process, and the API
 * server's own apiserver_request_total / request_duration deltas).
 *
 * One local control plane (etcd + kube-apiserver, no controller manager). Per round, in fresh
 * namespaces:
 *   1. untimed: create N Services in the floor namespace (class example.com/bench-floor, which
 *      Portico does not serve) and N in the controller namespace (class portico.dev/l2);
 *   2. floor (controller not running; odd rounds first, even rounds after the controller):
 *      list the floor Services (pages of 500), then with
 *      `workers` concurrent loops PATCH a finalizer onto each (merge patch with
 *      resourceVersion) and PATCH status.loadBalancer.ingress through /status;
 *   3. controller: start the real controller in-process and time until every Service in the
 *      controller namespace has an ingress entry and the finalizer portico.dev/load-balancer.
 * The floor writes its own finalizer (example.com/bench-floor): with Portico's finalizer but a
 * foreign class, the controller would treat the floor Services as ones to clean up.
 *
 * Addresses are IPv6 documentation space only (the pool is 2001:db8:b00::/116); nothing is sent
 * anywhere, addresses are only written to status. Peak RSS is of this whole process — the
 * in-process controller plus the benchmark's own client and watch.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { startControlPlane, type ControlPlane } from '../hack/control-plane.js';
import { parseControllerFlags } from '../src/cmd/config.js';
import { applyManifest } from '../src/kube/apply.js';
import { EventRecorder } from '../src/kube/events.js';
import { RestClient } from '../src/kube/rest.js';
import { startController, type RunningController } from '../src/cmd/controller.js';
import { loadKubeConfig, type KubeConfig } from '../src/kube/kubeconfig.js';
import { DEFAULT_WORKERS } from '../src/reconcile/loadbalancer/controller.js';
import { diffApiServer, scrapeApiServer, type ApiServerSample } from './support/apiserver-metrics.js';
import { createServices, deleteAllServices, ensureNamespace, installCrds, watchCompletion, type ServiceShape } from './support/cluster.js';
import { BENCH_AGENT, FLOOR_AGENT, FLOOR_CLASS, isConverged, runFloor, type FloorResult } from './support/floor.js';
import { installRequestCounter, takeRequestCounts, totalRequests, type RequestCount, type RequestCounts } from './support/request-stats.js';
import { startCpuProfile, summarize, type CpuSummary } from './support/cpu-profile.js';
import { intFlag, machine, mb, median, processLoad, round, sampleRss, sleep, table, type ProcessLoad } from './support/util.js';

export const description = 'N LoadBalancer Services, controller started cold: time to address + finalizer, vs a bare client loop (floor)';

const CONTROLLER_CLASS = 'portico.dev/l2';
const POOL_NAME = 'bench-lb-burst';
const POOL_CIDR = '2001:db8:b00::/116';
const POOL_PREFIX = '2001:db8:b00::';
const POOL_SIZE = 4096;
const CREATE_CONCURRENCY = 16;
const TARGET_RATIO = 1.25;
const CONTROLLER_AGENT = 'portico-controller';
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

interface Options {
  services: number;
  workers: number;
  repeat: number;
  timeoutMs: number;
  createConcurrency: number;
  /** Diagnostic: CPU-profile this process during the controller phase. */
  cpuProfile: boolean;
  /** Diagnostic: drop the controller's Kubernetes Events (to measure what they cost). */
  noEvents: boolean;
}

export function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      services: { type: 'string', default: '1000' },
      workers: { type: 'string', default: String(DEFAULT_WORKERS) },
      repeat: { type: 'string', default: '1' },
      timeout: { type: 'string', default: '600' },
      'create-concurrency': { type: 'string', default: String(CREATE_CONCURRENCY) },
      'cpu-profile': { type: 'boolean', default: false },
      'no-events': { type: 'boolean', default: false },
    },
  });
  return {
    // The pool has 4096 addresses; the controller's Services of one round must fit.
    services: intFlag('services', values.services, 1, POOL_SIZE - 1),
    workers: intFlag('workers', values.workers, 1, 256),
    repeat: intFlag('repeat', values.repeat, 1, 25),
    timeoutMs: intFlag('timeout', values.timeout, 1, 24 * 3600) * 1000,
    createConcurrency: intFlag('create-concurrency', values['create-concurrency'], 1, 256),
    cpuProfile: values['cpu-profile'],
    noEvents: values['no-events'],
  };
}

const shapes: Record<'controller' | 'floor', ServiceShape> = {
  controller: { loadBalancerClass: CONTROLLER_CLASS, ipFamilies: ['IPv6'], ipFamilyPolicy: 'SingleStack' },
  floor: { loadBalancerClass: FLOOR_CLASS, ipFamilies: ['IPv6'], ipFamilyPolicy: 'SingleStack' },
};

interface ControllerMetrics {
  reconciles: Record<string, number>;
  reconcileSecondsSum: number;
  workqueueAdds: number;
  eventsDropped: number;
}

function metricValues(metrics: MetricObjectWithValues<MetricValue<string>>[], name: string): MetricValue<string>[] {
  return metrics.find((m) => m.name === name)?.values ?? [];
}

async function controllerMetrics(running: RunningController): Promise<ControllerMetrics> {
  const metrics = await running.registry.getMetricsAsJSON();
  const reconciles: Record<string, number> = {};
  for (const v of metricValues(metrics, 'portico_loadbalancer_reconciles_total')) reconciles[String(v.labels['result'])] = v.value;
  const durationSum = metricValues(metrics, 'portico_loadbalancer_reconcile_duration_seconds').find((v) => (v as { metricName?: string }).metricName?.endsWith('_sum'));
  const sum = (name: string): number => metricValues(metrics, name).reduce((s, v) => s + v.value, 0);
  return {
    reconciles,
    reconcileSecondsSum: round(durationSum?.value ?? 0),
    workqueueAdds: sum('portico_workqueue_adds_total'),
    eventsDropped: sum('portico_events_dropped_total'),
  };
}

interface RssSampling {
  samples: number;
  costMs: number;
  sampledPeakMb: number;
  kernelPeakMb: number | undefined;
}

interface ControllerResult {
  seconds: number;
  converged: number;
  timedOut: boolean;
  peakRssBytes: number;
  /** The 100 ms sampler (its peak and its own cost) and the kernel's high-water mark over the phase. */
  rssSampling: RssSampling;
  rssBeforeBytes: number;
  stopSeconds: number;
  load: ProcessLoad;
  metrics: ControllerMetrics;
  /** Requests from the start until every Service converged (the timed window). */
  requests: RequestCounts;
  apiserver: ApiServerSample;
  /** Requests while the controller shut down (pending Events are flushed then). */
  shutdownRequests: RequestCounts;
  cpu: CpuSummary | undefined;
}

async function runController(kc: KubeConfig, kubeconfigPath: string, namespace: string, options: Options, abort: AbortSignal): Promise<ControllerResult> {
  const watcher = new RestClient(kc, BENCH_AGENT);
  const completion = await watchCompletion(watcher, `/api/v1/namespaces/${namespace}/services`, options.services, isConverged);
  const config = parseControllerFlags([
    `--kubeconfig=${kubeconfigPath}`,
    `--workers=${String(options.workers)}`,
    '--metrics-addr=0',
    '--health-addr=0',
    '--log-level=silent',
  ]);
  const stopController = new AbortController();
  const onAbort = (): void => stopController.abort();
  abort.addEventListener('abort', onAbort, { once: true });
  const apiBefore = await scrapeApiServer(kc);
  takeRequestCounts();
  const profiler = options.cpuProfile ? await startCpuProfile() : undefined;
  const rssBeforeBytes = process.memoryUsage.rss();
  const rss = sampleRss(100);
  const load = processLoad();
  let running: RunningController | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const started = performance.now();
    running = await startController(config, stopController.signal);
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), options.timeoutMs)));
    const aborted = new Promise<'aborted'>((resolve) => abort.addEventListener('abort', () => resolve('aborted'), { once: true }));
    const failed = running.done.then(() => 'stopped' as const);
    const outcome = await Promise.race([completion.finished, timeout, aborted, failed]);
    const finishedAt = typeof outcome === 'number' ? outcome : performance.now();
    const requests = takeRequestCounts();
    const rssSampling = rss.stop();
    const processUse = load.stop();
    const profile = await profiler?.stop();
    if (outcome === 'aborted') throw new Error('interrupted');
    if (outcome === 'stopped') throw new Error('the controller stopped before every Service converged');
    if (outcome === undefined) throw new Error('the completion watch ended before every Service converged');
    const apiserver = diffApiServer(apiBefore, await scrapeApiServer(kc));
    const metrics = await controllerMetrics(running);
    const stopStarted = performance.now();
    stopController.abort();
    await running.done;
    const stopSeconds = (performance.now() - stopStarted) / 1000;
    let cpu: CpuSummary | undefined;
    if (profile) {
      await writeFile(new URL('./results/lb-burst-controller.cpuprofile.tmp', import.meta.url), JSON.stringify(profile));
      cpu = summarize(profile, repoRoot, 30, /src\/|JSON|parse|stringify/);
    }
    return {
      seconds: (finishedAt - started) / 1000,
      converged: completion.done(),
      timedOut: outcome === 'timeout',
      peakRssBytes: rssSampling.peakBytes,
      rssSampling: {
        samples: rssSampling.samples,
        costMs: rssSampling.costMs,
        sampledPeakMb: mb(rssSampling.sampledPeakBytes),
        kernelPeakMb: rssSampling.kernelPeakBytes === undefined ? undefined : mb(rssSampling.kernelPeakBytes),
      },
      rssBeforeBytes,
      stopSeconds,
      load: processUse,
      metrics,
      requests,
      apiserver,
      shutdownRequests: takeRequestCounts(),
      cpu,
    };
  } finally {
    if (timer) clearTimeout(timer);
    rss.stop();
    completion.stop();
    stopController.abort();
    await running?.done.catch(() => undefined);
    abort.removeEventListener('abort', onAbort);
  }
}

interface PhaseProfile {
  /** Requests by the client under test, `VERB resource` -> count / errors / summed latency. */
  requests: Record<string, RequestCount>;
  requestsPerService: number;
  /** All clients in the process in this window (the controller phase includes the benchmark's watch). */
  allClients: RequestCounts;
  apiserver: ApiServerSample;
}

function profile(counts: RequestCounts, agent: string, services: number, apiserver: ApiServerSample): PhaseProfile {
  const requests = counts[agent] ?? {};
  return { requests, requestsPerService: round(totalRequests(requests, (k) => !k.startsWith('WATCH')) / services, 2), allClients: counts, apiserver };
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new Error('interrupted');
}

interface Round {
  round: number;
  namespaces: { controller: string; floor: string };
  seconds: number;
  floorSeconds: number;
  floorObservedSeconds: number;
  ratio: number;
  converged: number;
  timedOut: boolean;
  peakRssMb: number;
  rssBeforeMb: number;
  rssSampling: RssSampling;
  controllerStopSeconds: number;
  controllerProcess: ProcessLoad;
  floorProcess: ProcessLoad;
  controllerMetrics: ControllerMetrics;
  controllerProfile: PhaseProfile;
  controllerShutdownRequests: Record<string, RequestCount>;
  controllerCpu?: CpuSummary;
  floorProfile: PhaseProfile;
}

async function runRound(cp: ControlPlane, kc: KubeConfig, client: RestClient, index: number, options: Options, abort: AbortSignal): Promise<Round> {
  const suffix = index === 1 ? '' : `-${String(index)}`;
  const namespaces = { controller: `bench-ctl${suffix}`, floor: `bench-floor${suffix}` };
  const log = (line: string): void => void process.stderr.write(`[lb-burst] round ${String(index)}: ${line}\n`);

  // 1. Untimed setup.
  const setupStarted = performance.now();
  for (const ns of Object.values(namespaces)) await ensureNamespace(client, ns, { 'portico.dev/bench': 'lb-burst' });
  await createServices(client, namespaces.floor, options.services, shapes.floor, options.createConcurrency);
  await createServices(client, namespaces.controller, options.services, shapes.controller, options.createConcurrency);
  log(`created ${String(2 * options.services)} Services in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s (not timed)`);
  await sleep(1000);
  throwIfAborted(abort);

  // 2 and 3. Floor (controller not running) and controller; odd rounds run the floor first,
  // even rounds the controller first, so drift over a run (etcd growth, warming caches)
  // does not favour either side.
  const timeFloor = async (): Promise<{ floor: FloorResult; floorProcess: ProcessLoad; floorProfile: ReturnType<typeof profile> }> => {
    takeRequestCounts();
    const before = await scrapeApiServer(kc);
    const floorLoad = processLoad();
    const floor = await runFloor(kc, namespaces.floor, { ...options, address: (n) => `${POOL_PREFIX}${(n % POOL_SIZE).toString(16)}` });
    const floorProcess = floorLoad.stop();
    const after = await scrapeApiServer(kc);
    const floorProfile = profile(takeRequestCounts(), FLOOR_AGENT, options.services, diffApiServer(before, after));
    log(`floor: ${String(floor.services)} Services in ${floor.seconds.toFixed(2)} s (all seen done by the watch at ${floor.observedSeconds.toFixed(2)} s)`);
    await sleep(1000);
    throwIfAborted(abort);
    return { floor, floorProcess, floorProfile };
  };
  const timeController = async (): Promise<ControllerResult> => {
    const result = await runController(kc, cp.kubeconfigPath, namespaces.controller, options, abort);
    await sleep(1000);
    throwIfAborted(abort);
    return result;
  };
  let floorPart: Awaited<ReturnType<typeof timeFloor>>;
  let controller: ControllerResult;
  if (index % 2 === 1) {
    floorPart = await timeFloor();
    controller = await timeController();
  } else {
    controller = await timeController();
    floorPart = await timeFloor();
  }
  const { floor, floorProcess, floorProfile } = floorPart;
  const controllerProfile = profile(controller.requests, CONTROLLER_AGENT, options.services, controller.apiserver);
  log(
    controller.timedOut
      ? `controller: TIMED OUT after ${controller.seconds.toFixed(1)} s with ${String(controller.converged)}/${String(options.services)} converged`
      : `controller: ${String(controller.converged)} Services in ${controller.seconds.toFixed(2)} s (stopped in ${controller.stopSeconds.toFixed(1)} s)`,
  );
  return {
    round: index,
    namespaces,
    seconds: round(controller.seconds),
    floorSeconds: round(floor.seconds),
    floorObservedSeconds: round(floor.observedSeconds),
    ratio: round(controller.seconds / floor.seconds),
    converged: controller.converged,
    timedOut: controller.timedOut,
    peakRssMb: mb(controller.peakRssBytes),
    rssBeforeMb: mb(controller.rssBeforeBytes),
    rssSampling: controller.rssSampling,
    controllerStopSeconds: round(controller.stopSeconds),
    controllerProcess: controller.load,
    floorProcess,
    controllerMetrics: controller.metrics,
    controllerProfile,
    controllerShutdownRequests: controller.shutdownRequests[CONTROLLER_AGENT] ?? {},
    ...(controller.cpu ? { controllerCpu: controller.cpu } : {}),
    floorProfile,
  };
}

/** The API server's mean time for a client-side key such as `PATCH services` or `POST events (collection)`. */
function serverMs(apiserver: ApiServerSample, key: string): number | undefined {
  const [method = '', resource = ''] = key.split(' ');
  const collection = key.endsWith('(collection)');
  const verb = method === 'GET' && collection ? 'LIST' : method;
  const prefix = `${verb} ${resource} `;
  const count = Object.entries(apiserver.requests).reduce((sum, [k, n]) => (k.startsWith(prefix) ? sum + n : sum), 0);
  const seconds = apiserver.seconds[`${verb} ${resource}`];
  return count > 0 && seconds !== undefined ? (1000 * seconds) / count : undefined;
}

/** Request types of a phase, for the printed breakdown. */
function breakdown(p: PhaseProfile, services: number): string[][] {
  const header = ['request', 'count', 'per Service', 'errors', 'client ms', 'server ms', 'first at s', 'last at s'];
  return [
    header,
    ...Object.entries(p.requests)
      .sort(([, a], [, b]) => b.count - a.count)
      .map(([key, r]) => {
        const watch = key.startsWith('WATCH');
        const server = watch ? undefined : serverMs(p.apiserver, key);
        return [
          key,
          String(r.count),
          (r.count / services).toFixed(2),
          Object.entries(r.errors).map(([code, n]) => `${code}x${String(n)}`).join(' ') || '-',
          r.count > 0 && !watch ? (r.totalMs / r.count).toFixed(1) : '-',
          server === undefined ? '-' : server.toFixed(1),
          (r.firstMs / 1000).toFixed(2),
          (r.lastMs / 1000).toFixed(2),
        ];
      }),
  ];
}

export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  installRequestCounter();
  const diagnostics = [...(options.noEvents ? ['no-events'] : []), ...(options.cpuProfile ? ['cpu-profile'] : [])];
  if (options.noEvents) {
    // Diagnostic only: what the run costs without the controller's Events (bench process only).
    EventRecorder.prototype.record = function record(): void {
      // dropped
    };
  }
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let cp: ControlPlane | undefined;
  try {
    cp = await startControlPlane({ controllerManager: false });
    const kc = loadKubeConfig(cp.kubeconfigPath);
    const client = new RestClient(kc, BENCH_AGENT);
    await installCrds(client);
    await applyManifest(client, {
      apiVersion: 'portico.dev/v1alpha1',
      kind: 'AddressPool',
      metadata: { name: POOL_NAME },
      spec: { addresses: [POOL_CIDR], autoAssign: true },
    });
    process.stderr.write(
      `[lb-burst] ${cp.version}; ${String(options.services)} Services per side, ${String(options.workers)} workers, ${String(options.repeat)} round(s)\n`,
    );

    const rounds: Round[] = [];
    for (let i = 1; i <= options.repeat; i++) {
      rounds.push(await runRound(cp, kc, client, i, options, abort.signal));
      if (i < options.repeat) {
        // Untimed: leave nothing for the next round's controller to pick up.
        const last = rounds[rounds.length - 1];
        if (last) for (const ns of Object.values(last.namespaces)) await deleteAllServices(client, ns, options.createConcurrency);
      }
    }

    const seconds = median(rounds.map((r) => r.seconds));
    const floorSeconds = median(rounds.map((r) => r.floorSeconds));
    const ratio = median(rounds.map((r) => r.ratio));
    const peakRssMb = Math.max(...rounds.map((r) => r.peakRssMb));
    const result = {
      benchmark: 'lb-burst',
      ...(diagnostics.length > 0 ? { diagnostics, diagnosticsNote: 'not a comparable result: diagnostics change what is measured' } : {}),
      services: options.services,
      workers: options.workers,
      repeat: options.repeat,
      seconds: round(seconds),
      floorSeconds: round(floorSeconds),
      /** Median of the per-round ratios (each round: controller seconds / floor seconds). */
      ratio: round(ratio),
      targetRatio: TARGET_RATIO,
      peakRssMb,
      peakRssNote:
        'RSS of the whole benchmark process during the controller phase: the in-process controller plus the benchmark client and watch. ' +
        'The larger of the 100 ms samples and, on Linux, the kernel high-water mark (VmHWM) reset at the phase start.',
      timedOut: rounds.some((r) => r.timedOut),
      kubernetesVersion: cp.version,
      date: new Date().toISOString(),
      machine: machine(),
      rounds,
    };

    // A diagnostic run never overwrites the real result.
    const out = new URL(diagnostics.length > 0 ? `./results/lb-burst.${diagnostics.join('.')}.json.tmp` : './results/lb-burst.json', import.meta.url);
    await mkdir(new URL('./', out), { recursive: true });
    await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);

    const last = rounds[rounds.length - 1];
    const rows = [
      ['services', 'workers', 'controller s', 'floor s', 'ratio', 'target', 'peak RSS MB*', 'RSS before MB', 'kubernetes'],
      [
        String(options.services),
        String(options.workers),
        seconds.toFixed(2),
        floorSeconds.toFixed(2),
        ratio.toFixed(2),
        `<= ${String(TARGET_RATIO)}`,
        peakRssMb.toFixed(0),
        median(rounds.map((r) => r.rssBeforeMb)).toFixed(0),
        cp.version,
      ],
    ];
    process.stdout.write(`\nlb-burst${options.repeat > 1 ? ` (median of ${String(options.repeat)} rounds)` : ''}\n${table(rows)}\n`);
    process.stdout.write('* peak RSS of this whole process during the controller phase: the in-process controller plus the benchmark client (RSS before = just before the controller started)\n');
    if (options.repeat > 1) {
      const perRound = [['round', 'controller s', 'floor s', 'ratio', 'peak RSS MB'], ...rounds.map((r) => [String(r.round), r.seconds.toFixed(2), r.floorSeconds.toFixed(2), r.ratio.toFixed(2), r.peakRssMb.toFixed(0)])];
      process.stdout.write(`\n${table(perRound)}\n`);
    }
    if (last) {
      const c = last.controllerProfile;
      process.stdout.write(
        `\ncontroller requests until converged (round ${String(last.round)}; ${String(c.requestsPerService)} per Service; reconciles ${JSON.stringify(last.controllerMetrics.reconciles)}; ` +
          `events dropped ${String(last.controllerMetrics.eventsDropped)}; process CPU ${String(last.controllerProcess.cpuSeconds)} s, event loop ${String(Math.round(last.controllerProcess.eventLoopUtilization * 100))}% busy, delay mean ${String(last.controllerProcess.eventLoopDelayMeanMs)} ms)\n`,
      );
      process.stdout.write(`${table(breakdown(c, options.services))}\n`);
      const f = last.floorProfile;
      process.stdout.write(
        `\nfloor requests (round ${String(last.round)}; ${String(f.requestsPerService)} per Service; process CPU ${String(last.floorProcess.cpuSeconds)} s, event loop ${String(Math.round(last.floorProcess.eventLoopUtilization * 100))}% busy, delay mean ${String(last.floorProcess.eventLoopDelayMeanMs)} ms)\n`,
      );
      process.stdout.write(`${table(breakdown(f, options.services))}\n`);
      if (last.controllerCpu) {
        const cpu = last.controllerCpu;
        process.stdout.write(`\nCPU profile of the controller phase (${String(cpu.totalMs)} ms sampled; full profile in bench/results/lb-burst-controller.cpuprofile.tmp)\n`);
        process.stdout.write(`${table([['area', 'self ms', '%'], ...cpu.areas.slice(0, 15).map((a) => [a.area, String(a.selfMs), a.percent.toFixed(1)])])}\n\n`);
        process.stdout.write(`${table([['function (self)', 'self ms', '%'], ...cpu.functions.slice(0, 25).map((x) => [x.name, String(x.selfMs), x.percent.toFixed(1)])])}\n\n`);
        process.stdout.write(`${table([['function (inclusive)', 'total ms', '%'], ...cpu.inclusive.slice(0, 30).map((x) => [x.name, String(x.totalMs), x.percent.toFixed(1)])])}\n`);
      }
    }
    process.stdout.write(`\nwrote ${out.pathname}\n`);
    if (result.timedOut) process.stderr.write('[lb-burst] warning: the controller did not converge every Service before --timeout; seconds is a lower bound\n');
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cp?.stop();
  }
}
