/**
 * footprint: `portico controller` as users run it — its own process, `node dist/src/cli.js
 * controller --leader-elect` as the Deployment does, default flags — and what it costs around a
 * burst: cold start against the floor, time to quiet after a burst, and memory, CPU and API
 * requests at rest.
 *
 *   npm run bench -- footprint [--services=1000] [--large=5000] [--rounds=4] [--pairs=2]
 *                              [--rest=60] [--quiet-timeout=300] [--timeout=600]
 *                              [--audit-mode=blocking] [--runtime=image]
 *
 * Writes bench/results/footprint.json (medians at the top level: over the cold-start pairs for
 * the cold start, over rounds for the rest; every pair under coldStarts, every round under
 * perRound); `--audit-mode=batch|off` and `--runtime=host` are diagnostics and write
 * footprint.<diagnostics>.json.tmp instead.
 *
 * Runtime: the controller runs on the image's Node.js (hack/image.ts NODE_PACKAGE, fetched once
 * from the npm registry into .cache/node/), as users run it; `--runtime=host` runs it on this
 * machine's node instead. The floor and the benchmark itself run in this process.
 *
 * Kubeconfig: the controller is handed the control plane's kubeconfig as JSON. In a cluster it
 * reads none (its service account's token and CA); a JSON kubeconfig keeps it from loading a
 * YAML parser here that it never loads there (about 40 ms of its start).
 *
 * Setup: dist/ is built once (`npx tsc -p tsconfig.build.json`, as the image build does). One
 * local control plane (etcd + kube-apiserver, no controller manager) with an audit log: every
 * request at level Metadata, written synchronously (`--audit-log-mode=blocking`; see
 * support/audit-log.ts). The controller's user agent is `portico-controller/<version>
 * (<identity>)` and its identity defaults to hostname-pid, so each request is attributed to one
 * process, with the time it arrived. Lease requests are counted apart from the rest; a watch
 * counts once, when it starts. The controller logs at info to bench/results/*.log.tmp; its log
 * is never parsed for a measurement.
 *
 * Addresses: one IPv4 AddressPool, 198.19.0.0/16 (RFC 2544 benchmarking space; the other half
 * of 198.18.0.0/15 is the local control plane's ClusterIP range), serving only namespaces
 * labelled portico.dev/bench=footprint. No speaker runs: addresses are only written to Service
 * status, nothing is announced or sent anywhere. Services: class portico.dev/l2, IPv4
 * single-stack, one TCP port, no node ports.
 *
 * Per round, with N Services and nothing else of any class in the cluster during each phase:
 *   1. --pairs cold starts, each next to its floor, the order alternating from one pair to the
 *      next (floor first, then controller first, ...; as the phase that runs second measured
 *      slower, the default of 2 pairs per round runs each order once a round). Two pairs a round
 *      rather than one: single pairs range from about 1.0 to 1.5 on this machine (the floor
 *      alone moves by a third between rounds), and a median of 8 moves less from run to run
 *      than a median of 4.
 *      cold start: N pending Services exist (created untimed); the process is spawned; time
 *      from spawn to the last Service having an ingress address and our finalizer, as seen by
 *      the benchmark's watch. Process start is included. The process is then stopped (SIGTERM)
 *      and the Services deleted with their finalizers stripped.
 *      floor: N pending Services of a foreign class; one list and the same two writes per
 *      Service (a finalizer; the controller's status body, condition included) at the
 *      controller's default --workers, in this process (support/floor.ts).
 *      coldStartRatio = cold start / floor.
 *   2. burst: a fresh process with no Services of its class; once it holds the Lease and has
 *      been quiet for 5 s, N Services are created 16 at a time in another namespace.
 *      burstS: from the first create to the last of them converged.
 *      quietAfterBurstS: from then to the controller's last non-Lease request before a 5 s
 *      silence (waited for until --quiet-timeout; "never quiet" is reported as null).
 *   3. rest: with those N Services, --rest seconds: restRssMb (VmRSS at the end; min and max
 *      of 1 s samples too), restCpuSPerMin ((utime + stime) over the window, per minute),
 *      restRequests (non-Lease) and restLeaseRequests. Then one more --rest window:
 *      restCpuSteadySPerMin, the same CPU figure a minute later, when anything a burst left
 *      behind (without --idle-compaction: V8's memory reducer, 30-50 s after it) has had its
 *      turn — what an idle controller costs.
 * Running the cold start and the burst in two processes keeps each phase what a user sees:
 * a restart with pending work, and a running controller meeting a burst.
 *
 * At --large Services (5000; 0 skips): coldStartRatio over min(rounds, 4) pairs (one a round,
 * the order alternating), and, in the last of them, restRssMb after the cold start (after
 * quiet, or after --quiet-timeout).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { KubeConfig } from '../src/kube/kubeconfig.js';
import type { ControlPlane } from '../hack/control-plane.js';
import { parseControllerFlags } from '../src/cmd/config.js';
import { abortable } from '../src/kube/abort.js';
import { RestClient } from '../src/kube/rest.js';
import { AUDIT_MODES, countByKind, isLease, type AuditLog, type AuditMode } from './support/audit-log.js';
import { createServices, deleteAllServices, ensureNamespace, watchCompletion, type ServiceShape } from './support/cluster.js';
import { BENCH_AGENT, FLOOR_CLASS, isConverged, runFloor } from './support/floor.js';
import { QUIET_MS, requestsOf, waitLeader, waitQuiet, whileRunning, type Quiet } from './support/observe.js';
import { CONTROLLER_SHAPE, controllerFlags, LEASE_NAME, LEASE_NAMESPACE, NAMESPACE_LABEL, POOL_SIZE, startFootprintCluster, type FootprintCluster } from './support/footprint-cluster.js';
import { ensureImageNode, NODE_FLAGS } from '../hack/image.js';
import { buildDist, cpuBetween, findPid, procCpuSeconds, procMemory, sampleCpu, spawnController, type ControllerProcess } from './support/process.js';
import { intFlag, stringFlags, machine, mb, median, round, sleep, table, UsageError } from './support/util.js';

export const description = 'portico controller as its own process: cold start vs floor, quiet after a burst, RSS/CPU/requests at rest';

const CREATE_CONCURRENCY = 16;
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** Issue #12's targets, recorded next to the figures. */
const TARGETS = {
  coldStartRatio: '<= 1.25 (at 1000 and 5000)',
  quietAfterBurstS: '<= 15',
  restRssMb: '<= 80 at 1000, <= 150 at 5000',
  restCpuSPerMin: '<= 0.05',
  restRequests: '0 (Lease renewals counted apart)',
};

