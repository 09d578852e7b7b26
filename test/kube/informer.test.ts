import { describe, expect, it } from 'vitest';
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
