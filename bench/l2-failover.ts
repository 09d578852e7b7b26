/**
 * l2-failover: how long a client's neighbour entry for a load-balancer address keeps pointing
 * at a node that can no longer answer, with the speaker's default settings.
 *
 * Three node namespaces and a client namespace on a bridge (test/.../support/lan.ts), a real
 * `portico speaker` per node, the real API server. The client resolves the address once; then,
 * per trial, a fault hits the announcing node and the time until `ip neigh` in the client shows
 * the runner-up's MAC is measured by polling it (the client sends nothing):
 *   - node loss: the node's link to the LAN goes down (bridge port down: no goodbye, no RST);
 *   - speaker kill: SIGKILL of the announcing speaker process.
 * Between trials the fault is undone and the address returns to its first-ranked node.
 *
 *   npm run bench -- l2-failover [--trials=20] [--poll-ms=10]
 *
 * Writes bench/results/l2-failover.json: { trials, p50Ms, p99Ms, maxMs } for node loss at the
 * top level, the same under "speakerKill", and the API write rate of the settings used.
 * Needs root, iproute2 and iputils (hack/net-tools.sh).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startControlPlane } from '../hack/control-plane.js';
import { renderCrdFiles } from '../src/api/render.js';
import { applyYaml } from '../src/kube/apply.js';
import { loadKubeConfig } from '../src/kube/kubeconfig.js';
import { RestClient } from '../src/kube/rest.js';
import { rankNodes } from '../src/providers/metallb-like/speaker/election.js';
import {
  createLan,
  netUnavailableReason,
  neighbourMac,
  resolveFromClient,
  sh,
  startSpeaker,
  stopSpeaker,
  type Lan,
  type SpeakerProcess,
} from '../test/providers/metallb-like/speaker/support/lan.js';
import { machine, round, sleep, table, UsageError } from './support/util.js';

export const description = 'L2 failover: node loss (link down) and speaker SIGKILL, until the client neighbour entry moves (needs root)';

const IP = '192.0.2.200';
const RENEW_INTERVAL_S = 10; // the speaker's default --lease-renew-interval
const FAILOVER_TIMEOUT_MS = 15_000;

interface Stats {
  trials: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  failures: number;
  samplesMs: number[];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function stats(samples: number[], failures: number): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  return { trials: samples.length + failures, p50Ms: round(percentile(sorted, 50), 1), p99Ms: round(percentile(sorted, 99), 1), maxMs: round(sorted.at(-1) ?? NaN, 1), failures, samplesMs: samples.map((s) => round(s, 1)) };
}

/** Polls the client's neighbour entry until it shows `mac`; ms from `since`, or undefined on timeout. */
async function waitForMac(lan: Lan, mac: string, since: number, pollMs: number): Promise<number | undefined> {
  while (performance.now() - since < FAILOVER_TIMEOUT_MS) {
    if ((await neighbourMac(lan, IP)) === mac) return performance.now() - since;
    await sleep(pollMs);
  }
  return undefined;
}

