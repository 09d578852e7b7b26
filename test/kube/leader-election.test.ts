import { V1Lease, V1LeaseSpec, V1ObjectMeta } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../../src/kube/clock.js';
import {
  DEFAULT_LEASE_DURATION_MS,
  DEFAULT_RENEW_DEADLINE_MS,
  DEFAULT_RETRY_PERIOD_MS,
  JITTER_FACTOR,
  LeaderElectionConfigError,
  LeaderElector,
  jitter,
  leaderElectionHealthy,
  resolveLeaderElectionOptions,
} from '../../src/kube/leader-election/elector.js';
import type { ElectionOutcome, LeaderElectionLogger, LeaderElectionOptions } from '../../src/kube/leader-election/elector.js';
import { LeaseConflictError, MicroTime, restLeaseStore, type LeaseStore } from '../../src/kube/leader-election/lease-store.js';
import { KubeApiError, type KubeClient, type RequestParams } from '../../src/kube/rest.js';
import { FakeClock, flushMicrotasks } from '../fakes/clock.js';
import { FakeApiError, FakeLeaseStore } from '../fakes/lease-store.js';

const NS = 'portico-system';
const NAME = 'portico-controller';
const TARGET = { namespace: NS, name: NAME };
const RETRY = DEFAULT_RETRY_PERIOD_MS;
const DEADLINE = DEFAULT_RENEW_DEADLINE_MS;
const LEASE = DEFAULT_LEASE_DURATION_MS;
const HOUR = 3_600_000;

/** One candidate process: an elector, what its callbacks saw, and its run() outcome. */
class Candidate {
  readonly elector: LeaderElector;
  readonly signals: AbortSignal[] = [];
  readonly abort = new AbortController();
  /** Runs inside onStoppedLeading, to look at the world at that moment. */
  onStopped: (() => void) | undefined;
  outcome: ElectionOutcome | undefined;
  done: Promise<ElectionOutcome> | undefined;

  constructor(
    readonly identity: string,
    store: LeaseStore,
    clock: Clock,
    readonly events: string[] = [],
    options: Partial<LeaderElectionOptions> = {},
    logger?: LeaderElectionLogger,
  ) {
    this.elector = new LeaderElector(
      store,
      // Most tests here are about retries: renewing every retryPeriod makes their timelines plain.
      // The default interval after a success has its own tests below.
      { identity, namespace: NS, name: NAME, random: () => 0, renewIntervalMs: RETRY, ...options },
      clock,
      {
        onStartedLeading: (signal) => {
          this.signals.push(signal);
          events.push(`${identity} started`);
        },
        onStoppedLeading: () => {
          this.onStopped?.();
          events.push(`${identity} stopped`);
        },
        onNewLeader: (leader) => {
          events.push(`${identity} sees ${leader}`);
        },
      },
      logger,
    );
  }

  start(): this {
    this.done = this.elector.run(this.abort.signal).then((outcome) => {
      this.outcome = outcome;
      return outcome;
    });
    return this;
  }

  get signal(): AbortSignal {
    const last = this.signals.at(-1);
    if (!last) throw new Error(`${this.identity} never started leading`);
    return last;
  }
}

function holder(store: FakeLeaseStore): string | undefined {
  return store.lease(NS, NAME)?.spec?.holderIdentity;
}

function spec(store: FakeLeaseStore): NonNullable<V1Lease['spec']> {
  const s = store.lease(NS, NAME)?.spec;
  if (!s) throw new Error('no lease stored');
  return s;
}

function ms(time: Date | undefined): number | undefined {
  return time === undefined ? undefined : new Date(time).getTime();
}

async function startLeader(identity = 'a'): Promise<{ clock: FakeClock; store: FakeLeaseStore; c: Candidate; t0: number }> {
  const clock = new FakeClock();
  const store = new FakeLeaseStore();
  const t0 = clock.now();
  const c = new Candidate(identity, store, clock).start();
  await clock.advance(0);
  expect(c.elector.isLeader()).toBe(true);
  return { clock, store, c, t0 };
}

/** Another candidate that keeps renewing its lease, stamping renewTime from a skewed clock. */
function keepRenewing(store: FakeLeaseStore, clock: FakeClock, identity: string, skewMs: number): () => void {
  let cancel = (): void => undefined;
  const renew = (): void => {
    store.holdAs(identity, new Date(clock.now() + skewMs), TARGET);
    cancel = clock.setTimer(renew, RETRY);
  };
  renew();
  return () => {
    cancel();
  };
}

