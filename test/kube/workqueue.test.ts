import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';

import {
  DEFAULT_BACKOFF_BASE_MS,
  DEFAULT_BACKOFF_MAX_MS,
  TokenBucket,
  WorkQueue,
  backoffDelay,
  done,
  requeueAfter,
  retry,
  terminal,
} from '../../src/kube/workqueue.js';
import type { Outcome, WorkQueueOptions } from '../../src/kube/workqueue.js';
import { FakeClock, flushMicrotasks } from '../fakes/clock.js';

function setup(options: Partial<WorkQueueOptions> = {}): { q: WorkQueue; clock: FakeClock; registry: Registry } {
  const clock = new FakeClock();
  const registry = options.registry ?? new Registry();
  const q = new WorkQueue({ name: 'test', clock, ...options, registry });
  return { q, clock, registry };
}

async function take(q: WorkQueue): Promise<string> {
  const key = await q.get();
  if (key === undefined) throw new Error('queue is shut down');
  return key;
}

/** Reads one sample; `suffix` picks `_sum`/`_count` of a histogram. */
async function sample(registry: Registry, metric: string, name: string, suffix = ''): Promise<number | undefined> {
  const m = registry.getSingleMetric(metric);
  if (!m) throw new Error(`no metric ${metric}`);
  const { values } = await m.get();
  // Only histogram samples carry metricName (x_bucket, x_sum, x_count).
  return values.find((v) => v.labels.name === name && ('metricName' in v ? v.metricName : metric) === metric + suffix)?.value;
}

describe('backoffDelay', () => {
  it.each([
    { failures: 0, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 5_000 },
    { failures: 1, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 10_000 },
    { failures: 2, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 20_000 },
    { failures: 3, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 40_000 },
    { failures: 4, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 80_000 },
    { failures: 5, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 160_000 },
    { failures: 6, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 300_000 },
    { failures: 7, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 300_000 },
    { failures: 1_100, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 300_000 },
    { failures: Number.MAX_SAFE_INTEGER, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 300_000 },
    { failures: Infinity, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 300_000 },
    { failures: -3, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 5_000 },
    { failures: NaN, base: DEFAULT_BACKOFF_BASE_MS, max: DEFAULT_BACKOFF_MAX_MS, want: 5_000 },
    { failures: 2, base: 100, max: 1_000, want: 400 },
    { failures: 4, base: 100, max: 1_000, want: 1_000 },
    { failures: 5_000, base: 0, max: 1_000, want: 0 },
    { failures: 0, base: 2_000, max: 1_000, want: 1_000 },
  ])('failures=$failures base=$base max=$max -> $want ms', ({ failures, base, max, want }) => {
    expect(backoffDelay(failures, base, max)).toBe(want);
  });
});

describe('TokenBucket', () => {
  it.each([
    { name: 'burst is free, then 1/qps apart', qps: 10, burst: 3, at: [0, 0, 0, 0, 0], want: [0, 0, 0, 100, 200] },
    { name: 'refills at qps', qps: 10, burst: 1, at: [0, 100, 200], want: [0, 0, 0] },
    { name: 'partial refill', qps: 10, burst: 1, at: [0, 50], want: [0, 50] },
    { name: 'debt carries over time', qps: 1, burst: 2, at: [0, 0, 0, 500], want: [0, 0, 1_000, 1_500] },
    { name: 'refill capped at burst', qps: 10, burst: 2, at: [0, 0, 10_000, 10_000, 10_000], want: [0, 0, 0, 0, 100] },
    { name: 'Infinity qps never delays', qps: Infinity, burst: 1, at: [0, 0, 0], want: [0, 0, 0] },
  ])('$name', ({ qps, burst, at, want }) => {
    const bucket = new TokenBucket(qps, burst);
    expect(at.map((t) => bucket.reserve(t))).toEqual(want);
  });

  it.each([
    { qps: 0, burst: 1 },
    { qps: -1, burst: 1 },
    { qps: 10, burst: 0 },
    { qps: 10, burst: Infinity },
  ])('rejects qps=$qps burst=$burst', ({ qps, burst }) => {
    expect(() => new TokenBucket(qps, burst)).toThrow(RangeError);
  });
});

