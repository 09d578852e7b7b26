/**
 * Heap compaction when work drains. V8's memory reducer shrinks the heap after a burst, but only
 * once its allocation-rate estimate, sampled every 8 s, calls the process idle: 30-50 s after
 * the work ended, in two full GCs. The controller knows when its work drains, so it compacts
 * then, once, and hands V8's reducer nothing to do (bench/README.md, footprint: "Sixth look").
 *
 * Activity is what the leader's work sends and receives (requests and watch events of the
 * term's client); Lease renewals are not work. After `idleMs` without activity, the heap is
 * compacted if V8 holds enough more of it than after the last compaction. Nothing wakes the
 * process when nothing is due: the one timer is armed by activity and not re-armed once the heap
 * has been looked at.
 */
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Clock } from './clock.js';
import type { KubeClient, RequestParams, WatchEvent } from './rest.js';

export interface CompactionSettings {
  /** Quiet time after the last activity before the heap is looked at. */
  idleMs: number;
  /** Compact only when the committed heap grew by at least this much since the last compaction… */
  minGrowthBytes: number;
  /** …and by at least this fraction of what it held then. */
  minGrowthRatio: number;
  /**
   * At most this share of the time goes to compacting: after a compaction that took d, the next
   * waits d / maxTimeShare (stop-and-go work compacts rarely; a burst after a quiet start does not
   * wait long).
   */
  maxTimeShare: number;
}

export const DEFAULT_COMPACTION: Omit<CompactionSettings, 'idleMs'> = {
  minGrowthBytes: 2 * 1024 * 1024,
  minGrowthRatio: 0.1,
  maxTimeShare: 0.01,
};

export interface CompactionState {
  now: number;
  lastActivityAt: number;
  /** undefined: never compacted. */
  lastCompaction: { at: number; tookMs: number } | undefined;
  /**
   * The heap V8 holds (committed), not what is in use: a GC of V8's own during the burst lowers
   * the second but leaves the first, and the RSS, grown.
   */
  heapBytes: number;
  /** The committed heap right after the last compaction (at start: when the compactor was made). */
  baselineBytes: number;
}

export type CompactionDecision = { kind: 'compact' } | { kind: 'wait'; ms: number } | { kind: 'nothing' };

export function planCompaction(state: CompactionState, settings: CompactionSettings): CompactionDecision {
  const quietMs = state.now - state.lastActivityAt;
  if (quietMs < settings.idleMs) return { kind: 'wait', ms: settings.idleMs - quietMs };
  const growth = state.heapBytes - state.baselineBytes;
  if (growth < Math.max(settings.minGrowthBytes, state.baselineBytes * settings.minGrowthRatio)) return { kind: 'nothing' };
  if (state.lastCompaction !== undefined) {
    const waitMs = state.lastCompaction.tookMs / settings.maxTimeShare - (state.now - state.lastCompaction.at);
    if (waitMs > 0) return { kind: 'wait', ms: Math.ceil(waitMs) };
  }
  return { kind: 'compact' };
}

export interface Compaction {
  beforeBytes: number;
  afterBytes: number;
  seconds: number;
}

export interface IdleCompactorDeps {
  /** A full, memory-reducing GC (see heapCompactor). */
  compact: () => void;
  /** V8's committed heap (getHeapStatistics().total_heap_size). */
  heapBytes: () => number;
  clock: Clock;
  /** Monotonic milliseconds, to time a compaction (default performance.now). */
  stopwatch?: () => number;
  onCompacted?: (compaction: Compaction) => void;
}

export class IdleCompactor {
  private lastActivityAt: number;
  private lastCompaction: { at: number; tookMs: number } | undefined;
  private baselineBytes: number;
  private cancelTimer: (() => void) | undefined;
  private stopped = false;

  constructor(
    private readonly deps: IdleCompactorDeps,
    private readonly settings: CompactionSettings,
  ) {
    this.lastActivityAt = deps.clock.now();
    this.baselineBytes = deps.heapBytes();
  }

