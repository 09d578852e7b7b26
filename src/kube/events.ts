/**
 * Kubernetes Events, recorded off the reconcile path (like client-go's broadcaster): `record`
 * never blocks or throws. Like client-go's EventCorrelator, three things keep Events from
 * flooding the API server and `kubectl describe`:
 *
 * - a per-object spam filter (client-go's EventSourceObjectSpamFilter): each involved object
 *   may cause 25 writes at once, then one per 5 minutes; the rest are dropped and counted;
 * - aggregation: repeats of the same (object, type, reason, message) still waiting are folded
 *   into that write, and repeats within 10 minutes of a write bump `count` and `lastTimestamp`
 *   on the existing Event instead of creating a new one;
 * - a global token bucket, high enough that a burst of 1000 Services' Events is written within
 *   seconds, low enough that many objects at once cannot crowd out real work.
 *
 * One writer sends them; nothing runs (no timer) while nothing waits.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, type Registry } from './prom.js';
import { systemClock, type Clock } from './clock.js';
import { NotLeaderError } from './guarded-client.js';
import { isKubeError, type KubeClient } from './rest.js';
import { metric } from './metrics.js';
import { TokenBucket } from './workqueue.js';

export interface ObjectReference {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
  uid?: string;
  resourceVersion?: string;
}

export type EventType = 'Normal' | 'Warning';

export interface EventSink {
  record(object: ObjectReference, type: EventType, reason: string, message: string): void;
}

/** Same window as client-go's EventAggregator. */
export const AGGREGATION_WINDOW_MS = 10 * 60_000;
/** client-go's spam filter defaults (defaultSpamBurst, defaultSpamQPS = 1/300). */
export const DEFAULT_OBJECT_BURST = 25;
export const DEFAULT_OBJECT_REFILL_MS = 5 * 60_000;
/** Objects (spam filter) and Events (aggregation) remembered at once, like client-go's LRU caches. */
export const MAX_TRACKED = 4_096;
const MAX_PENDING = 10_000;

/** Why an Event was not written: the `cause` label of `portico_events_dropped_total`. */
export type DropCause = 'rateLimited' | 'queueFull' | 'writeFailed' | 'stopped';

/**
 * client-go's per-object spam filter: a token bucket per object that does not go into debt (an
 * Event over the limit is dropped, not delayed). The oldest-touched object is forgotten when
 * `maxObjects` are tracked, so memory stays bounded however many objects come and go; a
 * forgotten object starts again with a full bucket, as it would after a quiet spell.
 */
export class ObjectSpamFilter {
  /** Insertion order is recency: a touched object moves to the end. */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly burst = DEFAULT_OBJECT_BURST,
    private readonly refillMs = DEFAULT_OBJECT_REFILL_MS,
    private readonly maxObjects = MAX_TRACKED,
  ) {
    if (!(burst >= 1) || !(refillMs > 0) || !(maxObjects >= 1)) throw new RangeError(`invalid spam filter: burst ${burst}, refillMs ${refillMs}, maxObjects ${maxObjects}`);
  }

  /** Takes a token for `key` at `now` (ms); false when its bucket is empty. */
  allow(key: string, now: number): boolean {
    const bucket = this.buckets.get(key);
    const tokens = bucket ? Math.min(this.burst, bucket.tokens + Math.max(0, now - bucket.at) / this.refillMs) : this.burst;
    this.buckets.delete(key);
    const allowed = tokens >= 1;
    this.buckets.set(key, { tokens: allowed ? tokens - 1 : tokens, at: now });
    if (this.buckets.size > this.maxObjects) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    return allowed;
  }

  /** Objects currently tracked. */
  get size(): number {
    return this.buckets.size;
  }
}

interface Tracked {
  name: string;
  namespace: string;
  count: number;
  firstTimestamp: string;
  lastSeen: number;
}

interface Pending {
  object: ObjectReference;
  type: EventType;
  reason: string;
  message: string;
  at: number;
  /** When it started waiting (`at` moves with repeats). */
  queuedAt: number;
  /** Repeats recorded while this one waited to be written. */
  count: number;
}

/** Which object an Event is about: its uid, or its full reference when it has none. */
function referenceKey(object: ObjectReference): string {
  return object.uid ?? `${object.apiVersion}/${object.kind}/${object.namespace ?? ''}/${object.name}`;
}

function eventKey(event: Omit<Pending, 'count' | 'at' | 'queuedAt'>): string {
  return [referenceKey(event.object), event.type, event.reason, event.message].join('\u0000');
}

