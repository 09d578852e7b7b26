import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { createLogger, lazyChild } from '../../src/kube/logger.js';

function capture(): { lines: () => Record<string, unknown>[]; stream: Writable } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('createLogger', () => {
  it('blanks credentials wherever they appear in a line', () => {
    const out = capture();
    const log = createLogger('info', out.stream);
    log.info({ token: 'secret-1', request: { headers: { authorization: 'Bearer secret-2' } }, aws: { secretAccessKey: 'secret-3' } }, 'call');
    const text = JSON.stringify(out.lines());
    expect(text).not.toMatch(/secret-\d/);
    expect(out.lines()[0]).toMatchObject({ token: '[redacted]', aws: { secretAccessKey: '[redacted]' } });
  });
});

describe('lazyChild', () => {
  it('makes no pino child until it is used', () => {
    const log = createLogger('info', capture().stream);
    const child = vi.spyOn(log, 'child');
    const lazy = lazyChild(log, { service: 'ns/a' });
    expect(child).not.toHaveBeenCalled();
    lazy.debug('first use');
    expect(child).toHaveBeenCalledTimes(1);
    lazy.info('again');
    expect(child).toHaveBeenCalledTimes(1);
  });

  it('logs with its bindings, and a child of it with both', () => {
    const out = capture();
    const log = createLogger('info', out.stream);
    const lazy = lazyChild(log, { service: 'ns/a' });
    lazy.info({ n: 1 }, 'one');
    lazyChild(lazy, { provider: 'portico.dev/l2' }).warn('two');
    lazy.child({ attempt: 2 }).error({ token: 'secret' }, 'three');
    expect(out.lines().map(({ service, provider, attempt, token, msg, n }) => ({ service, provider, attempt, token, msg, n }))).toEqual([
      { service: 'ns/a', provider: undefined, attempt: undefined, token: undefined, msg: 'one', n: 1 },
      { service: 'ns/a', provider: 'portico.dev/l2', attempt: undefined, token: undefined, msg: 'two', n: undefined },
      { service: 'ns/a', provider: undefined, attempt: 2, token: '[redacted]', msg: 'three', n: undefined },
    ]);
    expect(lazy.isLevelEnabled('debug')).toBe(false);
    expect(lazy.level).toBe('info');
  });
});
