import { compareCodeUnits, matchesSelector } from '../kube/label-selector.js';
import { compareIP, formatIP, otherFamily, rangeContains, tryParseIP } from './ip.js';
import type { IPAddress, IPFamily } from './ip.js';
import { addressCount, capToSafeInteger, findOverlaps, isScoped, poolHasAddress, poolHasFamily } from './pool.js';
import type { ParsedPool } from './pool.js';
import {
  ADDRESS_POOL_ANNOTATION,
  ADDRESS_POOL_FIELD,
  ALLOW_SHARED_IP_ANNOTATION,
  ALLOW_SHARED_IP_FIELD,
  LOAD_BALANCER_IPS_FIELD,
  type AllocationRequest,
} from './request.js';

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
] as const;
export type AllocationFailureReason = (typeof ALLOCATION_FAILURE_REASONS)[number];

export type AllocationResult =
  /** ips: canonical, primary family first. */
  | { ok: true; pool: string; ips: string[] }
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

interface Addr extends IPAddress {
  readonly text: string;
}

interface PoolEntry {
  readonly pool: ParsedPool;
  /** Non-empty: the pool shares addresses with these pools and gets no new allocations. */
  readonly overlapsWith: readonly string[];
  /** Set: the pool is held at its last valid spec (its current one is invalid); no new allocations. */
  readonly frozenBecause: string | undefined;
}

interface Holding {
  readonly key: string;
  pool: string;
  ips: Addr[];
  /** Kept so that every later change (pools, other Services) can re-check this assignment. */
  request: AllocationRequest;
}

/** Why an address cannot be shared, as an allocation failure reason and message. */
export interface SharingRefusal {
  reason: 'AddressInUse' | 'SharingConflict';
  message: string;
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
  /** Canonical address -> keys of the Services holding it. */
  private readonly holders = new Map<string, Set<string>>();
  /** Every held address per family, sorted by value, so a free address is found without scanning a pool. */
  private readonly held: Record<IPFamily, Addr[]> = { IPv4: [], IPv6: [] };

