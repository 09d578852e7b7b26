/**
 * Answers ARP who-has and IPv6 Neighbor Solicitations for the addresses this node owns, with
 * the receiving interface's MAC. The addresses are never added to an interface: the kernel
 * does not know them, only the link does. On taking an address: gratuitous ARP / unsolicited
 * NA at once, then repeated `gratuitousRepeats` times `gratuitousIntervalMs` apart (beyond
 * Linux's 1 s neighbour locktime, so every repeat can land). On losing it: silence at once.
 */
import type { Logger } from 'pino';
import type { Clock } from '../../../kube/clock.js';
import { formatIP, type IPAddress } from '../../../ipam/ip.js';
import type { FrameSocket, FrameSocketFactory, NetworkInterface } from './frame-socket.js';
import {
  decodeArp,
  decodeNeighborSolicitation,
  encodeArpReply,
  encodeGratuitousArp,
  encodeNeighborAdvertisement,
  encodeUnsolicitedNeighborAdvertisement,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV6,
  multicastMac,
  solicitedNodeAddress,
} from './frames.js';

export interface OwnedIP {
  address: IPAddress;
  /** Announce only on these interfaces (the pool's `l2.interfaces`); empty = every suitable one. */
  interfaces: readonly string[];
}

export interface AnnouncerCounters {
  reply(protocol: 'arp' | 'ndp'): void;
  gratuitous(protocol: 'arp' | 'ndp'): void;
}

export interface AnnouncerOptions {
  sockets: FrameSocketFactory;
  /** Suitable interfaces now (restricted to `only` when given). */
  discover: (only?: readonly string[]) => Promise<NetworkInterface[]>;
  clock: Clock;
  logger: Logger;
  counters?: AnnouncerCounters;
  gratuitousRepeats?: number;
  gratuitousIntervalMs?: number;
  /** Checked after every wait: when false (lease lost, stopping), nothing is announced. */
  allowed?: () => boolean;
}

interface Link {
  name: string;
  arp: FrameSocket | undefined;
  ndp: FrameSocket | undefined;
  /** Solicited-node multicast MACs joined on the ndp socket, with how many owned IPs need each. */
  groups: Map<string, number>;
}

interface Owned {
  address: IPAddress;
  interfaces: string[];
  cancelRepeats: () => void;
}

export const DEFAULT_GRATUITOUS_REPEATS = 3;
export const DEFAULT_GRATUITOUS_INTERVAL_MS = 1_200;

export class Announcer {
  private readonly owned = new Map<string, Owned>();
  private readonly links = new Map<string, Link>();

  constructor(private readonly options: AnnouncerOptions) {}

  /** IP -> interfaces it is announced on, for the status condition. */
  announced(): Map<string, string[]> {
    return new Map([...this.owned].map(([ip, o]) => [ip, [...o.interfaces]]));
  }

  /**
   * Makes the owned set exactly `want` (key: canonical IP text). Released addresses go silent
   * before anything else happens; new ones are announced at once.
   */
  async reconcile(want: ReadonlyMap<string, OwnedIP>): Promise<void> {
    for (const ip of [...this.owned.keys()]) {
      if (!want.has(ip)) this.release(ip);
    }
    const all = await this.options.discover();
    // The world may have changed while we looked at the interfaces (lease lost, SIGTERM).
    if (!(this.options.allowed?.() ?? true)) {
      this.releaseAll();
      return;
    }
    for (const [ip, spec] of want) {
      const names = all.filter((i) => spec.interfaces.length === 0 || spec.interfaces.includes(i.name)).map((i) => i.name);
      const current = this.owned.get(ip);
      if (current && sameList(current.interfaces, names)) continue;
      if (current) this.release(ip);
      this.take(ip, spec.address, names);
    }
    this.closeUnusedLinks();
  }

  /** Stops answering for everything (SIGTERM, lost lease, lost API). Synchronous: silence is immediate. */
  releaseAll(): void {
    for (const ip of [...this.owned.keys()]) this.release(ip);
    this.closeUnusedLinks();
  }

  /**
   * Repeats the gratuitous burst for everything owned: after this node was unreachable for a
   * while, clients may have moved to a runner-up that is about to go silent again.
   */
  reannounce(): void {
    for (const [ip, owned] of this.owned) {
      owned.cancelRepeats();
      this.options.logger.info({ ip }, 're-announcing after a gap in probes');
      this.burst(ip, owned);
    }
  }

  private take(ip: string, address: IPAddress, interfaces: string[]): void {
    const ipv6 = address.family === 'IPv6';
    for (const name of interfaces) {
      const link = this.link(name, ipv6);
      if (!link) continue;
      if (ipv6 && link.ndp) {
        const group = multicastMac(solicitedNodeAddress(address));
        const count = link.groups.get(group) ?? 0;
        if (count === 0) link.ndp.joinMulticast(group);
        link.groups.set(group, count + 1);
      }
    }
    const owned: Owned = { address, interfaces, cancelRepeats: () => undefined };
    this.owned.set(ip, owned);
    this.options.logger.info({ ip, interfaces }, 'announcing');
    this.burst(ip, owned);
  }

