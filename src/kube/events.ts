/**
 * Kubernetes Events, recorded off the reconcile path (like client-go's broadcaster): `record`
 * never blocks or throws. Repeats of the same (object, type, reason, message) within the
 * aggregation window bump `count` and `lastTimestamp` on the existing Event instead of
 * creating a new one, so a failing Service does not flood `kubectl describe`.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { systemClock, type Clock } from './clock.js';
import { isKubeError, type KubeClient } from './rest.js';

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
const MAX_PENDING = 1_000;
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
}

function eventKey(event: Pending): string {
  return [event.object.uid ?? `${event.object.namespace ?? ''}/${event.object.name}`, event.type, event.reason, event.message].join('\u0000');
}

export class EventRecorder implements EventSink {
  private readonly tracked = new Map<string, Tracked>();
  /** The last write per event key: repeats wait for it, so one Event is created, then patched. */
  private readonly writing = new Map<string, Promise<void>>();
  private readonly pending: Pending[] = [];
  private inFlight = 0;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly dropped: Counter | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    private readonly options: { clock?: Clock; logger?: Logger; registry?: Registry; concurrency?: number } = {},
  ) {
    const registry = options.registry;
    this.dropped = registry
      ? ((registry.getSingleMetric('portico_events_dropped_total') as Counter | undefined) ??
        new Counter({ name: 'portico_events_dropped_total', help: 'Events not written because the queue was full or the write failed', registers: [registry] }))
      : undefined;
  }

  private get clock(): Clock {
    return this.options.clock ?? systemClock;
  }

  record(object: ObjectReference, type: EventType, reason: string, message: string): void {
    if (this.pending.length >= MAX_PENDING) {
      this.dropped?.inc();
      return;
    }
    this.pending.push({ object, type, reason, message: message.slice(0, 1024), at: this.clock.now() });
    this.pump();
  }

  /** Resolves once every recorded event has been written (or given up on). For tests and shutdown. */
  async flush(): Promise<void> {
    if (this.pending.length === 0 && this.inFlight === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    const concurrency = this.options.concurrency ?? 2;
    while (this.inFlight < concurrency && this.pending.length > 0) {
      const next = this.pending.shift();
      if (!next) break;
      this.inFlight++;
      const key = eventKey(next);
      const previous = this.writing.get(key) ?? Promise.resolve();
      const written = previous.then(() => this.write(key, next));
      this.writing.set(key, written);
      void written.finally(() => {
        if (this.writing.get(key) === written) this.writing.delete(key);
        this.inFlight--;
        this.pump();
        if (this.inFlight === 0 && this.pending.length === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
      });
    }
  }

  private async write(key: string, event: Pending): Promise<void> {
    const now = new Date(event.at).toISOString();
    const namespace = event.object.namespace ?? 'default';
    const seen = this.tracked.get(key);
    try {
      if (seen && event.at - seen.lastSeen < AGGREGATION_WINDOW_MS) {
        seen.count++;
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
          count: 1,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: this.component },
          reportingComponent: this.component,
          reportingInstance: this.component,
        },
      });
      this.remember(key, { name, namespace, count: 1, firstTimestamp: now, lastSeen: event.at });
    } catch (error) {
      this.dropped?.inc();
      this.options.logger?.warn({ err: error, reason: event.reason, object: `${namespace}/${event.object.name}` }, 'could not write Event');
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
