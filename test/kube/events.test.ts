import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DEFAULT_OBJECT_BURST, DEFAULT_OBJECT_REFILL_MS, EventRecorder, ObjectSpamFilter } from '../../src/kube/events.js';
import { FakeClock, flushMicrotasks } from '../fakes/clock.js';
import { GuardedClient } from '../../src/kube/guarded-client.js';
import { RecordingClient } from '../fakes/recording-client.js';

const web = { apiVersion: 'v1', kind: 'Service', namespace: 'shop', name: 'web', uid: 'u1' };
const api = { apiVersion: 'v1', kind: 'Service', namespace: 'shop', name: 'api', uid: 'u2' };

function setup(qps = 1, burst = 2): { clock: FakeClock; client: RecordingClient; recorder: EventRecorder; registry: Registry } {
  const clock = new FakeClock();
  const client = new RecordingClient();
  const registry = new Registry();
  return { clock, client, registry, recorder: new EventRecorder(client, 'portico-test', { clock, qps, burst, registry }) };
}

async function dropped(registry: Registry): Promise<Record<string, number>> {
  const values = (await registry.getSingleMetric('portico_events_dropped_total')?.get())?.values ?? [];
  return Object.fromEntries(values.map((v) => [String(v.labels.cause), v.value]));
}

function written(client: RecordingClient): string[] {
  return client.requests.map((r) => {
    const body = r.body as { involvedObject?: { name: string }; reason?: string; count?: number };
    return r.method === 'POST' ? `${body.involvedObject?.name ?? ''} ${body.reason ?? ''}` : `PATCH count=${String(body.count)}`;
  });
}

/** A recorder whose controller's queue is always busy (yieldTo), with `n` Services' EnsuredLoadBalancer waiting. */
function busyWithEnsured(n: number): { clock: FakeClock; client: RecordingClient; recorder: EventRecorder } {
  const clock = new FakeClock();
  const client = new RecordingClient();
  const recorder = new EventRecorder(client, 'portico-test', { clock });
  recorder.yieldTo(() => true);
  for (let i = 0; i < n; i++) recorder.record({ ...web, name: `s${String(i)}`, uid: `u${String(i)}` }, 'Normal', 'EnsuredLoadBalancer', 'Ensured load balancer: 192.0.2.7');
  return { clock, client, recorder };
}

describe('ObjectSpamFilter', () => {
  const MIN = 60_000;
  // Each row: what one object asks for, in order, at the given times (ms); `allowed` counts the yeses.
  it.each([
    { name: 'a burst of 25 passes, the 26th is dropped', asks: [{ at: 0, n: 26 }], allowed: 25 },
    { name: 'one token comes back every 5 minutes', asks: [{ at: 0, n: 30 }, { at: 5 * MIN - 1, n: 1 }, { at: 5 * MIN, n: 2 }], allowed: 26 },
    { name: 'an hour refills 12 tokens', asks: [{ at: 0, n: 25 }, { at: 60 * MIN, n: 30 }], allowed: 37 },
    { name: 'a quiet day refills the bucket, but not beyond the burst', asks: [{ at: 0, n: 25 }, { at: 24 * 60 * MIN, n: 30 }], allowed: 50 },
    { name: 'slow enough, nothing is dropped', asks: Array.from({ length: 40 }, (_, i) => ({ at: i * 5 * MIN, n: 1 })), allowed: 40 },
  ])('$name', ({ asks, allowed }) => {
    const filter = new ObjectSpamFilter();
    let yes = 0;
    for (const ask of asks) for (let i = 0; i < ask.n; i++) if (filter.allow('u1', ask.at)) yes++;
    expect(yes).toBe(allowed);
  });

  it('leaves other objects unaffected', () => {
    const filter = new ObjectSpamFilter();
    for (let i = 0; i < 100; i++) filter.allow('noisy', 0);
    expect(filter.allow('noisy', 0)).toBe(false);
    expect(Array.from({ length: DEFAULT_OBJECT_BURST }, () => filter.allow('quiet', 0)).every(Boolean)).toBe(true);
  });

  it('forgets the least recently seen object when full, so memory does not grow with churn', () => {
    const filter = new ObjectSpamFilter(2, DEFAULT_OBJECT_REFILL_MS, 3);
    for (const key of ['a', 'a', 'b', 'c']) filter.allow(key, 0);
    expect(filter.allow('a', 0)).toBe(false);
    filter.allow('d', 0); // b is the oldest now
    for (let i = 0; i < 10_000; i++) filter.allow(`churn-${String(i)}`, 0);
    expect(filter.size).toBe(3);
    // A forgotten object starts again with a full bucket, as after a quiet spell.
    expect(filter.allow('a', 0)).toBe(true);
  });
});

