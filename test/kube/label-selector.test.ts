import { describe, expect, it } from 'vitest';
import type { LabelSelector } from '../../src/api/types.js';
import {
  canonicalSelector,
  isDNS1123Label,
  isDNS1123Subdomain,
  isEmptySelector,
  isQualifiedName,
  matchesSelector,
  validateSelector,
} from '../../src/kube/label-selector.js';

const labels = { team: 'a', tier: 'web', 'example.com/owner': 'ops' };

describe('matchesSelector', () => {
  it.each<[string, LabelSelector | undefined, boolean]>([
    ['undefined matches everything', undefined, true],
    ['{} matches everything', {}, true],
    ['empty lists match everything', { matchLabels: {}, matchExpressions: [] }, true],
    ['matchLabels hit', { matchLabels: { team: 'a' } }, true],
    ['matchLabels with a prefixed key', { matchLabels: { 'example.com/owner': 'ops' } }, true],
    ['matchLabels wrong value', { matchLabels: { team: 'b' } }, false],
    ['matchLabels missing key', { matchLabels: { env: 'prod' } }, false],
    ['matchLabels are ANDed', { matchLabels: { team: 'a', tier: 'db' } }, false],
    ['In hit', { matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }] }, true],
    ['In miss', { matchExpressions: [{ key: 'team', operator: 'In', values: ['b'] }] }, false],
    ['In on a missing key', { matchExpressions: [{ key: 'env', operator: 'In', values: ['a'] }] }, false],
    ['NotIn hit', { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['b'] }] }, true],
    ['NotIn miss', { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['a'] }] }, false],
    ['NotIn on a missing key matches', { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['a'] }] }, true],
    ['Exists hit', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, true],
    ['Exists miss', { matchExpressions: [{ key: 'env', operator: 'Exists' }] }, false],
    ['DoesNotExist hit', { matchExpressions: [{ key: 'env', operator: 'DoesNotExist' }] }, true],
    ['DoesNotExist miss', { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] }, false],
    [
      'labels AND expressions',
      { matchLabels: { team: 'a' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['db'] }] },
      false,
    ],
    [
      'all expressions must hold',
      {
        matchExpressions: [
          { key: 'team', operator: 'In', values: ['a'] },
          { key: 'tier', operator: 'Exists' },
          { key: 'env', operator: 'DoesNotExist' },
        ],
      },
      true,
    ],
    // Fail closed on selectors that validation would refuse.
    ['In without values matches nothing', { matchExpressions: [{ key: 'team', operator: 'In', values: [] }] }, false],
    ['NotIn without values matches nothing', { matchExpressions: [{ key: 'env', operator: 'NotIn' }] }, false],
    [
      'unknown operator matches nothing',
      { matchExpressions: [{ key: 'team', operator: 'Gt' as 'In', values: ['1'] }] },
      false,
    ],
  ])('%s', (_name, selector, expected) => {
    expect(matchesSelector(selector, labels)).toBe(expected);
  });

  it('does not see Object.prototype members as labels', () => {
    expect(matchesSelector({ matchExpressions: [{ key: 'constructor', operator: 'Exists' }] }, {})).toBe(false);
    expect(matchesSelector({ matchExpressions: [{ key: 'toString', operator: 'DoesNotExist' }] }, {})).toBe(true);
  });
});

