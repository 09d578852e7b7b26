/**
 * The allocation rules: which pool, which address, when an assignment may be kept, shared or
 * must move. Bookkeeping is in address-index.ts, sharing rules in sharing.ts, reserved ranges
 * in reserved.ts.
 */
import { boundedList } from '../kube/conditions.js';
import { compareCodeUnits, matchesSelector } from '../kube/label-selector.js';
import { AddressIndex, toAddr, type Addr } from './address-index.js';
import { compareIP, otherFamily, rangeContains, rangesOverlap, rangeSize, tryParseIP } from './ip.js';
import type { IPFamily } from './ip.js';
import { addressCount, capToSafeInteger, findOverlaps, isBuggyIP, isScoped, poolHasAddress, poolHasFamily } from './pool.js';
import type { ParsedPool } from './pool.js';
import { ADDRESS_POOL_ANNOTATION, ADDRESS_POOL_FIELD, ALLOW_SHARED_IP_FIELD, LOAD_BALANCER_IPS_FIELD, type AllocationRequest } from './request.js';
import { merge, reservationOf, reservationsFor, type Reservation } from './reserved.js';
import { canShare, portKey, sharingConflict, sharingGroup, type SharingRefusal } from './sharing.js';

export type { SharingRefusal } from './sharing.js';
export { sharingConflict } from './sharing.js';

export type { AllocationRequest, IPFamilyPolicy, Protocol, ServicePort } from './request.js';

export const ALLOCATION_FAILURE_REASONS = [
  'PoolExhausted',
  'NoMatchingPool',
  'AddressNotInAllowedPool',
  'AddressInUse',
  'SharingConflict',
  'UnknownPool',
  'PoolNotAllowed',
  'DualStackUnavailable',
  'AddressReserved',
] as const;
export type AllocationFailureReason = (typeof ALLOCATION_FAILURE_REASONS)[number];

export type AllocationResult =
  /** ips: canonical, primary family first. */
  | { ok: true; pool: string; ips: string[]; evicted?: Released[] }
  | { ok: false; reason: AllocationFailureReason; field?: string; message: string };

export type AllocationFailure = Extract<AllocationResult, { ok: false }>;

/** An assignment setPools took away because its addresses no longer lie in a pool that allows the Service. */
export interface Released {
  key: string;
  ips: string[];
  pool: string;
  reason: string;
}

export interface Assignment {
  key: string;
  pool: string;
  /** Canonical, primary family first. */
  ips: string[];
}

/** Shared addresses count once. Available counts are capped at Number.MAX_SAFE_INTEGER. */
export interface PoolStats {
  assignedIPv4: number;
  assignedIPv6: number;
  availableIPv4: number;
  availableIPv6: number;
}

/** A misuse of the Allocator by its caller (not a Service problem). */
export class AllocatorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AllocatorError';
  }
}

/** Where restore() failures point: the addresses come from the Service's status. */
export const RESTORE_FIELD = 'status.loadBalancer.ingress';

interface PoolEntry {
  readonly pool: ParsedPool;
  /** Non-empty: the pool shares addresses with these pools and gets no new allocations. */
  readonly overlapsWith: readonly string[];
  /** Set: the pool is held at its last valid spec (its current one is invalid); no new allocations. */
  readonly frozenBecause: string | undefined;
  /** Addresses of this pool never handed out (special-purpose, CIDR edges, the cluster's own), merged. */
  readonly reserved: readonly Reservation[];
}

interface Holding {
  readonly key: string;
  pool: string;
  ips: Addr[];
  /** Kept so that every later change (pools, other Services) can re-check this assignment. */
  request: AllocationRequest;
  /** When it got these addresses (a counter): on a sharing conflict the earlier holder keeps them. */
  since: number;
}

/**
 * Hands out addresses from AddressPools to Services, MetalLB-style. Pure and deterministic: the
 * same calls in the same order give the same results, whatever order pools were listed in.
 *
 * Overlapping pools get no new allocations, but addresses they already gave out are kept (and
 * restored after a restart), so a mistaken new pool cannot take addresses away from Services.
 */
