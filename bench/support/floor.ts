/**
 * The floor shared by lb-burst and footprint: what any client must do at minimum to give N
 * pending LoadBalancer Services an address — one list, then the controller's two writes per
 * Service (a finalizer, and the status the controller writes: the ingress address and its
 * LoadBalancerReady condition, through /status) at the controller's concurrency.
 *
 * The floor works on Services of its own class with its own finalizer: with Portico's finalizer
 * but a foreign class, the controller would treat them as ones to clean up.
 */
import { performance } from 'node:perf_hooks';
import type { V1Service } from '@kubernetes/client-node';
import type { KubeConfig } from '../../src/kube/kubeconfig.js';
import { claimPatch } from '../../src/kube/ownership.js';
import { patchWithRetry } from '../../src/kube/patch.js';
import { RestClient } from '../../src/kube/rest.js';
import { desiredStatus, FINALIZER, statusPatch } from '../../src/reconcile/loadbalancer/planner.js';
import { listAll, watchCompletion } from './cluster.js';
import { forEachLimit } from './util.js';

export const FLOOR_CLASS = 'example.com/bench-floor';
export const FLOOR_FINALIZER = 'example.com/bench-floor';
export const FLOOR_AGENT = 'portico-bench-floor';
/** The benchmark's own clients (setup, completion watches). */
export const BENCH_AGENT = 'portico-bench';

export function servicePath(service: V1Service): string {
  return `/api/v1/namespaces/${service.metadata?.namespace ?? ''}/services/${service.metadata?.name ?? ''}`;
}

/** Portico is done with a Service: an ingress address and its finalizer. */
export function isConverged(service: V1Service): boolean {
  return (service.status?.loadBalancer?.ingress ?? []).length >= 1 && (service.metadata?.finalizers ?? []).includes(FINALIZER);
}

export function isFloorDone(service: V1Service): boolean {
  return (service.status?.loadBalancer?.ingress ?? []).length >= 1 && (service.metadata?.finalizers ?? []).includes(FLOOR_FINALIZER);
}

export interface FloorResult {
  /** From the list to the last write's answer. */
  seconds: number;
  /** From the list until the benchmark's watch saw every Service done (as the controller phase is timed). */
  observedSeconds: number;
  services: number;
}

export interface FloorOptions {
  services: number;
  /** Concurrent write loops: the controller's worker count. */
  workers: number;
  /** The n-th address written (n from 1). */
  address: (n: number) => string;
}

/**
 * One list, then `workers` concurrent loops PATCH a finalizer onto each Service (merge patch
 * with resourceVersion) and PATCH through /status the body the controller writes for a
 * provisioned Service (planner's desiredStatus and statusPatch: ingress and condition), so the
 * API server validates, stores and sends to watchers objects of the same shape. The same
 * completion watch as in the controller phase runs alongside, so both phases carry the
 * benchmark's own observer load on the API server and in this process.
 */
export async function runFloor(kc: KubeConfig, namespace: string, options: FloorOptions): Promise<FloorResult> {
  const client = new RestClient(kc, FLOOR_AGENT);
  const path = `/api/v1/namespaces/${namespace}/services`;
  const completion = await watchCompletion(new RestClient(kc, BENCH_AGENT), path, options.services, isFloorDone);
  let counter = 0;
  try {
    const started = performance.now();
    const { items } = await listAll(client, path, 500);
    await forEachLimit(items, options.workers, async (service) => {
      const objectPath = servicePath(service);
      const { object } = await patchWithRetry(client, objectPath, service, (s) => claimPatch(s, { finalizer: FLOOR_FINALIZER, annotation: 'example.com/bench-floor' }, 'floor'));
      const ip = options.address(++counter);
      const ports = (object.spec?.ports ?? []).map((p) => ({ port: p.port, protocol: (p.protocol ?? 'TCP') as 'TCP' | 'UDP' | 'SCTP' }));
      const status = desiredStatus(object, { kind: 'ensured', status: { ingress: [{ ip, ipMode: 'VIP', ports }] } }, new Date());
      await patchWithRetry(client, objectPath, object, () => ({ status: statusPatch(status) }), { subresource: 'status' });
    });
    const wrote = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const observed = await Promise.race([completion.finished, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 30_000)))]);
    clearTimeout(timer);
    if (observed === undefined) throw new Error(`floor: only ${String(completion.done())} of ${String(options.services)} Services seen done`);
    return { seconds: (wrote - started) / 1000, observedSeconds: (observed - started) / 1000, services: items.length };
  } finally {
    completion.stop();
  }
}