describe('WorkQueue add/get/done', () => {
  it.each([
    { adds: ['a', 'a', 'a'], order: ['a'] },
    { adds: ['a', 'b', 'a', 'c', 'b'], order: ['a', 'b', 'c'] },
    { adds: ['ns/x', 'ns/y', 'other/x'], order: ['ns/x', 'ns/y', 'other/x'] },
  ])('de-duplicates $adds -> $order', async ({ adds, order }) => {
    const { q } = setup();
    for (const key of adds) q.add(key);
    expect(q.len()).toBe(order.length);
    const got: string[] = [];
    while (q.len() > 0) got.push(await take(q));
    expect(got).toEqual(order);
  });

  it.each([
    { addsWhileProcessing: 0, rerun: false },
    { addsWhileProcessing: 1, rerun: true },
    { addsWhileProcessing: 5, rerun: true },
  ])('a key added $addsWhileProcessing times while processing is re-queued once: $rerun', async ({ addsWhileProcessing, rerun }) => {
    const { q } = setup();
    q.add('a');
    expect(await take(q)).toBe('a');
    for (let i = 0; i < addsWhileProcessing; i++) q.add('a');
    // Not handed out while in flight.
    expect(q.len()).toBe(0);
    q.done('a');
    expect(q.len()).toBe(rerun ? 1 : 0);
    if (rerun) {
      expect(await take(q)).toBe('a');
      q.done('a');
      expect(q.len()).toBe(0);
    }
  });

  it('get waits for an add and resolves undefined on shutDown', async () => {
    const { q } = setup();
    const first = q.get();
    const second = q.get();
    q.add('a');
    expect(await first).toBe('a');
    q.shutDown();
    expect(await second).toBeUndefined();
    expect(await q.get()).toBeUndefined();
  });

  it('ignores adds after shutDown and drops queued keys', async () => {
    const { q, clock } = setup();
    q.add('a');
    q.addAfter('b', 1_000);
    q.shutDown();
    q.add('c');
    q.addRateLimited('d');
    expect(q.len()).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    expect(await q.get()).toBeUndefined();
  });
});

