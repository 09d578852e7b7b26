/**
 * A thin JSON client for the Kubernetes REST API: one keep-alive connection pool, TLS and
 * credentials from a kubeconfig (./kubeconfig.ts), typed errors. Everything Portico says
 * to the API server goes through here, so retries, timeouts and errors are handled one way.
 */
import type { ClientRequest, IncomingMessage } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { StringDecoder } from 'node:string_decoder';
import { createSecureContext } from 'node:tls';
import { WriteEchoes } from './echoes.js';
import type { ClusterTls, KubeConfig } from './kubeconfig.js';
import { http } from './node-http.js';

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
  /**
   * The uid of the object a write changes, to parse its answer and this client's watch event
   * of the same version once (see echoes.ts). The caller must not modify the answer: the
   * informer caches that very object, and may already have dropped its managedFields.
   */
  shareWithWatch?: string;
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
  send: typeof httpsRequest;
  /** Host and port as http.request wants them (an IPv6 literal without brackets). */
  hostname: string;
  port: string;
  /** The server URL's path, for API servers behind a path-routing proxy. */
  pathPrefix: string;
  tls: ClusterTls;
  headers: Readonly<Record<string, string>>;
  agent: Agent | undefined;
  expires: number;
}

/** Credentials are re-read this often, so rotated service-account tokens are picked up. */
const CREDENTIAL_REFRESH_MS = 60_000;
const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Built on node:http(s) used directly — request options rather than a URL, no AbortSignal
 * handed to http.request, 'data' events rather than async iteration, watch lines split by
 * hand rather than through readline: that halves the client's CPU per request, which is
 * most of what a cold start with 1000 Services costs (bench/README.md, footprint).
 */
export class RestClient implements KubeClient {
  private connection: Connection | undefined;
  private closed = false;
  private readonly echoes = new WriteEchoes();

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly userAgent = 'portico',
    private readonly maxSockets = 64,
  ) {}

  /**
   * Closes the pool's keep-alive sockets (they would stay open until the server's idle
   * timeout) and ends the client: a late call from a stopped component (a debounced status
   * write, a retry) fails at once instead of opening a new pool nobody closes.
   */
  close(): void {
    this.closed = true;
    this.connection?.agent?.destroy();
    this.connection = undefined;
  }

  private assertOpen(): void {
    if (this.closed) throw new KubeApiError(0, 'ClientClosed', 'the REST client was closed (the controller is stopping)');
  }

  private async connect(): Promise<Connection> {
    this.assertOpen();
    if (this.connection && this.connection.expires > Date.now()) return this.connection;
    const { server, tls, headers } = await this.kubeConfig.access();
    // Closed while credentials were being read (an exec plugin can take seconds).
    this.assertOpen();
    const base = new URL(server);
    const previous = this.connection;
    // Credentials are re-read for rotated tokens (a header); the pool is rebuilt only when the
    // TLS material changes, so long-running watches keep their sockets.
    const sameTls = previous !== undefined && sameTlsMaterial(previous.tls, tls) && previous.base.href === base.href;
    const https = base.protocol === 'https:';
    const agent = sameTls ? previous.agent : https ? tlsAgent(tls, this.maxSockets, this.kubeConfig.source) : undefined;
    this.connection = {
      base,
      send: https ? httpsRequest : http.request,
      hostname: base.hostname.startsWith('[') ? base.hostname.slice(1, -1) : base.hostname,
      port: base.port,
      pathPrefix: base.pathname.replace(/\/$/, ''),
      tls,
      headers: { ...headers, 'user-agent': this.userAgent },
      agent,
      expires: Date.now() + CREDENTIAL_REFRESH_MS,
    };
    // A replaced pool is not destroyed: its in-flight requests and watches finish on their own.
    return this.connection;
  }

  /** Starts a request; `onResponse` gets the answer, errors before it go to `onError`. */
  private send(connection: Connection, method: string, path: string, params: RequestParams, onResponse: (response: IncomingMessage) => void, onError: (error: Error) => void): ClientRequest {
    const headers: Record<string, string> = { ...connection.headers, accept: 'application/json' };
    let payload: string | undefined;
    if (params.body !== undefined) {
      payload = JSON.stringify(params.body);
      headers['content-type'] = params.patchType ? PATCH_CONTENT_TYPES[params.patchType] : 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const req = connection.send({ hostname: connection.hostname, port: connection.port, path: connection.pathPrefix + path + queryString(params.query), method, headers, agent: connection.agent }, onResponse);
    req.on('error', onError);
    req.end(payload);
    return req;
  }

  async request<T>(method: string, path: string, params: RequestParams = {}): Promise<T> {
    const { signal } = params;
    if (signal?.aborted) throw signal.reason as Error;
    const connection = await this.connect();
    if (signal?.aborted) throw signal.reason as Error;
    // Closed while this call awaited its connection: the pool is destroyed, and sending on it
    // would open a socket nobody closes.
    this.assertOpen();
    // One deadline for the whole call — waiting for a pooled socket, connecting, sending and
    // reading the body — not only for an idle socket: a connect that hangs must time out too.
    const timeoutMs = params.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise<T>((resolve, reject) => {
      let req: ClientRequest | undefined;
      let settled = false;
      const shared = params.shareWithWatch;
      if (shared !== undefined) this.echoes.writeStarted(shared);
      const settle = (error: Error | undefined, value?: T): void => {
        if (settled) return;
        settled = true;
        if (shared !== undefined) this.echoes.writeEnded(shared);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (error === undefined) resolve(value as T);
        else {
          req?.destroy();
          reject(error);
        }
      };
      const failed = (error: Error): void => settle(new KubeApiError(0, 'ConnectionFailed', `${method} ${path}: ${error.message}`));
      const onAbort = (): void => settle(signal?.reason as Error);
      // The error is made only when the deadline fires: an Error's stack costs more than the rest of a request's setup.
      const timer = timeoutMs > 0 ? setTimeout(() => settle(new KubeApiError(0, 'Timeout', `${method} ${path}: no answer in ${String(timeoutMs)} ms`)), timeoutMs) : undefined;
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        req = this.send(connection, method, path, params, (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', failed);
          response.on('close', () => {
            if (!response.complete) failed(new Error('the connection closed before the whole answer arrived'));
          });
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = response.statusCode ?? 0;
            if (status < 200 || status >= 300) {
              settle(errorFromResponse(method, path, status, text, response.headers['retry-after']));
              return;
            }
            // A shared write whose event came first is answered with that event's object.
            const seen = shared !== undefined && text ? (this.echoes.answered(text) as T | undefined) : undefined;
            if (seen !== undefined) {
              settle(undefined, seen);
              return;
            }
            let answer: T;
            try {
              answer = (text ? JSON.parse(text) : undefined) as T;
            } catch (error) {
              settle(new KubeApiError(0, 'InvalidResponse', `${method} ${path}: ${String(status)} with a body that is not JSON: ${(error as Error).message}`));
              return;
            }
            if (shared !== undefined) this.echoes.remember(answer);
            settle(undefined, answer);
          });
        }, failed);
      } catch (error) {
        // http.request throws synchronously on a malformed path or header.
        failed(error as Error);
      }
    });
  }

  async watch<T>(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (event: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const connection = await this.connect();
    if (signal.aborted) return;
    this.assertOpen();
    return new Promise<void>((resolve, reject) => {
      let req: ClientRequest | undefined;
      const state = { settled: false };
      // An abort ends a watch quietly; so does the server closing it (its timeout).
      const settle = (error?: KubeApiError): void => {
        if (state.settled) return;
        state.settled = true;
        signal.removeEventListener('abort', onAbort);
        req?.destroy();
        if (error === undefined || signal.aborted) resolve();
        else reject(error);
      };
      const onAbort = (): void => settle();
      const broken = (message: string): void => settle(new KubeApiError(0, 'WatchBroken', `watch ${path}: ${message}`));
      signal.addEventListener('abort', onAbort, { once: true });
      const onResponse = (response: IncomingMessage): void => {
        const status = response.statusCode ?? 0;
        if (status !== 200) {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('error', (error) => broken(error.message));
          response.on('end', () => settle(errorFromResponse('GET', path, status, Buffer.concat(chunks).toString('utf8'), response.headers['retry-after'])));
          return;
        }
        const lines = new LineSplitter((line) => {
          if (state.settled) return;
          try {
            const echo = this.echoes.take(line) as WatchEvent<T> | undefined;
            if (echo !== undefined) {
              onEvent(echo);
              return;
            }
            const event = JSON.parse(line) as WatchEvent<T>;
            this.echoes.parsed(event);
            onEvent(event);
          } catch (error) {
            broken((error as Error).message);
          }
        });
        response.on('data', (chunk: Buffer) => lines.push(chunk));
        response.on('error', (error) => broken(error.message));
        response.on('close', () => {
          if (!response.complete) broken('the connection closed mid-stream');
        });
        response.on('end', () => {
          lines.end();
          settle();
        });
      };
      try {
        req = this.send(connection, 'GET', path, { query: { ...query, watch: true } }, onResponse, (error) => settle(new KubeApiError(0, 'ConnectionFailed', `watch ${path}: ${error.message}`)));
      } catch (error) {
        settle(new KubeApiError(0, 'ConnectionFailed', `watch ${path}: ${(error as Error).message}`));
      }
    });
  }
}

