/**
 * A rate-limited workqueue modelled on client-go's `workqueue.TypedRateLimitingInterface`:
 * de-duplicating FIFO, at most one reconcile in flight per key, delayed adds, per-key
 * exponential backoff combined with an overall token bucket, and a draining worker loop.
 */
import { Counter, Gauge, Histogram, globalRegistry, type Registry } from './prom.js';

import { systemClock } from './clock.js';
import type { Clock } from './clock.js';
import { metric } from './metrics.js';

export const DEFAULT_BACKOFF_BASE_MS = 5_000;
export const DEFAULT_BACKOFF_MAX_MS = 300_000;
export const DEFAULT_QPS = 10;
export const DEFAULT_BURST = 100;

/** Node's timers overflow past 2^31-1 ms and fire after 1 ms; clamp so a long delay stays long. */
const MAX_TIMER_MS = 2_147_483_647;

/** What a reconcile asks the queue to do with its key next. */
export type Outcome =
  | { readonly kind: 'done' }
  | { readonly kind: 'requeueAfter'; readonly ms: number }
  | { readonly kind: 'error'; readonly error: unknown }
  | { readonly kind: 'terminal'; readonly error: unknown };

export type OutcomeKind = Outcome['kind'];

export const done = (): Outcome => ({ kind: 'done' });
export const requeueAfter = (ms: number): Outcome => ({ kind: 'requeueAfter', ms });
export const retry = (error: unknown): Outcome => ({ kind: 'error', error });
export const terminal = (error: unknown): Outcome => ({ kind: 'terminal', error });

export type Handler = (key: string, signal: AbortSignal) => Promise<Outcome>;

/**
 * Per-key backoff after `failures` earlier failures: base * 2^failures, capped at max.
 * The exponent is clamped so huge counts cannot produce Infinity (or NaN when base is 0).
 */
export function backoffDelay(failures: number, baseMs: number, maxMs: number): number {
  const exp = failures > 0 ? Math.min(Math.floor(failures), 1023) : 0;
  const delay = baseMs * 2 ** exp;
  return Number.isFinite(delay) ? Math.min(delay, maxMs) : maxMs;
}

/**
 * client-go's BucketRateLimiter (golang.org/x/time/rate `Reserve().Delay()`): every call takes a
 * token, going into debt when the bucket is empty; the debt is the delay until that token exists.
 */
export class TokenBucket {
  private readonly qps: number;
  private readonly burst: number;
  private tokens: number;
  private last: number | undefined;

  constructor(qps: number, burst: number) {
    if (!(qps > 0)) throw new RangeError(`qps must be > 0 (Infinity disables the bucket), got ${qps}`);
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new RangeError(`burst must be a finite number >= 1, got ${burst}`);
    this.qps = qps;
    this.burst = burst;
    this.tokens = burst;
  }

  /** Takes one token at time `now` (ms) and returns how long (ms) the caller must wait for it. */
  reserve(now: number): number {
    if (this.qps === Infinity) return 0;
    if (this.last !== undefined) {
      const elapsed = Math.max(0, now - this.last);
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.qps) / 1000);
    }
    this.last = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.qps);
  }
}

export interface WorkQueueOptions {
  /** Value of the `name` label on every metric. */
  name: string;
  clock?: Clock;
  /** Defaults to prom-client's global registry. */
  registry?: Registry;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Overall rate for addRateLimited; Infinity disables the bucket. */
  qps?: number;
  burst?: number;
}

type Label = 'name';

interface QueueMetrics {
  depth: Gauge<Label>;
  adds: Counter<Label>;
  queueDuration: Histogram<Label>;
  workDuration: Histogram<Label>;
  retries: Counter<Label>;
}

// Reconciles include cloud API calls, so the buckets reach minutes rather than client-go's 10 s.
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300];