describe('WorkQueue addAfter', () => {
  it.each([
    { delays: [1_000, 5_000], readyAt: 1_000 },
    { delays: [5_000, 1_000], readyAt: 1_000 },
    { delays: [3_000, 3_000], readyAt: 3_000 },
    { delays: [9_000, 2_000, 4_000], readyAt: 2_000 },
  ])('delays $delays keep the earliest: ready at $readyAt ms, once', async ({ delays, readyAt }) => {
    const { q, clock } = setup();
    for (const ms of delays) q.addAfter('k', ms);
    await clock.advance(readyAt - 1);
    expect(q.len()).toBe(0);
    await clock.advance(1);
    expect(q.len()).toBe(1);
    expect(clock.pendingTimers).toBe(0);
    q.done(await take(q));
    await clock.advance(60_000);
    expect(q.len()).toBe(0);
  });

  it('drops a delayed add when the key is added now: one run, not a second one later', async () => {
    const { q, clock } = setup();
    q.addAfter('k', 10_000);
    await clock.advance(3_000);
    q.add('k');
    expect(clock.pendingTimers).toBe(0);
    q.done(await take(q));
    await clock.advance(60_000);
    expect(q.len()).toBe(0);
  });

  it('schedules what the run after an add asks for, not what was pending before it', async () => {
    const { q, clock } = setup();
    q.addAfter('k', 10_000);
    q.add('k');
    q.done(await take(q));
    q.addAfter('k', 30_000);
    await clock.advance(29_999);
    expect(q.len()).toBe(0);
    await clock.advance(1);
    expect(q.len()).toBe(1);
  });

  it.each([0, -5, NaN])('a non-positive delay (%s) adds immediately', (ms) => {
    const { q, clock } = setup();
    q.addAfter('k', ms);
    expect(q.len()).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('WorkQueue addRateLimited', () => {
  it('backs off per key 5 s doubling to a 300 s cap', async () => {
    const { q, clock } = setup();
    const want = [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000];
    for (const [i, delay] of want.entries()) {
      q.addRateLimited('k');
      expect(q.numRequeues('k')).toBe(i + 1);
      await clock.advance(delay - 1);
      expect(q.len(), `failure ${i + 1} too early`).toBe(0);
      await clock.advance(1);
      expect(q.len(), `failure ${i + 1} not ready after ${delay} ms`).toBe(1);
      q.done(await take(q));
    }
  });

  it('honours configured backoff base and cap', async () => {
    const { q, clock } = setup({ backoffBaseMs: 100, backoffMaxMs: 250 });
    const readyAfter: number[] = [];
    for (let i = 0; i < 4; i++) {
      const start = clock.now();
      q.addRateLimited('k');
      while (q.len() === 0) await clock.advance(10);
      readyAfter.push(clock.now() - start);
      q.done(await take(q));
    }
    expect(readyAfter).toEqual([100, 200, 250, 250]);
  });

  it('keeps failure counts per key', () => {
    const { q } = setup();
    q.addRateLimited('a');
    q.addRateLimited('a');
    q.addRateLimited('b');
    expect([q.numRequeues('a'), q.numRequeues('b'), q.numRequeues('c')]).toEqual([2, 1, 0]);
  });

  it.each([
    { failures: 1, forget: true, nextDelay: 5_000 },
    { failures: 3, forget: true, nextDelay: 5_000 },
    { failures: 10, forget: true, nextDelay: 5_000 },
    { failures: 3, forget: false, nextDelay: 40_000 },
  ])('after $failures failures, forget=$forget -> next delay $nextDelay ms', async ({ failures, forget, nextDelay }) => {
    const { q, clock } = setup();
    for (let i = 0; i < failures; i++) q.addRateLimited('k');
    await clock.advance(DEFAULT_BACKOFF_BASE_MS);
    q.done(await take(q));
    if (forget) q.forget('k');
    expect(q.numRequeues('k')).toBe(forget ? 0 : failures);
    q.addRateLimited('k');
    await clock.advance(nextDelay - 1);
    expect(q.len()).toBe(0);
    await clock.advance(1);
    expect(q.len()).toBe(1);
  });

  it('delays by the token bucket once the burst is spent', async () => {
    const { q, clock } = setup({ qps: 1, burst: 2, backoffBaseMs: 1, backoffMaxMs: 1_000 });
    const start = clock.now();
    const readyAfter = new Map<string, number>();
    const ac = new AbortController();
    const running = q.run(
      4,
      (key) => {
        readyAfter.set(key, clock.now() - start);
        return Promise.resolve(done());
      },
      ac.signal,
    );
    for (const key of ['a', 'b', 'c', 'd']) q.addRateLimited(key);
    await clock.advance(5_000);
    ac.abort();
    await running;
    // a and b use the burst (per-key backoff 1 ms wins); c and d wait 1 s apart at 1 qps.
    expect(Object.fromEntries(readyAfter)).toEqual({ a: 1, b: 1, c: 1_000, d: 2_000 });
  });
});

describe('WorkQueue run', () => {
  // b is re-added while a and b should be in flight; with one worker b is still queued, so that add de-duplicates.
  it.each([
    { workers: 1, maxConcurrent: 1, want: { a: 2, b: 1, c: 1 } },
    { workers: 2, maxConcurrent: 2, want: { a: 2, b: 2, c: 1 } },
    { workers: 4, maxConcurrent: 3, want: { a: 2, b: 2, c: 1 } },
    { workers: 8, maxConcurrent: 3, want: { a: 2, b: 2, c: 1 } },
  ])('with $workers workers runs each key at most once at a time', async ({ workers, maxConcurrent, want }) => {
    const { q, clock } = setup();
    const inFlight = new Map<string, number>();
    let total = 0;
    let maxPerKey = 0;
    let maxTotal = 0;
    const runs = new Map<string, number>();
    const ac = new AbortController();
    const running = q.run(
      workers,
      async (key) => {
        const n = (inFlight.get(key) ?? 0) + 1;
        inFlight.set(key, n);
        total++;
        maxPerKey = Math.max(maxPerKey, n);
        maxTotal = Math.max(maxTotal, total);
        runs.set(key, (runs.get(key) ?? 0) + 1);
        await clock.sleep(100);
        inFlight.set(key, n - 1);
        total--;
        return done();
      },
      ac.signal,
    );
    q.add('a');
    q.add('b');
    q.add('c');
    await flushMicrotasks();
    q.add('a');
    q.add('a');
    q.add('b');
    await clock.advance(50);
    q.add('a');
    await clock.advance(1_000);
    ac.abort();
    await running;
    expect(maxPerKey).toBe(1);
    expect(maxTotal).toBe(maxConcurrent);
    expect(Object.fromEntries(runs)).toEqual(want);
  });

  const boom = new Error('boom');
  const steps = {
    done: (): Outcome => done(),
    retry: (): Outcome => retry(boom),
    terminal: (): Outcome => terminal(boom),
    requeue1s: (): Outcome => requeueAfter(1_000),
    requeue2s: (): Outcome => requeueAfter(2_000),
    throws: (): Outcome => {
      throw boom;
    },
  } as const;
  type Step = keyof typeof steps;

  it.each<{ name: string; script: Step[]; callsAt: number[]; requeuesSeen: number[] }>([
    { name: 'done runs once', script: ['done'], callsAt: [0], requeuesSeen: [0] },
    { name: 'terminal does not retry', script: ['terminal'], callsAt: [0], requeuesSeen: [0] },
    { name: 'error retries with backoff', script: ['retry', 'retry', 'done'], callsAt: [0, 5_000, 15_000], requeuesSeen: [0, 1, 2] },
    { name: 'a throwing handler retries', script: ['throws', 'throws', 'done'], callsAt: [0, 5_000, 15_000], requeuesSeen: [0, 1, 2] },
    { name: 'terminal after errors stops and forgets', script: ['retry', 'terminal'], callsAt: [0, 5_000], requeuesSeen: [0, 1] },
    { name: 'requeueAfter runs again after ms', script: ['requeue2s', 'done'], callsAt: [0, 2_000], requeuesSeen: [0, 0] },
    {
      name: 'requeueAfter forgets earlier failures',
      script: ['retry', 'requeue1s', 'retry', 'done'],
      callsAt: [0, 5_000, 6_000, 11_000],
      requeuesSeen: [0, 1, 0, 1],
    },
  ])('$name', async ({ script, callsAt, requeuesSeen }) => {
    const { q, clock } = setup();
    const start = clock.now();
    const calls: number[] = [];
    const seen: number[] = [];
    const ac = new AbortController();
    const running = q.run(
      2,
      (key) => {
        const step = script[calls.length] ?? 'done';
        calls.push(clock.now() - start);
        seen.push(q.numRequeues(key));
        return Promise.resolve().then(steps[step]);
      },
      ac.signal,
    );
    q.add('k');
    await clock.advance(600_000);
    expect(calls).toEqual(callsAt);
    expect(seen).toEqual(requeuesSeen);
    expect(q.numRequeues('k')).toBe(0);
    ac.abort();
    await running;
  });

  it('treats a handler that throws synchronously as an error', async () => {
    const { q, clock } = setup();
    let calls = 0;
    const ac = new AbortController();
    const running = q.run(
      1,
      () => {
        calls++;
        if (calls === 1) throw boom;
        return Promise.resolve(done());
      },
      ac.signal,
    );
    q.add('k');
    await flushMicrotasks();
    expect(q.numRequeues('k')).toBe(1);
    await clock.advance(5_000);
    expect(calls).toBe(2);
    ac.abort();
    await running;
  });

  it.each(['shutDown', 'abort'] as const)('drains in-flight handlers and resolves after %s', async (how) => {
    const { q, clock } = setup();
    const ac = new AbortController();
    const started: string[] = [];
    const finished: string[] = [];
    let resolved = false;
    const running = q
      .run(
        2,
        async (key) => {
          started.push(key);
          await clock.sleep(1_000);
          finished.push(key);
          return retry(boom);
        },
        ac.signal,
      )
      .then(() => {
        resolved = true;
      });
    q.add('a');
    q.add('b');
    q.add('c');
    await clock.advance(10);
    expect(started).toEqual(['a', 'b']);
    if (how === 'abort') ac.abort();
    else q.shutDown();
    expect(q.isShuttingDown()).toBe(true);
    await clock.advance(500);
    expect(resolved).toBe(false);
    await clock.advance(500);
    expect(resolved).toBe(true);
    expect(finished).toEqual(['a', 'b']);
    // c was queued, not in flight: dropped. The retries asked for after shutdown are not scheduled.
    expect(started).toEqual(['a', 'b']);
    expect(clock.pendingTimers).toBe(0);
    await running;
  });

  it('resolves at once when the signal is already aborted', async () => {
    const { q } = setup();
    q.add('a');
    let calls = 0;
    await q.run(
      1,
      () => {
        calls++;
        return Promise.resolve(done());
      },
      AbortSignal.abort(),
    );
    expect(calls).toBe(0);
  });

  it.each([0, -1, 1.5])('rejects %s workers', async (workers) => {
    const { q } = setup();
    await expect(q.run(workers, () => Promise.resolve(done()), new AbortController().signal)).rejects.toThrow(RangeError);
  });
});

describe('WorkQueue metrics', () => {
  it('records depth, adds, retries, queue and work durations', async () => {
    const { q, clock, registry } = setup({ name: 'services' });
    q.add('a');
    q.add('a');
    q.add('b');
    await clock.advance(2_000);
    const key = await take(q);
    await clock.advance(3_000);
    q.done(key);
    q.addRateLimited('b');
    q.addAfter('c', 1_000);
    await clock.advance(1_000);

    expect(await sample(registry, 'portico_workqueue_adds_total', 'services')).toBe(3);
    expect(await sample(registry, 'portico_workqueue_depth', 'services')).toBe(2);
    expect(await sample(registry, 'portico_workqueue_retries_total', 'services')).toBe(2);
    expect(await sample(registry, 'portico_workqueue_queue_duration_seconds', 'services', '_count')).toBe(1);
    expect(await sample(registry, 'portico_workqueue_queue_duration_seconds', 'services', '_sum')).toBe(2);
    expect(await sample(registry, 'portico_workqueue_work_duration_seconds', 'services', '_count')).toBe(1);
    expect(await sample(registry, 'portico_workqueue_work_duration_seconds', 'services', '_sum')).toBe(3);
  });

  it('lets two queues share one registry, told apart by name', async () => {
    const registry = new Registry();
    const clock = new FakeClock();
    const services = new WorkQueue({ name: 'services', clock, registry });
    const external = new WorkQueue({ name: 'external', clock, registry });
    services.add('x');
    external.add('x');
    external.add('y');
    expect(registry.getMetricsAsArray()).toHaveLength(5);
    const text = await registry.getSingleMetricAsString('portico_workqueue_adds_total');
    expect(text).toContain('portico_workqueue_adds_total{name="services"} 1');
    expect(text).toContain('portico_workqueue_adds_total{name="external"} 2');
  });

  it('refuses a registry that has a different metric under the same name', () => {
    const registry = new Registry();
    new Counter({ name: 'portico_workqueue_depth', help: 'clash', registers: [registry] });
    expect(() => new WorkQueue({ name: 'q', clock: new FakeClock(), registry })).toThrow(/different type/);
  });
});

describe('WorkQueue.busy', () => {
  it('is busy while a key waits or is processed, and not for a key only scheduled for later', async () => {
    const { q } = setup();
    expect(q.busy()).toBe(false);
    q.add('a');
    expect(q.busy()).toBe(true);
    const key = await take(q);
    expect(q.busy()).toBe(true);
    q.done(key);
    expect(q.busy()).toBe(false);
    q.addAfter('b', 60_000);
    expect(q.busy()).toBe(false);
  });
});
