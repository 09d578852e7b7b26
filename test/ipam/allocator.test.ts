import { describe, expect, it } from 'vitest';
import { Allocator, AllocatorError } from '../../src/ipam/allocator.js';
import type { AllocationRequest, AllocationResult } from '../../src/ipam/allocator.js';
import type { ParsedPool } from '../../src/ipam/pool.js';
import { ADDRESS_POOL_FIELD, ALLOW_SHARED_IP_FIELD, LOAD_BALANCER_IPS_FIELD } from '../../src/ipam/request.js';
import {
  parsed,
  req,
  withAddresses,
  withAutoAssign,
  withAvoidBuggyIPs,
  withBackendKey,
  withCrossNamespaceSharing,
  withDefaultReservations,
  withFamilies,
  withIPs,
  withNamespaces,
  withNamespaceLabels,
  withNamespaceSelector,
  withPool,
  withPorts,
  withPriority,
  withServiceLabels,
  withServiceSelector,
  withSharingKey,
} from './builders.js';

function allocatorWith(...pools: ParsedPool[]): Allocator {
  const allocator = new Allocator();
  expect(allocator.setPools(pools)).toEqual([]);
  return allocator;
}

/** The addresses of a successful result; fails the test with the message otherwise. */
function ips(result: AllocationResult): string[] {
  if (!result.ok) throw new Error(`expected success, got ${result.reason}: ${result.message}`);
  return result.ips;
}

type Expected = { ok: true; pool: string; ips: string[] } | { ok: false; reason: string; message?: RegExp; field?: string };

function check(result: AllocationResult, expected: Expected): void {
  if (expected.ok) {
    expect(result).toEqual(expected);
    return;
  }
  expect(result.ok, JSON.stringify(result)).toBe(false);
  if (result.ok) return;
  expect(result.reason).toBe(expected.reason);
  if (expected.message) expect(result.message).toMatch(expected.message);
  if (expected.field !== undefined) expect(result.field).toBe(expected.field);
}

