/**
 * Write expectations, as Kubernetes controllers keep them: after the controller writes an
 * object, the informer's copy is stale until the watch delivers that write. Reconciling from
 * the stale copy would redo the work (a wasted write, repeated Events), and the write's own
 * watch event carries nothing new to react to. Pure: time comes from the injected clock.
 */
import type { Clock } from './clock.js';

/** What a delivered object version means for the work queue. */
export type Delivery =
  /** Somebody else's change: reconcile. */
  | 'foreign'
  /** Our own write arriving: nothing new. */
  | 'own'
  /** Our last pending write arrived and a reconcile was held back meanwhile: run it now. */
  | 'resume';

interface KeyState {
  /** Our writes the informer has not delivered yet. */
  pending: Set<string>;
  lastWriteAt: number;
  skipped: boolean;
  /** Recently delivered versions: a write's event may arrive before its response. */
  recent: string[];
}

const RECENT_VERSIONS = 4;

export class WriteExpectations {
  private readonly keys = new Map<string, KeyState>();

  constructor(
    private readonly clock: Clock,
    /** Past this, a missing event is assumed lost and the cache is trusted again. */
    private readonly timeoutMs: number,
  ) {}

  private state(key: string): KeyState {
    let state = this.keys.get(key);
    if (!state) {
      state = { pending: new Set(), lastWriteAt: 0, skipped: false, recent: [] };
      this.keys.set(key, state);
    }
    return state;
  }

  /** The informer delivered `resourceVersion` for `key` (add or update). */
  delivered(key: string, resourceVersion: string): Delivery {
    const state = this.state(key);
    state.recent = [...state.recent.slice(1 - RECENT_VERSIONS), resourceVersion];
    if (!state.pending.delete(resourceVersion)) return 'foreign';
    if (state.pending.size > 0) return 'own';
    if (state.skipped) {
      state.skipped = false;
      return 'resume';
    }
    return 'own';
  }

  /** The controller's write to `key` returned `resourceVersion`. */
  wrote(key: string, resourceVersion: string): void {
    const state = this.state(key);
    if (state.recent.includes(resourceVersion)) return;
    state.pending.add(resourceVersion);
    state.lastWriteAt = this.clock.now();
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
