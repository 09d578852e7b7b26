/**
 * The one place that talks to the SLB RPC API: `@alicloud/openapi-core`'s `callApi` in RPC style,
 * the way generated SDKs call it (ACS3-HMAC-SHA256 signing, `Throttling*` -> ThrottlingError with
 * `retryAfter`), wrapped in our retry policy, abort handling and per-action call counting.
 */
import * as credentials from '@alicloud/credentials';
import * as openapi from '@alicloud/openapi-core';
import { Counter, type Registry } from '../../kube/prom.js';
import type { Clock } from '../../kube/clock.js';
import { metric } from '../../kube/metrics.js';
import { classify, SlbApiError, toSlbApiError } from './errors.js';

export const SLB_API_VERSION = '2014-05-15';

export type Params = Readonly<Record<string, string>>;
export type Body = Record<string, unknown>;

/** One RPC call. Rejects with SlbApiError. */
export interface SlbCaller {
  call(action: string, params: Params, signal: AbortSignal): Promise<Body>;
}

// The packages are CommonJS with `exports.default`; under ESM the class sits one level down.
type OpenApiClient = { callApi(params: unknown, request: unknown, runtime: unknown): Promise<{ body?: unknown }> };
type OpenApiClientCtor = new (config: unknown) => OpenApiClient;
type CredentialCtor = new (config?: unknown) => unknown;
function unwrapDefault(module: unknown): unknown {
  const m = module as { default?: { default?: unknown } | undefined };
  return m.default?.default ?? m.default ?? module;
}
const OpenApi = unwrapDefault(openapi) as OpenApiClientCtor;
const Credential = unwrapDefault(credentials) as CredentialCtor;
const { $OpenApiUtil } = openapi;

export interface OpenApiCallerOptions {
  regionId: string;
  /** host[:port]; defaults to `slb.<region>.aliyuncs.com`. */
  endpoint?: string;
  protocol?: 'https' | 'http';
  readTimeoutMs?: number;
  connectTimeoutMs?: number;
  /**
   * Explicit AccessKey (tests); otherwise `@alicloud/credentials`' default chain: AccessKey
   * environment variables, RRSA (OIDC token file + role ARN), config files, ECS RAM role.
   */
  accessKey?: { id: string; secret: string };
}

export function defaultEndpoint(regionId: string): string {
  return `slb.${regionId}.aliyuncs.com`;
}

/** The real SDK stack. It has no AbortSignal: an aborted call is abandoned (its answer ignored). */
export class OpenApiCaller implements SlbCaller {
  private readonly client: OpenApiClient;
  private readonly runtime: Record<string, unknown>;

  constructor(options: OpenApiCallerOptions) {
    const credential = options.accessKey
      ? new Credential(new credentials.Config({ type: 'access_key', accessKeyId: options.accessKey.id, accessKeySecret: options.accessKey.secret }))
      : new Credential();
    this.client = new OpenApi(
      new $OpenApiUtil.Config({
        credential,
        regionId: options.regionId,
        endpoint: options.endpoint ?? defaultEndpoint(options.regionId),
        protocol: options.protocol ?? 'https',
        readTimeout: options.readTimeoutMs ?? 10_000,
        connectTimeout: options.connectTimeoutMs ?? 5_000,
        userAgent: 'portico',
      }),
    );
    // Retries are ours (classified, jittered, abortable), never the SDK's.
    this.runtime = { autoretry: false, readTimeout: options.readTimeoutMs ?? 10_000, connectTimeout: options.connectTimeoutMs ?? 5_000 };
  }

  async call(action: string, params: Params, signal: AbortSignal): Promise<Body> {
    signal.throwIfAborted();
    const request = new $OpenApiUtil.OpenApiRequest({ query: { ...params } });
    const apiParams = new $OpenApiUtil.Params({
      action,
      version: SLB_API_VERSION,
      protocol: 'HTTPS',
      pathname: '/',
      method: 'POST',
      authType: 'AK',
      style: 'RPC',
      reqBodyType: 'formData',
      bodyType: 'json',
    });
    const pending = this.client.callApi(apiParams, request, this.runtime);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const response = await Promise.race([pending, aborted]);
      const body = response.body;
      return typeof body === 'object' && body !== null ? (body as Body) : {};
    } catch (error) {
      if (signal.aborted) throw signal.reason as Error;
      throw toSlbApiError(error);
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
      // An abandoned call may still fail later; nobody is waiting for it.
      pending.catch(() => undefined);
    }
  }
}

export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 500, maxDelayMs: 15_000 };

export interface RetryingCallerDeps {
  inner: SlbCaller;
  clock: Clock;
  registry: Registry;
  retry?: RetryPolicy;
  /** [0, 1); injected for tests. */
  random?: () => number;
}

export const CALLS_METRIC = 'portico_aliyun_slb_api_calls_total';

/**
 * Retries throttling, busy states and 5xx with full-jitter exponential backoff (at least the
 * server's `retryAfter`), counts every attempt per action and outcome, and never starts a call
 * after the signal fired.
 */
export class RetryingCaller implements SlbCaller {
  private readonly calls: Counter<'action' | 'outcome'>;
  private readonly retry: RetryPolicy;
  private readonly random: () => number;

  constructor(private readonly deps: RetryingCallerDeps) {
    this.retry = deps.retry ?? DEFAULT_RETRY;
    this.random = deps.random ?? Math.random;
    this.calls = metric(
      deps.registry,
      CALLS_METRIC,
      Counter,
      () =>
        new Counter({
          name: CALLS_METRIC,
          help: 'Calls to the Alibaba Cloud SLB API, per action and outcome (ok, throttled, retryable, token-conflict, not-found, terminal).',
          labelNames: ['action', 'outcome'],
          registers: [deps.registry],
        }),
    );
  }

  async call(action: string, params: Params, signal: AbortSignal): Promise<Body> {
    for (let attempt = 1; ; attempt++) {
      signal.throwIfAborted();
      try {
        const body = await this.deps.inner.call(action, params, signal);
        this.calls.inc({ action, outcome: 'ok' });
        return body;
      } catch (raw) {
        if (signal.aborted) throw signal.reason as Error;
        const error = toSlbApiError(raw);
        const kind = classify(error);
        this.calls.inc({ action, outcome: kind });
        const transient = kind === 'throttled' || kind === 'retryable';
        if (!transient || attempt >= this.retry.maxAttempts) throw error;
        const ceiling = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
        const delay = Math.max(error.retryAfterMs ?? 0, Math.floor(this.random() * ceiling));
        await this.deps.clock.sleep(delay, signal);
      }
    }
  }
}

export { SlbApiError };
