import { describe, expect, it } from 'vitest';
import type { AddressPool } from '../../src/api/address-pool.js';
import { formatRange } from '../../src/ipam/ip.js';
import {
  addressCount,
  countAddresses,
  findOverlaps,
  isParsedPool,
  isScoped,
  parsePool,
} from '../../src/ipam/pool.js';
import {
  parsed,
  pool,
  withAddresses,
  withAutoAssign,
  withAvoidBuggyIPs,
  withDefaultReservations,
  withNamespaces,
  withNamespaceSelector,
  withPriority,
  withRawSpec,
  withServiceSelector,
} from './builders.js';

function problemsOf(p: AddressPool): { field: string; message: string }[] {
  const result = parsePool(p);
  if (isParsedPool(result)) throw new Error('expected problems, got a parsed pool');
  return result.problems;
}

describe('parsePool', () => {
  it('applies defaults', () => {
    const result = parsePool(pool('default', withAddresses('192.0.2.0/28'), withDefaultReservations));
    expect(result).toEqual({
      name: 'default',
      ranges: [{ family: 'IPv4', start: 0xc0000200n, end: 0xc000020fn, text: '192.0.2.0/28' }],
      autoAssign: true,
      avoidBuggyIPs: false,
      allowSpecialAddresses: false,
      crossNamespaceSharing: false,
      priority: undefined,
      namespaces: undefined,
      namespaceSelector: undefined,
      serviceSelector: undefined,
      l2: undefined,
    });
  });

  it('keeps every setting and sorts ranges IPv4 first, then by address', () => {
    const p = pool(
      'full',
      withAddresses('2001:db8::/120', '198.51.100.10-198.51.100.20', '192.0.2.0/28'),
      withAutoAssign(false),
      withAvoidBuggyIPs,
      withPriority(0),
      withNamespaces('team-b', 'team-a', 'team-b'),
      withNamespaceSelector({ matchLabels: { tenant: 'x' } }),
      withServiceSelector({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] }),
      withRawSpec({ l2: { interfaces: ['eth0'] } }),
    );
    const result = parsePool(p);
    if (!isParsedPool(result)) throw new Error(JSON.stringify(result.problems));
    expect(result.ranges.map(formatRange)).toEqual([
      '192.0.2.0-192.0.2.15',
      '198.51.100.10-198.51.100.20',
      '2001:db8::-2001:db8::ff',
    ]);
    expect(result.autoAssign).toBe(false);
    expect(result.avoidBuggyIPs).toBe(true);
    expect(result.priority).toBe(0);
    expect(result.namespaces).toEqual(['team-a', 'team-b']);
    expect(result.namespaceSelector).toEqual({ matchLabels: { tenant: 'x' } });
    expect(result.serviceSelector).toEqual({ matchExpressions: [{ key: 'tier', operator: 'Exists' }] });
    expect(result.l2).toEqual({ interfaces: ['eth0'] });
  });

  it.each<[string, AddressPool, { field: string; message: RegExp }[]]>([
    ['no addresses', pool('p'), [{ field: 'spec.addresses', message: /at least one/ }]],
    [
      'bad entries are named by index',
      pool('p', withAddresses('192.0.2.0/28', '192.0.2.5/24', '2001:db8::/129', '1.2.3')),
      [
        { field: 'spec.addresses[1]', message: /host bits set, did you mean 192\.0\.2\.0\/24/ },
        { field: 'spec.addresses[2]', message: /prefix length 129 exceeds 128/ },
        { field: 'spec.addresses[3]', message: /single address|four dot-separated/ },
      ],
    ],
    [
      'ranges overlapping inside one pool',
      pool('p', withAddresses('192.0.2.0/28', '198.51.100.0/28', '192.0.2.8-192.0.2.20')),
      [{ field: 'spec.addresses[2]', message: /overlaps spec\.addresses\[0\] \(192\.0\.2\.0\/28\)/ }],
    ],
    [
      'the same range twice',
      pool('p', withAddresses('2001:db8::/64', '2001:db8::/64')),
      [{ field: 'spec.addresses[1]', message: /overlaps spec\.addresses\[0\]/ }],
    ],
    [
      'negative priority',
      pool('p', withAddresses('192.0.2.0/28'), withPriority(-1)),
      [{ field: 'spec.allocation.priority', message: /integer >= 0/ }],
    ],
    [
      'fractional priority',
      pool('p', withAddresses('192.0.2.0/28'), withPriority(1.5)),
      [{ field: 'spec.allocation.priority', message: /integer >= 0/ }],
    ],
    [
      'NaN priority',
      pool('p', withAddresses('192.0.2.0/28'), withPriority(Number.NaN)),
      [{ field: 'spec.allocation.priority', message: /integer >= 0/ }],
    ],
    [
      'empty namespace list',
      pool('p', withAddresses('192.0.2.0/28'), withNamespaces()),
      [{ field: 'spec.allocation.namespaces', message: /must not be empty/ }],
    ],
    [
      'invalid namespace name',
      pool('p', withAddresses('192.0.2.0/28'), withNamespaces('ok', 'Not_OK')),
      [{ field: 'spec.allocation.namespaces[1]', message: /DNS-1123 label/ }],
    ],
    [
      'namespaceSelector value problem',
      pool(
        'p',
        withAddresses('192.0.2.0/28'),
        withNamespaceSelector({ matchExpressions: [{ key: 'tenant', operator: 'In', values: [] }] }),
      ),
      [{ field: 'spec.allocation.namespaceSelector.matchExpressions[0].values', message: /must not be empty/ }],
    ],
    [
      'serviceSelector operator problem',
      pool(
        'p',
        withAddresses('192.0.2.0/28'),
        withServiceSelector({ matchExpressions: [{ key: 'tier', operator: 'Like' as 'In', values: ['x'] }] }),
      ),
      [{ field: 'spec.allocation.serviceSelector.matchExpressions[0].operator', message: /unknown operator/ }],
    ],
    [
      'wrong types from a malformed object',
      pool('p', withRawSpec({ addresses: [42], autoAssign: 'yes', avoidBuggyIPs: 1, allocation: 'all' })),
      [
        { field: 'spec.addresses[0]', message: /must be a string/ },
        { field: 'spec.autoAssign', message: /true or false/ },
        { field: 'spec.avoidBuggyIPs', message: /true or false/ },
        { field: 'spec.allocation', message: /must be an object/ },
      ],
    ],
    ['invalid name', pool('Bad Name', withAddresses('192.0.2.0/28')), [{ field: 'metadata.name', message: /DNS-1123/ }]],
  ])('reports %s', (_name, p, expected) => {
    const problems = problemsOf(p);
    expect(problems).toHaveLength(expected.length);
    expected.forEach((want, i) => {
      expect(problems[i]?.field).toBe(want.field);
      expect(problems[i]?.message).toMatch(want.message);
    });
  });

  it('reports a missing spec instead of crashing', () => {
    const p = { ...pool('p'), spec: undefined } as unknown as AddressPool;
    expect(problemsOf(p)).toEqual([{ field: 'spec', message: 'is required' }]);
  });
});

