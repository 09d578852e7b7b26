import { describe, expect, it } from 'vitest';
import {
  AddressParseError,
  canonicalIP,
  compareIP,
  formatIP,
  formatRange,
  parseAddressRange,
  parseCIDR,
  parseIP,
  parseRange,
  rangeContains,
  rangesOverlap,
  rangeSize,
  tryParseIP,
} from '../../src/ipam/ip.js';

describe('parseIP and canonical formatting', () => {
  it.each([
    ['192.0.2.1', 'IPv4', '192.0.2.1', 0xc0000201n],
    ['0.0.0.0', 'IPv4', '0.0.0.0', 0n],
    ['255.255.255.255', 'IPv4', '255.255.255.255', 0xffffffffn],
    ['2001:db8::1', 'IPv6', '2001:db8::1', 0x20010db8000000000000000000000001n],
    ['2001:DB8::1', 'IPv6', '2001:db8::1', 0x20010db8000000000000000000000001n],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', 'IPv6', '2001:db8::1', 0x20010db8000000000000000000000001n],
    ['::', 'IPv6', '::', 0n],
    ['::1', 'IPv6', '::1', 1n],
    ['2001:db8::', 'IPv6', '2001:db8::', 0x20010db8n << 96n],
    // RFC 5952 4.2.2: a single zero group is not compressed.
    ['2001:db8:0:1:1:1:1:1', 'IPv6', '2001:db8:0:1:1:1:1:1', 0x20010db8000000010001000100010001n],
    // RFC 5952 4.2.3: the longest run is compressed; on a tie, the first one.
    ['2001:0:0:1:0:0:0:1', 'IPv6', '2001:0:0:1::1', 0x20010000000000010000000000000001n],
    ['2001:db8:0:0:1:0:0:1', 'IPv6', '2001:db8::1:0:0:1', 0x20010db8000000000001000000000001n],
    ['2001:db8::0:1', 'IPv6', '2001:db8::1', 0x20010db8000000000000000000000001n],
    // Embedded dotted IPv4 is valid IPv6 text; the canonical form is hexadecimal.
    ['2001:db8::192.0.2.1', 'IPv6', '2001:db8::c000:201', 0x20010db80000000000000000c0000201n],
    ['2001:db8:1:2:3:4:192.0.2.1', 'IPv6', '2001:db8:1:2:3:4:c000:201', 0x20010db8000100020003000400000000n | 0xc0000201n],
  ] as const)('%s is %s %s', (text, family, canonical, value) => {
    const address = parseIP(text);
    expect(address).toEqual({ family, value });
    expect(formatIP(address)).toBe(canonical);
    expect(canonicalIP(text)).toBe(canonical);
  });

  it.each([
    ['', /empty/],
    ['1.2.3', /four dot-separated octets/],
    ['1.2.3.4.5', /four dot-separated octets/],
    ['1.2.3.', /empty octet/],
    ['256.0.0.1', /exceeds 255/],
    ['1.2.3.1000', /exceeds 255/],
    ['1.2.3.99999999999999999999', /exceeds 255/],
    ['010.0.0.1', /leading zero/],
    ['192.0.2.01', /leading zero/],
    ['0x7f.0.0.1', /not a decimal number/],
    ['-1.0.0.0', /not a decimal number/],
    ['1.2.3.4 ', /whitespace/],
    [' 1.2.3.4', /whitespace/],
    ['1.2.3.4\n', /whitespace/],
    ['1.2.3.4\u0000', /control/],
    ['１.２.３.４', /non-ASCII/],
    ['١٩٢.0.2.1', /non-ASCII/],
    ['x'.repeat(10_000), /too long/],
    ['fe80::1%eth0', /zone/],
    ['::ffff:192.0.2.1', /IPv4-mapped.*192\.0\.2\.1/],
    ['::ffff:c000:201', /IPv4-mapped/],
    ['2001:db8:::1', /only once/],
    ['2001:db8::1::2', /only once/],
    [':2001:db8::1', /empty group/],
    ['2001:db8::1:', /empty group/],
    ['1:2:3:4:5:6:7', /eight groups/],
    ['1:2:3:4:5:6:7:8:9', /eight groups/],
    ['1:2:3:4:5:6:7::8', /too many groups/],
    ['2001:db8::12345', /1 to 4 hexadecimal/],
    ['2001:db8::g', /1 to 4 hexadecimal/],
    ['192.0.2.1::', /1 to 4 hexadecimal/],
    ['2001:db8::192.0.2.1:1', /1 to 4 hexadecimal/],
    ['2001:db8::300.0.2.1', /exceeds 255/],
    ['192.0.2.1/32', /not a decimal number/],
  ])('rejects %j (%s)', (text, message) => {
    expect(() => parseIP(text)).toThrow(AddressParseError);
    expect(() => parseIP(text)).toThrow(message);
    expect(tryParseIP(text)).toBeUndefined();
  });

  it('rejects non-strings from untyped callers without crashing', () => {
    expect(() => parseIP(42 as unknown as string)).toThrow(/expected a string, got number/);
  });

  it('keeps error messages short for huge inputs', () => {
    try {
      parseIP('9'.repeat(1_000_000));
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(AddressParseError);
      expect((error as AddressParseError).message.length).toBeLessThan(200);
      expect((error as AddressParseError).input.length).toBeLessThanOrEqual(65);
    }
  });

  it('orders IPv4 before IPv6, then numerically', () => {
    const sorted = ['2001:db8::1', '198.51.100.1', '192.0.2.9', '2001:db8::']
      .map(parseIP)
      .sort(compareIP)
      .map(formatIP);
    expect(sorted).toEqual(['192.0.2.9', '198.51.100.1', '2001:db8::', '2001:db8::1']);
  });
});

