/** Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection package. */
import type { V1Lease, V1LeaseSpec } from '@kubernetes/client-node';
import { abortable } from '../abort.js';
import type { Clock } from '../clock.js';
import { LeaseConflictError, MicroTime, withSpec, type LeaseStore } from './lease-store.js';

/** client-go's leaderelection.JitterFactor: a candidate waits retryPeriod * (1 + random * 1.2). */
export const JITTER_FACTOR = 1.2;
export const DEFAULT_LEASE_DURATION_MS = 15_000;
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;
/** Tolerance on top of leaseDuration before /healthz reports a stuck leader. */
/** Subtracted from the renew deadline when deciding whether a write is still safe. */
export const CLOCK_SKEW_ALLOWANCE_MS = 1_000;
export const DEFAULT_HEALTH_SLACK_MS = 2_000;

/** Options that can never elect safely, e.g. a renew deadline longer than the lease. */
export class LeaderElectionConfigError extends Error {
  readonly field: string;

  constructor(field: string, message: string) {
    super(`leader election: ${field}: ${message}`);
    this.name = 'LeaderElectionConfigError';
    this.field = field;
  }
}

export interface LeaderElectionOptions {
  /** Unique per candidate, e.g. the pod name. */
  identity: string;
  namespace: string;
  name: string;
  /** How long others wait, from their last observed change, before taking the lease. Whole seconds. */
  leaseDurationMs?: number;
  /** The leader steps down when it has not renewed for this long. */
  renewDeadlineMs?: number;
  /** Interval between acquire attempts (jittered), and between renewal attempts after a failed one. */
  retryPeriodMs?: number;
  /**
   * Interval after a successful renewal. Defaults to half the renew deadline (at least
   * retryPeriod): a PUT every 5 s instead of every 2 s at the defaults, still leaving two
   * retries before the deadline. Standbys time out after leaseDuration, so this is safe as long
   * as it is shorter than the renew deadline.
   */
  renewIntervalMs?: number;
  /** Source of jitter in [0, 1); defaults to Math.random. */
  random?: () => number;
}

export interface LeaderElectionConfig {
  readonly identity: string;
  readonly namespace: string;
  readonly name: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly renewIntervalMs: number;
  readonly random: () => number;
}

export interface LeaderElectionCallbacks {
  /** `signal` aborts as soon as leadership is lost or being released: stop all work then. */
  onStartedLeading(signal: AbortSignal): void;
  /** Called once per term, after onStartedLeading, when leadership is lost or released. */
  onStoppedLeading(): void;
  /** Called when a different (non-empty) holder is observed, including ourselves. */
  onNewLeader?(identity: string): void;
}

/** The subset of pino's Logger the elector uses. */
export interface LeaderElectionLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** How `run` ended: stopped by abort/release(), or leadership lost (renewals failed or lease taken). */
export type ElectionOutcome = 'stopped' | 'lost';

const silentLogger: LeaderElectionLogger = {
  info: () => undefined,
  warn: () => undefined,
  debug: () => undefined,
};

