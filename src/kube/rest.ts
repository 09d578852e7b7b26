/**
 * A thin JSON client for the Kubernetes REST API: one keep-alive connection pool, TLS and
 * credentials from a kubeconfig (./kubeconfig.ts), typed errors. Everything Portico says
 * to the API server goes through here, so retries, timeouts and errors are handled one way.
 */
import { Agent, request as httpsRequest } from 'node:https';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import type { ClusterTls, KubeConfig } from './kubeconfig.js';

export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
};

/** An API server answer other than 2xx, with the fields a caller decides on. */
export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  readonly retryAfterMs: number | undefined;

  constructor(status: number, reason: string, message: string, retryAfterMs?: number) {
    super(message);
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
  }

  get isNotFound(): boolean {
    return this.status === 404;
  }
  get isConflict(): boolean {
    return this.status === 409;
  }
  get isGone(): boolean {
    return this.status === 410;
  }
  /** Server-side trouble or throttling: worth retrying with backoff. */
  get retryable(): boolean {
    return this.status === 429 || this.status >= 500 || this.status === 0;
  }
}

export function isKubeError(error: unknown, status?: number): error is KubeApiError {
  return error instanceof KubeApiError && (status === undefined || error.status === status);
}

export interface RequestParams {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  patchType?: PatchType;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** The interface the rest of Portico depends on (narrow, so tests can hand in a fake). */
export interface KubeClient {
  request<T>(method: string, path: string, params?: RequestParams): Promise<T>;
  /** Streams watch events until the server closes, the signal aborts, or an error; resolves on close. */
  watch<T>(path: string, query: Record<string, string | number | boolean | undefined>, onEvent: (event: WatchEvent<T>) => void, signal: AbortSignal): Promise<void>;
}

interface Connection {
  base: URL;
  tls: ClusterTls;
  headers: Readonly<Record<string, string>>;
  agent: Agent | undefined;
  expires: number;
}

/** Credentials are re-read this often, so rotated service-account tokens are picked up. */
const CREDENTIAL_REFRESH_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 30_000;

export class RestClient implements KubeClient {
  private connection: Connection | undefined;

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly userAgent = 'portico',
    private readonly maxSockets = 64,
  ) {}

  /**
   * Closes the pool's keep-alive sockets (they would stay open until the server's idle
   * timeout); a request after this opens new ones. For processes that build clients again.
   */
  close(): void {
    this.connection?.agent?.destroy();
    this.connection = undefined;
  }

  private async connect(): Promise<Connection> {
    if (this.connection && this.connection.expires > Date.now()) return this.connection;
    const { server, tls, headers } = await this.kubeConfig.access();
    const base = new URL(server);
    const previous = this.connection;
    // Credentials are re-read for rotated tokens (a header); the pool is rebuilt only when the
    // TLS material changes, so long-running watches keep their sockets.
    const sameTls = previous !== undefined && sameTlsMaterial(previous.tls, tls) && previous.base.href === base.href;
    const agent = sameTls
      ? previous.agent
      : base.protocol === 'https:'
        ? new Agent({ keepAlive: true, maxSockets: this.maxSockets, ...tls })
        : undefined;
    this.connection = { base, tls, headers, agent, expires: Date.now() + CREDENTIAL_REFRESH_MS };
    // A replaced pool is not destroyed: its in-flight requests and watches finish on their own.
    return this.connection;
  }