describe('LeaderElector: acquiring', () => {
  it('creates a free lease and starts leading', async () => {
    const { store, c, t0 } = await startLeader('a');

    expect(store.calls.map((x) => `${x.op}:${x.outcome}`)).toEqual(['get:not-found', 'create:ok']);
    const s = spec(store);
    expect(s.holderIdentity).toBe('a');
    expect(s.leaseDurationSeconds).toBe(15);
    expect(s.leaseTransitions).toBe(0);
    expect(ms(s.acquireTime)).toBe(t0);
    expect(ms(s.renewTime)).toBe(t0);
    expect(c.events).toEqual(['a sees a', 'a started']);
    expect(c.signal.aborted).toBe(false);
    expect(c.elector.currentLeader()).toBe('a');
  });

  it.each([
    ['behind', -HOUR],
    ['ahead', HOUR],
  ])('does not steal a lease another candidate keeps renewing (its clock %s of ours)', async (_, skew) => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const stopOther = keepRenewing(store, clock, 'b', skew);
    const a = new Candidate('a', store, clock).start();

    await clock.advance(60_000);

    expect(a.elector.isLeader()).toBe(false);
    expect(holder(store)).toBe('b');
    expect(store.callsOf('create')).toEqual([]);
    expect(store.callsOf('replace')).toEqual([]);
    expect(store.callsOf('get').length).toBeGreaterThanOrEqual(60_000 / (RETRY * (1 + JITTER_FACTOR)));
    expect(a.events).toEqual(['a sees b']);
    stopOther();
  });

  it.each([
    ['far in the past', -HOUR],
    ['in the future', HOUR],
  ])(
    'takes over a lease whose renewTime is %s only after leaseDuration without change on our clock',
    async (_, skew) => {
      const clock = new FakeClock();
      const store = new FakeLeaseStore();
      const t0 = clock.now();
      store.holdAs('b', new Date(t0 + skew), TARGET);
      store.holdAs('c', new Date(t0 + skew), TARGET); // leaseTransitions: 1
      const versionSeen = store.lease(NS, NAME)?.metadata?.resourceVersion;
      const a = new Candidate('a', store, clock).start();

      // Attempts at t0, +2s, ... +14s: the record has not changed for less than 15s.
      await clock.advance(LEASE);
      expect(a.elector.isLeader()).toBe(false);
      expect(holder(store)).toBe('c');

      await clock.advance(RETRY / 2); // the attempt at t0 + 16s
      expect(a.elector.isLeader()).toBe(true);
      const s = spec(store);
      expect(s.holderIdentity).toBe('a');
      expect(s.leaseTransitions).toBe(2);
      expect(ms(s.acquireTime)).toBe(t0 + LEASE + RETRY / 2);
      const [takeover] = store.callsOf('replace');
      expect(takeover?.sent?.metadata?.resourceVersion).toBe(versionSeen);
      expect(a.events).toEqual(['a sees c', 'a sees a', 'a started']);
    },
  );

  it('restarts the expiry wait whenever the record changes', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    store.holdAs('b', new Date(clock.now()), TARGET);
    const a = new Candidate('a', store, clock).start();

    await clock.advance(10_000);
    store.holdAs('b', new Date(0), TARGET); // a late renewal, with a nonsense timestamp

    // Seen by the attempt at +12s, so the lease is valid until +27s (not +15s).
    await clock.advance(16_000);
    expect(a.elector.isLeader()).toBe(false);
    await clock.advance(RETRY);
    expect(a.elector.isLeader()).toBe(true);
  });

  it("uses the lease's own leaseDurationSeconds, not ours, to judge expiry", async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    store.holdAs('b', new Date(clock.now()), { ...TARGET, leaseDurationSeconds: 30 });
    const a = new Candidate('a', store, clock).start();

    await clock.advance(30_000 - 1);
    expect(a.elector.isLeader()).toBe(false);
    await clock.advance(1);
    expect(a.elector.isLeader()).toBe(true);
    expect(spec(store).leaseDurationSeconds).toBe(15);
  });

  it('renews at once a lease it still holds from before a restart, keeping acquireTime and transitions', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    store.holdAs('b', new Date(clock.now() - 60_000), TARGET);
    const before = store.holdAs('a', new Date(clock.now() - 1_000), TARGET);
    const a = new Candidate('a', store, clock).start();

    await clock.advance(0);

    expect(a.elector.isLeader()).toBe(true);
    const s = spec(store);
    expect(s.leaseTransitions).toBe(before.spec?.leaseTransitions);
    expect(ms(s.acquireTime)).toBe(ms(before.spec?.acquireTime));
    expect(ms(s.renewTime)).toBe(clock.now());
  });

  it('waits retryPeriod with client-go jitter between attempts', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const stopOther = keepRenewing(store, clock, 'b', 0);
    new Candidate('a', store, clock, [], { random: () => 0.5 }).start();
    const wait = RETRY * (1 + 0.5 * JITTER_FACTOR); // 3.2s

    // One attempt at t0, then one after each wait.
    await clock.advance(3 * wait - 1);
    expect(store.callsOf('get')).toHaveLength(3);
    await clock.advance(1);
    expect(store.callsOf('get')).toHaveLength(4);
    stopOther();
  });
});