export class Allocator {
  private pools = new Map<string, PoolEntry>();
  /** Scoped pools first, then by priority (unset last), then by name. */
  private ordered: PoolEntry[] = [];
  private readonly holdings = new Map<string, Holding>();
  private readonly index = new AddressIndex();
  /** The cluster's own ranges (Service/Pod CIDRs, node addresses): never handed out by any pool. */
  private cluster: readonly Reservation[] = [];
  private clock = 0;

  /**
   * Replaces the pool set; returns (and releases) the assignments it invalidates, sorted by key.
   * `frozen` names pools (with the reason) that keep what they gave out but give out nothing new.
   * Pools are listed oldest first: when two overlap, the later one is frozen.
   */
  setPools(pools: readonly ParsedPool[], frozen: ReadonlyMap<string, string> = new Map()): Released[] {
    const names = new Set<string>();
    for (const pool of pools) {
      if (names.has(pool.name)) throw new AllocatorError(`pool '${pool.name}' is listed twice`);
      names.add(pool.name);
    }
    // Of two overlapping pools the one listed first (the caller lists oldest first) stays in
    // use; the later one is the mistake: it hands out nothing new until fixed.
    const overlaps = findOverlaps(pools);
    const position = new Map(pools.map((pool, i) => [pool.name, i]));
    const earlier = (pool: ParsedPool): string[] => (overlaps.get(pool.name) ?? []).filter((other) => (position.get(other) ?? 0) < (position.get(pool.name) ?? 0));
    this.pools = new Map(
      pools.map((pool) => [pool.name, { pool, overlapsWith: earlier(pool), frozenBecause: frozen.get(pool.name), reserved: reservationsFor(pool, this.cluster) }]),
    );
    this.ordered = [...this.pools.values()].sort(comparePoolOrder);
    return this.recheck();
  }

  /**
   * Sets the cluster's own ranges, never handed out; returns (and releases) assignments that
   * now fall inside them.
   */
  setClusterReservations(reservations: readonly Reservation[]): Released[] {
    this.cluster = merge(reservations);
    this.pools = new Map([...this.pools].map(([name, entry]) => [name, { ...entry, reserved: reservationsFor(entry.pool, this.cluster) }]));
    this.ordered = [...this.pools.values()].sort(comparePoolOrder);
    return this.recheck();
  }

  /** The older pools this pool overlaps (it is frozen while any exist). */
  overlapsOf(poolName: string): readonly string[] {
    return this.pools.get(poolName)?.overlapsWith ?? [];
  }

  /** The reserved addresses inside a pool, for its status. */
  reservationsOf(poolName: string): readonly Reservation[] {
    return this.pools.get(poolName)?.reserved ?? [];
  }

  /** Releases every assignment that no longer lies in a pool that allows it. */
  private recheck(): Released[] {
    const released: Released[] = [];
    for (const key of [...this.holdings.keys()].sort(compareCodeUnits)) {
      const holding = this.holdings.get(key);
      if (holding === undefined) continue;
      const where = this.retention(holding.request, holding.ips, holding.pool);
      if ('pool' in where) {
        holding.pool = where.pool;
        continue;
      }
      this.release(key);
      released.push({ key, ips: holding.ips.map((a) => a.text), pool: holding.pool, reason: where.reason });
    }
    return released;
  }

  /**
   * Addresses for a Service. An existing assignment that still satisfies the request is returned
   * unchanged; otherwise it is released and a new one is made.
   */
  assign(req: AllocationRequest): AllocationResult {
    const existing = this.holdings.get(req.key);
    if (existing === undefined) return this.allocate(req);
    const kept = this.keep(existing, req);
    if (kept !== undefined) return kept;
    this.release(req.key);
    const result = this.allocate(req);
    if (result.ok) return result;
    // Transactional: a Service that cannot get what it now asks for keeps the addresses it
    // has (still in its status, still routed to it) as long as they remain valid for it, so
    // they are never handed to someone else while it still shows them.
    const still = this.retention(existing.request, existing.ips, existing.pool);
    if ('pool' in still) this.commit(existing.request, still.pool, existing.ips, existing.since);
    return result;
  }