describe('automatic allocation', () => {
  it('hands out the lowest free address, fails when exhausted and recovers after a release', () => {
    const allocator = allocatorWith(parsed('small', withAddresses('192.0.2.0/30')));
    const got = ['ns/s0', 'ns/s1', 'ns/s2', 'ns/s3'].map((key) => ips(allocator.assign(req(key))));
    expect(got).toEqual([['192.0.2.0'], ['192.0.2.1'], ['192.0.2.2'], ['192.0.2.3']]);

    check(allocator.assign(req('ns/s4')), { ok: false, reason: 'PoolExhausted', message: /no free IPv4 address; tried pool 'small'/ });
    expect(allocator.assignmentOf('ns/s4')).toBeUndefined();

    expect(allocator.release('ns/s1')).toBe(true);
    expect(allocator.release('ns/s1')).toBe(false);
    check(allocator.assign(req('ns/s4')), { ok: true, pool: 'small', ips: ['192.0.2.1'] });
  });

  it('moves on to the next pool when the first is full, naming every pool tried when all are', () => {
    const allocator = allocatorWith(
      parsed('first', withAddresses('192.0.2.1/32'), withPriority(1)),
      parsed('second', withAddresses('198.51.100.1/32'), withPriority(2)),
    );
    check(allocator.assign(req('ns/a')), { ok: true, pool: 'first', ips: ['192.0.2.1'] });
    check(allocator.assign(req('ns/b')), { ok: true, pool: 'second', ips: ['198.51.100.1'] });
    check(allocator.assign(req('ns/c')), { ok: false, reason: 'PoolExhausted', message: /tried pools \[first, second\]/ });
  });

  const general = parsed('general', withAddresses('192.0.2.0/28'), withPriority(0));
  const team = parsed('team', withAddresses('198.51.100.0/28'), withNamespaces('shop'));
  const otherTeam = parsed('other-team', withAddresses('203.0.113.0/28'), withNamespaces('elsewhere'), withPriority(0));
  it.each<[string, ParsedPool[], AllocationRequest, string]>([
    ['a matching scoped pool beats an unscoped one of better priority', [general, team], req('shop/web'), 'team'],
    ['a scoped pool that does not match is skipped', [general, otherTeam], req('shop/web'), 'general'],
    [
      'lower priority number first',
      [parsed('p2', withAddresses('192.0.2.0/28'), withPriority(2)), parsed('p1', withAddresses('198.51.100.0/28'), withPriority(1))],
      req('ns/web'),
      'p1',
    ],
    [
      'pools without priority come after pools with one',
      [parsed('a', withAddresses('192.0.2.0/28')), parsed('z', withAddresses('198.51.100.0/28'), withPriority(9))],
      req('ns/web'),
      'z',
    ],
    [
      'then by name',
      [parsed('b', withAddresses('192.0.2.0/28')), parsed('a', withAddresses('198.51.100.0/28'))],
      req('ns/web'),
      'a',
    ],
    [
      'scoped pools are ordered by priority among themselves',
      [
        parsed('by-name', withAddresses('192.0.2.0/28'), withNamespaces('shop'), withPriority(2)),
        parsed('by-label', withAddresses('198.51.100.0/28'), withNamespaceSelector({ matchLabels: { tenant: 'blue' } }), withPriority(1)),
      ],
      req('shop/web', withNamespaceLabels({ tenant: 'blue' })),
      'by-label',
    ],
    [
      'a serviceSelector scopes a pool too',
      [general, parsed('premium', withAddresses('198.51.100.0/28'), withServiceSelector({ matchLabels: { tier: 'premium' } }))],
      req('shop/web', withServiceLabels({ tier: 'premium' })),
      'premium',
    ],
  ])('pool order: %s', (_name, pools, request, expectedPool) => {
    for (const order of [pools, [...pools].reverse()]) {
      const allocator = allocatorWith(...order);
      const result = allocator.assign(request);
      expect(result.ok && result.pool).toBe(expectedPool);
    }
  });

  it('uses autoAssign: false pools only when named or when one of their addresses is requested', () => {
    const allocator = allocatorWith(parsed('reserved', withAddresses('192.0.2.0/28'), withAutoAssign(false)));
    check(allocator.assign(req('ns/auto')), {
      ok: false,
      reason: 'NoMatchingPool',
      message: /pool 'reserved' has autoAssign: false/,
    });
    check(allocator.assign(req('ns/named', withPool('reserved'))), { ok: true, pool: 'reserved', ips: ['192.0.2.0'] });
    check(allocator.assign(req('ns/asked', withIPs('192.0.2.9'))), { ok: true, pool: 'reserved', ips: ['192.0.2.9'] });
  });

  it.each<[string, AllocationRequest, Expected]>([
    ['namespace listed', req('a/web'), { ok: true, pool: 'tenant-a', ips: ['192.0.2.0'] }],
    [
      'namespace not listed',
      req('b/web'),
      { ok: false, reason: 'NoMatchingPool', message: /pool 'tenant-a' is limited to namespaces \[a\]/ },
    ],
  ])('namespaces: %s', (_name, request, expected) => {
    check(allocatorWith(parsed('tenant-a', withAddresses('192.0.2.0/28'), withNamespaces('a'))).assign(request), expected);
  });

  const labelled = parsed(
    'labelled',
    withAddresses('192.0.2.0/28'),
    withNamespaceSelector({ matchLabels: { tenant: 'blue' } }),
    withServiceSelector({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['web', 'api'] }] }),
  );
  it.each<[string, AllocationRequest, Expected]>([
    [
      'both selectors match',
      req('x/web', withNamespaceLabels({ tenant: 'blue' }), withServiceLabels({ tier: 'api' })),
      { ok: true, pool: 'labelled', ips: ['192.0.2.0'] },
    ],
    [
      'namespace labels do not match',
      req('x/web', withNamespaceLabels({ tenant: 'red' }), withServiceLabels({ tier: 'api' })),
      { ok: false, reason: 'NoMatchingPool', message: /namespaceSelector, which 'x' does not/ },
    ],
    [
      'service labels do not match',
      req('x/web', withNamespaceLabels({ tenant: 'blue' }), withServiceLabels({ tier: 'db' })),
      { ok: false, reason: 'NoMatchingPool', message: /serviceSelector, which x\/web does not/ },
    ],
  ])('selectors: %s', (_name, request, expected) => {
    check(allocatorWith(labelled).assign(request), expected);
  });

  it.each<[string, ParsedPool[], AllocationRequest, Expected]>([
    ['no pools at all', [], req('ns/web'), { ok: false, reason: 'NoMatchingPool', message: /no address pools exist/ }],
    [
      'no pool of the family',
      [parsed('v4', withAddresses('192.0.2.0/28'))],
      req('ns/web', withFamilies('SingleStack', 'IPv6')),
      { ok: false, reason: 'NoMatchingPool', message: /has IPv6 addresses \(considered pool 'v4'\)/ },
    ],
    [
      'IPv6 addresses come out canonical',
      [parsed('v6', withAddresses('2001:DB8:0:0::/126'))],
      req('ns/web', withFamilies('SingleStack', 'IPv6')),
      { ok: true, pool: 'v6', ips: ['2001:db8::'] },
    ],
    [
      'a huge IPv6 pool is not scanned',
      [parsed('huge', withAddresses('2001:db8::/32'))],
      req('ns/web', withFamilies('SingleStack', 'IPv6')),
      { ok: true, pool: 'huge', ips: ['2001:db8::'] },
    ],
  ])('%s', (_name, pools, request, expected) => {
    check(allocatorWith(...pools).assign(request), expected);
  });

  it('skips .0 and .255 with avoidBuggyIPs, and exhausts after 254 addresses of a /24', () => {
    const allocator = allocatorWith(parsed('buggy', withAddresses('192.0.2.0/24'), withAvoidBuggyIPs));
    const first = ips(allocator.assign(req('ns/s1')));
    expect(first).toEqual(['192.0.2.1']);
    let last: string[] = [];
    for (let i = 2; i <= 254; i++) last = ips(allocator.assign(req(`ns/s${i}`)));
    expect(last).toEqual(['192.0.2.254']);
    check(allocator.assign(req('ns/one-too-many')), { ok: false, reason: 'PoolExhausted' });
    expect(allocator.stats('buggy')).toEqual({ assignedIPv4: 254, assignedIPv6: 0, availableIPv4: 0, availableIPv6: 0 });
  });

  it('skips .0 across range starts too', () => {
    const allocator = allocatorWith(parsed('buggy', withAddresses('198.51.100.0/31', '203.0.113.255/32', '192.0.2.0/30'), withAvoidBuggyIPs));
    const got = ['ns/a', 'ns/b', 'ns/c', 'ns/d'].map((key) => allocator.assign(req(key)));
    expect(got.map((r) => (r.ok ? r.ips[0] : r.reason))).toEqual(['192.0.2.1', '192.0.2.2', '192.0.2.3', '198.51.100.1']);
  });

  it('allocates 1024 Services into a /22-sized pool in order and then reports exhaustion', () => {
    // Cost per assign is proportional to the addresses already held, so this stays fast.
    const allocator = allocatorWith(parsed('big', withAddresses('2001:db8::/118')));
    const seen = new Set<string>();
    for (let i = 0; i < 1024; i++) {
      const [ip] = ips(allocator.assign(req(`ns/s${i}`, withFamilies('SingleStack', 'IPv6'))));
      seen.add(ip ?? '');
      if (i === 1023) expect(ip).toBe('2001:db8::3ff');
    }
    expect(seen.size).toBe(1024);
    check(allocator.assign(req('ns/full', withFamilies('SingleStack', 'IPv6'))), { ok: false, reason: 'PoolExhausted' });
  });
});