function queueMetrics(registry: Registry): QueueMetrics {
  const registers = [registry];
  const labelNames = ['name'] as const;
  return {
    depth: metric(registry, 'portico_workqueue_depth', Gauge<Label>, () =>
      new Gauge({ name: 'portico_workqueue_depth', help: 'Current depth of the workqueue.', labelNames, registers }),
    ),
    adds: metric(registry, 'portico_workqueue_adds_total', Counter<Label>, () =>
      new Counter({ name: 'portico_workqueue_adds_total', help: 'Total number of adds handled by the workqueue.', labelNames, registers }),
    ),
    queueDuration: metric(registry, 'portico_workqueue_queue_duration_seconds', Histogram<Label>, () =>
      new Histogram({
        name: 'portico_workqueue_queue_duration_seconds',
        help: 'How long in seconds a key stays in the workqueue before being handed to a worker.',
        labelNames,
        buckets: DURATION_BUCKETS,
        registers,
      }),
    ),
    workDuration: metric(registry, 'portico_workqueue_work_duration_seconds', Histogram<Label>, () =>
      new Histogram({
        name: 'portico_workqueue_work_duration_seconds',
        help: 'How long in seconds processing a key from the workqueue takes.',
        labelNames,
        buckets: DURATION_BUCKETS,
        registers,
      }),
    ),
    retries: metric(registry, 'portico_workqueue_retries_total', Counter<Label>, () =>
      new Counter({ name: 'portico_workqueue_retries_total', help: 'Total number of delayed re-adds handled by the workqueue.', labelNames, registers }),
    ),
  };
}

interface Waiting {
  readyAt: number;
  cancel: () => void;
}

export class WorkQueue {
  readonly name: string;
  private readonly clock: Clock;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly bucket: TokenBucket;
  private readonly metrics: QueueMetrics;
  private readonly labels: Record<Label, string>;

  // FIFO as array + head index so taking from the front is O(1).
  private queue: string[] = [];
  private head = 0;
  /** Keys that need processing: queued, or added again while processing. */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly addedAt = new Map<string, number>();
  private readonly startedAt = new Map<string, number>();
  private readonly waiting = new Map<string, Waiting>();
  private readonly failures = new Map<string, number>();
  private readonly getters: ((key: string | undefined) => void)[] = [];
  private stopping = false;

  constructor(options: WorkQueueOptions) {
    this.name = options.name;
    this.clock = options.clock ?? systemClock;
    this.backoffBaseMs = options.backoffBaseMs ?? DEFAULT_BACKOFF_BASE_MS;
    this.backoffMaxMs = options.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS;
    if (!(this.backoffBaseMs >= 0) || !(this.backoffMaxMs >= this.backoffBaseMs)) {
      throw new RangeError(`backoff must satisfy 0 <= base <= max, got base ${this.backoffBaseMs}, max ${this.backoffMaxMs}`);
    }
    this.bucket = new TokenBucket(options.qps ?? DEFAULT_QPS, options.burst ?? DEFAULT_BURST);
    this.metrics = queueMetrics(options.registry ?? globalRegistry);
    this.labels = { name: this.name };
    this.metrics.depth.set(this.labels, 0);
  }

  /** Number of keys waiting to be handed out (not counting in-flight or delayed keys). */
  len(): number {
    return this.queue.length - this.head;
  }

  /** Whether keys wait to be handed out or are being processed (delayed keys do not count). */
  busy(): boolean {
    return this.len() > 0 || this.processing.size > 0;
  }

  isShuttingDown(): boolean {
    return this.stopping;
  }

  /**
   * Queues `key` unless it is already waiting; a key being processed is re-queued once when done.
   * A delayed add of the key is dropped: the reconcile it waits for happens now, and that
   * reconcile's outcome schedules whatever comes next (else a burst's held-back keys all ran
   * again, for nothing, up to 10 s after it ended).
   */
  add(key: string): void {
    if (this.stopping) return;
    const delayed = this.waiting.get(key);
    if (delayed) {
      delayed.cancel();
      this.waiting.delete(key);
    }
    if (this.dirty.has(key)) return;
    this.metrics.adds.inc(this.labels);
    this.dirty.add(key);
    // Like client-go, queue time starts at the add, so it includes waiting for an in-flight run.
    if (!this.addedAt.has(key)) this.addedAt.set(key, this.clock.now());
    if (this.processing.has(key)) return;
    this.push(key);
  }

  /** Adds `key` after `ms`; when it is already scheduled earlier, the earlier time wins. */
  addAfter(key: string, ms: number): void {
    if (this.stopping) return;
    this.metrics.retries.inc(this.labels);
    if (!(ms > 0)) {
      this.add(key);
      return;
    }
    const delay = Math.min(ms, MAX_TIMER_MS);
    const readyAt = this.clock.now() + delay;
    const existing = this.waiting.get(key);
    if (existing && existing.readyAt <= readyAt) return;
    existing?.cancel();
    const cancel = this.clock.setTimer(() => {
      this.waiting.delete(key);
      this.add(key);
    }, delay);
    this.waiting.set(key, { readyAt, cancel });
  }