  /**
   * Re-claims addresses a Service already had (from its status) when rebuilding state at start.
   * Refuses addresses outside a pool that allows the Service, or held by an incompatible Service.
   * Does not judge whether they still match the request: the assign() that follows does that.
   */
  restore(req: AllocationRequest, ips: readonly string[]): AllocationResult {
    const addrs: Addr[] = [];
    for (const text of ips) {
      const parsed = tryParseIP(text);
      if (parsed === undefined) {
        return fail('AddressNotInAllowedPool', RESTORE_FIELD, `${JSON.stringify(text.slice(0, 64))} is not a valid IP address`);
      }
      const addr = toAddr(parsed);
      if (addrs.some((other) => other.family === addr.family)) {
        return fail('AddressNotInAllowedPool', RESTORE_FIELD, `more than one ${addr.family} address (${addrs.map((a) => a.text).join(', ')}, ${addr.text})`);
      }
      addrs.push(addr);
    }
    if (addrs.length === 0) return fail('AddressNotInAllowedPool', RESTORE_FIELD, 'no addresses to restore');
    const where = this.retention(req, addrs, undefined);
    if (!('pool' in where)) return fail('AddressNotInAllowedPool', RESTORE_FIELD, `cannot restore: ${where.reason}`);
    for (const addr of addrs) {
      const conflict = this.conflictOn(addr, req, where.pool);
      if (conflict !== undefined) return fail(conflict.reason, RESTORE_FIELD, conflict.message);
    }
    this.release(req.key);
    return this.commit(req, where.pool, addrs);
  }

  /** Frees the Service's addresses; false when it had none. */
  release(key: string): boolean {
    const holding = this.holdings.get(key);
    if (holding === undefined) return false;
    this.holdings.delete(key);
    for (const addr of holding.ips) this.unhold(holding, addr);
    return true;
  }

  assignmentOf(key: string): Assignment | undefined {
    const holding = this.holdings.get(key);
    if (holding === undefined) return undefined;
    return { key, pool: holding.pool, ips: holding.ips.map((a) => a.text) };
  }

  /** Every assignment, sorted by key. */
  assignments(): Assignment[] {
    return [...this.holdings.keys()]
      .sort(compareCodeUnits)
      .map((key) => this.assignmentOf(key))
      .filter((a): a is Assignment => a !== undefined);
  }

  /** Counters for AddressPool status; undefined for a pool the allocator does not know. */
  stats(poolName: string): PoolStats | undefined {
    const entry = this.pools.get(poolName);
    if (entry === undefined) return undefined;
    const seen: Record<IPFamily, Set<string>> = { IPv4: new Set(), IPv6: new Set() };
    for (const holding of this.holdings.values()) {
      if (holding.pool !== poolName) continue;
      for (const addr of holding.ips) seen[addr.family].add(addr.text);
    }
    const reservedIn = (family: IPFamily): bigint => {
      let total = 0n;
      for (const r of entry.reserved) {
        if (r.family !== family) continue;
        for (const range of entry.pool.ranges) {
          if (!rangesOverlap(range, r)) continue;
          total += rangeSize({ family, start: range.start > r.start ? range.start : r.start, end: range.end < r.end ? range.end : r.end });
        }
      }
      return total;
    };
    const available = (family: IPFamily): number => {
      const left = addressCount(entry.pool, family) - reservedIn(family) - BigInt(seen[family].size);
      return capToSafeInteger(left < 0n ? 0n : left);
    };
    return {
      assignedIPv4: seen.IPv4.size,
      assignedIPv6: seen.IPv6.size,
      availableIPv4: available('IPv4'),
      availableIPv6: available('IPv6'),
    };
  }

  /** The pool an address belongs to: the pool of its holder if held, else the pool that could hand it out. */
  poolOf(ip: string): string | undefined {
    const parsed = tryParseIP(ip);
    if (parsed === undefined) return undefined;
    const addr = toAddr(parsed);
    const keys = [...(this.index.holdersOf(addr.text) ?? [])].sort(compareCodeUnits);
    for (const key of keys) {
      const holding = this.holdings.get(key);
      if (holding !== undefined) return holding.pool;
    }
    const containing = this.ordered.filter((entry) => poolHasAddress(entry.pool, addr));
    return (containing.find((entry) => entry.overlapsWith.length === 0 && entry.frozenBecause === undefined) ?? containing[0])?.pool.name;
  }

  // --- checks ---