describe('requested addresses and the hijacking guard (CVE-2020-8554)', () => {
  const pools = [
    parsed('tenant-a', withAddresses('192.0.2.0/28'), withNamespaces('a')),
    parsed('tenant-b', withAddresses('198.51.100.0/28'), withNamespaceSelector({ matchLabels: { tenant: 'b' } })),
    parsed('shared', withAddresses('203.0.113.0/28')),
  ];
  const inB = withNamespaceLabels({ tenant: 'b' });

  it.each<[string, AllocationRequest, Expected]>([
    ['a tenant gets its own address', req('a/web', withIPs('192.0.2.5')), { ok: true, pool: 'tenant-a', ips: ['192.0.2.5'] }],
    [
      "another tenant cannot take it by asking",
      req('b/evil', withIPs('192.0.2.5'), inB),
      {
        ok: false,
        reason: 'AddressNotInAllowedPool',
        field: LOAD_BALANCER_IPS_FIELD,
        message: /pool 'tenant-a' is limited to namespaces \[a\]; Services in namespace 'b' may use pools \[tenant-b, shared\]/,
      },
    ],
    [
      'a namespace without the label cannot take a label-scoped address',
      req('c/evil', withIPs('198.51.100.1')),
      { ok: false, reason: 'AddressNotInAllowedPool', message: /namespaceSelector.*may use pool 'shared'/ },
    ],
    [
      'another tenant cannot name the pool',
      req('b/evil', withPool('tenant-a'), inB),
      { ok: false, reason: 'PoolNotAllowed', field: ADDRESS_POOL_FIELD, message: /limited to namespaces \[a\]/ },
    ],
    [
      'an address outside every pool',
      req('a/web', withIPs('192.0.2.100')),
      { ok: false, reason: 'AddressNotInAllowedPool', message: /192\.0\.2\.100 is not in any address pool/ },
    ],
    [
      'an address outside the named pool',
      req('a/web', withPool('tenant-a'), withIPs('203.0.113.1')),
      { ok: false, reason: 'AddressNotInAllowedPool', message: /not an address that pool 'tenant-a'/ },
    ],
    ['an address inside the named pool', req('a/web', withPool('shared'), withIPs('203.0.113.1')), { ok: true, pool: 'shared', ips: ['203.0.113.1'] }],
    [
      'an unknown pool',
      req('a/web', withPool('nope')),
      { ok: false, reason: 'UnknownPool', field: ADDRESS_POOL_FIELD, message: /'nope' does not exist/ },
    ],
    [
      'a requested address of a family the Service does not have',
      req('a/web', withIPs('2001:db8::1')),
      { ok: false, reason: 'AddressNotInAllowedPool', message: /IPv6, but this Service gets IPv4/ },
    ],
  ])('%s', (_name, request, expected) => {
    check(allocatorWith(...pools).assign(request), expected);
  });

  it('a sharing key does not open another tenant’s address', () => {
    const allocator = allocatorWith(...pools);
    ips(allocator.assign(req('a/web', withIPs('192.0.2.5'), withSharingKey('k'), withPorts(80))));
    check(allocator.assign(req('b/evil', withIPs('192.0.2.5'), withSharingKey('k'), withPorts(443), inB)), {
      ok: false,
      reason: 'AddressNotInAllowedPool',
    });
    // Nor does an automatic request with the same key land on it.
    check(allocator.assign(req('b/evil2', withSharingKey('k'), withPorts(443), inB)), {
      ok: true,
      pool: 'tenant-b',
      ips: ['198.51.100.0'],
    });
  });

  it('refuses an address held by another Service, and a .0 address of an avoidBuggyIPs pool', () => {
    const allocator = allocatorWith(parsed('p', withAddresses('192.0.2.0/24'), withAvoidBuggyIPs));
    ips(allocator.assign(req('ns/first', withIPs('192.0.2.10'))));
    check(allocator.assign(req('ns/second', withIPs('192.0.2.10'))), {
      ok: false,
      reason: 'AddressInUse',
      field: LOAD_BALANCER_IPS_FIELD,
      message: /192\.0\.2\.10 is in use by ns\/first/,
    });
    check(allocator.assign(req('ns/third', withIPs('192.0.2.0'))), {
      ok: false,
      reason: 'AddressNotInAllowedPool',
      message: /ends in \.0 or \.255, which pool 'p' skips/,
    });
  });
});

describe('sharing', () => {
  const pool = parsed('p', withAddresses('192.0.2.0/28'));
  const holder = req('a/dns-tcp', withIPs('192.0.2.1'), withSharingKey('dns'), withPorts('53/TCP'));

  it.each<[string, AllocationRequest, AllocationRequest, Expected]>([
    [
      'same key, different ports',
      holder,
      req('a/dns-udp', withIPs('192.0.2.1'), withSharingKey('dns'), withPorts('53/UDP')),
      { ok: true, pool: 'p', ips: ['192.0.2.1'] },
    ],
    [
      'same key, another namespace: keys are scoped to a namespace unless the pool opts in',
      holder,
      req('b/dns-udp', withIPs('192.0.2.1'), withSharingKey('dns'), withPorts('53/UDP')),
      { ok: false, reason: 'SharingConflict', field: ALLOW_SHARED_IP_FIELD, message: /a\/dns-tcp is in another namespace; sharing keys are scoped to a namespace unless the pool sets allocation.crossNamespaceSharing/ },
    ],
    [
      'same key, same Local backend',
      req('a/one', withIPs('192.0.2.1'), withSharingKey('k'), withPorts(80), withBackendKey('Local:app=x')),
      req('a/two', withIPs('192.0.2.1'), withSharingKey('k'), withPorts(443), withBackendKey('Local:app=x')),
      { ok: true, pool: 'p', ips: ['192.0.2.1'] },
    ],
    [
      'holder does not allow sharing',
      req('a/solo', withIPs('192.0.2.1'), withPorts(80)),
      req('a/other', withIPs('192.0.2.1'), withSharingKey('k'), withPorts(443)),
      { ok: false, reason: 'AddressInUse', message: /a\/solo does not allow sharing/ },
    ],
    [
      'requester does not allow sharing',
      holder,
      req('a/other', withIPs('192.0.2.1'), withPorts(443)),
      { ok: false, reason: 'AddressInUse', message: /this Service does not allow sharing/ },
    ],
    [
      'different keys',
      holder,
      req('a/other', withIPs('192.0.2.1'), withSharingKey('web'), withPorts(443)),
      { ok: false, reason: 'SharingConflict', field: ALLOW_SHARED_IP_FIELD, message: /different sharing keys \("web" here, "dns" there\)/ },
    ],
    [
      'overlapping port and protocol',
      holder,
      req('a/other', withIPs('192.0.2.1'), withSharingKey('dns'), withPorts('53/UDP', '53/TCP')),
      { ok: false, reason: 'SharingConflict', message: /both Services use port 53\/TCP/ },
    ],
    [
      'different backends',
      req('a/one', withIPs('192.0.2.1'), withSharingKey('k'), withPorts(80), withBackendKey('Local:app=x')),
      req('a/two', withIPs('192.0.2.1'), withSharingKey('k'), withPorts(443)),
      { ok: false, reason: 'SharingConflict', message: /different backends/ },
    ],
  ])('%s', (_name, first, second, expected) => {
    const allocator = allocatorWith(pool);
    ips(allocator.assign(first));
    check(allocator.assign(second), expected);
    // A refused request never disturbs the holder.
    expect(allocator.assignmentOf(first.key)?.ips).toEqual(['192.0.2.1']);
  });

  it('puts a Service with a sharing key on an address a compatible Service already holds', () => {
    const allocator = allocatorWith(pool);
    expect(ips(allocator.assign(req('a/http', withSharingKey('k'), withPorts(80))))).toEqual(['192.0.2.0']);
    expect(ips(allocator.assign(req('a/plain', withPorts(80))))).toEqual(['192.0.2.1']);
    expect(ips(allocator.assign(req('a/https', withSharingKey('k'), withPorts(443))))).toEqual(['192.0.2.0']);
    // Port 80 is taken on the shared address: the lowest free one instead.
    expect(ips(allocator.assign(req('a/http2', withSharingKey('k'), withPorts(80))))).toEqual(['192.0.2.2']);
    expect(allocator.stats('p')).toMatchObject({ assignedIPv4: 3, availableIPv4: 13 });
  });

  it('prefers the pool of its sharing partner over a pool earlier in order', () => {
    const allocator = allocatorWith(
      parsed('first', withAddresses('192.0.2.1/32'), withPriority(1)),
      parsed('second', withAddresses('198.51.100.0/30'), withPriority(2)),
    );
    ips(allocator.assign(req('ns/filler')));
    expect(ips(allocator.assign(req('ns/x', withSharingKey('k'), withPorts(80))))).toEqual(['198.51.100.0']);
    allocator.release('ns/filler');
    check(allocator.assign(req('ns/y', withSharingKey('k'), withPorts(443))), { ok: true, pool: 'second', ips: ['198.51.100.0'] });
  });

  it('keeps a shared address held until its last holder releases it', () => {
    const allocator = allocatorWith(pool);
    ips(allocator.assign(req('a/one', withIPs('192.0.2.1'), withSharingKey('k'), withPorts(80))));
    ips(allocator.assign(req('a/two', withIPs('192.0.2.1'), withSharingKey('k'), withPorts(443))));
    allocator.release('a/one');
    check(allocator.assign(req('a/three', withIPs('192.0.2.1'))), { ok: false, reason: 'AddressInUse', message: /a\/two/ });
    allocator.release('a/two');
    check(allocator.assign(req('a/three', withIPs('192.0.2.1'))), { ok: true, pool: 'p', ips: ['192.0.2.1'] });
  });
});

