/**
 * A list+watch cache of one resource, like client-go's reflector + informer:
 * - any watch error restarts the watch with exponential backoff (client-node's own informer
 *   stops for good on non-410 errors);
 * - 410 Gone (expired resourceVersion) relists and emits the difference;
 * - a watchdog aborts a watch that went silent (no event and no bookmark) and re-watches.
 */
import type { Logger } from 'pino';
import { systemClock, type Clock } from './clock.js';
import { KubeApiError, type KubeClient, type WatchEvent } from './rest.js';

export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string };
}

export interface InformerHandlers<T> {
  onAdd?(object: T): void;
  onUpdate?(previous: T, object: T): void;
  onDelete?(object: T): void;
}

/** What consumers of an informer use: a read-only cache with change handlers. */
export interface Cache<T> {
  get(key: string): T | undefined;
  list(): T[];
  on(handlers: InformerHandlers<T>): void;
  /** Resolves true once the first list is in, false if `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<boolean>;
}

export interface InformerOptions<T extends KubeObject = KubeObject> {
  /** Collection path, e.g. `/api/v1/services` or `/apis/portico.dev/v1alpha1/addresspools`. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  pageSize?: number;
  /** A watch with no event or bookmark for this long is considered stalled and restarted. */
  stallTimeoutMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  clock?: Clock;
  logger?: Logger;
  /** Told when a watch opens (true) and closes (false), for the open-watch gauge. */
  onWatch?: (open: boolean) => void;
  /**
   * Applied to every object before it is cached (client-go's TransformFunc): drop what no
   * consumer reads. The object is freshly parsed and owned by the informer.
   */
  transform?: (object: T) => T;
}

export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/**
 * What no consumer here reads of any object: managedFields and kubectl's last-applied copy of
 * the whole object are often most of a Service. Mutates and returns `object`, which must be
 * freshly parsed (the informer's, or a write's response).
 */
export function dropUnreadMetadata<T extends KubeObject>(object: T): T {
  const metadata = object.metadata as { managedFields?: unknown; annotations?: Record<string, string> } | undefined;
  if (metadata?.managedFields !== undefined) delete metadata.managedFields;
  if (metadata?.annotations?.[LAST_APPLIED_ANNOTATION] !== undefined) Reflect.deleteProperty(metadata.annotations, LAST_APPLIED_ANNOTATION);
  return object;
}

/** Node status nobody here reads (addresses and conditions are read); `images` alone is often most of a Node. */
const UNREAD_NODE_STATUS = ['images', 'nodeInfo', 'capacity', 'allocatable', 'volumesInUse', 'volumesAttached', 'daemonEndpoints', 'config', 'features', 'runtimeHandlers'] as const;

function dropUnreadNodeStatus<T extends KubeObject>(node: T): T {
  const status = (node as { status?: Record<string, unknown> }).status;
  if (status) for (const field of UNREAD_NODE_STATUS) Reflect.deleteProperty(status, field);
  return dropUnreadMetadata(node);
}

/** The cache transform an informer of `path` applies when given none (client-go's TransformFunc). */
export function defaultTransform<T extends KubeObject>(path: string): (object: T) => T {
  return path === '/api/v1/nodes' ? dropUnreadNodeStatus : dropUnreadMetadata;
}

/** Watches are recycled by the server within 5-10 minutes (jittered, as client-go does). */
const MIN_WATCH_TIMEOUT_S = 300;
const DEFAULT_STALL_TIMEOUT_MS = 150_000; // the apiserver sends bookmarks about once a minute
const DEFAULT_BACKOFF_BASE_MS = 500;
const DEFAULT_BACKOFF_MAX_MS = 30_000;
/** A watch that lived this long (or delivered events) was healthy: the next failure starts backoff afresh. */
const HEALTHY_WATCH_MS = 30_000;

class GoneError extends Error {}

function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

export function objectKey(object: KubeObject): string {
  const { namespace, name } = object.metadata ?? {};
  return namespace ? `${namespace}/${name ?? ''}` : (name ?? '');
}

interface ListResponse<T> {
  items?: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

export class Informer<T extends KubeObject> implements Cache<T> {
  private readonly store = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private synced = false;
  private readonly syncWaiters: (() => void)[] = [];
  private resourceVersion = '';
  private readonly clock: Clock;
  private readonly transform: (object: T) => T;
  /** Counts relists and watch restarts, for tests and metrics. */
  readonly stats = { lists: 0, watches: 0, errors: 0, stalls: 0, events: 0 };

