/**
 * Write expectations, as Kubernetes controllers keep them: after the controller writes an
 * object, the informer's copy is stale until the watch delivers that write. Reconciling from
 * the stale copy would redo the work (a wasted write, repeated Events), and the write's own
 * watch event carries nothing new to react to. Pure: time comes from the injected clock.
 *
 * A write's event often arrives before its answer (a quarter of them against a local API
 * server): its version is not known yet. A version delivered while one of our writes to that
 * object is in flight waits for the answer, which tells whether it was ours; only a version
 * that was not is reported, through `onForeign`, as work.
 */
import type { Clock } from './clock.js';

/** What a delivered object version means for the work queue. */
export type Delivery =
  /** Somebody else's change: reconcile. */
  | 'foreign'
  /** Our own write arriving: nothing new. */
  | 'own'
  /** Our last pending write arrived and a reconcile was held back meanwhile: run it now. */
  | 'resume'
  /** Arrived while our write was in flight: its answer decides (`onForeign` if it was not ours). */
  | 'undecided';

interface KeyState {
  /** Our writes the informer has not delivered yet. */
  pending: Set<string>;
  lastWriteAt: number;
  skipped: boolean;
  /** Recently delivered versions: a write's event may arrive before its response. */
  recent: string[];
  /** Our writes sent and not answered yet. */
  inFlight: number;
  /** Versions delivered while a write was in flight, not known to be ours yet. */
  undecided: Set<string>;
}

const RECENT_VERSIONS = 4;

export class WriteExpectations {
  private readonly keys = new Map<string, KeyState>();

  constructor(
    private readonly clock: Clock,
    /** Past this, a missing event is assumed lost and the cache is trusted again. */
    private readonly timeoutMs: number,
    /** A version delivered while our write was in flight turned out not to be ours: reconcile `key`. */
    private readonly onForeign: (key: string) => void = () => undefined,
  ) {}

  private state(key: string): KeyState {
    let state = this.keys.get(key);
    if (!state) {
      state = { pending: new Set(), lastWriteAt: 0, skipped: false, recent: [], inFlight: 0, undecided: new Set() };
      this.keys.set(key, state);
    }
    return state;
  }

  /** The informer delivered `resourceVersion` for `key` (add or update). */
  delivered(key: string, resourceVersion: string): Delivery {
    const state = this.state(key);
    state.recent = [...state.recent.slice(1 - RECENT_VERSIONS), resourceVersion];
    if (!state.pending.delete(resourceVersion)) {
      if (state.inFlight === 0) return 'foreign';
      state.undecided.add(resourceVersion);
      return 'undecided';
    }
    if (state.pending.size > 0) return 'own';
    if (state.skipped) {
      state.skipped = false;
      return 'resume';
    }
    return 'own';
  }

  /** The controller is sending a write to `key`; `wrote` follows once it is answered, whatever the answer. */
  writing(key: string): void {
    this.state(key).inFlight += 1;
  }

  /**
   * The controller's write to `key` answered: `resourceVersion` is the version it wrote
   * (undefined: it failed, or had nothing to write).
   */
  wrote(key: string, resourceVersion?: string): void {
    const state = resourceVersion === undefined ? this.keys.get(key) : this.state(key);
    // Forgotten (deleted) while in flight, and nothing written: nothing to wait for.
    if (!state) return;
    if (resourceVersion !== undefined) {
      state.undecided.delete(resourceVersion);
      if (!state.recent.includes(resourceVersion)) {
        state.pending.add(resourceVersion);
        state.lastWriteAt = this.clock.now();
      }
    }
    if (state.inFlight > 0) state.inFlight -= 1;
    if (state.inFlight > 0 || state.undecided.size === 0) return;
    state.undecided.clear();
    this.onForeign(key);
  }

  /**
   * How long the cache for `key` stays behind our own writes: 0 when it is current. A non-zero
   * answer marks the reconcile as held back, so the arriving write resumes it.
   */
  staleFor(key: string): number {
    const state = this.keys.get(key);
    if (!state || state.pending.size === 0) return 0;
    const waited = this.clock.now() - state.lastWriteAt;
    if (waited >= this.timeoutMs) {
      state.pending.clear();
      state.skipped = false;
      return 0;
    }
    state.skipped = true;
    return this.timeoutMs - waited;
  }

  forget(key: string): void {
    this.keys.delete(key);
  }
}