describe('dual-stack', () => {
  const dual = parsed('dual', withAddresses('192.0.2.0/30', '2001:db8::/126'));
  const v4only = parsed('v4only', withAddresses('198.51.100.0/30'));
  const v6only = parsed('v6only', withAddresses('2001:db8:1::/126'));
  const preferV4 = parsed('v4first', withAddresses('198.51.100.0/30'), withPriority(1));
  const dualLater = parsed('dual-later', withAddresses('192.0.2.0/30', '2001:db8::/126'), withPriority(2));

  it.each<[string, ParsedPool[], AllocationRequest, Expected]>([
    ['SingleStack IPv4', [dual, v4only], req('ns/web'), { ok: true, pool: 'dual', ips: ['192.0.2.0'] }],
    ['SingleStack IPv6', [dual, v6only], req('ns/web', withFamilies('SingleStack', 'IPv6')), { ok: true, pool: 'dual', ips: ['2001:db8::'] }],
    [
      'RequireDualStack, IPv4 primary',
      [v4only, dual, v6only],
      req('ns/web', withFamilies('RequireDualStack', 'IPv4', 'IPv6')),
      { ok: true, pool: 'dual', ips: ['192.0.2.0', '2001:db8::'] },
    ],
    [
      'RequireDualStack, IPv6 primary first in the result',
      [dual],
      req('ns/web', withFamilies('RequireDualStack', 'IPv6', 'IPv4')),
      { ok: true, pool: 'dual', ips: ['2001:db8::', '192.0.2.0'] },
    ],
    [
      'RequireDualStack never mixes pools',
      [v4only, v6only],
      req('ns/web', withFamilies('RequireDualStack', 'IPv4', 'IPv6')),
      { ok: false, reason: 'DualStackUnavailable', message: /both IPv4 and IPv6/ },
    ],
    [
      'PreferDualStack falls back to the primary family',
      [v4only, v6only],
      req('ns/web', withFamilies('PreferDualStack', 'IPv4', 'IPv6')),
      { ok: true, pool: 'v4only', ips: ['198.51.100.0'] },
    ],
    [
      'PreferDualStack takes both from a later pool that has both',
      [preferV4, dualLater],
      req('ns/web', withFamilies('PreferDualStack', 'IPv4', 'IPv6')),
      { ok: true, pool: 'dual-later', ips: ['192.0.2.0', '2001:db8::'] },
    ],
    [
      'PreferDualStack never falls back to the secondary family alone',
      [v6only],
      req('ns/web', withFamilies('PreferDualStack', 'IPv4', 'IPv6')),
      { ok: false, reason: 'NoMatchingPool', message: /has IPv4 addresses/ },
    ],
    [
      'PreferDualStack with one family stays single',
      [dual],
      req('ns/web', withFamilies('PreferDualStack', 'IPv4')),
      { ok: true, pool: 'dual', ips: ['192.0.2.0'] },
    ],
    [
      'RequireDualStack with one requested address gets the other family from the same pool',
      [v6only, dual],
      req('ns/web', withFamilies('RequireDualStack', 'IPv4', 'IPv6'), withIPs('192.0.2.2')),
      { ok: true, pool: 'dual', ips: ['192.0.2.2', '2001:db8::'] },
    ],
    [
      'RequireDualStack with a requested address in a single-family pool',
      [v4only, v6only],
      req('ns/web', withFamilies('RequireDualStack', 'IPv4', 'IPv6'), withIPs('198.51.100.1')),
      { ok: false, reason: 'DualStackUnavailable', message: /pool 'v4only' has no IPv6 addresses/ },
    ],
    [
      'requested addresses in two pools',
      [dual, v6only],
      req('ns/web', withFamilies('RequireDualStack', 'IPv4', 'IPv6'), withIPs('192.0.2.1', '2001:db8:1::1')),
      { ok: false, reason: 'DualStackUnavailable', message: /different pools \('dual', 'v6only'\)/ },
    ],
    [
      'PreferDualStack with only the secondary requested and no primary in its pool',
      [v6only],
      req('ns/web', withFamilies('PreferDualStack', 'IPv4', 'IPv6'), withIPs('2001:db8:1::2')),
      { ok: true, pool: 'v6only', ips: ['2001:db8:1::2'] },
    ],
  ])('%s', (_name, pools, request, expected) => {
    check(allocatorWith(...pools).assign(request), expected);
  });

  it('RequireDualStack reports exhaustion when one family runs out; PreferDualStack degrades to one address', () => {
    const tight = parsed('tight', withAddresses('192.0.2.0/30', '2001:db8::/128'));
    const allocator = allocatorWith(tight);
    expect(ips(allocator.assign(req('ns/a', withFamilies('RequireDualStack', 'IPv4', 'IPv6'))))).toEqual([
      '192.0.2.0',
      '2001:db8::',
    ]);
    check(allocator.assign(req('ns/b', withFamilies('RequireDualStack', 'IPv4', 'IPv6'))), {
      ok: false,
      reason: 'PoolExhausted',
      message: /both a free IPv4 and a free IPv6/,
    });
    check(allocator.assign(req('ns/c', withFamilies('PreferDualStack', 'IPv4', 'IPv6'))), { ok: true, pool: 'tight', ips: ['192.0.2.1'] });
    expect(allocator.stats('tight')).toEqual({ assignedIPv4: 2, assignedIPv6: 1, availableIPv4: 2, availableIPv6: 0 });
  });
});