describe('LeaderElector: leading', () => {
  it('renews every retryPeriod with the resourceVersion of its last write', async () => {
    const { clock, store, c, t0 } = await startLeader();
    const acquired = spec(store);

    await clock.advance(5 * RETRY);

    const renewals = store.callsOf('replace');
    expect(renewals.map((r) => ms(r.sent?.spec?.renewTime))).toEqual([1, 2, 3, 4, 5].map((i) => t0 + i * RETRY));
    expect(renewals.map((r) => r.outcome)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(store.callsOf('get')).toHaveLength(1); // only the initial read: renewals use the fast path
    const s = spec(store);
    expect(s.holderIdentity).toBe('a');
    expect(s.leaseTransitions).toBe(acquired.leaseTransitions);
    expect(ms(s.acquireTime)).toBe(ms(acquired.acquireTime));
    expect(c.elector.isLeader()).toBe(true);
    expect(c.signal.aborted).toBe(false);
  });

  it('by default renews every half renew deadline after a success, and every retryPeriod after a failure, losing at the same deadline', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const t0 = clock.now();
    const c = new Candidate('a', store, clock, [], { renewIntervalMs: undefined }).start();
    await clock.advance(0);
    const interval = DEADLINE / 2;
    expect(c.elector.config.renewIntervalMs).toBe(interval);

    await clock.advance(3 * interval);
    expect(store.callsOf('replace').map((r) => ms(r.sent?.spec?.renewTime))).toEqual([1, 2, 3].map((i) => t0 + i * interval));
    // Between renewals the leader may write: the write guard's margin holds for the whole interval.
    await clock.advance(interval - 1);
    expect(c.elector.holdsLease()).toBe(true);
    await clock.advance(1);
    const lastSuccess = t0 + 4 * interval;

    store.failNext('any', new FakeApiError('etcd unavailable'), Infinity);
    await clock.advance(interval + 2 * RETRY);
    const failed = store.callsOf('replace').filter((r) => r.outcome === 'error');
    expect(failed.map((r) => ms(r.sent?.spec?.renewTime))).toEqual([lastSuccess + interval, lastSuccess + interval + RETRY, lastSuccess + interval + 2 * RETRY]);
    expect(c.elector.isLeader()).toBe(true);

    await clock.advance(lastSuccess + DEADLINE - clock.now() - 1);
    expect(c.elector.isLeader()).toBe(true);
    await clock.advance(1);
    expect(c.elector.isLeader()).toBe(false);
    expect(c.outcome).toBe('lost');
  });

  it('loses leadership when renewals fail for renewDeadline after the last success', async () => {
    const { clock, store, c } = await startLeader();
    await clock.advance(RETRY); // last successful renewal at t0 + 2s
    store.failNext('any', new FakeApiError('etcd unavailable'), Infinity);

    await clock.advance(DEADLINE - 1);
    expect(c.elector.isLeader()).toBe(true);
    expect(c.signal.aborted).toBe(false);
    expect(store.callsOf('replace').filter((r) => r.outcome === 'error').length).toBeGreaterThanOrEqual(4);

    await clock.advance(1);
    expect(c.elector.isLeader()).toBe(false);
    expect(c.signal.aborted).toBe(true);
    expect(c.events.filter((e) => e === 'a stopped')).toHaveLength(1);
    expect(c.outcome).toBe('lost');
  });

  it('steps down at the deadline even while a renewal call hangs', async () => {
    const { clock, store, c, t0 } = await startLeader();
    store.hang('replace');

    await clock.advance(DEADLINE);

    expect(clock.now()).toBe(t0 + DEADLINE);
    expect(store.callsOf('replace').map((r) => r.outcome)).toEqual(['pending']);
    expect(c.elector.isLeader()).toBe(false);
    expect(c.signal.aborted).toBe(true);
    expect(c.outcome).toBe('lost');

    store.unhang();
    await clock.advance(RETRY);
    expect(c.elector.isLeader()).toBe(false);
    expect(c.events.filter((e) => e === 'a stopped')).toHaveLength(1);
  });

  it('re-reads and renews within the same attempt when the lease changed under it (409)', async () => {
    const { clock, store, c } = await startLeader();
    store.touch(NS, NAME); // e.g. someone added a label
    const touched = store.lease(NS, NAME)?.metadata?.resourceVersion;

    await clock.advance(RETRY);

    expect(store.calls.slice(2).map((x) => `${x.op}:${x.outcome}`)).toEqual(['replace:conflict', 'get:ok', 'replace:ok']);
    const [, , retried] = store.calls.slice(2);
    expect(retried?.sent?.metadata?.resourceVersion).toBe(touched);
    expect(c.elector.isLeader()).toBe(true);
  });

  it('keeps leading through an injected 409 on a renewal and renews on the next period', async () => {
    const { clock, store, c } = await startLeader();
    store.failNext('replace', new LeaseConflictError(NS, NAME, 'replace'), 2);

    await clock.advance(RETRY);
    expect(store.calls.slice(2).map((x) => `${x.op}:${x.outcome}`)).toEqual(['replace:conflict', 'get:ok', 'replace:conflict']);
    expect(c.elector.isLeader()).toBe(true);

    await clock.advance(RETRY);
    expect(store.callsOf('replace').at(-1)?.outcome).toBe('ok');
    expect(c.elector.isLeader()).toBe(true);
  });

  it('steps down at once, without writing, when it finds another holder in the lease', async () => {
    const { clock, store, c } = await startLeader();
    await clock.advance(RETRY / 2);
    store.holdAs('b', new Date(clock.now()), TARGET);

    await clock.advance(RETRY / 2);

    expect(c.elector.isLeader()).toBe(false);
    expect(c.signal.aborted).toBe(true);
    expect(c.outcome).toBe('lost');
    expect(holder(store)).toBe('b');
    expect(c.events).toEqual(['a sees a', 'a started', 'a sees b', 'a stopped']);
  });

  it('can campaign again after losing', async () => {
    const { clock, store, c } = await startLeader();
    store.partition('default');
    await clock.advance(DEADLINE);
    expect(c.outcome).toBe('lost');

    store.heal();
    c.start();
    await clock.advance(0);

    expect(c.elector.isLeader()).toBe(true);
    expect(c.signals).toHaveLength(2);
    expect(c.signals[0]?.aborted).toBe(true);
    expect(c.signal.aborted).toBe(false);
  });
});

