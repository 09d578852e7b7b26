import type { V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { Cache } from '../../../src/kube/informer.js';
import { createLogger } from '../../../src/kube/logger.js';
import { runGarbageCollection, type Sweeper } from '../../../src/providers/aws/gc.js';
import { FakeClock, flushMicrotasks } from '../../fakes/clock.js';

function services(keys: string[]): Cache<V1Service> {
  const items = keys.map((k) => {
    const [namespace, name] = k.split('/');
    return { metadata: { namespace, name } };
  });
  return { get: () => undefined, list: () => items, on: () => undefined, waitForSync: () => Promise.resolve(true) };
}

describe('runGarbageCollection', () => {
  it('sweeps with the live Service keys once per interval, keeps going after a failed sweep, and stops with its signal', async () => {
    const clock = new FakeClock(0);
    const sweeps: { live: string[]; dryRun: boolean; at: number }[] = [];
    const sweeper: Sweeper = {
      sweep: (_signal, live, options) => {
        sweeps.push({ live: [...live].sort(), dryRun: options.dryRun, at: clock.now() });
        return sweeps.length === 2 ? Promise.reject(new Error('throttled')) : Promise.resolve({ loadBalancers: [], targetGroups: [], securityGroups: [] });
      },
    };
    const abort = new AbortController();
    const done = runGarbageCollection(sweeper, { services: services(['a/web', 'b/db']), intervalMs: 60_000, dryRun: true, clock, logger: createLogger('silent') }, abort.signal);
    await flushMicrotasks();
    await clock.advance(60_000);
    await clock.advance(60_000);
    expect(sweeps).toEqual([
      { live: ['a/web', 'b/db'], dryRun: true, at: 0 },
      { live: ['a/web', 'b/db'], dryRun: true, at: 60_000 },
      { live: ['a/web', 'b/db'], dryRun: true, at: 120_000 },
    ]);
    abort.abort();
    await done;
    await clock.advance(600_000);
    expect(sweeps).toHaveLength(3);
  });
});