describe('stability of an existing assignment', () => {
  it('returns the same addresses while the request is still satisfied, whatever else changes', () => {
    const allocator = allocatorWith(parsed('low', withAddresses('198.51.100.0/28'), withPriority(5)));
    ips(allocator.assign(req('ns/before')));
    const first = ips(allocator.assign(req('ns/web', withPorts(80))));
    expect(first).toEqual(['198.51.100.1']);
    allocator.release('ns/before');
    // A better pool appears and the lower address frees up: nothing moves.
    allocator.setPools([
      parsed('low', withAddresses('198.51.100.0/28'), withPriority(5)),
      parsed('high', withAddresses('192.0.2.0/28'), withPriority(1)),
    ]);
    expect(ips(allocator.assign(req('ns/web', withPorts(80, 443))))).toEqual(first);
    expect(ips(allocator.assign(req('ns/web', withSharingKey('k'))))).toEqual(first);
    expect(allocator.assignmentOf('ns/web')).toEqual({ key: 'ns/web', pool: 'low', ips: ['198.51.100.1'] });
  });

  it('moves when the requested address changes, freeing the old one', () => {
    const allocator = allocatorWith(parsed('p', withAddresses('192.0.2.0/28')));
    expect(ips(allocator.assign(req('ns/web')))).toEqual(['192.0.2.0']);
    expect(ips(allocator.assign(req('ns/web', withIPs('192.0.2.7'))))).toEqual(['192.0.2.7']);
    expect(ips(allocator.assign(req('ns/other')))).toEqual(['192.0.2.0']);
  });

  it('moves when the named pool changes', () => {
    const allocator = allocatorWith(parsed('a', withAddresses('192.0.2.0/28')), parsed('b', withAddresses('198.51.100.0/28')));
    check(allocator.assign(req('ns/web')), { ok: true, pool: 'a', ips: ['192.0.2.0'] });
    check(allocator.assign(req('ns/web', withPool('b'))), { ok: true, pool: 'b', ips: ['198.51.100.0'] });
  });

  it('adds the second family for PreferDualStack once the same pool has it, keeping the first address', () => {
    const allocator = allocatorWith(parsed('p', withAddresses('192.0.2.0/28')));
    const prefer = req('ns/web', withFamilies('PreferDualStack', 'IPv4', 'IPv6'));
    expect(ips(allocator.assign(req('ns/other')))).toEqual(['192.0.2.0']);
    expect(ips(allocator.assign(prefer))).toEqual(['192.0.2.1']);
    allocator.release('ns/other');
    allocator.setPools([parsed('p', withAddresses('192.0.2.0/28', '2001:db8::/126'))]);
    expect(ips(allocator.assign(prefer))).toEqual(['192.0.2.1', '2001:db8::']);
  });

  it('keeps the primary address when the Service drops its second family', () => {
    const allocator = allocatorWith(parsed('p', withAddresses('192.0.2.0/28', '2001:db8::/126')));
    expect(ips(allocator.assign(req('ns/web', withFamilies('RequireDualStack', 'IPv4', 'IPv6'))))).toEqual([
      '192.0.2.0',
      '2001:db8::',
    ]);
    expect(ips(allocator.assign(req('ns/web')))).toEqual(['192.0.2.0']);
    expect(allocator.stats('p')).toMatchObject({ assignedIPv4: 1, assignedIPv6: 0 });
    expect(ips(allocator.assign(req('ns/v6', withFamilies('SingleStack', 'IPv6'))))).toEqual(['2001:db8::']);
  });

  it('moves the Service whose change broke sharing, not its partner', () => {
    const allocator = allocatorWith(parsed('p', withAddresses('192.0.2.0/28')));
    ips(allocator.assign(req('ns/a', withIPs('192.0.2.5'), withSharingKey('k'), withPorts(80))));
    ips(allocator.assign(req('ns/b', withSharingKey('k'), withPorts(443))));
    expect(allocator.assignmentOf('ns/b')?.ips).toEqual(['192.0.2.5']);
    expect(ips(allocator.assign(req('ns/b', withSharingKey('k'), withPorts(80))))).toEqual(['192.0.2.0']);
    expect(allocator.assignmentOf('ns/a')?.ips).toEqual(['192.0.2.5']);
  });
});

describe('restore', () => {
  const pools = [
    parsed('p', withAddresses('192.0.2.0/28')),
    parsed('tenant-a', withAddresses('198.51.100.0/28'), withNamespaces('a')),
    parsed('reserved', withAddresses('203.0.113.0/28'), withAutoAssign(false)),
  ];

  it('claims exactly the given addresses, and assign then keeps them', () => {
    const allocator = allocatorWith(...pools);
    check(allocator.restore(req('ns/web'), ['192.0.2.9']), { ok: true, pool: 'p', ips: ['192.0.2.9'] });
    check(allocator.assign(req('ns/web')), { ok: true, pool: 'p', ips: ['192.0.2.9'] });
    expect(ips(allocator.assign(req('ns/next')))).toEqual(['192.0.2.0']);
  });

  it('canonicalises and orders what it restores', () => {
    const allocator = allocatorWith(parsed('d', withAddresses('192.0.2.0/28', '2001:db8::/120')));
    check(allocator.restore(req('ns/web', withFamilies('RequireDualStack', 'IPv6', 'IPv4')), ['192.0.2.3', '2001:DB8::0:3']), {
      ok: true,
      pool: 'd',
      ips: ['2001:db8::3', '192.0.2.3'],
    });
  });

  it('never gives one address to two Services that do not share', () => {
    const allocator = allocatorWith(...pools);
    ips(allocator.restore(req('ns/first'), ['192.0.2.3']));
    check(allocator.restore(req('ns/second'), ['192.0.2.3']), {
      ok: false,
      reason: 'AddressInUse',
      message: /192\.0\.2\.3 is in use by ns\/first/,
    });
    expect(allocator.assignmentOf('ns/second')).toBeUndefined();
    expect(allocator.assignmentOf('ns/first')?.ips).toEqual(['192.0.2.3']);
  });

  it('restores a shared address for compatible Services', () => {
    const allocator = allocatorWith(...pools);
    ips(allocator.restore(req('ns/tcp', withSharingKey('k'), withPorts('53/TCP')), ['192.0.2.3']));
    check(allocator.restore(req('ns/udp', withSharingKey('k'), withPorts('53/UDP')), ['192.0.2.3']), { ok: true, pool: 'p', ips: ['192.0.2.3'] });
    check(allocator.restore(req('ns/clash', withSharingKey('k'), withPorts('53/UDP')), ['192.0.2.3']), { ok: false, reason: 'SharingConflict' });
  });

  it.each<[string, AllocationRequest, string[], Expected]>([
    [
      'an address of a pool scoped to another namespace',
      req('b/web'),
      ['198.51.100.1'],
      { ok: false, reason: 'AddressNotInAllowedPool', message: /limited to namespaces \[a\]/ },
    ],
    ['an address outside every pool', req('ns/web'), ['192.0.2.200'], { ok: false, reason: 'AddressNotInAllowedPool', message: /is not in any address pool/ }],
    ['garbage', req('ns/web'), ['192.0.2.1; rm -rf /'], { ok: false, reason: 'AddressNotInAllowedPool', message: /not a valid IP address/ }],
    ['two of one family', req('ns/web'), ['192.0.2.1', '192.0.2.2'], { ok: false, reason: 'AddressNotInAllowedPool', message: /more than one IPv4/ }],
    ['nothing', req('ns/web'), [], { ok: false, reason: 'AddressNotInAllowedPool', message: /no addresses/ }],
    ['addresses split over two pools', req('ns/web', withFamilies('RequireDualStack', 'IPv4', 'IPv6')), ['192.0.2.1', '2001:db8::1'], { ok: false, reason: 'AddressNotInAllowedPool' }],
    ['an address of an autoAssign: false pool', req('ns/web'), ['203.0.113.4'], { ok: true, pool: 'reserved', ips: ['203.0.113.4'] }],
  ])('%s', (_name, request, addresses, expected) => {
    const allocator = allocatorWith(...pools);
    check(allocator.restore(request, addresses), expected);
    if (!expected.ok) expect(allocator.assignmentOf(request.key)).toBeUndefined();
  });

  it('replaces what the key held before', () => {
    const allocator = allocatorWith(...pools);
    ips(allocator.assign(req('ns/web')));
    ips(allocator.restore(req('ns/web'), ['192.0.2.5']));
    expect(allocator.assignmentOf('ns/web')?.ips).toEqual(['192.0.2.5']);
    expect(ips(allocator.assign(req('ns/other')))).toEqual(['192.0.2.0']);
  });
});