const RUNTIMES = ['image', 'host'] as const;
type Runtime = (typeof RUNTIMES)[number];

interface Options {
  runtime: Runtime;
  services: number;
  large: number;
  rounds: number;
  /** Cold-start/floor pairs per round at --services. */
  pairs: number;
  restS: number;
  quietTimeoutMs: number;
  timeoutMs: number;
  auditMode: AuditMode;
}

export function parseOptions(args: string[]): Options {
  const values = stringFlags(args, { services: '1000', large: '5000', rounds: '4', pairs: '2', rest: '60', 'quiet-timeout': '300', timeout: '600', 'audit-mode': 'blocking', runtime: 'image' });
  const auditMode = values['audit-mode'] as AuditMode;
  if (!AUDIT_MODES.includes(auditMode)) throw new UsageError(`--audit-mode=${values['audit-mode']}: expected one of ${AUDIT_MODES.join(', ')}`);
  const runtime = values.runtime as Runtime;
  if (!RUNTIMES.includes(runtime)) throw new UsageError(`--runtime=${values.runtime}: expected one of ${RUNTIMES.join(', ')}`);
  return {
    runtime,
    services: intFlag('services', values.services, 1, 20_000),
    large: intFlag('large', values.large, 0, 50_000),
    rounds: intFlag('rounds', values.rounds, 1, 25),
    pairs: intFlag('pairs', values.pairs, 1, 10),
    restS: intFlag('rest', values.rest, 1, 3600),
    quietTimeoutMs: intFlag('quiet-timeout', values['quiet-timeout'], 10, 24 * 3600) * 1000,
    timeoutMs: intFlag('timeout', values.timeout, 1, 24 * 3600) * 1000,
    auditMode,
  };
}

