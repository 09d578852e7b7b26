/**
 * Which addresses are held and by whom, kept sorted per family so that a free address is found
 * by binary search (never by scanning a pool), and grouped by sharing group so that a shareable
 * address is found among the group's addresses only. Pure bookkeeping, no allocation rules.
 */
import { formatIP, type IPAddress, type IPFamily, type IPRange } from './ip.js';

export interface Addr extends IPAddress {
  readonly text: string;
}

export function toAddr(address: IPAddress): Addr {
  return { family: address.family, value: address.value, text: formatIP(address) };
}

interface Group {
  /** Addresses held by Services of this group, with how many members hold each. */
  readonly addrs: Map<string, Addr>;
  readonly members: Map<string, number>;
  /** Per "port/protocol": the group's addresses on which some holder uses it. */
  readonly ports: Map<string, Map<string, number>>;
}

export class AddressIndex {
  /** Canonical address -> keys of the Services holding it. */
  private readonly holders = new Map<string, Set<string>>();
  /** Every held address per family, sorted by value. */
  private readonly held: Record<IPFamily, Addr[]> = { IPv4: [], IPv6: [] };
  private readonly groups = new Map<string, Group>();

  holdersOf(text: string): ReadonlySet<string> | undefined {
    return this.holders.get(text);
  }

  hold(key: string, addr: Addr, group: string | undefined, ports: readonly string[]): void {
    let keys = this.holders.get(addr.text);
    if (keys === undefined) {
      keys = new Set();
      this.holders.set(addr.text, keys);
      const held = this.held[addr.family];
      held.splice(lowerBound(held, addr.value), 0, addr);
    }
    keys.add(key);
    if (group === undefined) return;
    let entry = this.groups.get(group);
    if (entry === undefined) {
      entry = { addrs: new Map(), members: new Map(), ports: new Map() };
      this.groups.set(group, entry);
    }
    entry.addrs.set(addr.text, addr);
    entry.members.set(addr.text, (entry.members.get(addr.text) ?? 0) + 1);
    for (const port of ports) {
      let users = entry.ports.get(port);
      if (users === undefined) {
        users = new Map();
        entry.ports.set(port, users);
      }
      users.set(addr.text, (users.get(addr.text) ?? 0) + 1);
    }
  }

  unhold(key: string, addr: Addr, group: string | undefined, ports: readonly string[]): void {
    const keys = this.holders.get(addr.text);
    if (keys === undefined) return;
    keys.delete(key);
    const entry = group === undefined ? undefined : this.groups.get(group);
    if (entry !== undefined && group !== undefined) {
      for (const port of ports) {
        const users = entry.ports.get(port);
        const left = (users?.get(addr.text) ?? 0) - 1;
        if (left > 0) users?.set(addr.text, left);
        else users?.delete(addr.text);
        if (users?.size === 0) entry.ports.delete(port);
      }
      const members = (entry.members.get(addr.text) ?? 0) - 1;
      if (members > 0) {
        entry.members.set(addr.text, members);
      } else {
        entry.members.delete(addr.text);
        entry.addrs.delete(addr.text);
      }
      if (entry.addrs.size === 0) this.groups.delete(group);
    }
    if (keys.size > 0) return;
    this.holders.delete(addr.text);
    const held = this.held[addr.family];
    const i = lowerBound(held, addr.value);
    if (held[i]?.value === addr.value) held.splice(i, 1);
  }

  /**
   * The group's addresses that may be candidates for a request using `ports`, lowest first;
   * empty at once when one of the ports is in use on every address of the group (the common
   * "same key, same port" case stays O(1)).
   */
  shareCandidates(group: string, ports: readonly string[], family: IPFamily): Addr[] {
    const entry = this.groups.get(group);
    if (entry === undefined) return [];
    if (ports.some((p) => (entry.ports.get(p)?.size ?? 0) >= entry.addrs.size)) return [];
    const busy = ports.map((p) => entry.ports.get(p));
    return [...entry.addrs.values()]
      .filter((a) => a.family === family && !busy.some((users) => users?.has(a.text) === true))
      .sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  }

  /**
   * The lowest address of `range` that is neither held nor inside `excluded` (sorted, merged);
   * `skip` rejects single addresses (avoidBuggyIPs). Cost: O(log held) per gap tried.
   */
  lowestFree(range: IPRange, excluded: readonly IPRange[], skip?: (value: bigint) => boolean): bigint | undefined {
    const held = this.held[range.family];
    let from = range.start;
    while (from <= range.end) {
      const free = firstGap(held, from, range.end);
      if (free === undefined) return undefined;
      const blocking = excluded.find((r) => r.start <= free && free <= r.end);
      if (blocking !== undefined) {
        from = blocking.end + 1n;
        continue;
      }
      if (skip?.(free) === true) {
        from = free + 1n;
        continue;
      }
      return free;
    }
    return undefined;
  }
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
