/**
 * deploy/rbac.yaml against the real API server: the real controller, authenticated only as the
 * portico-controller ServiceAccount, does its whole job (leader election, finalizer, address,
 * status, Events, pool status, cleanup) without a single 403, and cannot do what it does not need.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { dumpYaml, type V1Lease, type V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseControllerFlags } from '../../src/cmd/config.js';
import { applyManifest, objectPath, parseManifests, type Manifest } from '../../src/kube/apply.js';
import { createLogger } from '../../src/kube/logger.js';
import { isKubeError, type RestClient } from '../../src/kube/rest.js';
import { COMPONENT, startController, type RunningController } from '../../src/cmd/controller.js';
import { FINALIZER } from '../../src/reconcile/loadbalancer/planner.js';
import { installCrds } from '../support/controller.js';
import { eventually, testClient, testKubeConfig, useNamespace } from '../support/kube.js';

const SYSTEM_NAMESPACE = 'portico-system';
const ACCOUNT = 'portico-controller';
/** The Lease the controller elects with (--leader-elect-name default). */
const LEASE = 'portico-controller';

const ns = useNamespace('rbac');
const admin = ns.client;

interface Condition {
  type: string;
  status: string;
  reason: string;
}

interface AddressPoolStatus {
  status?: { assignedIPv4?: number; conditions?: Condition[] };
}

/** Log lines the controller wrote at warn or above, parsed. */
const logLines: Record<string, unknown>[] = [];
const logSink = new Writable({
  write(chunk: Buffer | string, _encoding, callback) {
    for (const line of chunk.toString().split('\n')) if (line.trim()) logLines.push(JSON.parse(line) as Record<string, unknown>);
    callback();
  },
});

let rbacObjects: Manifest[] = [];
let tokenClient: RestClient;
let tmp: string;
const abort = new AbortController();
let running: RunningController | undefined;
let identity = '';
const poolName = `${ns.name}-pool`;
const servicePath = (): string => `/api/v1/namespaces/${ns.name}/services/web`;

async function readDeploy(file: string): Promise<Manifest[]> {
  return parseManifests(await readFile(new URL(`../../deploy/${file}`, import.meta.url), 'utf8'));
}

/** The API server's answer status for one request: 2xx, or the error's status. */
async function statusOf(client: RestClient, method: string, path: string): Promise<number> {
  try {
    await client.request(method, path);
    return 200;
  } catch (error) {
    if (isKubeError(error)) return error.status;
    throw error;
  }
}

interface ControllerEvent {
  metadata: { name: string };
  type: string;
  reason: string;
  count: number;
  involvedObject: { name: string };
  source?: { component?: string };
}

/** Events in the test namespace about `name`, written by the controller. */
async function controllerEvents(name: string): Promise<ControllerEvent[]> {
  const list = await admin.request<{ items: ControllerEvent[] }>('GET', `/api/v1/namespaces/${ns.name}/events`);
  return list.items.filter((e) => e.involvedObject.name === name && e.source?.component === COMPONENT);
}

/** A kubeconfig for the same server and CA as the admin one, authenticating with `token`. */
async function tokenKubeconfig(dir: string, token: string): Promise<string> {
  const cluster = testKubeConfig(inject('kubeconfig')).getCurrentCluster();
  if (!cluster?.caFile) throw new Error('admin kubeconfig names no certificate-authority file');
  const path = join(dir, 'kubeconfig');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server: cluster.server, 'certificate-authority': cluster.caFile } }],
    users: [{ name: ACCOUNT, user: { token } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: ACCOUNT } }],
    'current-context': 'test',
  };
  await writeFile(path, dumpYaml(config), { mode: 0o600 });
  return path;
}