  /**
   * The pool in which a Service may keep these addresses: it contains all of them, allows the
   * Service, and is the pool the Service names, if any. Overlapping pools count: see the class doc.
   */
  private retention(req: AllocationRequest, addrs: readonly Addr[], preferred: string | undefined): { pool: string } | { reason: string } {
    const first = preferred === undefined ? undefined : this.pools.get(preferred);
    const candidates = first === undefined ? this.ordered : [first, ...this.ordered.filter((e) => e !== first)];
    const list = addrs.map((a) => a.text).join(', ');
    let denial: string | undefined;
    for (const entry of candidates) {
      if (!addrs.every((addr) => poolHasAddress(entry.pool, addr))) continue;
      const reserved = addrs.map((a) => ({ a, r: reservationOf(entry.reserved, a.family, a.value) })).find((x) => x.r !== undefined);
      if (reserved?.r !== undefined) {
        denial ??= `${reserved.a.text} is reserved (${reserved.r.why}) and never handed out`;
        continue;
      }
      if (req.requestedPool !== undefined && entry.pool.name !== req.requestedPool) {
        denial ??= `${list} belongs to pool '${entry.pool.name}', not to pool '${req.requestedPool}' named by ${ADDRESS_POOL_ANNOTATION}`;
        continue;
      }
      const scope = scopeDenial(entry.pool, req);
      if (scope !== undefined) {
        denial ??= `${list}: ${scope}`;
        continue;
      }
      return { pool: entry.pool.name };
    }
    return { reason: denial ?? `${list} is not in any address pool (all of a Service's addresses come from one pool)` };
  }

  /** Why a pool may not give this Service a new address; undefined when it may (autoAssign aside). */
  private newDenial(entry: PoolEntry, req: AllocationRequest): string | undefined {
    if (entry.frozenBecause !== undefined) return `pool '${entry.pool.name}' hands out no new addresses: ${entry.frozenBecause}`;
    if (entry.overlapsWith.length > 0) {
      return `pool '${entry.pool.name}' overlaps ${plural('pool', entry.overlapsWith)} and hands out no new addresses until that is fixed`;
    }
    return scopeDenial(entry.pool, req);
  }

  private crossNamespace(poolName: string): boolean {
    return this.pools.get(poolName)?.pool.crossNamespaceSharing === true;
  }

  /** The holders of addr that cannot share it with req, by key. */
  private conflictsOn(addr: Addr, req: AllocationRequest, poolName: string): { holder: Holding; refusal: SharingRefusal }[] {
    const holders = this.index.holdersOf(addr.text);
    if (holders === undefined) return [];
    const keys = holders.size === 1 ? [...holders] : [...holders].sort(compareCodeUnits);
    const conflicts: { holder: Holding; refusal: SharingRefusal }[] = [];
    for (const key of keys) {
      if (key === req.key) continue;
      const holder = this.holdings.get(key);
      if (holder === undefined) continue;
      const refusal = sharingConflict(holder.request, req, this.crossNamespace(poolName));
      if (refusal !== undefined) conflicts.push({ holder, refusal });
    }
    return conflicts;
  }

  /** The first holder (by key) of addr that cannot share it with req. */
  private conflictOn(addr: Addr, req: AllocationRequest, poolName: string): SharingRefusal | undefined {
    const first = this.conflictsOn(addr, req, poolName)[0];
    return first === undefined ? undefined : { reason: first.refusal.reason, message: `${addr.text} is in use by ${first.holder.key}: ${first.refusal.message}` };
  }

  /** conflictOn(addr, req) === undefined, without building messages: this runs in allocation scans. */
  private shareable(addr: Addr, req: AllocationRequest, poolName: string): boolean {
    const crossNamespace = this.crossNamespace(poolName);
    for (const key of this.index.holdersOf(addr.text) ?? []) {
      if (key === req.key) continue;
      const holder = this.holdings.get(key);
      if (holder !== undefined && !canShare(holder.request, req, crossNamespace)) return false;
    }
    return true;
  }

  // --- assign ---