describe('LeaderElector: retries while acquiring', () => {
  it('survives a 409 when creating and leads on a later attempt', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    store.failNext('create', new LeaseConflictError(NS, NAME, 'create'));
    const a = new Candidate('a', store, clock).start();

    await clock.advance(0);
    expect(a.elector.isLeader()).toBe(false);

    await clock.advance(RETRY);
    expect(a.elector.isLeader()).toBe(true);
    expect(store.callsOf('create').map((x) => x.outcome)).toEqual(['conflict', 'ok']);
  });

  it('survives a 409 when taking over an expired lease and takes it on the next attempt', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    store.holdAs('b', new Date(clock.now()), TARGET);
    const a = new Candidate('a', store, clock).start();
    await clock.advance(LEASE - 1);
    store.failNext('replace', new LeaseConflictError(NS, NAME, 'replace'));

    await clock.advance(RETRY);
    expect(a.elector.isLeader()).toBe(false);
    expect(store.callsOf('replace').map((x) => x.outcome)).toEqual(['conflict']);

    await clock.advance(RETRY);
    expect(a.elector.isLeader()).toBe(true);
    expect(spec(store).leaseTransitions).toBe(1);
  });

  it('keeps trying through read errors', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    store.failNext('get', new FakeApiError(), 3);
    const a = new Candidate('a', store, clock).start();

    await clock.advance(2 * RETRY);
    expect(a.elector.isLeader()).toBe(false);
    await clock.advance(RETRY);
    expect(a.elector.isLeader()).toBe(true);
  });
});

