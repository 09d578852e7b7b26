/**
 * Addresses a pool never hands out: special-purpose ranges (unspecified, loopback, link-local,
 * multicast, broadcast), the network and broadcast addresses of a CIDR entry — unless the pool
 * opts in with `allowSpecialAddresses` — and, always, the cluster's own ranges (Service and Pod
 * CIDRs, node addresses), which no opt-in unlocks.
 */
import { parseCIDR, rangesOverlap, type IPRange } from './ip.js';
import type { ParsedPool } from './pool.js';

export interface Reservation extends IPRange {
  /** Why it is reserved, for messages: "loopback", "Service CIDR 10.96.0.0/12 (ServiceCIDR kubernetes)". */
  readonly why: string;
}

const SPECIAL: readonly [string, string][] = [
  ['0.0.0.0/8', 'unspecified ("this network")'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local (incl. cloud metadata 169.254.169.254)'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved (class E) and limited broadcast'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['fe80::/10', 'link-local'],
  ['ff00::/8', 'multicast'],
];

export const SPECIAL_RANGES: readonly Reservation[] = SPECIAL.map(([cidr, why]) => ({ ...parseCIDR(cidr), why }));

/** The first and last address of each CIDR entry (network and broadcast; for IPv6 the subnet-router anycast). */
export function cidrEdges(pool: ParsedPool): Reservation[] {
  const edges: Reservation[] = [];
  for (const range of pool.ranges) {
    const slash = range.text.indexOf('/');
    if (slash < 0) continue;
    const bits = Number(range.text.slice(slash + 1));
    const width = range.family === 'IPv4' ? 32 : 128;
    // /31, /32 (RFC 3021) and /127, /128 have no network or broadcast address.
    if (bits >= width - 1) continue;
    edges.push({ family: range.family, start: range.start, end: range.start, why: `network address of ${range.text}` });
    if (range.family === 'IPv4') edges.push({ family: range.family, start: range.end, end: range.end, why: `broadcast address of ${range.text}` });
  }
  return edges;
}

/** What this pool must skip: sorted by start, merged where they overlap. */
export function reservationsFor(pool: ParsedPool, cluster: readonly Reservation[]): Reservation[] {
  const all = [...cluster, ...(pool.allowSpecialAddresses ? [] : [...SPECIAL_RANGES, ...cidrEdges(pool)])].filter((r) => pool.ranges.some((range) => rangesOverlap(range, r)));
  return merge(all);
}

/** Sorted by family and start, overlapping entries merged (the first reason kept; adjacent ones keep their own). */
export function merge(reservations: readonly Reservation[]): Reservation[] {
  const sorted = [...reservations].sort((a, b) => (a.family !== b.family ? (a.family === 'IPv4' ? -1 : 1) : a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Reservation[] = [];
  for (const r of sorted) {
    const last = out.at(-1);
    if (last && last.family === r.family && r.start <= last.end) {
      if (r.end > last.end) out[out.length - 1] = { ...last, end: r.end };
    } else {
      out.push(r);
    }
  }
  return out;
}

export function reservationOf(reservations: readonly Reservation[], family: string, value: bigint): Reservation | undefined {
  return reservations.find((r) => r.family === family && r.start <= value && value <= r.end);
}