  /** The existing assignment, possibly trimmed or extended, when it still satisfies req. */
  private keep(holding: Holding, req: AllocationRequest): AllocationResult | undefined {
    const families = wantedFamilies(req);
    // A Service that dropped its secondary family keeps its primary address.
    const kept = holding.ips.filter((a) => families.includes(a.family));
    if (kept.length === 0) return undefined;
    const requested = parseRequested(req, families);
    if (!Array.isArray(requested)) return undefined;
    if (!requested.every((r) => kept.some((a) => a.text === r.text))) return undefined;
    const hasPrimary = kept.some((a) => a.family === families[0]);
    switch (req.ipFamilyPolicy) {
      case 'SingleStack':
        if (!hasPrimary) return undefined;
        break;
      case 'RequireDualStack':
        if (kept.length !== families.length) return undefined;
        break;
      case 'PreferDualStack':
        // Only a requested secondary address may stand without the primary one.
        if (!hasPrimary && !kept.every((a) => requested.some((r) => r.text === a.text))) return undefined;
        break;
    }
    const where = this.retention(req, kept, holding.pool);
    if (!('pool' in where)) return undefined;
    // A conflict with a Service that joined the address later is that Service's problem: the
    // first holder keeps its address and the newcomer moves (a guessed sharing key must not
    // let anyone push the owner out). A conflict with an earlier holder means we move.
    const conflicts = kept.flatMap((addr) => this.conflictsOn(addr, req, where.pool));
    if (conflicts.some((c) => c.holder.since < holding.since)) return undefined;
    const evicted: Released[] = [];
    for (const { holder, refusal } of conflicts) {
      if (!this.holdings.has(holder.key)) continue;
      evicted.push({ key: holder.key, ips: holder.ips.map((a) => a.text), pool: holder.pool, reason: `${req.key}, which held ${holder.ips.map((a) => a.text).join(', ')} first, changed: ${refusal.message}` });
      this.release(holder.key);
    }

    for (const addr of holding.ips) this.unhold(holding, addr);
    holding.ips = kept;
    holding.pool = where.pool;
    holding.request = req;
    for (const addr of holding.ips) this.hold(holding, addr);
    // PreferDualStack: add the missing family from the same pool when it has one (as MetalLB does).
    const entry = this.pools.get(where.pool);
    if (req.ipFamilyPolicy === 'PreferDualStack' && entry !== undefined && this.newDenial(entry, req) === undefined) {
      for (const family of families) {
        if (holding.ips.some((a) => a.family === family)) continue;
        const addr = this.pick(entry, family, req);
        if (addr === undefined) continue;
        holding.ips.push(addr);
        this.hold(holding, addr);
      }
    }
    holding.ips.sort(familyOrder(families));
    return { ok: true, pool: holding.pool, ips: holding.ips.map((a) => a.text), ...(evicted.length > 0 ? { evicted } : {}) };
  }

  private allocate(req: AllocationRequest): AllocationResult {
    const families = wantedFamilies(req);
    const requested = parseRequested(req, families);
    if (!Array.isArray(requested)) return requested;
    let named: PoolEntry | undefined;
    if (req.requestedPool !== undefined) {
      named = this.pools.get(req.requestedPool);
      if (named === undefined) {
        return fail('UnknownPool', ADDRESS_POOL_FIELD, `address pool '${req.requestedPool}' does not exist`);
      }
      const denial = this.newDenial(named, req);
      if (denial !== undefined) return fail('PoolNotAllowed', ADDRESS_POOL_FIELD, denial);
    }
    return requested.length > 0
      ? this.allocateRequested(req, families, requested, named)
      : this.allocateAutomatic(req, families, named);
  }

