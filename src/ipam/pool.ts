import type { AddressPool, AddressPoolL2 } from '../api/address-pool.js';
import type { LabelSelector } from '../api/types.js';
import { compareCodeUnits, isDNS1123Label, isDNS1123Subdomain, isEmptySelector, validateSelector } from '../kube/label-selector.js';
import type { SpecProblem } from '../api/types.js';
import { AddressParseError, formatRange, parseAddressRange, rangeContains, rangesOverlap, rangeSize } from './ip.js';
import type { IPAddress, IPFamily, IPRange } from './ip.js';

/** One entry of `spec.addresses`, parsed. */
export interface PoolRange extends IPRange {
  /** The entry as written, for messages. */
  readonly text: string;
}

/** An AddressPool whose spec is valid, with defaults applied. */
export interface ParsedPool {
  readonly name: string;
  /** Sorted IPv4 first, then by start address; no two overlap. */
  readonly ranges: readonly PoolRange[];
  readonly autoAssign: boolean;
  readonly avoidBuggyIPs: boolean;
  /** Hand out special-purpose addresses and a CIDR's network/broadcast address too (opt-in). */
  readonly allowSpecialAddresses: boolean;
  /** Services of different namespaces may share this pool's addresses (same sharing key). */
  readonly crossNamespaceSharing: boolean;
  readonly priority: number | undefined;
  readonly namespaces: readonly string[] | undefined;
  readonly namespaceSelector: LabelSelector | undefined;
  readonly serviceSelector: LabelSelector | undefined;
  readonly l2: AddressPoolL2 | undefined;
}

export type ParsePoolResult = ParsedPool | { problems: SpecProblem[] };

export function isParsedPool(result: ParsePoolResult): result is ParsedPool {
  return !('problems' in result);
}

/** Validates an AddressPool and applies defaults; every problem found is reported, not just the first. */
export function parsePool(pool: AddressPool): ParsePoolResult {
  const problems: SpecProblem[] = [];
  // The object comes from the API server; read it as unknown so that a malformed one is reported, not crashed on.
  const metadata: unknown = pool.metadata;
  const name = isRecord(metadata) ? metadata['name'] : undefined;
  if (typeof name !== 'string' || !isDNS1123Subdomain(name)) {
    problems.push({ field: 'metadata.name', message: 'must be a DNS-1123 subdomain' });
  }
  const spec: unknown = pool.spec;
  if (!isRecord(spec)) return { problems: [...problems, { field: 'spec', message: 'is required' }] };

  const ranges: PoolRange[] = [];
  const rangeFields: string[] = [];
  const addresses = spec['addresses'];
  if (!Array.isArray(addresses) || addresses.length === 0) {
    problems.push({ field: 'spec.addresses', message: 'must list at least one CIDR or address range' });
  } else {
    (addresses as unknown[]).forEach((entry, i) => {
      const field = `spec.addresses[${i}]`;
      if (typeof entry !== 'string') {
        problems.push({ field, message: 'must be a string' });
        return;
      }
      try {
        const range = parseAddressRange(entry);
        const clash = ranges.findIndex((other) => rangesOverlap(other, range));
        if (clash !== -1) {
          const other = ranges[clash];
          problems.push({
            field,
            message: `${entry} overlaps ${rangeFields[clash] ?? ''} (${other?.text ?? ''}) in the same pool`,
          });
        }
        ranges.push({ family: range.family, start: range.start, end: range.end, text: entry });
        rangeFields.push(field);
      } catch (error) {
        if (!(error instanceof AddressParseError)) throw error;
        problems.push({ field, message: error.message });
      }
    });
  }

  const autoAssign = optionalBoolean(spec, 'autoAssign', 'spec.autoAssign', true, problems);
  const avoidBuggyIPs = optionalBoolean(spec, 'avoidBuggyIPs', 'spec.avoidBuggyIPs', false, problems);
  const allowSpecialAddresses = optionalBoolean(spec, 'allowSpecialAddresses', 'spec.allowSpecialAddresses', false, problems);
  let crossNamespaceSharing = false;

  let priority: number | undefined;
  let namespaces: string[] | undefined;
  let namespaceSelector: LabelSelector | undefined;
  let serviceSelector: LabelSelector | undefined;
  const allocation = spec['allocation'];
  if (allocation !== undefined) {
    if (!isRecord(allocation)) {
      problems.push({ field: 'spec.allocation', message: 'must be an object' });
    } else {
      const rawPriority = allocation['priority'];
      if (rawPriority !== undefined) {
        if (typeof rawPriority !== 'number' || !Number.isSafeInteger(rawPriority) || rawPriority < 0) {
          problems.push({ field: 'spec.allocation.priority', message: 'must be an integer >= 0' });
        } else {
          priority = rawPriority;
        }
      }
      crossNamespaceSharing = optionalBoolean(allocation, 'crossNamespaceSharing', 'spec.allocation.crossNamespaceSharing', false, problems);
      const rawNamespaces = allocation['namespaces'];
      if (rawNamespaces !== undefined) {
        if (!Array.isArray(rawNamespaces)) {
          problems.push({ field: 'spec.allocation.namespaces', message: 'must be a list of namespace names' });
        } else if (rawNamespaces.length === 0) {
          // An empty list reads as "no namespace" to some and "every namespace" to others: refuse it.
          problems.push({
            field: 'spec.allocation.namespaces',
            message: 'must not be empty; omit the field to allow every namespace',
          });
        } else {
          namespaces = [];
          (rawNamespaces as unknown[]).forEach((ns, i) => {
            if (typeof ns !== 'string' || !isDNS1123Label(ns)) {
              problems.push({ field: `spec.allocation.namespaces[${i}]`, message: 'must be a namespace name (DNS-1123 label)' });
            } else if (!namespaces?.includes(ns)) {
              namespaces?.push(ns);
            }
          });
          namespaces.sort(compareCodeUnits);
        }
      }
      for (const key of ['namespaceSelector', 'serviceSelector'] as const) {
        const selector = allocation[key] as LabelSelector | undefined;
        const selectorProblems = validateSelector(selector, `spec.allocation.${key}`);
        problems.push(...selectorProblems);
        if (selectorProblems.length === 0 && selector !== undefined) {
          if (key === 'namespaceSelector') namespaceSelector = selector;
          else serviceSelector = selector;
        }
      }
    }
  }

  if (problems.length > 0 || typeof name !== 'string') return { problems };
  ranges.sort(compareRanges);
  return {
    name,
    ranges,
    autoAssign,
    avoidBuggyIPs,
    allowSpecialAddresses,
    crossNamespaceSharing,
    priority,
    namespaces,
    namespaceSelector,
    serviceSelector,
    l2: spec['l2'] as AddressPoolL2 | undefined,
  };
}