  /** Gratuitous ARP / unsolicited NA now, then `gratuitousRepeats` more, spaced. */
  private burst(ip: string, owned: Owned): void {
    this.sendGratuitous(owned);
    let left = this.options.gratuitousRepeats ?? DEFAULT_GRATUITOUS_REPEATS;
    const repeat = (): void => {
      if (this.owned.get(ip) !== owned || left <= 0) return;
      left--;
      this.sendGratuitous(owned);
      if (left > 0) owned.cancelRepeats = this.options.clock.setTimer(repeat, this.options.gratuitousIntervalMs ?? DEFAULT_GRATUITOUS_INTERVAL_MS);
    };
    if (left > 0) owned.cancelRepeats = this.options.clock.setTimer(repeat, this.options.gratuitousIntervalMs ?? DEFAULT_GRATUITOUS_INTERVAL_MS);
  }

  private release(ip: string): void {
    const owned = this.owned.get(ip);
    if (!owned) return;
    owned.cancelRepeats();
    this.owned.delete(ip);
    if (owned.address.family === 'IPv6') {
      const group = multicastMac(solicitedNodeAddress(owned.address));
      for (const name of owned.interfaces) {
        const link = this.links.get(name);
        const count = link?.groups.get(group) ?? 0;
        if (count <= 1) {
          link?.groups.delete(group);
          link?.ndp?.leaveMulticast(group);
        } else link?.groups.set(group, count - 1);
      }
    }
    this.options.logger.info({ ip }, 'stopped announcing');
  }

  private sendGratuitous(owned: Owned): void {
    for (const name of owned.interfaces) {
      const link = this.links.get(name);
      if (owned.address.family === 'IPv4' && link?.arp) {
        if (link.arp.send(encodeGratuitousArp(owned.address, link.arp.mac))) this.options.counters?.gratuitous('arp');
      } else if (owned.address.family === 'IPv6' && link?.ndp) {
        if (link.ndp.send(encodeUnsolicitedNeighborAdvertisement(owned.address, link.ndp.mac))) this.options.counters?.gratuitous('ndp');
      }
    }
  }

  /** The link's sockets, opened on first use; undefined when the interface cannot be opened. */
  private link(name: string, ipv6: boolean): Link | undefined {
    let link = this.links.get(name);
    if (!link) {
      link = { name, arp: undefined, ndp: undefined, groups: new Map() };
      this.links.set(name, link);
    }
    try {
      if (!ipv6 && !link.arp) {
        link.arp = this.options.sockets.open({ interfaceName: name, ethertype: ETHERTYPE_ARP, onFrame: (frame) => this.onArp(name, frame) });
      }
      if (ipv6 && !link.ndp) {
        link.ndp = this.options.sockets.open({ interfaceName: name, ethertype: ETHERTYPE_IPV6, onlyNeighborSolicitations: true, onFrame: (frame) => this.onNdp(name, frame) });
      }
    } catch (error) {
      this.options.logger.error({ err: error, interface: name }, 'cannot open a raw socket on the interface');
      return undefined;
    }
    return link;
  }

  private closeUnusedLinks(): void {
    for (const [name, link] of this.links) {
      const users = [...this.owned.values()].filter((o) => o.interfaces.includes(name));
      if (link.arp && !users.some((o) => o.address.family === 'IPv4')) {
        link.arp.close();
        link.arp = undefined;
      }
      if (link.ndp && !users.some((o) => o.address.family === 'IPv6')) {
        link.ndp.close();
        link.ndp = undefined;
        link.groups.clear();
      }
      if (!link.arp && !link.ndp) this.links.delete(name);
    }
  }

  private ownedOn(name: string, address: IPAddress): boolean {
    const owned = this.owned.get(formatIP(address));
    return owned !== undefined && owned.interfaces.includes(name);
  }

  private onArp(name: string, frame: Buffer): void {
    const arp = decodeArp(frame);
    if (!arp || arp.operation !== 'request' || !this.ownedOn(name, arp.targetIP)) return;
    // A gratuitous request from someone else claiming our address is not a question.
    if (arp.senderIP.value === arp.targetIP.value) return;
    const socket = this.links.get(name)?.arp;
    if (socket?.send(encodeArpReply(arp, socket.mac))) this.options.counters?.reply('arp');
  }

  private onNdp(name: string, frame: Buffer): void {
    const ns = decodeNeighborSolicitation(frame);
    if (!ns || !this.ownedOn(name, ns.target)) return;
    const socket = this.links.get(name)?.ndp;
    if (socket?.send(encodeNeighborAdvertisement(ns, socket.mac))) this.options.counters?.reply('ndp');
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
