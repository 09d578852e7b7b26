import { describe, expect, it } from 'vitest';
import { parseIP } from '../../../../src/ipam/ip.js';
import {
  decodeArp,
  decodeNeighborAdvertisement,
  decodeNeighborSolicitation,
  encodeArpReply,
  encodeArpRequest,
  encodeGratuitousArp,
  encodeNeighborAdvertisement,
  encodeNeighborSolicitation,
  encodeUnsolicitedNeighborAdvertisement,
  multicastMac,
  solicitedNodeAddress,
} from '../../../../src/providers/metallb-like/speaker/frames.js';

const CLIENT = '02:00:00:00:00:0a';
const SPEAKER = '02:00:00:00:00:0b';
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// Captured from Linux 6.x: `ping 192.0.2.200` / `ping -6 2001:db8:2::200` from 192.0.2.100 /
// 2001:db8:2::100 on an interface with MAC 02:00:00:00:00:0a.
const KERNEL_ARP_REQUEST = hex('ffffffffffff 02000000000a 0806 0001 0800 06 04 0001 02000000000a c0000264 000000000000 c00002c8');
const KERNEL_NS = hex(
  '3333ff000200 02000000000a 86dd 60000000 0020 3a ff 20010db8000200000000000000000100 ff0200000000000000000001ff000200' +
    '87 00 171f 00000000 20010db8000200000000000000000200 0101 02000000000a',
);

// Expected output, from an independent implementation (Python struct + RFC 1071 checksum);
// KERNEL_NS above is byte-identical to what that implementation makes for the same NS.
const GOLDEN = {
  arpReply: '02000000000a02000000000b0806000108000604000202000000000bc00002c802000000000ac0000264000000000000000000000000000000000000',
  garp: 'ffffffffffff02000000000b0806000108000604000102000000000bc00002c8000000000000c00002c8000000000000000000000000000000000000',
  na: '02000000000a02000000000b86dd6000000000203aff20010db800020000000000000000020020010db8000200000000000000000100880085676000000020010db8000200000000000000000200020102000000000b',
  unsolicitedNa: '33330000000102000000000b86dd6000000000203aff20010db8000200000000000000000200ff0200000000000000000000000000018800f51e2000000020010db8000200000000000000000200020102000000000b',
};

describe('ARP', () => {
  it('decodes a request the Linux kernel sent', () => {
    expect(decodeArp(KERNEL_ARP_REQUEST)).toEqual({
      operation: 'request',
      ethDestination: 'ff:ff:ff:ff:ff:ff',
      ethSource: CLIENT,
      senderMac: CLIENT,
      senderIP: parseIP('192.0.2.100'),
      targetMac: '00:00:00:00:00:00',
      targetIP: parseIP('192.0.2.200'),
    });
  });

  it.each([
    ['the reply to that request, unicast to the asker', () => {
      const request = decodeArp(KERNEL_ARP_REQUEST);
      if (!request) throw new Error('undecodable');
      return encodeArpReply(request, SPEAKER);
    }, GOLDEN.arpReply],
    ['a gratuitous ARP (broadcast request, sender = target IP)', () => encodeGratuitousArp(parseIP('192.0.2.200'), SPEAKER), GOLDEN.garp],
  ])('encodes %s', (_, make, golden) => {
    expect(make().toString('hex')).toBe(golden);
  });

  it('round-trips a request', () => {
    const frame = encodeArpRequest(CLIENT, parseIP('192.0.2.100'), parseIP('192.0.2.200'));
    expect(decodeArp(frame)).toMatchObject({ operation: 'request', senderMac: CLIENT, targetIP: parseIP('192.0.2.200') });
  });

  it.each([
    ['too short', KERNEL_ARP_REQUEST.subarray(0, 30)],
    ['not ARP', Buffer.concat([KERNEL_ARP_REQUEST.subarray(0, 12), hex('0800'), KERNEL_ARP_REQUEST.subarray(14)])],
    ['not Ethernet/IPv4', Buffer.concat([KERNEL_ARP_REQUEST.subarray(0, 14), hex('0006'), KERNEL_ARP_REQUEST.subarray(16)])],
    ['an unknown operation', Buffer.concat([KERNEL_ARP_REQUEST.subarray(0, 20), hex('0003'), KERNEL_ARP_REQUEST.subarray(22)])],
  ])('drops a frame that is %s', (_, frame) => {
    expect(decodeArp(frame)).toBeUndefined();
  });
});