/** True when the pool is limited to some namespaces or Services; such pools are tried first. */
export function isScoped(pool: ParsedPool): boolean {
  return (
    pool.namespaces !== undefined || !isEmptySelector(pool.namespaceSelector) || !isEmptySelector(pool.serviceSelector)
  );
}

/**
 * Pool name -> sorted names of the other pools it shares at least one address with. An overlap
 * makes both pools ambiguous owners of those addresses, so both are reported.
 */
export function findOverlaps(pools: readonly ParsedPool[]): Map<string, string[]> {
  const items = pools.flatMap((pool) => pool.ranges.map((range) => ({ name: pool.name, range })));
  items.sort((a, b) => compareRanges(a.range, b.range) || compareCodeUnits(a.name, b.name));
  const found = new Map<string, Set<string>>();
  const note = (a: string, b: string): void => {
    const set = found.get(a) ?? new Set<string>();
    set.add(b);
    found.set(a, set);
  };
  // Sweep by start address, keeping only ranges that can still reach the current one.
  let active: typeof items = [];
  for (const item of items) {
    active = active.filter((other) => rangesOverlap(other.range, item.range));
    for (const other of active) {
      if (other.name === item.name) continue;
      note(other.name, item.name);
      note(item.name, other.name);
    }
    active.push(item);
  }
  const result = new Map<string, string[]>();
  for (const name of [...found.keys()].sort(compareCodeUnits)) {
    result.set(name, [...(found.get(name) ?? [])].sort(compareCodeUnits));
  }
  return result;
}

/** IPv4 addresses ending in .0 or .255, which some clients treat as broadcast. */
export function isBuggyIP(address: IPAddress): boolean {
  if (address.family !== 'IPv4') return false;
  const last = address.value & 255n;
  return last === 0n || last === 255n;
}

/** Whether the pool can hand out this address: inside a range, and not skipped by avoidBuggyIPs. */
export function poolHasAddress(pool: ParsedPool, address: IPAddress): boolean {
  if (pool.avoidBuggyIPs && isBuggyIP(address)) return false;
  return pool.ranges.some((range) => rangeContains(range, address));
}

export function poolHasFamily(pool: ParsedPool, family: IPFamily): boolean {
  return pool.ranges.some((range) => range.family === family);
}

/** How many addresses of `family` the pool can hand out, exact. O(number of ranges). */
export function addressCount(pool: ParsedPool, family: IPFamily): bigint {
  let total = 0n;
  for (const range of pool.ranges) {
    if (range.family !== family) continue;
    total += rangeSize(range);
    if (pool.avoidBuggyIPs && family === 'IPv4') {
      total -= countCongruent(range.start, range.end, 0n) + countCongruent(range.start, range.end, 255n);
    }
  }
  return total;
}

/** addressCount as a number, capped at Number.MAX_SAFE_INTEGER (what AddressPool status reports). */
export function countAddresses(pool: ParsedPool, family: IPFamily): number {
  return capToSafeInteger(addressCount(pool, family));
}

export function capToSafeInteger(value: bigint): number {
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
}

export function describeRanges(pool: ParsedPool): string {
  return pool.ranges.map((range) => formatRange(range)).join(', ');
}

/** Numbers x in [start, end] with x mod 256 == residue. */
function countCongruent(start: bigint, end: bigint, residue: bigint): bigint {
  const upTo = (n: bigint): bigint => (n < residue ? 0n : (n - residue) / 256n + 1n);
  return upTo(end) - (start === 0n ? 0n : upTo(start - 1n));
}

function compareRanges(a: IPRange, b: IPRange): number {
  if (a.family !== b.family) return a.family === 'IPv4' ? -1 : 1;
  if (a.start !== b.start) return a.start < b.start ? -1 : 1;
  if (a.end === b.end) return 0;
  return a.end < b.end ? -1 : 1;
}

function optionalBoolean(
  spec: Record<string, unknown>,
  key: string,
  field: string,
  fallback: boolean,
  problems: SpecProblem[],
): boolean {
  const value = spec[key];
  if (value === undefined) return fallback;
  if (typeof value === 'boolean') return value;
  problems.push({ field, message: 'must be true or false' });
  return fallback;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
