import { describe, expect, it } from 'vitest';
import type { AwsApi, Operation } from '../../../src/providers/aws/api.js';
import { AwsRetriesExhausted, classify, guardApi, type CallOutcome } from '../../../src/providers/aws/guard.js';
import { FakeClock, flushMicrotasks } from '../../fakes/clock.js';

const throttling = (): Error => Object.assign(new Error('Rate exceeded'), { name: 'Throttling', $fault: 'client', $metadata: { httpStatusCode: 400 } });
const serverError = (): Error => Object.assign(new Error('internal'), { name: 'InternalFailure', $fault: 'server', $metadata: { httpStatusCode: 503 } });
const notFound = (): Error => Object.assign(new Error('nope'), { name: 'LoadBalancerNotFoundException', $fault: 'client', $metadata: { httpStatusCode: 400 } });

/** An AwsApi whose describeLoadBalancers answers from a script of outcomes. */
function scripted(clock: FakeClock, script: (Error | 'ok')[]): { api: AwsApi; calls: number[] } {
  const calls: number[] = [];
  const api = {
    describeLoadBalancers: () => {
      calls.push(clock.now());
      const next = script.shift() ?? 'ok';
      return next === 'ok' ? Promise.resolve({ items: [] }) : Promise.reject(next);
    },
  } as unknown as AwsApi;
  return { api, calls };
}

async function settle<T>(clock: FakeClock, promise: Promise<T>, stepMs = 1_000, steps = 200): Promise<T> {
  const state = { done: false };
  const tracked = promise.finally(() => (state.done = true));
  for (let i = 0; i < steps && !state.done; i++) await clock.advance(stepMs);
  return tracked;
}

describe('classify', () => {
  it.each([
    [throttling(), 'throttled'],
    [Object.assign(new Error('x'), { name: 'RequestLimitExceeded' }), 'throttled'],
    [Object.assign(new Error('x'), { $metadata: { httpStatusCode: 429 } }), 'throttled'],
    [serverError(), 'server-error'],
    [Object.assign(new Error('x'), { code: 'ECONNRESET' }), 'network-error'],
    [notFound(), 'client-error'],
  ] as const)('%s -> %s', (error, outcome) => {
    expect(classify(error)).toBe(outcome);
  });
});

describe('guardApi', () => {
  it('retries throttling and 5xx with jittered, growing backoff, then succeeds; every attempt is counted', async () => {
    const clock = new FakeClock(0);
    const s = scripted(clock, [throttling(), serverError(), throttling(), 'ok']);
    const outcomes: [Operation, CallOutcome][] = [];
    const api = guardApi(s.api, { clock, random: () => 0.5, onCall: (op, o) => outcomes.push([op, o]) });
    await settle(clock, api.describeLoadBalancers(new AbortController().signal, {}), 50);
    expect(outcomes.map(([, o]) => o)).toEqual(['throttled', 'server-error', 'throttled', 'ok']);
    // Full jitter with random 0.5: 125, 250, 500 ms after each failure.
    const gaps = s.calls.slice(1).map((t, i) => t - (s.calls[i] ?? 0));
    expect(gaps.every((g, i) => g >= (i === 0 ? 125 : 0))).toBe(true);
    expect(gaps[2] ?? 0).toBeGreaterThan(gaps[0] ?? 0);
  });

  it('gives up after maxAttempts with a typed, retryable error naming the operation', async () => {
    const clock = new FakeClock(0);
    const s = scripted(clock, Array.from({ length: 10 }, throttling));
    const api = guardApi(s.api, { clock, random: () => 1, maxAttempts: 4 });
    const error = await settle(clock, api.describeLoadBalancers(new AbortController().signal, {}).catch((e: unknown) => e));
    expect(error).toBeInstanceOf(AwsRetriesExhausted);
    expect((error as AwsRetriesExhausted).attempts).toBe(4);
    expect(s.calls).toHaveLength(4);
  });

  it('does not retry client errors', async () => {
    const clock = new FakeClock(0);
    const s = scripted(clock, [notFound(), 'ok']);
    const api = guardApi(s.api, { clock });
    await expect(api.describeLoadBalancers(new AbortController().signal, {})).rejects.toThrow('nope');
    expect(s.calls).toHaveLength(1);
  });

  it('makes no call once the signal fired, also during a backoff', async () => {
    const clock = new FakeClock(0);
    const s = scripted(clock, [throttling(), 'ok']);
    const api = guardApi(s.api, { clock, random: () => 1 });
    const abort = new AbortController();
    const pending = api.describeLoadBalancers(abort.signal, {}).catch((e: unknown) => e);
    await flushMicrotasks();
    expect(s.calls).toHaveLength(1);
    abort.abort(new Error('superseded'));
    await clock.advance(60_000);
    expect(await pending).toEqual(new Error('superseded'));
    expect(s.calls).toHaveLength(1);
    await expect(api.describeLoadBalancers(abort.signal, {})).rejects.toThrow('superseded');
    expect(s.calls).toHaveLength(1);
  });

  it('a throttling storm: the token bucket holds the call rate to its limit', async () => {
    const clock = new FakeClock(0);
    const s = scripted(clock, []);
    const api = guardApi(s.api, { clock, limits: { 'elb-describe': { ratePerSecond: 2, burst: 4 } } });
    const signal = new AbortController().signal;
    const all = Promise.all(Array.from({ length: 24 }, () => api.describeLoadBalancers(signal, {})));
    await settle(clock, all, 100);
    // 4 at once (the burst), then 2 per second: 20 more take 10 s.
    expect(s.calls.filter((t) => t === 0)).toHaveLength(4);
    expect(Math.max(...s.calls)).toBeGreaterThanOrEqual(10_000);
    expect(s.calls.filter((t) => t <= 5_000).length).toBeLessThanOrEqual(4 + 2 * 5 + 1);
  });
});