  /**
   * Replaces the pool set; returns (and releases) the assignments it invalidates, sorted by key.
   * `frozen` names pools (with the reason) that keep what they gave out but give out nothing new.
   */
  setPools(pools: readonly ParsedPool[], frozen: ReadonlyMap<string, string> = new Map()): Released[] {
    const names = new Set<string>();
    for (const pool of pools) {
      if (names.has(pool.name)) throw new AllocatorError(`pool '${pool.name}' is listed twice`);
      names.add(pool.name);
    }
    const overlaps = findOverlaps(pools);
    this.pools = new Map(pools.map((pool) => [pool.name, { pool, overlapsWith: overlaps.get(pool.name) ?? [], frozenBecause: frozen.get(pool.name) }]));
    this.ordered = [...this.pools.values()].sort(comparePoolOrder);

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
    if ('pool' in still) this.commit(existing.request, still.pool, existing.ips);
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
      const conflict = this.conflictOn(addr, req);
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
    for (const addr of holding.ips) this.unhold(key, addr);
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
    const available = (family: IPFamily): number => {
      const left = addressCount(entry.pool, family) - BigInt(seen[family].size);
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
    const keys = [...(this.holders.get(addr.text) ?? [])].sort(compareCodeUnits);
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
    return { reason: denial ?? `${list} is not in any one address pool` };
  }

  /** Why a pool may not give this Service a new address; undefined when it may (autoAssign aside). */
  private newDenial(entry: PoolEntry, req: AllocationRequest): string | undefined {
    if (entry.frozenBecause !== undefined) return `pool '${entry.pool.name}' hands out no new addresses: ${entry.frozenBecause}`;
    if (entry.overlapsWith.length > 0) {
      return `pool '${entry.pool.name}' overlaps ${plural('pool', entry.overlapsWith)} and hands out no new addresses until that is fixed`;
    }
    return scopeDenial(entry.pool, req);
  }

  /** The first holder (by key) of addr that cannot share it with req. */
  private conflictOn(addr: Addr, req: AllocationRequest): SharingRefusal | undefined {
    const holders = this.holders.get(addr.text);
    if (holders === undefined) return undefined;
    const keys = holders.size === 1 ? holders : [...holders].sort(compareCodeUnits);
    for (const key of keys) {
      if (key === req.key) continue;
      const holder = this.holdings.get(key);
      if (holder === undefined) continue;
      const conflict = sharingConflict(holder.request, req);
      if (conflict !== undefined) {
        return { reason: conflict.reason, message: `${addr.text} is in use by ${key}: ${conflict.message}` };
      }
    }
    return undefined;
  }

  /** conflictOn(addr, req) === undefined, without building messages: this runs in allocation scans. */
  private shareable(addr: Addr, req: AllocationRequest): boolean {
    for (const key of this.holders.get(addr.text) ?? []) {
      if (key === req.key) continue;
      const holder = this.holdings.get(key);
      if (holder !== undefined && !canShare(holder.request, req)) return false;
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
    if (kept.some((addr) => this.conflictOn(addr, req) !== undefined)) return undefined;

    for (const addr of holding.ips) if (!kept.includes(addr)) this.unhold(holding.key, addr);
    holding.ips = kept;
    holding.pool = where.pool;
    holding.request = req;
    // PreferDualStack: add the missing family from the same pool when it has one (as MetalLB does).
    const entry = this.pools.get(where.pool);
    if (req.ipFamilyPolicy === 'PreferDualStack' && entry !== undefined && this.newDenial(entry, req) === undefined) {
      for (const family of families) {
        if (holding.ips.some((a) => a.family === family)) continue;
        const addr = this.pick(entry, family, req);
        if (addr === undefined) continue;
        this.hold(holding.key, addr);
        holding.ips.push(addr);
      }
    }
    holding.ips.sort(familyOrder(families));
    return { ok: true, pool: holding.pool, ips: holding.ips.map((a) => a.text) };
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
      } else {
        // The CVE-2020-8554 guard: an address is only ever given out by a pool that allows this Service.
        const containing = this.ordered.filter((e) => poolHasAddress(e.pool, addr));
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
      const conflict = this.conflictOn(addr, req);
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
          this.pools.size === 0 ? 'no address pools exist' : `no address pool is available to Service ${req.key}: ${denials.join('; ')}`;
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
      return `${addr.text} may not be used by this Service: ${reasons.join('; ')}; ${allowedText}`;
    }
    const skipping = this.ordered.find((e) => e.pool.ranges.some((r) => rangeContains(r, addr)));
    if (skipping !== undefined) return `${addr.text}${buggyHint(skipping.pool, addr)}; ${allowedText}`;
    return `${addr.text} is not in any address pool; ${allowedText}`;
  }

  /** Pools where a compatible Service already holds an address come first: that is how sharing Services meet. */
  private sharingFirst(entries: readonly PoolEntry[], families: readonly IPFamily[], req: AllocationRequest): PoolEntry[] {
    if (req.sharingKey === undefined || entries.length < 2) return [...entries];
    const sharing = entries.filter((e) => families.some((f) => this.lowestShareable(e.pool, f, req) !== undefined));
    return [...sharing, ...entries.filter((e) => !sharing.includes(e))];
  }

  /** An address of this family for req from this pool: one it can share, else the lowest free one. */
  private pick(entry: PoolEntry, family: IPFamily, req: AllocationRequest): Addr | undefined {
    if (req.sharingKey !== undefined) {
      const shared = this.lowestShareable(entry.pool, family, req);
      if (shared !== undefined) return shared;
    }
    const value = this.lowestFree(entry.pool, family);
    return value === undefined ? undefined : toAddr({ family, value });
  }

  /**
   * Cost: O(log held) per range; with avoidBuggyIPs, the held addresses inside the range
   * (plus the .0/.255 skipped among them). Never the pool size.
   */
  private lowestFree(pool: ParsedPool, family: IPFamily): bigint | undefined {
    const held = this.held[family];
    const skipBuggy = pool.avoidBuggyIPs && family === 'IPv4';
    for (const range of pool.ranges) {
      if (range.family !== family) continue;
      if (!skipBuggy) {
        const free = firstGap(held, range.start, range.end);
        if (free !== undefined) return free;
        continue;
      }
      let i = lowerBound(held, range.start);
      let candidate = range.start;
      while (candidate <= range.end) {
        const last = candidate & 255n;
        if (last === 0n || last === 255n) {
          candidate += 1n;
          continue;
        }
        while (i < held.length && (held[i]?.value ?? candidate) < candidate) i++;
        if (held[i]?.value !== candidate) return candidate;
        candidate += 1n;
      }
    }
    return undefined;
  }

  private lowestShareable(pool: ParsedPool, family: IPFamily, req: AllocationRequest): Addr | undefined {
    const held = this.held[family];
    for (const range of pool.ranges) {
      if (range.family !== family) continue;
      for (let i = lowerBound(held, range.start); i < held.length; i++) {
        const addr = held[i];
        if (addr === undefined || addr.value > range.end) break;
        if (poolHasAddress(pool, addr) && this.shareable(addr, req)) return addr;
      }
    }
    return undefined;
  }

  // --- bookkeeping ---

  private commit(req: AllocationRequest, pool: string, addrs: readonly Addr[]): AllocationResult {
    const ips = [...addrs].sort(familyOrder(wantedFamilies(req)));
    this.holdings.set(req.key, { key: req.key, pool, ips, request: req });
    for (const addr of ips) this.hold(req.key, addr);
    return { ok: true, pool, ips: ips.map((a) => a.text) };
  }

  private hold(key: string, addr: Addr): void {
    let keys = this.holders.get(addr.text);
    if (keys === undefined) {
      keys = new Set();
      this.holders.set(addr.text, keys);
      const held = this.held[addr.family];
      held.splice(lowerBound(held, addr.value), 0, addr);
    }
    keys.add(key);
  }

  private unhold(key: string, addr: Addr): void {
    const keys = this.holders.get(addr.text);
    if (keys === undefined) return;
    keys.delete(key);
    if (keys.size > 0) return;
    this.holders.delete(addr.text);
    const held = this.held[addr.family];
    const i = lowerBound(held, addr.value);
    if (held[i]?.value === addr.value) held.splice(i, 1);
  }
}

/** sharingConflict(holder, req) === undefined, cheaply. */
function canShare(holder: AllocationRequest, req: AllocationRequest): boolean {
  return (
    holder.sharingKey !== undefined &&
    holder.sharingKey === req.sharingKey &&
    holder.backendKey === req.backendKey &&
    !req.ports.some((p) => holder.ports.some((q) => q.port === p.port && q.protocol === p.protocol))
  );
}

/** Why two Services may not share an address; undefined when they may. */
export function sharingConflict(holder: AllocationRequest, req: AllocationRequest): SharingRefusal | undefined {
  if (holder.sharingKey === undefined) {
    return { reason: 'AddressInUse', message: `${holder.key} does not allow sharing (no ${ALLOW_SHARED_IP_ANNOTATION} annotation)` };
  }
  if (req.sharingKey === undefined) {
    return { reason: 'AddressInUse', message: `this Service does not allow sharing (no ${ALLOW_SHARED_IP_ANNOTATION} annotation)` };
  }
  if (holder.sharingKey !== req.sharingKey) {
    return {
      reason: 'SharingConflict',
      message: `different sharing keys (${JSON.stringify(req.sharingKey)} here, ${JSON.stringify(holder.sharingKey)} there)`,
    };
  }
  const clash = req.ports.find((p) => holder.ports.some((q) => q.port === p.port && q.protocol === p.protocol));
  if (clash !== undefined) {
    return { reason: 'SharingConflict', message: `both Services use port ${clash.port}/${clash.protocol}` };
  }
  if (holder.backendKey !== req.backendKey) {
    return {
      reason: 'SharingConflict',
      message: `different backends (${describeBackend(req.backendKey)} here, ${describeBackend(holder.backendKey)} there); with externalTrafficPolicy Local both need the same selector`,
    };
  }
  return undefined;
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

function lowerBound(list: readonly Addr[], value: bigint): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((list[mid]?.value ?? value) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function toAddr(address: IPAddress): Addr {
  return { family: address.family, value: address.value, text: formatIP(address) };
}

function buggyHint(pool: ParsedPool, addr: Addr): string {
  if (!pool.avoidBuggyIPs || poolHasAddress(pool, addr)) return '';
  if (!pool.ranges.some((r) => rangeContains(r, addr))) return '';
  return ` (it ends in .0 or .255, which pool '${pool.name}' skips: avoidBuggyIPs)`;
}

function describeBackend(backendKey: string): string {
  if (backendKey === '') return 'externalTrafficPolicy Cluster';
  const selector = backendKey.startsWith('Local:') ? backendKey.slice('Local:'.length) : backendKey;
  return `externalTrafficPolicy Local, selector {${selector}}`;
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

/**
 * The lowest address in [start, end] not in `held` (sorted, distinct). The held addresses from
 * `start` on are consecutive up to the first gap and not after it, so a binary search finds it.
 */
function firstGap(held: readonly Addr[], start: bigint, end: bigint): bigint | undefined {
  const lo = lowerBound(held, start);
  let a = lo;
  let b = lowerBound(held, end + 1n);
  while (a < b) {
    const mid = (a + b) >> 1;
    if (held[mid]?.value === start + BigInt(mid - lo)) a = mid + 1;
    else b = mid;
  }
  const candidate = start + BigInt(a - lo);
  return candidate <= end ? candidate : undefined;
}