/** Fills in defaults and rejects option sets that client-go would reject. */
export function resolveLeaderElectionOptions(options: LeaderElectionOptions): LeaderElectionConfig {
  for (const field of ['identity', 'namespace', 'name'] as const) {
    if (typeof options[field] !== 'string' || options[field] === '') {
      throw new LeaderElectionConfigError(field, 'must be a non-empty string');
    }
  }
  const renewDeadlineMs = options.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS;
  const retryPeriodMs = options.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
  const config: LeaderElectionConfig = {
    identity: options.identity,
    namespace: options.namespace,
    name: options.name,
    leaseDurationMs: options.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS,
    renewDeadlineMs,
    retryPeriodMs,
    renewIntervalMs: options.renewIntervalMs ?? defaultRenewInterval(renewDeadlineMs, retryPeriodMs),
    random: options.random ?? Math.random,
  };
  for (const field of ['leaseDurationMs', 'renewDeadlineMs', 'retryPeriodMs', 'renewIntervalMs'] as const) {
    if (!Number.isInteger(config[field]) || config[field] <= 0) {
      throw new LeaderElectionConfigError(field, `must be a positive integer, got ${String(config[field])}`);
    }
  }
  // The Lease carries whole seconds; rounding would make others expire us earlier than we assume.
  if (config.leaseDurationMs % 1000 !== 0) {
    throw new LeaderElectionConfigError('leaseDurationMs', `must be whole seconds, got ${config.leaseDurationMs}`);
  }
  if (config.leaseDurationMs <= config.renewDeadlineMs) {
    throw new LeaderElectionConfigError(
      'leaseDurationMs',
      `must be greater than renewDeadlineMs (${config.leaseDurationMs} <= ${config.renewDeadlineMs})`,
    );
  }
  if (config.renewDeadlineMs <= JITTER_FACTOR * config.retryPeriodMs) {
    throw new LeaderElectionConfigError(
      'renewDeadlineMs',
      `must be greater than retryPeriodMs * ${JITTER_FACTOR} (${config.renewDeadlineMs} <= ${JITTER_FACTOR * config.retryPeriodMs})`,
    );
  }
  if (config.renewIntervalMs >= config.renewDeadlineMs) {
    throw new LeaderElectionConfigError('renewIntervalMs', `must be shorter than renewDeadlineMs (${config.renewIntervalMs} >= ${config.renewDeadlineMs})`);
  }
  return config;
}

/** Half the renew deadline, but never more often than the retry period. */
function defaultRenewInterval(renewDeadlineMs: number, retryPeriodMs: number): number {
  return Math.max(retryPeriodMs, Math.floor(renewDeadlineMs / 2));
}

/** client-go's wait.Jitter: duration + random * factor * duration. */
export function jitter(durationMs: number, factor: number, random: () => number): number {
  return durationMs + random() * factor * durationMs;
}

type Attempt = 'ok' | 'held' | 'failed';

interface Observation {
  fingerprint: string;
  holder: string;
  durationMs: number;
  /** Our clock when this record was first seen: expiry never trusts the remote renewTime. */
  at: number;
}

/** Leader election on a coordination.k8s.io/v1 Lease, after client-go's leaderelection package. */
export class LeaderElector {
  readonly config: LeaderElectionConfig;
  private readonly store: LeaseStore;
  private readonly clock: Clock;
  private readonly callbacks: LeaderElectionCallbacks;
  private readonly logger: LeaderElectionLogger;
  private observed: Observation | undefined;
  /** The server's answer to our last successful write: its resourceVersion drives the renew fast path. */
  private lastWritten: V1Lease | undefined;
  private reportedLeader = '';
  private leading = false;
  private lastRenewAt = 0;
  private running: Promise<ElectionOutcome> | undefined;
  private stopper: AbortController | undefined;