/**
 * The TLS material goes in as one prebuilt secure context rather than as ca/cert/key options:
 * https.Agent names its socket pool by concatenating those options, several times per request,
 * so kilobytes of PEM were copied and hashed for every call (about 30 µs a request, 15% of the
 * client's CPU). The context also spares each new socket from parsing the certificates again.
 */
function tlsAgent(tls: ClusterTls, maxSockets: number, source: string): Agent {
  const { ca, cert, key, ...rest } = tls;
  let secureContext;
  try {
    secureContext = createSecureContext({ ca, cert, key });
  } catch (error) {
    // As when the same material failed at connect: retried, since the files are read again.
    throw new KubeApiError(0, 'ConnectionFailed', `TLS material from ${source}: ${(error as Error).message}`);
  }
  return new Agent({ keepAlive: true, maxSockets, ...rest, secureContext });
}

function queryString(query: RequestParams['query']): string {
  if (query === undefined) return '';
  const params = new URLSearchParams();
  for (const key in query) {
    const value = query[key];
    if (value !== undefined) params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** Splits a byte stream into newline-terminated lines (UTF-8 safe across chunk boundaries). */
class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer): void {
    const text = this.decoder.write(chunk);
    const newline = text.indexOf('\n');
    // Most of a large object arrives in chunks without a newline: no rescanning of what is pending.
    if (newline === -1) {
      this.pending += text;
      return;
    }
    let start = 0;
    let end = newline;
    let line = this.pending + text.slice(0, end);
    this.pending = '';
    for (;;) {
      if (line.trim() !== '') this.onLine(line);
      start = end + 1;
      end = text.indexOf('\n', start);
      if (end === -1) break;
      line = text.slice(start, end);
    }
    this.pending = text.slice(start);
  }

  /** The last line may come without a newline. */
  end(): void {
    const rest = this.pending + this.decoder.end();
    this.pending = '';
    if (rest.trim() !== '') this.onLine(rest);
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