export interface EventRecorderOptions {
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
  /** Event writes per second once the burst is spent, over all objects. */
  qps?: number;
  burst?: number;
  /** Event writes per object at once, then one per `objectRefillMs`. */
  objectBurst?: number;
  objectRefillMs?: number;
}

/**
 * Over all objects. A burst of 1000 new Services costs 1000 Events; at this rate they are
 * written within a few seconds of their Services, by one writer, which on a local API server
 * manages several hundred writes a second.
 */
export const DEFAULT_EVENT_QPS = 200;
export const DEFAULT_EVENT_BURST = 500;
/**
 * While reconcile work is queued or running (see `yieldTo`), Events are written at most this
 * often: they would compete with the status writes users wait for. What is left goes at the
 * full rate once the work is done.
 */
export const BUSY_EVENT_QPS = 10;
/**
 * While that work is busy, Normal Events wait for it to finish (Warnings do not): a cold start
 * or a burst writes addresses, then says so. One that has waited this long goes at the busy
 * rate, so work that never stops does not starve them.
 */
export const BUSY_HOLD_MS = 30_000;
/** How often held Events look again whether the work is done (a timer only while it is busy). */
const BUSY_RECHECK_MS = 100;
/** How long shutdown waits for unwritten Events. */
const FLUSH_DEADLINE_MS = 5_000;