  private allocateRequested(
    req: AllocationRequest,
    families: readonly IPFamily[],
    requested: readonly Addr[],
    named: PoolEntry | undefined,
  ): AllocationResult {
    let chosen: PoolEntry | undefined;
    for (const addr of requested) {
      let entry: PoolEntry | undefined;
      if (named !== undefined) {
        if (!poolHasAddress(named.pool, addr)) {
          return fail(
            'AddressNotInAllowedPool',
            LOAD_BALANCER_IPS_FIELD,
            `${addr.text} is not an address that pool '${named.pool.name}' (named by ${ADDRESS_POOL_ANNOTATION}) hands out${buggyHint(named.pool, addr)}`,
          );
        }
        entry = named;
        const reserved = reservationOf(named.reserved, addr.family, addr.value);
        if (reserved !== undefined) return fail('AddressReserved', LOAD_BALANCER_IPS_FIELD, `${addr.text} is reserved (${reserved.why}) and never handed out`);
      } else {
        // The CVE-2020-8554 guard: an address is only ever given out by a pool that allows this Service.
        const containing = this.ordered.filter((e) => poolHasAddress(e.pool, addr));
        const reserved = containing.map((e) => reservationOf(e.reserved, addr.family, addr.value)).find((r) => r !== undefined);
        if (reserved !== undefined) return fail('AddressReserved', LOAD_BALANCER_IPS_FIELD, `${addr.text} is reserved (${reserved.why}) and never handed out`);
        entry = containing.find((e) => this.newDenial(e, req) === undefined);
        if (entry === undefined) {
          return fail('AddressNotInAllowedPool', LOAD_BALANCER_IPS_FIELD, this.notAllowedMessage(addr, req, containing));
        }
      }
      if (chosen !== undefined && chosen !== entry) {
        return fail(
          'DualStackUnavailable',
          LOAD_BALANCER_IPS_FIELD,
          `${requested.map((a) => a.text).join(' and ')} are in different pools ('${chosen.pool.name}', '${entry.pool.name}'); all addresses of a Service come from one pool`,
        );
      }
      chosen = entry;
    }
    if (chosen === undefined) return fail('NoMatchingPool', undefined, 'no address requested');
    for (const addr of requested) {
      const conflict = this.conflictOn(addr, req, chosen.pool.name);
      if (conflict !== undefined) {
        const field = conflict.reason === 'SharingConflict' ? ALLOW_SHARED_IP_FIELD : LOAD_BALANCER_IPS_FIELD;
        return fail(conflict.reason, field, conflict.message);
      }
    }
    const picked = [...requested];
    for (const family of families) {
      if (picked.some((a) => a.family === family)) continue;
      const addr = this.pick(chosen, family, req);
      if (addr !== undefined) {
        picked.push(addr);
      } else if (req.ipFamilyPolicy === 'RequireDualStack') {
        return poolHasFamily(chosen.pool, family)
          ? fail('PoolExhausted', undefined, `no free ${family} address in pool '${chosen.pool.name}', which holds the requested address`)
          : fail(
              'DualStackUnavailable',
              undefined,
              `pool '${chosen.pool.name}' has no ${family} addresses; RequireDualStack needs one address of each family from the same pool`,
            );
      }
      // PreferDualStack: a family that was not requested is optional here.
    }
    return this.commit(req, chosen.pool.name, picked);
  }

  private allocateAutomatic(
    req: AllocationRequest,
    families: readonly IPFamily[],
    named: PoolEntry | undefined,
  ): AllocationResult {
    let candidates: PoolEntry[] = [];
    if (named !== undefined) {
      candidates = [named];
    } else {
      const denials: string[] = [];
      for (const entry of this.ordered) {
        const denial =
          this.newDenial(entry, req) ??
          (entry.pool.autoAssign
            ? undefined
            : `pool '${entry.pool.name}' has autoAssign: false and the Service neither names it (${ADDRESS_POOL_ANNOTATION}) nor requests one of its addresses`);
        if (denial === undefined) candidates.push(entry);
        else denials.push(denial);
      }
      if (candidates.length === 0) {
        const message =
          this.pools.size === 0 ? 'no address pools exist' : `no address pool is available to Service ${req.key}: ${boundedList(denials)}`;
        return fail('NoMatchingPool', undefined, message);
      }
    }
    const primary = families[0] ?? 'IPv4';
    const secondary = families[1];
    const withPrimary = candidates.filter((e) => poolHasFamily(e.pool, primary));
    const dual = secondary === undefined ? [] : withPrimary.filter((e) => poolHasFamily(e.pool, secondary));
    if (req.ipFamilyPolicy === 'RequireDualStack' && dual.length === 0) {
      return fail(
        'DualStackUnavailable',
        undefined,
        `no pool available to this Service has both IPv4 and IPv6 addresses (considered ${poolNames(candidates)})`,
      );
    }
    if (withPrimary.length === 0) {
      return fail('NoMatchingPool', undefined, `no pool available to this Service has ${primary} addresses (considered ${poolNames(candidates)})`);
    }
    if (secondary !== undefined) {
      for (const entry of this.sharingFirst(dual, families, req)) {
        const a = this.pick(entry, primary, req);
        const b = a === undefined ? undefined : this.pick(entry, secondary, req);
        if (a !== undefined && b !== undefined) return this.commit(req, entry.pool.name, [a, b]);
      }
      if (req.ipFamilyPolicy === 'RequireDualStack') {
        return fail('PoolExhausted', undefined, `no pool has both a free IPv4 and a free IPv6 address; tried ${poolNames(dual)}`);
      }
    }
    for (const entry of this.sharingFirst(withPrimary, families, req)) {
      const addr = this.pick(entry, primary, req);
      if (addr !== undefined) return this.commit(req, entry.pool.name, [addr]);
    }
    return fail('PoolExhausted', undefined, `no free ${primary} address; tried ${poolNames(withPrimary)}`);
  }