describe('LeaderElector: release', () => {
  it('stops the controller, clears the holder, then calls onStoppedLeading', async () => {
    const { clock, store, c } = await startLeader();
    await clock.advance(RETRY);
    const before = store.lease(NS, NAME);
    let holderWhenSignalled: string | undefined;
    c.signal.addEventListener('abort', () => {
      holderWhenSignalled = holder(store);
    });
    let holderWhenStopped: string | undefined;
    c.onStopped = () => {
      holderWhenStopped = holder(store);
    };

    c.abort.abort();
    await clock.advance(0);

    expect(holderWhenSignalled).toBe('a');
    expect(holderWhenStopped).toBe('');
    const s = spec(store);
    expect(s.holderIdentity).toBe('');
    expect(s.leaseDurationSeconds).toBe(1);
    expect(s.leaseTransitions).toBe(before?.spec?.leaseTransitions);
    expect(store.callsOf('replace').at(-1)?.sent?.metadata?.resourceVersion).toBe(before?.metadata?.resourceVersion);
    expect(c.elector.isLeader()).toBe(false);
    expect(c.outcome).toBe('stopped');
    expect(c.events.filter((e) => e === 'a stopped')).toHaveLength(1);
  });

  it('release() resolves once the lease is handed back', async () => {
    const { store, c } = await startLeader();

    await c.elector.release();

    expect(holder(store)).toBe('');
    expect(c.outcome).toBe('stopped');
  });

  it('re-reads and retries when the release write conflicts', async () => {
    const { clock, store, c } = await startLeader();
    store.touch(NS, NAME);

    c.abort.abort();
    await clock.advance(0);

    expect(store.calls.slice(2).map((x) => `${x.op}:${x.outcome}`)).toEqual(['replace:conflict', 'get:ok', 'replace:ok']);
    expect(holder(store)).toBe('');
  });

  it('does not write when it never led', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const stopOther = keepRenewing(store, clock, 'b', 0);
    const a = new Candidate('a', store, clock).start();
    await clock.advance(RETRY);

    a.abort.abort();
    await clock.advance(0);

    expect(a.outcome).toBe('stopped');
    expect(store.callsOf('replace')).toEqual([]);
    expect(holder(store)).toBe('b');
    expect(a.events).toEqual(['a sees b']);
    stopOther();
  });

  it('gives up on a hung release after renewDeadline and still reports stopped', async () => {
    const { clock, store, c } = await startLeader();
    store.hang('replace');

    c.abort.abort();
    await clock.advance(DEADLINE - 1);
    expect(c.events).not.toContain('a stopped');
    expect(c.signal.aborted).toBe(true);

    await clock.advance(1);
    expect(c.events).toContain('a stopped');
    expect(c.outcome).toBe('stopped');
    store.unhang();
  });

  it('hands back a lease it won just as it was asked to stop, without starting', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    store.hang('create');
    const a = new Candidate('a', store, clock).start();
    await clock.advance(0);

    a.abort.abort();
    store.unhang();
    await clock.advance(0);

    expect(a.outcome).toBe('stopped');
    expect(a.signals).toEqual([]);
    expect(holder(store)).toBe('');
  });

  it('rejects a second concurrent run', async () => {
    const { c } = await startLeader();
    await expect(c.elector.run(new AbortController().signal)).rejects.toThrow(/already running/);
  });
});