describe('IPv6 neighbour discovery', () => {
  it('decodes a Neighbor Solicitation the Linux kernel sent', () => {
    expect(decodeNeighborSolicitation(KERNEL_NS)).toEqual({
      ethSource: CLIENT,
      source: parseIP('2001:db8:2::100'),
      destination: parseIP('ff02::1:ff00:200'),
      target: parseIP('2001:db8:2::200'),
      sourceLinkLayer: CLIENT,
    });
  });

  it('encodes a solicitation byte-identical to the kernel', () => {
    expect(encodeNeighborSolicitation(CLIENT, parseIP('2001:db8:2::100'), parseIP('2001:db8:2::200'))).toEqual(KERNEL_NS);
  });

  it.each([
    ['the solicited advertisement (S+O flags, unicast to the asker)', () => {
      const ns = decodeNeighborSolicitation(KERNEL_NS);
      if (!ns) throw new Error('undecodable');
      return encodeNeighborAdvertisement(ns, SPEAKER);
    }, GOLDEN.na],
    ['an unsolicited advertisement (O flag, to all-nodes)', () => encodeUnsolicitedNeighborAdvertisement(parseIP('2001:db8:2::200'), SPEAKER), GOLDEN.unsolicitedNa],
  ])('encodes %s', (_, make, golden) => {
    expect(make().toString('hex')).toBe(golden);
  });

  it('decodes what it encodes, checksum included', () => {
    expect(decodeNeighborAdvertisement(hex(GOLDEN.na))).toEqual({
      ethSource: SPEAKER,
      source: parseIP('2001:db8:2::200'),
      destination: parseIP('2001:db8:2::100'),
      target: parseIP('2001:db8:2::200'),
      solicited: true,
      override: true,
      targetLinkLayer: SPEAKER,
    });
  });

  it('answers duplicate address detection (from ::) to all-nodes', () => {
    const ns = decodeNeighborSolicitation(KERNEL_NS);
    if (!ns) throw new Error('undecodable');
    const frame = encodeNeighborAdvertisement({ ...ns, source: parseIP('::'), sourceLinkLayer: undefined }, SPEAKER);
    expect(frame.toString('hex')).toBe(GOLDEN.unsolicitedNa);
  });

  const corrupt = (offset: number, value: number): Buffer => {
    const copy = Buffer.from(KERNEL_NS);
    copy[offset] = value;
    return copy;
  };
  it.each([
    ['a bad checksum', corrupt(56, 0x00)],
    ['a hop limit other than 255', corrupt(21, 64)],
    ['another ICMPv6 type', corrupt(54, 128)],
    ['a multicast target', corrupt(62, 0xff)],
    ['a zero-length option', corrupt(79, 0)],
    ['a truncated payload', KERNEL_NS.subarray(0, 70)],
  ])('drops a solicitation with %s', (_, frame) => {
    expect(decodeNeighborSolicitation(frame)).toBeUndefined();
  });

  it.each([
    ['2001:db8:2::200', 'ff02::1:ff00:200', '33:33:ff:00:02:00'],
    ['2001:db8::abcd:1234:5678', 'ff02::1:ff34:5678', '33:33:ff:34:56:78'],
  ])('%s solicits at %s (%s)', (target, group, mac) => {
    const address = solicitedNodeAddress(parseIP(target));
    expect(address).toEqual(parseIP(group));
    expect(multicastMac(address)).toBe(mac);
  });
});
