import { describe, expect, it } from 'vitest';
import { parseCIDR } from '../../../src/ipam/ip.js';
import { checkAddress, EMPTY_POLICY, parseAllowList, parseCIDRList, type AddressPolicy } from '../../../src/reconcile/externalservice/policy.js';

const cluster: AddressPolicy = {
  serviceCIDRs: parseCIDRList('10.96.0.0/12,fd00:96::/108'),
  podCIDRs: parseCIDRList('10.244.0.0/16'),
  deny: parseCIDRList('192.0.2.64/26'),
  allow: [],
};

describe('checkAddress', () => {
  it.each([
    ['0.0.0.0', 'Unspecified'],
    ['0.1.2.3', 'Unspecified'],
    ['::', 'Unspecified'],
    ['127.0.0.1', 'Loopback'],
    ['127.255.0.9', 'Loopback'],
    ['::1', 'Loopback'],
    ['169.254.1.1', 'LinkLocal'],
    ['fe80::1', 'LinkLocal'],
    ['febf::1', 'LinkLocal'],
    ['224.0.0.251', 'LinkLocalMulticast'],
    ['ff02::1', 'LinkLocalMulticast'],
    ['169.254.169.254', 'CloudMetadata'],
    ['fd00:ec2::254', 'CloudMetadata'],
    ['100.100.100.200', 'CloudMetadata'],
    ['10.96.0.1', 'ServiceCIDR'],
    ['fd00:96::a', 'ServiceCIDR'],
    ['10.244.3.7', 'PodCIDR'],
    ['192.0.2.100', 'Denied'],
    ['::ffff:169.254.169.254', 'InvalidAddress'],
    ['fe80::1%eth0', 'InvalidAddress'],
    ['010.0.0.1', 'InvalidAddress'],
    ['db.example.com', 'InvalidAddress'],
  ])('refuses %s (%s)', (address, reason) => {
    const verdict = checkAddress(cluster, 'team', address);
    expect(verdict).toMatchObject({ allowed: false, reason });
  });

  it.each(['203.0.113.10', '198.51.100.7', '2001:db8::1', '192.0.2.63', '224.0.1.1', '100.100.100.201', '10.95.255.255'])('allows %s', (address) => {
    expect(checkAddress(cluster, 'team', address).allowed).toBe(true);
  });

  it('names the CIDR that refused an address', () => {
    expect(checkAddress(cluster, 'team', '10.244.3.7')).toMatchObject({ detail: expect.stringContaining('10.244.0.0/16') as unknown });
  });

  it('lets an allow list narrow a namespace, with * for namespaces without their own rule', () => {
    const policy: AddressPolicy = { ...EMPTY_POLICY, allow: parseAllowList('payments=198.51.100.0/28;*=203.0.113.0/24') };
    const table: [string, string, boolean][] = [
      ['payments', '198.51.100.5', true],
      ['payments', '203.0.113.10', false],
      ['web', '203.0.113.10', true],
      ['web', '198.51.100.5', false],
    ];
    for (const [namespace, address, allowed] of table) expect(checkAddress(policy, namespace, address).allowed, `${namespace} ${address}`).toBe(allowed);
    expect(checkAddress(policy, 'web', '198.51.100.5')).toMatchObject({ reason: 'NotAllowed' });
  });

  it('never lets an allow list re-open a built-in refusal', () => {
    const policy: AddressPolicy = { ...EMPTY_POLICY, allow: [{ namespace: '*', cidrs: [parseCIDR('169.254.0.0/16')] }] };
    expect(checkAddress(policy, 'x', '169.254.169.254')).toMatchObject({ allowed: false, reason: 'CloudMetadata' });
  });

  it('parses the allow list flag and refuses bad input', () => {
    expect(parseAllowList('a=192.0.2.0/24,2001:db8::/32; b=198.51.100.0/24').map((r) => [r.namespace, r.cidrs.length])).toEqual([
      ['a', 2],
      ['b', 1],
    ]);
    expect(() => parseAllowList('192.0.2.0/24')).toThrow(/namespace=cidr/);
    expect(() => parseCIDRList('192.0.2.1/24')).toThrow();
  });
});
