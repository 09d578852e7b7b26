/**
 * The speaker on one node: informers -> election -> announcer, plus the lease, the probes, the
 * Service status condition and the `nodeAssigned` Event.
 *
 * Takeover rule (every speaker applies it to the same inputs):
 *   node N announces IP when N is the first candidate for IP (election.ts) that is live, where
 *   live = its Lease is current AND (if this speaker probes it) it answered a probe within
 *   probeTimeoutMs; N itself must hold its own current Lease and have synced informers.
 * A speaker whose Lease renewal fails, or that is stopped, goes silent at once.
 */
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from '../../../kube/prom.js';
import { isDeepStrictEqual } from 'node:util';
import type { AddressPool } from '../../../api/address-pool.js';
import type { Condition } from '../../../api/types.js';
import { canonicalIP, tryParseIP } from '../../../ipam/ip.js';
import { isParsedPool, parsePool, type ParsedPool } from '../../../ipam/pool.js';
import type { Clock } from '../../../kube/clock.js';
import type { EventSink } from '../../../kube/events.js';
import type { InformerSource } from '../../../kube/shared-informers.js';
import { metric } from '../../../kube/metrics.js';
import { patchWithRetry } from '../../../kube/patch.js';
import type { KubeClient } from '../../../kube/rest.js';
import { Announcer, type OwnedIP } from './announcer.js';
import {
  electAnnouncer,
  nodeUsable,
  nodesToProbe,
  rankNodes,
  planAnnouncements,
  serviceKey,
  type AnnouncedIP,
  type EndpointSliceLike,
  type NodeLike,
  type ServiceLike,
} from './election.js';
import type { FrameSocketFactory, NetworkInterface } from './frame-socket.js';
import { LeaseKeeper, LeaseView, PeerProber, type LeaseLike } from './liveness.js';

export const ANNOUNCED_CONDITION = 'L2Announced';
export const NODE_ASSIGNED_REASON = 'nodeAssigned';

