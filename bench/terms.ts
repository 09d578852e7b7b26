/**
 * terms: does a controller process grow across leadership terms? One process leads 20 terms
 * with N Services (1000); the benchmark takes the Lease away after each term and gives it back.
 *
 *   npm run bench -- terms [--terms=20] [--services=1000] [--quiet-timeout=300]
 *
 * Writes bench/results/footprint-terms.json: services, terms, RSS after term 1 and after the
 * last term and their ratio (issue #12: within 10% after GC), the same for the V8 heap after a
 * forced GC, and every term's figures.
 *
 * `portico controller` exits when it loses leadership (so that its pod restarts fresh): a
 * process with many terms exists only where startController runs again in the same process,
 * as lb-burst and the tests do. support/terms-process.ts is that process: the compiled
 * controller (dist/) with the CLI's flags (footprint's: --leader-elect, defaults), started
 * again after each lost term, run with --expose-gc.
 *
 * Same cluster as footprint (support/footprint-cluster.ts). N Services exist before the process
 * starts. Each term: the process holds the Lease, every Service has its address (term 1), and it
 * has been quiet (no request but Lease renewals) for 5 s, or --quiet-timeout passed; then
 *   - rssMb: VmRSS from /proc/<pid>/status, as it is (no forced GC);
 *   - SIGUSR2 makes the process run two full GCs and report process.memoryUsage():
 *     rssAfterGcMb and heapUsedAfterGcMb.
 * The term ends when the benchmark overwrites the Lease with another holder (the controller sees
 * it at its next renewal and loses the term); once the process reports the loss, the benchmark
 * deletes the Lease so the next campaign wins at once. From outside, RSS is what can be
 * observed; "after GC" is only what the process reports after its forced GC.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { V1Lease } from '@kubernetes/client-node';
import { abortable } from '../src/kube/abort.js';
import { isKubeError, RestClient } from '../src/kube/rest.js';
import { createServices, ensureNamespace, watchCompletion } from './support/cluster.js';
import { BENCH_AGENT, isConverged } from './support/floor.js';
import { CONTROLLER_SHAPE, controllerFlags, LEASE_NAME, LEASE_NAMESPACE, NAMESPACE_LABEL, startFootprintCluster, type FootprintCluster } from './support/footprint-cluster.js';
import { leaseHolder, waitLeader, waitQuiet, whileRunning, type Observer, type Quiet } from './support/observe.js';
import { buildDist, procMemory, spawnTermsProcess, type ControllerProcess } from './support/process.js';
import { intFlag, stringFlags, machine, mb, round, sleep, table } from './support/util.js';

export const description = 'one controller process leads 20 terms with 1000 Services: RSS and heap after term 1 vs the last';

const NAMESPACE = 'fp-terms';
const THIEF = 'footprint-bench-thief';
const LEASE_PATH = `/apis/coordination.k8s.io/v1/namespaces/${LEASE_NAMESPACE}/leases/${LEASE_NAME}`;
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

interface Options {
  terms: number;
  services: number;
  quietTimeoutMs: number;
}

export function parseOptions(args: string[]): Options {
  const values = stringFlags(args, { terms: '20', services: '1000', 'quiet-timeout': '300' });
  return {
    terms: intFlag('terms', values.terms, 2, 200),
    services: intFlag('services', values.services, 1, 20_000),
    quietTimeoutMs: intFlag('quiet-timeout', values['quiet-timeout'], 10, 24 * 3600) * 1000,
  };
}

function log(line: string): void {
  process.stderr.write(`[terms] ${line}\n`);
}

interface ProcessEvent {
  event: 'started' | 'lost' | 'memory';
  rss?: number;
  heapUsed?: number;
  heapTotal?: number;
  external?: number;
  gc?: boolean;
}

/** The process's stdout events, awaited one kind at a time. */
function events(proc: ControllerProcess): { next(kind: ProcessEvent['event'], timeoutMs: number): Promise<ProcessEvent> } {
  const queue: ProcessEvent[] = [];
  const waiters: (() => void)[] = [];
  if (!proc.child.stdout) throw new Error('the terms process has no stdout pipe');
  createInterface({ input: proc.child.stdout }).on('line', (line) => {
    try {
      queue.push(JSON.parse(line) as ProcessEvent);
    } catch {
      return;
    }
    for (const wake of waiters.splice(0)) wake();
  });
  return {
    next: async (kind, timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const index = queue.findIndex((e) => e.event === kind);
        if (index >= 0) return queue.splice(index, 1)[0] as ProcessEvent;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no "${kind}" event from the terms process within ${String(timeoutMs / 1000)} s`);
        await whileRunning(proc, new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        }), `the wait for "${kind}"`);
      }
    },
  };
}

/** Overwrites the Lease with another holder, as a candidate that took it over would. */
async function stealLease(client: RestClient): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const lease = await client.request<V1Lease>('GET', LEASE_PATH);
    const now = new Date().toISOString().replace('Z', '000Z');
    const body = {
      ...lease,
      spec: { ...lease.spec, holderIdentity: THIEF, acquireTime: now, renewTime: now, leaseDurationSeconds: 15, leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 },
    };
    try {
      await client.request('PUT', LEASE_PATH, { body });
      return;
    } catch (error) {
      // The controller renewed in between: read it again.
      if (!isKubeError(error, 409) || attempt >= 10) throw error;
    }
  }
}

interface Term {
  term: number;
  /** From the Lease being freed (deleted) to this process holding it again; null for term 1. */
  regainedS: number | null;
  /** From spawn (term 1) or the Lease being freed to the last non-Lease request before 5 s of quiet. */
  quietS: number | null;
  requestsUntilQuiet: Record<string, number>;
  rssMb: number;
  rssAfterGcMb: number;
  heapUsedAfterGcMb: number;
  /** What V8 keeps committed for its heap after GC, used or not. */
  heapTotalAfterGcMb: number;
  /** Memory outside the V8 heap that JavaScript objects hold (Buffers, TLS and other native objects). */
  externalAfterGcMb: number;
}

/** Least-squares slope of y over x; NaN with fewer than two points. */
export function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return round(sxy / sxx, 3);
}

export async function run(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const abort = new AbortController();
  const onSignal = (): void => abort.abort(new Error('interrupted'));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let cluster: FootprintCluster | undefined;
  let proc: ControllerProcess | undefined;
  try {
    buildDist(repoRoot);
    cluster = await startFootprintCluster('blocking');
    const { cp, kc, client, audit } = cluster;
    const observer: Observer = { audit, client, signal: abort.signal };
    await ensureNamespace(client, NAMESPACE, NAMESPACE_LABEL);
    await createServices(client, NAMESPACE, options.services, CONTROLLER_SHAPE, 16);
    log(`${cp.version}; ${String(options.services)} Services created; ${String(options.terms)} terms`);
    const completion = await watchCompletion(new RestClient(kc, BENCH_AGENT), `/api/v1/namespaces/${NAMESPACE}/services`, options.services, isConverged);
    await mkdir(new URL('./results/', import.meta.url), { recursive: true });
    proc = spawnTermsProcess(repoRoot, controllerFlags(cluster.controllerKubeconfig), fileURLToPath(new URL('./results/footprint-terms.log.tmp', import.meta.url)));
    const running = proc;
    const stream = events(running);
    const terms: Term[] = [];
    let freedAt: number | undefined;
    const spawnedAt = Date.now();
    for (let term = 1; term <= options.terms; term++) {
      await waitLeader(observer, running, LEASE_NAMESPACE, LEASE_NAME);
      const ledAt = Date.now();
      if (term === 1) {
        const finished = await abortable(whileRunning(running, completion.finished, 'term 1'), abort.signal);
        completion.stop();
        if (finished === undefined) throw new Error('the completion watch stopped early');
      }
      const quiet: Quiet = await waitQuiet(observer, running, freedAt ?? spawnedAt, options.quietTimeoutMs);
      const rssBytes = procMemory(running.pid).rssBytes;
      running.child.kill('SIGUSR2');
      const memory = await abortable(stream.next('memory', 30_000), abort.signal);
      const row: Term = {
        term,
        regainedS: freedAt === undefined ? null : round((ledAt - freedAt) / 1000),
        quietS: quiet.seconds,
        requestsUntilQuiet: quiet.requests,
        rssMb: mb(rssBytes),
        rssAfterGcMb: mb(memory.rss ?? NaN),
        heapUsedAfterGcMb: mb(memory.heapUsed ?? NaN),
        heapTotalAfterGcMb: mb(memory.heapTotal ?? NaN),
        externalAfterGcMb: mb(memory.external ?? NaN),
      };
      terms.push(row);
      log(`term ${String(term)}: RSS ${String(row.rssMb)} MB; after GC RSS ${String(row.rssAfterGcMb)} MB, heap ${String(row.heapUsedAfterGcMb)} MB; ${quiet.seconds === null ? 'never quiet' : `quiet after ${String(quiet.seconds)} s`}`);
      if (term === options.terms) break;
      await stealLease(client);
      await abortable(stream.next('lost', 60_000), abort.signal);
      freedAt = Date.now();
      await client.request('DELETE', LEASE_PATH).catch((error: unknown) => {
        if (!isKubeError(error, 404)) throw error;
      });
      // The process starts again at once; its next campaign finds no Lease and takes it.
      await abortable(stream.next('started', 30_000), abort.signal);
      await sleep(100);
      if ((await leaseHolder(observer, LEASE_NAMESPACE, LEASE_NAME)) === THIEF) throw new Error('the Lease is still held by the bench');
    }

    const first = terms[0];
    const last = terms[terms.length - 1];
    if (!first || !last) throw new Error('no terms measured');
    const result = {
      benchmark: 'footprint-terms',
      services: options.services,
      terms: terms.length,
      rssAfterTerm1Mb: first.rssMb,
      rssAfterLastTermMb: last.rssMb,
      rssRatio: round(last.rssMb / first.rssMb),
      rssAfterGcTerm1Mb: first.rssAfterGcMb,
      rssAfterGcLastTermMb: last.rssAfterGcMb,
      rssAfterGcRatio: round(last.rssAfterGcMb / first.rssAfterGcMb),
      heapUsedAfterGcTerm1Mb: first.heapUsedAfterGcMb,
      heapUsedAfterGcLastTermMb: last.heapUsedAfterGcMb,
      heapUsedAfterGcRatio: round(last.heapUsedAfterGcMb / first.heapUsedAfterGcMb),
      /**
       * Least-squares slope of the heap after GC from term 2 on: term 1 also carries what its
       * own burst of work left, so a steady growth per term can hide under the first/last ratio.
       */
      heapUsedAfterGcGrowthPerTermMb: slope(terms.slice(1).map((t) => [t.term, t.heapUsedAfterGcMb])),
      rssAfterGcGrowthPerTermMb: slope(terms.slice(1).map((t) => [t.term, t.rssAfterGcMb])),
      target: 'the last term within 10% of the first, after GC (ratio <= 1.10)',
      notes: [
        'one process, startController run again after each lost term (the CLI exits on a lost term instead); compiled dist/ code',
        'rssMb: VmRSS from /proc as it is; *AfterGc: process.memoryUsage() after two forced full GCs (--expose-gc), reported by the process',
        'each term measured once it held the Lease and was quiet (no request but Lease renewals) for 5 s',
      ],
      kubernetesVersion: cp.version,
      date: new Date().toISOString(),
      machine: { ...machine(), loadAverage: loadavg().map((l) => round(l, 2)) },
      perTerm: terms,
    };
    const out = new URL('./results/footprint-terms.json', import.meta.url);
    await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
    const rows = [
      ['term', 'regained s', 'quiet s', 'RSS MB', 'RSS after GC MB', 'heap after GC MB', 'heap committed MB', 'external MB'],
      ...terms.map((t) => [
        String(t.term),
        t.regainedS === null ? '-' : t.regainedS.toFixed(1),
        t.quietS === null ? 'never' : t.quietS.toFixed(1),
        t.rssMb.toFixed(1),
        t.rssAfterGcMb.toFixed(1),
        t.heapUsedAfterGcMb.toFixed(1),
        t.heapTotalAfterGcMb.toFixed(1),
        t.externalAfterGcMb.toFixed(1),
      ]),
    ];
    process.stdout.write(
      `\nterms: one process, ${String(terms.length)} leadership terms, ${String(options.services)} Services (${cp.version})\n${table(rows)}\n` +
        `last / first: RSS ${result.rssRatio.toFixed(2)}, RSS after GC ${result.rssAfterGcRatio.toFixed(2)}, heap after GC ${result.heapUsedAfterGcRatio.toFixed(2)} (target <= 1.10 after GC)\n` +
        `growth per term from term 2 (least squares): heap after GC ${String(result.heapUsedAfterGcGrowthPerTermMb)} MB, RSS after GC ${String(result.rssAfterGcGrowthPerTermMb)} MB\n` +
        `\nwrote ${fileURLToPath(out)}\n`,
    );
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    await proc?.stop(5_000);
    await cluster?.stop();
  }
}
