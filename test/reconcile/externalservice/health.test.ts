import { describe, expect, it } from 'vitest';
import { HealthMonitor, INITIAL_HEALTH, isReady, nextHealth, type HealthState, type Prober } from '../../../src/reconcile/externalservice/health.js';
import { FakeClock } from '../../fakes/clock.js';
import { HEALTH } from './builders.js';

function run(results: boolean[], thresholds = { healthyThreshold: 2, unhealthyThreshold: 3 }): boolean[] {
  let state: HealthState = INITIAL_HEALTH;
  return results.map((ok) => {
    state = nextHealth(state, ok, thresholds);
    return isReady(state);
  });
}

describe('nextHealth', () => {
  it.each([
    ['unknown is ready until the first probe; the first result decides', [false], [false]],
    ['a healthy address needs 3 failures in a row to go not ready', [true, false, false, false], [true, true, true, false]],
    ['a success resets the failure count', [true, false, false, true, false, false], [true, true, true, true, true, true]],
    ['an unhealthy address needs 2 successes in a row to be ready again', [false, true, true], [false, false, true]],
    ['a failure resets the success count', [false, true, false, true], [false, false, false, false]],
  ])('%s', (_, results, ready) => {
    expect(run(results)).toEqual(ready);
  });

  it('with thresholds of 1 follows every probe', () => {
    expect(run([true, false, true, false], { healthyThreshold: 1, unhealthyThreshold: 1 })).toEqual([true, false, true, false]);
  });
});

class ScriptedProber implements Prober {
  up = new Map<string, boolean>();
  inflight = 0;
  maxInflight = 0;
  probes = 0;
  release: (() => void)[] = [];
  hold = false;

  async probe(target: { address: string }): Promise<boolean> {
    this.probes++;
    this.inflight++;
    this.maxInflight = Math.max(this.maxInflight, this.inflight);
    if (this.hold) await new Promise<void>((r) => this.release.push(r));
    this.inflight--;
    return this.up.get(target.address) ?? true;
  }
}

describe('HealthMonitor', () => {
  it('flips an address not ready within interval x threshold and back, confirming a change at a quarter of the interval', async () => {
    const clock = new FakeClock();
    const prober = new ScriptedProber();
    const changed: string[] = [];
    const monitor = new HealthMonitor({ prober, clock, concurrency: 4, onChange: (k) => changed.push(k), random: () => 0 });
    monitor.set('team/db', HEALTH, [{ address: '198.51.100.1' }, { address: '198.51.100.2' }]);
    await clock.advance(0);
    expect(monitor.ready('team/db', '198.51.100.1')).toBe(true);
    const probesBefore = prober.probes;
    prober.up.set('198.51.100.1', false);
    // First failure at the next interval; the two confirming ones follow every interval / 4.
    await clock.advance(HEALTH.intervalMs + HEALTH.intervalMs / 4);
    expect(monitor.ready('team/db', '198.51.100.1')).toBe(true);
    await clock.advance(HEALTH.intervalMs / 4);
    expect(monitor.ready('team/db', '198.51.100.1')).toBe(false);
    expect(clock.now() - 1_000_000).toBeLessThanOrEqual(HEALTH.intervalMs * HEALTH.unhealthyThreshold);
    expect(monitor.ready('team/db', '198.51.100.2')).toBe(true);
    expect(changed).toEqual(['team/db']);
    // Confirmed: back to the normal interval (one probe per address per interval).
    const probesAtChange = prober.probes;
    await clock.advance(HEALTH.intervalMs);
    expect(prober.probes - probesAtChange).toBe(2);
    expect(probesAtChange - probesBefore).toBe(2 + 2); // both at the interval, then two confirmations
    prober.up.set('198.51.100.1', true);
    await clock.advance(HEALTH.intervalMs + HEALTH.intervalMs / 4);
    expect(monitor.ready('team/db', '198.51.100.1')).toBe(true);
    expect(changed).toEqual(['team/db', 'team/db']);
    monitor.stop();
  });

  it('returns to the normal interval when a change is not confirmed', async () => {
    const clock = new FakeClock();
    const prober = new ScriptedProber();
    const monitor = new HealthMonitor({ prober, clock, concurrency: 4, onChange: () => undefined, random: () => 0 });
    monitor.set('k', HEALTH, [{ address: '198.51.100.1' }]);
    await clock.advance(0);
    prober.up.set('198.51.100.1', false);
    await clock.advance(HEALTH.intervalMs); // one failure
    prober.up.set('198.51.100.1', true);
    await clock.advance(HEALTH.intervalMs / 4); // a success ends the streak
    const probes = prober.probes;
    await clock.advance(HEALTH.intervalMs - 1);
    expect(prober.probes).toBe(probes);
    expect(monitor.ready('k', '198.51.100.1')).toBe(true);
    monitor.stop();
  });

  it('keeps at most `concurrency` probes in flight', async () => {
    const clock = new FakeClock();
    const prober = new ScriptedProber();
    prober.hold = true;
    const monitor = new HealthMonitor({ prober, clock, concurrency: 3, onChange: () => undefined, random: () => 0 });
    monitor.set('team/many', HEALTH, Array.from({ length: 10 }, (_, i) => ({ address: `198.51.100.${String(i + 1)}` })));
    await clock.advance(0);
    expect(prober.inflight).toBe(3);
    while (prober.release.length > 0) {
      for (const r of prober.release.splice(0)) r();
      await clock.advance(0);
    }
    expect(prober.maxInflight).toBe(3);
    expect(prober.probes).toBe(10);
    monitor.stop();
  });

  it('stops probing addresses that are no longer wanted, and keeps state for those that stay', async () => {
    const clock = new FakeClock();
    const prober = new ScriptedProber();
    prober.up.set('198.51.100.1', false);
    const monitor = new HealthMonitor({ prober, clock, concurrency: 4, onChange: () => undefined, random: () => 0 });
    monitor.set('k', HEALTH, [{ address: '198.51.100.1' }, { address: '198.51.100.2' }]);
    await clock.advance(0);
    expect(monitor.ready('k', '198.51.100.1')).toBe(false);
    monitor.set('k', HEALTH, [{ address: '198.51.100.1' }]);
    expect(monitor.ready('k', '198.51.100.1')).toBe(false);
    expect(monitor.targets()).toBe(1);
    monitor.forget('k');
    expect(monitor.targets()).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });
});
