import { describe, expect, it } from 'vitest';
import { EventRecorder } from '../../src/kube/events.js';
import { FakeClock, flushMicrotasks } from '../fakes/clock.js';
import { RecordingClient } from '../fakes/recording-client.js';

const web = { apiVersion: 'v1', kind: 'Service', namespace: 'shop', name: 'web', uid: 'u1' };

function setup(qps = 1, burst = 2): { clock: FakeClock; client: RecordingClient; recorder: EventRecorder } {
  const clock = new FakeClock();
  const client = new RecordingClient();
  return { clock, client, recorder: new EventRecorder(client, 'portico-test', { clock, qps, burst }) };
}

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
});