describe('LeaderElector: two candidates on one lease', () => {
  function leaders(...cs: Candidate[]): string[] {
    return cs.filter((c) => c.elector.isLeader()).map((c) => c.identity);
  }

  it('exactly one leads, and the other takes over within retryPeriod * 1.2 of a release', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const events: string[] = [];
    const a = new Candidate('a', store.client('a'), clock, events, { random: () => 0.1 }).start();
    const b = new Candidate('b', store.client('b'), clock, events, { random: () => 0.15 }).start();

    // Both start in the same tick: both read "no lease", one create wins, the other gets a 409.
    await clock.advance(0);
    expect(store.callsOf('create').map((x) => x.outcome).sort()).toEqual(['conflict', 'ok']);
    for (let t = 0; t < 60_000; t += 250) {
      expect(leaders(a, b)).toHaveLength(1);
      expect(holder(store)).toBe(leaders(a, b)[0]);
      await clock.advance(250);
    }

    const [leader, follower] = a.elector.isLeader() ? [a, b] : [b, a];
    leader.abort.abort();
    await clock.advance(0);
    expect(leaders(a, b)).toEqual([]);
    expect(holder(store)).toBe('');

    let waited = 0;
    while (!follower.elector.isLeader() && waited < RETRY * (1 + JITTER_FACTOR)) {
      await clock.advance(50);
      waited += 50;
      expect(leaders(a, b).length).toBeLessThanOrEqual(1);
    }
    expect(follower.elector.isLeader()).toBe(true);
    expect(waited).toBeLessThanOrEqual(RETRY * 1.2);
    expect(spec(store).leaseTransitions).toBe(1);
    expect(events.indexOf(`${leader.identity} stopped`)).toBeLessThan(events.indexOf(`${follower.identity} started`));
    expect(leader.outcome).toBe('stopped');
  });

  it('a partitioned leader stops before the other candidate takes over', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const events: string[] = [];
    const a = new Candidate('a', store.client('a'), clock, events).start();
    await clock.advance(0);
    const b = new Candidate('b', store.client('b'), clock, events, { random: () => 0.5 }).start();
    await clock.advance(10_000);
    expect(leaders(a, b)).toEqual(['a']);

    store.partition('a');
    let aStoppedAt: number | undefined;
    let bStartedAt: number | undefined;
    for (let t = 0; t < 40_000; t += 100) {
      await clock.advance(100);
      expect(leaders(a, b).length).toBeLessThanOrEqual(1);
      if (aStoppedAt === undefined && !a.elector.isLeader()) aStoppedAt = clock.now();
      if (bStartedAt === undefined && b.elector.isLeader()) bStartedAt = clock.now();
    }

    expect(aStoppedAt).toBeDefined();
    expect(bStartedAt).toBeDefined();
    // b waits a full leaseDuration from the last change it saw, a stops renewDeadline after its last write.
    expect((bStartedAt ?? 0) - (aStoppedAt ?? 0)).toBeGreaterThanOrEqual(LEASE - DEADLINE);
    expect(a.outcome).toBe('lost');
    expect(holder(store)).toBe('b');
    expect(spec(store).leaseTransitions).toBe(1);
    expect(events.indexOf('a stopped')).toBeLessThan(events.indexOf('b started'));
  });
});

describe('LeaderElector: health', () => {
  it('is healthy when not leading and while renewing', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const stopOther = keepRenewing(store, clock, 'b', 0);
    const a = new Candidate('a', store, clock).start();
    const check = leaderElectionHealthy(a.elector);
    await clock.advance(LEASE * 3);
    expect(a.elector.isLeader()).toBe(false);
    expect(check()).toBe(true);
    stopOther();

    const { clock: clock2, c } = await startLeader();
    await clock2.advance(LEASE * 3);
    expect(leaderElectionHealthy(c.elector)()).toBe(true);
    expect(leaderElectionHealthy(undefined)()).toBe(true);
  });

  it('turns unhealthy when a leader that cannot renew has not stepped down', async () => {
    const fake = new FakeClock();
    // Timers that never fire, and sleeps that stop returning once it leads, stand in for a
    // step-down that never happens (e.g. a starved event loop).
    let starved = false;
    const stuck: Clock = {
      now: () => fake.now(),
      sleep: (delay, signal) => (starved ? new Promise<void>(() => undefined) : fake.sleep(delay, signal)),
      setTimer: () => () => undefined,
    };
    const store = new FakeLeaseStore();
    const c = new Candidate('a', store, stuck).start();
    await fake.advance(0);
    expect(c.elector.isLeader()).toBe(true);
    starved = true;
    store.failNext('any', new FakeApiError(), Infinity);
    const check = leaderElectionHealthy(c.elector, 1_000);

    await fake.advance(LEASE + 1_000);
    expect(c.elector.isLeader()).toBe(true);
    expect(check()).toBe(true);

    await fake.advance(1);
    expect(check()).toBe(false);
  });
});