  /** Adds `key` after max(per-key exponential backoff, overall token-bucket delay). */
  addRateLimited(key: string): void {
    if (this.stopping) return;
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const perKey = backoffDelay(failures, this.backoffBaseMs, this.backoffMaxMs);
    // Always reserve a token, as client-go's MaxOfRateLimiter asks every limiter.
    const overall = this.bucket.reserve(this.clock.now());
    this.addAfter(key, Math.max(perKey, overall));
  }

  /** Resets the key's failure count; call after a successful reconcile. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** Next key to process (marked in flight until `done(key)`); undefined once shut down. */
  get(): Promise<string | undefined> {
    if (this.stopping) return Promise.resolve(undefined);
    if (this.len() > 0) return Promise.resolve(this.take());
    return new Promise((resolve) => {
      this.getters.push(resolve);
    });
  }

  /** Ends processing of `key`; if it was added meanwhile, it goes back into the queue. */
  done(key: string): void {
    if (!this.processing.delete(key)) return;
    const started = this.startedAt.get(key);
    this.startedAt.delete(key);
    if (started !== undefined) this.metrics.workDuration.observe(this.labels, (this.clock.now() - started) / 1000);
    if (this.dirty.has(key) && !this.stopping) this.push(key);
  }

  /**
   * Stops handing out keys. Keys still queued or delayed are dropped: reconciles are level-based,
   * so whoever runs next re-lists and re-queues them. In-flight keys finish normally.
   */
  shutDown(): void {
    if (this.stopping) return;
    this.stopping = true;
    for (const entry of this.waiting.values()) entry.cancel();
    this.waiting.clear();
    this.queue = [];
    this.head = 0;
    this.dirty.clear();
    this.addedAt.clear();
    this.metrics.depth.set(this.labels, 0);
    for (const resolve of this.getters.splice(0)) resolve(undefined);
  }

  /**
   * Runs `workers` concurrent workers until shutDown() or `signal` aborts, then resolves once
   * the in-flight handlers have finished. The handler gets `signal` to cancel its own I/O.
   */
  async run(workers: number, handler: Handler, signal: AbortSignal): Promise<void> {
    if (!Number.isInteger(workers) || workers < 1) throw new RangeError(`workers must be an integer >= 1, got ${workers}`);
    const onAbort = (): void => {
      this.shutDown();
    };
    if (signal.aborted) this.shutDown();
    else signal.addEventListener('abort', onAbort, { once: true });
    try {
      await Promise.all(Array.from({ length: workers }, () => this.worker(handler, signal)));
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  private async worker(handler: Handler, signal: AbortSignal): Promise<void> {
    for (;;) {
      const key = await this.get();
      if (key === undefined) return;
      let outcome: Outcome;
      try {
        outcome = await handler(key, signal);
      } catch (error) {
        outcome = retry(error);
      }
      try {
        this.settle(key, outcome);
      } finally {
        this.done(key);
      }
    }
  }

  private settle(key: string, outcome: Outcome): void {
    switch (outcome.kind) {
      case 'done':
      case 'terminal':
        this.forget(key);
        return;
      case 'requeueAfter':
        this.forget(key);
        this.addAfter(key, outcome.ms);
        return;
      case 'error':
        this.addRateLimited(key);
        return;
    }
  }

  private push(key: string): void {
    this.queue.push(key);
    this.metrics.depth.set(this.labels, this.len());
    // Invariant: getters wait only while the queue is empty, so hand new keys straight to them.
    while (this.len() > 0) {
      const resolve = this.getters.shift();
      if (!resolve) break;
      resolve(this.take());
    }
  }

  private take(): string {
    const key = this.queue[this.head] as string;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    const now = this.clock.now();
    this.dirty.delete(key);
    this.processing.add(key);
    this.startedAt.set(key, now);
    const added = this.addedAt.get(key);
    this.addedAt.delete(key);
    if (added !== undefined) this.metrics.queueDuration.observe(this.labels, (now - added) / 1000);
    this.metrics.depth.set(this.labels, this.len());
    return key;
  }
}
