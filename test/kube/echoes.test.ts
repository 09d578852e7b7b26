import { describe, expect, it } from 'vitest';
import { MAX_AGE_MS, MAX_KEPT, WriteEchoes } from '../../src/kube/echoes.js';

function service(uid: string, resourceVersion: string, extra: Record<string, unknown> = {}): { kind: string; apiVersion: string; metadata: Record<string, unknown> } {
  return { kind: 'Service', apiVersion: 'v1', metadata: { name: 'web', namespace: 'shop', uid, resourceVersion, ...extra } };
}

/** A watch line as the API server writes it: type first, then the object, metadata first. */
function line(type: string, object: unknown): string {
  return JSON.stringify({ type, object });
}

describe('WriteEchoes', () => {
  const answer = service('u-1', '100');

  it.each([
    ['the echo of a kept answer', line('MODIFIED', service('u-1', '100')), 'MODIFIED'],
    ['a create coming back as ADDED', line('ADDED', service('u-1', '100')), 'ADDED'],
  ])('hands back the kept answer itself for %s', (_name, raw, type) => {
    const echoes = new WriteEchoes(() => 0);
    echoes.remember(answer);
    const event = echoes.take(raw);
    expect(event?.type).toBe(type);
    expect(event?.object).toBe(answer);
    // Taken once: the same line again is parsed as usual.
    expect(echoes.take(raw)).toBeUndefined();
    expect(echoes.size).toBe(0);
  });

  it.each([
    ['another version of the same object', line('MODIFIED', service('u-1', '101'))],
    ['another object at the same version (uid differs)', line('MODIFIED', service('u-2', '100'))],
    ['a deletion', line('DELETED', service('u-1', '100'))],
    ['a bookmark', line('BOOKMARK', { kind: 'Service', apiVersion: 'v1', metadata: { resourceVersion: '100' } })],
    ['an error', line('ERROR', { kind: 'Status', apiVersion: 'v1', metadata: {}, code: 410 })],
    ['an owner reference with the uid, but not the object', line('MODIFIED', { kind: 'Service', apiVersion: 'v1', metadata: { name: 'web', resourceVersion: '100', ownerReferences: [{ uid: 'u-2' }] } })],
    ['a label value spelling out the uid (escaped in JSON)', line('MODIFIED', service('u-9', '100', { labels: { x: '"uid":"u-1"' } }))],
    ['not a watch line', '{"kind":"Status"}'],
    [
      'keys re-sorted on the way (annotations before the uid)',
      line('MODIFIED', { kind: 'Service', apiVersion: 'v1', metadata: { annotations: { a: 'b' }, name: 'web', resourceVersion: '100', uid: 'u-1' } }),
    ],
    ['a label named uid, with the object\'s own uid missing', line('MODIFIED', { kind: 'Service', apiVersion: 'v1', metadata: { name: 'web', labels: { uid: 'u-1' }, resourceVersion: '100' } })],
  ])('leaves %s to be parsed', (_name, raw) => {
    const echoes = new WriteEchoes(() => 0);
    echoes.remember(answer);
    expect(echoes.take(raw)).toBeUndefined();
    expect(echoes.size).toBe(1);
  });

  describe('when the event comes before the answer', () => {
    const event = { type: 'MODIFIED', object: service('u-1', '100') };

    it('answers the write with the event object, unparsed', () => {
      const echoes = new WriteEchoes(() => 0);
      echoes.writeStarted('u-1');
      echoes.parsed(event);
      expect(echoes.answered(JSON.stringify(service('u-1', '100')))).toBe(event.object);
      echoes.writeEnded('u-1');
      expect(echoes.size).toBe(0);
    });

    it.each([
      ['another version', JSON.stringify(service('u-1', '101'))],
      ['another object at that version', JSON.stringify(service('u-2', '100'))],
      ['an answer without metadata', '{"kind":"Status","code":200}'],
    ])('parses an answer of %s', (_name, raw) => {
      const echoes = new WriteEchoes(() => 0);
      echoes.writeStarted('u-1');
      echoes.parsed(event);
      expect(echoes.answered(raw)).toBeUndefined();
    });

    it('keeps only events of objects with a write in flight, and none once the last write ends', () => {
      const echoes = new WriteEchoes(() => 0);
      echoes.parsed(event);
      expect(echoes.size).toBe(0);
      echoes.writeStarted('u-1');
      echoes.writeStarted('u-1');
      echoes.writeStarted('u-2');
      echoes.parsed(event);
      // Someone else's object, and a deletion: nothing to answer a write of ours with.
      echoes.parsed({ type: 'MODIFIED', object: service('u-3', '300') });
      echoes.parsed({ type: 'DELETED', object: service('u-2', '400') });
      expect(echoes.size).toBe(1);
      echoes.writeEnded('u-1');
      echoes.writeEnded('u-2');
      expect(echoes.size).toBe(1);
      echoes.writeEnded('u-1');
      expect(echoes.size).toBe(0);
      expect(echoes.answered(JSON.stringify(service('u-1', '100')))).toBeUndefined();
    });
  });

  it('drops answers past MAX_AGE_MS when a write ends, as when one is kept or a line arrives', () => {
    let now = 0;
    const echoes = new WriteEchoes(() => now);
    echoes.remember(answer);
    echoes.writeStarted('u-1');
    now = MAX_AGE_MS;
    echoes.writeEnded('u-1');
    expect(echoes.size).toBe(0);
  });

  it('keeps nothing for an answer without a uid or a resourceVersion', () => {
    const echoes = new WriteEchoes(() => 0);
    echoes.remember({ kind: 'Status', metadata: {} });
    echoes.remember(undefined);
    expect(echoes.size).toBe(0);
  });

  it('drops an answer whose echo has not come within MAX_AGE_MS', () => {
    let now = 0;
    const echoes = new WriteEchoes(() => now);
    echoes.remember(answer);
    now = MAX_AGE_MS - 1;
    echoes.remember(service('u-2', '200'));
    now = MAX_AGE_MS;
    // The first answer expired; the line of the second still finds its own.
    expect(echoes.take(line('MODIFIED', service('u-1', '100')))).toBeUndefined();
    expect(echoes.size).toBe(1);
    now = 2 * MAX_AGE_MS;
    expect(echoes.take(line('MODIFIED', service('u-2', '200')))).toBeUndefined();
    expect(echoes.size).toBe(0);
  });

  it(`keeps at most ${String(MAX_KEPT)} answers, dropping the oldest`, () => {
    const echoes = new WriteEchoes(() => 0);
    for (let i = 0; i <= MAX_KEPT; i++) echoes.remember(service(`u-${String(i)}`, String(1000 + i)));
    expect(echoes.size).toBe(MAX_KEPT);
    expect(echoes.take(line('MODIFIED', service('u-0', '1000')))).toBeUndefined();
    expect(echoes.take(line('MODIFIED', service(`u-${String(MAX_KEPT)}`, String(1000 + MAX_KEPT))))?.object).toBeDefined();
  });
});