  private notAllowedMessage(addr: Addr, req: AllocationRequest, containing: readonly PoolEntry[]): string {
    const allowed = this.ordered.filter((e) => this.newDenial(e, req) === undefined).map((e) => e.pool.name);
    const allowedText =
      allowed.length > 0
        ? `Services in namespace '${req.namespace}' may use ${plural('pool', allowed)}`
        : `no pool is available to Services in namespace '${req.namespace}'`;
    if (containing.length > 0) {
      const reasons = containing.map((e) => this.newDenial(e, req)).filter((r) => r !== undefined);
      return `${addr.text} may not be used by this Service: ${boundedList(reasons)}; ${allowedText}`;
    }
    const skipping = this.ordered.find((e) => e.pool.ranges.some((r) => rangeContains(r, addr)));
    if (skipping !== undefined) return `${addr.text}${buggyHint(skipping.pool, addr)}; ${allowedText}`;
    return `${addr.text} is not in any address pool; ${allowedText}`;
  }

  /** Pools where a compatible Service already holds an address come first: that is how sharing Services meet. */
  private sharingFirst(entries: readonly PoolEntry[], families: readonly IPFamily[], req: AllocationRequest): PoolEntry[] {
    if (req.sharingKey === undefined || entries.length < 2) return [...entries];
    const sharing = entries.filter((e) => families.some((f) => this.lowestShareable(e, f, req) !== undefined));
    return [...sharing, ...entries.filter((e) => !sharing.includes(e))];
  }

  /** An address of this family for req from this pool: one it can share, else the lowest free one. */
  private pick(entry: PoolEntry, family: IPFamily, req: AllocationRequest): Addr | undefined {
    if (req.sharingKey !== undefined) {
      const shared = this.lowestShareable(entry, family, req);
      if (shared !== undefined) return shared;
    }
    const skip = entry.pool.avoidBuggyIPs && family === 'IPv4' ? (value: bigint) => isBuggyIP({ family, value }) : undefined;
    for (const range of entry.pool.ranges) {
      if (range.family !== family) continue;
      const value = this.index.lowestFree(range, entry.reserved, skip);
      if (value !== undefined) return toAddr({ family, value });
    }
    return undefined;
  }

  /** Cost: the sharing group's addresses only (O(1) when a requested port is busy on all of them). */
  private lowestShareable(entry: PoolEntry, family: IPFamily, req: AllocationRequest): Addr | undefined {
    const group = sharingGroup(req);
    if (group === undefined) return undefined;
    for (const addr of this.index.shareCandidates(group, req.ports.map(portKey), family)) {
      if (!poolHasAddress(entry.pool, addr) || reservationOf(entry.reserved, addr.family, addr.value) !== undefined) continue;
      if (this.shareable(addr, req, entry.pool.name)) return addr;
    }
    return undefined;
  }

  // --- bookkeeping ---

  private commit(req: AllocationRequest, pool: string, addrs: readonly Addr[], since = ++this.clock): AllocationResult {
    const ips = [...addrs].sort(familyOrder(wantedFamilies(req)));
    const holding: Holding = { key: req.key, pool, ips, request: req, since };
    this.holdings.set(req.key, holding);
    for (const addr of ips) this.hold(holding, addr);
    return { ok: true, pool, ips: ips.map((a) => a.text) };
  }

