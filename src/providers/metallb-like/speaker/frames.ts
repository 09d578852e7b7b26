/**
 * Ethernet frames the speaker sends and receives: ARP (RFC 826, gratuitous per RFC 5227) and
 * ICMPv6 Neighbor Solicitation / Advertisement (RFC 4861) inside IPv6. Pure byte encoding and
 * decoding, no I/O. Decoders return undefined for anything that is not a well-formed frame of
 * their kind, so a hostile or odd frame is dropped, never thrown on.
 */
import { formatIP, type IPAddress } from '../../../ipam/ip.js';

export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERNET_HEADER_LENGTH = 14;
/** Ethernet frames shorter than this (without FCS) are padded. */
export const MIN_FRAME_LENGTH = 60;
export const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';
export const ALL_NODES_IPV6: IPAddress = { family: 'IPv6', value: 0xff020000000000000000000000000001n };

const ARP_REQUEST = 1;
const ARP_REPLY = 2;
const ICMPV6 = 58;
const NEIGHBOR_SOLICITATION = 135;
const NEIGHBOR_ADVERTISEMENT = 136;
const OPTION_SOURCE_LINK_LAYER = 1;
const OPTION_TARGET_LINK_LAYER = 2;
const NA_FLAG_SOLICITED = 0x40;
const NA_FLAG_OVERRIDE = 0x20;