describe('setPools', () => {
  it('releases the assignments of a removed pool and keeps the rest', () => {
    const allocator = allocatorWith(parsed('a', withAddresses('192.0.2.0/28')), parsed('b', withAddresses('198.51.100.0/28'), withPriority(1)));
    ips(allocator.assign(req('ns/on-b')));
    ips(allocator.assign(req('ns/on-a', withPool('a'))));
    const released = allocator.setPools([parsed('a', withAddresses('192.0.2.0/28'))]);
    expect(released).toEqual([{ key: 'ns/on-b', ips: ['198.51.100.0'], pool: 'b', reason: '198.51.100.0 is not in any address pool (all of a Service\'s addresses come from one pool)' }]);
    expect(allocator.assignmentOf('ns/on-b')).toBeUndefined();
    expect(allocator.assignmentOf('ns/on-a')?.ips).toEqual(['192.0.2.0']);
    expect(allocator.stats('b')).toBeUndefined();
  });

  it('releases only the addresses a shrunk pool no longer has', () => {
    const allocator = allocatorWith(parsed('p', withAddresses('192.0.2.0/29')));
    for (const key of ['ns/s0', 'ns/s1', 'ns/s2']) ips(allocator.assign(req(key)));
    const released = allocator.setPools([parsed('p', withAddresses('192.0.2.0/31'))]);
    expect(released.map((r) => [r.key, r.ips])).toEqual([['ns/s2', ['192.0.2.2']]]);
    expect(allocator.assignments().map((a) => a.key)).toEqual(['ns/s0', 'ns/s1']);
  });

  it.each<[string, ParsedPool, RegExp]>([
    ['narrowed namespaces', parsed('p', withAddresses('192.0.2.0/28'), withNamespaces('a')), /limited to namespaces \[a\]/],
    [
      'a namespaceSelector added',
      parsed('p', withAddresses('192.0.2.0/28'), withNamespaceSelector({ matchLabels: { 'kubernetes.io/metadata.name': 'a' } })),
      /namespaceSelector/,
    ],
    ['avoidBuggyIPs turned on', parsed('p', withAddresses('192.0.2.0/28'), withAvoidBuggyIPs), /192\.0\.2\.0 is not in any address pool/],
  ])('releases what a pool no longer allows: %s', (_name, changed, reason) => {
    const allocator = allocatorWith(parsed('p', withAddresses('192.0.2.0/28'), withNamespaces('a', 'b')));
    ips(allocator.assign(req('b/web')));
    ips(allocator.assign(req('a/web')));
    const released = allocator.setPools([changed]);
    expect(released).toHaveLength(1);
    expect(released[0]).toMatchObject({ key: 'b/web', ips: ['192.0.2.0'], pool: 'p' });
    expect(released[0]?.reason).toMatch(reason);
    expect(allocator.assignmentOf('a/web')?.ips).toEqual(['192.0.2.1']);
  });

  it('keeps assignments whose addresses move to a renamed pool', () => {
    const allocator = allocatorWith(parsed('old', withAddresses('192.0.2.0/28')));
    ips(allocator.assign(req('ns/web')));
    expect(allocator.setPools([parsed('new', withAddresses('192.0.2.0/24'))])).toEqual([]);
    expect(allocator.assignmentOf('ns/web')).toEqual({ key: 'ns/web', pool: 'new', ips: ['192.0.2.0'] });
    expect(allocator.poolOf('192.0.2.0')).toBe('new');
  });

  it('releases a Service whose named pool is gone even if another pool has the address', () => {
    const allocator = allocatorWith(parsed('old', withAddresses('192.0.2.0/28')));
    ips(allocator.assign(req('ns/web', withPool('old'))));
    const released = allocator.setPools([parsed('new', withAddresses('192.0.2.0/24'))]);
    expect(released.map((r) => r.key)).toEqual(['ns/web']);
    expect(released[0]?.reason).toMatch(/not to pool 'old'/);
  });

  it('freezes the newer of two overlapping pools; the older keeps handing out addresses', () => {
    const good = parsed('good', withAddresses('192.0.2.0/28'));
    const allocator = allocatorWith(good);
    ips(allocator.assign(req('ns/existing')));
    const mistake = parsed('mistake', withAddresses('192.0.2.8/29'));
    expect(allocator.setPools([good, mistake])).toEqual([]);
    expect(allocator.assignmentOf('ns/existing')?.ips).toEqual(['192.0.2.0']);
    check(allocator.assign(req('ns/existing')), { ok: true, pool: 'good', ips: ['192.0.2.0'] });
    // A new overlapping pool never disables a valid older one.
    check(allocator.assign(req('ns/new')), { ok: true, pool: 'good', ips: ['192.0.2.1'] });
    check(allocator.assign(req('ns/asks', withIPs('192.0.2.3'))), { ok: true, pool: 'good', ips: ['192.0.2.3'] });
    check(allocator.assign(req('ns/names', withPool('mistake'))), { ok: false, reason: 'PoolNotAllowed', message: /pool 'mistake' overlaps pool 'good'/ });
    // A restart in this state restores what Services already had.
    const restarted = allocatorWith(good, mistake);
    check(restarted.restore(req('ns/existing'), ['192.0.2.0']), { ok: true, pool: 'good', ips: ['192.0.2.0'] });

    expect(allocator.setPools([good])).toEqual([]);
    check(allocator.assign(req('ns/next')), { ok: true, pool: 'good', ips: ['192.0.2.2'] });
  });

  it('refuses two pools with one name', () => {
    const allocator = new Allocator();
    expect(() => allocator.setPools([parsed('p', withAddresses('192.0.2.0/28')), parsed('p', withAddresses('198.51.100.0/28'))])).toThrow(
      AllocatorError,
    );
  });
});