  constructor(
    private readonly client: KubeClient,
    private readonly options: InformerOptions<T>,
  ) {
    this.clock = options.clock ?? systemClock;
    this.transform = options.transform ?? defaultTransform(options.path);
  }

  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves true once the first list is in the store, or false if `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = (): void => resolve(false);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.syncWaiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      });
    });
  }

  /**
   * Runs until the signal aborts. A second run after an abort resumes watching from the last
   * resourceVersion it saw (relisting only if the server answers 410 Gone).
   */
  async run(signal: AbortSignal): Promise<void> {
    let needList = !this.synced;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.relist(signal);
          needList = false;
        }
        const started = this.clock.now();
        const eventsBefore = this.stats.events;
        try {
          await this.watchOnce(signal);
        } finally {
          if (this.clock.now() - started >= HEALTHY_WATCH_MS || this.stats.events > eventsBefore) failures = 0;
        }
        failures = 0;
      } catch (error) {
        // Re-read: the await above may have seen an abort that narrowing cannot know of.
        if (isAborted(signal)) break;
        this.stats.errors++;
        if (error instanceof GoneError) {
          this.options.logger?.info({ path: this.options.path }, 'resourceVersion expired; relisting');
          needList = true;
          continue;
        }
        failures++;
        const base = this.options.backoffBaseMs ?? DEFAULT_BACKOFF_BASE_MS;
        const max = this.options.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS;
        const delay = Math.min(max, base * 2 ** Math.min(failures - 1, 20));
        this.options.logger?.warn({ path: this.options.path, err: error, retryInMs: delay }, 'list/watch failed; retrying');
        try {
          await this.clock.sleep(delay, signal);
        } catch {
          break;
        }
      }
    }
  }

  private async relist(signal: AbortSignal): Promise<void> {
    this.stats.lists++;
    const items: T[] = [];
    let continueToken: string | undefined;
    let resourceVersion = '';
    do {
      let page: ListResponse<T>;
      try {
        page = await this.client.request<ListResponse<T>>('GET', this.options.path, {
          query: {
            limit: this.options.pageSize ?? 500,
            continue: continueToken,
            labelSelector: this.options.labelSelector,
            fieldSelector: this.options.fieldSelector,
          },
          signal,
        });
      } catch (error) {
        // An expired continue token: start the list again from the top.
        if (error instanceof KubeApiError && error.isGone && continueToken) {
          continueToken = undefined;
          items.length = 0;
          continue;
        }
        throw error;
      }
      for (const item of page.items ?? []) items.push(this.transform(item));
      continueToken = page.metadata?.continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    } while (continueToken);
    this.replace(items);
    this.resourceVersion = resourceVersion;
    if (!this.synced) {
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
  }

  /** Makes the store equal to `items`, emitting the adds, updates and deletes in between. */
  private replace(items: T[]): void {
    const seen = new Set<string>();
    for (const item of items) {
      const key = objectKey(item);
      seen.add(key);
      this.upsert(key, item);
    }
    for (const [key, old] of [...this.store]) {
      if (!seen.has(key)) {
        this.store.delete(key);
        this.emit((h) => h.onDelete?.(old));
      }
    }
  }

  private upsert(key: string, item: T): void {
    const old = this.store.get(key);
    this.store.set(key, item);
    if (!old) this.emit((h) => h.onAdd?.(item));
    else if (old.metadata?.resourceVersion !== item.metadata?.resourceVersion) this.emit((h) => h.onUpdate?.(old, item));
  }

  private emit(call: (handlers: InformerHandlers<T>) => void): void {
    for (const handlers of this.handlers) {
      try {
        call(handlers);
      } catch (error) {
        this.options.logger?.error({ err: error, path: this.options.path }, 'informer handler threw');
      }
    }
  }

  private async watchOnce(outer: AbortSignal): Promise<void> {
    this.stats.watches++;
    // Aborted by the watchdog, on 410, or by the caller (whose signal may already be aborted).
    const controller = new AbortController();
    const watchSignal = AbortSignal.any([outer, controller.signal]);
    const stallMs = this.options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    // Written from callbacks: kept in an object so the checks below see the updates.
    const state = { gone: false, stalled: false, lastActivity: this.clock.now() };
    // A periodic check, not a timer re-armed per event: events can arrive by the thousand.
    let cancelWatchdog = (): void => undefined;
    const check = (): void => {
      if (this.clock.now() - state.lastActivity >= stallMs) {
        state.stalled = true;
        this.stats.stalls++;
        this.options.logger?.warn({ path: this.options.path, stallMs }, 'watch silent too long; restarting it');
        controller.abort();
        return;
      }
      cancelWatchdog = this.clock.setTimer(check, stallMs / 4);
    };
    cancelWatchdog = this.clock.setTimer(check, stallMs / 4);
    this.options.onWatch?.(true);
    try {
      await this.client.watch<T>(
        this.options.path,
        {
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds: MIN_WATCH_TIMEOUT_S + Math.floor(Math.random() * MIN_WATCH_TIMEOUT_S),
          labelSelector: this.options.labelSelector,
          fieldSelector: this.options.fieldSelector,
        },
        (event: WatchEvent<T>) => {
          state.lastActivity = this.clock.now();
          this.stats.events++;
          if (state.gone) return;
          this.apply(event, () => {
            state.gone = true;
            controller.abort();
          });
        },
        watchSignal,
      );
    } finally {
      cancelWatchdog();
      this.options.onWatch?.(false);
    }
    if (state.gone) throw new GoneError('resourceVersion too old');
    if (state.stalled) throw new Error('watch stalled');
  }

  private apply(event: WatchEvent<T>, onGone: () => void): void {
    const rv = event.object.metadata?.resourceVersion;
    switch (event.type) {
      case 'ADDED':
      case 'MODIFIED':
        this.upsert(objectKey(event.object), this.transform(event.object));
        break;
      case 'DELETED': {
        const key = objectKey(event.object);
        const old = this.store.get(key);
        this.store.delete(key);
        this.emit((h) => h.onDelete?.(old ?? event.object));
        break;
      }
      case 'BOOKMARK':
        break;
      case 'ERROR': {
        const status = event.object as unknown as { code?: number; message?: string };
        if (status.code === 410) {
          onGone();
          return;
        }
        throw new KubeApiError(status.code ?? 0, 'WatchError', status.message ?? 'watch error');
      }
    }
    if (rv) this.resourceVersion = rv;
  }
}