  private async open(method: string, path: string, params: RequestParams, accept: string): Promise<IncomingMessage> {
    const connection = await this.connect();
    const url = new URL(connection.base.pathname.replace(/\/$/, '') + path, connection.base);
    for (const [key, value] of Object.entries(params.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = {
      ...connection.headers,
      accept,
      'user-agent': this.userAgent,
    };
    let payload: string | undefined;
    if (params.body !== undefined) {
      payload = JSON.stringify(params.body);
      headers['content-type'] = params.patchType ? PATCH_CONTENT_TYPES[params.patchType] : 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = send(url, { method, headers, agent: connection.agent, signal: params.signal }, resolve);
      req.on('error', reject);
      req.end(payload);
    });
  }

  async request<T>(method: string, path: string, params: RequestParams = {}): Promise<T> {
    // One deadline for the whole call — waiting for a pooled socket, connecting, sending and
    // reading the body — not only for an idle socket: a connect that hangs must time out too.
    const timeoutMs = params.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const call = new AbortController();
    // Made only when it fires: an Error's stack costs more than the rest of a request's setup.
    let timedOut: KubeApiError | undefined;
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            timedOut = new KubeApiError(0, 'Timeout', `${method} ${path}: no answer in ${String(timeoutMs)} ms`);
            call.abort(timedOut);
          }, timeoutMs)
        : undefined;
    const cancel = (): void => call.abort(params.signal?.reason);
    if (params.signal?.aborted) cancel();
    else params.signal?.addEventListener('abort', cancel, { once: true });
    try {
      let response: IncomingMessage;
      try {
        response = await this.open(method, path, { ...params, signal: call.signal }, 'application/json');
      } catch (error) {
        if (timedOut !== undefined && call.signal.reason === timedOut) throw timedOut;
        if (error instanceof KubeApiError || params.signal?.aborted) throw error;
        throw new KubeApiError(0, 'ConnectionFailed', `${method} ${path}: ${(error as Error).message}`);
      }
      const chunks: Buffer[] = [];
      try {
        for await (const chunk of response) chunks.push(chunk as Buffer);
      } catch (error) {
        if (timedOut !== undefined && call.signal.reason === timedOut) throw timedOut;
        throw error;
      }
      const text = Buffer.concat(chunks).toString('utf8');
      const status = response.statusCode ?? 0;
      if (status >= 200 && status < 300) return (text ? JSON.parse(text) : undefined) as T;
      throw errorFromResponse(method, path, status, text, response.headers['retry-after']);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      params.signal?.removeEventListener('abort', cancel);
    }
  }

  async watch<T>(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (event: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    let response: IncomingMessage;
    try {
      response = await this.open('GET', path, { query: { ...query, watch: true }, signal }, 'application/json');
    } catch (error) {
      if (signal.aborted) return;
      throw new KubeApiError(0, 'ConnectionFailed', `watch ${path}: ${(error as Error).message}`);
    }
    const status = response.statusCode ?? 0;
    if (status !== 200) {
      const chunks: Buffer[] = [];
      for await (const chunk of response) chunks.push(chunk as Buffer);
      throw errorFromResponse('GET', path, status, Buffer.concat(chunks).toString('utf8'), response.headers['retry-after']);
    }
    const lines = createInterface({ input: response, crlfDelay: Infinity });
    // readline does not always end its iterator when the response is destroyed: close it.
    const stop = (): void => {
      lines.close();
      response.destroy();
    };
    signal.addEventListener('abort', stop, { once: true });
    response.once('error', () => lines.close());
    try {
      for await (const line of lines) {
        if (!line.trim()) continue;
        onEvent(JSON.parse(line) as WatchEvent<T>);
      }
    } catch (error) {
      if (signal.aborted) return;
      throw new KubeApiError(0, 'WatchBroken', `watch ${path}: ${(error as Error).message}`);
    } finally {
      signal.removeEventListener('abort', stop);
    }
  }
}

function sameTlsMaterial(a: ClusterTls, b: ClusterTls): boolean {
  const same = (x: unknown, y: unknown): boolean => (Buffer.isBuffer(x) && Buffer.isBuffer(y) ? x.equals(y) : x === y);
  return same(a.ca, b.ca) && same(a.cert, b.cert) && same(a.key, b.key) && a.rejectUnauthorized === b.rejectUnauthorized && a.servername === b.servername;
}

function errorFromResponse(method: string, path: string, status: number, text: string, retryAfter: string | undefined): KubeApiError {
  let reason = 'Unknown';
  let message = text.slice(0, 500);
  try {
    const body = JSON.parse(text) as { reason?: string; message?: string };
    reason = body.reason ?? reason;
    message = body.message ?? message;
  } catch {
    // not a Status object; keep the raw text
  }
  const seconds = retryAfter === undefined ? NaN : Number(retryAfter);
  return new KubeApiError(status, reason, `${method} ${path}: ${String(status)} ${reason}: ${message}`, Number.isFinite(seconds) ? seconds * 1000 : undefined);
}