describe('isScoped', () => {
  it.each([
    ['plain', parsed('p', withAddresses('192.0.2.0/28')), false],
    ['priority only', parsed('p', withAddresses('192.0.2.0/28'), withPriority(1)), false],
    ['empty selector', parsed('p', withAddresses('192.0.2.0/28'), withServiceSelector({})), false],
    ['namespaces', parsed('p', withAddresses('192.0.2.0/28'), withNamespaces('a')), true],
    ['namespaceSelector', parsed('p', withAddresses('192.0.2.0/28'), withNamespaceSelector({ matchLabels: { a: 'b' } })), true],
    ['serviceSelector', parsed('p', withAddresses('192.0.2.0/28'), withServiceSelector({ matchLabels: { a: 'b' } })), true],
  ])('%s: %s', (_name, p, scoped) => {
    expect(isScoped(p)).toBe(scoped);
  });
});

describe('findOverlaps', () => {
  it('reports an overlap on both pools, and only pools that overlap', () => {
    const pools = [
      parsed('a', withAddresses('192.0.2.0/28')),
      parsed('b', withAddresses('198.51.100.0/28', '192.0.2.10-192.0.2.12')),
      parsed('c', withAddresses('203.0.113.0/28')),
      parsed('d', withAddresses('2001:db8::/64')),
      parsed('e', withAddresses('2001:db8::ff-2001:db8::1:0', '192.0.2.15/32')),
    ];
    expect(Object.fromEntries(findOverlaps(pools))).toEqual({
      a: ['b', 'e'],
      b: ['a'],
      d: ['e'],
      e: ['a', 'd'],
    });
  });

  it('does not depend on the order of the pools', () => {
    const pools = [
      parsed('x', withAddresses('192.0.2.0/24')),
      parsed('y', withAddresses('192.0.2.128/25')),
      parsed('z', withAddresses('192.0.2.200-192.0.2.201')),
    ];
    const forward = [...findOverlaps(pools)];
    const backward = [...findOverlaps([...pools].reverse())];
    expect(backward).toEqual(forward);
    expect(forward).toEqual([
      ['x', ['y', 'z']],
      ['y', ['x', 'z']],
      ['z', ['x', 'y']],
    ]);
  });

  it('treats adjacent ranges and different families as disjoint', () => {
    const pools = [
      parsed('a', withAddresses('192.0.2.0/25')),
      parsed('b', withAddresses('192.0.2.128/25')),
      parsed('c', withAddresses('::c000:200/120')),
    ];
    expect(findOverlaps(pools).size).toBe(0);
  });
});