describe('determinism', () => {
  const pools = [
    parsed('alpha', withAddresses('192.0.2.0/30')),
    parsed('beta', withAddresses('198.51.100.0/30', '2001:db8::/126'), withPriority(3)),
    parsed('gamma', withAddresses('203.0.113.0/30'), withNamespaces('team')),
    parsed('delta', withAddresses('2001:db8:1::/126'), withPriority(3)),
  ];
  const requests = [
    req('team/a'),
    req('team/b', withFamilies('RequireDualStack', 'IPv4', 'IPv6')),
    req('other/c', withFamilies('PreferDualStack', 'IPv6', 'IPv4')),
    req('other/d', withSharingKey('k'), withPorts(80)),
    req('other/e', withSharingKey('k'), withPorts(443)),
    req('other/f', withIPs('192.0.2.3')),
    req('other/g', withFamilies('SingleStack', 'IPv6')),
    req('other/h', withPool('gamma')),
    ...Array.from({ length: 8 }, (_, i) => req(`other/fill${i}`)),
  ];

  function permutations<T>(items: readonly T[]): T[][] {
    if (items.length <= 1) return [[...items]];
    return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
  }

  it('gives the same results whatever order the pools are listed in', () => {
    const run = (order: ParsedPool[]): unknown[] => {
      const allocator = allocatorWith(...order);
      const results: unknown[] = requests.map((r) => allocator.assign(r));
      results.push(allocator.setPools(order.filter((p) => p.name !== 'beta')));
      results.push(...pools.map((p) => allocator.stats(p.name)));
      return results;
    };
    const all = permutations(pools).map(run);
    expect(all).toHaveLength(24);
    for (const result of all) expect(result).toEqual(all[0]);
    // And the reference run is what the rules say.
    expect((all[0] ?? []).slice(0, 4)).toEqual([
      { ok: true, pool: 'gamma', ips: ['203.0.113.0'] },
      { ok: true, pool: 'beta', ips: ['198.51.100.0', '2001:db8::'] },
      { ok: true, pool: 'beta', ips: ['2001:db8::1', '198.51.100.1'] },
      { ok: true, pool: 'beta', ips: ['198.51.100.2'] },
    ]);
  });
});

describe('stats and poolOf', () => {
  it('counts shared addresses once per family and caps huge pools', () => {
    const allocator = allocatorWith(parsed('p', withAddresses('192.0.2.0/28', '2001:db8::/32')));
    ips(allocator.assign(req('ns/a', withSharingKey('k'), withPorts(80), withFamilies('RequireDualStack', 'IPv4', 'IPv6'))));
    ips(allocator.assign(req('ns/b', withSharingKey('k'), withPorts(443), withFamilies('RequireDualStack', 'IPv4', 'IPv6'))));
    ips(allocator.assign(req('ns/c')));
    expect(allocator.assignmentOf('ns/b')?.ips).toEqual(['192.0.2.0', '2001:db8::']);
    expect(allocator.stats('p')).toEqual({
      assignedIPv4: 2,
      assignedIPv6: 1,
      availableIPv4: 14,
      availableIPv6: Number.MAX_SAFE_INTEGER,
    });
    expect(allocator.stats('missing')).toBeUndefined();
  });

  it.each([
    ['192.0.2.0', 'held'],
    ['192.0.2.9', 'held'],
    ['198.51.100.1', 'other'],
    ['203.0.113.1', undefined],
    ['not an ip', undefined],
    ['2001:DB8::', 'other'],
  ])('poolOf(%s) is %s', (ip, expected) => {
    const allocator = allocatorWith(parsed('held', withAddresses('192.0.2.0/28')), parsed('other', withAddresses('198.51.100.0/28', '2001:db8::/64')));
    ips(allocator.assign(req('ns/web', withPool('held'))));
    expect(allocator.poolOf(ip)).toBe(expected);
  });
});

describe('assign is transactional', () => {
  it('a Service whose new request fails keeps its old address, which is not handed to anyone else', () => {
    const a = new Allocator();
    a.setPools([parsed('p', withAddresses('203.0.113.10-203.0.113.12'))]);
    expect(a.assign(req('ns/a'))).toMatchObject({ ok: true, ips: ['203.0.113.10'] });
    expect(a.assign(req('ns/b'))).toMatchObject({ ok: true, ips: ['203.0.113.11'] });
    // a now asks for b's address: refused, and a still holds .10.
    expect(a.assign(req('ns/a', withIPs('203.0.113.11')))).toMatchObject({ ok: false, reason: 'AddressInUse' });
    expect(a.assignmentOf('ns/a')?.ips).toEqual(['203.0.113.10']);
    expect(a.assign(req('ns/c'))).toMatchObject({ ok: true, ips: ['203.0.113.12'] });
  });

  it('releases the old address when it is no longer valid for the Service either', () => {
    const a = new Allocator();
    a.setPools([parsed('p', withAddresses('203.0.113.10/31'))]);
    a.assign(req('ns/a'));
    a.setPools([parsed('q', withAddresses('198.51.100.0/31'), withNamespaces('other'))]);
    expect(a.assign(req('ns/a')).ok).toBe(false);
    expect(a.assignmentOf('ns/a')).toBeUndefined();
  });
});

describe('frozen pools', () => {
  it('keep what they gave out and give out nothing new', () => {
    const a = new Allocator();
    const p = parsed('p', withAddresses('203.0.113.10/31'));
    a.setPools([p]);
    a.assign(req('ns/a'));
    expect(a.setPools([p], new Map([['p', 'its spec is invalid']]))).toEqual([]);
    expect(a.assignmentOf('ns/a')?.ips).toEqual(['203.0.113.10']);
    const refused = a.assign(req('ns/b'));
    expect(refused.ok).toBe(false);
    expect(refused.ok ? '' : refused.message).toContain('its spec is invalid');
  });
});