  constructor(
    store: LeaseStore,
    options: LeaderElectionOptions,
    clock: Clock,
    callbacks: LeaderElectionCallbacks,
    logger: LeaderElectionLogger = silentLogger,
  ) {
    this.config = resolveLeaderElectionOptions(options);
    this.store = store;
    this.clock = clock;
    this.callbacks = callbacks;
    this.logger = logger;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The holder in the last observed record, if any. */
  currentLeader(): string | undefined {
    return this.observed?.holder || undefined;
  }

  /**
   * Whether this process may write now: it leads, and its last successful renewal is recent
   * enough that nobody else can have taken the Lease, with an allowance for clock drift. Checked
   * synchronously before every write, so it holds even when timers run late (a paused process).
   */
  holdsLease(now: number = this.clock.now()): boolean {
    if (!this.leading) return false;
    const allowance = Math.min(CLOCK_SKEW_ALLOWANCE_MS, this.config.renewDeadlineMs / 10);
    return now - this.lastRenewAt < this.config.renewDeadlineMs - allowance;
  }

  /** client-go's HealthzAdaptor: false only when we think we lead but have not renewed for too long. */
  healthy(slackMs: number = DEFAULT_HEALTH_SLACK_MS): boolean {
    if (!this.leading) return true;
    return this.clock.now() - this.lastRenewAt <= this.config.leaseDurationMs + slackMs;
  }

  /**
   * Campaigns until elected, leads until the lease is lost or `signal` aborts (then releases the
   * lease). Resolves with how it ended; run again to re-campaign after 'lost'.
   */
  run(signal: AbortSignal): Promise<ElectionOutcome> {
    if (this.running) return Promise.reject(new Error('LeaderElector.run is already running'));
    const stopper = new AbortController();
    this.stopper = stopper;
    const running = this.campaign(AbortSignal.any([signal, stopper.signal])).finally(() => {
      this.running = undefined;
      this.stopper = undefined;
    });
    this.running = running;
    return running;
  }

  /** Stops `run` and, if we lead, hands the lease over (holder cleared). Resolves when done. */
  async release(): Promise<void> {
    const running = this.running;
    this.stopper?.abort(new Error('leader election released'));
    if (running) await running.catch(() => undefined);
  }

  private get ref(): { lease: string; identity: string } {
    return { lease: `${this.config.namespace}/${this.config.name}`, identity: this.config.identity };
  }

  private async campaign(stop: AbortSignal): Promise<ElectionOutcome> {
    this.logger.info(this.ref, 'campaigning for leader lease');
    let acquiredAt: number | undefined;
    while (!stop.aborted) {
      const startedAt = this.clock.now();
      if ((await this.tryAcquireOrRenew(startedAt)) === 'ok') {
        acquiredAt = startedAt;
        break;
      }
      try {
        await this.clock.sleep(jitter(this.config.retryPeriodMs, JITTER_FACTOR, this.config.random), stop);
      } catch {
        break;
      }
    }
    if (acquiredAt === undefined) return 'stopped';
    if (stop.aborted) {
      // Won just as we were asked to stop: never start, hand it straight back.
      await this.releaseLease();
      return 'stopped';
    }
    return this.lead(stop, acquiredAt);
  }

  private async lead(stop: AbortSignal, acquiredAt: number): Promise<ElectionOutcome> {
    const term = new AbortController();
    let cancelDeadline: () => void = () => undefined;
    let notified = false;
    const stopLeading = (reason: string): void => {
      if (!this.leading) return;
      this.leading = false;
      cancelDeadline();
      term.abort(new Error(`leadership ended: ${reason}`));
    };
    const notifyStopped = (): void => {
      if (notified) return;
      notified = true;
      this.call('onStoppedLeading', () => {
        this.callbacks.onStoppedLeading();
      });
    };
    const lose = (reason: string): void => {
      if (!this.leading) return;
      this.logger.warn({ ...this.ref, reason }, 'leadership lost');
      stopLeading(reason);
      notifyStopped();
    };
    // A timer rather than a check after each call: a hung API call must not delay stepping down.
    const armDeadline = (): void => {
      cancelDeadline();
      cancelDeadline = this.clock.setTimer(() => {
        lose('renew deadline exceeded');
      }, this.lastRenewAt + this.config.renewDeadlineMs - this.clock.now());
    };

    this.leading = true;
    this.lastRenewAt = acquiredAt;
    armDeadline();
    this.logger.info(this.ref, 'became leader');
    try {
      this.callbacks.onStartedLeading(term.signal);
    } catch (err) {
      this.logger.warn({ ...this.ref, err }, 'onStartedLeading threw; releasing the lease');
      stopLeading('onStartedLeading failed');
      await this.releaseLease();
      notifyStopped();
      throw err;
    }

    const wake = AbortSignal.any([stop, term.signal]);
    // Each renewal is an API write (and about 1.5 ms of this process's CPU): after a success
    // the next one waits renewInterval; after a failure, retries come every retryPeriod.
    let lastFailed = false;
    // isLeader() rather than the field: callbacks and timers flip it during the awaits.
    while (this.isLeader() && !stop.aborted) {
      try {
        await this.clock.sleep(lastFailed ? this.config.retryPeriodMs : this.config.renewIntervalMs, wake);
      } catch {
        break;
      }
      const startedAt = this.clock.now();
      // Checked before trying: after a pause (GC, SIGSTOP) the deadline timer may not have run
      // yet, and a renewal sent now would be a write from a leader that no longer is one.
      if (startedAt - this.lastRenewAt >= this.config.renewDeadlineMs) {
        lose('renew deadline exceeded');
        break;
      }
      const result = await untilAborted(this.tryAcquireOrRenew(startedAt), term.signal);
      if (!this.isLeader()) break;
      lastFailed = result !== 'ok';
      if (result === 'ok') {
        // The attempt's start: a lower bound on when others can have seen this write.
        this.lastRenewAt = startedAt;
        armDeadline();
      } else if (result === 'held') {
        lose(`lease taken by ${this.observed?.holder ?? 'another candidate'}`);
      }
      // 'failed': retry every retryPeriod until the deadline timer fires.
    }
    if (!this.isLeader()) return 'lost';

    // Stop the controller before the lease is handed over, like client-go's ReleaseOnCancel.
    stopLeading('released');
    let cancelTimeout: () => void = () => undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      cancelTimeout = this.clock.setTimer(() => {
        resolve('timeout');
      }, this.config.renewDeadlineMs);
    });
    const released = await Promise.race([this.releaseLease().then(() => 'done' as const), timedOut]);
    cancelTimeout();
    if (released === 'timeout') this.logger.warn(this.ref, 'releasing the lease timed out; it will expire');
    notifyStopped();
    return 'stopped';
  }

  private async tryAcquireOrRenew(now: number): Promise<Attempt> {
    const { namespace, name, identity } = this.config;
    // Fast path, as in client-go: the leader replaces with the resourceVersion of its own last write.
    if (this.leading && this.lastWritten) {
      try {
        await this.write('replace', this.renewed(this.lastWritten, now), now);
        return 'ok';
      } catch (err) {
        if (!(err instanceof LeaseConflictError)) return this.failed('renewing the lease failed', err);
        this.logger.debug(this.ref, 'lease changed since our last write; re-reading');
      }
    }

    let current: V1Lease | undefined;
    try {
      current = await this.store.get(namespace, name);
    } catch (err) {
      return this.failed('reading the lease failed', err);
    }
    if (!current) {
      try {
        await this.write('create', this.created(now), now);
        return 'ok';
      } catch (err) {
        return this.failed('creating the lease failed', err);
      }
    }

    const seen = this.observe(current, now);
    if (seen.holder !== '' && seen.holder !== identity && now < seen.at + seen.durationMs) {
      this.logger.debug({ ...this.ref, holder: seen.holder }, 'lease is held by another candidate');
      return 'held';
    }
    try {
      await this.write('replace', this.takenOver(current, now), now);
      return 'ok';
    } catch (err) {
      return this.failed('taking the lease failed', err);
    }
  }

  private failed(msg: string, err: unknown): 'failed' {
    // A conflict only means another writer was first; the next attempt re-reads.
    if (err instanceof LeaseConflictError) this.logger.debug({ ...this.ref, err }, msg);
    else this.logger.warn({ ...this.ref, err }, msg);
    return 'failed';
  }

  private async write(op: 'create' | 'replace', lease: V1Lease, now: number): Promise<V1Lease> {
    const written = op === 'create' ? await this.store.create(lease) : await this.store.replace(lease);
    this.lastWritten = written;
    this.observe(written, now);
    return written;
  }

  private observe(lease: V1Lease, now: number): Observation {
    const spec: Partial<V1LeaseSpec> = lease.spec ?? {};
    const fingerprint = JSON.stringify([
      spec.holderIdentity,
      spec.leaseDurationSeconds,
      spec.acquireTime,
      spec.renewTime,
      spec.leaseTransitions,
    ]);
    if (this.observed?.fingerprint !== fingerprint) {
      const seconds = spec.leaseDurationSeconds;
      this.observed = {
        fingerprint,
        holder: spec.holderIdentity ?? '',
        durationMs: seconds !== undefined && seconds > 0 ? seconds * 1000 : this.config.leaseDurationMs,
        at: now,
      };
    }
    const holder = this.observed.holder;
    if (holder !== '' && holder !== this.reportedLeader) {
      this.reportedLeader = holder;
      this.logger.info({ ...this.ref, leader: holder }, 'new leader observed');
      this.call('onNewLeader', () => {
        this.callbacks.onNewLeader?.(holder);
      });
    }
    return this.observed;
  }

  private call(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger.warn({ ...this.ref, err }, `${name} threw`);
    }
  }

  private ourSpec(now: number): Partial<V1LeaseSpec> {
    return {
      holderIdentity: this.config.identity,
      leaseDurationSeconds: this.config.leaseDurationMs / 1000,
      renewTime: new MicroTime(now),
    };
  }

  private created(now: number): V1Lease {
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { namespace: this.config.namespace, name: this.config.name },
      spec: { ...this.ourSpec(now), acquireTime: new MicroTime(now), leaseTransitions: 0 },
    };
  }

  private renewed(lease: V1Lease, now: number): V1Lease {
    return withSpec(lease, this.ourSpec(now));
  }

  private takenOver(lease: V1Lease, now: number): V1Lease {
    const old: Partial<V1LeaseSpec> = lease.spec ?? {};
    const transitions = old.leaseTransitions ?? 0;
    const ours = old.holderIdentity === this.config.identity;
    return withSpec(lease, {
      ...this.ourSpec(now),
      acquireTime: ours && old.acquireTime ? old.acquireTime : new MicroTime(now),
      leaseTransitions: ours ? transitions : transitions + 1,
    });
  }

  /** Clears the holder so the next candidate need not wait out the lease. Best effort. */
  private async releaseLease(): Promise<void> {
    let base = this.lastWritten;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (base?.spec?.holderIdentity !== this.config.identity) return;
      const now = this.clock.now();
      const released = withSpec(base, {
        holderIdentity: '',
        leaseDurationSeconds: 1,
        acquireTime: new MicroTime(now),
        renewTime: new MicroTime(now),
      });
      try {
        await this.write('replace', released, now);
        this.logger.info(this.ref, 'released the lease');
        return;
      } catch (err) {
        if (!(err instanceof LeaseConflictError)) {
          this.logger.warn({ ...this.ref, err }, 'releasing the lease failed; it will expire');
          return;
        }
      }
      try {
        base = await this.store.get(this.config.namespace, this.config.name);
      } catch (err) {
        this.logger.warn({ ...this.ref, err }, 'releasing the lease failed; it will expire');
        return;
      }
    }
  }
}

/** A /healthz check; `elector` may be absent when leader election is disabled. */
export function leaderElectionHealthy(
  elector: Pick<LeaderElector, 'healthy'> | undefined,
  slackMs: number = DEFAULT_HEALTH_SLACK_MS,
): () => boolean {
  return () => elector?.healthy(slackMs) ?? true;
}

/** The attempt's result, or 'aborted' as soon as `signal` fires (the attempt itself runs on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | 'aborted'> {
  return abortable<T | 'aborted'>(promise, signal).catch((error: unknown) => {
    if (signal.aborted) return 'aborted';
    throw error;
  });
}