describe('LeaderElector: callbacks and logging', () => {
  it('reports each new holder once to onNewLeader', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    store.holdAs('b', new Date(clock.now()), TARGET);
    const a = new Candidate('a', store, clock).start();
    await clock.advance(RETRY * 3);
    store.holdAs('c', new Date(clock.now()), TARGET);
    await clock.advance(RETRY * 3);

    expect(a.events).toEqual(['a sees b', 'a sees c']);
    expect(a.elector.currentLeader()).toBe('c');
  });

  it('accepts a pino logger and keeps going when a callback throws', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    const lines: string[] = [];
    const logger: LeaderElectionLogger = pino(
      { level: 'debug' },
      {
        write: (line: string) => {
          lines.push(line);
        },
      },
    );
    const elector = new LeaderElector(
      store,
      { identity: 'a', namespace: NS, name: NAME },
      clock,
      {
        onStartedLeading: () => undefined,
        onStoppedLeading: () => undefined,
        onNewLeader: () => {
          throw new Error('observer broke');
        },
      },
      logger,
    );
    const abort = new AbortController();
    const done = elector.run(abort.signal);
    await clock.advance(0);
    expect(elector.isLeader()).toBe(true);

    abort.abort();
    await expect(done).resolves.toBe('stopped');
    const messages = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(messages).toContain('became leader');
    expect(messages).toContain('onNewLeader threw');
    expect(messages).toContain('released the lease');
  });

  it('releases and rethrows when onStartedLeading throws', async () => {
    const clock = new FakeClock();
    const store = new FakeLeaseStore();
    let stopped = 0;
    const elector = new LeaderElector(store, { identity: 'a', namespace: NS, name: NAME }, clock, {
      onStartedLeading: () => {
        throw new Error('controller failed to start');
      },
      onStoppedLeading: () => {
        stopped += 1;
      },
    });

    await expect(elector.run(new AbortController().signal)).rejects.toThrow('controller failed to start');
    expect(elector.isLeader()).toBe(false);
    expect(holder(store)).toBe('');
    expect(stopped).toBe(1);
  });
});

describe('resolveLeaderElectionOptions', () => {
  const base = { identity: 'a', namespace: NS, name: NAME };

  it('fills client-go defaults', () => {
    const config = resolveLeaderElectionOptions(base);
    expect(config).toMatchObject({ leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, renewIntervalMs: 5_000 });
    // Never more often than the retry period, never as long as the renew deadline.
    expect(resolveLeaderElectionOptions({ identity: 'a', namespace: NS, name: NAME, leaseDurationMs: 3_000, renewDeadlineMs: 2_500, retryPeriodMs: 2_000 }).renewIntervalMs).toBe(2_000);
    expect(() => resolveLeaderElectionOptions({ identity: 'a', namespace: NS, name: NAME, renewIntervalMs: 10_000 })).toThrow(/renewIntervalMs/);
    expect(config.random).toBe(Math.random);
  });

  it.each<[string, Partial<LeaderElectionOptions>, string]>([
    ['empty identity', { identity: '' }, 'identity'],
    ['empty namespace', { namespace: '' }, 'namespace'],
    ['empty name', { name: '' }, 'name'],
    ['leaseDuration equal to renewDeadline', { leaseDurationMs: 10_000 }, 'leaseDurationMs'],
    ['leaseDuration below renewDeadline', { leaseDurationMs: 8_000 }, 'leaseDurationMs'],
    ['leaseDuration not whole seconds', { leaseDurationMs: 15_500 }, 'leaseDurationMs'],
    ['renewDeadline not above retryPeriod * 1.2', { renewDeadlineMs: 2_400 }, 'renewDeadlineMs'],
    ['renewDeadline below retryPeriod', { renewDeadlineMs: 1_000 }, 'renewDeadlineMs'],
    ['zero retryPeriod', { retryPeriodMs: 0 }, 'retryPeriodMs'],
    ['fractional retryPeriod', { retryPeriodMs: 1.5 }, 'retryPeriodMs'],
    ['NaN renewDeadline', { renewDeadlineMs: Number.NaN }, 'renewDeadlineMs'],
  ])('rejects %s', (_, override, field) => {
    expect(() => resolveLeaderElectionOptions({ ...base, ...override })).toThrow(LeaderElectionConfigError);
    try {
      resolveLeaderElectionOptions({ ...base, ...override });
    } catch (err) {
      expect((err as LeaderElectionConfigError).field).toBe(field);
    }
  });

  it('accepts the tightest valid ordering and the constructor validates too', () => {
    expect(() =>
      resolveLeaderElectionOptions({ ...base, leaseDurationMs: 3_000, renewDeadlineMs: 2_401, retryPeriodMs: 2_000 }),
    ).not.toThrow();
    expect(
      () =>
        new LeaderElector(new FakeLeaseStore(), { ...base, renewDeadlineMs: 20_000 }, new FakeClock(), {
          onStartedLeading: () => undefined,
          onStoppedLeading: () => undefined,
        }),
    ).toThrow(LeaderElectionConfigError);
  });
});

