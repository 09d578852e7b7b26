/**
 * Wraps AwsApi with what every call needs: a client-side token bucket per call family (AWS
 * throttles per account and region, shared with every other tool there), retries with full
 * jitter on throttling, 5xx and dropped connections, a per-operation outcome callback (the
 * Prometheus counter), and no call once the caller's signal fired.
 */
import type { Clock } from '../../kube/clock.js';
import { callFamily, type AwsApi, type CallFamily, type Operation } from './api.js';

export interface BucketLimit {
  ratePerSecond: number;
  burst: number;
}

/** Below the ELBv2 and EC2 documented defaults, which the account shares with other tools. */
export const DEFAULT_LIMITS: Readonly<Record<CallFamily, BucketLimit>> = {
  'elb-describe': { ratePerSecond: 10, burst: 20 },
  'elb-write': { ratePerSecond: 5, burst: 10 },
  'elb-targets': { ratePerSecond: 5, burst: 10 },
  'ec2-describe': { ratePerSecond: 10, burst: 20 },
  'ec2-write': { ratePerSecond: 5, burst: 10 },
};

export type CallOutcome = 'ok' | 'throttled' | 'server-error' | 'network-error' | 'client-error' | 'aborted';

export interface GuardOptions {
  clock: Clock;
  /** [0, 1); injected so tests are deterministic. */
  random?: () => number;
  limits?: Partial<Record<CallFamily, BucketLimit>>;
  /** Attempts per call, including the first. */
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Called once per attempt that reached the API. */
  onCall?: (operation: Operation, outcome: CallOutcome) => void;
}

const THROTTLING_CODES = new Set(['Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequestsException', 'RequestThrottled', 'RequestThrottledException', 'SlowDown', 'PriorRequestNotComplete']);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ECONNABORTED']);

/** The AWS error code of an SDK error (`LoadBalancerNotFound` and `LoadBalancerNotFoundException` both give the former). */
export function errorCode(error: unknown): string {
  if (typeof error !== 'object' || error === null) return '';
  const e = error as { name?: unknown; Code?: unknown; code?: unknown };
  const raw = typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' ? e.name : typeof e.code === 'string' ? e.code : '';
  return raw.endsWith('Exception') && !THROTTLING_CODES.has(raw) ? raw.slice(0, -'Exception'.length) : raw;
}

export function classify(error: unknown): Exclude<CallOutcome, 'ok' | 'aborted'> {
  const code = errorCode(error);
  if (THROTTLING_CODES.has(code)) return 'throttled';
  const meta = (error as { $metadata?: { httpStatusCode?: number }; $fault?: string } | null) ?? {};
  const status = meta.$metadata?.httpStatusCode;
  if (status === 429) return 'throttled';
  if ((status !== undefined && status >= 500) || meta.$fault === 'server') return 'server-error';
  const sysCode = (error as { code?: unknown } | null)?.code;
  if (NETWORK_CODES.has(code) || (typeof sysCode === 'string' && NETWORK_CODES.has(sysCode)) || code === 'TimeoutError') return 'network-error';
  return 'client-error';
}

class TokenBucket {
  private tokens: number;
  private updated: number;

  constructor(
    private readonly limit: BucketLimit,
    private readonly clock: Clock,
  ) {
    this.tokens = limit.burst;
    this.updated = clock.now();
  }

  async take(signal: AbortSignal): Promise<void> {
    for (;;) {
      signal.throwIfAborted();
      const now = this.clock.now();
      this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.updated) / 1000) * this.limit.ratePerSecond);
      this.updated = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await this.clock.sleep(Math.ceil(((1 - this.tokens) / this.limit.ratePerSecond) * 1000), signal);
    }
  }
}

/** Thrown when retries ran out on a retryable failure; errors.ts maps it to a retryable ProviderError. */
export class AwsRetriesExhausted extends Error {
  constructor(
    readonly operation: Operation,
    readonly outcome: CallOutcome,
    readonly attempts: number,
    cause: unknown,
  ) {
    super(`${operation}: ${outcome} after ${attempts} attempts: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'AwsRetriesExhausted';
  }
}

export function guardApi(raw: AwsApi, options: GuardOptions): AwsApi {
  const random = options.random ?? Math.random;
  const maxAttempts = options.maxAttempts ?? 6;
  const baseDelayMs = options.baseDelayMs ?? 250;
  const maxDelayMs = options.maxDelayMs ?? 20_000;
  const buckets = new Map<CallFamily, TokenBucket>();
  const bucket = (family: CallFamily): TokenBucket => {
    let b = buckets.get(family);
    if (b === undefined) {
      b = new TokenBucket(options.limits?.[family] ?? DEFAULT_LIMITS[family], options.clock);
      buckets.set(family, b);
    }
    return b;
  };

  async function call<T>(operation: Operation, signal: AbortSignal, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      await bucket(callFamily(operation)).take(signal);
      signal.throwIfAborted();
      try {
        const result = await attempt();
        options.onCall?.(operation, 'ok');
        return result;
      } catch (error) {
        if (signal.aborted) {
          options.onCall?.(operation, 'aborted');
          throw error;
        }
        const outcome = classify(error);
        options.onCall?.(operation, outcome);
        if (outcome === 'client-error') throw error;
        if (n >= maxAttempts) throw new AwsRetriesExhausted(operation, outcome, n, error);
        // Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").
        await options.clock.sleep(Math.floor(random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (n - 1))), signal);
      }
    }
  }

  const wrapped: Record<string, unknown> = {};
  for (const operation of Object.keys(raw) as Operation[]) {
    const fn = Reflect.get(raw, operation) as (signal: AbortSignal, ...args: unknown[]) => Promise<unknown>;
    wrapped[operation] = (signal: AbortSignal, ...args: unknown[]) => call(operation, signal, () => fn.call(raw, signal, ...args));
  }
  return wrapped as unknown as AwsApi;
}
