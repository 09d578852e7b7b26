/**
 * A deposed leader writes nothing: the leader is frozen (SIGSTOP), the standby takes the Lease
 * and does the work, the old leader is resumed with work queued — and the API server's audit
 * log shows not one write from it after it resumed. Its own control plane, for the audit log.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Lease, V1Service } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../hack/control-plane.js';
import { renderCrdFiles } from '../../src/api/render.js';
import { applyManifest, applyYaml, type Manifest } from '../../src/kube/apply.js';
import type { RestClient } from '../../src/kube/rest.js';
import { spawnControllerProcess } from '../support/controller.js';
import { eventually, testClient } from '../support/kube.js';

const NAMESPACE = 'deposed';
const LEASE = 'portico-controller';

interface AuditEvent {
  verb: string;
  userAgent?: string;
  requestURI: string;
  stage: string;
  requestReceivedTimestamp: string;
}

let plane: ControlPlane;
let auditDir = '';
let client: RestClient;
const children: ChildProcess[] = [];

function startController(identity: string): ChildProcess {
  const child = spawnControllerProcess(plane.kubeconfigPath, [
    '--default-class=portico.dev/l2',
    '--leader-elect',
    `--leader-elect-namespace=${NAMESPACE}`,
    `--leader-elect-identity=${identity}`,
    '--leader-elect-lease-duration=4s',
    '--leader-elect-renew-deadline=3s',
    '--leader-elect-retry-period=500ms',
    '--metrics-addr=0',
    '--health-addr=0',
    '--log-level=warn',
  ]);
  // Unread output must not fill the pipe and stall it.
  child.stdout?.resume();
  child.stderr?.resume();
  children.push(child);
  return child;
}

async function holder(): Promise<string | undefined> {
  const lease = await client.request<V1Lease>('GET', `/apis/coordination.k8s.io/v1/namespaces/${NAMESPACE}/leases/${LEASE}`).catch(() => undefined);
  return lease?.spec?.holderIdentity ?? undefined;
}

function lbService(name: string): Manifest {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: NAMESPACE }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } };
}

async function addressed(names: readonly string[]): Promise<boolean> {
  const list = await client.request<{ items: V1Service[] }>('GET', `/api/v1/namespaces/${NAMESPACE}/services`);
  const done = new Set(list.items.filter((s) => (s.status?.loadBalancer?.ingress ?? []).length > 0).map((s) => s.metadata?.name));
  return names.every((n) => done.has(n));
}

beforeAll(async () => {
  auditDir = await mkdtemp(join(tmpdir(), 'portico-audit-'));
  const policy = join(auditDir, 'policy.yaml');
  await writeFile(policy, 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n  verbs: [create, update, patch, delete, deletecollection]\n- level: None\n');
  plane = await startControlPlane({ controllerManager: false, apiserverArgs: [`--audit-policy-file=${policy}`, `--audit-log-path=${join(auditDir, 'audit.log')}`, '--audit-log-mode=blocking'] });
  client = testClient(plane.kubeconfigPath);
  for (const text of Object.values(renderCrdFiles())) await applyYaml(client, text);
  await eventually(() => client.request('GET', '/apis/portico.dev/v1alpha1/addresspools').then(() => true), 'the AddressPool CRD');
  await client.request('POST', '/api/v1/namespaces', { body: { metadata: { name: NAMESPACE } } });
  await applyManifest(client, { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name: 'deposed' }, spec: { addresses: ['198.51.100.0/24'] } });
}, 120_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await plane.stop();
  await rm(auditDir, { recursive: true, force: true });
});

describe('a deposed leader', () => {
  it('makes no write after it resumes from a pause that cost it the Lease (audit log)', async () => {
    const leader = startController('leader-a');
    await eventually(async () => ((await holder()) === 'leader-a' ? true : undefined), 'leader-a to lead', 60_000);
    await applyManifest(client, lbService('before'));
    await eventually(() => addressed(['before']).then((ok) => (ok ? true : undefined)), 'leader-a to serve');

    leader.kill('SIGSTOP');
    // Work arrives while it is frozen: its watch will deliver it all when it resumes.
    const names = Array.from({ length: 20 }, (_, i) => `during-${String(i)}`);
    for (const name of names) await applyManifest(client, lbService(name));
    startController('standby-b');
    await eventually(async () => ((await holder()) === 'standby-b' ? true : undefined), 'standby-b to take over', 60_000);
    await eventually(() => addressed(names).then((ok) => (ok ? true : undefined)), 'standby-b to serve', 60_000);

    const resumedAt = Date.now();
    leader.kill('SIGCONT');
    // Lost leadership: it stops and exits non-zero so that the pod restarts fresh.
    const code = await new Promise<number | null>((resolve) => leader.once('exit', resolve));
    expect(code).toBe(1);

    const audit = (await readFile(join(auditDir, 'audit.log'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as AuditEvent);
    const byLeader = audit.filter((e) => e.userAgent?.includes('(leader-a)') === true);
    expect(byLeader.length, 'leader-a wrote before it was frozen').toBeGreaterThan(0);
    const after = byLeader.filter((e) => new Date(e.requestReceivedTimestamp).getTime() >= resumedAt - 50);
    expect(after.map((e) => `${e.verb} ${e.requestURI}`)).toEqual([]);
  });
});