const shapes: Record<'controller' | 'floor', ServiceShape> = {
  controller: CONTROLLER_SHAPE,
  floor: { loadBalancerClass: FLOOR_CLASS, ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack' },
};

function floorAddress(n: number): string {
  const i = n % POOL_SIZE;
  return `198.19.${String(i >> 8)}.${String(i & 255)}`;
}

function log(line: string): void {
  process.stderr.write(`[footprint] ${line}\n`);
}

interface Context {
  cp: ControlPlane;
  /** What the controller reads: the kubeconfig as JSON (support/footprint-cluster.ts). */
  controllerKubeconfig: string;
  kc: KubeConfig;
  client: RestClient;
  audit: AuditLog;
  options: Options;
  workers: number;
  /** The node binary the controller runs on. */
  node: string;
  signal: AbortSignal;
  /** Every process spawned, stopped on every exit path. */
  processes: Set<ControllerProcess>;
  /** The control plane's processes, whose CPU each cold start and floor records. */
  planePids: { apiServer: number | undefined; etcd: number | undefined };
  logDir: URL;
}

function start(ctx: Context, name: string): ControllerProcess {
  const logPath = fileURLToPath(new URL(`footprint.${name}.log.tmp`, ctx.logDir));
  const proc = spawnController(repoRoot, controllerFlags(ctx.controllerKubeconfig), logPath, ctx.node);
  ctx.processes.add(proc);
  void proc.exited.then(() => ctx.processes.delete(proc));
  return proc;
}

async function stop(ctx: Context, proc: ControllerProcess): Promise<void> {
  await proc.stop();
  ctx.processes.delete(proc);
}

interface Rest {
  rssMb: number;
  rssMinMb: number;
  rssMaxMb: number;
  cpuSPerMin: number;
  requests: number;
  leaseRequests: number;
  requestKinds: Record<string, number>;
}

async function measureRest(ctx: Context, proc: ControllerProcess): Promise<Rest> {
  const from = Date.now();
  const cpuBefore = procCpuSeconds(proc.pid);
  const rss: number[] = [];
  const started = performance.now();
  for (let i = 1; i <= ctx.options.restS; i++) {
    await abortable(whileRunning(proc, sleep(Math.max(0, started + i * 1000 - performance.now())), 'the rest window'), ctx.signal);
    rss.push(procMemory(proc.pid).rssBytes);
  }
  const cpu = procCpuSeconds(proc.pid) - cpuBefore;
  const elapsedS = (performance.now() - started) / 1000;
  const to = Date.now();
  await sleep(ctx.audit.lagMs);
  const records = await requestsOf(ctx, proc, from, to);
  const lease = records.filter(isLease);
  const other = records.filter((r) => !isLease(r));
  return {
    rssMb: mb(rss.at(-1) ?? NaN),
    rssMinMb: mb(Math.min(...rss)),
    rssMaxMb: mb(Math.max(...rss)),
    cpuSPerMin: round((cpu / elapsedS) * 60, 3),
    requests: other.length,
    leaseRequests: lease.length,
    requestKinds: countByKind(records),
  };
}

interface ColdStart {
  seconds: number;
  /** Non-Lease requests from spawn to convergence. */
  requests: number;
  /** From spawn to the process's first request to the API server (Node start, imports, setup). */
  firstRequestS: number | null;
  peakRssMb: number;
  /** CPU seconds from spawn to convergence: the controller, the benchmark, the API server, etcd, the machine's idle and steal time. */
  cpu: Record<string, number>;
  /** Only in the phase that also measured rest (the last --large round). */
  quiet?: Quiet;
  rest?: Rest;
}

async function coldStart(ctx: Context, services: number, namespace: string, name: string, thenRest: boolean): Promise<ColdStart> {
  await ensureNamespace(ctx.client, namespace, NAMESPACE_LABEL);
  const created = performance.now();
  await createServices(ctx.client, namespace, services, shapes.controller, CREATE_CONCURRENCY);
  log(`${name}: created ${String(services)} pending Services in ${((performance.now() - created) / 1000).toFixed(1)} s (not timed)`);
  await sleep(1000);
  const completion = await watchCompletion(new RestClient(ctx.kc, BENCH_AGENT), `/api/v1/namespaces/${namespace}/services`, services, isConverged);
  let proc: ControllerProcess | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const cpuBefore = sampleCpu(ctx.planePids);
    const benchBefore = process.cpuUsage();
    const spawnedAtMs = Date.now();
    const spawned = performance.now();
    proc = start(ctx, namespace);
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${name}: not converged after ${String(ctx.options.timeoutMs / 1000)} s (${String(completion.done())}/${String(services)})`)), ctx.options.timeoutMs)));
    const finished = await abortable(whileRunning(proc, Promise.race([completion.finished, timeout]), name), ctx.signal);
    if (finished === undefined) throw new Error(`${name}: the completion watch stopped early`);
    const cpu = { controller: round(procCpuSeconds(proc.pid), 2), bench: benchCpuSince(benchBefore), ...cpuBetween(cpuBefore, sampleCpu(ctx.planePids)) };
    const seconds = (finished - spawned) / 1000;
    const convergedAtMs = performance.timeOrigin + finished;
    const records = await requestsOf(ctx, proc, spawnedAtMs, convergedAtMs);
    const first = records[0];
    const result: ColdStart = {
      seconds: round(seconds),
      requests: records.filter((r) => !isLease(r)).length,
      firstRequestS: first === undefined ? null : round((first.at - spawnedAtMs) / 1000),
      peakRssMb: 0,
      cpu,
    };
    log(`${name}: ${String(services)} Services converged ${seconds.toFixed(2)} s after spawn (first request at ${fmt(result.firstRequestS)} s)`);
    if (thenRest) {
      result.quiet = await waitQuiet(ctx, proc, convergedAtMs, ctx.options.quietTimeoutMs);
      log(`${name}: ${result.quiet.seconds === null ? `never quiet within ${String(ctx.options.quietTimeoutMs / 1000)} s` : `quiet ${String(result.quiet.seconds)} s after convergence`}; ${String(ctx.options.restS)} s at rest ...`);
      result.rest = await measureRest(ctx, proc);
      log(`${name}: at rest RSS ${String(result.rest.rssMb)} MB, CPU ${String(result.rest.cpuSPerMin)} s/min, ${String(result.rest.requests)} requests + ${String(result.rest.leaseRequests)} Lease`);
    }
    result.peakRssMb = mb(procMemory(proc.pid).hwmBytes);
    return result;
  } finally {
    clearTimeout(timer);
    completion.stop();
    if (proc) await stop(ctx, proc);
    await deleteAllServices(ctx.client, namespace, CREATE_CONCURRENCY);
  }
}

function benchCpuSince(before: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(before);
  return round((used.user + used.system) / 1e6, 2);
}

async function floor(ctx: Context, services: number, namespace: string, name: string): Promise<{ seconds: number; cpu: Record<string, number> }> {
  await ensureNamespace(ctx.client, namespace, NAMESPACE_LABEL);
  await createServices(ctx.client, namespace, services, shapes.floor, CREATE_CONCURRENCY);
  await sleep(1000);
  try {
    const cpuBefore = sampleCpu(ctx.planePids);
    const benchBefore = process.cpuUsage();
    const result = await abortable(runFloor(ctx.kc, namespace, { services, workers: ctx.workers, address: floorAddress }), ctx.signal);
    const cpu = { bench: benchCpuSince(benchBefore), ...cpuBetween(cpuBefore, sampleCpu(ctx.planePids)) };
    log(`${name}: ${String(result.services)} Services in ${result.seconds.toFixed(2)} s`);
    return { seconds: round(result.seconds), cpu };
  } finally {
    await deleteAllServices(ctx.client, namespace, CREATE_CONCURRENCY);
  }
}

type Order = 'floor first' | 'controller first';

/** One cold start and its floor, run back to back. */
interface Pair {
  round: number;
  order: Order;
  coldStartS: number;
  floorS: number;
  coldStartRatio: number;
  /** Non-Lease requests from spawn to convergence. */
  coldStartRequests: number;
  coldStartFirstRequestS: number | null;
  coldStartPeakRssMb: number;
  /**
   * CPU seconds during each phase, to tell what a slow pair was made of: the controller (cold
   * start only), this process (the floor's client, and in both phases the completion watch),
   * the API server, etcd, and the machine's idle and steal time (both cores).
   */
  coldStartCpuS: Record<string, number>;
  floorCpuS: Record<string, number>;
}

/** The n-th pair of a run (from 0) runs the floor first when n is even: the orders alternate. */
function orderOf(n: number): Order {
  return n % 2 === 0 ? 'floor first' : 'controller first';
}

async function coldAndFloor(ctx: Context, roundIndex: number, order: Order, services: number, id: string, thenRest: boolean): Promise<{ pair: Pair; cold: ColdStart }> {
  const cold = (): Promise<ColdStart> => coldStart(ctx, services, `${id}-cold`, `${id} cold start`, thenRest);
  const bare = (): Promise<{ seconds: number; cpu: Record<string, number> }> => floor(ctx, services, `${id}-floor`, `${id} floor`);
  let c: ColdStart;
  let f: { seconds: number; cpu: Record<string, number> };
  if (order === 'floor first') {
    f = await bare();
    c = await cold();
  } else {
    c = await cold();
    f = await bare();
  }
  const floorS = f.seconds;
  return {
    cold: c,
    pair: {
      round: roundIndex,
      order,
      coldStartS: c.seconds,
      floorS,
      coldStartRatio: round(c.seconds / floorS),
      coldStartRequests: c.requests,
      coldStartFirstRequestS: c.firstRequestS,
      coldStartPeakRssMb: c.peakRssMb,
      coldStartCpuS: c.cpu,
      floorCpuS: f.cpu,
    },
  };
}

interface Burst {
  seconds: number;
  quiet: Quiet;
  rest: Rest;
  /** A second window right after the first: CPU once the after-burst one-offs are over. */
  steadyCpuSPerMin: number;
  peakRssMb: number;
}

async function burst(ctx: Context, index: number): Promise<Burst> {
  const { services } = ctx.options;
  const namespace = `fp-burst-${String(index)}`;
  const name = `round ${String(index)} burst`;
  await ensureNamespace(ctx.client, namespace, NAMESPACE_LABEL);
  const proc = start(ctx, namespace);
  let completion: Awaited<ReturnType<typeof watchCompletion>> | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const spawnedAtMs = Date.now();
    await waitLeader(ctx, proc, LEASE_NAMESPACE, LEASE_NAME);
    const settled = await waitQuiet(ctx, proc, spawnedAtMs, 60_000);
    if (settled.seconds === null) log(`${name}: the idle process was not quiet within 60 s; bursting anyway`);
    completion = await watchCompletion(new RestClient(ctx.kc, BENCH_AGENT), `/api/v1/namespaces/${namespace}/services`, services, isConverged);
    const started = performance.now();
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${name}: not converged after ${String(ctx.options.timeoutMs / 1000)} s (${String(completion?.done())}/${String(services)})`)), ctx.options.timeoutMs)));
    const creating = createServices(ctx.client, namespace, services, shapes.controller, CREATE_CONCURRENCY);
    // Awaited below; until then a failure must not surface as an unhandled rejection.
    creating.catch(() => undefined);
    const finished = await abortable(whileRunning(proc, Promise.race([completion.finished, timeout]), name), ctx.signal);
    await creating;
    if (finished === undefined) throw new Error(`${name}: the completion watch stopped early`);
    const seconds = (finished - started) / 1000;
    log(`${name}: ${String(services)} Services created 16 at a time converged in ${seconds.toFixed(2)} s; waiting for quiet ...`);
    const quiet = await waitQuiet(ctx, proc, performance.timeOrigin + finished, ctx.options.quietTimeoutMs);
    log(`${name}: ${quiet.seconds === null ? `never quiet within ${String(ctx.options.quietTimeoutMs / 1000)} s` : `quiet ${String(quiet.seconds)} s after the last address`} (${JSON.stringify(quiet.requests)}); ${String(ctx.options.restS)} s at rest ...`);
    const rest = await measureRest(ctx, proc);
    log(`${name}: at rest RSS ${String(rest.rssMb)} MB (min ${String(rest.rssMinMb)}, max ${String(rest.rssMaxMb)}), CPU ${String(rest.cpuSPerMin)} s/min, ${String(rest.requests)} requests + ${String(rest.leaseRequests)} Lease`);
    const steady = await measureRest(ctx, proc);
    log(`${name}: the next ${String(ctx.options.restS)} s at rest: CPU ${String(steady.cpuSPerMin)} s/min, RSS ${String(steady.rssMb)} MB`);
    return { seconds: round(seconds), quiet, rest, steadyCpuSPerMin: steady.cpuSPerMin, peakRssMb: mb(procMemory(proc.pid).hwmBytes) };
  } finally {
    clearTimeout(timer);
    completion?.stop();
    await stop(ctx, proc);
    await deleteAllServices(ctx.client, namespace, CREATE_CONCURRENCY);
  }
}

