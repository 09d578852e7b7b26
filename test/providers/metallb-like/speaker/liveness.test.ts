import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../../fakes/clock.js';
import { freePorts } from '../../../../hack/control-plane.js';
import { eventually } from '../../../support/kube.js';
import { LeaseView, microTime, PeerProber, type LeaseLike } from '../../../../src/providers/metallb-like/speaker/liveness.js';

const logger = pino({ level: 'silent' });

function lease(node: string, renewMs: number, options: { holder?: string | null; durationS?: number } = {}): LeaseLike {
  return {
    metadata: { name: `portico-speaker-${node}` },
    spec: { holderIdentity: options.holder === undefined ? node : options.holder, leaseDurationSeconds: options.durationS ?? 30, renewTime: microTime(renewMs) },
  };
}

describe('LeaseView', () => {
  it.each<[string, (clock: FakeClock, view: LeaseView) => Promise<void> | void, boolean]>([
    ['live right after a renewal', (c, v) => v.observe(lease('n1', c.now())), true],
    ['dead once the duration passes without renewal', async (c, v) => {
      v.observe(lease('n1', c.now()));
      await c.advance(30_001);
    }, false],
    ['live again after a later renewal', async (c, v) => {
      v.observe(lease('n1', c.now()));
      await c.advance(25_000);
      v.observe(lease('n1', c.now()));
      await c.advance(25_000);
    }, true],
    ['a lease long expired is not believed when first seen', (c, v) => v.observe(lease('n1', c.now() - 120_000)), false],
    ['a lease held by someone else does not count', (c, v) => v.observe(lease('n1', c.now(), { holder: 'other' })), false],
    ['a released lease (no holder) does not count', (c, v) => v.observe(lease('n1', c.now(), { holder: null })), false],
    ['a deleted lease does not count', (c, v) => {
      v.observe(lease('n1', c.now()));
      v.forget(lease('n1', c.now()));
    }, false],
    ['renewal time is counted from when it was seen: a writer clock ahead by 3 s gains nothing', async (c, v) => {
      v.observe(lease('n1', c.now() + 3_000));
      await c.advance(30_001);
    }, false],
  ])('%s', async (_, act, live) => {
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const view = new LeaseView(clock);
    await act(clock, view);
    expect(view.isLive('n1')).toBe(live);
  });

  it('reports when the next lease runs out', async () => {
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const view = new LeaseView(clock);
    view.observe(lease('n1', clock.now(), { durationS: 30 }));
    await clock.advance(10_000);
    view.observe(lease('n2', clock.now(), { durationS: 30 }));
    expect(view.nextExpiryMs()).toBe(20_000);
  });
});

describe('PeerProber (UDP on loopback)', () => {
  const started: PeerProber[] = [];
  afterEach(() => {
    for (const p of started.splice(0)) p.stop();
  });

  async function pair(): Promise<{ clock: FakeClock; watcher: PeerProber; announcer: PeerProber; changes: number[] }> {
    const [watcherPort = 0, announcerPort = 0] = await freePorts(2);
    const clock = new FakeClock();
    const changes: number[] = [];
    const common = { intervalMs: 100, timeoutMs: 600, clock, logger, bindAddress: '::' };
    const announcer = new PeerProber({ ...common, self: 'announcer', port: announcerPort, peerPort: watcherPort, onChange: () => undefined });
    const watcher = new PeerProber({ ...common, self: 'watcher', port: watcherPort, peerPort: announcerPort, onChange: () => changes.push(clock.now()) });
    await announcer.start();
    await watcher.start();
    started.push(announcer, watcher);
    watcher.setTargets(new Map([['announcer', '127.0.0.1']]));
    return { clock, watcher, announcer, changes };
  }

  /** One probe round: time moves on, and the real datagrams get a moment to travel. */
  async function round(clock: FakeClock): Promise<void> {
    await clock.advance(100);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }

  it('keeps a peer that answers alive', async () => {
    const { clock, watcher } = await pair();
    for (let i = 0; i < 15; i++) await round(clock);
    expect(watcher.isAlive('announcer')).toBe(true);
  });

  it('declares a silent peer dead after the timeout, and alive again when it answers', async () => {
    const { clock, watcher, announcer, changes } = await pair();
    await round(clock);
    // Up but not answering (e.g. it lost its Lease, or its link is down): silence.
    announcer.setAnswering(false);
    for (let i = 0; i < 5; i++) await round(clock);
    expect(watcher.isAlive('announcer')).toBe(true); // 500 ms of silence: not yet
    for (let i = 0; i < 3; i++) await round(clock);
    expect(watcher.isAlive('announcer')).toBe(false);
    expect(changes).toHaveLength(1);
    announcer.setAnswering(true);
    await eventually(async () => {
      await round(clock);
      return watcher.isAlive('announcer') ? true : undefined;
    }, 'the peer to be alive again', 5_000, 1);
    expect(changes).toHaveLength(2);
  });

  it('takes a refused probe (no speaker on the port) as death at once, without waiting for the timeout', async () => {
    const { clock, watcher, announcer, changes } = await pair();
    await round(clock);
    const stoppedAt = clock.now();
    announcer.stop();
    await eventually(async () => {
      await round(clock);
      return watcher.isAlive('announcer') ? undefined : true;
    }, 'the refusal to be noticed', 5_000, 1);
    expect(changes).toHaveLength(1);
    // Noticed at the first probe after the stop, well before 600 ms of silence could.
    expect((changes[0] ?? Infinity) - stoppedAt).toBeLessThan(600);
  });

  it('takes a goodbye as death at once', async () => {
    const { clock, watcher, announcer } = await pair();
    await eventually(async () => {
      await round(clock);
      return announcer.probers.size > 0 ? true : undefined;
    }, 'the watcher to have probed', 5_000, 1);
    await announcer.sayGoodbye(announcer.probers.keys());
    announcer.stop();
    await eventually(() => (watcher.isAlive('announcer') ? undefined : true), 'the goodbye to arrive', 5_000, 5);
  });

  it('does not judge peers it was not asked to probe', async () => {
    const { watcher } = await pair();
    expect(watcher.isAlive('somebody-else')).toBe(true);
  });
});