describe('countAddresses', () => {
  it.each([
    ['192.0.2.0/24', false, 'IPv4', 256],
    ['192.0.2.0/24', true, 'IPv4', 254],
    // Skipped addresses counted exactly at range edges: .0 and .255 only when inside the range.
    ['192.0.2.1-192.0.2.254', true, 'IPv4', 254],
    ['192.0.2.255/32', true, 'IPv4', 0],
    ['192.0.2.0/31', true, 'IPv4', 1],
    ['192.0.2.254-192.0.2.255', true, 'IPv4', 1],
    ['0.0.0.0/0', true, 'IPv4', 2 ** 32 - 2 * 2 ** 24],
    ['192.0.2.0/24', false, 'IPv6', 0],
    // avoidBuggyIPs never applies to IPv6.
    ['2001:db8::/120', true, 'IPv6', 256],
    ['2001:db8::/32', false, 'IPv6', Number.MAX_SAFE_INTEGER],
    ['::/0', false, 'IPv6', Number.MAX_SAFE_INTEGER],
  ] as const)('%s (avoidBuggyIPs %s) has %s %s addresses', (range, avoid, family, expected) => {
    const p = parsed('p', withAddresses(range), ...(avoid ? [withAvoidBuggyIPs] : []));
    expect(countAddresses(p, family)).toBe(expected);
  });

  it('sums the ranges of a dual-stack pool per family', () => {
    const p = parsed(
      'p',
      withAddresses('192.0.2.0/28', '198.51.100.0/30', '2001:db8::/126', '2001:db8:1::1-2001:db8:1::2'),
    );
    expect(countAddresses(p, 'IPv4')).toBe(20);
    expect(countAddresses(p, 'IPv6')).toBe(6);
  });

  it('is exact beyond the safe-integer range when asked for a bigint', () => {
    expect(addressCount(parsed('p', withAddresses('2001:db8::/32')), 'IPv6')).toBe(1n << 96n);
  });
});