  /** Called for every request and watch event of the work; cheap (no timer is re-armed). */
  readonly noteActivity = (): void => {
    if (this.stopped) return;
    this.lastActivityAt = this.deps.clock.now();
    if (this.cancelTimer === undefined) this.arm(this.settings.idleMs);
  };

  stop(): void {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  private arm(ms: number): void {
    this.cancelTimer = this.deps.clock.setTimer(() => {
      this.cancelTimer = undefined;
      this.check();
    }, ms);
  }

  private check(): void {
    if (this.stopped) return;
    const { clock, heapBytes, compact, onCompacted } = this.deps;
    const now = clock.now();
    const beforeBytes = heapBytes();
    const decision = planCompaction(
      { now, lastActivityAt: this.lastActivityAt, lastCompaction: this.lastCompaction, heapBytes: beforeBytes, baselineBytes: this.baselineBytes },
      this.settings,
    );
    if (decision.kind === 'wait') {
      this.arm(decision.ms);
      return;
    }
    if (decision.kind === 'nothing') return;
    const stopwatch = this.deps.stopwatch ?? (() => performance.now());
    const started = stopwatch();
    compact();
    const tookMs = stopwatch() - started;
    this.lastCompaction = { at: clock.now(), tookMs };
    this.baselineBytes = heapBytes();
    onCompacted?.({ beforeBytes, afterBytes: this.baselineBytes, seconds: tookMs / 1000 });
  }
}

/** A KubeClient that reports each request (sent and answered) and each watch event as activity. */
export class ActivityClient implements KubeClient {
  constructor(
    private readonly inner: KubeClient,
    private readonly onActivity: () => void,
  ) {}

  async request<T>(method: string, path: string, params?: RequestParams): Promise<T> {
    this.onActivity();
    try {
      return await this.inner.request<T>(method, path, params);
    } finally {
      this.onActivity();
    }
  }

  watch<T>(path: string, query: Record<string, string | number | boolean | undefined>, onEvent: (event: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    this.onActivity();
    return this.inner.watch<T>(
      path,
      query,
      (event) => {
        this.onActivity();
        onEvent(event);
      },
      signal,
    );
  }
}

/** V8 12 (Node 22) is the first with --memory-reducer-gc-count, read at each step, so settable now. */
const FIRST_V8_WITH_REDUCER_GC_COUNT = 12;

/**
 * Takes over memory reduction from V8, or returns undefined where that cannot be done (older
 * V8: its reducer stays in charge). The returned function is a full GC that also returns pooled
 * pages and shrinks the young generation (`flavor: 'last-resort'`); a plain full GC leaves
 * them. It takes 50-100 ms with 1000 Services, once per burst. `gc` is taken from a throwaway
 * context, so no global appears; but --expose-gc stays set for the process (contexts made later
 * get `gc` too), which is why only the process's owner calls this.
 */
export function heapCompactor(v8Version: string = process.versions.v8): (() => void) | undefined {
  if (Number(v8Version.split('.')[0]) < FIRST_V8_WITH_REDUCER_GC_COUNT) return undefined;
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as unknown;
  if (typeof gc !== 'function') return undefined;
  // Zero GCs: the reducer stands down when its timer fires; ours has done the work.
  setFlagsFromString('--memory-reducer-gc-count=0');
  const collect = gc as (options: { type: 'major' | 'minor'; flavor?: 'last-resort' }) => void;
  return () => {
    collect({ type: 'major', flavor: 'last-resort' });
    // V8 still counts the burst's survivors against the young generation it just shrank, so the
    // next scavenge would grow it back to its maximum (2 MB more RSS at rest). A scavenge now
    // lets it grow and resets that count; the second compaction shrinks it for good.
    collect({ type: 'minor' });
    collect({ type: 'major', flavor: 'last-resort' });
  };
}
