/**
 * `portico controller` on the image's Node.js, as its own process: after a burst of Services,
 * once its work has drained, it compacts the heap by itself (--idle-compaction) and says so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureImageNode, IMAGE_ENV, NODE_FLAGS } from '../../hack/image.js';
import { applyManifest } from '../../src/kube/apply.js';
import { installCrds } from '../support/controller.js';
import { eventually, useNamespace } from '../support/kube.js';

const ns = useNamespace('compaction');
const { client } = ns;
const POOLS = '/apis/portico.dev/v1alpha1/addresspools';
const poolName = `${ns.name}-pool`;
const servicesPath = `/api/v1/namespaces/${ns.name}/services`;
const SERVICES = 400;
let controller: ChildProcess | undefined;
let log = '';

beforeAll(async () => {
  await installCrds(client);
  await applyManifest(client, { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name: poolName }, spec: { addresses: ['198.51.100.0/23'], allocation: { namespaces: [ns.name] } } });
});

afterAll(async () => {
  if (controller && controller.exitCode === null) {
    // Deleted while the controller runs, so it removes its finalizers.
    await client.request('DELETE', servicesPath);
    await eventually(async () => ((await client.request<{ items: V1Service[] }>('GET', servicesPath)).items.length === 0 ? true : undefined), 'the Services gone', 60_000, 500);
    const exited = new Promise((resolve) => controller?.once('exit', resolve));
    controller.kill('SIGTERM');
    await exited;
  }
  await client.request('DELETE', `${POOLS}/${poolName}`).catch(() => undefined);
});

interface Compacted {
  heapBeforeMb: number;
  heapAfterMb: number;
  ms: number;
  time: string;
}

/** From complete log lines only: output arrives in chunks. */
function compactions(): Compacted[] {
  return log
    .slice(0, log.lastIndexOf('\n'))
    .split('\n')
    .filter((line) => line.includes('"heap compacted"'))
    .map((line) => JSON.parse(line) as Compacted);
}

async function addressedCount(): Promise<number> {
  const list = await client.request<{ items: V1Service[] }>('GET', servicesPath);
  return list.items.filter((s) => (s.status?.loadBalancer?.ingress ?? []).length > 0).length;
}

async function inParallel(count: number, limit: number, task: (index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < count) await task(next++);
  }));
}

describe('--idle-compaction, in the controller process on the image’s Node.js', () => {
  it('compacts the heap once a burst’s work has drained, not during it', { timeout: 150_000 }, async () => {
    const root = new URL('../../', import.meta.url).pathname;
    controller = spawn(
      ensureImageNode(() => undefined).binary,
      [...NODE_FLAGS, '--import', 'tsx', `${root}src/cli.ts`, 'controller', `--kubeconfig=${inject('kubeconfig')}`, '--metrics-addr=0', '--health-addr=0', '--log-level=info'],
      { cwd: root, env: { ...process.env, ...IMAGE_ENV }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    controller.stdout?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    controller.stderr?.resume();
    await eventually(() => (log.includes('LoadBalancer controller started') ? true : undefined), 'the controller started', 60_000);

    const burstStarted = Date.now();
    await inParallel(SERVICES, 16, (i) =>
      client.request('POST', servicesPath, { body: { metadata: { name: `svc-${String(i)}` }, spec: { type: 'LoadBalancer', loadBalancerClass: 'portico.dev/l2', ports: [{ port: 80 }] } } }),
    );
    await eventually(async () => ((await addressedCount()) === SERVICES ? true : undefined), `${String(SERVICES)} Services addressed`, 60_000, 500);
    const addressed = Date.now();

    const after = await eventually(() => compactions().find((c) => Date.parse(c.time) >= addressed), 'a heap compaction after the burst', 30_000, 200);
    expect(after.heapAfterMb).toBeLessThan(after.heapBeforeMb);
    // Work never paused for 2 s during the burst.
    expect(compactions().filter((c) => Date.parse(c.time) >= burstStarted && Date.parse(c.time) < addressed)).toEqual([]);
  });
});
