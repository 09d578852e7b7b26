/**
 * Kubernetes Events, recorded off the reconcile path (like client-go's broadcaster): `record`
 * never blocks or throws. One writer, paced by a token bucket, so a burst of Services is not
 * slowed down by its own Events; repeats waiting in the queue are folded into one write. Repeats of the same (object, type, reason, message) within the
 * aggregation window bump `count` and `lastTimestamp` on the existing Event instead of
 * creating a new one, so a failing Service does not flood `kubectl describe`.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { systemClock, type Clock } from './clock.js';
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
const MAX_PENDING = 10_000;
const MAX_TRACKED = 4_096;

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
  /** Repeats recorded while this one waited to be written. */
  count: number;
}

function eventKey(event: Omit<Pending, 'count' | 'at'>): string {
  return [event.object.uid ?? `${event.object.namespace ?? ''}/${event.object.name}`, event.type, event.reason, event.message].join('\u0000');
}

export interface EventRecorderOptions {
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
  /** Event writes per second once the burst is spent; Events must not crowd out real work. */
  qps?: number;
  burst?: number;
}

export const DEFAULT_EVENT_QPS = 10;
export const DEFAULT_EVENT_BURST = 50;
/** How long shutdown waits for unwritten Events. */
const FLUSH_DEADLINE_MS = 5_000;

export class EventRecorder implements EventSink {
  private readonly tracked = new Map<string, Tracked>();
  /** Waiting to be written, oldest first; a repeat of a waiting Event only bumps its count. */
  private readonly pending = new Map<string, Pending>();
  private draining = false;
  private closed = false;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly dropped: Counter | undefined;
  private readonly bucket: TokenBucket;

  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    private readonly options: EventRecorderOptions = {},
  ) {
    const registry = options.registry;
    this.dropped = registry
      ? metric(registry, 'portico_events_dropped_total', Counter, () => new Counter({ name: 'portico_events_dropped_total', help: 'Events not written because the queue was full, the write failed or leadership ended', registers: [registry] }))
      : undefined;
    this.bucket = new TokenBucket(options.qps ?? DEFAULT_EVENT_QPS, options.burst ?? DEFAULT_EVENT_BURST);
  }

  private get clock(): Clock {
    return this.options.clock ?? systemClock;
  }

  record(object: ObjectReference, type: EventType, reason: string, message: string): void {
    if (this.closed) {
      this.dropped?.inc();
      return;
    }
    const event = { object, type, reason, message: message.slice(0, 1024) };
    const key = eventKey(event);
    const waiting = this.pending.get(key);
    if (waiting) {
      waiting.count++;
      waiting.at = this.clock.now();
      return;
    }
    if (this.pending.size >= MAX_PENDING) {
      this.dropped?.inc();
      return;
    }
    this.pending.set(key, { ...event, at: this.clock.now(), count: 1 });
    void this.drain();
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
    await this.flush(deadlineMs);
    this.closed = true;
    this.dropped?.inc(this.pending.size);
    this.pending.clear();
  }

  /** Stops at once and drops what waits: leadership ended, so nothing more may be written. */
  discard(): void {
    this.closed = true;
    this.dropped?.inc(this.pending.size);
    this.pending.clear();
  }

  /** One writer, paced by the token bucket: at most one Event write is in flight. */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      for (;;) {
        const next = this.pending.entries().next();
        if (next.done) break;
        const [key, event] = next.value;
        const wait = this.bucket.reserve(this.clock.now());
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
      // Expected, not an error: the namespace is being deleted along with the object.
      if (isKubeError(error, 403) && /being terminated/.test(error.message)) {
        this.options.logger?.debug({ reason: event.reason, object: `${namespace}/${event.object.name}` }, 'Event not written: its namespace is being deleted');
        return;
      }
      this.dropped?.inc();
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
