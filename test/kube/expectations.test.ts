import { describe, expect, it } from 'vitest';
import { WriteExpectations } from '../../src/kube/expectations.js';
import { FakeClock } from '../fakes/clock.js';

describe('WriteExpectations', () => {
  const setup = (): { clock: FakeClock; exp: WriteExpectations } => {
    const clock = new FakeClock();
    return { clock, exp: new WriteExpectations(clock, 10_000) };
  };

  it('treats a foreign change as work and our own writes as nothing new', () => {
    const { exp } = setup();
    expect(exp.delivered('ns/a', '1')).toBe('foreign');
    exp.wrote('ns/a', '2');
    exp.wrote('ns/a', '3');
    expect(exp.staleFor('ns/a')).toBe(10_000);
    expect(exp.delivered('ns/a', '2')).toBe('own');
    // The reconcile held back while waiting resumes when the last pending write arrives.
    expect(exp.delivered('ns/a', '3')).toBe('resume');
    expect(exp.staleFor('ns/a')).toBe(0);
  });

  it('does not resume when no reconcile was held back', () => {
    const { exp } = setup();
    exp.wrote('ns/a', '5');
    expect(exp.delivered('ns/a', '5')).toBe('own');
    expect(exp.staleFor('ns/a')).toBe(0);
  });

  it('ignores a write whose event already arrived before its response', () => {
    const { exp } = setup();
    expect(exp.delivered('ns/a', '7')).toBe('foreign');
    exp.wrote('ns/a', '7');
    expect(exp.staleFor('ns/a')).toBe(0);
  });

  it('a foreign change between our writes is still work', () => {
    const { exp } = setup();
    exp.wrote('ns/a', '2');
    expect(exp.delivered('ns/a', '3')).toBe('foreign');
    expect(exp.staleFor('ns/a')).toBeGreaterThan(0);
    expect(exp.delivered('ns/a', '2')).toBe('resume');
  });

  it('stops waiting for a lost event after the timeout', async () => {
    const { clock, exp } = setup();
    exp.wrote('ns/a', '2');
    await clock.advance(4_000);
    expect(exp.staleFor('ns/a')).toBe(6_000);
    await clock.advance(6_000);
    expect(exp.staleFor('ns/a')).toBe(0);
    expect(exp.delivered('ns/a', '2')).toBe('foreign');
  });

  it('keeps keys apart and forgets deleted ones', () => {
    const { exp } = setup();
    exp.wrote('ns/a', '2');
    expect(exp.staleFor('ns/b')).toBe(0);
    exp.forget('ns/a');
    expect(exp.staleFor('ns/a')).toBe(0);
  });
});
