import { describe, expect, it } from 'vitest';
import { WriteExpectations } from '../../src/kube/expectations.js';
import { FakeClock } from '../fakes/clock.js';

describe('WriteExpectations', () => {
  const setup = (): { clock: FakeClock; exp: WriteExpectations; foreign: string[] } => {
    const clock = new FakeClock();
    const foreign: string[] = [];
    return { clock, exp: new WriteExpectations(clock, 10_000, (key) => foreign.push(key)), foreign };
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

  it('knows an event that arrives while its write is in flight as ours once the write answers', () => {
    const { exp, foreign } = setup();
    exp.writing('ns/a');
    expect(exp.delivered('ns/a', '7')).toBe('undecided');
    exp.wrote('ns/a', '7');
    expect(foreign).toEqual([]);
    expect(exp.staleFor('ns/a')).toBe(0);
    // The next write, answered first, is waited for as before.
    exp.writing('ns/a');
    exp.wrote('ns/a', '8');
    expect(exp.staleFor('ns/a')).toBe(10_000);
    expect(exp.delivered('ns/a', '8')).toBe('resume');
    expect(foreign).toEqual([]);
  });

  it.each([
    { case: 'someone else wrote before our write answered', delivered: ['6', '7'], answer: '7' },
    { case: 'someone else wrote after our write, both events first', delivered: ['7', '8'], answer: '7' },
    { case: 'our write failed or had nothing to write', delivered: ['6'], answer: undefined },
  ])('reports a version delivered during the write that was not its own as foreign, once it answers: $case', ({ delivered, answer }) => {
    const { exp, foreign } = setup();
    exp.writing('ns/a');
    for (const version of delivered) expect(exp.delivered('ns/a', version)).toBe('undecided');
    expect(foreign).toEqual([]);
    exp.wrote('ns/a', answer);
    expect(foreign).toEqual(['ns/a']);
    // Decided once: a later write of ours does not report it again.
    exp.writing('ns/a');
    exp.wrote('ns/a', '9');
    expect(foreign).toEqual(['ns/a']);
  });

  it('does not wait for a write whose object was deleted while it was in flight', () => {
    const { exp, foreign } = setup();
    exp.writing('ns/a');
    exp.forget('ns/a');
    exp.wrote('ns/a', undefined);
    expect(exp.staleFor('ns/a')).toBe(0);
    expect(exp.delivered('ns/a', '3')).toBe('foreign');
    expect(foreign).toEqual([]);
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
