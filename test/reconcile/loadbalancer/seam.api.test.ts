/**
 * The provider seam and the manager against the real API server: leadership ending aborts an
 * in-flight provider call and nothing is written after it; consumers share one watch per
 * resource.
 */
import { Writable } from 'node:stream';
import type { V1Lease, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { applyManifest } from '../../../src/kube/apply.js';
import { createLogger } from '../../../src/kube/logger.js';
import { ProviderError } from '../../../src/providers/provider.js';
import { fakeProviderModule, FlakyProvider, TEST_CLOUD } from '../../fakes/flaky-provider.js';
import { installCrds, startTestController } from '../../support/controller.js';
import { eventually, useNamespace } from '../../support/kube.js';

const ns = useNamespace('seam');
const { client } = ns;

/** Log lines as objects, with the time each arrived. */
function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: { at: number; msg: string }[] } {
  const lines: { at: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        try {
          lines.push({ at: Date.now(), msg: (JSON.parse(line) as { msg: string }).msg });
        } catch {
          // not JSON: ignore
        }
      }
      done();
    },
  });
  return { logger: createLogger('info', stream), lines };
}

describe('provider seam v2', () => {
  it('aborts an in-flight ensure within a second of losing leadership, and writes nothing after', async () => {
    await installCrds(client);
    const slow = new FlakyProvider(TEST_CLOUD, 0, () => new ProviderError('unused', { retryable: true }), 120_000);
    const { logger, lines } = capturingLogger();
    const leaseName = `seam-${ns.name}`;
    const controller = await startTestController(
      [`--providers=${TEST_CLOUD}`, '--leader-elect', `--leader-elect-namespace=${ns.name}`, `--leader-elect-name=${leaseName}`, '--leader-elect-identity=seam-leader', '--leader-elect-lease-duration=4s', '--leader-elect-renew-deadline=3s', '--leader-elect-retry-period=500ms', '--log-level=info'],
      { providerModules: [fakeProviderModule(slow)], logger },
    );
    try {
      const started = slow.nextEnsure();
      await applyManifest(client, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'slow', namespace: ns.name }, spec: { type: 'LoadBalancer', loadBalancerClass: TEST_CLOUD, ports: [{ port: 80 }] } });
      await started;

      // Another candidate takes the Lease (as after a partition): the leader must step down.
      const leasePath = `/apis/coordination.k8s.io/v1/namespaces/${ns.name}/leases/${leaseName}`;
      const lease = await client.request<V1Lease>('GET', leasePath);
      await client.request('PUT', leasePath, { body: { ...lease, spec: { ...lease.spec, holderIdentity: 'thief', renewTime: new Date().toISOString().replace('Z', '000Z'), leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 } } });
      const lost = await eventually(() => lines.find((l) => l.msg === 'leadership lost'), 'the leader to notice', 10_000, 20);
      // A deadline, not a timing measurement: the abort must follow the loss at once.
      await eventually(() => (slow.callsFor(`${ns.name}/slow`, 'ensure').some((c) => c.abortedAtEnd === true) ? true : undefined), 'the in-flight ensure to be aborted', 1_000, 10);
      expect(lines.findIndex((l) => l === lost)).toBeGreaterThanOrEqual(0);
      expect(slow.writes).toEqual([]);
      const service = await client.request<V1Service>('GET', `/api/v1/namespaces/${ns.name}/services/slow`);
      expect(service.status?.loadBalancer?.ingress ?? []).toEqual([]);
    } finally {
      await controller.stop();
    }
  });

  it('opens one watch per resource, shared by the controller and the providers', async () => {
    const controller = await startTestController(['--providers=portico.dev/l2']);
    try {
      // Both the LoadBalancer controller and the bare-metal provider read Services.
      const watches = await eventually(async () => {
        const metric = await controller.running.registry.getSingleMetric('portico_informer_watches')?.get();
        const byResource = new Map((metric?.values ?? []).map((v) => [String(v.labels.resource), v.value]));
        return byResource.get('/api/v1/services') === 1 && byResource.get('/apis/portico.dev/v1alpha1/addresspools') === 1 ? byResource : undefined;
      }, 'the informers to watch');
      for (const [resource, open] of watches) expect(open, resource).toBe(1);
    } finally {
      await controller.stop();
    }
  });
});