describe('jitter', () => {
  it('waits between duration and duration * (1 + factor), like wait.Jitter', () => {
    expect(jitter(2_000, JITTER_FACTOR, () => 0)).toBe(2_000);
    expect(jitter(2_000, JITTER_FACTOR, () => 0.5)).toBe(3_200);
    expect(jitter(2_000, JITTER_FACTOR, () => 0.999)).toBeLessThan(2_000 * 2.2);
  });
});

describe('restLeaseStore', () => {
  interface Sent {
    method: string;
    path: string;
    body?: V1Lease;
    timeoutMs?: number;
  }

  function clientReturning(respond: (method: string) => unknown): { client: KubeClient; sent: Sent[] } {
    const sent: Sent[] = [];
    const client: KubeClient = {
      request: <T>(method: string, path: string, params: RequestParams = {}): Promise<T> => {
        sent.push({ method, path, body: params.body as V1Lease | undefined, timeoutMs: params.timeoutMs });
        const r = respond(method);
        return r instanceof Error ? Promise.reject(r) : Promise.resolve(JSON.parse(JSON.stringify(r)) as T);
      },
      watch: () => Promise.reject(new Error('no watch')),
    };
    return { client, sent };
  }

  const apiError = (code: number): KubeApiError => new KubeApiError(code, 'X', `HTTP ${String(code)}`);
  const lease = (resourceVersion?: string, spec: object = { holderIdentity: 'a' }): V1Lease =>
    Object.assign(new V1Lease(), {
      metadata: Object.assign(new V1ObjectMeta(), { namespace: NS, name: NAME, resourceVersion }),
      spec: Object.assign(new V1LeaseSpec(), spec),
    });

  it('maps 404 on read to undefined and rethrows other errors', async () => {
    await expect(restLeaseStore(clientReturning(() => apiError(404)).client, 1_000).get(NS, NAME)).resolves.toBeUndefined();
    await expect(restLeaseStore(clientReturning(() => apiError(403)).client, 1_000).get(NS, NAME)).rejects.toMatchObject({ status: 403 });
  });

  it('maps 409 on create and replace to LeaseConflictError', async () => {
    const store = restLeaseStore(clientReturning(() => apiError(409)).client, 1_000);
    await expect(store.create(lease())).rejects.toMatchObject({ name: 'LeaseConflictError', operation: 'create' });
    await expect(store.replace(lease('7'))).rejects.toBeInstanceOf(LeaseConflictError);
  });

  it('refuses to replace without a resourceVersion', async () => {
    const { client, sent } = clientReturning(() => lease('8'));
    await expect(restLeaseStore(client, 1_000).replace(lease())).rejects.toThrow(/resourceVersion/);
    expect(sent).toEqual([]);
  });

  it('bounds every call with the timeout and uses the Lease paths', async () => {
    const { client, sent } = clientReturning(() => lease('9'));
    const store = restLeaseStore(client, 2_500);
    await store.get(NS, NAME);
    await store.create(lease());
    await store.replace(lease('8'));
    expect(sent.map((s) => [s.method, s.path, s.timeoutMs])).toEqual([
      ['GET', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${NAME}`, 2_500],
      ['POST', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`, 2_500],
      ['PUT', `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${NAME}`, 2_500],
    ]);
  });

  it('sends MicroTime with microseconds and reads string times back as MicroTime', async () => {
    const { client, sent } = clientReturning(() => lease('9', { renewTime: '2023-11-14T22:13:20.123456Z' }));
    const store = restLeaseStore(client, 1_000);
    // A plain Date would go out with milliseconds only, which the API server rejects for MicroTime.
    const written = await store.replace(lease('8', { renewTime: new Date(1_700_000_000_123) }));
    expect(JSON.stringify(sent[0]?.body?.spec?.renewTime)).toBe('"2023-11-14T22:13:20.123000Z"');
    expect(written.spec?.renewTime).toBeInstanceOf(MicroTime);
    expect(written.spec?.renewTime?.getTime()).toBe(Date.parse('2023-11-14T22:13:20.123Z'));
  });
});

describe('FakeLeaseStore', () => {
  it('rejects a replace with a stale resourceVersion, like the API server', async () => {
    const store = new FakeLeaseStore();
    const first = store.holdAs('b', new Date(0), TARGET);
    store.touch(NS, NAME);
    await expect(store.replace(first)).rejects.toBeInstanceOf(LeaseConflictError);
    await flushMicrotasks();
    expect(store.calls.map((c) => c.outcome)).toEqual(['conflict']);
  });
});