beforeAll(async () => {
  await installCrds(admin);
  rbacObjects = await readDeploy('rbac.yaml');
  for (const manifest of [...(await readDeploy('namespace.yaml')), ...rbacObjects]) await applyManifest(admin, manifest);

  const { status } = await admin.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${SYSTEM_NAMESPACE}/serviceaccounts/${ACCOUNT}/token`, {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  });
  tmp = await mkdtemp(join(tmpdir(), 'portico-rbac-'));
  const kubeconfig = await tokenKubeconfig(tmp, status.token);
  tokenClient = testClient(kubeconfig);

  // RBAC reaches the authorizer through its own informers: wait until the new bindings are
  // seen (404 on the Lease still means "allowed"), so the controller's first calls are judged
  // against them.
  await eventually(async () => {
    const statuses = await Promise.all([
      statusOf(tokenClient, 'GET', '/api/v1/services?limit=1'),
      statusOf(tokenClient, 'GET', '/apis/portico.dev/v1alpha1/addresspools?limit=1'),
      statusOf(tokenClient, 'GET', `/apis/coordination.k8s.io/v1/namespaces/${SYSTEM_NAMESPACE}/leases/${LEASE}`),
    ]);
    return statuses.every((s) => s === 200 || s === 404) ? true : undefined;
  }, 'the ServiceAccount to be authorised by deploy/rbac.yaml');

  await applyManifest(admin, {
    apiVersion: 'portico.dev/v1alpha1',
    kind: 'AddressPool',
    metadata: { name: poolName },
    spec: { addresses: ['192.0.2.200/29'], allocation: { namespaces: [ns.name] } },
  });

  const config = parseControllerFlags([
    `--kubeconfig=${kubeconfig}`,
    '--leader-elect',
    `--leader-elect-namespace=${SYSTEM_NAMESPACE}`,
    '--leader-elect-retry-period=500ms',
    '--leader-elect-renew-deadline=3s',
    '--leader-elect-lease-duration=5s',
    '--default-class=portico.dev/l2',
    '--external-services',
    '--metrics-addr=0',
    '--health-addr=0',
    '--log-level=silent',
  ]);
  identity = config.identity;
  running = await startController(config, abort.signal, { logger: createLogger('warn', logSink) });
});

afterAll(async () => {
  abort.abort();
  await running?.done;
  // Normally already gone; after a failure, drop our finalizer so the namespace can go.
  for (const name of ['web', 'malformed']) {
    const path = `/api/v1/namespaces/${ns.name}/services/${name}`;
    await admin.request('PATCH', path, { body: { metadata: { finalizers: null } }, patchType: 'merge' }).catch(() => undefined);
    await admin.request('DELETE', path).catch(() => undefined);
  }
  await admin.request('DELETE', `/apis/portico.dev/v1alpha1/addresspools/${poolName}`).catch(() => undefined);
  await admin.request('DELETE', `/apis/coordination.k8s.io/v1/namespaces/${SYSTEM_NAMESPACE}/leases/${LEASE}`).catch(() => undefined);
  // No other test uses these; the namespace stays (applying it again is harmless).
  for (const manifest of [...rbacObjects].reverse()) await admin.request('DELETE', objectPath(manifest)).catch(() => undefined);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('deploy/rbac.yaml', () => {
  it('lets the controller win the leader Lease in portico-system', async () => {
    const lease = await eventually(async () => {
      const l = await admin.request<V1Lease>('GET', `/apis/coordination.k8s.io/v1/namespaces/${SYSTEM_NAMESPACE}/leases/${LEASE}`);
      return l.spec?.holderIdentity === identity ? l : undefined;
    }, 'the controller to hold the Lease');
    expect(lease.spec?.leaseDurationSeconds).toBe(5);
  });

  it('lets the controller give a LoadBalancer Service an address, its finalizer, a Ready condition and Events', async () => {
    await applyManifest(admin, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: ns.name },
      spec: { type: 'LoadBalancer', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    });
    const service = await eventually(async () => {
      const s = await admin.request<V1Service>('GET', servicePath());
      const ready = (s.status?.conditions as Condition[] | undefined)?.find((c) => c.type === 'LoadBalancerReady');
      return (s.status?.loadBalancer?.ingress ?? []).length > 0 && ready?.status === 'True' ? s : undefined;
    }, 'web to get an address and LoadBalancerReady=True');
    expect(service.status?.loadBalancer?.ingress?.[0]?.ip).toMatch(/^192\.0\.2\.20[0-7]$/);
    expect(service.metadata?.finalizers).toContain(FINALIZER);

    const reasons = await eventually(async () => {
      const ours = (await controllerEvents('web')).map((e) => e.reason);
      return ours.includes('EnsuredLoadBalancer') ? ours : undefined;
    }, 'the controller to record Events on web');
    // What the provider did rides on EnsuredLoadBalancer: one Event for a new Service. (An
    // in-memory allocation finishes well within the EnsuringLoadBalancer announcement delay.)
    expect(reasons).toEqual(['EnsuredLoadBalancer']);
  });

  it('lets the controller write the AddressPool status', async () => {
    const pool = await eventually(async () => {
      const p = await admin.request<AddressPoolStatus>('GET', `/apis/portico.dev/v1alpha1/addresspools/${poolName}`);
      return (p.status?.assignedIPv4 ?? 0) >= 1 ? p : undefined;
    }, 'the pool status to count the assigned address');
    expect(pool.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it('lets the controller count a repeated warning on its existing Event', async () => {
    const path = `/api/v1/namespaces/${ns.name}/services/malformed`;
    await applyManifest(admin, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'malformed', namespace: ns.name, annotations: { 'portico.dev/load-balancer-ips': '192.0.2.999' } },
      spec: { type: 'LoadBalancer', selector: { app: 'malformed' }, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    });
    const warnings = async (): Promise<ControllerEvent[]> => (await controllerEvents('malformed')).filter((e) => e.type === 'Warning' && e.reason === 'SyncLoadBalancerFailed');
    await eventually(async () => ((await warnings()).length > 0 ? true : undefined), 'a SyncLoadBalancerFailed Event on malformed');
    // Fixing the annotation and breaking it the same way again repeats the same warning: it is
    // recorded as a count on the existing Event (a PATCH), not as a new Event.
    await admin.request('PATCH', path, { body: { metadata: { annotations: { 'portico.dev/load-balancer-ips': null } } }, patchType: 'merge' });
    await eventually(async () => {
      const s = await admin.request<{ status?: { conditions?: { type: string; status: string }[] } }>('GET', path);
      return s.status?.conditions?.some((c) => c.type === 'LoadBalancerReady' && c.status === 'True') ? true : undefined;
    }, 'malformed to be fixed and Ready');
    await admin.request('PATCH', path, { body: { metadata: { annotations: { 'portico.dev/load-balancer-ips': '192.0.2.999' } } }, patchType: 'merge' });
    const counted = await eventually(async () => (await warnings()).find((e) => e.count >= 2), 'the warning Event to be counted twice', 30_000, 300);
    expect(counted.count).toBeGreaterThanOrEqual(2);
    await admin.request('DELETE', path);
  });

  it('lets the controller publish an ExternalService: Service, EndpointSlice, Endpoints and status', async () => {
    await applyManifest(admin, {
      apiVersion: 'portico.dev/v1alpha1',
      kind: 'ExternalService',
      metadata: { name: 'db', namespace: ns.name },
      spec: { endpoints: [{ address: '198.51.100.10' }], ports: [{ port: 3306 }] },
    });
    await eventually(async () => {
      const es = await admin.request<{ status?: { conditions?: Condition[] } }>('GET', `/apis/portico.dev/v1alpha1/namespaces/${ns.name}/externalservices/db`);
      return es.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined;
    }, 'the ExternalService to be Ready');
    expect(await statusOf(admin, 'GET', `/api/v1/namespaces/${ns.name}/services/db`)).toBe(200);
    expect(await statusOf(admin, 'GET', `/api/v1/namespaces/${ns.name}/endpoints/db`)).toBe(200);
    expect(await statusOf(admin, 'GET', `/apis/discovery.k8s.io/v1/namespaces/${ns.name}/endpointslices/db-v4-0`)).toBe(200);
    // A health-check-free change goes through as patches (no update or delete in the ClusterRole).
    await admin.request('PATCH', `/apis/portico.dev/v1alpha1/namespaces/${ns.name}/externalservices/db`, { body: { spec: { endpoints: [{ address: '2001:db8::10' }], publishEndpoints: false } }, patchType: 'merge' });
    await eventually(async () => {
      const v4 = await admin.request<{ endpoints?: unknown[] | null }>('GET', `/apis/discovery.k8s.io/v1/namespaces/${ns.name}/endpointslices/db-v4-0`);
      const v6 = await admin.request<{ endpoints?: unknown[] | null }>('GET', `/apis/discovery.k8s.io/v1/namespaces/${ns.name}/endpointslices/db-v6-0`).catch(() => undefined);
      const endpoints = await admin.request<{ subsets?: unknown[] }>('GET', `/api/v1/namespaces/${ns.name}/endpoints/db`);
      return (v4.endpoints ?? []).length === 0 && (v6?.endpoints ?? []).length === 1 && (endpoints.subsets ?? []).length === 0 ? true : undefined;
    }, 'the v4 slice emptied, a v6 slice, the Endpoints emptied');
  });

  it('does not let the controller read Secrets, delete Services or touch Leases outside portico-system', async () => {
    expect(await statusOf(tokenClient, 'GET', '/api/v1/namespaces/kube-system/secrets')).toBe(403);
    expect(await statusOf(tokenClient, 'DELETE', servicePath())).toBe(403);
    expect(await statusOf(tokenClient, 'GET', `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${LEASE}`)).toBe(403);
    expect(await statusOf(tokenClient, 'GET', `/apis/coordination.k8s.io/v1/namespaces/${SYSTEM_NAMESPACE}/leases/someone-else`)).toBe(403);
    // The refused delete left the Service alone.
    expect(await statusOf(admin, 'GET', servicePath())).toBe(200);
  });

  it('lets the controller remove its finalizer so a deleted Service goes away', async () => {
    // Still carrying our finalizer, so only the controller can let it go.
    expect((await admin.request<V1Service>('GET', servicePath())).metadata?.finalizers).toContain(FINALIZER);
    await admin.request('DELETE', servicePath());
    await eventually(async () => ((await statusOf(admin, 'GET', servicePath())) === 404 ? true : undefined), 'web to be gone');
  });

  it('logs no permission errors from start to shutdown', async () => {
    abort.abort();
    await expect(running?.done).resolves.toBe('stopped');
    running = undefined;
    const denied = logLines.filter((line) => {
      // The timestamp is the only field made of digits that are not ours to choose.
      const { time: _time, ...rest } = line;
      return /\b403\b|forbidden/i.test(JSON.stringify(rest));
    });
    expect(denied).toEqual([]);
  });
});
