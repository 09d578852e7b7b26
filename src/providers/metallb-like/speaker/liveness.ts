/**
 * Whether a speaker is alive, from two sources:
 *
 * - slow, authoritative: one coordination.k8s.io/v1 Lease per node (`portico-speaker-<node>`),
 *   renewed every `renewIntervalMs` (default 10 s, the kubelet's node-lease rate) — the only
 *   periodic API write. A node without a current Lease is not a candidate; a speaker whose
 *   renewal fails stops announcing at once.
 * - fast, direct: the runner-up for an IP sends a UDP probe to the announcer every
 *   `probeIntervalMs` (default 100 ms) and declares it dead after `probeTimeoutMs` (default
 *   600 ms) of silence. No API writes; a few bytes per (runner-up, announcer) pair.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from 'pino';
import type { Clock } from '../../../kube/clock.js';
import { isKubeError, type KubeClient } from '../../../kube/rest.js';

export const LEASE_PREFIX = 'portico-speaker-';
export const LEASE_COMPONENT_LABEL = 'portico.dev/component';
export const LEASE_COMPONENT = 'speaker';

export interface LeaseLike {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
  spec?: { holderIdentity?: string | null; leaseDurationSeconds?: number; renewTime?: string | null };
}

function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

/** The address as udp6 sockets take it (IPv4 mapped). */
function toIPv6(address: string): string {
  return address.includes(':') ? address : `::ffff:${address}`;
}

export function leaseName(node: string): string {
  return `${LEASE_PREFIX}${node}`;
}

/** Clock skew we tolerate between nodes when reading another node's renewTime. */
const SKEW_TOLERANCE_MS = 5_000;

/**
 * Node liveness as the Leases show it. A renewal counts from when this speaker saw it (so
 * clock skew does not matter), bounded by the renewTime written in it (so a long-dead lease
 * seen for the first time at startup is not believed).
 */
export class LeaseView {
  private readonly seen = new Map<string, { renewTime: string; at: number; durationMs: number; held: boolean }>();

  constructor(private readonly clock: Clock) {}

  observe(lease: LeaseLike): void {
    const name = lease.metadata?.name ?? '';
    if (!name.startsWith(LEASE_PREFIX)) return;
    const node = name.slice(LEASE_PREFIX.length);
    const renewTime = lease.spec?.renewTime ?? '';
    const previous = this.seen.get(node);
    const held = (lease.spec?.holderIdentity ?? '') === node && renewTime !== '';
    const durationMs = (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
    if (previous?.renewTime === renewTime && previous.held === held) return;
    const written = Date.parse(renewTime);
    const now = this.clock.now();
    // Seen now, but never later than the lease itself says it was renewed (plus skew).
    const at = Number.isFinite(written) ? Math.min(now, written + SKEW_TOLERANCE_MS) : now;
    this.seen.set(node, { renewTime, at, durationMs, held });
  }

  forget(lease: LeaseLike): void {
    const name = lease.metadata?.name ?? '';
    if (name.startsWith(LEASE_PREFIX)) this.seen.delete(name.slice(LEASE_PREFIX.length));
  }

  isLive(node: string): boolean {
    const entry = this.seen.get(node);
    return entry !== undefined && entry.held && this.clock.now() < entry.at + entry.durationMs;
  }

  /** When the next lease expires (ms from now), so the caller can re-elect then. */
  nextExpiryMs(): number | undefined {
    const now = this.clock.now();
    let next: number | undefined;
    for (const entry of this.seen.values()) {
      const left = entry.at + entry.durationMs - now;
      if (entry.held && left > 0 && (next === undefined || left < next)) next = left;
    }
    return next;
  }
}

export interface LeaseKeeperOptions {
  client: KubeClient;
  namespace: string;
  node: string;
  clock: Clock;
  logger: Logger;
  renewIntervalMs: number;
  leaseDurationMs: number;
  /** Told true when our lease is held and current, false the moment a renewal fails. */
  onHeld: (held: boolean) => void;
  requestTimeoutMs?: number;
}

/** Creates and renews this node's Lease; releases it (deletes it) on stop. */
export class LeaseKeeper {
  private held = false;
  /** Number of API writes made, for the write-rate figure. */
  writes = 0;

  constructor(private readonly options: LeaseKeeperOptions) {}

