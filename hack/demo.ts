/**
 * `portico demo`: a local control plane, the controller with a default address pool in a
 * documentation range, the seed examples applied, and a `kubectl get svc`-like table once the
 * LoadBalancer Service has its EXTERNAL-IP. Keeps running until Ctrl-C (or `--once`).
 */
import { readdir, readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { V1Service } from '@kubernetes/client-node';
import type { LevelWithSilent } from 'pino';
import { startControlPlane } from './control-plane.js';
import { startAwsDemo, type AwsDemo } from './demo-aws.js';
import type { AddressPool } from '../src/api/address-pool.js';
import { renderCrdFiles } from '../src/api/render.js';
import { parseControllerFlags } from '../src/cmd/config.js';
import { applyYaml } from '../src/kube/apply.js';
import { createLogger } from '../src/kube/logger.js';
import { RestClient } from '../src/kube/rest.js';
import { startController, type RunningController } from '../src/cmd/controller.js';
import { loadKubeConfig } from '../src/kube/kubeconfig.js';
import { packageRoot } from '../src/paths.js';
import { READY_CONDITION } from '../src/reconcile/loadbalancer/planner.js';

const root = packageRoot(import.meta.url);
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

export function serviceTable(services: readonly V1Service[], now: Date): string {
  const rows = services.map((s) => {
    const spec = s.spec ?? {};
    const ingress = s.status?.loadBalancer?.ingress ?? [];
    const external =
      spec.type === 'ExternalName' ? (spec.externalName ?? '<none>') : spec.type === 'LoadBalancer' ? (ingress.map((i) => i.ip ?? i.hostname).join(',') || '<pending>') : '<none>';
    const ports = (spec.ports ?? []).map((p) => `${String(p.port)}${p.nodePort ? `:${String(p.nodePort)}` : ''}/${p.protocol ?? 'TCP'}`).join(',') || '<none>';
    const ready = (s.status?.conditions ?? []).find((c) => c.type === READY_CONDITION);
    const created = s.metadata?.creationTimestamp ? new Date(s.metadata.creationTimestamp) : now;
    return [
      s.metadata?.name ?? '',
      spec.type ?? '',
      spec.clusterIPs?.join(',') ?? spec.clusterIP ?? '<none>',
      external,
      ports,
      `${String(Math.max(0, Math.round((now.getTime() - created.getTime()) / 1000)))}s`,
      ready?.reason ?? '',
    ];
  });
  const header = ['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE', 'PORTICO'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('   ').trimEnd()).join('\n');
}

export async function runDemo(args: string[]): Promise<void> {
  const once = args.includes('--once');
  const logLevel = (args.find((a) => a.startsWith('--log-level='))?.slice('--log-level='.length) ?? 'warn') as LevelWithSilent;
  const aws = args.includes('--provider=aws');
  say(`Portico demo: local control plane + controller (${aws ? 'AWS NLB provider on moto' : 'bare-metal provider'}) + seed examples`);
  let awsDemo: AwsDemo | undefined;
  const controlPlane = await startControlPlane({ log: (line) => say(line) });
  say(`[demo] kubeconfig: ${controlPlane.kubeconfigPath}${once ? ' (removed again at the end: --once)' : ''}`);
  const shutdown = new AbortController();
  let controller: RunningController | undefined;
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    shutdown.abort();
    // The controller hands back its Lease and closes its connections while the API server is still up.
    await controller?.done;
    await awsDemo?.stop();
    await controlPlane.stop();
  };
  process.once('SIGINT', () => {
    say('\nstopping: controller, control plane, temp files ...');
    void cleanup().then(() => process.exit(0));
  });
  process.once('SIGTERM', () => void cleanup().then(() => process.exit(0)));

  try {
    const client = new RestClient(loadKubeConfig(controlPlane.kubeconfigPath), 'portico-demo');
    for (const text of Object.values(renderCrdFiles())) await applyYaml(client, text);
    await waitFor(async () => {
      await client.request('GET', '/apis/portico.dev/v1alpha1/addresspools');
      return true;
    }, 'the AddressPool CRD to be served');
    if (aws) {
      awsDemo = await startAwsDemo(client, say);
    } else {
      await applyYaml(client, await readFile(join(root, 'examples', 'l2', 'address-pool.yaml'), 'utf8'));
      say('[demo] AddressPool default: 203.0.113.10-203.0.113.30, 2001:db8:cafe::10-2001:db8:cafe::30');
    }

    // The demo's controller takes the same Lease as a deployed one: a second controller started
    // beside it (`npm run portico -- controller --leader-elect`) waits instead of fighting.
    await client.request('POST', '/api/v1/namespaces', { body: { metadata: { name: 'portico-system' } } }).catch(() => undefined);
    const config = parseControllerFlags([
      `--kubeconfig=${controlPlane.kubeconfigPath}`,
      ...(awsDemo?.flags ?? ['--default-class=portico.dev/l2']),
      '--leader-elect',
      '--leader-elect-identity=portico-demo',
      '--metrics-addr=127.0.0.1:0',
      '--health-addr=127.0.0.1:0',
      `--log-level=${logLevel}`,
    ]);
    controller = await startController(config, shutdown.signal, { logger: createLogger(logLevel, process.stderr) });
    const metrics = controller.servers[0]?.address() as AddressInfo | null;
    say(`[demo] controller running (metrics: http://127.0.0.1:${String(metrics?.port ?? '?')}/metrics)`);

    const seedDir = join(root, 'examples', 'seed');
    for (const file of (await readdir(seedDir)).filter((f) => f.endsWith('.yaml')).sort()) {
      await applyYaml(client, await readFile(join(seedDir, file), 'utf8'));
      say(`[demo] applied examples/seed/${file}`);
    }
    await waitFor(async () => {
      const svc = await client.request<V1Service>('GET', '/api/v1/namespaces/default/services/nginx-lb');
      return (svc.status?.loadBalancer?.ingress ?? []).length > 0 ? true : undefined;
    }, 'nginx-lb to get an EXTERNAL-IP');

    const list = await client.request<{ items: V1Service[] }>('GET', '/api/v1/namespaces/default/services');
    say('');
    say('$ kubectl get svc');
    say(serviceTable(list.items, new Date()));
    if (!awsDemo) {
      // Pool status is written shortly after allocations (debounced).
      let pool: AddressPool | undefined;
      await waitFor(async () => {
        pool = await client.request<AddressPool>('GET', '/apis/portico.dev/v1alpha1/addresspools/default');
        return (pool.status?.assignedIPv4 ?? 0) > 0 ? true : undefined;
      }, 'the AddressPool status');
      say('');
      say(`AddressPool default: ${String(pool?.status?.assignedIPv4 ?? 0)} IPv4 assigned, ${String(pool?.status?.availableIPv4 ?? 0)} available`);
    }
    // Events are written in the background: give them a moment.
    type EventItem = { type: string; reason: string; message: string; involvedObject: { name: string } };
    let events: EventItem[] = [];
    await waitFor(async () => {
      const list = await client.request<{ items: EventItem[] }>('GET', '/api/v1/namespaces/default/events');
      events = list.items.filter((item) => item.involvedObject.name === 'nginx-lb');
      return events.some((e) => e.reason === 'EnsuredLoadBalancer') ? true : undefined;
    }, 'the Events of nginx-lb', 10_000).catch(() => undefined);
    say('');
    say('Events for nginx-lb:');
    for (const e of events) say(`  ${e.type.padEnd(8)} ${e.reason.padEnd(20)} ${e.message}`);
    say('');
    if (once) {
      await cleanup();
      say('Done: the control plane and its files are removed. Run without --once to keep it running and try kubectl.');
      return;
    }
    say(`Kubernetes ${controlPlane.version} is running with Portico. With kubectl installed, try:`);
    say(`  export KUBECONFIG=${controlPlane.kubeconfigPath}`);
    say('  kubectl get svc -o wide; kubectl describe svc nginx-lb; kubectl get addresspools');
    if (awsDemo) {
      say('What the AWS provider created, with the AWS CLI (or any SDK) pointed at moto:');
      for (const hint of awsDemo.hints) say(hint);
    } else {
      say('  kubectl apply -f examples/l2/shared-ip.yaml   # two Services sharing one address');
    }
    say('Press Ctrl-C to stop and clean up.');
    await controller.done;
  } catch (error) {
    await cleanup();
    throw error;
  }
}

async function waitFor(probe: () => Promise<true | undefined>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runDemo(process.argv.slice(2)).then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
