/**
 * The image at work against the real API server: from its read-only root filesystem, as its
 * non-root user, `portico controller` provisions a Service and `portico release` reads the
 * cluster, over TLS with a kubeconfig mounted in. Skipped loudly where the image tools cannot be
 * installed (see test/deploy/image.test.ts); reuses the cached image.
 */
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FINALIZER, PROVISIONED_BY_ANNOTATION } from '../../src/reconcile/loadbalancer/planner.js';
import { installCrds } from '../support/controller.js';
import { eventually, testKubeConfig, useNamespace } from '../support/kube.js';
import { imageUnavailable, loadImage, runImage, startImage, stopImage, type LoadedImage } from './image-support.js';

const ns = useNamespace('image');
const client = ns.client;
const POOLS = '/apis/portico.dev/v1alpha1/addresspools';
const poolName = `${ns.name}-pool`;
let image: LoadedImage;
let mounted = '';
let controller: ChildProcess | undefined;
let controllerLog = '';

/** A kubeconfig with the certificates inlined: only this directory is mounted into the container. */
function writeKubeconfig(dir: string): void {
  const kc = testKubeConfig();
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster || !user) throw new Error('test kubeconfig has no current cluster or user');
  const data = (file: string | undefined, inline: string | undefined): string => inline ?? readFileSync(file ?? '').toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server: cluster.server, 'certificate-authority-data': data(cluster.caFile, cluster.caData) } }],
    users: [{ name: 'admin', user: { 'client-certificate-data': data(user.certFile, user.certData), 'client-key-data': data(user.keyFile, user.keyData) } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin' } }],
    'current-context': 'test',
  };
  writeFileSync(join(dir, 'kubeconfig'), JSON.stringify(config), { mode: 0o644 });
}

const servicePath = (name: string): string => `/api/v1/namespaces/${ns.name}/services/${name}`;

describe.skipIf(imageUnavailable !== undefined)('the image against the API server', () => {
  beforeAll(async () => {
    image = loadImage();
    mounted = mkdtempSync(join(tmpdir(), 'portico-image-kube-'));
    chmodSync(mounted, 0o755);
    writeKubeconfig(mounted);
    await installCrds(client);
  }, 600_000);

  afterAll(async () => {
    if (controller) await stopImage(controller);
    for (const name of ['web', 'marked']) {
      await client.request('PATCH', servicePath(name), { body: { metadata: { finalizers: null } }, patchType: 'merge' }).catch(() => undefined);
    }
    await client.request('DELETE', `${POOLS}/${poolName}`).catch(() => undefined);
    image.cleanup();
    rmSync(mounted, { recursive: true, force: true });
  });

  it('runs `portico controller`, which gives a Service an address', async () => {
    await client.request('POST', POOLS, { body: { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name: poolName }, spec: { addresses: ['198.51.100.248/29'], allocation: { namespaces: [ns.name] } } } });
    const proc = startImage(image, ['controller', '--kubeconfig=/tmp/kubeconfig', '--metrics-addr=0', '--health-addr=0', '--log-level=info'], { binds: [[mounted, '/tmp']] });
    controller = proc;
    proc.stdout?.on('data', (chunk: Buffer) => (controllerLog += chunk.toString()));
    proc.stderr?.on('data', (chunk: Buffer) => (controllerLog += chunk.toString()));
    await client.request('POST', `/api/v1/namespaces/${ns.name}/services`, {
      body: { metadata: { name: 'web' }, spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/l2', selector: { app: 'web' }, ports: [{ port: 80 }] } },
    });
    const ip = await eventually(async () => {
      if (proc.exitCode !== null) throw new Error(`controller exited ${String(proc.exitCode)}: ${controllerLog.slice(-2000)}`);
      const s = await client.request<V1Service>('GET', servicePath('web'));
      return s.status?.loadBalancer?.ingress?.[0]?.ip;
    }, 'an address from the controller in the image', 60_000).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\ncontroller log:\n${controllerLog.slice(-2000)}`);
    });
    expect(ip).toMatch(/^198\.51\.100\.(24[89]|25[0-5])$/);
    // A clean stop on SIGTERM, as a kubelet stops the pod.
    expect(await stopImage(proc)).toBe(0);
    controller = undefined;
  }, 120_000);

  it('runs `portico release --all --dry-run`, listing what it would release', async () => {
    await client.request('POST', `/api/v1/namespaces/${ns.name}/services`, {
      body: { metadata: { name: 'marked', finalizers: [FINALIZER], annotations: { [PROVISIONED_BY_ANNOTATION]: 'portico.dev/l2' } }, spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/l2', ports: [{ port: 80 }] } },
    });
    const result = runImage(image, ['release', '--all', '--dry-run', '--kubeconfig=/tmp/kubeconfig'], { binds: [[mounted, '/tmp']] });
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain(`would release ${ns.name}/marked: release the balancer through portico.dev/l2`);
    expect(result.status).toBe(0);
  }, 120_000);
});
