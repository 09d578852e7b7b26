/**
 * Counts every request a RestClient in this process makes, by user agent (the controller's
 * client says `portico-controller`), method and resource, with the status and the time spent.
 *
 * It wraps RestClient.prototype at runtime (benchmark process only; src/ is untouched), so it
 * also sees the client the controller builds inside startController. The cost is a Map update
 * per request, negligible next to a round trip.
 */
import { performance } from 'node:perf_hooks';
import { KubeApiError, RestClient, type RequestParams, type WatchEvent } from '../../src/kube/rest.js';

export interface RequestCount {
  count: number;
  /** Non-2xx answers by status code (0 = no answer). */
  errors: Record<string, number>;
  /** Sum of client-side latency in milliseconds. */
  totalMs: number;
  /** When the first and the last of them was sent, in ms since the window began. */
  firstMs: number;
  lastMs: number;
}

/** `userAgent -> "VERB resource" -> count`. */
export type RequestCounts = Record<string, Record<string, RequestCount>>;

/** `/api/v1/namespaces/x/services/y/status` -> `services/status`; a collection gets `(list)` or the verb says it. */
export function resourceOf(path: string): string {
  const parts = path.split('?')[0]?.split('/').filter(Boolean) ?? [];
  // api/v1/... or apis/group/version/...
  let rest = parts[0] === 'api' ? parts.slice(2) : parts[0] === 'apis' ? parts.slice(3) : parts;
  if (rest[0] === 'namespaces' && rest.length > 2) rest = rest.slice(2);
  const [resource = '?', name, sub] = rest;
  if (name === undefined) return `${resource} (collection)`;
  return sub ? `${resource}/${sub}` : resource;
}

let current: RequestCounts = {};
let windowStart = performance.now();
let installed = false;

function entryFor(userAgent: string, key: string, started: number): RequestCount {
  const byAgent = (current[userAgent] ??= {});
  const entry = (byAgent[key] ??= { count: 0, errors: {}, totalMs: 0, firstMs: started - windowStart, lastMs: 0 });
  entry.lastMs = started - windowStart;
  return entry;
}

function record(userAgent: string, key: string, error: unknown, started: number): void {
  const entry = entryFor(userAgent, key, started);
  entry.count++;
  entry.totalMs += performance.now() - started;
  if (error !== undefined) {
    const code = error instanceof KubeApiError ? String(error.status) : 'other';
    entry.errors[code] = (entry.errors[code] ?? 0) + 1;
  }
}

/** The product part of the user agent: `portico-controller/0.1.0 (identity)` counts as `portico-controller`. */
function agentOf(client: RestClient): string {
  const agent = (client as unknown as { userAgent?: string }).userAgent ?? 'unknown';
  return agent.split('/')[0] ?? agent;
}

/** Installs the wrapper once; idempotent. */
export function installRequestCounter(): void {
  if (installed) return;
  installed = true;
  const proto = RestClient.prototype;
  // Taken as plain functions and always called with the instance as `this`.
  const originalRequest = Object.getOwnPropertyDescriptor(proto, 'request')?.value as RestClient['request'];
  const originalWatch = Object.getOwnPropertyDescriptor(proto, 'watch')?.value as RestClient['watch'];
  proto.request = async function request<T>(this: RestClient, method: string, path: string, params?: RequestParams): Promise<T> {
    const started = performance.now();
    const key = `${method} ${resourceOf(path)}`;
    try {
      const result = await originalRequest.call(this, method, path, params);
      record(agentOf(this), key, undefined, started);
      return result as T;
    } catch (error) {
      record(agentOf(this), key, error ?? 'error', started);
      throw error;
    }
  };
  proto.watch = function watch<T>(
    this: RestClient,
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onEvent: (event: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    // Counted at open; the time is the watch's lifetime, so not summed.
    entryFor(agentOf(this), `WATCH ${resourceOf(path)}`, performance.now()).count++;
    return originalWatch.call(this, path, query, onEvent as (event: WatchEvent<unknown>) => void, signal);
  };
}

/** Returns the counts since the last take and starts a new window. */
export function takeRequestCounts(): RequestCounts {
  const taken = current;
  current = {};
  windowStart = performance.now();
  for (const byAgent of Object.values(taken)) {
    for (const entry of Object.values(byAgent)) {
      entry.totalMs = Math.round(entry.totalMs);
      entry.firstMs = Math.round(entry.firstMs);
      entry.lastMs = Math.round(entry.lastMs);
    }
  }
  return taken;
}

/** Total requests of one user agent, optionally only those whose key matches. */
export function totalRequests(counts: Record<string, RequestCount> | undefined, match: (key: string) => boolean = () => true): number {
  return Object.entries(counts ?? {}).reduce((sum, [key, entry]) => (match(key) ? sum + entry.count : sum), 0);
}