export const SPEAKER_PATHS = {
  services: '/api/v1/services',
  endpointSlices: '/apis/discovery.k8s.io/v1/endpointslices',
  nodes: '/api/v1/nodes',
  pools: '/apis/portico.dev/v1alpha1/addresspools',
  leases: (namespace: string) => `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
} as const;

export interface SpeakerSettings {
  node: string;
  namespace: string;
  renewIntervalMs: number;
  leaseDurationMs: number;
  probePort: number;
  probeIntervalMs: number;
  probeTimeoutMs: number;
  gratuitousRepeats: number;
  gratuitousIntervalMs: number;
}

export interface SpeakerDeps {
  client: KubeClient;
  informers: InformerSource;
  sockets: FrameSocketFactory;
  discover: (only?: readonly string[]) => Promise<NetworkInterface[]>;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  registry: Registry;
}

interface ServiceObject extends ServiceLike {
  metadata: { name: string; namespace: string; uid?: string; resourceVersion?: string };
  status?: ServiceLike['status'] & { conditions?: Condition[] };
}

interface NodeObject extends NodeLike {
  status?: NodeLike['status'] & { addresses?: { type?: string; address?: string }[] };
}

export class Speaker {
  private readonly leaseView: LeaseView;
  private readonly lease: LeaseKeeper;
  private readonly prober: PeerProber;
  private readonly announcer: Announcer;
  private readonly validPools = new Map<string, ParsedPool>();
  private scheduled = false;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  private synced = false;
  private cancelExpiryTimer: () => void = () => undefined;
  /** IP -> node this speaker last elected, to count changes. */
  private lastWinners = new Map<string, string | undefined>();
  private readonly announcedGauge: Gauge;
  private readonly electionChanges: Counter;

  constructor(
    private readonly settings: SpeakerSettings,
    private readonly deps: SpeakerDeps,
  ) {
    const registers = [deps.registry];
    this.announcedGauge = metric(deps.registry, 'portico_speaker_announced_ips', Gauge, () => new Gauge({ name: 'portico_speaker_announced_ips', help: 'Addresses this speaker answers ARP/NDP for', registers }));
    this.electionChanges = metric(deps.registry, 'portico_speaker_election_changes_total', Counter, () => new Counter({ name: 'portico_speaker_election_changes_total', help: 'Times the elected announcer of an address changed, as this speaker saw it', registers }));
    const replies = metric(deps.registry, 'portico_speaker_replies_sent_total', Counter<'protocol'>, () => new Counter({ name: 'portico_speaker_replies_sent_total', help: 'ARP replies and Neighbor Advertisements sent in answer to requests', labelNames: ['protocol'], registers }));
    const gratuitous = metric(deps.registry, 'portico_speaker_gratuitous_sent_total', Counter<'protocol'>, () => new Counter({ name: 'portico_speaker_gratuitous_sent_total', help: 'Gratuitous ARPs and unsolicited Neighbor Advertisements sent', labelNames: ['protocol'], registers }));
    this.leaseView = new LeaseView(deps.clock);
    this.lease = new LeaseKeeper({
      client: deps.client,
      namespace: settings.namespace,
      node: settings.node,
      clock: deps.clock,
      logger: deps.logger.child({ part: 'lease' }),
      renewIntervalMs: settings.renewIntervalMs,
      leaseDurationMs: settings.leaseDurationMs,
      onHeld: (held) => {
        if (!held) {
          this.prober.setAnswering(false);
          this.announcer.releaseAll();
        }
        this.schedule();
      },
    });
    this.prober = new PeerProber({
      self: settings.node,
      port: settings.probePort,
      intervalMs: settings.probeIntervalMs,
      timeoutMs: settings.probeTimeoutMs,
      clock: deps.clock,
      logger: deps.logger.child({ part: 'probe' }),
      onChange: () => this.schedule(),
      onRejoin: () => this.announcer.reannounce(),
      // Answer only once this speaker may announce: a runner-up that hears us stands down.
      answering: false,
    });
    this.announcer = new Announcer({
      sockets: deps.sockets,
      discover: deps.discover,
      clock: deps.clock,
      logger: deps.logger.child({ part: 'announcer' }),
      gratuitousRepeats: settings.gratuitousRepeats,
      gratuitousIntervalMs: settings.gratuitousIntervalMs,
      allowed: () => !this.stopped && this.synced && this.lease.isHeld,
      counters: { reply: (protocol) => replies.inc({ protocol }), gratuitous: (protocol) => gratuitous.inc({ protocol }) },
    });
    for (const path of [SPEAKER_PATHS.services, SPEAKER_PATHS.endpointSlices, SPEAKER_PATHS.nodes, SPEAKER_PATHS.pools]) {
      deps.informers.informer(path).on({ onAdd: () => this.schedule(), onUpdate: () => this.schedule(), onDelete: () => this.schedule() });
    }
    deps.informers.informer<LeaseLike>(SPEAKER_PATHS.leases(settings.namespace)).on({
      onAdd: (lease) => {
        this.leaseView.observe(lease);
        this.schedule();
      },
      onUpdate: (_, lease) => {
        this.leaseView.observe(lease);
        this.schedule();
      },
      onDelete: (lease) => {
        this.leaseView.forget(lease);
        this.schedule();
      },
    });
  }

  get healthy(): boolean {
    return !this.stopped && this.lease.isHeld;
  }

  get leaseWrites(): number {
    return this.lease.writes;
  }

  /** Runs until `signal` aborts, then releases everything (addresses first, then the lease). */
  async run(signal: AbortSignal, informersSynced: Promise<boolean>): Promise<void> {
    await this.prober.start();
    const leaseLoop = this.lease.run(signal);
    this.synced = await informersSynced;
    this.schedule();
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await this.stop();
    await leaseLoop;
  }

  /** Goes silent, tells our runners-up, deletes our lease. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.cancelExpiryTimer();
    this.announcer.releaseAll();
    this.announcedGauge.set(0);
    await this.prober.sayGoodbye(this.prober.probers.keys());
    this.prober.stop();
    await this.running.catch(() => undefined);
    await this.lease.release();
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.running = this.running.then(() => this.recompute()).catch((error: unknown) => this.deps.logger.error({ err: error }, 'announcement update failed'));
    });
  }

  private pools(): ParsedPool[] {
    const seen = new Set<string>();
    for (const pool of this.deps.informers.informer<AddressPool>(SPEAKER_PATHS.pools).list()) {
      const parsed = parsePool(pool);
      const name = (pool.metadata as { name?: string }).name ?? '';
      seen.add(name);
      // An invalid edit keeps the last valid spec, as the controller does: no announcement drops on a typo.
      if (isParsedPool(parsed)) this.validPools.set(name, parsed);
    }
    for (const name of [...this.validPools.keys()]) if (!seen.has(name)) this.validPools.delete(name);
    return [...this.validPools.values()];
  }

  private async recompute(): Promise<void> {
    if (this.stopped) return;
    const { informers, clock } = this.deps;
    const self = this.settings.node;
    const services = informers.informer<ServiceObject>(SPEAKER_PATHS.services).list();
    const nodes = informers.informer<NodeObject>(SPEAKER_PATHS.nodes).list();
    const plan = planAnnouncements({
      services,
      endpointSlices: informers.informer<EndpointSliceLike>(SPEAKER_PATHS.endpointSlices).list(),
      nodes,
      pools: this.pools(),
    });
    const leaseLive = (node: string): boolean => (node === self ? this.lease.isHeld : this.leaseView.isLive(node));
    // Probe the nodes we would take over from.
    const addresses = new Map<string, string>();
    for (const node of nodesToProbe(plan, self, leaseLive)) {
      const address = nodeAddress(nodes.find((n) => n.metadata?.name === node));
      if (address) addresses.set(node, address);
    }
    this.prober.setTargets(addresses);
    const live = (node: string): boolean => leaseLive(node) && (node === self || this.prober.isAlive(node));

    this.prober.setAnswering(this.synced && this.lease.isHeld);
    const want = new Map<string, OwnedIP>();
    const winners = new Map<string, string | undefined>();
    for (const entry of plan.values()) {
      const winner = electAnnouncer(entry.candidates, live);
      winners.set(entry.ip, winner);
      if (winner === self && this.synced && this.lease.isHeld) want.set(entry.ip, { address: entry.address, interfaces: entry.interfaces });
    }
    for (const [ip, winner] of winners) {
      if (this.lastWinners.has(ip) && this.lastWinners.get(ip) !== winner) this.electionChanges.inc();
    }
    this.lastWinners = winners;

    const before = new Set(this.announcer.announced().keys());
    await this.announcer.reconcile(want);
    const announced = this.announcer.announced();
    this.announcedGauge.set(announced.size);
    for (const [ip, interfaces] of announced) {
      const entry = plan.get(ip);
      if (!entry) continue;
      if (!before.has(ip)) {
        for (const key of entry.services) {
          const service = services.find((s) => serviceKey(s) === key);
          if (service) this.deps.events.record(serviceRef(service), 'Normal', NODE_ASSIGNED_REASON, `announcing ${ip} from node ${self} on ${interfaces.join(', ') || '(no interface)'}`);
        }
      }
      await this.writeConditions(entry, interfaces, services);
    }
    if (this.lease.isHeld && this.synced) {
      const usable = nodes.filter(nodeUsable).map((n) => n.metadata?.name ?? '').filter(Boolean);
      for (const entry of plan.values()) await this.reportUnannounced(entry, usable, services);
    }
    // Re-elect when the next lease runs out, even if nothing else happens.
    this.cancelExpiryTimer();
    const next = this.leaseView.nextExpiryMs();
    if (next !== undefined) this.cancelExpiryTimer = clock.setTimer(() => this.schedule(), next + 10);
  }

  /** The condition naming node and interfaces, on each Service of the IP; written only when it differs. */
  private async writeConditions(entry: AnnouncedIP, interfaces: readonly string[], services: readonly ServiceObject[]): Promise<void> {
    const message = `${entry.ip} announced by node ${this.settings.node} on ${interfaces.join(', ') || '(no interface)'}`;
    await this.writeCondition(entry, services, { status: 'True', reason: 'Announced', message });
  }

  private async writeCondition(entry: AnnouncedIP, services: readonly ServiceObject[], want: { status: 'True' | 'False'; reason: string; message: string }): Promise<void> {
    for (const key of entry.services) {
      const service = services.find((s) => serviceKey(s) === key);
      // One condition per Service: its first address decides who writes it.
      if (!service || firstAddress(service) !== entry.ip) continue;
      const path = `/api/v1/namespaces/${service.metadata.namespace}/services/${service.metadata.name}`;
      try {
        await patchWithRetry(this.deps.client, path, service, (current) => {
          const conditions = current.status?.conditions ?? [];
          const existing = conditions.find((c) => c.type === ANNOUNCED_CONDITION);
          if (existing && existing.status === want.status && existing.reason === want.reason && existing.message === want.message) return undefined;
          const next: Condition = {
            type: ANNOUNCED_CONDITION,
            ...want,
            lastTransitionTime: existing?.status === want.status && existing.lastTransitionTime ? existing.lastTransitionTime : new Date(this.deps.clock.now()).toISOString().replace(/\.\d+Z$/, 'Z'),
          };
          const updated = [...conditions.filter((c) => c.type !== ANNOUNCED_CONDITION), next];
          if (isDeepStrictEqual(updated, conditions)) return undefined;
          return { status: { conditions: updated } };
        }, { subresource: 'status' });
      } catch (error) {
        this.deps.logger.warn({ err: error, service: key }, 'could not write the announcement condition');
      }
    }
  }

  /**
   * An address no node may announce gets `L2Announced=False` saying why, written by one
   * speaker only: the first of all usable nodes in the address's order.
   */
  private async reportUnannounced(entry: AnnouncedIP, usable: readonly string[], services: readonly ServiceObject[]): Promise<void> {
    if (entry.candidates.length > 0 || rankNodes(entry.ip, usable)[0] !== this.settings.node) return;
    const message = entry.local
      ? `no node may announce ${entry.ip}: externalTrafficPolicy is Local and no node has a ready endpoint`
      : `no node may announce ${entry.ip}: no usable node matches the l2.nodeSelector of pool ${entry.pool}`;
    await this.writeCondition(entry, services, { status: 'False', reason: 'NoEligibleNode', message });
  }
}

function firstAddress(service: ServiceObject): string | undefined {
  const ip = service.status?.loadBalancer?.ingress?.[0]?.ip;
  return ip === undefined || tryParseIP(ip) === undefined ? undefined : canonicalIP(ip);
}

function serviceRef(service: ServiceObject): { apiVersion: string; kind: string; namespace: string; name: string; uid?: string } {
  return { apiVersion: 'v1', kind: 'Service', namespace: service.metadata.namespace, name: service.metadata.name, uid: service.metadata.uid };
}

/** The node's InternalIP (IPv4 preferred), where its speaker listens for probes. */
export function nodeAddress(node: NodeObject | undefined): string | undefined {
  const addresses = (node?.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' && a.address);
  return (addresses.find((a) => !a.address?.includes(':')) ?? addresses[0])?.address;
}