export class EventRecorder implements EventSink {
  private readonly tracked = new Map<string, Tracked>();
  /** Waiting to be written, oldest first; a repeat of a waiting Event only bumps its count. */
  private readonly pending = new Map<string, Pending>();
  private draining = false;
  private closed = false;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly dropped: Counter<'cause'> | undefined;
  private readonly bucket: TokenBucket;
  private readonly busyBucket = new TokenBucket(BUSY_EVENT_QPS, 1);
  private busy: () => boolean = () => false;
  private readonly spam: ObjectSpamFilter;

  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    private readonly options: EventRecorderOptions = {},
  ) {
    const registry = options.registry;
    this.dropped = registry
      ? metric(registry, 'portico_events_dropped_total', Counter<'cause'>, () => new Counter({ name: 'portico_events_dropped_total', help: 'Events not written, by cause: rateLimited (per-object spam filter), queueFull, writeFailed, stopped (not leading)', labelNames: ['cause'], registers: [registry] }))
      : undefined;
    this.bucket = new TokenBucket(options.qps ?? DEFAULT_EVENT_QPS, options.burst ?? DEFAULT_EVENT_BURST);
    this.spam = new ObjectSpamFilter(options.objectBurst ?? DEFAULT_OBJECT_BURST, options.objectRefillMs ?? DEFAULT_OBJECT_REFILL_MS);
  }

  private get clock(): Clock {
    return this.options.clock ?? systemClock;
  }

  private drop(cause: DropCause, count = 1): void {
    if (count > 0) this.dropped?.inc({ cause }, count);
  }

  record(object: ObjectReference, type: EventType, reason: string, message: string): void {
    if (this.closed) {
      this.drop('stopped');
      return;
    }
    const event = { object, type, reason, message: message.slice(0, 1024) };
    const key = eventKey(event);
    const now = this.clock.now();
    const waiting = this.pending.get(key);
    if (waiting) {
      // Folded into a write already paid for: no token.
      waiting.count++;
      waiting.at = now;
      return;
    }
    if (this.pending.size >= MAX_PENDING) {
      this.drop('queueFull');
      return;
    }
    if (!this.spam.allow(referenceKey(object), now)) {
      this.drop('rateLimited');
      return;
    }
    this.pending.set(key, { ...event, at: now, queuedAt: now, count: 1 });
    void this.drain();
  }

  /**
   * Events yield to the work `busy` reports (a controller's queue): while it is busy, Warnings
   * trickle at BUSY_EVENT_QPS and Normal Events wait (up to BUSY_HOLD_MS), so a cold start or a
   * burst gets its addresses first.
   */
  yieldTo(busy: () => boolean): void {
    this.busy = busy;
  }

  /** Resolves once every recorded Event is written (or given up on), or after `deadlineMs`. */
  async flush(deadlineMs = FLUSH_DEADLINE_MS): Promise<void> {
    if (this.pending.size === 0 && !this.draining) return;
    const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    const abort = new AbortController();
    await Promise.race([idle, this.clock.sleep(deadlineMs, abort.signal).catch(() => undefined)]);
    abort.abort();
  }

  /**
   * Writes what it can within `deadlineMs`, then stops for good: a recorder whose controller
   * has stopped (shutdown, lost leadership) must not keep writing. What is left is dropped.
   */
  async close(deadlineMs = FLUSH_DEADLINE_MS): Promise<void> {
    // The work has stopped too: nothing to yield to within the deadline.
    this.busy = () => false;
    await this.flush(deadlineMs);
    this.discard();
  }

  /** Stops at once and drops what waits: leadership ended, so nothing more may be written. */
  discard(): void {
    this.closed = true;
    this.drop('stopped', this.pending.size);
    this.pending.clear();
  }

  /** One writer, paced by the global token bucket: at most one Event write is in flight. */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.pending.size > 0) {
        const now = this.clock.now();
        const busy = this.busy();
        const next = busy ? this.nextWhileBusy(now) : this.pending.entries().next().value;
        if (next === undefined) {
          // Only Normal Events wait, held for the busy work.
          await this.clock.sleep(BUSY_RECHECK_MS);
          if (this.closed) break;
          continue;
        }
        const [key, event] = next;
        const wait = (busy ? this.busyBucket : this.bucket).reserve(now);
        if (wait > 0) await this.clock.sleep(wait);
        if (this.closed) break;
        // Taken only now, so repeats recorded during the wait are folded into this write.
        this.pending.delete(key);
        await this.write(key, event);
      }
    } finally {
      this.draining = false;
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** The oldest Warning, or the oldest Normal Event once it has waited BUSY_HOLD_MS. */
  private nextWhileBusy(now: number): [string, Pending] | undefined {
    let normalsHeld = false;
    for (const entry of this.pending) {
      if (entry[1].type === 'Warning') return entry;
      // Oldest first: once one Normal Event is still held, so are the ones after it.
      if (!normalsHeld && now - entry[1].queuedAt >= BUSY_HOLD_MS) return entry;
      normalsHeld = true;
    }
    return undefined;
  }

  private async write(key: string, event: Pending): Promise<void> {
    const now = new Date(event.at).toISOString();
    const namespace = event.object.namespace ?? 'default';
    const seen = this.tracked.get(key);
    try {
      if (seen && event.at - seen.lastSeen < AGGREGATION_WINDOW_MS) {
        seen.count += event.count;
        seen.lastSeen = event.at;
        try {
          await this.client.request('PATCH', `/api/v1/namespaces/${seen.namespace}/events/${seen.name}`, {
            body: { count: seen.count, lastTimestamp: now },
            patchType: 'merge',
          });
          return;
        } catch (error) {
          // The Event expired (TTL) or was deleted: create a fresh one below.
          if (!isKubeError(error, 404)) throw error;
        }
      }
      const name = `${event.object.name}.${randomBytes(8).toString('hex')}`;
      await this.client.request('POST', `/api/v1/namespaces/${namespace}/events`, {
        body: {
          apiVersion: 'v1',
          kind: 'Event',
          metadata: { name, namespace },
          involvedObject: event.object,
          type: event.type,
          reason: event.reason,
          message: event.message,
          count: event.count,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: this.component },
          reportingComponent: this.component,
          reportingInstance: this.component,
        },
      });
      this.remember(key, { name, namespace, count: event.count, firstTimestamp: now, lastSeen: event.at });
    } catch (error) {
      // Not leading (a shutdown, the Lease lost, or not renewed with margin for a moment): what
      // waits would be refused too, so it is dropped at once — one line, not a warning per Event.
      // The recorder stays open: after a renewal hiccup, later Events are written again.
      if (error instanceof NotLeaderError) {
        const left = this.pending.size + 1;
        this.drop('stopped', left);
        this.pending.clear();
        this.options.logger?.info({ dropped: left }, 'not leading: Events waiting were not written');
        return;
      }
      // Expected, not an error: the namespace is being deleted along with the object.
      if (isKubeError(error, 403) && /being terminated/.test(error.message)) {
        this.options.logger?.debug({ reason: event.reason, object: `${namespace}/${event.object.name}` }, 'Event not written: its namespace is being deleted');
        return;
      }
      this.drop('writeFailed');
      this.options.logger?.warn({ reason: event.reason, object: `${namespace}/${event.object.name}`, error: error instanceof Error ? error.message : String(error) }, 'could not write Event');
    }
  }

  private remember(key: string, tracked: Tracked): void {
    this.tracked.set(key, tracked);
    if (this.tracked.size > MAX_TRACKED) {
      // Forget the oldest; a later repeat just creates a new Event.
      const oldest = this.tracked.keys().next().value;
      if (oldest !== undefined) this.tracked.delete(oldest);
    }
  }
}
