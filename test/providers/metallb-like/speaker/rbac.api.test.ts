/**
 * deploy/speaker.yaml's RBAC against the real API server: a Speaker authenticated only as the
 * portico-speaker ServiceAccount (raw sockets faked) holds its Lease, writes the Service
 * condition and the nodeAssigned Event without a single 403, and cannot do what it does not need.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { dumpYaml } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePorts } from '../../../../hack/control-plane.js';
import { applyManifest, parseManifests, type Manifest } from '../../../../src/kube/apply.js';
import { systemClock } from '../../../../src/kube/clock.js';
import { EventRecorder } from '../../../../src/kube/events.js';
import { createLogger } from '../../../../src/kube/logger.js';
import { isKubeError, type RestClient } from '../../../../src/kube/rest.js';
import { SharedInformers } from '../../../../src/kube/shared-informers.js';
import { LEASE_COMPONENT, LEASE_COMPONENT_LABEL } from '../../../../src/providers/metallb-like/speaker/liveness.js';
import { Speaker, SPEAKER_PATHS } from '../../../../src/providers/metallb-like/speaker/speaker.js';
import { FakeFrameSockets } from '../../../fakes/frame-sockets.js';
import { installCrds } from '../../../support/controller.js';
import { eventually, testClient, testKubeConfig, useNamespace } from '../../../support/kube.js';

const SYSTEM_NAMESPACE = 'portico-system';
const ACCOUNT = 'portico-speaker';
const ns = useNamespace('spkrbac');
const admin = ns.client;
const node = `${ns.name}-node`;
const poolName = `${ns.name}-pool`;
const logLines: Record<string, unknown>[] = [];
const logSink = new Writable({
  write(chunk: Buffer | string, _encoding, callback) {
    for (const line of chunk.toString().split('\n')) if (line.trim()) logLines.push(JSON.parse(line) as Record<string, unknown>);
    callback();
  },
});

let tokenClient: RestClient;
let tmp: string;
const abort = new AbortController();
let running: Promise<void> | undefined;

async function statusOf(client: RestClient, method: string, path: string, body?: unknown): Promise<number> {
  try {
    await client.request(method, path, body === undefined ? {} : { body, patchType: 'merge' });
    return 200;
  } catch (error) {
    if (isKubeError(error)) return error.status;
    throw error;
  }
}

beforeAll(async () => {
  await installCrds(admin);
  const manifests = parseManifests(await readFile(new URL('../../../../deploy/speaker.yaml', import.meta.url), 'utf8'));
  const namespace = parseManifests(await readFile(new URL('../../../../deploy/namespace.yaml', import.meta.url), 'utf8'));
  // Everything but the DaemonSet: there are no kubelets here to run it.
  for (const manifest of [...namespace, ...manifests.filter((m: Manifest) => m.kind !== 'DaemonSet')]) await applyManifest(admin, manifest);
  const { status } = await admin.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${SYSTEM_NAMESPACE}/serviceaccounts/${ACCOUNT}/token`, {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } },
  });
  tmp = await mkdtemp(join(tmpdir(), 'portico-spkrbac-'));
  const cluster = testKubeConfig(inject('kubeconfig')).getCurrentCluster();
  if (!cluster?.caFile) throw new Error('admin kubeconfig names no certificate-authority file');
  const kubeconfig = join(tmp, 'kubeconfig');
  await writeFile(kubeconfig, dumpYaml({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server: cluster.server, 'certificate-authority': cluster.caFile } }],
    users: [{ name: ACCOUNT, user: { token: status.token } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: ACCOUNT } }],
    'current-context': 'test',
  }), { mode: 0o600 });
  tokenClient = testClient(kubeconfig);
  await eventually(async () => {
    const statuses = await Promise.all([
      statusOf(tokenClient, 'GET', '/api/v1/services?limit=1'),
      statusOf(tokenClient, 'GET', `/apis/coordination.k8s.io/v1/namespaces/${SYSTEM_NAMESPACE}/leases/portico-speaker-${node}`),
    ]);
    return statuses.every((s) => s === 200 || s === 404) ? true : undefined;
  }, 'the ServiceAccount to be authorised by deploy/speaker.yaml');

  await admin.request('POST', '/api/v1/nodes', { body: { metadata: { name: node } } });
  await admin.request('POST', '/apis/portico.dev/v1alpha1/addresspools', { body: { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name: poolName }, spec: { addresses: ['198.51.100.200/29'] } } });
  await admin.request('POST', `/api/v1/namespaces/${ns.name}/services`, { body: { metadata: { name: 'web' }, spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/l2', selector: { app: 'web' }, ports: [{ port: 80 }] } } });
  await admin.request('PATCH', `/api/v1/namespaces/${ns.name}/services/web/status`, { body: { status: { loadBalancer: { ingress: [{ ip: '198.51.100.201', ipMode: 'VIP' }] } } }, patchType: 'merge' });

  const [probePort = 0] = await freePorts(1);
  const logger = createLogger('warn', logSink);
  const registry = new Registry();
  const informers = new SharedInformers(tokenClient, { clock: systemClock, logger, registry, settings: { [SPEAKER_PATHS.leases(SYSTEM_NAMESPACE)]: { labelSelector: `${LEASE_COMPONENT_LABEL}=${LEASE_COMPONENT}` } } });
  const sockets = new FakeFrameSockets([{ name: 'eth0', ifindex: 2, mac: '02:00:00:00:01:00' }]);
  const speaker = new Speaker(
    { node, namespace: SYSTEM_NAMESPACE, renewIntervalMs: 10_000, leaseDurationMs: 30_000, probePort, probeIntervalMs: 100, probeTimeoutMs: 600, gratuitousRepeats: 0, gratuitousIntervalMs: 1_200 },
    { client: tokenClient, informers, sockets, discover: sockets.discover, events: new EventRecorder(tokenClient, 'portico-speaker', { logger }), clock: systemClock, logger, registry },
  );
  informers.start(abort.signal);
  running = speaker.run(abort.signal, informers.waitForSync(abort.signal));
}, 120_000);

afterAll(async () => {
  abort.abort();
  await running;
  await admin.request('DELETE', `/api/v1/nodes/${node}`).catch(() => undefined);
  await admin.request('DELETE', `/apis/portico.dev/v1alpha1/addresspools/${poolName}`).catch(() => undefined);
  await rm(tmp, { recursive: true, force: true });
});

describe('the speaker as the portico-speaker ServiceAccount', () => {
  it('holds its Lease, writes the condition and the nodeAssigned Event, with no error logged', async () => {
    await eventually(async () => {
      const lease = await admin.request<{ spec: { holderIdentity?: string } }>('GET', `/apis/coordination.k8s.io/v1/namespaces/${SYSTEM_NAMESPACE}/leases/portico-speaker-${node}`);
      return lease.spec.holderIdentity === node ? true : undefined;
    }, 'the speaker Lease');
    const condition = await eventually(async () => {
      const svc = await admin.request<{ status: { conditions?: { type: string; status: string; message: string }[] } }>('GET', `/api/v1/namespaces/${ns.name}/services/web`);
      return svc.status.conditions?.find((c) => c.type === 'L2Announced');
    }, 'the L2Announced condition');
    expect(condition).toMatchObject({ status: 'True', message: `198.51.100.201 announced by node ${node} on eth0` });
    await eventually(async () => {
      const events = await admin.request<{ items: { reason: string }[] }>('GET', `/api/v1/namespaces/${ns.name}/events`);
      return events.items.some((e) => e.reason === 'nodeAssigned') ? true : undefined;
    }, 'the nodeAssigned Event');
    expect(logLines.filter((l) => JSON.stringify(l).includes('403') || JSON.stringify(l).includes('forbidden'))).toEqual([]);
  });

  it.each([
    ['read Secrets', 'GET', `/api/v1/namespaces/${SYSTEM_NAMESPACE}/secrets`],
    ['change a Service spec', 'PATCH', `/api/v1/namespaces/${ns.name}/services/web`],
    ['delete a Node', 'DELETE', `/api/v1/nodes/${node}`],
    ['write Leases outside its namespace', 'POST', `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases`],
    ['change an AddressPool', 'PATCH', `/apis/portico.dev/v1alpha1/addresspools/${poolName}`],
  ])('may not %s', async (_, method, path) => {
    expect(await statusOf(tokenClient, method, path, method === 'GET' || method === 'DELETE' ? undefined : { metadata: { labels: { x: 'y' } } })).toBe(403);
  });
});
