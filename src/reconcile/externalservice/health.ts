/**
 * Health of one address: a pure state machine (thresholds), and a monitor that probes every
 * target on its interval with bounded concurrency and says which keys changed.
 */
import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import type { Clock } from '../../kube/clock.js';
import type { HealthSettings } from './spec.js';

export type HealthStatus = 'unknown' | 'healthy' | 'unhealthy';

export interface HealthState {
  status: HealthStatus;
  /** Consecutive results opposite to the current status. */
  streak: number;
}

export const INITIAL_HEALTH: HealthState = { status: 'unknown', streak: 0 };

/**
 * The next state after one probe. The first result decides at once (no traffic is sent to an
 * address nobody has checked being down for long); after that it takes `healthyThreshold`
 * successes or `unhealthyThreshold` failures in a row to change.
 */
export function nextHealth(state: HealthState, ok: boolean, thresholds: Pick<HealthSettings, 'healthyThreshold' | 'unhealthyThreshold'>): HealthState {
  if (state.status === 'unknown') return { status: ok ? 'healthy' : 'unhealthy', streak: 0 };
  const agrees = (state.status === 'healthy') === ok;
  if (agrees) return { status: state.status, streak: 0 };
  const streak = state.streak + 1;
  const needed = ok ? thresholds.healthyThreshold : thresholds.unhealthyThreshold;
  return streak >= needed ? { status: ok ? 'healthy' : 'unhealthy', streak: 0 } : { status: state.status, streak };
}

/** Unknown counts as ready: an address is published ready until a probe says otherwise. */
export function isReady(state: HealthState): boolean {
  return state.status !== 'unhealthy';
}

export interface ProbeTarget {
  address: string;
  hostname?: string;
}

export interface Prober {
  probe(target: ProbeTarget, settings: HealthSettings, signal: AbortSignal): Promise<boolean>;
}

interface Watched {
  key: string;
  target: ProbeTarget;
  settings: HealthSettings;
  state: HealthState;
  cancel: () => void;
  running: boolean;
}

export interface HealthMonitorOptions {
  prober: Prober;
  clock: Clock;
  /** Probes in flight at once, across every ExternalService. */
  concurrency: number;
  /** A key one of whose addresses changed readiness (to `ready`). */
  onChange: (key: string, ready: boolean) => void;
  onProbe?: (ok: boolean) => void;
  logger?: Logger;
  random?: () => number;
}

/** Keeps one probe loop per (key, address); `set` replaces a key's targets (level-based). */
export class HealthMonitor {
  private readonly watched = new Map<string, Map<string, Watched>>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly abort = new AbortController();

  constructor(private readonly options: HealthMonitorOptions) {
    // Every probe in flight listens on it.
    setMaxListeners(0, this.abort.signal);
  }

  /** Replaces the targets of `key`; keeps the state of addresses that stay (with the same settings). */
  set(key: string, settings: HealthSettings | undefined, targets: readonly ProbeTarget[]): void {
    const current = this.watched.get(key) ?? new Map<string, Watched>();
    const wanted = new Map(settings ? targets.map((t) => [t.address, t]) : []);
    for (const [address, w] of current) {
      if (!wanted.has(address) || !settings || !sameSettings(w.settings, settings)) {
        w.cancel();
        current.delete(address);
      }
    }
    if (settings) {
      for (const [address, target] of wanted) {
        if (current.has(address)) continue;
        const w: Watched = { key, target, settings, state: INITIAL_HEALTH, cancel: () => undefined, running: false };
        current.set(address, w);
        // Spread first probes over the interval's first tenth so a restart does not probe in one burst.
        this.schedule(w, Math.floor((this.options.random ?? Math.random)() * Math.min(settings.intervalMs / 10, 1000)));
      }
    }
    if (current.size > 0) this.watched.set(key, current);
    else this.watched.delete(key);
  }

  /** Ready per address of `key` (addresses not watched are ready). */
  ready(key: string, address: string): boolean {
    const w = this.watched.get(key)?.get(address);
    return w ? isReady(w.state) : true;
  }

  state(key: string, address: string): HealthState | undefined {
    return this.watched.get(key)?.get(address)?.state;
  }

  forget(key: string): void {
    this.set(key, undefined, []);
  }

  stop(): void {
    this.abort.abort();
    for (const key of [...this.watched.keys()]) this.forget(key);
  }

  targets(): number {
    let n = 0;
    for (const m of this.watched.values()) n += m.size;
    return n;
  }

  private schedule(w: Watched, ms: number): void {
    w.cancel = this.options.clock.setTimer(() => void this.run(w), ms);
  }

  private async run(w: Watched): Promise<void> {
    if (this.abort.signal.aborted || this.watched.get(w.key)?.get(w.target.address) !== w) return;
    const started = this.options.clock.now();
    await this.acquire();
    let ok = false;
    try {
      const timeout = new AbortController();
      // The timeout fires after the next I/O poll, so an answer that arrived in time but waits
      // behind a busy event loop still counts: the timeout judges the endpoint, not this process.
      const cancelTimeout = this.options.clock.setTimer(() => setImmediate(() => timeout.abort(new Error('health check timed out'))), w.settings.timeoutMs);
      try {
        ok = await this.options.prober.probe(w.target, w.settings, AbortSignal.any([timeout.signal, this.abort.signal]));
      } catch {
        ok = false;
      } finally {
        cancelTimeout();
      }
    } finally {
      this.release();
    }
    if (this.watched.get(w.key)?.get(w.target.address) !== w) return;
    this.options.onProbe?.(ok);
    const before = isReady(w.state);
    const wasUnknown = w.state.status === 'unknown';
    w.state = nextHealth(w.state, ok, w.settings);
    if (before !== isReady(w.state) || (wasUnknown && !ok)) {
      this.options.logger?.info({ key: w.key, address: w.target.address, status: w.state.status }, 'endpoint health changed');
      this.options.onChange(w.key, isReady(w.state));
    }
    // Interval from probe start to probe start, as load balancers count it. While a change is
    // being confirmed (a result against the current status), the next probe comes sooner, as
    // HAProxy's fastinter and Envoy's edge intervals do: thresholds still count consecutive
    // results, they are just gathered faster.
    this.schedule(w, Math.max(0, edgeOrInterval(w) - (this.options.clock.now() - started)));
  }

  private async acquire(): Promise<void> {
    if (this.active < this.options.concurrency) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
}

/** A quarter of the interval (never shorter than the timeout) while a change is being confirmed. */
export function edgeOrInterval(w: { state: HealthState; settings: HealthSettings }): number {
  return w.state.streak > 0 ? Math.max(w.settings.timeoutMs, Math.floor(w.settings.intervalMs / 4)) : w.settings.intervalMs;
}

function sameSettings(a: HealthSettings, b: HealthSettings): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