  private hold(holding: Holding, addr: Addr): void {
    this.index.hold(holding.key, addr, sharingGroup(holding.request), holding.request.ports.map(portKey));
  }

  private unhold(holding: Holding, addr: Addr): void {
    this.index.unhold(holding.key, addr, sharingGroup(holding.request), holding.request.ports.map(portKey));
  }
}

/** The families a request gets addresses of, primary first. */
export function wantedFamilies(req: AllocationRequest): IPFamily[] {
  const primary = req.ipFamilies[0] ?? 'IPv4';
  if (req.ipFamilyPolicy === 'SingleStack') return [primary];
  if (req.ipFamilyPolicy === 'RequireDualStack') return [primary, otherFamily(primary)];
  // PreferDualStack with one family means a single-stack cluster: the second family is not wanted.
  const secondary = req.ipFamilies[1];
  return secondary !== undefined && secondary !== primary ? [primary, secondary] : [primary];
}

function scopeDenial(pool: ParsedPool, req: AllocationRequest): string | undefined {
  if (pool.namespaces !== undefined && !pool.namespaces.includes(req.namespace)) {
    return `pool '${pool.name}' is limited to namespaces [${pool.namespaces.join(', ')}]`;
  }
  if (!matchesSelector(pool.namespaceSelector, req.namespaceLabels)) {
    return `pool '${pool.name}' is limited to namespaces matching its namespaceSelector, which '${req.namespace}' does not`;
  }
  if (!matchesSelector(pool.serviceSelector, req.serviceLabels)) {
    return `pool '${pool.name}' is limited to Services matching its serviceSelector, which ${req.key} does not`;
  }
  return undefined;
}

function parseRequested(req: AllocationRequest, families: readonly IPFamily[]): Addr[] | AllocationFailure {
  const result: Addr[] = [];
  for (const text of req.requestedIPs) {
    const parsed = tryParseIP(text);
    if (parsed === undefined) {
      return fail('AddressNotInAllowedPool', LOAD_BALANCER_IPS_FIELD, `${JSON.stringify(text.slice(0, 64))} is not a valid IP address`);
    }
    const addr = toAddr(parsed);
    if (!families.includes(addr.family)) {
      return fail(
        'AddressNotInAllowedPool',
        LOAD_BALANCER_IPS_FIELD,
        `${addr.text} is ${addr.family}, but this Service gets ${families.join(' and ')} addresses only`,
      );
    }
    if (result.some((other) => other.family === addr.family)) {
      return fail('AddressNotInAllowedPool', LOAD_BALANCER_IPS_FIELD, `at most one ${addr.family} address may be requested`);
    }
    result.push(addr);
  }
  return result;
}

function comparePoolOrder(a: PoolEntry, b: PoolEntry): number {
  const scoped = Number(isScoped(b.pool)) - Number(isScoped(a.pool));
  if (scoped !== 0) return scoped;
  const pa = a.pool.priority;
  const pb = b.pool.priority;
  if (pa !== pb) {
    if (pa === undefined) return 1;
    if (pb === undefined) return -1;
    return pa - pb;
  }
  return compareCodeUnits(a.pool.name, b.pool.name);
}

function familyOrder(families: readonly IPFamily[]): (a: Addr, b: Addr) => number {
  const rank = (addr: Addr): number => {
    const i = families.indexOf(addr.family);
    return i === -1 ? families.length : i;
  };
  return (a, b) => rank(a) - rank(b) || compareIP(a, b);
}

function buggyHint(pool: ParsedPool, addr: Addr): string {
  if (!pool.avoidBuggyIPs || poolHasAddress(pool, addr)) return '';
  if (!pool.ranges.some((r) => rangeContains(r, addr))) return '';
  return ` (it ends in .0 or .255, which pool '${pool.name}' skips: avoidBuggyIPs)`;
}

function plural(noun: string, names: readonly string[]): string {
  return names.length === 1 ? `${noun} '${names[0] ?? ''}'` : `${noun}s [${names.join(', ')}]`;
}

function poolNames(entries: readonly PoolEntry[]): string {
  return plural('pool', entries.map((e) => e.pool.name));
}

function fail(reason: AllocationFailureReason, field: string | undefined, message: string): AllocationFailure {
  return field === undefined ? { ok: false, reason, message } : { ok: false, reason, field, message };
}