describe('EventRecorder', () => {
  it('creates an Event with the involved object, reason and source', async () => {
    const { client, recorder } = setup();
    recorder.record(web, 'Warning', 'SyncLoadBalancerFailed', 'boom');
    await flushMicrotasks();
    expect(client.requests).toHaveLength(1);
    expect(client.requests[0]).toMatchObject({
      method: 'POST',
      path: '/api/v1/namespaces/shop/events',
      body: { involvedObject: web, type: 'Warning', reason: 'SyncLoadBalancerFailed', message: 'boom', count: 1, source: { component: 'portico-test' } },
    });
  });

  it('paces writes with the token bucket once the burst is spent', async () => {
    const { clock, client, recorder } = setup(1, 2);
    for (const reason of ['A', 'B', 'C', 'D']) recorder.record(web, 'Normal', reason, reason);
    await flushMicrotasks();
    expect(client.requests).toHaveLength(2);
    await clock.advance(1_000);
    expect(client.requests).toHaveLength(3);
    await clock.advance(1_000);
    expect(client.requests.map((r) => (r.body as { reason: string }).reason)).toEqual(['A', 'B', 'C', 'D']);
  });

  it('folds repeats into a count: one Event created, then patched', async () => {
    const { clock, client, recorder } = setup(1, 1);
    for (let i = 0; i < 5; i++) recorder.record(web, 'Warning', 'AllocationFailed', 'pool exhausted');
    await clock.advance(2_000);
    expect(client.requests.map((r) => r.method)).toEqual(['POST', 'PATCH']);
    expect(client.requests[1]?.body).toMatchObject({ count: 5 });
  });

  it('stops writing after close, dropping what is left', async () => {
    const { clock, client, recorder } = setup(1, 1);
    for (const reason of ['A', 'B', 'C', 'D']) recorder.record(web, 'Normal', reason, reason);
    const closing = recorder.close(1_500);
    await clock.advance(1_500);
    await closing;
    const written = client.requests.length;
    expect(written).toBeLessThan(4);
    recorder.record(web, 'Normal', 'E', 'E');
    await clock.advance(10_000);
    expect(client.requests).toHaveLength(written);
  });

  it('drops what waits, quietly, when writes are refused for not leading: counted as stopped, one log line, not a warning per Event', async () => {
    const clock = new FakeClock();
    const inner = new RecordingClient();
    const registry = new Registry();
    let leading = true;
    const lines: { level: string; msg: string }[] = [];
    const logger = {
      debug: (_o: object, msg: string) => lines.push({ level: 'debug', msg }),
      info: (_o: object, msg: string) => lines.push({ level: 'info', msg }),
      warn: (_o: object, msg: string) => lines.push({ level: 'warn', msg }),
    } as unknown as NonNullable<ConstructorParameters<typeof EventRecorder>[2]>['logger'];
    const recorder = new EventRecorder(new GuardedClient(inner, () => leading), 'portico-test', { clock, qps: 1, burst: 1, registry, logger });
    recorder.record(web, 'Normal', 'A', 'first');
    await clock.advance(0);
    expect(inner.requests).toHaveLength(1);
    leading = false;
    for (const reason of ['B', 'C', 'D', 'E']) recorder.record(web, 'Normal', reason, reason);
    await clock.advance(10_000);
    expect(inner.requests).toHaveLength(1);
    expect(await dropped(registry)).toEqual({ stopped: 4 });
    expect(lines.filter((l) => l.level === 'warn')).toEqual([]);
    expect(lines.filter((l) => l.msg.includes('not leading'))).toHaveLength(1);
    // A renewal hiccup, not the end of the term: once writes are allowed again, Events flow again.
    leading = true;
    recorder.record(web, 'Normal', 'F', 'after the hiccup');
    await clock.advance(10_000);
    expect(inner.requests).toHaveLength(2);
  });

  it('drops an object\'s Events beyond its burst, counted, while other objects still get theirs', async () => {
    const { clock, client, recorder, registry } = setup(Infinity, 1);
    for (let i = 0; i < DEFAULT_OBJECT_BURST + 5; i++) recorder.record(web, 'Warning', 'SyncLoadBalancerFailed', `attempt ${String(i)}`);
    recorder.record(api, 'Normal', 'EnsuredLoadBalancer', 'Ensured load balancer: 192.0.2.7');
    await clock.advance(1_000);
    expect(written(client).filter((w) => w.startsWith('web '))).toHaveLength(DEFAULT_OBJECT_BURST);
    expect(written(client)).toContain('api EnsuredLoadBalancer');
    expect(await dropped(registry)).toEqual({ rateLimited: 5 });
    // Five minutes later the object may speak once more.
    await clock.advance(DEFAULT_OBJECT_REFILL_MS);
    recorder.record(web, 'Warning', 'SyncLoadBalancerFailed', 'later');
    recorder.record(web, 'Warning', 'SyncLoadBalancerFailed', 'later still');
    await clock.advance(1_000);
    expect(written(client).filter((w) => w.startsWith('web '))).toHaveLength(DEFAULT_OBJECT_BURST + 1);
    expect(await dropped(registry)).toEqual({ rateLimited: 6 });
  });

  it('charges repeats folded into a waiting Event nothing: a failing loop costs one token per write', async () => {
    const { clock, client, recorder, registry } = setup(1, 1);
    recorder.record(api, 'Normal', 'Busy', 'first'); // takes the global token, so the next write waits
    for (let i = 0; i < 100; i++) recorder.record(web, 'Warning', 'AllocationFailed', 'pool exhausted');
    await clock.advance(5_000);
    expect(written(client)).toEqual(['api Busy', 'web AllocationFailed']);
    expect(client.requests[1]?.body).toMatchObject({ count: 100 });
    expect(await dropped(registry)).toEqual({});
  });

  it('writes 1000 Services\' Events within a few seconds by default, and leaves no timer behind', async () => {
    const clock = new FakeClock();
    const client = new RecordingClient();
    const recorder = new EventRecorder(client, 'portico-test', { clock });
    for (let i = 0; i < 1000; i++) recorder.record({ ...web, name: `s${String(i)}`, uid: `u${String(i)}` }, 'Normal', 'EnsuredLoadBalancer', 'Ensured load balancer: 192.0.2.7');
    await clock.advance(5_000);
    expect(client.requests).toHaveLength(1000);
    expect(clock.pendingTimers).toBe(0);
  });

  it('yields to reconcile work: Normal Events wait while the queue is busy, then go at full rate once it is idle', async () => {
    const clock = new FakeClock();
    const client = new RecordingClient();
    const recorder = new EventRecorder(client, 'portico-test', { clock });
    let busy = true;
    recorder.yieldTo(() => busy);
    for (let i = 0; i < 1000; i++) recorder.record({ ...web, name: `s${String(i)}`, uid: `u${String(i)}` }, 'Normal', 'EnsuredLoadBalancer', 'Ensured load balancer: 192.0.2.7');
    await clock.advance(5_000);
    // Status writes keep the API server to themselves.
    expect(client.requests).toHaveLength(0);
    busy = false;
    await clock.advance(5_000);
    expect(client.requests).toHaveLength(1000);
    expect(clock.pendingTimers).toBe(0);
  });

  it('keeps Warnings flowing while the queue is busy, at 10 a second, ahead of held Normal Events', async () => {
    const { clock, client, recorder } = busyWithEnsured(1);
    for (let i = 0; i < 100; i++) recorder.record({ ...api, name: `f${String(i)}`, uid: `f${String(i)}` }, 'Warning', 'AllocationFailed', 'no address left in pool default');
    await clock.advance(5_000);
    const reasons = written(client).map((line) => line.split(' ')[1]);
    expect(reasons.length).toBeGreaterThanOrEqual(45);
    expect(reasons.length).toBeLessThanOrEqual(55);
    expect(new Set(reasons)).toEqual(new Set(['AllocationFailed']));
    recorder.discard();
  });


  it('writes a Normal Event held for 30 s while the queue never goes idle, at the busy rate', async () => {
    const { clock, client, recorder } = busyWithEnsured(100);
    await clock.advance(29_900);
    expect(client.requests).toHaveLength(0);
    await clock.advance(5_100);
    expect(client.requests.length).toBeGreaterThanOrEqual(45);
    expect(client.requests.length).toBeLessThanOrEqual(55);
    expect(written(client)[0]).toBe('s0 EnsuredLoadBalancer');
    recorder.discard();
  });


  it('writes held Normal Events at full rate on close: the work they waited for has stopped', async () => {
    const { clock, client, recorder } = busyWithEnsured(300);
    const closed = recorder.close(5_000);
    await clock.advance(1_000);
    await closed;
    expect(client.requests).toHaveLength(300);
    expect(clock.pendingTimers).toBe(0);
  });


});