export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { trials: { type: 'string', default: '20' }, 'poll-ms': { type: 'string', default: '10' } }, strict: true });
  const trials = Number(values.trials);
  const pollMs = Number(values['poll-ms']);
  if (!Number.isInteger(trials) || trials < 1) throw new UsageError('--trials: expected a positive integer');
  const reason = netUnavailableReason();
  if (reason) throw new UsageError(`l2-failover: ${reason}`);

  const cp = await startControlPlane({ controllerManager: false });
  let lan: Lan | undefined;
  const speakers = new Map<string, SpeakerProcess>();
  try {
    const client = new RestClient(loadKubeConfig(cp.kubeconfigPath), 'portico-bench');
    for (const text of Object.values(renderCrdFiles())) await applyYaml(client, text);
    lan = await createLan({ nodes: 3, kubeconfigPath: cp.kubeconfigPath, prefix: 'l2b' });
    const namespace = 'l2-failover';
    await client.request('POST', '/api/v1/namespaces', { body: { metadata: { name: namespace } } });
    for (const n of lan.nodes) {
      await client.request('POST', '/api/v1/nodes', { body: { metadata: { name: n.name } } });
      await client.request('PATCH', `/api/v1/nodes/${n.name}/status`, { body: { status: { addresses: [{ type: 'InternalIP', address: n.ipv4 }] } }, patchType: 'merge' });
    }
    for (;;) {
      try {
        await client.request('POST', '/apis/portico.dev/v1alpha1/addresspools', { body: { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name: 'bench' }, spec: { addresses: ['192.0.2.200-192.0.2.220'] } } });
        break;
      } catch {
        await sleep(200); // the CRD is not served yet
      }
    }
    await client.request('POST', `/api/v1/namespaces/${namespace}/services`, { body: { metadata: { name: 'web' }, spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/l2', selector: { app: 'web' }, ports: [{ port: 80 }] } } });
    await client.request('PATCH', `/api/v1/namespaces/${namespace}/services/web/status`, { body: { status: { loadBalancer: { ingress: [{ ip: IP, ipMode: 'VIP' }] } } }, patchType: 'merge' });

    const names = lan.nodes.map((n) => n.name);
    const [first = '', second = ''] = rankNodes(IP, names);
    const macOf = (name: string): string => lan?.nodes.find((n) => n.name === name)?.mac ?? '';
    const first_ = lan.nodes.find((n) => n.name === first);
    if (!first_) throw new Error('no first node');
    for (const n of lan.nodes) speakers.set(n.name, startSpeaker(lan, n, namespace));

    // Count every Lease write the speakers make while the benchmark runs.
    const started = performance.now();
    const leaseWrites = { count: 0 };
    const watchAbort = new AbortController();
    const watching = client
      .watch(`/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`, {}, (event) => {
        if (event.type === 'ADDED' || event.type === 'MODIFIED') leaseWrites.count++;
      }, watchAbort.signal)
      .catch(() => undefined);

    const settle = async (): Promise<void> => {
      // Back on the first-ranked node, as the client sees it; then let the gratuitous burst end.
      const deadline = performance.now() + 60_000;
      while (performance.now() < deadline) {
        await resolveFromClient(lan as Lan, IP);
        if ((await neighbourMac(lan as Lan, IP)) === macOf(first)) break;
        await sleep(500);
      }
      await sleep(5_000);
    };

    process.stderr.write(`[l2-failover] ${IP}: announcer ${first}, runner-up ${second}; ${trials} trials each\n`);
    await settle();
    const nodeLoss: number[] = [];
    let nodeLossFailures = 0;
    for (let i = 0; i < trials; i++) {
      const since = performance.now();
      await sh(['ip', '-n', lan.bridgeNetns, 'link', 'set', first_.bridgePort, 'down']);
      const ms = await waitForMac(lan, macOf(second), since, pollMs);
      if (ms === undefined) nodeLossFailures++;
      else nodeLoss.push(ms);
      process.stderr.write(`[l2-failover] node loss ${i + 1}/${trials}: ${ms === undefined ? 'no move' : `${ms.toFixed(0)} ms`}\n`);
      await sh(['ip', '-n', lan.bridgeNetns, 'link', 'set', first_.bridgePort, 'up']);
      await settle();
    }
    const kill: number[] = [];
    let killFailures = 0;
    for (let i = 0; i < trials; i++) {
      const victim = speakers.get(first);
      if (!victim) throw new Error('no speaker');
      const since = performance.now();
      victim.child.kill('SIGKILL');
      const ms = await waitForMac(lan, macOf(second), since, pollMs);
      if (ms === undefined) killFailures++;
      else kill.push(ms);
      process.stderr.write(`[l2-failover] speaker kill ${i + 1}/${trials}: ${ms === undefined ? 'no move' : `${ms.toFixed(0)} ms`}\n`);
      await victim.exited;
      speakers.set(first, startSpeaker(lan, first_, namespace));
      await settle();
    }
    const elapsedS = (performance.now() - started) / 1000;
    watchAbort.abort();
    await watching;

    const loss = stats(nodeLoss, nodeLossFailures);
    const killed = stats(kill, killFailures);
    const measuredRate = leaseWrites.count / elapsedS / names.length;
    const result = {
      ...loss,
      speakerKill: killed,
      apiWrites: {
        defaultLeaseRenewIntervalS: RENEW_INTERVAL_S,
        perNodePerSecond: 1 / RENEW_INTERVAL_S,
        measuredLeaseWritesPerNodePerSecond: round(measuredRate, 3),
        note: 'Lease renewals only; plus per failover: one Service status write and one Event per Service on the moved address, and a Lease create on speaker restart',
      },
      settings: { probeIntervalMs: 100, probeTimeoutMs: 600, leaseRenewIntervalS: RENEW_INTERVAL_S, leaseDurationS: 30, gratuitousRepeats: 3, gratuitousIntervalMs: 1200, pollMs },
      kubernetesVersion: cp.version,
      date: new Date().toISOString(),
      machine: machine(),
    };
    process.stdout.write(`\n${table([
      ['fault', 'trials', 'p50 ms', 'p99 ms', 'max ms', 'no move'],
      ['node loss (link down)', String(loss.trials), String(loss.p50Ms), String(loss.p99Ms), String(loss.maxMs), String(loss.failures)],
      ['speaker SIGKILL', String(killed.trials), String(killed.p50Ms), String(killed.p99Ms), String(killed.maxMs), String(killed.failures)],
    ])}\nAPI writes: ${1 / RENEW_INTERVAL_S} Lease write/s per node by default (measured ${round(measuredRate, 3)}/s per node in this run)\n`);
    const dir = fileURLToPath(new URL('./results/', import.meta.url));
    await mkdir(dir, { recursive: true });
    await writeFile(`${dir}l2-failover.json`, `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await Promise.all([...speakers.values()].map((s) => stopSpeaker(s)));
    await lan?.destroy();
    await cp.stop();
  }
}