interface Round {
  round: number;
  burstS: number;
  quietAfterBurstS: number | null;
  /** Non-Lease requests from the last address until quiet (or the timeout). */
  afterBurstRequests: Record<string, number>;
  burstProcessPeakRssMb: number;
  restRssMb: number;
  restRssMinMb: number;
  restRssMaxMb: number;
  restCpuSPerMin: number;
  restCpuSteadySPerMin: number;
  restRequests: number;
  restLeaseRequests: number;
  restRequestKinds: Record<string, number>;
}

function medianOrNull(values: readonly (number | null)[]): number | null {
  // A round that never went quiet counts as longer than any that did.
  if (values.length === 0) return null;
  const sorted = values.map((v) => (v === null ? Infinity : v)).sort((a, b) => a - b);
  const m = median(sorted);
  return Number.isFinite(m) ? round(m) : null;
}

function cpuCells(cpu: Record<string, number>, client: string): string {
  return [cpu[client], cpu.apiServer, cpu.idle].map((v) => fmt(v)).join(', ');
}

function fmt(value: number | null | undefined, digits = 2): string {
  return value === null || value === undefined ? 'never' : value.toFixed(digits);
}

export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const workers = parseControllerFlags([]).workers;
  const abort = new AbortController();
  const onSignal = (): void => abort.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const processes = new Set<ControllerProcess>();
  const logDir = new URL('./results/', import.meta.url);
  await mkdir(logDir, { recursive: true });
  let cluster: FootprintCluster | undefined;
  try {
    const built = performance.now();
    buildDist(repoRoot);
    log(`built dist/ in ${((performance.now() - built) / 1000).toFixed(1)} s`);
    const node = options.runtime === 'image' ? ensureImageNode((line) => log(line)).binary : process.execPath;
    const nodeVersion = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    cluster = await startFootprintCluster(options.auditMode);
    const { cp, controllerKubeconfig, kc, client, audit } = cluster;
    const planePids = {
      apiServer: findPid((argv) => (argv[0] ?? '').endsWith('kube-apiserver') && argv.includes(`--tls-cert-file=${join(cp.dir, 'apiserver.crt')}`)),
      etcd: findPid((argv) => (argv[0] ?? '').endsWith('etcd') && argv.includes(`--data-dir=${join(cp.dir, 'etcd-data')}`)),
    };
    if (planePids.apiServer === undefined || planePids.etcd === undefined) log(`the control plane's processes were not found (${JSON.stringify(planePids)}): their CPU is not recorded`);
    const ctx: Context = { cp, controllerKubeconfig, kc, client, audit, options, workers, node, signal: abort.signal, processes, logDir, planePids };
    log(`${cp.version}; controller on Node ${nodeVersion} (${options.runtime}), floor on ${process.version}; ${String(options.services)} Services, ${String(options.rounds)} round(s), ${String(options.restS)} s at rest; floor at ${String(workers)} workers; audit log ${options.auditMode}${options.large > 0 ? `; then ${String(options.large)} Services` : ''}`);

    const rounds: Round[] = [];
    const pairs: Pair[] = [];
    for (let i = 1; i <= options.rounds; i++) {
      for (let j = 0; j < options.pairs; j++) {
        const id = `fp-${String(i)}${options.pairs > 1 ? String.fromCharCode(97 + j) : ''}`;
        pairs.push((await coldAndFloor(ctx, i, orderOf(pairs.length), options.services, id, false)).pair);
      }
      const b = await burst(ctx, i);
      rounds.push({
        round: i,
        burstS: b.seconds,
        quietAfterBurstS: b.quiet.seconds,
        afterBurstRequests: b.quiet.requests,
        burstProcessPeakRssMb: b.peakRssMb,
        restRssMb: b.rest.rssMb,
        restRssMinMb: b.rest.rssMinMb,
        restRssMaxMb: b.rest.rssMaxMb,
        restCpuSPerMin: b.rest.cpuSPerMin,
        restCpuSteadySPerMin: b.steadyCpuSPerMin,
        restRequests: b.rest.requests,
        restLeaseRequests: b.rest.leaseRequests,
        restRequestKinds: b.rest.requestKinds,
      });
    }

    const largeRounds: Pair[] = [];
    let largeRest: { quiet: Quiet; rest: Rest } | undefined;
    const largeCount = options.large > 0 ? Math.min(options.rounds, 4) : 0;
    for (let i = 1; i <= largeCount; i++) {
      const last = i === largeCount;
      const { pair, cold } = await coldAndFloor(ctx, i, orderOf(i - 1), options.large, `fp-large-${String(i)}`, last);
      largeRounds.push(pair);
      if (cold.quiet && cold.rest) largeRest = { quiet: cold.quiet, rest: cold.rest };
    }

    const m = (pick: (r: Round) => number): number => round(median(rounds.map(pick)));
    const mp = (pick: (r: Pair) => number): number => round(median(pairs.map(pick)));
    const diagnostics = [...(options.auditMode !== 'blocking' ? [`audit-${options.auditMode}`] : []), ...(options.runtime !== 'image' ? [`runtime-${options.runtime}`] : [])];
    const result = {
      benchmark: 'footprint',
      ...(diagnostics.length > 0 ? { diagnostics, diagnosticsNote: 'not the standard setup: the audit log mode (off: no request counts, no quiet) or the controller\'s runtime differs' } : {}),
      services: options.services,
      rounds: options.rounds,
      coldStartPairs: pairs.length,
      coldStartRatio: mp((r) => r.coldStartRatio),
      burstS: m((r) => r.burstS),
      quietAfterBurstS: medianOrNull(rounds.map((r) => r.quietAfterBurstS)),
      restRssMb: m((r) => r.restRssMb),
      restCpuSPerMin: m((r) => r.restCpuSPerMin),
      restCpuSteadySPerMin: m((r) => r.restCpuSteadySPerMin),
      restRequests: m((r) => r.restRequests),
      restLeaseRequests: m((r) => r.restLeaseRequests),
      coldStartS: mp((r) => r.coldStartS),
      floorS: mp((r) => r.floorS),
      ...(largeRounds.length > 0
        ? {
            at5000: {
              services: options.large,
              rounds: largeRounds.length,
              coldStartRatio: round(median(largeRounds.map((r) => r.coldStartRatio))),
              restRssMb: largeRest?.rest.rssMb ?? null,
              coldStartS: round(median(largeRounds.map((r) => r.coldStartS))),
              floorS: round(median(largeRounds.map((r) => r.floorS))),
              quietAfterColdStartS: largeRest?.quiet.seconds ?? null,
              /** The rest window began at the quiet timeout, with the controller still busy. */
              restWhileNotQuiet: largeRest !== undefined && largeRest.quiet.seconds === null,
              afterColdStartRequests: largeRest?.quiet.requests ?? {},
              rest: largeRest?.rest ?? null,
              perRound: largeRounds,
            },
          }
        : {}),
      targets: TARGETS,
      settings: {
        workers,
        coldStartPairsPerRound: options.pairs,
        restS: options.restS,
        quietS: QUIET_MS / 1000,
        quietTimeoutS: options.quietTimeoutMs / 1000,
        createConcurrency: CREATE_CONCURRENCY,
        auditMode: options.auditMode,
        runtime: options.runtime,
        controllerNode: nodeVersion,
        floorNode: process.version,
        nodeFlags: NODE_FLAGS,
        controllerFlags: controllerFlags('<kubeconfig>'),
        notes: [
          'medians over rounds; quietAfterBurstS null = never quiet within quietTimeoutS (a never-quiet round counts as the longest)',
          'RSS from /proc/<pid>/status (VmRSS; peak = VmHWM), CPU from /proc/<pid>/stat (utime + stime), requests from the audit log by user agent and identity',
        ],
      },
      kubernetesVersion: cp.version,
      date: new Date().toISOString(),
      machine: { ...machine(), loadAverage: (await import('node:os')).loadavg().map((l) => round(l, 2)) },
      coldStarts: pairs,
      perRound: rounds,
    };
    const out = new URL(diagnostics.length === 0 ? './results/footprint.json' : `./results/footprint.${diagnostics.join('.')}.json.tmp`, import.meta.url);
    await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);

    const pairRows = [
      ['round', 'order', 'cold s', 'floor s', 'coldStartRatio', 'first request s', 'peak RSS MB', 'CPU s cold (controller, API server, idle)', 'CPU s floor (client, API server, idle)'],
      ...pairs.map((r) => [
        String(r.round),
        r.order,
        r.coldStartS.toFixed(2),
        r.floorS.toFixed(2),
        r.coldStartRatio.toFixed(2),
        fmt(r.coldStartFirstRequestS),
        r.coldStartPeakRssMb.toFixed(0),
        cpuCells(r.coldStartCpuS, 'controller'),
        cpuCells(r.floorCpuS, 'bench'),
      ]),
      ['median', '', result.coldStartS.toFixed(2), result.floorS.toFixed(2), result.coldStartRatio.toFixed(2), '', '', '', ''],
      ['target', '', '', '', '<= 1.25', '', '', '', ''],
    ];
    const rows = [
      ['round', 'burstS', 'quietAfterBurstS', 'restRssMb (min-max)', 'restCpuSPerMin', 'steady', 'restRequests', 'restLeaseRequests'],
      ...rounds.map((r) => [
        String(r.round),
        r.burstS.toFixed(2),
        fmt(r.quietAfterBurstS, 1),
        `${r.restRssMb.toFixed(0)} (${r.restRssMinMb.toFixed(0)}-${r.restRssMaxMb.toFixed(0)})`,
        r.restCpuSPerMin.toFixed(3),
        r.restCpuSteadySPerMin.toFixed(3),
        String(r.restRequests),
        String(r.restLeaseRequests),
      ]),
      ['median', result.burstS.toFixed(2), fmt(result.quietAfterBurstS, 1), result.restRssMb.toFixed(0), result.restCpuSPerMin.toFixed(3), result.restCpuSteadySPerMin.toFixed(3), String(result.restRequests), String(result.restLeaseRequests)],
      ['target', '', '<= 15', '<= 80', '<= 0.05', '', '0', ''],
    ];
    process.stdout.write(
      `\nfootprint: ${String(options.services)} Services, controller as its own process (${cp.version})\ncold start against the floor, ${String(pairs.length)} pairs\n${table(pairRows)}\nburst and rest, ${String(rounds.length)} rounds\n${table(rows)}\n`,
    );
    if (result.at5000) {
      const l = result.at5000;
      const largeRows = [
        ['round', 'order', 'cold s', 'floor s', 'coldStartRatio', 'peak RSS MB'],
        ...l.perRound.map((r) => [String(r.round), r.order, r.coldStartS.toFixed(2), r.floorS.toFixed(2), r.coldStartRatio.toFixed(2), r.coldStartPeakRssMb.toFixed(0)]),
        ['median', '', l.coldStartS.toFixed(2), l.floorS.toFixed(2), l.coldStartRatio.toFixed(2), ''],
      ];
      process.stdout.write(
        `\nat ${String(l.services)} Services\n${table(largeRows)}\nrestRssMb ${fmt(l.restRssMb, 0)} (target <= 150), ${l.quietAfterColdStartS === null ? 'never quiet' : `quiet ${fmt(l.quietAfterColdStartS, 1)} s`} after the cold start, ` +
          `rest CPU ${fmt(l.rest?.cpuSPerMin, 3)} s/min, ${String(l.rest?.requests ?? '-')} requests + ${String(l.rest?.leaseRequests ?? '-')} Lease\n`,
      );
    }
    process.stdout.write(`\nwrote ${fileURLToPath(out)}\n`);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await Promise.all([...processes].map((p) => p.stop(5_000)));
    await cluster?.stop();
  }
}