describe('validateSelector', () => {
  const at = 'spec.allocation.namespaceSelector';
  it.each<[string, unknown, { field: string; message: RegExp }[]]>([
    ['undefined', undefined, []],
    ['empty', {}, []],
    [
      'valid',
      {
        matchLabels: { team: 'a', 'example.com/x': '' },
        matchExpressions: [
          { key: 'tier', operator: 'In', values: ['web'] },
          { key: 'env', operator: 'DoesNotExist' },
        ],
      },
      [],
    ],
    [
      'In without values',
      { matchExpressions: [{ key: 'tier', operator: 'In', values: [] }] },
      [{ field: `${at}.matchExpressions[0].values`, message: /must not be empty for operator In/ }],
    ],
    [
      'NotIn with values absent',
      { matchExpressions: [{ key: 'tier', operator: 'NotIn' }] },
      [{ field: `${at}.matchExpressions[0].values`, message: /must not be empty for operator NotIn/ }],
    ],
    [
      'Exists with values',
      { matchExpressions: [{ key: 'tier', operator: 'Exists', values: ['x'] }] },
      [{ field: `${at}.matchExpressions[0].values`, message: /must be empty for operator Exists/ }],
    ],
    [
      'DoesNotExist with values',
      { matchExpressions: [{ key: 'a', operator: 'In', values: ['x'] }, { key: 'b', operator: 'DoesNotExist', values: ['x'] }] },
      [{ field: `${at}.matchExpressions[1].values`, message: /must be empty for operator DoesNotExist/ }],
    ],
    [
      'unknown operator',
      { matchExpressions: [{ key: 'tier', operator: 'Contains', values: ['x'] }] },
      [{ field: `${at}.matchExpressions[0].operator`, message: /unknown operator "Contains"/ }],
    ],
    [
      'bad key and bad value',
      { matchLabels: { 'bad key': 'v', ok: 'bad value' } },
      [
        { field: `${at}.matchLabels[bad key]`, message: /not a valid label key/ },
        { field: `${at}.matchLabels[ok]`, message: /not a valid label value/ },
      ],
    ],
    [
      'bad value inside In',
      { matchExpressions: [{ key: 'tier', operator: 'In', values: ['ok', 'not ok'] }] },
      [{ field: `${at}.matchExpressions[0].values[1]`, message: /not a valid label value/ }],
    ],
    ['not an object', 'team=a', [{ field: at, message: /must be an object/ }]],
    ['matchExpressions not a list', { matchExpressions: {} }, [{ field: `${at}.matchExpressions`, message: /must be a list/ }]],
  ])('%s', (_name, selector, expected) => {
    const problems = validateSelector(selector as LabelSelector, at);
    expect(problems).toHaveLength(expected.length);
    expected.forEach((want, i) => {
      expect(problems[i]?.field).toBe(want.field);
      expect(problems[i]?.message).toMatch(want.message);
    });
  });
});

describe('canonicalSelector', () => {
  it.each([
    [undefined, ''],
    [{}, ''],
    [{ app: 'web' }, 'app=web'],
    [{ tier: 'web', app: 'shop', 'a.example.com/x': 'y' }, 'a.example.com/x=y,app=shop,tier=web'],
    // Code-unit order: uppercase sorts before lowercase whatever the locale.
    [{ b: '1', B: '2' }, 'B=2,b=1'],
  ])('%j -> %s', (selector, expected) => {
    expect(canonicalSelector(selector)).toBe(expected);
  });

  it('does not depend on insertion order', () => {
    expect(canonicalSelector({ x: '1', y: '2', z: '3' })).toBe(canonicalSelector({ z: '3', x: '1', y: '2' }));
  });
});

describe('name validation', () => {
  it.each([
    ['team-a', true, true],
    ['a', true, true],
    ['pool.example.com', false, true],
    ['Team', false, false],
    ['-a', false, false],
    ['a-', false, false],
    ['', false, false],
    ['a'.repeat(63), true, true],
    ['a'.repeat(64), false, true],
    ['a.', false, false],
    ['a..b', false, false],
    [['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.'), false, true],
    [['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(62)].join('.'), false, false],
  ])('%s: label %s, subdomain %s', (value, label, subdomain) => {
    expect(isDNS1123Label(value)).toBe(label);
    expect(isDNS1123Subdomain(value)).toBe(subdomain);
  });

  it.each([
    ['app', true],
    ['app.kubernetes.io/name', true],
    ['example.com/Under_score.x', true],
    ['/name', false],
    ['example.com/', false],
    ['Bad_Prefix/name', false],
    ['a b', false],
    ['a'.repeat(64), false],
  ])('label key %s: %s', (key, valid) => {
    expect(isQualifiedName(key)).toBe(valid);
  });

  it('treats {} and undefined as empty selectors', () => {
    expect(isEmptySelector(undefined)).toBe(true);
    expect(isEmptySelector({})).toBe(true);
    expect(isEmptySelector({ matchLabels: { a: 'b' } })).toBe(false);
  });
});