/** "aa:bb:cc:dd:ee:ff" -> 6 bytes. */
export function macToBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`not a MAC address: ${mac}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

export function bytesToMac(bytes: Uint8Array): string {
  return [...bytes.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export function ipToBytes(address: IPAddress): Buffer {
  const length = address.family === 'IPv4' ? 4 : 16;
  const out = Buffer.alloc(length);
  let value = address.value;
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

export function bytesToIP(bytes: Uint8Array): IPAddress {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return { family: bytes.length === 4 ? 'IPv4' : 'IPv6', value };
}

/** ff02::1:ffXX:XXXX, the group a Neighbor Solicitation for `target` is sent to. */
export function solicitedNodeAddress(target: IPAddress): IPAddress {
  return { family: 'IPv6', value: 0xff0200000000000000000001ff000000n | (target.value & 0xffffffn) };
}

/** 33:33 followed by the low 32 bits of the IPv6 multicast group (RFC 2464). */
export function multicastMac(group: IPAddress): string {
  const bytes = ipToBytes(group);
  return bytesToMac(Buffer.from([0x33, 0x33, ...bytes.subarray(12)]));
}

function ethernet(dst: string, src: string, ethertype: number, payload: Buffer): Buffer {
  const frame = Buffer.alloc(Math.max(MIN_FRAME_LENGTH, ETHERNET_HEADER_LENGTH + payload.length));
  macToBytes(dst).copy(frame, 0);
  macToBytes(src).copy(frame, 6);
  frame.writeUInt16BE(ethertype, 12);
  payload.copy(frame, ETHERNET_HEADER_LENGTH);
  return frame;
}

// ---------------------------------------------------------------- ARP

export interface ArpPacket {
  operation: 'request' | 'reply';
  /** Ethernet source and destination, as received. */
  ethSource: string;
  ethDestination: string;
  senderMac: string;
  senderIP: IPAddress;
  targetMac: string;
  targetIP: IPAddress;
}

function arpPayload(op: number, senderMac: string, senderIP: IPAddress, targetMac: string, targetIP: IPAddress): Buffer {
  const p = Buffer.alloc(28);
  p.writeUInt16BE(1, 0); // Ethernet
  p.writeUInt16BE(0x0800, 2); // IPv4
  p[4] = 6;
  p[5] = 4;
  p.writeUInt16BE(op, 6);
  macToBytes(senderMac).copy(p, 8);
  ipToBytes(senderIP).copy(p, 14);
  macToBytes(targetMac).copy(p, 18);
  ipToBytes(targetIP).copy(p, 24);
  return p;
}

export function decodeArp(frame: Uint8Array): ArpPacket | undefined {
  const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (buf.length < ETHERNET_HEADER_LENGTH + 28 || buf.readUInt16BE(12) !== ETHERTYPE_ARP) return undefined;
  const p = buf.subarray(ETHERNET_HEADER_LENGTH);
  if (p.readUInt16BE(0) !== 1 || p.readUInt16BE(2) !== 0x0800 || p[4] !== 6 || p[5] !== 4) return undefined;
  const op = p.readUInt16BE(6);
  if (op !== ARP_REQUEST && op !== ARP_REPLY) return undefined;
  return {
    operation: op === ARP_REQUEST ? 'request' : 'reply',
    ethDestination: bytesToMac(buf.subarray(0, 6)),
    ethSource: bytesToMac(buf.subarray(6, 12)),
    senderMac: bytesToMac(p.subarray(8, 14)),
    senderIP: bytesToIP(p.subarray(14, 18)),
    targetMac: bytesToMac(p.subarray(18, 24)),
    targetIP: bytesToIP(p.subarray(24, 28)),
  };
}

/** The answer to `request` saying `request.targetIP` is at `mac`, sent back to the asker only. */
export function encodeArpReply(request: ArpPacket, mac: string): Buffer {
  return ethernet(request.senderMac, mac, ETHERTYPE_ARP, arpPayload(ARP_REPLY, mac, request.targetIP, request.senderMac, request.senderIP));
}

/**
 * Gratuitous ARP: a broadcast request with sender and target IP both `ip` (RFC 5227 §3's
 * "ARP Announcement"). Linux treats it as an override of an existing neighbour entry even
 * within its locktime, and so do most other stacks.
 */
export function encodeGratuitousArp(ip: IPAddress, mac: string): Buffer {
  return ethernet(BROADCAST_MAC, mac, ETHERTYPE_ARP, arpPayload(ARP_REQUEST, mac, ip, '00:00:00:00:00:00', ip));
}

/** An ARP request (used by tests and tools, not by the speaker). */
export function encodeArpRequest(senderMac: string, senderIP: IPAddress, targetIP: IPAddress): Buffer {
  return ethernet(BROADCAST_MAC, senderMac, ETHERTYPE_ARP, arpPayload(ARP_REQUEST, senderMac, senderIP, '00:00:00:00:00:00', targetIP));
}

// ---------------------------------------------------------------- IPv6 neighbour discovery

/** The Internet checksum over the IPv6 pseudo-header and the ICMPv6 message (RFC 4443 §2.3). */
export function icmpv6Checksum(source: IPAddress, destination: IPAddress, message: Uint8Array): number {
  const pseudo = Buffer.alloc(40);
  ipToBytes(source).copy(pseudo, 0);
  ipToBytes(destination).copy(pseudo, 16);
  pseudo.writeUInt32BE(message.length, 32);
  pseudo[39] = ICMPV6;
  let sum = 0;
  const add = (bytes: Uint8Array): void => {
    for (let i = 0; i < bytes.length; i += 2) sum += ((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0);
  };
  add(pseudo);
  add(message);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ipv6Frame(dstMac: string, srcMac: string, source: IPAddress, destination: IPAddress, icmp: Buffer): Buffer {
  icmp.writeUInt16BE(0, 2);
  icmp.writeUInt16BE(icmpv6Checksum(source, destination, icmp), 2);
  const header = Buffer.alloc(40);
  header.writeUInt32BE(0x60000000, 0);
  header.writeUInt16BE(icmp.length, 4);
  header[6] = ICMPV6;
  header[7] = 255; // RFC 4861 §7.1.2: receivers drop ND messages with any other hop limit
  ipToBytes(source).copy(header, 8);
  ipToBytes(destination).copy(header, 24);
  return ethernet(dstMac, srcMac, ETHERTYPE_IPV6, Buffer.concat([header, icmp]));
}

export interface NeighborSolicitation {
  ethSource: string;
  source: IPAddress;
  destination: IPAddress;
  target: IPAddress;
  /** The asker's MAC from the source link-layer option, when present (absent for DAD probes). */
  sourceLinkLayer: string | undefined;
}

/** A Neighbor Solicitation passing RFC 4861 §7.1.1 validation, or undefined. */
export function decodeNeighborSolicitation(frame: Uint8Array): NeighborSolicitation | undefined {
  const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (buf.length < ETHERNET_HEADER_LENGTH + 40 + 24 || buf.readUInt16BE(12) !== ETHERTYPE_IPV6) return undefined;
  const ip = buf.subarray(ETHERNET_HEADER_LENGTH);
  if (ip[0] === undefined || ip[0] >> 4 !== 6 || ip[6] !== ICMPV6 || ip[7] !== 255) return undefined;
  const payloadLength = ip.readUInt16BE(4);
  if (payloadLength < 24 || 40 + payloadLength > ip.length) return undefined;
  const icmp = ip.subarray(40, 40 + payloadLength);
  if (icmp[0] !== NEIGHBOR_SOLICITATION || icmp[1] !== 0) return undefined;
  const source = bytesToIP(ip.subarray(8, 24));
  const destination = bytesToIP(ip.subarray(24, 40));
  if (icmpv6Checksum(source, destination, icmp) !== 0) return undefined;
  const target = bytesToIP(icmp.subarray(8, 24));
  if (target.value >> 120n === 0xffn) return undefined; // a multicast target is invalid
  let sourceLinkLayer: string | undefined;
  for (let offset = 24; offset + 2 <= icmp.length; ) {
    const length = (icmp[offset + 1] ?? 0) * 8;
    if (length === 0 || offset + length > icmp.length) return undefined;
    if (icmp[offset] === OPTION_SOURCE_LINK_LAYER && length >= 8) sourceLinkLayer = bytesToMac(icmp.subarray(offset + 2, offset + 8));
    offset += length;
  }
  // From the unspecified address (duplicate address detection) there must be no such option.
  if (source.value === 0n && sourceLinkLayer !== undefined) return undefined;
  return { ethSource: bytesToMac(buf.subarray(6, 12)), source, destination, target, sourceLinkLayer };
}

function advertisement(target: IPAddress, mac: string, flags: number): Buffer {
  const icmp = Buffer.alloc(32);
  icmp[0] = NEIGHBOR_ADVERTISEMENT;
  icmp[4] = flags;
  ipToBytes(target).copy(icmp, 8);
  icmp[24] = OPTION_TARGET_LINK_LAYER;
  icmp[25] = 1;
  macToBytes(mac).copy(icmp, 26);
  return icmp;
}

/**
 * The Neighbor Advertisement answering `ns` with `mac` for its target: to the asker, or to
 * all-nodes when the asker had no address yet (DAD), with Override set so caches update.
 */
export function encodeNeighborAdvertisement(ns: NeighborSolicitation, mac: string): Buffer {
  if (ns.source.value === 0n) return encodeUnsolicitedNeighborAdvertisement(ns.target, mac);
  const dstMac = ns.sourceLinkLayer ?? ns.ethSource;
  return ipv6Frame(dstMac, mac, ns.target, ns.source, advertisement(ns.target, mac, NA_FLAG_SOLICITED | NA_FLAG_OVERRIDE));
}

/** Unsolicited NA to all-nodes with Override (RFC 4861 §7.2.6): the IPv6 gratuitous ARP. */
export function encodeUnsolicitedNeighborAdvertisement(target: IPAddress, mac: string): Buffer {
  return ipv6Frame(multicastMac(ALL_NODES_IPV6), mac, target, ALL_NODES_IPV6, advertisement(target, mac, NA_FLAG_OVERRIDE));
}

/** A Neighbor Solicitation (used by tests and tools, not by the speaker). */
export function encodeNeighborSolicitation(senderMac: string, source: IPAddress, target: IPAddress): Buffer {
  const group = solicitedNodeAddress(target);
  const icmp = Buffer.alloc(32);
  icmp[0] = NEIGHBOR_SOLICITATION;
  ipToBytes(target).copy(icmp, 8);
  icmp[24] = OPTION_SOURCE_LINK_LAYER;
  icmp[25] = 1;
  macToBytes(senderMac).copy(icmp, 26);
  return ipv6Frame(multicastMac(group), senderMac, source, group, icmp);
}

export interface NeighborAdvertisement {
  ethSource: string;
  source: IPAddress;
  destination: IPAddress;
  target: IPAddress;
  solicited: boolean;
  override: boolean;
  targetLinkLayer: string | undefined;
}

export function decodeNeighborAdvertisement(frame: Uint8Array): NeighborAdvertisement | undefined {
  const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (buf.length < ETHERNET_HEADER_LENGTH + 40 + 24 || buf.readUInt16BE(12) !== ETHERTYPE_IPV6) return undefined;
  const ip = buf.subarray(ETHERNET_HEADER_LENGTH);
  if (ip[6] !== ICMPV6 || ip[7] !== 255) return undefined;
  const payloadLength = ip.readUInt16BE(4);
  if (payloadLength < 24 || 40 + payloadLength > ip.length) return undefined;
  const icmp = ip.subarray(40, 40 + payloadLength);
  if (icmp[0] !== NEIGHBOR_ADVERTISEMENT || icmp[1] !== 0) return undefined;
  const source = bytesToIP(ip.subarray(8, 24));
  const destination = bytesToIP(ip.subarray(24, 40));
  if (icmpv6Checksum(source, destination, icmp) !== 0) return undefined;
  let targetLinkLayer: string | undefined;
  for (let offset = 24; offset + 2 <= icmp.length; ) {
    const length = (icmp[offset + 1] ?? 0) * 8;
    if (length === 0 || offset + length > icmp.length) return undefined;
    if (icmp[offset] === OPTION_TARGET_LINK_LAYER && length >= 8) targetLinkLayer = bytesToMac(icmp.subarray(offset + 2, offset + 8));
    offset += length;
  }
  const flags = icmp[4] ?? 0;
  return {
    ethSource: bytesToMac(buf.subarray(6, 12)),
    source,
    destination,
    target: bytesToIP(icmp.subarray(8, 24)),
    solicited: (flags & NA_FLAG_SOLICITED) !== 0,
    override: (flags & NA_FLAG_OVERRIDE) !== 0,
    targetLinkLayer,
  };
}

/** One line for logs. */
export function describeArp(packet: ArpPacket): string {
  return `${packet.operation} ${formatIP(packet.senderIP)} (${packet.senderMac}) -> ${formatIP(packet.targetIP)}`;
}
