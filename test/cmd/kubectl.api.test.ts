/**
 * What a user sees with a real kubectl (the same release as the API server): Events in
 * `kubectl describe`, pool columns, `kubectl explain` defaults, `kubectl wait` on the condition,
 * and the troubleshooting one-liner of docs/troubleshooting.md.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyManifest } from '../../src/kube/apply.js';
import { installCrds, startTestController, type TestController } from '../support/controller.js';
import { eventually, kubectl, useNamespace } from '../support/kube.js';

const ns = useNamespace('kubectl');
const { client } = ns;
const run = kubectl();
const poolName = `${ns.name}-pool`;
let controller: TestController | undefined;

if (!run) {
  process.stderr.write('\n*** SKIPPING test/cmd/kubectl.api.test.ts: no kubectl next to the control-plane binaries (KUBEBUILDER_ASSETS without kubectl?) ***\n\n');
}

beforeAll(async () => {
  await installCrds(client);
  await applyManifest(client, { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name: poolName }, spec: { addresses: ['198.51.100.120-198.51.100.121'], allocation: { namespaces: [ns.name] } } });
  controller = await startTestController(['--default-class=portico.dev/l2']);
});

afterAll(async () => {
  await controller?.stop();
  await client.request('DELETE', `/apis/portico.dev/v1alpha1/addresspools/${poolName}`).catch(() => undefined);
});

describe.skipIf(!run)('kubectl, as a user runs it', () => {
  const k = run ?? ((): Promise<string> => Promise.reject(new Error('no kubectl')));

  it('waits for LoadBalancerReady, shows every Portico Event in describe, and the one-liner names the reason', async () => {
    await applyManifest(client, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: ns.name }, spec: { type: 'LoadBalancer', ports: [{ port: 80 }] } });
    await k('wait', '-n', ns.name, 'svc/web', '--for=condition=LoadBalancerReady', '--timeout=60s');
    // The pool moves away from the address: IPReleased, then a new address.
    await applyManifest(client, { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name: poolName }, spec: { addresses: ['198.51.100.122/32'], allocation: { namespaces: [ns.name] } } });
    const described = await eventually(async () => {
      const out = await k('describe', '-n', ns.name, 'svc/web');
      return ['EnsuredLoadBalancer', 'IPReleased'].every((r) => out.includes(r)) && out.includes('198.51.100.122 (assigned from pool') ? out : undefined;
    }, 'kubectl describe to show the Events');
    expect(described).toMatch(/Events:[\s\S]*IPReleased/);

    const doc = await readFile(new URL('../../docs/troubleshooting.md', import.meta.url), 'utf8');
    const columns = /custom-columns='([^']+)'/.exec(doc)?.[1];
    expect(columns).toBeDefined();
    const table = await k('get', 'svc', '-n', ns.name, '-o', `custom-columns=${columns ?? ''}`);
    expect(table).toMatch(/web\s+<none>\s+198\.51\.100\.122\s+True\s+Provisioned/);
  });

  it('lists pools with their columns and explains defaults', async () => {
    const pools = await k('get', 'addresspools', poolName);
    expect(pools).toMatch(/ADDRESSES[\s\S]*AUTO[\s\S]*READY/);
    expect(pools).toContain(poolName);
    // The API server publishes a new CRD's schema to OpenAPI a moment after the CRD is served.
    const explained = await eventually(() => k('explain', 'addresspools.spec.autoAssign').catch(() => undefined), 'the AddressPool schema in OpenAPI (kubectl explain)');
    // kubectl explain prints descriptions, not schema defaults: each defaulted field says its default.
    expect(explained).toContain('Default: true.');
  });

  it('shows Events on an AddressPool in describe', async () => {
    const bad = `${ns.name}-overlap`;
    await applyManifest(client, { apiVersion: 'portico.dev/v1alpha1', kind: 'AddressPool', metadata: { name: bad }, spec: { addresses: ['198.51.100.122/32'], allocation: { namespaces: [ns.name] } } });
    try {
      const out = await eventually(async () => {
        const text = await k('describe', 'addresspool', bad);
        return text.includes('Overlap') ? text : undefined;
      }, 'the Overlap Event in kubectl describe');
      expect(out).toMatch(/Events:[\s\S]*Overlap/);
    } finally {
      await client.request('DELETE', `/apis/portico.dev/v1alpha1/addresspools/${bad}`).catch(() => undefined);
    }
  });
});
