import { describe, expect, it, vi } from 'vitest';
import { Informer } from '../../src/kube/informer.js';
import { FakeClock } from '../fakes/clock.js';
import { SilentWatchClient } from '../fakes/kube-client.js';

describe('informer watchdog', () => {
  it('restarts a watch that stays silent past the stall timeout, resuming from its resourceVersion', async () => {
    const clock = new FakeClock();
    const client = new SilentWatchClient();
    client.items = [{ metadata: { name: 'a', resourceVersion: '10' } }];
    const informer = new Informer(client, { path: '/api/v1/services', clock, stallTimeoutMs: 60_000, backoffBaseMs: 1_000 });
    const abort = new AbortController();
    const running = informer.run(abort.signal);
    await informer.waitForSync();
    await clock.advance(59_000);
    expect(informer.stats.stalls).toBe(0);
    await clock.advance(2_000); // stall detected
    await clock.advance(1_000); // backoff, then a new watch
    expect(informer.stats.stalls).toBe(1);
    expect(client.calls.filter((c) => c.startsWith('WATCH'))).toEqual(['WATCH /api/v1/services rv=10', 'WATCH /api/v1/services rv=10']);
    expect(informer.stats.lists).toBe(1);
    abort.abort();
    await running;
  });

  it('does not restart a watch that keeps receiving bookmarks', async () => {
    const clock = new FakeClock();
    const client = new SilentWatchClient();
    const informer = new Informer(client, { path: '/api/v1/nodes', clock, stallTimeoutMs: 60_000 });
    const abort = new AbortController();
    const running = informer.run(abort.signal);
    await informer.waitForSync();
    for (let i = 0; i < 5; i++) {
      await clock.advance(50_000);
      client.push({ type: 'BOOKMARK', object: { metadata: { resourceVersion: String(20 + i) } } });
    }
    expect(informer.stats.stalls).toBe(0);
    expect(informer.stats.watches).toBe(1);
    abort.abort();
    await running;
  });
});

describe('informer cache transform', () => {
  const lastApplied = 'kubectl.kubernetes.io/last-applied-configuration';

  it('caches Services without managedFields or kubectl\'s last-applied copy, keeping every other annotation', async () => {
    const client = new SilentWatchClient();
    client.items = [
      {
        metadata: { name: 'web', namespace: 'a', resourceVersion: '1', managedFields: [{ manager: 'kubectl' }], annotations: { [lastApplied]: '{"big":"copy"}', 'portico.dev/address-pool': 'blue' } },
        spec: { type: 'LoadBalancer' },
      },
    ];
    const informer = new Informer(client, { path: '/api/v1/services', clock: new FakeClock() });
    const abort = new AbortController();
    const running = informer.run(abort.signal);
    await informer.waitForSync();
    expect(informer.get('a/web')).toEqual({ metadata: { name: 'web', namespace: 'a', resourceVersion: '1', annotations: { 'portico.dev/address-pool': 'blue' } }, spec: { type: 'LoadBalancer' } });
    abort.abort();
    await running;
  });

  it('caches Nodes with their addresses, conditions and labels but not their image list or capacity', async () => {
    const client = new SilentWatchClient();
    const informer = new Informer(client, { path: '/api/v1/nodes', clock: new FakeClock() });
    const abort = new AbortController();
    const running = informer.run(abort.signal);
    await informer.waitForSync();
    await vi.waitFor(() => expect(client.calls).toContain('WATCH /api/v1/nodes rv=10'));
    const node = {
      metadata: { name: 'n1', resourceVersion: '2', labels: { zone: 'z1' } },
      spec: { providerID: 'aws:///z1/i-1' },
      status: {
        addresses: [{ type: 'InternalIP', address: '192.0.2.10' }],
        conditions: [{ type: 'Ready', status: 'True' }],
        images: [{ names: ['registry.example/app:1'], sizeBytes: 1 }],
        nodeInfo: { kubeletVersion: 'v1.37.2' },
        capacity: { cpu: '2' },
        allocatable: { cpu: '2' },
      },
    };
    client.push({ type: 'ADDED', object: node });
    expect(informer.get('n1')).toEqual({ metadata: node.metadata, spec: node.spec, status: { addresses: node.status.addresses, conditions: node.status.conditions } });
    abort.abort();
    await running;
  });
});