describe('parseCIDR', () => {
  it.each([
    ['192.0.2.0/24', 'IPv4', '192.0.2.0', '192.0.2.255', 256n],
    ['192.0.2.7/32', 'IPv4', '192.0.2.7', '192.0.2.7', 1n],
    ['0.0.0.0/0', 'IPv4', '0.0.0.0', '255.255.255.255', 1n << 32n],
    ['2001:db8::/32', 'IPv6', '2001:db8::', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', 1n << 96n],
    ['2001:db8::/126', 'IPv6', '2001:db8::', '2001:db8::3', 4n],
    ['2001:db8::1/128', 'IPv6', '2001:db8::1', '2001:db8::1', 1n],
    ['::/0', 'IPv6', '::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 1n << 128n],
  ] as const)('%s', (text, family, first, last, size) => {
    const cidr = parseCIDR(text);
    expect(cidr.family).toBe(family);
    expect(formatIP({ family, value: cidr.start })).toBe(first);
    expect(formatIP({ family, value: cidr.end })).toBe(last);
    expect(rangeSize(cidr)).toBe(size);
  });

  it.each([
    ['192.0.2.5/24', /host bits set, did you mean 192\.0\.2\.0\/24/],
    ['2001:db8::1/64', /host bits set, did you mean 2001:db8::\/64/],
    ['1.2.3.4/33', /prefix length 33 exceeds 32/],
    ['::/129', /prefix length 129 exceeds 128/],
    ['192.0.2.0/024', /leading zeros/],
    ['192.0.2.0/-1', /not a decimal number/],
    ['192.0.2.0/', /missing the prefix length/],
    ['/24', /missing the address/],
    ['192.0.2.0/24/24', /one '\/'/],
    ['192.0.2.0/99999999999999999999999', /not a decimal number/],
    ['192.0.2.0 /24', /whitespace/],
    ['1.2.3/24', /four dot-separated octets/],
  ])('rejects %s', (text, message) => {
    expect(() => parseCIDR(text)).toThrow(AddressParseError);
    expect(() => parseCIDR(text)).toThrow(message);
  });
});

describe('parseRange and parseAddressRange', () => {
  it.each([
    ['192.0.2.10-192.0.2.20', '192.0.2.10-192.0.2.20', 11n],
    ['192.0.2.10-192.0.2.10', '192.0.2.10', 1n],
    ['2001:db8::1-2001:db8::ff', '2001:db8::1-2001:db8::ff', 255n],
    ['2001:DB8:0::1-2001:db8::2', '2001:db8::1-2001:db8::2', 2n],
  ])('%s', (text, formatted, size) => {
    const range = parseRange(text);
    expect(formatRange(range)).toBe(formatted);
    expect(rangeSize(range)).toBe(size);
    expect(parseAddressRange(text)).toEqual(range);
  });

  it.each([
    ['192.0.2.20-192.0.2.10', /192\.0\.2\.20 comes after 192\.0\.2\.10/],
    ['192.0.2.1-2001:db8::1', /mixes IPv4 and IPv6/],
    ['192.0.2.1-', /missing the last address/],
    ['-192.0.2.1', /missing the first address/],
    ['192.0.2.1-192.0.2.2-192.0.2.3', /one '-'/],
    ['192.0.2.1 - 192.0.2.2', /whitespace/],
    ['192.0.2.1-192.0.2.256', /exceeds 255/],
  ])('rejects %s', (text, message) => {
    expect(() => parseRange(text)).toThrow(AddressParseError);
    expect(() => parseRange(text)).toThrow(message);
  });

  it.each([
    ['192.0.2.1', /single address is not a range; did you mean 192\.0\.2\.1\/32/],
    ['2001:db8::1', /did you mean 2001:db8::1\/128/],
    ['192.0.2.5/24', /host bits set/],
    ['nonsense', /four dot-separated octets/],
  ])('parseAddressRange rejects %s', (text, message) => {
    expect(() => parseAddressRange(text)).toThrow(message);
  });
});

describe('containment and overlap', () => {
  const v4 = parseCIDR('192.0.2.0/28');
  it.each([
    ['192.0.2.0', true],
    ['192.0.2.15', true],
    ['192.0.2.16', false],
    ['198.51.100.1', false],
    // Same numeric value in the other family is never contained.
    ['::c000:201', false],
  ])('192.0.2.0/28 contains %s: %s', (text, contained) => {
    expect(rangeContains(v4, parseIP(text))).toBe(contained);
  });

  it.each([
    ['192.0.2.0/28', '192.0.2.15-192.0.2.20', true],
    ['192.0.2.0/28', '192.0.2.16-192.0.2.20', false],
    ['192.0.2.0/24', '192.0.2.128/25', true],
    ['192.0.2.10-192.0.2.12', '192.0.2.0/28', true],
    ['192.0.2.0/28', '198.51.100.0/28', false],
    ['2001:db8::/126', '2001:db8::3-2001:db8::9', true],
    ['0.0.0.0/0', '::/0', false],
  ])('%s and %s overlap: %s', (a, b, overlap) => {
    expect(rangesOverlap(parseAddressRange(a), parseAddressRange(b))).toBe(overlap);
    expect(rangesOverlap(parseAddressRange(b), parseAddressRange(a))).toBe(overlap);
  });
});