describe('reserved addresses (never handed out by default)', () => {
  it.each<[string, string, string[]]>([
    ['a CIDR pool skips its network and broadcast address', '192.0.2.0/30', ['192.0.2.1', '192.0.2.2']],
    ['an IPv6 CIDR skips its subnet-router anycast address', '2001:db8::/126', ['2001:db8::1', '2001:db8::2', '2001:db8::3']],
    ['a /31 has no network or broadcast address (RFC 3021)', '192.0.2.0/31', ['192.0.2.0', '192.0.2.1']],
    ['a range is taken as written', '192.0.2.0-192.0.2.2', ['192.0.2.0', '192.0.2.1', '192.0.2.2']],
    ['0.0.0.0/0 never hands out 0.0.0.0, loopback or link-local first', '0.0.0.0/0', ['1.0.0.0', '1.0.0.1', '1.0.0.2']],
  ])('%s', (_name, cidr, want) => {
    const family = cidr.includes(':') ? 'IPv6' : 'IPv4';
    const allocator = allocatorWith(parsed('p', withAddresses(cidr), withDefaultReservations));
    const got = want.map((_, i) => ips(allocator.assign(req(`ns/s${String(i)}`, withFamilies('SingleStack', family)))));
    expect(got.flat()).toEqual(want);
  });

  it.each<[string, string, string, RegExp]>([
    ['unspecified', '0.0.0.0/0', '0.0.0.0', /unspecified/],
    ['loopback', '127.0.0.0/8', '127.0.0.1', /loopback/],
    ['cloud metadata', '169.254.0.0/16', '169.254.169.254', /link-local/],
    ['multicast', '224.0.0.0/24', '224.0.0.1', /multicast/],
    ['limited broadcast', '255.255.255.0/24', '255.255.255.255', /broadcast/],
    ['IPv6 loopback', '::/120', '::1', /loopback/],
    ['IPv6 all-nodes multicast', 'ff02::/120', 'ff02::1', /multicast/],
  ])('refuses a requested %s address', (_name, cidr, ip, why) => {
    const allocator = allocatorWith(parsed('p', withAddresses(cidr), withDefaultReservations));
    const family = ip.includes(':') ? 'IPv6' : 'IPv4';
    check(allocator.assign(req('ns/s', withFamilies('SingleStack', family), withIPs(ip))), { ok: false, reason: 'AddressReserved', field: LOAD_BALANCER_IPS_FIELD, message: why });
  });

  it('hands them out when the pool opts in (allowSpecialAddresses)', () => {
    const allocator = allocatorWith(parsed('p', withAddresses('127.0.0.0/30')));
    expect(ips(allocator.assign(req('ns/s')))).toEqual(['127.0.0.0']);
  });

  it('never hands out the cluster\'s own ranges, opt-in or not, and releases what falls inside them', () => {
    const allocator = allocatorWith(parsed('p', withAddresses('192.0.2.0/29')));
    ips(allocator.assign(req('ns/a')));
    const released = allocator.setClusterReservations([
      { family: 'IPv4', start: 0xc0000200n, end: 0xc0000201n, why: 'Service CIDR 192.0.2.0/31' },
      { family: 'IPv4', start: 0xc0000203n, end: 0xc0000203n, why: 'address of node n1' },
    ]);
    expect(released).toEqual([{ key: 'ns/a', ips: ['192.0.2.0'], pool: 'p', reason: '192.0.2.0 is reserved (Service CIDR 192.0.2.0/31) and never handed out' }]);
    expect([ips(allocator.assign(req('ns/a'))), ips(allocator.assign(req('ns/b')))]).toEqual([['192.0.2.2'], ['192.0.2.4']]);
    check(allocator.assign(req('ns/c', withIPs('192.0.2.3'))), { ok: false, reason: 'AddressReserved', message: /address of node n1/ });
    expect(allocator.stats('p')).toMatchObject({ assignedIPv4: 2, availableIPv4: 3 });
  });
});

describe('first holder keeps a shared address', () => {
  it('moves the newcomer, not the first holder, when the first holder later takes a port the newcomer uses', () => {
    const allocator = allocatorWith(parsed('p', withAddresses('192.0.2.0/28')));
    const first = ips(allocator.assign(req('a/owner', withSharingKey('k'), withPorts(80))));
    expect(ips(allocator.assign(req('a/guest', withIPs(first[0] ?? ''), withSharingKey('k'), withPorts(443))))).toEqual(first);
    const changed = allocator.assign(req('a/owner', withSharingKey('k'), withPorts(80, 443)));
    expect(changed).toMatchObject({ ok: true, ips: first, evicted: [{ key: 'a/guest', ips: first, pool: 'p' }] });
    if (changed.ok) expect(changed.evicted?.[0]?.reason).toMatch(/a\/owner, which held 192\.0\.2\.0 first, changed: both Services use port 443\/TCP/);
    expect(allocator.assignmentOf('a/guest')).toBeUndefined();
    expect(ips(allocator.assign(req('a/guest', withSharingKey('k'), withPorts(443))))).not.toEqual(first);
  });

  it('moves a newcomer that breaks sharing itself (it joined later)', () => {
    const allocator = allocatorWith(parsed('p', withAddresses('192.0.2.0/28')));
    const first = ips(allocator.assign(req('a/owner', withSharingKey('k'), withPorts(80))));
    ips(allocator.assign(req('a/guest', withIPs(first[0] ?? ''), withSharingKey('k'), withPorts(443))));
    expect(ips(allocator.assign(req('a/guest', withSharingKey('k'), withPorts(80))))).not.toEqual(first);
    expect(allocator.assignmentOf('a/owner')?.ips).toEqual(first);
  });

  it('shares across namespaces only in a pool that opts in', () => {
    const allocator = allocatorWith(parsed('open', withAddresses('198.51.100.0/28'), withCrossNamespaceSharing, withPriority(1)), parsed('p', withAddresses('192.0.2.0/28')));
    const a = ips(allocator.assign(req('a/svc', withSharingKey('k'), withPorts(80), withPool('open'))));
    expect(ips(allocator.assign(req('b/svc', withSharingKey('k'), withPorts(443), withPool('open'))))).toEqual(a);
    const c = ips(allocator.assign(req('a/other', withSharingKey('k2'), withPorts(80), withPool('p'))));
    check(allocator.assign(req('b/other', withSharingKey('k2'), withPorts(443), withIPs(c[0] ?? ''))), { ok: false, reason: 'SharingConflict', message: /another namespace/ });
  });
});