  get isHeld(): boolean {
    return this.held;
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.options.namespace}/leases`;
  }

  /** Renews until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { clock, renewIntervalMs, logger } = this.options;
    while (!signal.aborted) {
      try {
        await this.renew(signal);
        this.setHeld(true);
      } catch (error) {
        // Re-read: the await above may have seen an abort that narrowing cannot know of.
        if (isAborted(signal)) break;
        logger.warn({ err: error }, 'lease renewal failed; not announcing until it succeeds');
        this.setHeld(false);
      }
      try {
        await clock.sleep(this.held ? renewIntervalMs : Math.min(renewIntervalMs, 2_000), signal);
      } catch {
        break;
      }
    }
  }

  private setHeld(held: boolean): void {
    if (held === this.held) return;
    this.held = held;
    this.options.onHeld(held);
  }

  private async renew(outer: AbortSignal): Promise<void> {
    let signal = outer;
    const { client, node, namespace, leaseDurationMs } = this.options;
    const name = leaseName(node);
    const timeoutMs = this.options.requestTimeoutMs ?? Math.min(5_000, this.options.renewIntervalMs);
    const spec = {
      holderIdentity: node,
      leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
      renewTime: microTime(this.options.clock.now()),
    };
    this.writes++;
    // Our own deadline too: a request stuck connecting must still count as a failed renewal.
    signal = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
    try {
      await client.request('PATCH', `${this.path}/${name}`, {
        body: { metadata: { labels: { [LEASE_COMPONENT_LABEL]: LEASE_COMPONENT } }, spec },
        patchType: 'merge',
        signal,
        timeoutMs,
      });
    } catch (error) {
      if (!isKubeError(error, 404)) throw error;
      await client.request('POST', this.path, {
        body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace, labels: { [LEASE_COMPONENT_LABEL]: LEASE_COMPONENT } }, spec: { ...spec, acquireTime: spec.renewTime } },
        signal,
        timeoutMs,
      });
    }
  }

  /** Deletes the lease so other speakers take over at once (on SIGTERM). */
  async release(): Promise<void> {
    this.setHeld(false);
    try {
      await this.options.client.request('DELETE', `${this.path}/${leaseName(this.options.node)}`, { timeoutMs: 3_000, signal: AbortSignal.timeout(3_000) });
    } catch (error) {
      if (!isKubeError(error, 404)) this.options.logger.warn({ err: error }, 'could not release the lease; it expires on its own');
    }
  }
}

/** RFC 3339 with microseconds, as MicroTime fields require. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '000Z');
}

// ---------------------------------------------------------------- direct probes

const PROBER_MEMORY_MS = 10 * 60_000;
const PING = 0x50; // 'P'
const PONG = 0x51; // 'Q'
const BYE = 0x42; // 'B'

export interface PeerProberOptions {
  self: string;
  port: number;
  intervalMs: number;
  timeoutMs: number;
  clock: Clock;
  logger: Logger;
  /** Told when a probed peer turns dead or alive again. */
  onChange: () => void;
  /**
   * Told when a peer probes us again after a silence longer than the timeout: it may have
   * judged us dead and taken our addresses meanwhile (a cut link that came back).
   */
  onRejoin?: () => void;
  /** Address to bind; default all. */
  bindAddress?: string;
  /** Port peers listen on; default `port` (every speaker uses the same one). */
  peerPort?: number;
  /** Answer probes from the start (default true); see setAnswering. */
  answering?: boolean;
}

interface Target {
  address: string;
  since: number;
  lastReply: number;
  dead: boolean;
  /**
   * A UDP socket connected to the peer, for this target's probes. Connected, so the kernel
   * reports an ICMP port-unreachable back to us: a node that is up but has no speaker
   * listening (the speaker was killed) is known dead at the next probe, not after the timeout.
   */
  probe: Socket | undefined;
  connected: boolean;
}

/**
 * Answers probes from other speakers and probes the peers it is told to. A peer is dead when
 * nothing came back for `timeoutMs` (a killed speaker, a dead node or a cut link all look the
 * same), or at once when it says goodbye.
 */
export class PeerProber {
  private socket: Socket | undefined;
  private readonly targets = new Map<string, Target>();
  private timer: (() => void) | undefined;
  private seq = 0;
  private answering: boolean;

  constructor(private readonly options: PeerProberOptions) {
    this.answering = options.answering ?? true;
  }

  async start(): Promise<void> {
    const socket = createSocket({ type: 'udp6', ipv6Only: false });
    socket.on('message', (message, remote) => this.onMessage(message, remote.address, remote.port));
    socket.on('error', (error) => this.options.logger.warn({ err: error }, 'probe socket error'));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.options.port, this.options.bindAddress ?? '::', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    this.socket = socket;
    this.schedule();
  }

  /** The peers to probe, node -> address. Others are forgotten. */
  setTargets(targets: ReadonlyMap<string, string>): void {
    const now = this.options.clock.now();
    for (const [node, target] of [...this.targets]) {
      if (targets.get(node) === target.address) continue;
      target.probe?.close();
      this.targets.delete(node);
    }
    for (const [node, address] of targets) {
      if (this.targets.has(node)) continue;
      // A new target gets a full timeout to answer before it is judged.
      const target: Target = { address, since: now, lastReply: now, dead: false, probe: undefined, connected: false };
      this.targets.set(node, target);
      this.connectProbe(node, target);
    }
  }

  private connectProbe(node: string, target: Target): void {
    if (!this.socket) return;
    const probe = createSocket({ type: 'udp6', ipv6Only: false });
    target.probe = probe;
    probe.on('message', (message) => this.onMessage(message, target.address, 0));
    probe.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNREFUSED') {
        this.options.logger.debug({ err: error, peer: node }, 'probe socket error');
        return;
      }
      if (target.dead || this.targets.get(node) !== target) return;
      target.dead = true;
      this.options.logger.info({ peer: node, address: target.address }, 'peer refuses probes: its speaker is not running');
      this.options.onChange();
    });
    probe.connect(this.options.peerPort ?? this.options.port, toIPv6(target.address), () => {
      target.connected = true;
      this.ping(target);
    });
  }

  private ping(target: Target): void {
    if (!target.probe || !target.connected) return;
    target.probe.send(Buffer.concat([Buffer.from([PING]), Buffer.from(`${this.options.self}\n`)]), (error) => {
      // A refusal reported on send is handled like one reported on receive.
      if (error) target.probe?.emit('error', error);
    });
  }

  /**
   * Whether to answer probes. A speaker that may not announce (lost Lease or API) stops
   * answering, so its runner-up takes over after the probe timeout instead of the Lease's.
   */
  setAnswering(answering: boolean): void {
    this.answering = answering;
  }

  /** False only for a probed peer judged dead; peers we do not probe are not judged here. */
  isAlive(node: string): boolean {
    return !(this.targets.get(node)?.dead ?? false);
  }

  /** Tells the peers probing us that we are going away (SIGTERM), so they need not wait. */
  async sayGoodbye(peers: Iterable<string>): Promise<void> {
    await Promise.all([...peers].map((address) => new Promise<void>((resolve) => this.send(BYE, address, this.options.peerPort ?? this.options.port, undefined, resolve))));
  }

  stop(): void {
    this.timer?.();
    this.timer = undefined;
    for (const target of this.targets.values()) target.probe?.close();
    this.targets.clear();
    this.socket?.close();
    this.socket = undefined;
  }

  /** Addresses that probed us recently: the runners-up to tell when leaving. */
  readonly probers = new Map<string, number>();

  private schedule(): void {
    this.timer = this.options.clock.setTimer(() => {
      this.tick();
      if (this.socket) this.schedule();
    }, this.options.intervalMs);
  }

  private tick(): void {
    const now = this.options.clock.now();
    let changed = false;
    for (const [node, target] of this.targets) {
      // Dead by silence here, by refusal or goodbye as they arrive; alive again only by an answer.
      if (!target.dead && now - target.lastReply > this.options.timeoutMs) {
        target.dead = true;
        changed = true;
        this.options.logger.info({ peer: node, address: target.address, silentMs: now - target.lastReply }, 'peer stopped answering probes');
      }
      this.ping(target);
    }
    // Forgotten only after a long silence; until then a returning prober counts as a rejoin.
    for (const [address, at] of this.probers) if (now - at > PROBER_MEMORY_MS) this.probers.delete(address);
    if (changed) this.options.onChange();
  }

  private send(kind: number, address: string, port: number, payload?: Buffer, done?: () => void): void {
    if (!this.socket) {
      done?.();
      return;
    }
    // kind byte, our node name, newline, optional payload
    const body = Buffer.concat([Buffer.from([kind]), Buffer.from(`${this.options.self}\n`), payload ?? Buffer.alloc(0)]);
    this.socket.send(body, port, toIPv6(address), () => done?.());
  }

  private onMessage(message: Buffer, address: string, port: number): void {
    const kind = message[0];
    const from = message.subarray(1).toString('utf8').split('\n')[0] ?? '';
    const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
    if (kind === PING) {
      const now = this.options.clock.now();
      const last = this.probers.get(plain);
      this.probers.set(plain, now);
      if (!this.answering) return;
      if (last !== undefined && now - last > this.options.timeoutMs) this.options.onRejoin?.();
      this.send(PONG, address, port, Buffer.from(String(++this.seq)));
      return;
    }
    if (kind !== PONG && kind !== BYE) return;
    const node = from;
    const target = this.targets.get(node);
    if (!target) return;
    if (kind === BYE) {
      target.lastReply = -Infinity;
      if (!target.dead) {
        target.dead = true;
        this.options.onChange();
      }
      return;
    }
    target.lastReply = this.options.clock.now();
    if (target.dead) {
      target.dead = false;
      this.options.logger.info({ peer: node }, 'peer answers probes again');
      this.options.onChange();
    }
  }
}
